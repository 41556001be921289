// The one in-process link model: what the test transport pair adds to it
// (copies, an instant link by default, cut with an error) and what both
// users rely on (one buffer per write, timers gone with the link).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { memoryLinkPair } from '../../src/wire/memory-link.ts';
import { memoryLink } from '../../src/wire/memory-transport.ts';

test('the test pair: instant by default, one copied buffer per write, a writer may reuse its buffers', () => {
  const clock = new VirtualClock();
  const [a, b] = memoryLink(clock);
  const got: Buffer[] = [];
  b.onData((c) => got.push(c));
  const part = Buffer.from('abc');
  a.write([part, Buffer.from('de')]);
  part.fill(0x78); // reused by the writer before delivery
  assert.equal(got.length, 0, 'delivery is a timer, not a re-entrant call');
  clock.step();
  assert.equal(clock.now(), 0);
  assert.deepEqual(got.map(String), ['abcde']);
});

test('without copies the far end gets the very buffer written; a joiner per end makes what arrives', () => {
  const clock = new VirtualClock();
  const joined: string[] = [];
  let ends = 0;
  const [a, b] = memoryLinkPair(clock, { bandwidthBps: 8e6, delayMs: 5 }, {
    noCopy: true,
    joiner: () => {
      const end = ends++;
      return (parts, n) => {
        joined.push(`${end}:${parts.length}:${n}`);
        return parts[0]!;
      };
    },
  });
  const sent = Buffer.alloc(1000);
  let received: Buffer | undefined;
  b.onData((c) => (received = c));
  a.write([sent, Buffer.alloc(1000)]);
  clock.runAll();
  // 2000 bytes at 8 Mbit/s: 2 ms, then 5 ms.
  assert.equal(clock.now(), 7);
  assert.equal(received, sent);
  assert.deepEqual(joined, ['1:2:2000'], "the receiving end's joiner");
});

test('cut: both ends hear the error, bytes in flight are lost, no timer is left behind', () => {
  const clock = new VirtualClock();
  const [a, b] = memoryLink(clock, { bandwidthBps: 1e6, delayMs: 50 });
  const errors: Array<string | undefined> = [];
  a.onClose((e) => errors.push(e?.message));
  b.onClose((e) => errors.push(e?.message));
  let got = 0;
  b.onData(() => got++);
  a.write([Buffer.alloc(1000)]);
  assert.equal(clock.pending, 1);
  a.cut(new Error('cable'));
  assert.deepEqual(errors, ['cable', 'cable']);
  assert.equal(clock.pending, 0);
  assert.equal(a.write([Buffer.alloc(1)]), false);
  clock.runAll();
  assert.equal(got, 0);
  b.close(); // closing again is harmless
  assert.equal(errors.length, 2);
});
