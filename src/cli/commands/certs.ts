import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FlimcdError, UsageError } from '../../errors.ts';
import { ROLE_CERT_NAME } from '../../wire/secure-link.ts';
import { formatPskFile } from '../security-options.ts';

interface CertsOptions {
  out?: string;
  psk?: string;
  identity: string;
  days: string;
  force?: boolean;
  json?: boolean;
}

const CERT_FILES = ['ca.crt', 'ca.key', 'source.crt', 'source.key', 'target.crt', 'target.key'];

/**
 * The openssl commands `flimcd certs --out DIR` runs (README lists them for
 * doing it by hand): an EC P-256 CA, then one certificate per role whose CN
 * and DNS SAN are the role name the agents pin, with the role's extended key
 * usage: source clientAuth; target serverAuth and clientAuth, because a target
 * is also the client of its siblings' replica servers for LAN fetches. A
 * source certificate cannot serve as a target (no serverAuth); a target
 * certificate offered as a source is refused by the name pin (flimcd-source).
 */
export function certificateCommands(dir: string, days: number): string[][] {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const cmds: string[][] = [
    ['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', String(days), '-subj', '/CN=flimcd-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ];
  for (const role of ['source', 'target'] as const) {
    const name = ROLE_CERT_NAME[role];
    cmds.push(['req', '-new', ...ec, '-keyout', join(dir, `${role}.key`), '-out', join(dir, `${role}.csr`), '-subj', `/CN=${name}`]);
    cmds.push(['x509', '-req', '-in', join(dir, `${role}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial',
      '-out', join(dir, `${role}.crt`), '-days', String(days), '-extfile', join(dir, `${role}.ext`)]);
  }
  return cmds;
}

/** Extended key usage per role (see certificateCommands). */
export const ROLE_EXTENDED_KEY_USAGE = { source: 'clientAuth', target: 'serverAuth,clientAuth' } as const;

function extFile(role: 'source' | 'target'): string {
  return `subjectAltName=DNS:${ROLE_CERT_NAME[role]}\nextendedKeyUsage=${ROLE_EXTENDED_KEY_USAGE[role]}\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n`;
}

export function makeCertificates(dir: string, days: number, force: boolean): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const clash = CERT_FILES.filter((f) => existsSync(join(dir, f)));
  if (clash.length && !force) throw new UsageError(`--out: ${dir} already holds ${clash.join(', ')}; pass --force to replace them`);
  for (const role of ['source', 'target'] as const) writeFileSync(join(dir, `${role}.ext`), extFile(role));
  try {
    for (const args of certificateCommands(dir, days)) {
      const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 60_000 });
      if (r.error) throw new FlimcdError(`cannot run openssl (${r.error.message}); install it or see README for the commands`, ErrorCode.OPENSSL);
      if (r.status !== 0) throw new FlimcdError(`openssl ${args[0]} failed: ${r.stderr.trim()}`, ErrorCode.OPENSSL);
    }
  } finally {
    for (const f of ['source.csr', 'target.csr', 'source.ext', 'target.ext', 'ca.srl']) rmSync(join(dir, f), { force: true });
  }
  for (const f of ['ca.key', 'source.key', 'target.key']) chmodSync(join(dir, f), 0o600);
  return CERT_FILES.map((f) => join(dir, f));
}

export function makePskFile(path: string, identity: string, force: boolean): void {
  if (!/^[^:\s]{1,128}$/.test(identity)) throw new UsageError(`--identity: "${identity}" must be 1-128 characters without ':' or spaces`);
  if (existsSync(path) && !force) throw new UsageError(`--psk: ${path} exists; pass --force to replace it`);
  // Written 0600 from the start: the key is never readable by others, not even briefly.
  rmSync(path, { force: true });
  writeFileSync(path, formatPskFile(identity, randomBytes(32)), { mode: 0o600, flag: 'wx' });
}

export function registerCerts(program: Command): void {
  program
    .command('certs')
    .description('Make link credentials: a CA with a source and a target certificate (--out DIR), or a pre-shared key file (--psk FILE).')
    .option('--out <dir>', 'write ca.crt, ca.key, source.crt, source.key, target.crt, target.key here (uses the openssl command)')
    .option('--psk <file>', 'write a pre-shared key file IDENTITY:HEXKEY (256-bit random key, mode 0600)')
    .option('--identity <name>', 'PSK identity', 'flimcd')
    .option('--days <n>', 'certificate validity in days', '825')
    .option('--force', 'replace existing files')
    .option('--json', 'print the written file names as JSON')
    .addHelpText('after', `
Examples:
  flimcd certs --out /etc/flimcd/pki
    then copy ca.crt + target.crt + target.key to the target host, ca.crt + source.crt + source.key to the source host:
    flimcd target ... --tls-ca ca.crt --tls-cert target.crt --tls-key target.key
    flimcd source ... --tls-ca ca.crt --tls-cert source.crt --tls-key source.key
  flimcd certs --psk /etc/flimcd/link.psk
    copy the file to both hosts (keep it mode 0600) and pass --psk-file /etc/flimcd/link.psk to both agents.

Keep ca.key offline: the agents only need ca.crt.`)
    .action((o: CertsOptions) => {
      if (!o.out === !o.psk) throw new UsageError('pass --out DIR (certificates) or --psk FILE (pre-shared key)');
      const days = Number(o.days);
      if (!Number.isInteger(days) || days < 1 || days > 36500) throw new UsageError(`--days: "${o.days}" is not a whole number of days between 1 and 36500`);
      const files = o.out ? makeCertificates(o.out, days, o.force === true) : (makePskFile(o.psk!, o.identity, o.force === true), [o.psk!]);
      if (o.json) process.stdout.write(JSON.stringify({ files }) + '\n');
      else process.stdout.write(`flimcd certs: wrote ${files.join(', ')}\n`);
    });
}
