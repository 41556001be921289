/**
 * Guest-visible I/O errors during a migration, as QEMU saw them: BLOCK_IO_ERROR
 * events and the growth of query-blockstats' failed operations, on both the
 * source and the target QEMU. A migration whose guest saw one is not a success,
 * whatever the disk's verification says.
 */
import type { QmpClient, QmpEvent } from './qmp.ts';

export interface GuestIoErrorCount {
  /** BLOCK_IO_ERROR events. */
  events: number;
  failed_reads: number;
  failed_writes: number;
  failed_flushes: number;
}

export interface GuestIoErrors extends GuestIoErrorCount {
  /** Errors the guest saw: per QEMU the larger of events and failed operations (each failed request usually gives both). */
  total: number;
  source: GuestIoErrorCount;
  target: GuestIoErrorCount;
}

interface BlockStats {
  failed_rd_operations?: number;
  failed_wr_operations?: number;
  failed_flush_operations?: number;
}

async function failedOps(qmp: QmpClient): Promise<{ rd: number; wr: number; flush: number }> {
  const list = await qmp.execute<{ stats?: BlockStats }[] | undefined>('query-blockstats', undefined, { timeoutMs: 5000 });
  const sum = { rd: 0, wr: 0, flush: 0 };
  for (const d of Array.isArray(list) ? list : []) {
    sum.rd += d.stats?.failed_rd_operations ?? 0;
    sum.wr += d.stats?.failed_wr_operations ?? 0;
    sum.flush += d.stats?.failed_flush_operations ?? 0;
  }
  return sum;
}

/** Counts one QEMU's guest I/O errors from when it was started. */
class OneQemu {
  private events = 0;
  private last: GuestIoErrorCount = { events: 0, failed_reads: 0, failed_writes: 0, failed_flushes: 0 };
  private readonly off: () => void;
  private constructor(
    private readonly qmp: QmpClient,
    private readonly base: { rd: number; wr: number; flush: number },
  ) {
    this.off = qmp.on((e: QmpEvent) => {
      if (e.event === 'BLOCK_IO_ERROR') this.events++;
    });
  }

  static async start(qmp: QmpClient): Promise<OneQemu> {
    return new OneQemu(qmp, await failedOps(qmp));
  }

  /** The count now; a QEMU that no longer answers keeps its last count (and its events so far). */
  async read(): Promise<GuestIoErrorCount> {
    try {
      const now = await failedOps(this.qmp);
      this.last = { events: this.events, failed_reads: now.rd - this.base.rd, failed_writes: now.wr - this.base.wr, failed_flushes: now.flush - this.base.flush };
    } catch {
      this.last = { ...this.last, events: this.events };
    }
    return this.last;
  }

  stop(): void {
    this.off();
  }
}

const worst = (c: GuestIoErrorCount) => Math.max(c.events, c.failed_reads + c.failed_writes + c.failed_flushes);

/** Watches both QEMUs from start() on. */
export class GuestIoErrorWatch {
  private constructor(private readonly source: OneQemu, private readonly target: OneQemu) {}

  static async start(source: QmpClient, target: QmpClient): Promise<GuestIoErrorWatch> {
    return new GuestIoErrorWatch(await OneQemu.start(source), await OneQemu.start(target));
  }

  async read(): Promise<GuestIoErrors> {
    const source = await this.source.read();
    const target = await this.target.read();
    const sum = (k: keyof GuestIoErrorCount) => source[k] + target[k];
    return { events: sum('events'), failed_reads: sum('failed_reads'), failed_writes: sum('failed_writes'), failed_flushes: sum('failed_flushes'), total: worst(source) + worst(target), source, target };
  }

  stop(): void {
    this.source.stop();
    this.target.stop();
  }
}
