import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LogSink, defaultLogFormat, formatLogLine } from '../../src/util/log-sink.ts';

function capture(format: 'json' | 'text') {
  const lines: string[] = [];
  const sink = new LogSink({ write: (c: string) => lines.push(c) }, format);
  return { sink, lines, log: pino({ base: { pid: 7 } }, sink) };
}

test('text format: one line per event with time, level, message and fields; pid left out', () => {
  const { log, lines } = capture('text');
  log.info({ missingBlocks: 552, reason: 'round limit (30) reached', nested: { a: 1 } }, 'cut-over: VM I/O held');
  log.warn('multi\nline');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}cut-over: VM I\/O held missingBlocks=552 reason="round limit \(30\) reached" nested=\{"a":1\}\n$/);
  assert.doesNotMatch(lines[0]!, /pid=/);
  assert.match(lines[1]!, /^\S+ WARN {2}multi line\n$/);
});

test('json format: pino lines unchanged', () => {
  const { log, lines } = capture('json');
  log.error({ err: 'x' }, 'failed');
  const o = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(o.level, 50);
  assert.equal(o.msg, 'failed');
  assert.equal(o.pid, 7);
});

test('while an overlay is set (a progress bar), lines go to it without their newline; undo restores the stream', () => {
  const { log, lines, sink } = capture('text');
  const above: string[] = [];
  const undo = sink.setOverlay((l) => above.push(l));
  log.info('during the bar');
  undo();
  log.info('after');
  assert.equal(above.length, 1);
  assert.match(above[0]!, /INFO {2}during the bar$/);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /after\n$/);
});

test('the default format: text on a terminal, JSON elsewhere, FLIMCD_LOG_FORMAT wins', () => {
  assert.equal(defaultLogFormat({ write: () => true, isTTY: true }, {}), 'text');
  assert.equal(defaultLogFormat({ write: () => true }, {}), 'json');
  assert.equal(defaultLogFormat({ write: () => true, isTTY: true }, { FLIMCD_LOG_FORMAT: 'json' }), 'json');
  assert.equal(defaultLogFormat({ write: () => true }, { FLIMCD_LOG_FORMAT: 'text' }), 'text');
});

test('a line that is not JSON passes through as one line; a huge field is cut', () => {
  assert.equal(formatLogLine('plain\ntext\n'), 'plain text');
  const line = formatLogLine(JSON.stringify({ level: 30, time: 0, msg: 'm', big: 'x'.repeat(1000) }));
  assert.ok(line.length < 400, line);
});
