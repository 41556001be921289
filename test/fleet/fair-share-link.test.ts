// The fleet's WAN cap on a virtual clock: the link sends at most the cap in
// all, busy flows share it by weight, an idle flow's share goes to the others,
// and a flow over its queue limit is told to pause until it drains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairShareLink } from '../../src/fleet/fair-share-link.ts';
import { VirtualClock } from '../../src/util/clock.ts';

const CHUNK = 16 * 1024;

function feed(link: FairShareLink, flow: ReturnType<FairShareLink['flow']>, chunks: number): void {
  for (let i = 0; i < chunks; i++) link.enqueue(flow, Buffer.alloc(CHUNK));
}

test('busy flows share the cap by weight, and the total stays within the cap', () => {
  const clock = new VirtualClock();
  const link = new FairShareLink({ capBps: 80e6, clock, maxQueuedBytes: 1 << 30 });
  const a = link.flow('a', 1);
  const b = link.flow('b', 3);
  feed(link, a, 2000);
  feed(link, b, 2000);
  clock.advance(1000);
  const sent = link.sent();
  const total = sent.a! + sent.b!;
  assert.ok(total <= 10e6 + 2 * CHUNK, `sent ${total} bytes in 1 s at 10 MB/s`);
  assert.ok(total >= 10e6 * 0.95, `sent ${total}: the cap is used`);
  const ratio = sent.b! / sent.a!;
  assert.ok(ratio > 2.8 && ratio < 3.2, `weight 3 over weight 1: ${ratio}`);
  link.close();
});

test('an idle flow\'s share goes to the busy one; a flow over its limit pauses until drained', () => {
  const clock = new VirtualClock();
  const link = new FairShareLink({ capBps: 8e6, clock, maxQueuedBytes: 4 * CHUNK });
  const a = link.flow('a', 1);
  link.flow('b', 1);
  let accepted = 0;
  while (link.enqueue(a, Buffer.alloc(CHUNK))) accepted++;
  assert.equal(accepted, 3, 'the fourth chunk reaches the limit');
  let drained = 0;
  a.paused = true;
  a.onDrain = () => drained++;
  clock.advance(1000);
  assert.equal(link.sent().a, 4 * CHUNK, 'the idle flow b takes nothing away');
  assert.equal(link.sent().b, 0);
  assert.equal(drained, 1);
  link.close();
});
