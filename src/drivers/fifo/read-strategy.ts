/**
 * Where a FIFO receiver's reads land, and how each read reaches the decoder: the
 * receiver's read-buffer strategy. It chooses, read by read, among three states
 * so that small messages cost one copy per read (not one per message) and large
 * ones no copy at all, while every message handed out stays valid after the
 * buffer is read into again.
 */
import type { FifoEnd } from '../../fifo/index.js';
import { view, type FrameDecoder } from '../../framing/index.js';
import { allocAligned } from '../../sys/aligned.js';
import { orElse } from './ends.js';

/** The smallest read buffer; it is as large as the pipe when the pipe is larger. */
export const READ_BUFFER_BYTES = 64 * 1024;
/**
 * Largest read for the formats that do not need whole-pipe reads. A read or a
 * write holds the pipe's lock while it copies, so 1 MiB reads against 1 MiB writes
 * make reader and writer take turns over the whole pipe, the slowest pattern: in C
 * with epoll, 1.3-1.8 GB/s against 1.6-2.5 with either side in 256 KiB pieces
 * (docs/TUNING.md; the sender's writes: sender.ts).
 */
const PIECE_READ_BYTES = 256 * 1024;
/** Reads are copied out in pieces of this size while messages come out as views. */
const COPY_PIECE = 64 * 1024;
/** Reads up to this size are copied into Node's buffer pool, unaligned: alignment pays only for large copies. */
const SMALL_COPY = 2048;
/** Messages at least this large are not taken as a sign that reads should be copied whole. */
const LARGE_MESSAGE = 64 * 1024;

/**
 * The read lands in the shared read buffer and is decoded there, with no copy.
 * The state while messages do not come out as views into the read (large ones,
 * assembled in buffers of their own), and the first. A message that does come out
 * as a view is copied out alone, since the buffer is read into again, and the
 * next read is COPIED.
 */
const IN_PLACE = 0;
/**
 * The read lands in the shared read buffer and is copied once into chunks of its
 * own (of at most COPY_PIECE bytes), which are decoded: small messages come out as
 * views into those chunks, one copy per read instead of one per message, and the
 * views keep only their chunk alive. The state while the last read into the shared
 * buffer gave small messages; one that gave none turns it back to IN_PLACE.
 */
const COPIED = 1;
/**
 * The read lands in the unfilled rest of a large message's own buffer (the
 * decoder's target(), which may be a receiveInto() buffer lent to it), at most
 * PIECE_READ_BYTES of it: no copy, and the read ends where the message ends. The
 * state of every read made while the decoder has such a target; IN_PLACE or
 * COPIED is kept for the reads after it.
 */
const DIRECT = 2;

type ReadState = typeof IN_PLACE | typeof COPIED | typeof DIRECT;

export class ReadStrategy {
  readonly #end: FifoEnd;
  readonly #decoder: FrameDecoder;
  /** Decodes a chunk, or (no chunk) bytes read into the decoder's target(): the receiver's, which handles its errors. */
  readonly #decode: (chunk: Buffer | undefined, filled: number) => void;
  /** Reads take as much as the pipe holds (see Framing.writerPackets), and the buffer grows with the pipe. */
  readonly #wholePipe: boolean;
  /** The shared read buffer, reused by every read that is not DIRECT. */
  #buffer: Buffer;
  /** The state of the read in flight, set when its buffer is chosen (next()). */
  #state: ReadState = IN_PLACE;
  /** The state of the next read into the shared buffer: IN_PLACE or COPIED, as the last such read's messages decided. */
  #shared: ReadState = IN_PLACE;
  /** Decoding the shared buffer itself (IN_PLACE) right now: a view into it must be copied out. */
  #inPlace = false;
  /** The read being decoded gave a message as a small view: the next read is COPIED. */
  #views = false;

  constructor(end: FifoEnd, decoder: FrameDecoder, wholePipe: boolean, decode: (chunk: Buffer | undefined, filled: number) => void) {
    this.#end = end;
    this.#decoder = decoder;
    this.#wholePipe = wholePipe;
    this.#decode = decode;
    // With writer packets the buffer is at least as large as the pipe: a read then
    // takes all there is, which ends where a write ended, so a reader that stops
    // (or is killed) never leaves half a packet for the next reader. The other
    // formats have no such guarantee to keep and read in pieces of at most 256 KiB,
    // which lets a writer refill the pipe while the reader works (bulk).
    // Off Linux the pipe size cannot be read: the default 64 KiB.
    const pipeSize = Math.max(READ_BUFFER_BYTES, orElse(() => end.getPipeSize(), 0));
    this.#buffer = allocAligned(wholePipe ? pipeSize : Math.min(pipeSize, PIECE_READ_BYTES));
  }

  /** The buffer the next read goes into (called after each read, and to point a read elsewhere). */
  next(): Buffer {
    const target = this.#decoder.target?.();
    if (target) {
      this.#state = DIRECT;
      return target.length > PIECE_READ_BYTES ? target.subarray(0, PIECE_READ_BYTES) : target;
    }
    this.#state = this.#shared;
    return this.#buffer;
  }

  /** Hands the `bytes` just read (into what next() returned) to the decoder, as the read's state says. */
  take(bytes: number): void {
    const state = this.#state;
    if (state === DIRECT) {
      this.#decode(undefined, bytes);
      return;
    }
    const buffer = this.#buffer;
    this.#views = false;
    if (state === IN_PLACE) {
      this.#inPlace = true;
      // view(), not subarray(): a read's cost is per message when messages are small (issue 18 #3).
      this.#decode(view(buffer, 0, bytes), 0);
      this.#inPlace = false;
    } else {
      const memory = buffer.buffer;
      const base = buffer.byteOffset;
      // In pieces of at most 64 KiB: small enough for malloc's heap, not mmap, so
      // the memory of pieces already collected is reused at once. Each piece starts
      // on a 64-byte boundary, as the read buffer does (see allocAligned).
      for (let at = 0; at < bytes; at += COPY_PIECE) {
        const size = Math.min(COPY_PIECE, bytes - at);
        // A small read (a request, a reply, a few lines) gets a slice of Node's pool:
        // a fresh ArrayBuffer per read cost ~0.5-1 us and, as external memory, made
        // the garbage collector run more often (issue 18 #3: a round trip's reads).
        const piece = size <= SMALL_COPY ? Buffer.allocUnsafe(size) : allocAligned(size);
        piece.set(new Uint8Array(memory, base + at, size));
        this.#decode(piece, 0);
      }
    }
    this.#shared = this.#views ? COPIED : IN_PLACE;
    if (this.#wholePipe && bytes === this.#buffer.length) {
      // A full buffer: someone may have made the pipe larger. Keep up with it.
      const size = orElse(() => this.#end.getPipeSize(), 0);
      if (size > this.#buffer.length) this.#buffer = allocAligned(size);
    }
  }

  /**
   * A message the decoder emitted, as the receiver may keep it past this read:
   * copied out if it is a view into the shared buffer (IN_PLACE), else as it is.
   * Notes small views, which make the next read COPIED.
   */
  keep(message: Buffer): Buffer {
    if (this.#inPlace) {
      if (message.buffer === this.#buffer.buffer) {
        this.#views = true;
        return Buffer.from(message);
      }
    } else if (message.length < LARGE_MESSAGE) this.#views = true;
    return message;
  }
}
