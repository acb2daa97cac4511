/**
 * The Windows harness (test/windows-harness.ts) works: the Windows Node runs under
 * Wine, its output reaches the test, two Windows processes talk over a named pipe,
 * and a stopped process leaves nothing behind. These need no npipe code; the tests
 * of the Windows named-pipe driver build on them.
 *
 * Without Wine or node.exe these tests skip saying how to install them; under CI
 * they fail (.ci/run installs both).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { until } from './helpers.js';
import { requireWindows, runWindows, startWindows, toWindowsPath, windowsFixture } from './windows-harness.js';

/** The processes `ps` lists in session `sid` (a started node.exe's own), and any whose command line names `marker`. */
function psLeftovers(sid: number, marker: string): string[] {
  const lines = execFileSync('ps', ['-eo', 'pid=,sid=,stat=,args='], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => {
    const [, s, stat] = line.trim().split(/\s+/);
    if (stat === undefined || stat.startsWith('Z')) return false; // a zombie is dead, only not yet reaped
    return Number(s) === sid || line.includes(marker);
  });
}

describe('Windows under Wine (the test harness)', () => {
  test('a Linux path reads as drive Z: to a Windows program', () => {
    assert.equal(toWindowsPath('/tmp/a b/c.js'), 'Z:\\tmp\\a b\\c.js');
  });

  test('node.exe runs under Wine and its stdout reaches the test: its version, platform win32, Windows 10', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const result = await runWindows([windowsFixture('version.js')], { timeoutMs: 90_000 });
    assert.equal(result.code, 0, result.stderr);
    const seen = JSON.parse(result.stdout) as { version: string; platform: string; release: string };
    assert.match(seen.version, /^v20\./);
    assert.equal(seen.platform, 'win32');
    assert.match(seen.release, /^10\./, 'the prefix reports Windows 10');
  });

  test('two Windows processes exchange a message over a \\\\.\\pipe\\ named pipe (plain node:net)', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const pipe = `\\\\.\\pipe\\npipe-test-${randomUUID()}`;
    const server = await startWindows(t, [windowsFixture('pipe-server.js'), pipe], { hangMs: 90_000 });
    await server.waitForOutput('listening', 60_000);
    const client = await runWindows([windowsFixture('pipe-client.js'), pipe, 'hello from the client'], { timeoutMs: 60_000 });
    assert.equal(client.code, 0, client.stderr);
    assert.equal(client.stdout, 'echo: hello from the client\n');
    const ended = await server.done;
    assert.equal(ended.code, 0, ended.stderr);
  });

  test('a Windows process stopped at the end of its test leaves no process behind, nor the Windows child it started', { timeout: 120_000 }, async (t) => {
    if (!requireWindows(t)) return;
    const fixture = windowsFixture('parent-and-child.js');
    const parent = await startWindows(t, [fixture], { hangMs: 90_000 });
    await parent.waitForOutput('ready', 60_000);
    const marker = fixture; // in both command lines: this checkout's fixture
    // Both node.exe are running, in the session the harness gave the parent.
    await until(() => psLeftovers(parent.pid, marker).length >= 2, 'the parent and its child in ps');
    const stopped = await parent.stop();
    assert.equal(stopped.signal, 'SIGKILL');
    await until(() => psLeftovers(parent.pid, marker).length === 0, 'no process of the stopped parent in ps', 10_000);
  });
});
