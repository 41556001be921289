import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_WINDOW, LinkEstimator, STARTUP_GAIN, WINDOW_GAIN, type SendSample } from '../../src/wire/link-estimator.ts';

const MSG = 64 * 1024;

interface Flow {
  /** Bytes per second the sender puts out, one message of msgBytes (default 64 KiB) at a time. */
  bytesPerSec: number;
  msgBytes?: number;
  /** Time from a message's transmission to its ack. */
  ackRttMs: number;
  ms: number;
  linkLimited?: boolean;
  /** Acks are held at the peer and released together on multiples of this (a stalling receiver). */
  releaseEveryMs?: number;
  startAt?: number;
}

/**
 * Drives an estimator with a synthetic flow on a fake clock: a message goes
 * out every MSG / rate, and its ack comes back ackRttMs later (or at the next
 * release after that). Returns when the flow ended.
 */
function drive(e: LinkEstimator, f: Flow, onAck?: (now: number) => void): number {
  const size = f.msgBytes ?? MSG;
  const gap = (size / f.bytesPerSec) * 1000;
  const start = f.startAt ?? 0;
  const pending: Array<{ ackAt: number; sample: SendSample }> = [];
  const ackDue = (upTo: number) => {
    while (pending.length && pending[0]!.ackAt <= upTo) {
      const { ackAt, sample } = pending.shift()!;
      e.acked(size, sample, ackAt);
      onAck?.(ackAt);
    }
  };
  let t = start;
  for (; t < start + f.ms; t += gap) {
    ackDue(t);
    const sample = e.sent(t, pending.length === 0);
    sample.linkLimited = f.linkLimited ?? true;
    let ackAt = t + f.ackRttMs;
    if (f.releaseEveryMs) ackAt = Math.ceil(ackAt / f.releaseEveryMs) * f.releaseEveryMs;
    pending.push({ ackAt, sample });
  }
  ackDue(Infinity);
  return t;
}

const mbit = (bps: number | undefined) => `${((bps ?? NaN) / 1e6).toFixed(1)} Mbit/s`;

test('before any sample the window is the initial one and nothing is measured', () => {
  const e = new LinkEstimator();
  assert.equal(e.window, INITIAL_WINDOW);
  assert.equal(e.deliveryRateBps, undefined);
  assert.equal(e.minRttMs, undefined);
  assert.equal(e.minAckRttMs, undefined);
  assert.equal(new LinkEstimator({ initialWindow: 1 << 20 }).window, 1 << 20);
});

test('a steady flow reads as its rate, its transmit-to-ack time as the ack RTT', () => {
  const e = new LinkEstimator();
  const bytesPerSec = 10e6; // 80 Mbit/s
  drive(e, { bytesPerSec, ackRttMs: 40, ms: 3000 });
  const bps = bytesPerSec * 8;
  assert.ok(e.deliveryRateBps! > 0.9 * bps && e.deliveryRateBps! < 1.1 * bps, `delivery rate ${mbit(e.deliveryRateBps)} for 80 Mbit/s`);
  assert.ok(e.linkRateBps! > 0.9 * bps && e.linkRateBps! <= e.deliveryRateBps!, `link rate ${mbit(e.linkRateBps)} (median, not above the max filter)`);
  assert.ok(Math.abs(e.minAckRttMs! - 40) < 1e-6, `ack rtt ${e.minAckRttMs}`);
  assert.equal(e.minRttMs, undefined, 'no ping yet');
});

test('the ping RTT is the smallest sample of the last 30 s', () => {
  const e = new LinkEstimator();
  e.pingRtt(30, 0);
  e.pingRtt(20, 1000);
  e.pingRtt(25, 2000);
  assert.equal(e.minRttMs, 20);
  e.pingRtt(35, 31_500);
  assert.equal(e.minRttMs, 25, 'samples older than 30 s are gone');
  e.pingRtt(40, 40_000);
  assert.equal(e.minRttMs, 35);
  e.pingRtt(-3, 41_000); // a clock step: never below zero
  assert.equal(e.minRttMs, 0);
});

test('start-up doubles the bandwidth-delay product; once the rate stops growing the window keeps 1.25 × it', () => {
  const e = new LinkEstimator({ minWindow: 1024 });
  const bdpOf = () => (e.deliveryRateBps! / 8) * (e.minAckRttMs! / 1000);
  let first: number | undefined;
  drive(e, { bytesPerSec: 20e6, ackRttMs: 50, ms: 4000 }, () => {
    if (first === undefined && e.deliveryRateBps !== undefined) first = e.window / bdpOf();
  });
  assert.ok(first !== undefined && Math.abs(first - STARTUP_GAIN) < 1e-9, `first window ${first} × the BDP`);
  assert.ok(Math.abs(e.window / bdpOf() - WINDOW_GAIN) < 1e-9, `window ${e.window} is ${e.window / bdpOf()} × the BDP`);
  const trueBdp = 20e6 * 0.05;
  assert.ok(e.window > 1.1 * trueBdp && e.window < 1.45 * trueBdp, `window ${e.window} vs true BDP ${trueBdp}`);
});

test('the window stays within its bounds', () => {
  const small = new LinkEstimator({ minWindow: 300_000 });
  drive(small, { bytesPerSec: 1e6, ackRttMs: 20, ms: 3000 }); // BDP 20 kB
  assert.equal(small.window, 300_000);
  const capped = new LinkEstimator({ maxWindow: 2_000_000 });
  drive(capped, { bytesPerSec: 100e6, ackRttMs: 100, ms: 3000 }); // BDP 10 MB
  assert.equal(capped.window, 2_000_000);
});

test('samples of a sender that did not fill the link never shrink the window; link-limited ones do', () => {
  const e = new LinkEstimator({ minWindow: 16 * 1024 });
  // Small messages (like OFFERs) with the link mostly idle: a few in flight at a time.
  const end = drive(e, { bytesPerSec: 200e3, msgBytes: 1024, ackRttMs: 30, ms: 2000, linkLimited: false });
  assert.ok(e.deliveryRateBps! < 2e6, `tiny offered load ${mbit(e.deliveryRateBps)}`);
  assert.equal(e.window, INITIAL_WINDOW, 'application-limited: kept');
  assert.equal(e.linkRateBps, undefined, 'no link-limited sample');
  // The same slow rate, now with the link the limit (10 s later, past the rate filter's horizon).
  drive(e, { bytesPerSec: 200e3, msgBytes: 1024, ackRttMs: 30, ms: 2000, startAt: end + 11_000 });
  assert.ok(e.window < 64 * 1024, `window ${e.window} follows the link`);
});

test('acks released in bursts by a stalling receiver do not read as a faster link', () => {
  const e = new LinkEstimator();
  const bytesPerSec = 5e6;
  drive(e, { bytesPerSec, ackRttMs: 20, ms: 6000, releaseEveryMs: 200 });
  const bps = bytesPerSec * 8;
  assert.ok(e.deliveryRateBps! < 1.1 * bps, `rate ${mbit(e.deliveryRateBps)} for 40 Mbit/s`);
  assert.ok(e.deliveryRateBps! > 0.7 * bps, `rate ${mbit(e.deliveryRateBps)} for 40 Mbit/s`);
  assert.ok(e.minAckRttMs! >= 20, 'the stall is in the ack RTT');
});
