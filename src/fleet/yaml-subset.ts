/**
 * The YAML subset a fleet plan may be written in (no YAML parser is a
 * dependency): block mappings (`key: value`, `key:` then an indented block),
 * block sequences (`- value`, `- key: value` starting a mapping), `#` comments,
 * and scalars: numbers, true/false, null, '…' and "…" strings, plain strings.
 * Flow collections ({…}, […]), anchors, tags and multi-line strings are refused
 * with the line they are on. Returns the value and, for every path, its line,
 * so a schema error can name the line.
 */
import { UsageError } from '../errors.ts';

interface Line {
  no: number;
  indent: number;
  text: string;
}

export interface Parsed {
  value: unknown;
  /** Line (1-based) of each path, joined with '.'. */
  lines: Map<string, number>;
}

export function parseYamlSubset(text: string, what: string): Parsed {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const noComment = stripComment(raw);
    if (noComment.trim() === '' || noComment.trim() === '---') return;
    if (/^\s*\t/.test(noComment)) throw new UsageError(`${what}: line ${i + 1}: tabs are not allowed for indentation`);
    lines.push({ no: i + 1, indent: noComment.length - noComment.trimStart().length, text: noComment.trim() });
  });
  const at = new Map<string, number>();
  if (lines.length === 0) return { value: null, lines: at };
  const [value, next] = node(lines, 0, lines[0]!.indent, [], at, what);
  if (next < lines.length) throw new UsageError(`${what}: line ${lines[next]!.no}: unexpected indentation`);
  return { value, lines: at };
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

type Step = [unknown, number];

function node(lines: Line[], i: number, indent: number, path: string[], at: Map<string, number>, what: string): Step {
  const first = lines[i]!;
  at.set(path.join('.'), first.no);
  return first.text === '-' || first.text.startsWith('- ') ? sequence(lines, i, indent, path, at, what) : mapping(lines, i, indent, path, at, what);
}

function sequence(lines: Line[], i: number, indent: number, path: string[], at: Map<string, number>, what: string): Step {
  const out: unknown[] = [];
  while (i < lines.length && lines[i]!.indent === indent && (lines[i]!.text === '-' || lines[i]!.text.startsWith('- '))) {
    const l = lines[i]!;
    const p = [...path, String(out.length)];
    const rest = l.text.slice(1).trimStart();
    if (rest === '') {
      const child = lines[i + 1];
      if (!child || child.indent <= indent) {
        at.set(p.join('.'), l.no);
        out.push(null);
        i++;
        continue;
      }
      const [v, n] = node(lines, i + 1, child.indent, p, at, what);
      at.set(p.join('.'), l.no);
      out.push(v);
      i = n;
    } else {
      // "- key: value" opens a mapping whose further keys are indented to line up with "key".
      const inner = indent + (l.text.length - rest.length);
      const copy = [...lines];
      copy[i] = { no: l.no, indent: inner, text: rest };
      const [v, n] = isMappingLine(rest) ? mapping(copy, i, inner, p, at, what) : [scalar(rest, l.no, what), i + 1];
      at.set(p.join('.'), l.no);
      out.push(v);
      i = n;
    }
  }
  if (i < lines.length && lines[i]!.indent > indent) throw new UsageError(`${what}: line ${lines[i]!.no}: unexpected indentation`);
  return [out, i];
}

const KEY = /^([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/;

function isMappingLine(text: string): boolean {
  return KEY.test(text) || /^[A-Za-z_][A-Za-z0-9_-]*:$/.test(text);
}

function mapping(lines: Line[], i: number, indent: number, path: string[], at: Map<string, number>, what: string): Step {
  const out: Record<string, unknown> = {};
  while (i < lines.length && lines[i]!.indent === indent) {
    const l = lines[i]!;
    const m = KEY.exec(l.text);
    if (!m) throw new UsageError(`${what}: line ${l.no}: expected "key: value", got "${l.text}"`);
    const key = m[1]!;
    if (Object.hasOwn(out, key)) throw new UsageError(`${what}: line ${l.no}: "${key}" is given twice`);
    const p = [...path, key];
    at.set(p.join('.'), l.no);
    if (m[2] !== undefined && m[2].trim() !== '') {
      out[key] = scalar(m[2].trim(), l.no, what);
      i++;
      continue;
    }
    const child = lines[i + 1];
    if (!child || child.indent < indent || (child.indent === indent && !(child.text === '-' || child.text.startsWith('- ')))) {
      out[key] = null;
      i++;
      continue;
    }
    const [v, n] = node(lines, i + 1, child.indent, p, at, what);
    at.set(p.join('.'), l.no);
    out[key] = v;
    i = n;
  }
  if (i < lines.length && lines[i]!.indent > indent) throw new UsageError(`${what}: line ${lines[i]!.no}: unexpected indentation`);
  return [out, i];
}

function scalar(text: string, no: number, what: string): unknown {
  if (/^["']/.test(text)) {
    const q = text[0]!;
    if (text.length < 2 || !text.endsWith(q)) throw new UsageError(`${what}: line ${no}: unterminated string ${text}`);
    const body = text.slice(1, -1);
    return q === '"' ? body.replace(/\\(["\\])/g, '$1') : body.replace(/''/g, "'");
  }
  if (/^[[{&*!|>]/.test(text)) throw new UsageError(`${what}: line ${no}: "${text}": flow collections, anchors, tags and block strings are not in the plan's YAML subset (see README, fleet run)`);
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null' || text === '~') return null;
  if (/^-?(?:\d+(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?$/i.test(text)) return Number(text);
  return text;
}
