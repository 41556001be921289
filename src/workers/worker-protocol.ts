/** What the pool (worker-pool.ts) and its workers (block-worker.ts) post to each other. */

export type WorkerJob =
  | { op: 'encode'; job: number; block: ArrayBuffer; length: number; hash: boolean; level: number }
  | { op: 'decode'; job: number; payload: ArrayBuffer; length: number; hash: boolean };

export type WorkerReply =
  | { job: number; block: ArrayBuffer; length: number; id: Uint8Array | undefined; payload: ArrayBuffer | undefined; ms: number; error?: undefined }
  | { job: number; error: string };
