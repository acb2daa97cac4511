import { loadLibc } from './libc.js';
import { LARGE_BUFFER_BYTES, keepLargeBuffersInHeap } from './malloc.js';

/** Copies run at full speed when source and destination agree modulo this (a cache line). */
export const ALIGNMENT = 64;

let addressOf: ((buffer: Uint8Array) => number) | null | undefined;

function getAddressOf(): ((buffer: Uint8Array) => number) | null {
  if (addressOf === undefined) {
    try {
      addressOf = loadLibc().addressOf;
    } catch {
      addressOf = null;
    }
  }
  return addressOf;
}

/** Where `buffer[offset]` sits modulo ALIGNMENT, or 0 where addresses cannot be learned. */
export function phaseOf(buffer: Uint8Array, offset = 0): number {
  const address = getAddressOf();
  return address ? (address(buffer) + offset) % ALIGNMENT : 0;
}

/**
 * `size` uninitialised bytes whose first byte sits `phase` bytes past a 64-byte
 * boundary. Why: on some CPUs (AMD Zen 3 measured here) `rep movsb`, which both
 * glibc's memcpy and the kernel's copy_to_user use for large copies, runs up to
 * 15 times slower when the destination is 1 to 31 bytes ahead of the source
 * modulo 64; glibc puts a large allocation 16 bytes past a page boundary, so a
 * read() from a pipe into a fresh 1 MiB buffer is such a copy. Where addresses
 * cannot be learned (no koffi), this is Buffer.allocUnsafeSlow(size).
 */
export function allocAligned(size: number, phase = 0): Buffer {
  if (!getAddressOf()) return Buffer.allocUnsafeSlow(size);
  const backing = Buffer.allocUnsafeSlow(size + ALIGNMENT - 1);
  const start = (phase - phaseOf(backing) + ALIGNMENT) % ALIGNMENT;
  return Buffer.from(backing.buffer, start, size);
}

/**
 * A buffer for a message that its receiver hands over to the caller (who owns it
 * from then on): allocAligned, and the first large one (LARGE_BUFFER_BYTES or more)
 * sets malloc to keep such buffers in its heap (malloc.ts). Read buffers, reused
 * for the receiver's life, do not: only a stream of large messages makes that worth it.
 */
export function allocMessage(size: number, phase = 0): Buffer {
  if (size >= LARGE_BUFFER_BYTES) keepLargeBuffersInHeap();
  return allocAligned(size, phase);
}
