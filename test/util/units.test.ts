import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBitRate, parseDuration, parseSize } from '../../src/util/units.ts';
import { UsageError } from '../../src/errors.ts';

test('a rate needs its unit: bits or bytes a second, never a bare number', () => {
  assert.equal(parseBitRate('100Mbit'), 100e6);
  assert.equal(parseBitRate('1Gbit'), 1e9);
  assert.equal(parseBitRate('1Gbit/s'), 1e9);
  assert.equal(parseBitRate('100Mbps'), 100e6);
  assert.equal(parseBitRate('12.5MB/s'), 100e6);
  assert.equal(parseBitRate('1Mibit'), 2 ** 20);
  for (const bare of ['100M', '100', '1G', '100MB']) {
    assert.throws(() => parseBitRate(bare, '--bandwidth'), (e: Error) => e instanceof UsageError && /ambiguous/.test(e.message), bare);
  }
});

test('a bare rate is refused naming both readings, bits and bytes', () => {
  assert.throws(() => parseBitRate('100M', '--bandwidth'), (e: Error) => {
    assert.match(e.message, /^--bandwidth: "100M" is ambiguous/);
    assert.match(e.message, /100Mbit for 100 Mbit\/s/);
    assert.match(e.message, /100MB\/s for .*\(800 Mbit\/s\)/);
    return true;
  });
});

test('sizes take binary units, and M/G alone are binary as qemu-img reads them', () => {
  assert.equal(parseSize('64KiB'), 64 * 1024);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('512MiB'), 512 * 1024 ** 2);
  assert.equal(parseSize('64M'), 64 * 1024 ** 2);
  assert.equal(parseSize('1G'), 1024 ** 3);
  assert.equal(parseSize('4096'), 4096);
  assert.throws(() => parseSize('big', '--size'), UsageError);
});

test('a duration needs its unit; a bare number is refused (zero excepted)', () => {
  assert.equal(parseDuration('50ms'), 50);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('10min'), 600_000);
  assert.equal(parseDuration('0'), 0);
  assert.throws(() => parseDuration('50', '--rtt'), (e: Error) => e instanceof UsageError && /^--rtt: "50" has no unit: write 50ms or 50s/.test(e.message));
});
