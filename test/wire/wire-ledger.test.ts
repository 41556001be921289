import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireLedger } from '../../src/wire/wire-ledger.ts';
import { MsgType } from '../../src/wire/messages.ts';

test('blocks count by form as queued; those taken back move to purged', () => {
  const l = new WireLedger();
  l.queued({ kind: 'data', block: 1, rawBytes: 65536, wireBytes: 20_000, compressed: true });
  l.queued({ kind: 'data', block: 2, rawBytes: 65536, wireBytes: 65536, compressed: false });
  l.queued({ kind: 'zero', first: 10, count: 7 });
  l.queued({ kind: 'ref', block: 3 });
  l.queued({ kind: 'offer', batch: 1 });
  assert.deepEqual(l.blocks, { dataBlocks: 2, compressedBlocks: 1, dataRawBytes: 131072, dataWireBytes: 85_536, zeroBlocks: 7, refBlocks: 1 });
  l.takenBack({ kind: 'data', block: 1, rawBytes: 65536, wireBytes: 20_000, compressed: true });
  l.takenBack({ kind: 'zero', first: 10, count: 7 });
  l.takenBack({ kind: 'offer', batch: 1 });
  assert.deepEqual(l.blocks, { dataBlocks: 1, compressedBlocks: 0, dataRawBytes: 65536, dataWireBytes: 65536, zeroBlocks: 0, refBlocks: 1 });
  assert.deepEqual(l.purged, { dataBlocks: 1, compressedBlocks: 1, dataRawBytes: 65536, dataWireBytes: 20_000, zeroBlocks: 7, refBlocks: 0 });
});

test('link bytes by what they carried, both ways; control is the rest, partial frames included', () => {
  const l = new WireLedger();
  l.frameSent(MsgType.DATA, 1000);
  l.frameSent(MsgType.ZERO, 30);
  l.frameSent(MsgType.OFFER, 200);
  l.frameSent(MsgType.PING, 24);
  l.bytesArrived(120 + 16 + 10);
  l.frameReceived(MsgType.HAVE, 120);
  l.frameReceived(MsgType.ACK, 16);
  // 10 bytes of a frame not yet complete.
  assert.equal(l.wireBytes, 1254 + 146);
  assert.deepEqual(l.breakdown(), { data: 1000, reference: 320, zero: 30, control: 24 + 16 + 10 });
  assert.equal(l.sentByType.DATA, 1000);
  assert.equal(l.receivedByType.HAVE, 120);
  assert.equal(l.framesSent, 4);
  assert.equal(l.framesReceived, 2);
});
