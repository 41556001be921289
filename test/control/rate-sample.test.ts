// A target knows no link rate of its own: its ETA comes from the observed
// receive rate. With rateSampleMs the control endpoint samples the status in the
// background, so the first `flimcd status` already shows an ETA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ControlServer } from '../../src/control/server.ts';
import { controlRequest } from '../../src/control/client.ts';
import { tempDir } from '../helpers/tmp.ts';

function targetLike() {
  let calls = 0;
  let now = 0;
  return {
    now: () => now,
    get calls() { return calls; },
    control: {
      role: 'target' as const,
      // Each read: a second later, 12.5 MB more received (100 Mbit/s), 8000 blocks of 64 KiB still to come.
      status: () => {
        calls++;
        now += 1000;
        return { role: 'target', phase: 'precopy', blocks: 10_000, blockSize: 65536, receivedBytes: calls * 12_500_000, remainingBlocks: 8000 };
      },
      abort: () => {},
    },
  };
}

for (const sampled of [false, true]) {
  test(`the first status request ${sampled ? 'has' : 'lacks'} a transfer rate and ETA ${sampled ? 'with' : 'without'} background sampling`, async (t) => {
    const dir = tempDir(t);
    const agent = targetLike();
    const server = new ControlServer({ control: agent.control, address: { kind: 'unix', path: join(dir, 'c.sock') }, now: agent.now, ...(sampled ? { rateSampleMs: 20 } : {}) });
    const addr = await server.listen();
    t.after(() => server.close());
    if (sampled) for (let i = 0; i < 500 && agent.calls < 2; i++) await sleep(20);
    const s = await controlRequest<Record<string, unknown>>(addr, 'GET', '/status');
    if (!sampled) {
      assert.equal(s.transferRateBps, null);
      assert.equal(s.etaSeconds, null);
      return;
    }
    assert.equal(s.transferRateBps, 100e6);
    assert.equal(s.etaSeconds, Math.round(((8000 * 65536 * 8) / 100e6) * 10) / 10);
  });
}
