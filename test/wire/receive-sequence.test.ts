import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/util/clock.ts';
import { ReceiveSequence } from '../../src/wire/receive-sequence.ts';

test('sequenced messages are taken in order; retransmissions are recognised, gaps refused', () => {
  const r = new ReceiveSequence(new VirtualClock(), () => {});
  assert.equal(r.arrived(1), 'next');
  assert.equal(r.arrived(2), 'next');
  assert.equal(r.arrived(2), 'duplicate');
  assert.equal(r.arrived(1), 'duplicate');
  assert.equal(r.arrived(4), 'gap');
  assert.equal(r.expected, 3);
});

test('processed advances only over a run of finished handlers; acks are coalesced per millisecond', () => {
  const clock = new VirtualClock();
  const acks: number[] = [];
  const r = new ReceiveSequence(clock, (seq) => acks.push(seq));
  for (let s = 1; s <= 3; s++) r.arrived(s);
  r.done(2);
  assert.equal(r.processed, 0, 'seq 1 is still being handled');
  r.done(1);
  r.done(3);
  assert.equal(r.processed, 3);
  assert.deepEqual(acks, [], 'not yet: coalesced');
  clock.advanceTo(1);
  assert.deepEqual(acks, [3], 'one ack for all three');
  r.ackNow();
  assert.deepEqual(acks, [3], 'nothing new to ack');
});

test('64 unacknowledged processed messages are acked at once', () => {
  const acks: number[] = [];
  const r = new ReceiveSequence(new VirtualClock(), (seq) => acks.push(seq));
  for (let s = 1; s <= 64; s++) {
    r.arrived(s);
    r.done(s);
  }
  assert.deepEqual(acks, [64]);
});
