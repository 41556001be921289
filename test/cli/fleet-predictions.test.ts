// `predict: simulator`: the planner simulates each VM's migration on its scanned image, so a VM whose
// allocated blocks are zeros is predicted short although its allocated size is the larger; the size
// model orders the two the other way round.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { Prng } from '../../src/workload/prng.ts';
import { log } from '../../src/util/log.ts';
import { parseFleetPlan } from '../../src/fleet/plan.ts';
import { orderVms, predict } from '../../src/fleet/order.ts';
import { simulatedPredictions } from '../../src/cli/fleet-predictions.ts';

test('the simulator predicts a VM of allocated zeros short, the size model long; the order follows the predictor', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const zeros = join(dir, 'zeros.img');
  const random = join(dir, 'random.img');
  writeFileSync(zeros, Buffer.alloc(8 << 20)); // written: allocated, every block zero
  const data = Buffer.alloc(4 << 20);
  new Prng(5).fill(data); // 4 MiB random, then a 4 MiB hole
  writeFileSync(random, data);
  truncateSync(random, 8 << 20);
  const plan = parseFleetPlan(`concurrency: 2\nwan_cap: 20Mbit\npredict: simulator\nwan_rtt: 20ms\nvms:\n  - name: zeros\n    image: ${zeros}\n    target: tcp:127.0.0.1:1\n  - name: random\n    image: ${random}\n    target: tcp:127.0.0.1:2\n`, 'p.yaml');
  const simulated = await simulatedPredictions(plan, log.child({ test: 'fleet-predictions' }));
  assert.equal(simulated.size, 2);
  assert.ok(simulated.get('zeros')! < simulated.get('random')!, `zeros ${simulated.get('zeros')} s, random ${simulated.get('random')} s`);
  // 4 MiB of random data at half of 20 Mbit/s: about 3.4 s; the simulator's own overheads on top, not orders of magnitude.
  assert.ok(simulated.get('random')! > 3 && simulated.get('random')! < 10, `random ${simulated.get('random')} s`);
  const sizes = [{ vm: plan.vms[0]!, dataBytes: 8 << 20 }, { vm: plan.vms[1]!, dataBytes: 4 << 20 }];
  assert.deepEqual(orderVms(predict(sizes, plan.wanCapBps, plan.concurrency), 'shortest-first').map((p) => p.vm.name), ['random', 'zeros']);
  assert.deepEqual(orderVms(predict(sizes, plan.wanCapBps, plan.concurrency, simulated), 'shortest-first').map((p) => p.vm.name), ['zeros', 'random']);
});
