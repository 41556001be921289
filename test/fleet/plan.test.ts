// The fleet plan: the YAML subset and JSON read to the same plan, and every
// mistake is one line naming the line and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFleetPlan } from '../../src/fleet/plan.ts';
import { parseYamlSubset } from '../../src/fleet/yaml-subset.ts';
import { UsageError } from '../../src/errors.ts';

const YAML = `# evacuate rack 4
concurrency: 2
wan_cap: 100Mbit   # shared
order: auto
vms:
  - name: web-1
    image: /vms/web-1.img
    target: tcp:10.0.0.5:7000
    priority: 2
  - name: "db-1"
    image: nbd+unix:///db?socket=/run/db.sock
    target: tcp:10.0.0.6:7000
    deadline: 10m
`;

test('a YAML-subset plan and its JSON twin read to the same plan', () => {
  const y = parseFleetPlan(YAML, 'p.yaml');
  const j = parseFleetPlan(JSON.stringify({
    concurrency: 2, wan_cap: '100Mbit', order: 'auto',
    vms: [{ name: 'web-1', image: '/vms/web-1.img', target: 'tcp:10.0.0.5:7000', priority: 2 }, { name: 'db-1', image: 'nbd+unix:///db?socket=/run/db.sock', target: 'tcp:10.0.0.6:7000', deadline: '10m' }],
  }), 'p.json');
  assert.deepEqual(y, j);
  assert.equal(y.wanCapBps, 100e6);
  assert.equal(y.concurrency, 2);
  assert.equal(y.vms[0]!.priority, 2);
  assert.equal(y.vms[1]!.deadlineMs, 600_000);
  assert.equal(y.vms[1]!.image.kind, 'nbd');
  assert.deepEqual(y.vms[0]!.target, { kind: 'tcp', host: '10.0.0.5', port: 7000 });
  assert.equal(y.predict, 'size');
  assert.equal(y.wanRttMs, 50);
  const sim = parseFleetPlan(YAML.replace('order: auto', 'order: auto\npredict: simulator\nwan_rtt: 40ms'), 'p.yaml');
  assert.equal(sim.predict, 'simulator');
  assert.equal(sim.wanRttMs, 40);
});

function refused(text: string, re: RegExp): void {
  assert.throws(() => parseFleetPlan(text, 'p.yaml'), (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('mistakes name the line and the field', () => {
  refused(YAML.replace('target: tcp:10.0.0.6:7000', 'target: 10.0.0.6:7000'), /^fleet plan p\.yaml: line 12: vms\[1\]\.target: "10\.0\.0\.6:7000" must start with unix: or tcp:/);
  refused(YAML.replace('priority: 2', 'priority: -1'), /line 9: vms\[0\]\.priority: /);
  refused(YAML.replace('wan_cap: 100Mbit   # shared', 'wan_cap: 100M'), /line 3: wan_cap: /);
  refused(YAML.replace('    deadline: 10m', '    deadline: 10m\n    colour: red'), /line 1[34]: vms\[1\]: .*colour/);
  refused(YAML.replace('  - name: "db-1"', '  - name: "web-1"'), /line 10: vms\[1\]\.name: "web-1" names two VMs/);
  refused(YAML.replace('concurrency: 2', 'concurrency: [2]'), /line 2: .*flow collections/);
  refused(YAML.replace('    priority: 2', '      priority: 2'), /line 9: unexpected indentation/);
  refused(YAML.replace('vms:\n', ''), /line 5: unexpected indentation/);
  refused('concurrency: 2\nwan_cap: 1Gbit\n', /^fleet plan p\.yaml: vms: /);
  refused(YAML.replace('order: auto', 'order: auto\npredict: oracle'), /line 5: predict: /);
  refused(YAML.replace('order: auto', 'order: auto\nwan_rtt: 40 parsecs'), /line 5: wan_rtt: /);
  assert.throws(() => parseFleetPlan('{"wan_cap": "1Gbit", "vms": [}', 'p.json'), /fleet plan p\.json: (line \d+: )?not valid JSON/);
});

test('the YAML subset: nesting, sequences of scalars, quotes and comments', () => {
  const { value, lines } = parseYamlSubset("a:\n  b: 'it''s'\n  c:\n  - 1\n  - x # note\nd: \"q#r\"\n", 't');
  assert.deepEqual(value, { a: { b: "it's", c: [1, 'x'] }, d: 'q#r' });
  assert.equal(lines.get('a.c.1'), 5);
});
