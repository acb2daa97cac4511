/**
 * The package as npm ships it (issue 19 #9): `npm pack` makes a tarball with a
 * LICENSE and no source maps (they would point at sources it does not ship);
 * installed into a scratch project, `npx npipe --version` runs and `import 'npipe'`
 * gives the API. Dependencies come from npm's cache (`npm ci` filled it), so the
 * test needs no network when the suite runs after `npm ci`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

const work = mkdtempSync(join(tmpdir(), 'npipe-pack-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('npm pack: a LICENSE, no source maps; installed into a scratch project, npx npipe --version runs and the API imports', { timeout: 300_000 }, () => {
  // --ignore-scripts: no `prepare` build here (other test files run from dist/ meanwhile); `npm test` built it.
  const packed = JSON.parse(
    execFileSync(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const { filename, files } = packed[0]!;
  const paths = files.map((f) => f.path);
  assert.ok(paths.includes('LICENSE'), 'LICENSE is in the tarball');
  assert.deepEqual(paths.filter((p) => p.endsWith('.map')), [], 'no source maps');
  assert.ok(paths.includes('dist/bundle/cli/npipe.cjs') && paths.includes('dist/src/index.js'), 'the CLI and the library are in it');

  const project = join(work, 'scratch');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true, type: 'module' }));
  execFileSync(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, filename)], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });

  const printed = execFileSync(NPX, ['--no-install', 'npipe', '--version'], { cwd: project, encoding: 'utf8' });
  assert.equal(printed.trim(), version);
  const api = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', "const m = await import('npipe'); const f = await import('npipe/fifo'); console.log([typeof m.openSender, typeof m.openReceiver, typeof m.serve, typeof m.connect, typeof f.mkfifo].join(' '))"],
    { cwd: project, encoding: 'utf8' },
  );
  assert.equal(api.trim(), 'function function function function function');
});
