// The shared JSON-over-HTTP server of the control endpoints: loopback only,
// routing, body limits, JSON errors, and handler errors mapped to refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { HttpError, JsonHttpServer, requireLoopback } from '../../src/control/http.ts';
import { isLoopbackHost, type Address } from '../../src/util/address.ts';
import { UsageError } from '../../src/errors.ts';

function raw(addr: Address, method: string, path: string, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: Record<string, unknown> }> {
  if (addr.kind !== 'tcp') throw new Error('tcp only');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: addr.host, port: addr.port, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('one loopback check: localhost, ::1, 127/8 (also IPv4-mapped); nothing else', () => {
  for (const h of ['localhost', 'LOCALHOST', '::1', '127.0.0.1', '127.255.3.4', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.0.0', '::ffff:10.0.0.1', 'example.com', '127.0.0.1.example.com']) assert.equal(isLoopbackHost(h), false, h);
  assert.throws(() => requireLoopback({ kind: 'tcp', host: '0.0.0.0', port: 1 }, '--control', 'it has no authentication'), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^--control: tcp:0\.0\.0\.0:1 is not a loopback address; it has no authentication/);
    return true;
  });
  requireLoopback({ kind: 'unix', path: '/x' }, '--control', 'x');
  requireLoopback({ kind: 'tcp', host: '::1', port: 1 }, '--control', 'x');
});

test('routes, body limit, JSON errors, and handler errors turned into refusals', async (t) => {
  const seen: unknown[] = [];
  const server = new JsonHttpServer({
    what: 'test endpoint',
    routes: { '/echo': ['POST'], '/fail': ['GET'], '/bad': ['GET'] },
    maxBodyBytes: 100,
    handle: ({ path, body }) => {
      if (path === '/fail') throw new Error('boom');
      if (path === '/bad') throw new RangeError('out of range');
      return { status: 201, json: { got: body } };
    },
    refusal: (e) => (e instanceof RangeError ? new HttpError(400, e.message, 'FLIMCD_ERR_CONTROL_BODY') : undefined),
    onError: (e) => seen.push(e),
  });
  const addr = await server.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  assert.ok(addr.kind === 'tcp' && addr.port > 0);
  assert.deepEqual(server.address, addr);

  const ok = await raw(addr, 'POST', '/echo/?q=1', '{"a":1}');
  assert.equal(ok.status, 201);
  assert.deepEqual(ok.json, { got: { a: 1 } });
  const nf = await raw(addr, 'GET', '/nope');
  assert.deepEqual(nf.json, { error: 'no such endpoint /nope (POST /echo, GET /fail, GET /bad)', code: 'FLIMCD_ERR_CONTROL_NOT_FOUND' });
  const wrong = await raw(addr, 'GET', '/echo');
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.allow, 'POST');
  const notJson = await raw(addr, 'POST', '/echo', '{nope');
  assert.deepEqual([notJson.status, notJson.json.code], [400, 'FLIMCD_ERR_CONTROL_BODY']);
  const big = await raw(addr, 'POST', '/echo', JSON.stringify({ x: 'y'.repeat(200) }));
  assert.equal(big.status, 413);
  assert.match(String(big.json.error), /over 100 bytes/);
  const bad = await raw(addr, 'GET', '/bad');
  assert.deepEqual([bad.status, bad.json.error], [400, 'out of range']);
  const fail = await raw(addr, 'GET', '/fail');
  assert.deepEqual([fail.status, fail.json.error, fail.json.code], [500, 'boom', 'FLIMCD_ERR_CONTROL_INTERNAL']);
  assert.equal(seen.length, 1, 'only the 500 is reported');
});
