import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError, systemErrorCode } from '../errors.ts';
import type { LinkSecurity } from '../wire/secure-link.ts';

/** The link credential flags every agent-starting command takes (the link itself: src/wire/secure-link.ts). */
export function addSecurityOptions(cmd: Command, peer: 'source' | 'target'): Command {
  return cmd
    .option('--tls-ca <file>', 'TLS: CA certificate (PEM) the peer\'s certificate must chain to')
    .option('--tls-cert <file>', 'TLS: this agent\'s certificate (PEM), signed by the CA')
    .option('--tls-key <file>', 'TLS: this agent\'s private key (PEM, mode 0600)')
    .option('--tls-peer-name <name>', `TLS: name the peer's certificate must carry (CN or DNS SAN; default flimcd-${peer})`)
    .option('--psk-file <file>', 'TLS with a pre-shared key: file with IDENTITY:HEXKEY (mode 0600; `flimcd certs --psk FILE`)')
    .option('--insecure', 'plaintext, unauthenticated link: only on a network you trust');
}

/** CLI credential options, shared by every command that starts an agent. */
export interface SecurityFlags {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsPeerName?: string;
  pskFile?: string;
  insecure?: boolean;
}

export const SECURITY_HELP = 'the link needs credentials: --tls-ca FILE --tls-cert FILE --tls-key FILE (make them with `flimcd certs --out DIR`), or --psk-file FILE (`flimcd certs --psk FILE`), or --insecure for a plaintext link on a trusted network';

/** Turns the CLI flags into a LinkSecurity; missing or mixed credentials are a UsageError. */
export function securityFromFlags(f: SecurityFlags): LinkSecurity {
  const tls = f.tlsCa !== undefined || f.tlsCert !== undefined || f.tlsKey !== undefined;
  const chosen = [tls, f.pskFile !== undefined, f.insecure === true].filter(Boolean).length;
  if (chosen === 0) throw new UsageError(SECURITY_HELP);
  if (chosen > 1) throw new UsageError('choose one of --tls-ca/--tls-cert/--tls-key, --psk-file and --insecure');
  if (f.insecure) return { mode: 'insecure' };
  if (f.pskFile !== undefined) return readPskFile(f.pskFile);
  const missing = (['tlsCa', 'tlsCert', 'tlsKey'] as const).filter((k) => f[k] === undefined);
  if (missing.length) throw new UsageError(`certificate mode needs ${missing.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(' and ')} too`);
  return { mode: 'cert', ca: readCredential(f.tlsCa!, '--tls-ca'), cert: readCredential(f.tlsCert!, '--tls-cert'), key: readCredential(f.tlsKey!, '--tls-key', true), peerName: f.tlsPeerName };
}

function readCredential(path: string, flag: string, secret = false): Buffer {
  let data: Buffer;
  try {
    if (secret) checkPrivate(path, flag);
    data = readFileSync(path);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${flag}: cannot read ${path} (${systemErrorCode(e) ?? (e as Error).message})`);
  }
  if (!data.includes('-----BEGIN ')) throw new UsageError(`${flag}: ${path} is not a PEM file`);
  return data;
}

function checkPrivate(path: string, flag: string): void {
  const mode = statSync(path).mode;
  if (mode & 0o077) throw new UsageError(`${flag}: ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
}

/**
 * Reads a PSK file in the `identity:hexkey` format of GnuTLS psktool (which
 * qemu-nbd and nbdkit also use); the first entry is taken.
 */
export function readPskFile(path: string): LinkSecurity {
  let text: string;
  try {
    checkPrivate(path, '--psk-file');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--psk-file: cannot read ${path} (${systemErrorCode(e) ?? (e as Error).message})`);
  }
  const line = text.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
  const m = line ? /^([^:]{1,128}):([0-9a-fA-F]+)$/.exec(line) : null;
  if (!m || m[2]!.length % 2 !== 0) throw new UsageError(`--psk-file: ${path} must hold a line IDENTITY:HEXKEY (as \`flimcd certs --psk\` writes)`);
  const key = Buffer.from(m[2]!, 'hex');
  if (key.length < 16) throw new UsageError(`--psk-file: the key in ${path} has ${key.length} bytes; at least 16 are needed`);
  return { mode: 'psk', identity: m[1]!, key };
}

/** The PSK file line for a key. */
export function formatPskFile(identity: string, key: Buffer): string {
  return `${identity}:${key.toString('hex')}\n`;
}
