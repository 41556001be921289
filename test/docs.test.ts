// Keeps the docs honest where a machine can check them cheaply: the scripts they tell people to
// run exist, docs/design.md's report fields are MigrationReport's fields, every relative link
// resolves, and no code points at notes outside the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ALGORITHMS } from '../src/policy/algorithm.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = ['README.md', ...readdirSync(join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
const read = (file: string) => readFileSync(join(REPO, file), 'utf8');

/** `npm run NAME` (with or without -s) and `npm test` mentioned in a markdown text. */
function npmScriptsMentioned(md: string): string[] {
  const names = [...md.matchAll(/\bnpm run(?:\s+-s)?\s+([\w:.-]+)/g)].map((m) => m[1]!);
  if (/\bnpm test\b/.test(md)) names.push('test');
  return names;
}

test('every npm script that README.md and docs/ mention exists in package.json', () => {
  const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
  const missing: string[] = [];
  let seen = 0;
  for (const file of DOCS) {
    for (const name of npmScriptsMentioned(read(file))) {
      seen++;
      if (!scripts.includes(name)) missing.push(`${file}: npm run ${name}`);
    }
  }
  assert.ok(seen >= 10, `the docs name the scripts people run (found ${seen})`);
  assert.deepEqual(missing, []);
});

test('the script finder sees npm run, npm run -s and npm test', () => {
  assert.deepEqual(npmScriptsMentioned('`npm run -s bench:paper -- --json`, then npm run typecheck; npm test'), ['bench:paper', 'typecheck', 'test']);
});

/** MigrationReport's fields, each with the member names of its object type (empty for scalars). */
function reportFields(): Map<string, string[]> {
  const file = 'src/migrate/report.ts';
  const sf = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest, true);
  const iface = sf.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'MigrationReport');
  assert.ok(iface, `${file} declares MigrationReport`);
  const fields = new Map<string, string[]>();
  for (const m of iface.members) {
    if (!ts.isPropertySignature(m) || !m.name || !ts.isIdentifier(m.name)) continue;
    const nested = m.type && ts.isTypeLiteralNode(m.type) ? m.type.members.flatMap((n) => (n.name && ts.isIdentifier(n.name) ? [n.name.text] : [])) : [];
    fields.set(m.name.text, nested);
  }
  return fields;
}

/** The "Report fields" table of docs/design.md: field → the rest of its row. */
function documentedFields(): Map<string, string> {
  const md = read('docs/design.md');
  const start = md.indexOf('\n## Report fields\n');
  assert.ok(start >= 0, 'docs/design.md has a "## Report fields" section');
  const end = md.indexOf('\n## ', start + 1);
  const section = md.slice(start, end < 0 ? undefined : end);
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `(\w+)` \|(.*)\|\s*$/gm)) rows.set(m[1]!, m[2]!);
  return rows;
}

test("docs/design.md's report fields are exactly MigrationReport's, nested members included", () => {
  const fields = reportFields();
  const documented = documentedFields();
  assert.ok(fields.size >= 20, `MigrationReport parsed (${fields.size} fields)`);
  assert.deepEqual([...documented.keys()].sort(), [...fields.keys()].sort(), 'documented fields = MigrationReport fields');
  for (const [name, nested] of fields) {
    const row = documented.get(name)!;
    const named = [...row.matchAll(/`([a-z][a-z0-9_]*)`/g)].map((m) => m[1]!);
    for (const n of nested) assert.ok(named.includes(n), `docs/design.md names ${name}.${n}`);
    // A snake_case name in a row must be one of the report's names (or an algorithm), not a stale one.
    const known = new Set<string>([...nested, ...fields.keys(), ...ALGORITHMS]);
    for (const n of named) assert.ok(known.has(n), `docs/design.md row ${name} names \`${n}\`, which the report does not have`);
  }
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

test('heading anchors follow GitHub', () => {
  assert.equal(headingAnchor('Report fields'), 'report-fields');
  assert.equal(headingAnchor('`flimcd export`: serve a disk image over NBD'), 'flimcd-export-serve-a-disk-image-over-nbd');
});

test('every relative link in README.md and docs/ resolves to a file (and to a heading when it names one)', () => {
  const broken: string[] = [];
  let seen = 0;
  for (const file of DOCS) {
    for (const m of read(file).matchAll(/\[[^\]\n]*\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue;
      seen++;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const resolved = path ? join(dirname(join(REPO, file)), path) : join(REPO, file);
      if (!existsSync(resolved)) {
        broken.push(`${file}: ${target} (no such file)`);
        continue;
      }
      if (anchor && statSync(resolved).isFile()) {
        const anchors = [...readFileSync(resolved, 'utf8').matchAll(/^#+ (.*)$/gm)].map((h) => headingAnchor(h[1]!));
        if (!anchors.includes(anchor)) broken.push(`${file}: ${target} (no such heading in ${relative(REPO, resolved)})`);
      }
    }
  }
  assert.ok(seen >= 5, `README.md and docs/ link each other (found ${seen} relative links)`);
  assert.deepEqual(broken, []);
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(REPO, dir))) {
    const p = join(dir, name);
    if (statSync(join(REPO, p)).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

test('no file under src/, test/, bench/ or scripts/ points at notes outside the repository', () => {
  // Spelled in pieces so that this file does not match itself.
  const outside = [['..', 'shared'].join('/'), ['qemu', 'notes.md'].join('-')];
  const files = ['src', 'test', 'bench', 'scripts'].flatMap(filesUnder);
  assert.ok(files.length > 100, `walked the tree (${files.length} files)`);
  const hits = files.filter((f) => outside.some((o) => read(f).includes(o)));
  assert.deepEqual(hits, [], `cite docs/design.md or docs/qemu.md instead of ${outside.join(' or ')}`);
});
