/**
 * The promises ledger (docs/PROMISES.md) cannot rot: every test it names exists, with
 * that exact title, in that file; every bench row it names exists in bench/run.ts (or, a
 * cost curve, bench/curves.ts), by id;
 * every promise outside "Not yet tested" names at least one; and every line under
 * "Not yet tested" says what it waits for.
 *
 * A reference is `test/<file>.test.ts: "<title>"` or `bench: "<row id>"`, the title
 * written as a JSON string. A title the source builds from a template literal in a
 * loop matches either the template as written or any title the template can make.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** A JS string literal as written in source ('...', "...", or `...` with ${...}), and what it can be at runtime. */
interface Title {
  source: string;
  matches(title: string): boolean;
}

/** The string literals passed as the first argument of `call(` (test titles) or as `id:` values (bench rows, targets and ratios). */
function literals(text: string, before: RegExp): Title[] {
  const out: Title[] = [];
  const literal = /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)/y;
  for (const m of text.matchAll(before)) {
    literal.lastIndex = m.index + m[0].length;
    const found = literal.exec(text);
    if (!found) continue;
    const raw = found[1]!;
    if (raw.startsWith('`')) {
      const body = raw.slice(1, -1);
      // The text between ${...} parts, unescaped as a template would; each ${...} stands for any text.
      const parts = body.split(/\$\{[^}]*\}/).map((p) => p.replace(/\\([`\\$])/g, '$1').replace(/\\n/g, '\n'));
      const pattern = new RegExp(`^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]+?')}$`);
      out.push({ source: body, matches: (title) => title === body || pattern.test(title) });
    } else {
      // A plain literal: its runtime value.
      const value = new Function(`return ${raw};`)() as string;
      out.push({ source: value, matches: (title) => title === value });
    }
  }
  return out;
}

interface Reference {
  line: number;
  file: string; // test/<name>.test.ts or bench
  title: string;
}

interface Ledger {
  references: Reference[];
  /** Promise lines (list items) outside "Not yet tested" with no reference. */
  unreferenced: Array<{ line: number; text: string }>;
  /** Lines under "Not yet tested" that do not say what they wait for. */
  unowned: Array<{ line: number; text: string }>;
  /** Lines that are neither headings, list items nor blank, after the introduction. */
  stray: Array<{ line: number; text: string }>;
  promises: number;
  notYetTested: number;
}

const REFERENCE = /(test\/[\w.-]+\.test\.ts|bench): ("(?:[^"\\]|\\.)*")/g;

function parseLedger(text: string): Ledger {
  const ledger: Ledger = { references: [], unreferenced: [], unowned: [], stray: [], promises: 0, notYetTested: 0 };
  let section = '';
  let intro = true;
  for (const [i, line] of text.split('\n').entries()) {
    const n = i + 1;
    if (line.startsWith('## ')) {
      section = line.slice(3).trim();
      intro = false;
      continue;
    }
    if (line.startsWith('# ') || line.trim() === '') continue;
    if (!line.startsWith('- ')) {
      if (!intro) ledger.stray.push({ line: n, text: line });
      continue;
    }
    if (section === 'Not yet tested') {
      ledger.notYetTested++;
      if (!/waits for|no owner yet/.test(line)) ledger.unowned.push({ line: n, text: line });
      continue;
    }
    ledger.promises++;
    const refs = [...line.matchAll(REFERENCE)];
    if (refs.length === 0) ledger.unreferenced.push({ line: n, text: line });
    for (const r of refs) ledger.references.push({ line: n, file: r[1]!, title: JSON.parse(r[2]!) as string });
  }
  return ledger;
}

const ledgerText = read('docs/PROMISES.md');
const ledger = parseLedger(ledgerText);

describe('docs/PROMISES.md, the promises ledger', () => {
  test('every promise outside "Not yet tested" names a test or a bench row, and nothing else sits between them', () => {
    assert.ok(ledger.promises >= 50, `only ${ledger.promises} promises found: is the ledger still in the expected form?`);
    assert.deepEqual(ledger.unreferenced, [], 'promises with no test reference');
    assert.deepEqual(ledger.stray, [], 'lines that are neither a heading nor a promise');
  });

  test('every line under "Not yet tested" says what it waits for', () => {
    assert.match(ledgerText, /^## Not yet tested$/m);
    assert.deepEqual(ledger.unowned, []);
  });

  test('every referenced test file exists, and holds a test with exactly that title', () => {
    const titles = new Map<string, Title[]>();
    const missing: string[] = [];
    for (const ref of ledger.references.filter((r) => r.file !== 'bench')) {
      if (!titles.has(ref.file)) {
        const path = new URL(ref.file, root);
        titles.set(ref.file, existsSync(path) ? literals(readFileSync(path, 'utf8'), /\btest\(\s*/g) : []);
      }
      const inFile = titles.get(ref.file)!;
      if (inFile.length === 0) missing.push(`line ${ref.line}: ${ref.file} does not exist or has no tests`);
      else if (!inFile.some((t) => t.matches(ref.title))) missing.push(`line ${ref.line}: ${ref.file} has no test titled ${JSON.stringify(ref.title)}`);
    }
    assert.deepEqual(missing, []);
  });

  test('every referenced bench row exists in bench/run.ts, named by its id', () => {
    // The cost curves' ids are in bench/curves.ts (run.ts lists them with --list).
    const rows = literals(`${read('bench/run.ts')}\n${read('bench/curves.ts')}`, /\bid:\s*/g);
    assert.ok(rows.length > 10, 'bench/run.ts has its rows');
    const ids = rows.map((r) => r.source);
    assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'every bench id is used once');
    const missing = ledger.references
      .filter((r) => r.file === 'bench')
      .filter((r) => !rows.some((row) => row.matches(r.title)))
      .map((r) => `line ${r.line}: no bench row ${JSON.stringify(r.title)}`);
    assert.deepEqual(missing, []);
  });

  test('the checks above can fail: a made-up title, file or bench row, and a promise without a test, are caught', () => {
    const fake = parseLedger(
      [
        '## Some section',
        '- a promise — test/cli.test.ts: "no test has this title"',
        '- another — test/nope.test.ts: "x"',
        '- speed — bench: "no such row"',
        '- a promise with no test',
        '## Not yet tested',
        '- something nobody has claimed',
      ].join('\n'),
    );
    assert.equal(fake.unreferenced.length, 1);
    assert.equal(fake.unowned.length, 1);
    const cli = literals(read('test/cli.test.ts'), /\btest\(\s*/g);
    assert.equal(cli.some((t) => t.matches(fake.references[0]!.title)), false);
    assert.ok(cli.some((t) => t.matches('stays up while writers come and go')));
    assert.ok(cli.some((t) => t.matches('SIGTERM mid-burst (frames) ends it with every whole message received written: a whole-message prefix, the next reader gets exactly the rest')), 'a title made by a template matches it');
    assert.equal(existsSync(new URL(fake.references[1]!.file, root)), false);
    const rows = literals(read('bench/run.ts'), /\bid:\s*/g);
    assert.equal(rows.some((r) => r.matches('no such row')), false);
    assert.equal(rows.some((r) => r.matches('npipe frames, 64 B')), false, 'a display label is not an id');
    assert.ok(rows.some((r) => r.matches('fifo-frames-64b-oneway')));
  });

  test('every test file in test/ is referenced at least once (a file of tests that prove nothing is suspect)', () => {
    const files = readdirSync(new URL('test/', root)).filter((f) => f.endsWith('.test.ts') && f !== 'promises.test.ts');
    const referenced = new Set(ledger.references.map((r) => r.file));
    assert.ok(files.length > 12, 'test/ has its files');
    const unreferenced = files.filter((f) => !referenced.has(`test/${f}`));
    assert.deepEqual(unreferenced, []);
  });
});
