/**
 * Large message buffers come from malloc's heap, not from a fresh mapping each
 * that is faulted in page by page and unmapped (src/sys/malloc.ts; issue 18 #2:
 * for-await of 1 MiB messages, a new Buffer each, ran at half the speed). Checked by
 * where the memory comes from, not by timing: glibc's mallinfo2() counts the buffers
 * a process holds in its arenas with npipe's thresholds, and as mappings of their own
 * without them (the user's own malloc settings, which npipe leaves alone).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { userTunedMalloc } from '../src/sys/malloc.js';
import { isCI, start } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/malloc-probe.js', import.meta.url));
const MiB = 1024 * 1024;

/** Where 32 MiB of new buffers came from in a probe process run with `env` (test/fixtures/malloc-probe.ts). */
async function growth(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ mapped: number; arena: number }> {
  const result = await start(process.execPath, [FIXTURE, ...args], { env }).done;
  assert.equal(result.code, 0, result.stderr);
  const m = /^mapped (-?\d+) arena (-?\d+)$/m.exec(result.stdout);
  assert.ok(m, result.stdout);
  return { mapped: Number(m[1]), arena: Number(m[2]) };
}

describe('large message buffers and malloc (glibc)', () => {
  test("after the first large message a receiver decodes, 1 MiB and 8 MiB buffers come from the heap; not after small messages only, nor when the user tuned malloc", async (t) => {
    if (process.platform !== 'linux') {
      if (isCI()) assert.fail('CI runs on Linux with glibc');
      t.skip('the malloc thresholds are set on Linux (glibc) only');
      return;
    }
    const clean = Object.fromEntries(Object.entries(process.env).filter(([name, value]) => !userTunedMalloc({ [name]: value })));
    // 31 MiB, not 32: bytes in use in the arenas also fall by whatever else the process freed meanwhile.
    const tuned = await growth(clean);
    assert.ok(tuned.arena >= 31 * MiB && tuned.mapped < 8 * MiB, `32 MiB held: ${tuned.arena} bytes more in malloc's arenas, ${tuned.mapped} more in mappings of their own`);
    // Up to 32 MiB a message: 8 MiB buffers too (for-await of 4 MiB messages mapped each at 4 MiB).
    const large = await growth(clean, '--large');
    assert.ok(large.arena >= 31 * MiB && large.mapped < 8 * MiB, `4 x 8 MiB held: ${large.arena} bytes more in malloc's arenas, ${large.mapped} more in mappings of their own`);
    const largeUntouched = await growth({ ...clean, GLIBC_TUNABLES: 'glibc.malloc.perturb=0' }, '--large');
    assert.ok(largeUntouched.mapped >= 32 * MiB, `with malloc left alone, ${largeUntouched.mapped} bytes more in mappings of their own for 4 x 8 MiB held`);
    // A harmless malloc tunable: the user tuned malloc, so npipe leaves it as it is.
    const untouched = await growth({ ...clean, GLIBC_TUNABLES: 'glibc.malloc.perturb=0' });
    assert.ok(untouched.mapped >= 32 * MiB, `with malloc left alone, ${untouched.mapped} bytes more in mappings of their own for 32 MiB held`);
    // Small messages (and a receiver's own read buffers) leave malloc as glibc set it.
    const small = await growth(clean, '--small');
    assert.ok(small.mapped >= 32 * MiB, `after a small message, ${small.mapped} bytes more in mappings of their own for 32 MiB held`);
  });

  test('npipe leaves malloc alone when the user tuned it (GLIBC_TUNABLES, MALLOC_* variables)', () => {
    assert.equal(userTunedMalloc({}), false);
    assert.equal(userTunedMalloc({ PATH: '/bin', GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }), false);
    assert.equal(userTunedMalloc({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1' }), true);
    assert.equal(userTunedMalloc({ MALLOC_ARENA_MAX: '2' }), true);
    assert.equal(userTunedMalloc({ MALLOC_TRIM_THRESHOLD_: '1' }), true);
  });
});
