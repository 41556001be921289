/**
 * A fleet plan (`flimcd fleet run PLAN`): JSON, or the YAML subset of
 * src/fleet/yaml-subset.ts, validated with zod. Any mistake is one line naming
 * the file, the line (YAML) and the field.
 *
 *   concurrency: 3            # migrations at once (default 4)
 *   wan_cap: 100Mbit          # total WAN bandwidth, shared by weighted fair share
 *   order: auto               # auto | shortest-first | deadline | as-listed
 *   predict: size             # size | simulator: how "shortest" is predicted (src/fleet/order.ts)
 *   wan_rtt: 40ms             # the WAN's round trip, for the simulator's predictions (default 50ms)
 *   algorithm: flimcd         # every VM's algorithm (default flimcd)
 *   block_size: 64KiB
 *   vms:
 *     - name: web-1
 *       image: /var/lib/vms/web-1.img     # a file, or nbd://… / nbd+unix://…
 *       target: tcp:10.1.0.5:7000         # its target agent
 *       nbd: unix:/run/web-1.sock         # where the VM reaches its disk (default: in the run directory)
 *       priority: 2                       # weight in the fair share (default 1)
 *       deadline: 10m                     # finish within this long of the run's start
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import { parseAddress, type Address } from '../util/address.ts';
import { parseBitRate, parseBlockSize, parseDuration } from '../util/units.ts';
import { parseImageSpec, type ImageSpec } from '../image/image-spec.ts';
import { ALGORITHMS, type Algorithm } from '../policy/algorithm.ts';
import { parseYamlSubset } from './yaml-subset.ts';

export const ORDER_RULES = ['auto', 'shortest-first', 'deadline', 'as-listed'] as const;
export type OrderRule = (typeof ORDER_RULES)[number];
export const PREDICTORS = ['size', 'simulator'] as const;
export type Predictor = (typeof PREDICTORS)[number];

/** A unit-bearing value given as text ("100Mbit") in the file. */
const text = z.string().min(1);

const VmSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'letters, digits, . _ - (up to 63)'),
  image: text,
  format: z.enum(['raw', 'qcow2']).optional(),
  target: text,
  nbd: text.optional(),
  priority: z.number().positive().max(1000).optional(),
  deadline: text.optional(),
});

const PlanSchema = z.strictObject({
  concurrency: z.number().int().min(1).max(256).optional(),
  wan_cap: text,
  order: z.enum(ORDER_RULES).optional(),
  predict: z.enum(PREDICTORS).optional(),
  wan_rtt: text.optional(),
  algorithm: z.enum(ALGORITHMS as unknown as [string, ...string[]]).optional(),
  block_size: text.optional(),
  vms: z.array(VmSchema).min(1).max(10_000),
});

export interface FleetVm {
  name: string;
  image: ImageSpec;
  target: Address;
  nbd: Address | undefined;
  /** Weight in the WAN's fair share. */
  priority: number;
  /** Milliseconds from the run's start, if any. */
  deadlineMs: number | undefined;
  /** Its position in the file (ties keep it). */
  index: number;
}

export interface FleetPlan {
  concurrency: number;
  wanCapBps: number;
  order: OrderRule;
  /** How each VM's migration time is predicted for the order. */
  predict: Predictor;
  /** The WAN's round trip (ms), for the simulator's predictions. */
  wanRttMs: number;
  algorithm: Algorithm;
  blockSize: number;
  vms: FleetVm[];
}

/** Reads and checks a plan file; every problem is a UsageError (exit 2) naming the file, line and field. */
export function readFleetPlan(path: string): FleetPlan {
  let body: string;
  try {
    body = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`fleet plan ${path}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseFleetPlan(body, path);
}

export function parseFleetPlan(body: string, name: string): FleetPlan {
  const what = `fleet plan ${name}`;
  let raw: unknown;
  let lineOf: (path: PropertyKey[]) => number | undefined = () => undefined;
  if (/^\s*[{[]/.test(body)) {
    try {
      raw = JSON.parse(body);
    } catch (e) {
      const m = /position (\d+)/.exec((e as Error).message);
      const line = m ? body.slice(0, Number(m[1])).split('\n').length : undefined;
      throw new UsageError(`${what}: ${line ? `line ${line}: ` : ''}not valid JSON: ${(e as Error).message}`);
    }
  } else {
    const parsed = parseYamlSubset(body, what);
    raw = parsed.value;
    lineOf = (p) => {
      for (let n = p.length; n >= 1; n--) {
        const l = parsed.lines.get(p.slice(0, n).map(String).join('.'));
        if (l !== undefined) return l;
      }
      return undefined;
    };
  }
  const r = PlanSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    // An unknown key is on its own line: name that one.
    const path = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
    const line = lineOf(path);
    throw new UsageError(`${what}: ${line !== undefined ? `line ${line}: ` : ''}${fieldName(issue.path) || 'the plan'}: ${issue.message}`);
  }
  const p = r.data;
  const at = (path: PropertyKey[]) => {
    const line = lineOf(path);
    return `${what}: ${line !== undefined ? `line ${line}: ` : ''}${fieldName(path)}`;
  };
  const names = new Set<string>();
  const vms = p.vms.map((v, i): FleetVm => {
    if (names.has(v.name)) throw new UsageError(`${at(['vms', i, 'name'])}: "${v.name}" names two VMs`);
    names.add(v.name);
    return {
      name: v.name,
      image: parseImageSpec(v.image, v.format ?? 'raw', at(['vms', i, 'image']), v.format !== undefined),
      target: parseAddress(v.target, at(['vms', i, 'target'])),
      nbd: v.nbd === undefined ? undefined : parseAddress(v.nbd, at(['vms', i, 'nbd'])),
      priority: v.priority ?? 1,
      deadlineMs: v.deadline === undefined ? undefined : parseDuration(v.deadline, at(['vms', i, 'deadline'])),
      index: i,
    };
  });
  return {
    concurrency: p.concurrency ?? 4,
    wanCapBps: parseBitRate(p.wan_cap, at(['wan_cap'])),
    order: p.order ?? 'auto',
    predict: p.predict ?? 'size',
    wanRttMs: p.wan_rtt === undefined ? 50 : parseDuration(p.wan_rtt, at(['wan_rtt'])),
    algorithm: (p.algorithm ?? 'flimcd') as Algorithm,
    blockSize: p.block_size === undefined ? 64 * 1024 : parseBlockSize(p.block_size, at(['block_size'])),
    vms,
  };
}

/** vms[2].target */
function fieldName(path: PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('');
}
