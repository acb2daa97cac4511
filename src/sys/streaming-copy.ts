/**
 * A copy whose stores bypass the CPU's caches (non-temporal, "streaming" stores),
 * for bytes another process will read rather than this one: the shared-memory
 * lane's large records (drivers/shm/ring-writer.ts).
 *
 * Why: a sender that copies a 1 MiB record into its ring with ordinary stores
 * (TypedArray.set, glibc's memmove: `rep movsb`) leaves it in its own cache,
 * where the receiver on the other CPU must fetch it line by line; past the size
 * of a core's L2 cache the record is also written back on the way. Measured on
 * this kind of machine (AMD EPYC, 2 vCPUs, 4 GiB of 1 MiB messages over shm://,
 * alternating runs): 6.9-8.0 GB/s with set(), 11.9-13.4 GB/s with streaming
 * stores; records of 256 and 512 KiB ran at ~12 GB/s either way (docs/TUNING.md,
 * "Shared memory"). glibc's memmove switches to streaming stores itself only above
 * its non-temporal threshold, which this VM's reported cache puts at 127 MiB.
 *
 * How: x86-64 on Linux only, STREAMING_COPY_CODE (56 bytes of machine code, made
 * from STREAMING_COPY_ASM; test/streaming-copy.test.ts assembles that again with
 * `as` and compares) in a page of its own that is made read+execute before it is
 * called (libc.ts `executable`). It copies whole 64-byte lines to a 64-byte
 * aligned destination; the wrapper copies the unaligned head and the tail with
 * set(). It ends with SFENCE: streaming stores are weakly ordered, and the fence
 * makes them visible to other CPUs before any later store, such as the ring's
 * TAIL that publishes them (docs/SHM.md, "Memory ordering").
 *
 * Elsewhere (arm64, macOS), where the system refuses executable memory (SELinux
 * execmem, PaX), without koffi, or with NPIPE_STREAMING_COPY=0 in the
 * environment: streamingCopy() is undefined and callers copy with set().
 */
import { loadLibc } from './libc.js';

/** Copies at least this large are worth streaming (below it, set() ran as fast: see above). */
export const STREAMING_COPY_MIN_BYTES = 512 * 1024;

/** What STREAMING_COPY_CODE was assembled from (GNU as, Intel syntax). */
export const STREAMING_COPY_ASM = `
    .intel_syntax noprefix
    .text
    # void copy(void *destination, const void *source, size_t bytes)
    # rdi: destination, 64-byte aligned; rsi: source; rdx: bytes, a multiple of 64, not 0
1:
    movdqu xmm0, [rsi]
    movdqu xmm1, [rsi + 16]
    movdqu xmm2, [rsi + 32]
    movdqu xmm3, [rsi + 48]
    movntdq [rdi], xmm0
    movntdq [rdi + 16], xmm1
    movntdq [rdi + 32], xmm2
    movntdq [rdi + 48], xmm3
    add rsi, 64
    add rdi, 64
    sub rdx, 64
    jnz 1b
    sfence
    ret
`;

/** STREAMING_COPY_ASM, assembled. SSE2 only: every x86-64 CPU has it. */
export const STREAMING_COPY_CODE = Uint8Array.of(
  0xf3, 0x0f, 0x6f, 0x06, 0xf3, 0x0f, 0x6f, 0x4e, 0x10, 0xf3, 0x0f, 0x6f, 0x56, 0x20, 0xf3, 0x0f,
  0x6f, 0x5e, 0x30, 0x66, 0x0f, 0xe7, 0x07, 0x66, 0x0f, 0xe7, 0x4f, 0x10, 0x66, 0x0f, 0xe7, 0x57,
  0x20, 0x66, 0x0f, 0xe7, 0x5f, 0x30, 0x48, 0x83, 0xc6, 0x40, 0x48, 0x83, 0xc7, 0x40, 0x48, 0x83,
  0xea, 0x40, 0x75, 0xcc, 0x0f, 0xae, 0xf8, 0xc3,
);

const LINE = 64;

/** Copies `source` into `target` at `at`, as `target.set(source, at)` does. */
export type StreamingCopy = (target: Uint8Array, at: number, source: Uint8Array) => void;

let loaded: StreamingCopy | null | undefined;

/** Times the machine code ran in this process (tests check that a path used it). */
export const streamingCopyStats = { calls: 0 };

/** The streaming copy, or undefined where there is none (see above). Loaded once. */
export function streamingCopy(): StreamingCopy | undefined {
  if (loaded === undefined) loaded = load() ?? null;
  return loaded ?? undefined;
}

function load(): StreamingCopy | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64' || process.env.NPIPE_STREAMING_COPY === '0') return undefined;
  let libc: ReturnType<typeof loadLibc>;
  let lines: ((...args: unknown[]) => unknown) | undefined;
  try {
    libc = loadLibc();
    lines = libc.executable?.(STREAMING_COPY_CODE, 'void (void *destination, const void *source, size_t bytes)');
  } catch {
    return undefined;
  }
  if (!lines) return undefined;
  const addressOf = libc.addressOf;
  const copyLines = lines;
  return (target, at, source) => {
    const length = source.length;
    // The machine code checks nothing: every byte it writes must lie in target.
    if (!Number.isInteger(at) || at < 0 || at + length > target.length) {
      throw new RangeError(`a copy of ${length} bytes to offset ${at} does not fit in ${target.length} bytes`);
    }
    const to = addressOf(target) + at;
    const head = Math.min(length, (LINE - (to % LINE)) % LINE);
    const body = (length - head) & ~(LINE - 1);
    // Memory shared by source and target: set() copies as memmove does; lines copied forward
    // (and a head written before them) would overwrite source bytes not yet read.
    const from = body === 0 ? 0 : addressOf(source);
    if (body === 0 || (from < to + length && to < from + length)) {
      target.set(source, at);
      return;
    }
    if (head > 0) target.set(source.subarray(0, head), at);
    const start = at + head;
    copyLines(target.subarray(start, start + body), source.subarray(head, head + body), body);
    streamingCopyStats.calls++;
    const rest = head + body;
    if (rest < length) target.set(source.subarray(rest), at + rest);
  };
}
