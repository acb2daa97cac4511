/**
 * `npipe listen --count N`: exactly N messages taken out of the FIFO, and not a
 * byte more, so the rest stays in the pipe for the next reader (issue 15 #15).
 * Each format is read in its own units: `length` its header then its body,
 * `fixed:N` N bytes, `frames` a packet header then the packet, `lines` up to the
 * next "\n" (looked for with tee(2) before taking), `raw` one read.
 */
import { BadFrameError } from '../../errors.js';
import { ExactFifoReader } from '../../fifo/exact-read.js';
import { openFifoReader, type FifoEnd } from '../../fifo/open.js';
import type { CountedReaderOptions as OpenOptions } from '../types.js';
import { createFraming, type DropInfo, type FrameDecoder } from '../../framing/index.js';
import { LineSplitter } from '../../framing/split-lines.js';

/** Bytes of a large message read (and handed to the decoder) at a time. */
const PIECE = 64 * 1024;
const RAW_READ = 64 * 1024;
/** lines: bytes taken from the pipe at a time, at most (never past the last line wanted). */
const LINES_READ = 64 * 1024;
const LF = 0x0a;
const NEWLINE = Buffer.of(LF);
const FRAMES_MAGIC = 0xfe;
const FRAMES_FIRST_ONLY = 0x01;

export interface CountedReaderOptions {
  format: string;
  maxMessageSize: number;
  maxPartialBytes?: number;
  onDrop?: (info: DropInfo) => void;
}

export class CountedReader {
  readonly #reader: ExactFifoReader;
  readonly #format: string;
  readonly #decoder: FrameDecoder | undefined;
  readonly #queue: Buffer[] = [];
  #ended = false;
  /** lines: the stream cut into lines (keeps the start of a line whose "\n" has not come yet). */
  readonly #lines: LineSplitter | undefined;
  readonly #queueLine = (line: Buffer) => void this.#queue.push(line);
  /** Bytes of a message (other formats) cut by a stop: read, not deliverable. */
  #cut = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(end: FifoEnd, { format, maxMessageSize, maxPartialBytes, onDrop }: CountedReaderOptions) {
    this.#reader = new ExactFifoReader(end);
    this.#format = format;
    // takeLines() reads into a buffer of its own each time: the kept tail can be views.
    if (format === 'lines') this.#lines = new LineSplitter(maxMessageSize);
    if (format !== 'lines' && format !== 'raw') {
      const framing = createFraming(format, { maxMessageSize, ...(maxPartialBytes === undefined ? {} : { maxPartialBytes }) });
      const decoder = framing.createDecoder(onDrop ? { onDrop } : {});
      this.#decoder = decoder;
      if (decoder.sweep) {
        // frames: a writer that died mid-message has that message dropped (writer-died), as without --count.
        this.#sweeper = setInterval(() => decoder.sweep!(alive, () => bytesInPipeOr0(end)), SWEEP_MS);
        this.#sweeper.unref();
      }
    }
  }

  /**
   * The next message; undefined at the end of the stream or when `signal` aborts.
   * `wanted`: how many messages the caller still wants (lines: one read may take
   * that many, and never more).
   * Then `unfinished()` says what was read of a message not yet whole.
   * @throws ERR_NPIPE_BAD_FRAME, ERR_NPIPE_FRAME_TOO_LARGE, ERR_NPIPE_SYSTEM.
   */
  async next(signal?: AbortSignal, wanted = 1): Promise<Buffer | undefined> {
    for (;;) {
      const queued = this.#queue.shift();
      if (queued) return queued;
      if (this.#ended || signal?.aborted) return undefined;
      if (this.#format === 'lines') return this.#nextLine(signal, wanted);
      if (this.#format === 'raw') {
        const chunk = Buffer.allocUnsafe(RAW_READ);
        const n = await this.#reader.some(chunk, signal);
        if (n === 0) {
          if (this.#reader.eof) this.#ended = true;
          return undefined;
        }
        return chunk.subarray(0, n);
      }
      if (!(await this.#readUnit(signal))) {
        if (this.#reader.eof) {
          this.#ended = true;
          // A message cut by the end of the stream: ERR_NPIPE_BAD_FRAME (frames: dropped and reported).
          this.#decoder!.end((m) => this.#queue.push(m));
        } else return undefined;
      }
    }
  }

  /** A message already read and waiting, if any: no wait, no timer (the hot path of a stream). */
  tryNext(): Buffer | undefined {
    return this.#queue.shift();
  }

  /** lines: the start of a line a stop cut (delivered by the caller as the last message); else undefined. */
  unfinishedLine(): Buffer | undefined {
    return this.#lines?.end();
  }

  /** Other formats: bytes of a message read before a stop cut it (not deliverable whole). */
  get cutBytes(): number {
    return this.#cut + (this.#decoder?.pendingBytes ?? 0);
  }

  /** Awaited before the reader waits for the pipe: the caller writes out what it holds. */
  set beforeWait(f: (() => Promise<void>) | undefined) {
    this.#reader.beforeWait = f;
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#reader.close();
  }

  async #nextLine(signal: AbortSignal | undefined, wanted: number): Promise<Buffer | undefined> {
    for (;;) {
      // Never a byte past the wanted-th "\n": the lines after it stay in the pipe.
      const chunk = await this.#reader.takeLines(wanted, LINES_READ, signal);
      if (chunk === undefined) {
        if (!this.#reader.eof) return undefined;
        this.#ended = true;
        // The end of the stream: a last line without "\n" is still a line (docs/FORMATS.md).
        return this.unfinishedLine();
      }
      this.#lines!.pushLines(chunk, this.#queueLine);
      const line = this.#queue.shift();
      if (line) return line;
    }
  }

  /**
   * lines, printed as they are (no --json): whole lines as one buffer, each with its
   * "\n", and how many; never a byte past the `wanted`-th line. A last line without
   * "\n" at the end of the stream comes with one added. Undefined at the end of the
   * stream or when `signal` aborts (then `unfinishedLine()` has what was cut).
   * Saves taking the lines apart and joining them again (docs/TUNING.md, "Lines in the CLI").
   */
  async nextLines(signal: AbortSignal | undefined, wanted: number): Promise<{ bytes: Buffer; lines: number } | undefined> {
    for (;;) {
      const chunk = await this.#reader.takeLines(wanted, LINES_READ, signal);
      if (chunk === undefined) {
        if (!this.#reader.eof) return undefined;
        this.#ended = true;
        const line = this.unfinishedLine();
        return line ? { bytes: Buffer.concat([line, NEWLINE]), lines: 1 } : undefined;
      }
      // Nothing is returned unless every line of the chunk is within the limit.
      let joined: Buffer | undefined;
      let run: Buffer | undefined;
      let lines = 0;
      this.#lines!.push(chunk, {
        line: (line) => void (joined = line),
        run: (bytes, count) => {
          run = bytes;
          lines = count;
        },
      });
      if (joined) return { bytes: Buffer.concat(run ? [joined, NEWLINE, run] : [joined, NEWLINE]), lines: lines + 1 };
      if (run) return { bytes: run, lines };
    }
  }

  /** Reads one unit of the format and hands it to the decoder: false at end of file or on abort. */
  async #readUnit(signal: AbortSignal | undefined): Promise<boolean> {
    const decoder = this.#decoder!;
    const emit = (m: Buffer) => this.#queue.push(Buffer.from(m));
    const fill = async (size: number): Promise<Buffer | undefined> => {
      const bytes = Buffer.allocUnsafe(size);
      const n = await this.#reader.fill(bytes, signal);
      if (n < size) {
        // Cut by the end of the stream (the decoder then says so) or by a stop.
        if (n > 0) {
          if (this.#reader.eof) decoder.push(bytes.subarray(0, n), emit);
          else this.#cut += n;
        }
        return undefined;
      }
      return bytes;
    };
    /** A message body of `size` bytes, handed to the decoder in pieces of at most PIECE. */
    const body = async (size: number): Promise<boolean> => {
      for (let left = size; left > 0; ) {
        const piece = await fill(Math.min(PIECE, left));
        if (!piece) return false;
        decoder.push(piece, emit);
        left -= piece.length;
      }
      return true;
    };
    if (this.#format === 'length') {
      const header = await fill(4);
      if (!header) return false;
      decoder.push(header, emit); // checks the size (and a bad length) before anything is allocated
      let size = header.readInt32BE(0);
      if (size === -1) {
        const long = await fill(8);
        if (!long) return false;
        decoder.push(long, emit);
        size = Number(long.readBigUInt64BE(0));
      }
      return body(size);
    }
    if (this.#format === 'frames') {
      const header = await fill(8);
      if (!header) return false;
      if (header[0] !== FRAMES_MAGIC || (header[1]! & 0xfc) !== 0) {
        decoder.push(header, emit); // throws ERR_NPIPE_BAD_FRAME
        throw new BadFrameError(`a packet header on ${this.#reader.end.path} does not start with 0xFE; the writer does not speak frames`);
      }
      const more = header[1] === FRAMES_FIRST_ONLY ? 8 : 0;
      const rest = await fill(more + header.readUInt16BE(2));
      if (!rest) return false;
      decoder.push(Buffer.concat([header, rest]), emit);
      return true;
    }
    // fixed:N
    return body(Number(this.#format.slice('fixed:'.length)));
  }
}

/** How often a frames reader looks for writers that died mid-message (as the library's receiver). */
const SWEEP_MS = 500;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function bytesInPipeOr0(end: FifoEnd): number {
  try {
    return end.bytesInPipe();
  } catch {
    return 0;
  }
}

/**
 * Opens the FIFO at `path` for reading (creating it unless `create` is false) and
 * a CountedReader on it: the FIFO driver's `countedReader` capability.
 */
export async function openCountedReader(path: string, options: OpenOptions): Promise<CountedReader> {
  const end = await openFifoReader(path, {
    create: options.create,
    keepOpen: options.keepOpen,
    allowShared: options.allowShared,
    ...(options.mode === undefined ? {} : { mode: options.mode }),
  });
  try {
    if (options.pipeSize !== undefined) end.setPipeSize(options.pipeSize);
    return new CountedReader(end, {
      format: options.format,
      maxMessageSize: options.maxMessageSize,
      ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
    });
  } catch (err) {
    end.close();
    throw err;
  }
}
