/**
 * The streaming copy (src/sys/streaming-copy.ts): machine code that must be exactly
 * what its assembly says, and a copy that must be exactly TypedArray.set().
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { STREAMING_COPY_ASM, STREAMING_COPY_CODE, streamingCopy, streamingCopyStats } from '../src/sys/streaming-copy.js';
import { isCI, requireOrSkip } from './helpers.js';

const x64Linux = process.platform === 'linux' && process.arch === 'x64';

function hasAssembler(): boolean {
  return spawnSync('as', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('objcopy', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The copy, where this machine has one; else the test skips (and fails in CI on x86-64 Linux). */
function copyOrSkip(t: TestContext) {
  const copy = streamingCopy();
  if (copy) return copy;
  if (!x64Linux) {
    t.skip(`the streaming copy is for x86-64 Linux; this is ${process.platform} ${process.arch}`);
    return undefined;
  }
  if (isCI()) assert.fail('CI runs on x86-64 Linux, where the streaming copy must load');
  t.skip('the streaming copy did not load here (executable memory refused?)');
  return undefined;
}

describe('the streaming copy', () => {
  test('its machine code is what its assembly says (assembled again with as)', (t) => {
    if (!requireOrSkip(t, hasAssembler(), 'GNU as and objcopy (binutils, which gcc brings)')) return;
    if (!x64Linux) {
      t.skip('the assembly is x86-64; this machine assembles for another CPU');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'npipe-asm-'));
    try {
      writeFileSync(join(dir, 'copy.s'), STREAMING_COPY_ASM);
      execFileSync('as', ['-o', join(dir, 'copy.o'), join(dir, 'copy.s')]);
      execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'copy.o'), join(dir, 'copy.bin')]);
      assert.deepEqual([...readFileSync(join(dir, 'copy.bin'))], [...STREAMING_COPY_CODE]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('property: it copies exactly what set() copies, any length and offset, and touches no byte outside', (t) => {
    const copy = copyOrSkip(t);
    if (!copy) return;
    const before = streamingCopyStats.calls;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300_000 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 130 }),
        fc.integer({ min: 0, max: 255 }),
        (length, at, slack, sourceOffset, seed) => {
          const backing = Buffer.alloc(sourceOffset + length);
          for (let i = 0; i < backing.length; i++) backing[i] = (i * 31 + seed) & 0xff;
          const source = backing.subarray(sourceOffset);
          const target = Buffer.alloc(at + length + slack, 0xee);
          const expected = Buffer.from(target);
          expected.set(source, at);
          copy(target, at, source);
          assert.ok(target.equals(expected));
        },
      ),
      { numRuns: 300 },
    );
    // Lengths of 64 bytes and more past the first line did go through the machine code.
    assert.ok(streamingCopyStats.calls > before);
  });

  test('a copy that does not fit is a RangeError, and writes nothing', (t) => {
    const copy = copyOrSkip(t);
    if (!copy) return;
    const target = Buffer.alloc(4096, 1);
    assert.throws(() => copy(target, 1, Buffer.alloc(4096)), RangeError);
    assert.throws(() => copy(target, -1, Buffer.alloc(64)), RangeError);
    assert.throws(() => copy(target, 0.5, Buffer.alloc(64)), RangeError);
    assert.ok(target.every((b) => b === 1));
  });

  test('NPIPE_STREAMING_COPY=0 turns it off (callers copy with set())', () => {
    const probe = `import('${new URL('../src/sys/streaming-copy.js', import.meta.url).href}').then((m) => process.stdout.write(String(m.streamingCopy() === undefined)))`;
    const off = execFileSync(process.execPath, ['-e', probe], { env: { ...process.env, NPIPE_STREAMING_COPY: '0' }, encoding: 'utf8' });
    assert.equal(off, 'true');
  });
});
