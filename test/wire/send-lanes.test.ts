import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Priority, SendLanes, type PriorityValue } from '../../src/wire/send-lanes.ts';
import type { BlockTag } from '../../src/wire/block-tag.ts';

interface Msg { name: string; prio: PriorityValue; bytes: number; tag?: BlockTag }
const msg = (name: string, prio: PriorityValue, bytes = 100, tag?: BlockTag): Msg => ({ name, prio, bytes, tag });
const drain = (l: SendLanes<Msg>, windowOpen = true) => {
  const out: string[] = [];
  for (let m = l.next(windowOpen); m; m = l.next(windowOpen)) out.push(m.name);
  return out;
};

test('the most urgent lane goes first; bulk and prefetch wait for the window, control and demand never do', () => {
  const l = new SendLanes<Msg>();
  l.push(msg('bulk1', Priority.BULK));
  l.push(msg('pre1', Priority.PREFETCH));
  l.push(msg('dem1', Priority.DEMAND));
  l.push(msg('ctl1', Priority.CONTROL));
  l.push(msg('bulk2', Priority.BULK));
  assert.deepEqual(drain(l, false), ['ctl1', 'dem1']);
  assert.deepEqual(drain(l, true), ['pre1', 'bulk1', 'bulk2']);
});

test('producers wait for room in the bulk lanes and are released as it drains', async () => {
  const l = new SendLanes<Msg>(250);
  l.push(msg('a', Priority.BULK));
  l.push(msg('b', Priority.PREFETCH));
  let released = false;
  void l.waitRoom().then(() => (released = true));
  l.push(msg('c', Priority.BULK)); // 300 queued
  let waiting = false;
  void l.waitRoom().then(() => (waiting = true));
  l.next(true); // b leaves: 200
  l.wakeProducers();
  await Promise.resolve();
  assert.equal(released, true, 'there was room at the first wait');
  assert.equal(waiting, true, 'released once below the limit');
  l.push(msg('d', Priority.BULK, 1000));
  let atClose = false;
  void l.waitRoom().then(() => (atClose = true));
  l.wakeProducers();
  await Promise.resolve();
  assert.equal(atClose, false, 'still full');
  l.wakeProducers(true);
  await Promise.resolve();
  assert.equal(atClose, true, 'all released at close');
});

test('take and promote find messages by tag only; untagged ones never match', () => {
  const l = new SendLanes<Msg>();
  const data = (b: number): BlockTag => ({ kind: 'data', block: b, rawBytes: 100, wireBytes: 100, compressed: false });
  l.push(msg('d1', Priority.BULK, 100, data(1)));
  l.push(msg('untagged', Priority.BULK));
  l.push(msg('d2', Priority.PREFETCH, 100, data(2)));
  l.push(msg('z', Priority.BULK, 9, { kind: 'zero', first: 5, count: 3 }));
  assert.equal(l.promote(Priority.DEMAND, (t) => t.kind === 'data' && t.block === 2), 1);
  assert.equal(l.queuedBytes(Priority.PREFETCH), 0);
  assert.equal(l.queuedBytes(Priority.DEMAND), 100);
  const taken = l.take(Priority.BULK, () => true).map((m) => m.name);
  assert.deepEqual(taken, ['d1', 'z']);
  assert.equal(l.queuedBytes(Priority.BULK), 100);
  assert.deepEqual(drain(l), ['d2', 'untagged']);
});
