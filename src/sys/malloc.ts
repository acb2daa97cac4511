/**
 * Keeps large message buffers in malloc's heap (glibc), so that a receiver handing
 * out a new 1 MiB Buffer per message does not fault in fresh pages for each.
 *
 * By default glibc serves an allocation above its mmap threshold with mmap(2) and
 * returns the heap's free top to the system past its trim threshold (both adjusted
 * on the fly, but kept low: twice the largest freed block for the trim). A stream of
 * 1 MiB messages, each freed by the garbage collector a little later, then maps,
 * faults in (zeroing every page) and unmaps its memory over and over: 56,000 to
 * 86,000 page faults per 2 GiB received here, and for-await at 1.3-1.9 GB/s against
 * 3.2 GB/s with the thresholds below (docs/TUNING.md, "Large messages").
 *
 * Process-wide, so set once, on the first large message a receiver decodes
 * (allocMessage, and the frames decoder), and never when the user has
 * tuned malloc already (GLIBC_TUNABLES, MALLOC_* variables). The cost: up to
 * TRIM_THRESHOLD bytes of freed heap stay with the process instead of going back
 * to the system at once.
 */
import { loadLibc } from './libc.js';

/** Buffers at least this large are "large" (glibc's default mmap threshold). */
export const LARGE_BUFFER_BYTES = 128 * 1024;
/** mallopt(3) parameters (<malloc.h>). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
/**
 * Allocations up to this size come from the heap: glibc's largest (on 64-bit; the
 * ceiling its own adaptive threshold rises to, which setting it turns off). At 4 MiB,
 * a stream of 4 MiB messages (for-await, over shm:// or a FIFO) faulted in a fresh
 * mapping each: 0.30 GB/s against 6.5 GB/s at 32 MiB (docs/TUNING.md, "Shared memory").
 */
const MMAP_THRESHOLD = 32 * 1024 * 1024;
/** Free memory at the heap's top kept before it is given back. */
const TRIM_THRESHOLD = 32 * 1024 * 1024;

let done = false;

/** Sets the thresholds above once per process (Linux with glibc), unless the user tuned malloc. */
export function keepLargeBuffersInHeap(): void {
  if (done) return;
  done = true;
  if (process.platform !== 'linux' || userTunedMalloc(process.env)) return;
  try {
    const mallopt = loadLibc().mallopt;
    if (!mallopt) return;
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
  } catch {
    // No koffi or no glibc: large messages fault in their pages, as before.
  }
}

/** Whether malloc was tuned through the environment (then npipe leaves it as the user set it). */
export function userTunedMalloc(env: NodeJS.ProcessEnv): boolean {
  return /malloc/i.test(env.GLIBC_TUNABLES ?? '') || Object.keys(env).some((name) => /^MALLOC_[A-Z_]+$/.test(name));
}
