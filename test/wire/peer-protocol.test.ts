import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canBeFlimcdFrame, describeWrongPeer, recognisePeer } from '../../src/wire/peer-protocol.ts';
import { encodeFrame } from '../../src/wire/frame.ts';

test('first bytes of another protocol are named: an NBD greeting, an HTTP response, a TLS record', () => {
  assert.equal(recognisePeer(Buffer.from('NBDMAGIC\x00\x00\x42\x02\x81\x86\x12\x53')), 'NBD');
  assert.equal(recognisePeer(Buffer.from('HTTP/1.1 400 Bad Request\r\n')), 'HTTP');
  assert.equal(recognisePeer(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])), 'TLS');
  assert.equal(recognisePeer(Buffer.from('SSH-2.0-OpenSSH')), undefined);
  assert.equal(describeWrongPeer(Buffer.from('NBDMAGIC')).words, 'not a flimcd agent: it speaks NBD');
  assert.match(describeWrongPeer(Buffer.from('SSH-2.0-')).words, /not a flimcd agent: its first reply begins with bytes 53 53 48/);
});

test('a flimcd frame always can be one; the other protocols never', () => {
  const [header] = encodeFrame(1, 0, 0, [Buffer.alloc(2 * 1024 * 1024)]);
  assert.equal(canBeFlimcdFrame(header!), true);
  for (const other of ['NBDMAGIC', 'HTTP/1.1', '\x16\x03\x01']) assert.equal(canBeFlimcdFrame(Buffer.from(other, 'latin1')), false, other);
});
