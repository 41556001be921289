// The fleet simulation's WAN: flows of one FairShareLink on the virtual clock, then the delay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedWan } from '../../src/sim/sim-wan.ts';
import { VirtualClock, sleep } from '../../src/util/clock.ts';
import { runVirtual } from '../../src/sim/simulate.ts';

test('two migrations share the cap by weight, back-pressure holds the writer, bytes arrive whole and in order', async () => {
  const clock = new VirtualClock();
  const wan = new SharedWan(clock, 8e6, 20);
  const heavy = wan.connect('heavy', 2);
  const light = wan.connect('light', 1);
  const got = { heavy: [] as number[], light: [] as number[] };
  const doneAt = { heavy: 0, light: 0 };
  const total = 40;
  for (const [name, c] of [['heavy', heavy], ['light', light]] as const) {
    c.target.onData((b) => {
      got[name].push(b.readUInt32LE(0));
      if (got[name].length === total) doneAt[name] = clock.now();
    });
  }
  let refused = 0;
  const send = async (c: typeof heavy) => {
    let drained: (() => void) | undefined;
    c.source.onDrain(() => drained?.());
    for (let i = 0; i < total; i++) {
      const b = Buffer.alloc(32 * 1024);
      b.writeUInt32LE(i, 0);
      if (!c.source.write([b])) {
        refused++;
        await new Promise<void>((r) => (drained = r));
      }
    }
  };
  await runVirtual(clock, Promise.all([send(heavy), send(light)]).then(() => sleep(clock, 5000)), 60_000);
  const order = Array.from({ length: total }, (_, i) => i);
  assert.deepEqual(got.heavy, order);
  assert.deepEqual(got.light, order);
  assert.ok(refused > 0, 'a flow over its queue limit refuses writes until it drains');
  // 2 × 40 × 32 KiB at 8 Mbit/s ≈ 2.6 s; the weight-2 flow gets 2/3 of the cap while both send.
  const both = (2 * total * 32 * 1024 * 8) / 8e6 * 1000;
  assert.ok(Math.abs(doneAt.light - both) < 100, `all bytes at the cap: ${doneAt.light} ms vs ${both.toFixed(0)}`);
  const heavyAlone = (total * 32 * 1024 * 8) / (8e6 * 2 / 3) * 1000;
  assert.ok(Math.abs(doneAt.heavy - heavyAlone) < 100, `the heavy flow at 2/3 of the cap: ${doneAt.heavy} ms vs ${heavyAlone.toFixed(0)}`);
  wan.close();
});
