import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, MsgType, DataReason, MAX_OFFER_BLOCKS } from '../../src/wire/messages.ts';
import { ProtocolError } from '../../src/errors.ts';

const roundTrip = (m: Parameters<typeof encodeMessage>[0]) => decodeMessage(m.type, Buffer.concat(encodeMessage(m)));

test('OFFER, HAVE, REF and compressed DATA round-trip', () => {
  const ids = Buffer.alloc(16 * 5, 7);
  const offer = roundTrip({ type: MsgType.OFFER, batch: 9, blocks: Uint32Array.from([1, 5, 4000000, 3, 4294967295]), ids });
  assert.equal(offer.type, MsgType.OFFER);
  if (offer.type === MsgType.OFFER) {
    assert.deepEqual([...offer.blocks], [1, 5, 4000000, 3, 4294967295], 'any order, any u32');
    assert.ok(offer.ids.equals(ids));
    assert.equal(offer.batch, 9);
  }
  const have = roundTrip({ type: MsgType.HAVE, batch: 9, count: 3, have: Uint8Array.from([0b101]) });
  assert.deepEqual(have, { type: MsgType.HAVE, batch: 9, count: 3, have: Uint8Array.from([0b101]) });
  const id = Buffer.alloc(32, 0xab);
  const ref = roundTrip({ type: MsgType.REF, block: 77, reason: DataReason.DIRTY, id });
  assert.equal(ref.type === MsgType.REF && ref.id.equals(id) && ref.block === 77 && ref.reason === DataReason.DIRTY, true);
  const data = roundTrip({ type: MsgType.DATA, block: 3, reason: DataReason.PUSH, data: Buffer.from('xyz'), compressed: true });
  assert.equal(data.type === MsgType.DATA && data.compressed === true && data.reason === DataReason.PUSH, true);
  const plain = roundTrip({ type: MsgType.DATA, block: 3, reason: DataReason.BULK, data: Buffer.from('xyz') });
  assert.equal(plain.type === MsgType.DATA && plain.compressed, undefined);
});

test('malformed OFFER, HAVE and REF payloads are protocol errors', () => {
  const bad = (type: number, payload: Buffer, _why?: string) => assert.throws(() => decodeMessage(type, payload), ProtocolError);
  const h = (batch: number, count: number) => { const b = Buffer.alloc(8); b.writeUInt32BE(batch); b.writeUInt32BE(count, 4); return b; };
  bad(MsgType.OFFER, Buffer.alloc(3));
  bad(MsgType.OFFER, h(1, 0));
  bad(MsgType.OFFER, h(1, MAX_OFFER_BLOCKS + 1));
  bad(MsgType.OFFER, Buffer.concat([h(1, 2), Buffer.alloc(2 + 16 * 2 - 1)]));
  bad(MsgType.OFFER, Buffer.concat([h(1, 2), Buffer.alloc(2 + 16 * 2 + 1)]));
  bad(MsgType.OFFER, Buffer.concat([h(1, 1), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Buffer.alloc(16)]), 'varint too long');
  bad(MsgType.OFFER, Buffer.concat([h(1, 1), Buffer.from([0x80])]), 'varint truncated');
  bad(MsgType.OFFER, Buffer.concat([h(1, 1), Buffer.from([0x01]), Buffer.alloc(16)]), 'negative block');
  bad(MsgType.HAVE, Buffer.concat([h(1, 9), Buffer.alloc(1)]));
  bad(MsgType.HAVE, h(1, 0));
  bad(MsgType.REF, Buffer.alloc(5 + 31));
  const r = Buffer.alloc(37); r[4] = 99;
  bad(MsgType.REF, r);
  const d = Buffer.alloc(6); d[4] = 0x80 | 42;
  bad(MsgType.DATA, d);
});
