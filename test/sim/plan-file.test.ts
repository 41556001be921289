// A plan's prediction carried into the source agent's status as its ETA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPrediction, predictedStatus } from '../../src/sim/plan-file.ts';
import { SourceAgent } from '../../src/migrate/source-agent.ts';
import { UsageError } from '../../src/errors.ts';
import { log } from '../../src/util/log.ts';
import { tempDir } from '../helpers/tmp.ts';

const plan = { image_bytes: 4 * 2 ** 20, recommended: 'flimcd', rows: [{ algorithm: 'precopy', time_total_s: 30, wire_bytes: 9e6 }, { algorithm: 'flimcd', time_total_s: 12.5, wire_bytes: 4e6 }] };

test('readPrediction picks the running algorithm; wrong files get clear errors', (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'plan.json');
  writeFileSync(f, JSON.stringify(plan));
  assert.deepEqual(readPrediction(f, 'flimcd', 4 * 2 ** 20), { algorithm: 'flimcd', time_total_s: 12.5, wire_bytes: 4e6 });
  assert.throws(() => readPrediction(f, 'hybrid', 4 * 2 ** 20), (e) => e instanceof UsageError && /no prediction for hybrid/.test(e.message));
  assert.throws(() => readPrediction(f, 'flimcd', 8 * 2 ** 20), /made for a 4194304-byte image/);
  writeFileSync(f, '{"rows": 3}');
  assert.throws(() => readPrediction(f, 'flimcd', 4 * 2 ** 20), /not a plan/);
  writeFileSync(f, 'not json');
  assert.throws(() => readPrediction(f, 'flimcd', 4 * 2 ** 20), /cannot read .* as JSON/);
});

test('predictedStatus counts the ETA down from the prediction', () => {
  const p = { algorithm: 'flimcd' as const, time_total_s: 12.5, wire_bytes: 4e6 };
  assert.equal(predictedStatus(p, 0, 'starting').etaSeconds, 12.5);
  assert.equal(predictedStatus(p, 10_000, 'precopy').etaSeconds, 2.5);
  assert.equal(predictedStatus(p, 20_000, 'postcopy').etaSeconds, 0);
  assert.equal(predictedStatus(p, 5_000, 'done').etaSeconds, 0);
  assert.equal(predictedStatus(p, 5_000, 'failed').etaSeconds, null);
});

test('the source agent\'s status shows the prediction and its ETA', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  writeFileSync(img, Buffer.alloc(4 * 2 ** 20));
  const agent = await SourceAgent.start({
    image: img, security: { mode: 'insecure' }, nbd: { kind: 'unix', path: join(dir, 'nbd.sock') }, to: { kind: 'tcp', host: '127.0.0.1', port: 9 }, algorithm: 'flimcd', blockSize: 65536, log,
    prediction: { algorithm: 'flimcd', time_total_s: 12.5, wire_bytes: 4e6 },
  });
  try {
    const st = agent.status();
    assert.equal(st.etaSeconds, 12.5);
    assert.deepEqual(st.prediction, { algorithm: 'flimcd', time_total_s: 12.5, wire_bytes: 4e6 });
  } finally {
    await agent.close();
  }
});
