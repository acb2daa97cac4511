/**
 * `frames`: npipe's format for a FIFO shared by any number of writers. Each
 * message travels as packets of at most PIPE_BUF bytes; every packet goes out in
 * one write(), which the kernel keeps whole, and names its writer, so the reader
 * reassembles each writer's message separately however the writers interleave.
 * Byte-by-byte description and test vectors: docs/PROTOCOL.md.
 */
import { BadFrameError, FrameTooLargeError, InvalidArgumentError } from '../errors.js';
import type { DropInfo, Emit, FrameDecoder, Framing } from './types.js';
import { viewOf } from './view.js';
import { LARGE_BUFFER_BYTES, keepLargeBuffersInHeap } from '../sys/malloc.js';

export const FRAMES_MAGIC = 0xfe;
export const FLAG_FIRST = 0x01;
export const FLAG_LAST = 0x02;
/** magic, flags, u16 payload length, u32 writer id. */
export const PACKET_HEADER = 8;
/** The first packet of a message of several packets adds u32 total length and u32 pid. */
export const FIRST_PACKET_EXTRA = 8;
/** Total message lengths are u32. */
export const FRAMES_MAX_MESSAGE = 0xffffffff;

export interface FramesOptions {
  maxMessageSize: number;
  /** Largest packet written (PIPE_BUF of the platform: 4096 on Linux, 512 on macOS). */
  packetSize: number;
  /** This writer's id (random, non-zero, by default). */
  writerId?: number;
  /** This writer's pid, so a reader can drop its partial message if it dies (0: unknown). */
  pid?: number;
  /** The most bytes a reader keeps for incomplete messages, all writers together. */
  maxPartialBytes?: number;
}

export function framesFraming(options: FramesOptions): Framing {
  const { maxMessageSize, packetSize } = options;
  if (maxMessageSize > FRAMES_MAX_MESSAGE) {
    throw new InvalidArgumentError(`the frames format carries messages up to ${FRAMES_MAX_MESSAGE} bytes`);
  }
  if (!Number.isInteger(packetSize) || packetSize < PACKET_HEADER + FIRST_PACKET_EXTRA + 1 || packetSize > PACKET_HEADER + 0xffff) {
    throw new InvalidArgumentError(`packet size ${packetSize} is out of range`);
  }
  // Distinct among the writers of one FIFO, not secret (any writer may claim any id):
  // Math.random, seeded from the OS per process, spares a one-shot send node:crypto.
  const writerId = options.writerId ?? 1 + Math.floor(Math.random() * 0xffff_ffff);
  const pid = options.pid ?? process.pid;
  const maxPartialBytes = options.maxPartialBytes ?? Math.max(4 * maxMessageSize, 256 * 1024 * 1024);
  return {
    name: 'frames',
    maxMessageSize,
    writersLock: false,
    byteStream: false,
    writerPackets: true,
    encode(message) {
      if (message.length > maxMessageSize) throw new FrameTooLargeError(message.length, maxMessageSize);
      return encodePackets(message, writerId, pid, packetSize);
    },
    unitSize(message) {
      if (message.length > maxMessageSize) throw new FrameTooLargeError(message.length, maxMessageSize);
      return message.length <= packetSize - PACKET_HEADER ? PACKET_HEADER + message.length : -1;
    },
    writeUnit(message, target, offset) {
      const n = message.length;
      target[offset] = FRAMES_MAGIC;
      target[offset + 1] = FLAG_FIRST | FLAG_LAST;
      target[offset + 2] = n >>> 8;
      target[offset + 3] = n & 0xff;
      target[offset + 4] = writerId >>> 24;
      target[offset + 5] = (writerId >>> 16) & 0xff;
      target[offset + 6] = (writerId >>> 8) & 0xff;
      target[offset + 7] = writerId & 0xff;
      copySmall(message, target, offset + PACKET_HEADER);
    },
    fillUnits(message, cursor, target, offset, room) {
      const total = message.length;
      let written = 0;
      while (cursor.at < total) {
        const first = cursor.at === 0;
        const headerLength = first ? PACKET_HEADER + FIRST_PACKET_EXTRA : PACKET_HEADER;
        const n = Math.min(packetSize - headerLength, total - cursor.at);
        if (headerLength + n > room - written) break;
        const o = offset + written;
        const last = cursor.at + n === total;
        target[o] = FRAMES_MAGIC;
        target[o + 1] = (first ? FLAG_FIRST : 0) | (last ? FLAG_LAST : 0);
        target[o + 2] = n >>> 8;
        target[o + 3] = n & 0xff;
        target.writeUInt32BE(writerId, o + 4);
        if (first) {
          target.writeUInt32BE(total, o + 8);
          target.writeUInt32BE(pid, o + 12);
        }
        target.set(message.subarray(cursor.at, cursor.at + n), o + headerLength);
        cursor.at += n;
        written += headerLength + n;
      }
      return written;
    },
    createDecoder: (decoderOptions = {}) => new FramesDecoder(maxMessageSize, decoderOptions.maxPartialBytes ?? maxPartialBytes, decoderOptions.onDrop, decoderOptions.partialTimeout),
  };
}

/** Copies `from` into `to` at `at`: a plain loop beats TypedArray.set for a few dozen bytes. */
export function copySmall(from: Uint8Array, to: Uint8Array, at: number): void {
  const n = from.length;
  if (n > 48) to.set(from, at);
  else for (let i = 0; i < n; i++) to[at + i] = from[i]!;
}

function header(out: Buffer, flags: number, n: number, writerId: number): void {
  out[0] = FRAMES_MAGIC;
  out[1] = flags;
  out.writeUInt16BE(n, 2);
  out.writeUInt32BE(writerId, 4);
}

/** The packets of one message, made one at a time so that a large message is never copied whole. */
export function* encodePackets(message: Uint8Array, writerId: number, pid: number, packetSize: number): Generator<Buffer> {
  const single = packetSize - PACKET_HEADER;
  if (message.length <= single) {
    const out = Buffer.allocUnsafe(PACKET_HEADER + message.length);
    header(out, FLAG_FIRST | FLAG_LAST, message.length, writerId);
    out.set(message, PACKET_HEADER);
    yield out;
    return;
  }
  const firstN = packetSize - PACKET_HEADER - FIRST_PACKET_EXTRA;
  const first = Buffer.allocUnsafe(packetSize);
  header(first, FLAG_FIRST, firstN, writerId);
  first.writeUInt32BE(message.length, 8);
  first.writeUInt32BE(pid, 12);
  first.set(message.subarray(0, firstN), PACKET_HEADER + FIRST_PACKET_EXTRA);
  yield first;
  for (let at = firstN; at < message.length; at += single) {
    const n = Math.min(single, message.length - at);
    const out = Buffer.allocUnsafe(PACKET_HEADER + n);
    header(out, at + n === message.length ? FLAG_LAST : 0, n, writerId);
    out.set(message.subarray(at, at + n), PACKET_HEADER);
    yield out;
  }
}

interface Partial {
  body: Buffer;
  filled: number;
  pid: number;
  /**
   * Its writer was seen gone when the stream had reached this offset plus what was
   * still in the pipe: once the decoder has read that far, the rest can't come.
   */
  goneAt: number | undefined;
  /** The reading clock (see sweep) when its last packet came. */
  lastAt: number;
}

/** Drops keep a record of the writers whose packets are being skipped, bounded in number. */
const MAX_SKIPPING = 4096;
/**
 * Messages in progress at once, all writers together. maxPartialBytes bounds their bytes, but a first
 * packet of a 0-byte message costs none: without a count, forged ones (a writer id each) grew a reader
 * by their records alone. Past it, a new message is dropped (`memory`), as past maxPartialBytes.
 */
export const MAX_PARTIALS = 65_536;

class FramesDecoder implements FrameDecoder {
  #max: number;
  #maxPartialBytes: number;
  #onDrop: ((info: DropInfo) => void) | undefined;
  /** Header bytes of the packet being read (8, or 16 for a first packet of several). */
  #head = Buffer.alloc(PACKET_HEADER + FIRST_PACKET_EXTRA);
  #headFilled = 0;
  #headNeeded = PACKET_HEADER;
  /** Payload bytes still to come for the current packet, and where they go. */
  #payloadLeft = 0;
  #target: Partial | undefined;
  #single: Buffer | undefined;
  #singleFilled = 0;
  #flags = 0;
  #writerId = 0;
  #partials = new Map<number, Partial>();
  #partialBytes = 0;
  /** Bytes of the stream pushed so far. */
  #consumed = 0;
  /** Writers whose current message is being skipped (dropped), so its later packets are not reported again. */
  #skip = new Set<number>();
  /** Milliseconds of reading, summed by sweep(): the clock partial messages stall against. */
  #clock = 0;
  #partialTimeout: number;

  constructor(max: number, maxPartialBytes: number, onDrop?: (info: DropInfo) => void, partialTimeout = Infinity) {
    this.#max = max;
    this.#maxPartialBytes = maxPartialBytes;
    this.#onDrop = onDrop;
    this.#partialTimeout = partialTimeout;
  }

  get pendingBytes(): number {
    return this.#partialBytes + this.#headFilled;
  }

  /** Writers with a message in progress, and their pids (0: unknown). */
  partialWriters(): Array<{ writerId: number; pid: number; bytes: number }> {
    return [...this.#partials].map(([writerId, p]) => ({ writerId, pid: p.pid, bytes: p.filled }));
  }

  push(chunk: Buffer, emit: Emit): void {
    let at = 0;
    const length = chunk.length;
    const memory = chunk.buffer as ArrayBuffer;
    const base = chunk.byteOffset;
    this.#consumed += length;
    while (at < length) {
      // Fast path: a whole single packet inside this chunk is handed out as a view.
      if (this.#headFilled === 0 && this.#payloadLeft === 0 && length - at >= PACKET_HEADER && chunk[at] === FRAMES_MAGIC && chunk[at + 1] === (FLAG_FIRST | FLAG_LAST)) {
        const n = (chunk[at + 2]! << 8) | chunk[at + 3]!;
        if (length - at - PACKET_HEADER >= n) {
          if (this.#partials.size > 0 || this.#skip.size > 0) {
            const id = chunk.readUInt32BE(at + 4);
            this.#skip.delete(id);
            const old = this.#partials.get(id);
            if (old) this.#drop(id, old, 'abandoned');
          }
          emit(viewOf(memory, base, at + PACKET_HEADER, n));
          at += PACKET_HEADER + n;
          continue;
        }
      }
      if (this.#headFilled === 0 && this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, length - at);
        this.#payload(chunk, at, n, emit);
        at += n;
        continue;
      }
      const n = Math.min(this.#headNeeded - this.#headFilled, length - at);
      chunk.copy(this.#head, this.#headFilled, at, at + n);
      this.#headFilled += n;
      at += n;
      if (this.#headFilled < this.#headNeeded) continue;
      if (this.#headNeeded === PACKET_HEADER && !this.#readHeader()) continue; // 8 more header bytes to come
      this.#startPacket(emit);
    }
  }

  /** Reads the 8-byte header; false when the packet has the 8 extra bytes of a first packet still to come. */
  #readHeader(): boolean {
    const head = this.#head;
    if (head[0] !== FRAMES_MAGIC || (head[1]! & ~(FLAG_FIRST | FLAG_LAST)) !== 0) {
      throw new BadFrameError(
        `not an npipe frames packet (header ${head.subarray(0, PACKET_HEADER).toString('hex')}): ` +
          'something other than an npipe frames writer wrote into this FIFO',
      );
    }
    this.#flags = head[1]!;
    this.#payloadLeft = head.readUInt16BE(2);
    this.#writerId = head.readUInt32BE(4);
    if (this.#flags === FLAG_FIRST) {
      this.#headNeeded = PACKET_HEADER + FIRST_PACKET_EXTRA;
      return false;
    }
    return true;
  }

  #startPacket(emit: Emit): void {
    const flags = this.#flags;
    const id = this.#writerId;
    const n = this.#payloadLeft;
    this.#headFilled = 0;
    this.#headNeeded = PACKET_HEADER;
    this.#target = undefined;
    this.#single = undefined;
    if (flags & FLAG_FIRST) {
      // A new message from this writer: one it had not finished is gone for good.
      this.#skip.delete(id);
      const old = this.#partials.get(id);
      if (old) this.#drop(id, old, 'abandoned');
    }
    if (flags === (FLAG_FIRST | FLAG_LAST)) {
      if (n === 0) emit(Buffer.alloc(0));
      else {
        this.#single = Buffer.allocUnsafe(n);
        this.#singleFilled = 0;
      }
      return;
    }
    if (flags === FLAG_FIRST) {
      const total = this.#head.readUInt32BE(8);
      const pid = this.#head.readUInt32BE(12);
      if (total > this.#max) return this.#startSkipping(id, 'too-large', total);
      if (this.#partialBytes + total > this.#maxPartialBytes || this.#partials.size >= MAX_PARTIALS) {
        return this.#startSkipping(id, 'memory', total);
      }
      if (n > total) return this.#startSkipping(id, 'corrupt', total);
      if (total >= LARGE_BUFFER_BYTES) keepLargeBuffersInHeap(); // a stream of large messages: see sys/malloc.ts
      const partial: Partial = { body: Buffer.allocUnsafe(total), filled: 0, pid, goneAt: undefined, lastAt: this.#clock };
      this.#partials.set(id, partial);
      this.#partialBytes += total;
      this.#target = partial;
    } else {
      const partial = this.#partials.get(id);
      if (!partial) {
        // The start of this message never reached this reader (it went to a reader before us,
        // or the message was dropped): skip the rest, report it once.
        if (!this.#skip.has(id)) this.#startSkipping(id, 'orphan', 0);
      } else if (partial.filled + n > partial.body.length || (flags & FLAG_LAST && partial.filled + n !== partial.body.length)) {
        this.#drop(id, partial, 'corrupt');
        this.#skip.add(id);
      } else {
        this.#target = partial;
        partial.lastAt = this.#clock;
      }
    }
    if (this.#payloadLeft === 0) this.#endPacket(emit);
  }

  #startSkipping(id: number, reason: DropInfo['reason'], size: number): void {
    if (this.#skip.size >= MAX_SKIPPING) this.#skip.delete(this.#skip.values().next().value!);
    this.#skip.add(id);
    this.#onDrop?.({ writerId: id, reason, bytes: size, pid: 0 });
    if (this.#payloadLeft === 0 && this.#flags & FLAG_LAST) this.#skip.delete(id);
  }

  #payload(chunk: Buffer, at: number, n: number, emit: Emit): void {
    if (this.#single) {
      chunk.copy(this.#single, this.#singleFilled, at, at + n);
      this.#singleFilled += n;
    } else if (this.#target) {
      chunk.copy(this.#target.body, this.#target.filled, at, at + n);
      this.#target.filled += n;
    }
    this.#payloadLeft -= n;
    if (this.#payloadLeft === 0) this.#endPacket(emit);
  }

  #endPacket(emit: Emit): void {
    const id = this.#writerId;
    const partial = this.#target;
    this.#target = undefined; // between packets no message is being written into
    if (this.#single) {
      const message = this.#single;
      this.#single = undefined;
      emit(message);
      return;
    }
    if (this.#flags & FLAG_LAST) {
      this.#skip.delete(id);
      if (partial && partial.filled === partial.body.length) {
        this.#partials.delete(id);
        this.#partialBytes -= partial.body.length;
        emit(partial.body);
      }
    }
  }

  #drop(id: number, partial: Partial, reason: DropInfo['reason']): void {
    this.#partials.delete(id);
    this.#partialBytes -= partial.body.length;
    if (this.#target === partial) this.#target = undefined;
    this.#onDrop?.({ writerId: id, reason, bytes: partial.filled, pid: partial.pid });
  }

  /**
   * Drops the partial messages of writers that `isAlive` says are gone, once the
   * bytes that were in the pipe when that was seen (`backlog`) have been read: a
   * writer may have written its last packets and exited before we read them.
   */
  sweep(isAlive: (pid: number) => boolean, backlog: () => number = () => 0, elapsed = 0): void {
    this.#clock += elapsed;
    for (const [id, partial] of this.#partials) {
      if (partial === this.#target) continue;
      if (this.#clock - partial.lastAt >= this.#partialTimeout) {
        // No packet for partialTimeout while reading: whatever the pid says (issue 15 #9).
        this.#drop(id, partial, 'stalled');
        this.#skip.add(id);
        continue;
      }
      if (partial.pid === 0) continue;
      if (partial.goneAt === undefined) {
        if (isAlive(partial.pid)) continue;
        partial.goneAt = this.#consumed + backlog();
      }
      if (this.#consumed >= partial.goneAt) {
        this.#drop(id, partial, 'writer-died');
        this.#skip.add(id);
      }
    }
  }

  end(): void {
    // At end of file every writer has closed the FIFO: a message not finished now never will be.
    for (const [id, partial] of this.#partials) this.#drop(id, partial, 'writer-died');
    if (this.#headFilled > 0 || this.#payloadLeft > 0) {
      throw new BadFrameError('the stream ended inside a packet');
    }
  }
}
