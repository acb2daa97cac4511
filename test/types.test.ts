/**
 * The public API's types tell the truth (issue 16 #5): tsc checks
 * test/types/expect.ts, a file of expected types and expected compile errors,
 * through the package names npipe and npipe/fifo (tsc maps them to the sources
 * the package is built from). A type that loosens (an `@ts-expect-error` line
 * that compiles again) or changes fails here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));

function tsc(project: string) {
  return spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '--noEmit', '-p', project], { cwd: root, encoding: 'utf8', timeout: 60_000 });
}

test('message types follow the codec and format; bad format names, codecs and payloads do not compile', () => {
  const result = tsc('test/types/tsconfig.json');
  assert.equal(result.status, 0, `tsc found type errors:\n${result.stdout}${result.stderr}`);
});
