import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuthError, ErrorCode, FlimcdError, InvalidArgumentError, IoError, isErrorCode, NoSpaceError, NotSupportedError,
  OverflowError, ProtocolError, QmpError, ReadOnlyError, ShutdownError, TargetRefusal, targetRefusalCode,
  toFlimcdError, TraceFormatError, UsageError,
} from '../src/errors.ts';
import { NbdErrno, nbdErrnoOf } from '../src/nbd/errno.ts';

test('every code is FLIMCD_ERR_ plus its key, so no two are equal', () => {
  const entries = Object.entries(ErrorCode);
  for (const [key, code] of entries) assert.equal(code, `FLIMCD_ERR_${key}`);
  assert.equal(new Set(Object.values(ErrorCode)).size, entries.length);
});

test('the codes users and scripts match on keep their strings', () => {
  // The CLI's exit status, tests and scripts compare against these literally.
  assert.equal(ErrorCode.LINK_LOST, 'FLIMCD_ERR_LINK_LOST');
  assert.equal(ErrorCode.ALREADY_DONE, 'FLIMCD_ERR_ALREADY_DONE');
  assert.equal(ErrorCode.TARGET_STALE_STATE, 'FLIMCD_ERR_TARGET_STALE_STATE');
  assert.equal(ErrorCode.CUTOVER_REFUSED, 'FLIMCD_ERR_CUTOVER_REFUSED');
  assert.equal(ErrorCode.READ_ONLY, 'FLIMCD_ERR_READ_ONLY');
  assert.equal(ErrorCode.QMP_TIMEOUT, 'FLIMCD_ERR_QMP_TIMEOUT');
});

test('each error class carries its own code and name', () => {
  const cases: [FlimcdError, ErrorCode, string][] = [
    [new InvalidArgumentError('x'), ErrorCode.INVALID_ARGUMENT, 'InvalidArgumentError'],
    [new NoSpaceError('x'), ErrorCode.NO_SPACE, 'NoSpaceError'],
    [new ReadOnlyError(), ErrorCode.READ_ONLY, 'ReadOnlyError'],
    [new OverflowError('x'), ErrorCode.OVERFLOW, 'OverflowError'],
    [new NotSupportedError('x'), ErrorCode.NOT_SUPPORTED, 'NotSupportedError'],
    [new IoError('x'), ErrorCode.IO, 'IoError'],
    [new ShutdownError(), ErrorCode.SHUTDOWN, 'ShutdownError'],
    [new ProtocolError('x'), ErrorCode.PROTOCOL, 'ProtocolError'],
    [new AuthError('x'), ErrorCode.AUTH, 'AuthError'],
    [new UsageError('x'), ErrorCode.USAGE, 'UsageError'],
    [new TraceFormatError('x', 3), ErrorCode.TRACE_FORMAT, 'TraceFormatError'],
    [new QmpError('x'), ErrorCode.QMP, 'QmpError'],
    [new QmpError('x', ErrorCode.QMP_CLOSED), ErrorCode.QMP_CLOSED, 'QmpError'],
  ];
  for (const [err, code, name] of cases) {
    assert.ok(err instanceof FlimcdError);
    assert.equal(err.code, code);
    assert.equal(err.name, name);
    assert.ok(isErrorCode(err.code));
  }
  assert.equal(new TraceFormatError('bad op', 7).message, 'line 7: bad op');
});

test('isErrorCode accepts only the closed list', () => {
  assert.ok(isErrorCode('FLIMCD_ERR_LINK_LOST'));
  assert.ok(!isErrorCode('FLIMCD_ERR_SOMETHING_NEW'));
  assert.ok(!isErrorCode('ENOENT'));
  assert.ok(!isErrorCode(undefined));
  assert.ok(!isErrorCode(42));
});

test('a target refusal maps through the closed list; an unknown reason to TARGET_REFUSED', () => {
  assert.equal(targetRefusalCode('STALE_STATE'), ErrorCode.TARGET_STALE_STATE);
  assert.equal(targetRefusalCode('VERSION'), ErrorCode.TARGET_VERSION);
  assert.equal(targetRefusalCode('TLS_REQUIRED'), ErrorCode.TARGET_TLS_REQUIRED);
  for (const reason of ['FROBNICATED', '', 'constructor', '__proto__', 'toString', 'stale_state']) {
    assert.equal(targetRefusalCode(reason), ErrorCode.TARGET_REFUSED, reason);
  }
  for (const [reason, code] of Object.entries(TargetRefusal)) assert.equal(code, `FLIMCD_ERR_TARGET_${reason}`);
});

test('errors map to the NBD errno a server puts on the wire', () => {
  assert.equal(nbdErrnoOf(new ReadOnlyError()), NbdErrno.EPERM);
  assert.equal(nbdErrnoOf(new FlimcdError('x', ErrorCode.PERMISSION)), NbdErrno.EPERM);
  assert.equal(nbdErrnoOf(new NoSpaceError('x')), NbdErrno.ENOSPC);
  assert.equal(nbdErrnoOf(new InvalidArgumentError('x')), NbdErrno.EINVAL);
  assert.equal(nbdErrnoOf(new OverflowError('x')), NbdErrno.EOVERFLOW);
  assert.equal(nbdErrnoOf(new NotSupportedError('x')), NbdErrno.ENOTSUP);
  assert.equal(nbdErrnoOf(new ShutdownError()), NbdErrno.ESHUTDOWN);
  assert.equal(nbdErrnoOf(new FlimcdError('x', ErrorCode.NO_MEMORY)), NbdErrno.ENOMEM);
  // Failures that are not about the request itself are plain I/O errors to the NBD client.
  assert.equal(nbdErrnoOf(new IoError('x')), NbdErrno.EIO);
  assert.equal(nbdErrnoOf(new ProtocolError('x')), NbdErrno.EIO);
  assert.equal(nbdErrnoOf(new FlimcdError('x', ErrorCode.LINK_LOST)), NbdErrno.EIO);
});

test('Node system errors become FlimcdErrors with the matching code and errno', () => {
  const sys = (code: string) => Object.assign(new Error(`${code}: failed`), { code });
  const cases: [string, ErrorCode, number][] = [
    ['ENOSPC', ErrorCode.NO_SPACE, NbdErrno.ENOSPC],
    ['EROFS', ErrorCode.PERMISSION, NbdErrno.EPERM],
    ['EACCES', ErrorCode.PERMISSION, NbdErrno.EPERM],
    ['EINVAL', ErrorCode.INVALID_ARGUMENT, NbdErrno.EINVAL],
    ['ENOSYS', ErrorCode.NOT_SUPPORTED, NbdErrno.ENOTSUP],
    ['ENOMEM', ErrorCode.NO_MEMORY, NbdErrno.ENOMEM],
    ['EBADF', ErrorCode.IO, NbdErrno.EIO],
  ];
  for (const [sysCode, code, errno] of cases) {
    const e = toFlimcdError(sys(sysCode));
    assert.equal(e.code, code, sysCode);
    assert.equal(nbdErrnoOf(e), errno, sysCode);
    assert.match(e.message, new RegExp(sysCode));
  }
  const own = new NoSpaceError('full');
  assert.equal(toFlimcdError(own), own);
});

test('no code is built at runtime or spelled out in src/ outside errors.ts', () => {
  const src = join(import.meta.dirname, '..', 'src');
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && p !== join(src, 'errors.ts')) {
        readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
          // A quoted or templated code; comment lines may name codes.
          if (/['"`]FLIMCD_ERR/.test(line) && !/^\s*(\*|\/\/|\/\*)/.test(line)) offenders.push(`${p}:${i + 1}: ${line.trim()}`);
        });
      }
    }
  };
  walk(src);
  assert.deepEqual(offenders, []);
});
