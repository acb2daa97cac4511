/**
 * The bytes of one sender's segment: a header page, then a single-producer,
 * single-consumer ring of records (docs/SHM.md explains it; test/shm.test.ts checks
 * these numbers against the diagram there).
 *
 * ```
 * offset  size  written by  what
 *      0     4  sender      magic 0x316d706e ("npm1", little-endian)
 *      4     4  sender      version (1)
 *      8     4  sender      capacity: bytes of the ring, a power of two
 *     12     4  sender      the sender's pid
 *     64     4  sender      TAIL: bytes published so far (mod 2^32)
 *    128     4  receiver    HEAD: bytes consumed so far (mod 2^32)
 *    192     4  both        RECEIVER_SLEEPING: 1 = the receiver waits for a doorbell
 *    256     4  both        SENDER_WAITING: 1 = the sender waits for room
 *    320     4  sender      CLOSED: 1 = the sender closed; nothing more will come
 *    324     4  receiver    ATTACHED: the receiver's pid once it has mapped the segment;
 *                           -1 once it has dropped this sender (a bad record),
 *                           -2 if it refused it (it has MAX_SENDERS already)
 *   4096   cap  sender      the ring: records, each 8-byte aligned
 * ```
 *
 * A record is a 16-byte header, then its payload, then padding to 8 bytes; a record
 * may wrap around the end of the ring:
 *
 * ```
 *   0  u32 length  payload bytes of this record
 *   4  u32 kind    0 whole message, 1 first piece, 2 middle piece, 3 last piece
 *   8  u32 total   first piece: the whole message's length; else 0
 *  12  u32 zero
 * ```
 *
 * TAIL and HEAD each live on a cache line of their own, so that the two sides
 * never write the same line. Every field is read with Atomics on an Int32Array
 * over the mapping, and is attacker-controlled to whoever reads it: the receiver
 * copies and checks every value before use (ring-reader.ts).
 */

export const MAGIC = 0x316d706e;
export const VERSION = 1;

/** The header page: the ring starts here. */
export const HEADER_BYTES = 4096;

/** Int32 indexes of the header's fields. */
export const I_MAGIC = 0;
export const I_VERSION = 1;
export const I_CAPACITY = 2;
export const I_SENDER_PID = 3;
export const I_TAIL = 16;
export const I_HEAD = 32;
export const I_RECEIVER_SLEEPING = 48;
export const I_SENDER_WAITING = 64;
export const I_CLOSED = 80;
export const I_ATTACHED = 81;
/** ATTACHED's value once the receiver has dropped the sender. */
export const DROPPED = -1;
/** ATTACHED's value when the receiver refused the sender (too many senders): it never reads this ring. */
export const REFUSED = -2;

export const RECORD_HEADER = 16;
export const KIND_WHOLE = 0;
export const KIND_FIRST = 1;
export const KIND_MIDDLE = 2;
export const KIND_LAST = 3;

/** Ring sizes a segment may have: from 64 KiB to 1 GiB, powers of two. */
export const MIN_CAPACITY = 1 << 16;
export const MAX_CAPACITY = 1 << 30;
/** The ring a sender makes unless told otherwise (`ringSize`). */
export const DEFAULT_CAPACITY = 1 << 23;

/** A record's bytes in the ring: header, payload, padding to 8. */
export function recordBytes(length: number): number {
  return (RECORD_HEADER + length + 7) & ~7;
}

/**
 * The largest payload of one record in a ring of `capacity` bytes: half the ring,
 * so that the sender can write one record while the receiver reads the last. A
 * longer message travels as several pieces (first, middle..., last).
 */
export function maxPiece(capacity: number): number {
  return capacity / 2 - RECORD_HEADER;
}

export function isCapacity(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CAPACITY && n <= MAX_CAPACITY && (n & (n - 1)) === 0;
}
