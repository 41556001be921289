/**
 * A plan written by `flimcd plan --out FILE`, read back by the source agent
 * (`flimcd source --plan FILE`) so its status shows the plan's prediction for
 * the algorithm it runs as the ETA.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import type { Algorithm } from '../policy/algorithm.ts';
import type { Prediction } from '../migrate/prediction.ts';

export { predictedStatus, type Prediction } from '../migrate/prediction.ts';

const PlanFile = z.object({
  image_bytes: z.number().positive(),
  rows: z.array(z.object({ algorithm: z.string(), time_total_s: z.number().nonnegative(), wire_bytes: z.number().nonnegative() })).min(1),
});

/** The plan's prediction for `algorithm`; a clear error when the file is not a plan or lacks it. */
export function readPrediction(path: string, algorithm: Algorithm, imageBytes: number): Prediction {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`--plan: cannot read ${path} as JSON: ${(e as Error).message}`);
  }
  const p = PlanFile.safeParse(raw);
  if (!p.success) throw new UsageError(`--plan: ${path} is not a plan from \`flimcd plan --out\` (${p.error.issues[0]?.path.join('.')}: ${p.error.issues[0]?.message})`);
  if (p.data.image_bytes !== imageBytes) throw new UsageError(`--plan: ${path} was made for a ${p.data.image_bytes}-byte image, this one has ${imageBytes}`);
  const row = p.data.rows.find((r) => r.algorithm === algorithm);
  if (!row) throw new UsageError(`--plan: ${path} has no prediction for ${algorithm} (it has ${p.data.rows.map((r) => r.algorithm).join(', ')})`);
  return { algorithm, time_total_s: row.time_total_s, wire_bytes: row.wire_bytes };
}
