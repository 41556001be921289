// The CLI's link credential flags: turned into a LinkSecurity, or a usage error naming what to pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { securityFromFlags, readPskFile, SECURITY_HELP } from '../../src/cli/security-options.ts';
import { makePskFile } from '../../src/cli/commands/certs.ts';
import { UsageError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

test('credential flags: none, mixed or incomplete are usage errors naming what to pass; PSK files are checked', (t) => {
  const dir = tempDir(t);
  assert.throws(() => securityFromFlags({}), (e: unknown) => e instanceof UsageError && e.message === SECURITY_HELP && /--tls-ca.*--psk-file.*--insecure/.test(e.message));
  assert.throws(() => securityFromFlags({ insecure: true, pskFile: 'x' }), /choose one/);
  assert.throws(() => securityFromFlags({ tlsCa: 'ca.crt' }), /--tls-cert and --tls-key/);
  assert.deepEqual(securityFromFlags({ insecure: true }), { mode: 'insecure' });
  assert.throws(() => securityFromFlags({ pskFile: join(dir, 'missing') }), /--psk-file: cannot read .*ENOENT/);

  const psk = join(dir, 'link.psk');
  makePskFile(psk, 'flimcd', false);
  const s = readPskFile(psk);
  assert.equal(s.mode, 'psk');
  assert.equal(s.mode === 'psk' && s.key.length, 32);
  assert.throws(() => makePskFile(psk, 'flimcd', false), /exists/);
  chmodSync(psk, 0o644);
  assert.throws(() => readPskFile(psk), /readable by others.*chmod 600/);
  writeFileSync(psk, 'no colon here\n', { mode: 0o600 });
  chmodSync(psk, 0o600);
  assert.throws(() => readPskFile(psk), /IDENTITY:HEXKEY/);
  writeFileSync(psk, 'id:abcd\n');
  assert.throws(() => readPskFile(psk), /at least 16/);
  const notPem = join(dir, 'x.crt');
  writeFileSync(notPem, 'hello');
  assert.throws(() => securityFromFlags({ tlsCa: notPem, tlsCert: notPem, tlsKey: psk }), /not a PEM file/);
});
