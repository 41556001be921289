// The agent-link decoders against generated malformed streams: FrameDecoder
// (chunked at random points), decodeMessage on every frame, and the handshake
// reader. Valid inputs must decode; anything else may only fail with our
// ProtocolError; no hang, no leak. `npm run test:fuzz` runs 1e6 inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameDecoder } from '../../src/wire/frame.ts';
import { decodeMessage } from '../../src/wire/messages.ts';
import { readMessage } from '../../src/wire/handshake.ts';
import { FlimcdError, ProtocolError } from '../../src/errors.ts';
import { FuzzSocket } from './fuzz-socket.ts';
import { chunked, inputRng } from './mutate.ts';
import { wireInput } from './wire-inputs.ts';
import { fuzz, fuzzConfig, FuzzFailure } from './harness.ts';

function ours(e: unknown, where: string): void {
  if (!(e instanceof ProtocolError)) throw new FuzzFailure(`${where} threw ${(e as Error)?.stack ?? e} instead of a ProtocolError`);
}

test('wire decoders: generated malformed frames and messages fail only with ProtocolError; valid ones decode', async (t) => {
  const cfg = fuzzConfig({ inputs: 5000 });
  t.diagnostic(`seed ${cfg.seed}, ${cfg.only !== undefined ? `replaying input ${cfg.only}` : `${cfg.inputs} inputs`}`);
  const r = await fuzz(cfg, 'wire-decoders', async (i) => {
    const rng = inputRng(cfg.seed, i);
    const { bytes, kind, types } = wireInput(rng);
    // (a) the stream decoder, then every frame's message decoder
    const dec = new FrameDecoder();
    const decoded: number[] = [];
    let failed = false;
    try {
      for (const c of chunked(bytes, rng)) {
        for (const f of dec.push(c)) {
          try {
            decoded.push(decodeMessage(f.type, f.payload).type);
          } catch (e) {
            ours(e, `decodeMessage(type ${f.type})`);
            failed = true;
          }
        }
      }
      if (dec.pendingBytes > 16 + 2 * 1024 * 1024) throw new FuzzFailure(`FrameDecoder holds ${dec.pendingBytes} bytes`);
    } catch (e) {
      if (e instanceof FuzzFailure) throw e;
      ours(e, 'FrameDecoder.push');
      failed = true;
    }
    if (kind === 'valid') {
      assert.equal(failed, false, 'a valid stream failed to decode');
      assert.deepEqual(decoded, types);
    }
    // (b) the handshake reader on the same bytes, as a socket delivers them
    const sock = new FuzzSocket();
    // The production timeout: under a loaded machine a shorter one fires on valid input;
    // a reader that truly hangs is caught by the harness's per-input bound all the same.
    const read = readMessage(sock.asSocket(), 30_000);
    sock.feed(chunked(bytes, rng));
    try {
      const got = await read;
      if (kind === 'valid') assert.equal(got.message.type, types[0]);
    } catch (e) {
      if (!(e instanceof FlimcdError)) throw new FuzzFailure(`readMessage rejected with ${(e as Error)?.stack ?? e}`);
      if (kind === 'valid') throw new FuzzFailure(`readMessage refused a valid stream: ${(e as Error).message}`);
    }
    sock.destroy();
    return `${kind}:${failed ? 'refused' : 'decoded'}`;
  });
  t.diagnostic(`${r.inputs} inputs in ${r.seconds.toFixed(1)} s, heap growth ${(r.heapGrowthBytes / 1048576).toFixed(1)} MiB, outcomes ${JSON.stringify(r.outcomes)}`);
  if (cfg.only === undefined) {
    // Mutated payloads must reach decodeMessage and be refused there, not only at the CRC.
    assert.ok((r.outcomes['payload-mutated:refused'] ?? 0) > r.inputs * 0.1, JSON.stringify(r.outcomes));
  }
});
