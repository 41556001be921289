/**
 * The agents' link seam: connect to / listen for the peer agent with TLS and
 * mutual authentication (certificates from one CA, or a pre-shared key), or in
 * plaintext only when explicitly asked for (`insecure`).
 *
 * Choices:
 * - TLS 1.3 only, for both modes. Node 20's OpenSSL 3 does external TLS 1.3
 *   PSKs (psk_dhe_ke, so sessions still get forward secrecy) when the cipher's
 *   hash is SHA-256, hence the PSK cipher list below.
 * - Certificates: both sides present one and verify the other's against the
 *   given CA (requestCert + rejectUnauthorized). The peer's name is pinned to
 *   its role (`flimcd-target` / `flimcd-source`, the CNs `flimcd certs`
 *   writes) rather than to the dialled host, which behind NAT or a WAN proxy
 *   is often not the target's own name; `peerName` overrides it for an
 *   existing PKI.
 * - A refused peer is logged with its address and reason; the listener keeps
 *   accepting (one bad peer must not take the target agent down).
 * - The listener reads each connection's first bytes: a plaintext HELLO to a
 *   TLS target gets a plaintext ERROR frame saying TLS is required, a TLS
 *   ClientHello to an --insecure target a TLS protocol_version alert. Either
 *   way the source stops at once with a reason instead of retrying a silent close.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { formatAddress, type Address } from '../util/address.ts';
import { AuthError, IoError, WrongPeerError, systemErrorCode, type TargetRefusalReason } from '../errors.ts';
import { describeWrongPeer, PEER_PREFIX_BYTES } from './peer-protocol.ts';
import { writeMessage } from './handshake.ts';
import { MsgType } from './messages.ts';

export type LinkSecurity =
  | { mode: 'cert'; ca: Buffer; cert: Buffer; key: Buffer; /** Expected CN/SAN of the peer's certificate (default: its role name). */ peerName?: string }
  | { mode: 'psk'; identity: string; key: Buffer }
  | { mode: 'insecure' };

export type LinkRole = 'source' | 'target';

/** The certificate name each role carries (what `flimcd certs` writes). */
export const ROLE_CERT_NAME: Record<LinkRole, string> = { source: 'flimcd-source', target: 'flimcd-target' };

const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';
/** Most simultaneous connections a link listener holds (one migration needs one; bounds file descriptors under a connection flood). */
export const MAX_LINK_CONNECTIONS = 256;
/** A TLS handshake that has not finished by then is dropped (slow-loris bound). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Socket error codes that say nothing about the peer's credentials. */
const NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTCONN']);

/** A short description for logs and reports. */
export function describeSecurity(s: LinkSecurity): string {
  return s.mode === 'cert' ? 'tls-cert' : s.mode === 'psk' ? `tls-psk(${s.identity})` : 'insecure';
}

/** A fresh random pre-shared key (for the demo and tests). */
export function ephemeralPsk(identity = 'flimcd'): LinkSecurity {
  return { mode: 'psk', identity, key: randomBytes(32) };
}

/**
 * Connects to the peer agent once (no retry) and resolves when the link is
 * usable: TCP connected, and for TLS the handshake done and the peer verified.
 * TCP-level failures reject with IoError (worth retrying); a peer that fails
 * authentication rejects with AuthError (not worth retrying).
 */
export function connectLink(addr: Address, security: LinkSecurity, o: { timeoutMs?: number } = {}): Promise<net.Socket> {
  const timeoutMs = o.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  return new Promise<net.Socket>((resolve, reject) => {
    const where = addr.kind === 'unix' ? { path: addr.path } : { port: addr.port, host: addr.host };
    let tcpUp = false;
    let s: net.Socket;
    if (security.mode === 'insecure') {
      s = net.connect(where);
      s.once('connect', () => done());
    } else {
      const opts: tls.ConnectionOptions = { ...where, minVersion: 'TLSv1.3', ...clientTlsOptions(security) };
      const t = tls.connect(opts);
      s = t;
      t.once('connect', () => (tcpUp = true));
      // In TLS 1.3 the client finishes its handshake before the server has
      // checked the client's certificate; the server's session ticket, sent
      // after that check, is the sign we were accepted (a refusal arrives as
      // an alert instead), so wait for it and fail here with the real reason.
      t.once('secureConnect', () => (accepted = true));
      // Resolve outside OpenSSL's callback: a write made inside it would be lost.
      t.once('session', () => setImmediate(done));
    }
    let accepted = false;
    const timer = setTimeout(() => {
      // Accepted by a server that sends no tickets: the link works all the same.
      if (accepted) done();
      else fail(new Error(`no ${security.mode === 'insecure' ? 'connection' : 'TLS handshake'} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (e: Error) => fail(e);
    s.once('error', onError);
    // A TLS server that rejects our credentials may just close the socket.
    const onClose = () => fail(new Error('peer closed the connection during the TLS handshake'));
    s.once('close', onClose);
    let settled = false;
    function done(): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.off('error', onError);
      s.off('close', onClose);
      s.setNoDelay(true);
      resolve(s);
    }
    function fail(e: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.off('close', onClose);
      s.on('error', () => {}); // a late second error of a dead socket must not go uncaught
      s.destroy();
      const code = systemErrorCode(e);
      // A verdict needs the peer to have spoken TLS: an alert or a certificate error, or a close after
      // the handshake got through our side. A close or reset before any TLS reply is the network (or a
      // proxy whose far side is down, as during a reconnect) and is worth retrying.
      const networkOnly = !accepted && (code === undefined || NETWORK_ERRORS.has(code));
      if (security.mode !== 'insecure' && tcpUp && code !== undefined && NOT_TLS_REPLIES.has(code)) {
        // The peer answered the ClientHello with something that is not TLS: find out what, for the operator.
        void probePlaintext(where, Math.min(timeoutMs, 3000)).then((head) => {
          const { speaks, words } = describeWrongPeer(head);
          reject(new WrongPeerError(`${formatAddress(addr)} is ${words} (it answered the TLS handshake with ${speaks === 'unknown' ? 'other bytes' : speaks})`, speaks));
        });
      } else if (security.mode !== 'insecure' && tcpUp && !networkOnly) {
        reject(new AuthError(`TLS link to ${formatAddress(addr)} failed: ${e.message.trim()} (both agents need the same --psk-file, or certificates from one CA, or both --insecure)`, { cause: e }));
      } else {
        reject(new IoError(`cannot reach ${formatAddress(addr)}: ${code ?? e.message}`, { cause: e }));
      }
    }
  });
}

/** OpenSSL's errors for a reply that is not a TLS record at all (an NBD greeting, an HTTP response). */
const NOT_TLS_REPLIES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG']);

/**
 * Connects once in plaintext and returns the first bytes the peer sends, to
 * name what it speaks. An NBD server greets at once; an HTTP server answers
 * the 16 zero bytes written here (not a request) with an error response.
 */
function probePlaintext(where: net.NetConnectOpts, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    const s = net.connect(where);
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(head);
    };
    const timer = setTimeout(finish, timeoutMs);
    s.on('error', finish);
    s.on('close', finish);
    s.once('connect', () => s.write(Buffer.alloc(16)));
    s.on('data', (d: Buffer) => {
      head = Buffer.concat([head, d]).subarray(0, PEER_PREFIX_BYTES);
      if (head.length >= PEER_PREFIX_BYTES) finish();
    });
  });
}

/**
 * A listener for the peer agent. `onSocket` gets only authenticated links
 * (or every connection when insecure). Refusals are logged, never thrown:
 * one line per refused connection, with the peer's address and the reason in
 * words.
 */
export function createLinkServer(security: LinkSecurity, onSocket: (s: net.Socket) => void, log: Logger): net.Server {
  if (security.mode === 'insecure') log.warn('link is plaintext and unauthenticated (--insecure)');
  const refusals = new RefusalLog(log);
  const tlsServer = security.mode === 'insecure' ? undefined : createTlsServer(security, (s) => {
    refusals.accepted(s);
    onSocket(s);
  }, refusals);
  // One front listener looks at each connection's first byte, so a peer with the other setting
  // (plaintext against TLS, TLS against --insecure) is told at once instead of seeing a silent close.
  const front = net.createServer({ noDelay: true }, (raw) => {
    const here = front.address();
    refusals.track(raw, raw.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort}` : `a local process on unix:${typeof here === 'string' ? here : '?'}`);
    const timer = setTimeout(() => raw.destroy(), TLS_HANDSHAKE_TIMEOUT_MS);
    raw.on('error', () => {});
    let inTls = false;
    raw.once('close', () => {
      clearTimeout(timer);
      // A TLS peer gone before authentication without an error from the TLS server still gets its line.
      // Deferred: that error, with its reason, comes after the close.
      if (inTls) setTimeout(() => refusals.refuse(raw, 'it closed the connection during the TLS handshake', 'TLS authentication failed'), 20);
    });
    raw.once('readable', () => {
      clearTimeout(timer);
      // Everything buffered so far, put back whole: the consumer sees the same first chunk.
      const first = raw.read() as Buffer | null;
      if (!first || first.length === 0) {
        raw.destroy();
        return;
      }
      raw.unshift(first);
      const speaksTls = first[0] === TLS_HANDSHAKE_RECORD;
      if (tlsServer && speaksTls) {
        // Documented injection: the TLS server takes the socket, the unshifted byte included.
        inTls = true;
        tlsServer.emit('connection', raw);
      } else if (!tlsServer && !speaksTls) {
        raw.setNoDelay(true);
        refusals.accepted(raw);
        onSocket(raw);
      } else if (tlsServer) {
        refusals.refuse(raw, 'not TLS: it speaks plaintext, but this target requires TLS (the source runs --insecure?)', 'plaintext');
        writeMessage(raw, { type: MsgType.ERROR, code: 'TLS_REQUIRED' satisfies TargetRefusalReason, message: 'this target agent requires TLS: give the source the same --psk-file or --tls-* credentials as the target' });
        // Destroy once flushed: a half-closed socket nobody reads would never see the peer's end.
        raw.end(() => raw.destroy());
      } else {
        refusals.refuse(raw, 'the source speaks TLS, but this target runs --insecure', 'TLS to a plaintext target');
        // A TLS alert the client can read: fatal, protocol_version.
        raw.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]), () => raw.destroy());
      }
    });
  });
  // Unauthenticated connections cost a handshake each: bound how many are open at once.
  front.maxConnections = MAX_LINK_CONNECTIONS;
  return front;
}

/** The first byte of a TLS ClientHello (a handshake record); a flimcd frame never starts with it. */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * One listener's record of its connections: who each peer is (taken when it
 * connects: a destroyed socket forgets its address) and whether it was
 * accepted or its refusal logged, so that each refused peer gets one line.
 */
class RefusalLog {
  private readonly conns = new WeakMap<net.Socket, { peer: string; settled: boolean }>();
  constructor(readonly log: Logger) {}

  track(raw: net.Socket, peer: string): void {
    this.conns.set(raw, { peer, settled: false });
  }

  accepted(s: net.Socket): void {
    const c = this.conns.get(rawSocket(s));
    if (c) c.settled = true;
  }

  /** Logs the refusal of the connection under `s` (raw or TLS), unless it was accepted or already refused. */
  refuse(s: net.Socket, reason: string, what: string, extra: Record<string, unknown> = {}): void {
    const c = this.conns.get(rawSocket(s));
    if (c?.settled) return;
    if (c) c.settled = true;
    this.log.warn({ peer: c?.peer ?? 'unknown', reason, ...extra }, `refused a link connection: ${what}`);
  }
}

function createTlsServer(security: Exclude<LinkSecurity, { mode: 'insecure' }>, onSocket: (s: net.Socket) => void, refusals: RefusalLog): tls.Server {
  const server = tls.createServer({ minVersion: 'TLSv1.3', handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, ...serverTlsOptions(security, refusals) }, (s) => {
    s.once('close', () => rawOf(s)?.destroy());
    if (security.mode === 'cert') {
      const expected = security.peerName ?? ROLE_CERT_NAME.source;
      const why = checkPeerName(s.getPeerCertificate(), expected);
      if (why) {
        refusals.refuse(s, peerNameRefusalReason(why, s.getPeerCertificate(), expected), 'peer certificate');
        s.destroy();
        return;
      }
    }
    s.setNoDelay(true);
    onSocket(s);
  });
  server.on('tlsClientError', (e: Error & { code?: string }, s: tls.TLSSocket) => {
    // A client certificate that failed verification: Node closes the socket itself and keeps the verdict here.
    const verdict = (s as tls.TLSSocket & { authorizationError?: string }).authorizationError;
    refusals.refuse(s, verdict ? certificateRefusalReason(String(verdict)) : tlsRefusalReason(security.mode, e), 'TLS authentication failed');
    // The TLS socket is gone; the TCP socket under it (which the front listener counts) must go too.
    rawOf(s)?.destroy();
  });
  return server;
}

/** Why a source's certificate failed verification (OpenSSL's verify code), in the operator's words. */
export function certificateRefusalReason(code: string): string {
  if (code === 'INVALID_PURPOSE') return 'wrong role: its certificate\'s extended key usage lacks clientAuth, so it cannot connect as a client (a server-only certificate, or a target certificate from an older `flimcd certs`, which LAN fetches need re-made)';
  if (/ISSUER|SELF_SIGNED|UNTRUSTED|SIGNATURE_FAILURE|CHAIN/.test(code)) return `wrong CA: its certificate is not signed by this target's --tls-ca (${code})`;
  if (/EXPIRED|NOT_YET_VALID/.test(code)) return `its certificate is outside its validity period (${code})`;
  return `its certificate was refused (${code})`;
}

/** Why OpenSSL (or the socket) ended a server-side handshake, in the operator's words. */
export function tlsRefusalReason(mode: 'cert' | 'psk', e: Error & { code?: string }): string {
  const code = e.code ?? systemErrorCode(e);
  switch (code) {
    case 'ERR_SSL_BINDER_DOES_NOT_VERIFY':
      return 'PSK mismatch: the source\'s key differs from this target\'s --psk-file (same identity, another key)';
    case 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM':
    case 'ERR_SSL_NO_SHARED_CIPHER':
      return mode === 'psk' ? 'no PSK offered: the source uses certificates (or another identity), this target a --psk-file' : 'no common cipher: the source uses a PSK, this target certificates';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
      return 'the peer offers a TLS version older than 1.3';
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return `no TLS handshake within ${TLS_HANDSHAKE_TIMEOUT_MS / 1000} s`;
    case 'ECONNRESET':
    case 'EPIPE':
      // The client gave up in the middle: in TLS 1.3 it checks the target's credentials on its side, then just closes.
      return mode === 'cert'
        ? 'wrong CA, as the source sees it: it broke off the TLS handshake, not accepting this target\'s certificate (another CA or --tls-peer-name, or a PSK source)'
        : 'the source broke off the TLS handshake (a PSK it does not share, or certificates)';
    default: {
      // OpenSSL's own text, without its error-stack prefix and source location.
      const m = /:SSL routines:[^:]*:([^:]+)/.exec(e.message);
      return `TLS handshake failed: ${m ? m[1] : e.message.trim()}${code ? ` (${code})` : ''}`;
    }
  }
}

/** The TCP socket an injected TLS server socket wraps (Node keeps it as `_parent`). */
function rawOf(s: tls.TLSSocket): net.Socket | undefined {
  const p = (s as unknown as { _parent?: unknown })._parent;
  return p instanceof net.Socket ? p : undefined;
}

/** The front listener's socket under `s` (itself when it is not TLS). */
function rawSocket(s: net.Socket): net.Socket {
  return s instanceof tls.TLSSocket ? rawOf(s) ?? s : s;
}

function clientTlsOptions(sec: Exclude<LinkSecurity, { mode: 'insecure' }>): tls.ConnectionOptions {
  if (sec.mode === 'psk') {
    return {
      ciphers: PSK_CIPHERS,
      pskCallback: () => ({ identity: sec.identity, psk: sec.key }),
      // No certificate in PSK mode: knowing the key is the server's proof.
      checkServerIdentity: () => undefined,
    };
  }
  const expected = sec.peerName ?? ROLE_CERT_NAME.target;
  return {
    ca: sec.ca, cert: sec.cert, key: sec.key, rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      const why = checkPeerName(cert, expected);
      return why ? new Error(why) : undefined;
    },
  };
}

function serverTlsOptions(sec: Exclude<LinkSecurity, { mode: 'insecure' }>, refusals: RefusalLog): tls.TlsOptions {
  if (sec.mode === 'psk') {
    return {
      ciphers: PSK_CIPHERS,
      pskCallback: (socket, identity) => {
        if (identity === sec.identity) return sec.key;
        refusals.refuse(socket, `PSK mismatch: unknown identity (this target's --psk-file has ${sec.identity})`, 'unknown PSK identity', { identity: identity.slice(0, 64) });
        return null;
      },
    };
  }
  return { ca: sec.ca, cert: sec.cert, key: sec.key, requestCert: true, rejectUnauthorized: true };
}

/**
 * The refusal line for a verified certificate with the wrong name: another
 * role's name is a wrong role (a target's certificate offered as a source, a
 * source's to a replica server), anything else a wrong peer name.
 */
function peerNameRefusalReason(why: string, cert: tls.PeerCertificate | undefined, expected: string): string {
  const role = (Object.keys(ROLE_CERT_NAME) as LinkRole[]).find((r) => ROLE_CERT_NAME[r] !== expected && checkPeerName(cert, ROLE_CERT_NAME[r]) === undefined);
  return role ? `wrong role: it presents a ${role} certificate (${ROLE_CERT_NAME[role]}), this listener accepts only ${expected}` : `wrong peer name: ${why}`;
}

/** Why the certificate does not name `expected` (CN or a DNS SAN), or undefined if it does. */
function checkPeerName(cert: tls.PeerCertificate | undefined, expected: string): string | undefined {
  if (!cert || !cert.subject) return 'peer presented no certificate';
  const names = new Set<string>();
  const cn = cert.subject.CN;
  for (const c of Array.isArray(cn) ? cn : [cn]) if (c) names.add(c);
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m) names.add(m[1]!.trim());
  }
  if (names.has(expected)) return undefined;
  return `peer certificate names ${[...names].join(', ') || 'nothing'}, expected ${expected}`;
}
