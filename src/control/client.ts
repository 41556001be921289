/**
 * Client of an agent's control endpoint (server.ts): used by `flimcd status`,
 * `cutover`, `abort`, tests and scripts.
 */
import http from 'node:http';
import type { Address } from '../util/address.ts';
import { formatAddress, parseAddress } from '../util/address.ts';
import { ErrorCode, FlimcdError, isErrorCode } from '../errors.ts';

export const DEFAULT_CONTROL_TIMEOUT_MS = 5000;

/** The agent answered with a non-2xx status; `message` is the server's own error text. */
export class ControlResponseError extends FlimcdError {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
    code: ErrorCode = ErrorCode.CONTROL_REFUSED,
  ) {
    super(message, code);
  }
}

/** Nothing listens at the address, or the agent did not answer in time. */
export class ControlUnreachableError extends FlimcdError {
  constructor(message: string, readonly systemCode: string | undefined, options?: { cause?: unknown }) {
    super(message, ErrorCode.CONTROL_UNREACHABLE, options);
  }
}

export interface ControlRequestOptions {
  timeoutMs?: number;
}

const WHY: Record<string, string> = {
  ENOENT: 'no such socket',
  ECONNREFUSED: 'connection refused',
  EACCES: 'permission denied',
  ENOTSOCK: 'not a socket',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
};

/**
 * Sends one request; resolves with the parsed JSON answer, or the text for a
 * non-JSON answer (GET /metrics). Throws ControlUnreachableError when nobody
 * answers ("no flimcd agent is listening at unix:/x (ENOENT)") and
 * ControlResponseError with the server's message on a non-2xx status.
 */
export function controlRequest<R = unknown>(
  address: Address | string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  opts: ControlRequestOptions = {},
): Promise<R> {
  let addr: Address;
  try {
    addr = typeof address === 'string' ? parseAddress(address, 'control address') : address;
  } catch (e) {
    return Promise.reject(e);
  }
  const where = formatAddress(addr);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  return new Promise<R>((resolve, reject) => {
    const data = body === undefined ? '' : JSON.stringify(body);
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    };
    const req = http.request(
      {
        ...(addr.kind === 'unix' ? { socketPath: addr.path } : { host: addr.host, port: addr.port }),
        method,
        path,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), accept: 'application/json, text/plain' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('error', (e) => fail(new ControlUnreachableError(`control ${method} ${path} at ${where}: answer cut short (${e.message})`, undefined, { cause: e })));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const status = res.statusCode ?? 500;
          const isJson = /json/i.test(res.headers['content-type'] ?? '');
          let value: unknown = text;
          if (isJson) {
            try {
              value = JSON.parse(text);
            } catch {
              return reject(new FlimcdError(`control ${method} ${path} at ${where}: answer is not valid JSON: ${text.slice(0, 200)}`, ErrorCode.CONTROL));
            }
          }
          if (status < 200 || status >= 300) {
            const v = value as { error?: unknown; code?: unknown } | string;
            const msg = typeof v === 'object' && v && typeof v.error === 'string' ? v.error : `${status} ${String(text).trim().slice(0, 200) || res.statusMessage}`;
            const code = typeof v === 'object' && v && isErrorCode(v.code) ? v.code : undefined;
            return reject(new ControlResponseError(msg, status, value, code));
          }
          resolve(value as R);
        });
      },
    );
    const timer = setTimeout(() => {
      fail(new ControlUnreachableError(`the agent at ${where} did not answer ${method} ${path} within ${timeoutMs} ms`, 'ETIMEDOUT'));
      req.destroy();
    }, timeoutMs);
    let connected = false;
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code;
      const hint = code && WHY[code] ? `${code}: ${WHY[code]}` : (code ?? e.message);
      fail(
        connected
          ? new ControlUnreachableError(`the agent at ${where} dropped ${method} ${path} (${hint})`, code, { cause: e })
          : new ControlUnreachableError(`no flimcd agent is listening at ${where} (${hint})`, code, { cause: e }),
      );
    });
    req.end(data);
  });
}
