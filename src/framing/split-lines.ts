/**
 * The one place that cuts a byte stream into lines ("\n"-ended, "\r" kept as it is):
 * the lines format's decoder, `npipe send` (stdin's lines into a FIFO as they are),
 * `npipe listen` (the FIFO's lines to stdout as they are) and `listen --count` all
 * feed it their reads. It finds the "\n"s, keeps the start of a line cut across reads
 * until its end comes, and refuses a line over the size limit, so that none of them
 * does it its own way (issue 16 #6).
 */
import { FrameTooLargeError } from '../errors.js';
import { view } from './view.js';

const LF = 0x0a;

/** Where `push` hands out what it finds, in stream order. */
export interface LineSink {
  /**
   * A run of whole lines, each with its "\n": a view of the chunk pushed, valid as
   * long as the chunk is. `lines`: how many, when counted (line by line, without
   * `runBytes`); 0 with `runBytes`, where the run was found without counting.
   */
  run(bytes: Buffer, lines: number): void;
  /**
   * One line without its "\n", not part of a run: the line the kept tail ended in,
   * joined (a buffer of its own), or, with `runBytes`, a line too long for a run (a
   * view of the chunk).
   */
  line(line: Buffer): void;
}

export interface LineSplitterOptions {
  /** The error's noun: `line of N bytes is larger...` (the decoder) or `message of...` (default). */
  what?: string;
  /**
   * The caller reads every chunk into the same buffer: the tail kept across pushes is
   * copied out of it. Without it, the tail is kept as views of the chunks.
   */
  copyTail?: boolean;
  /**
   * For `push`: whole lines go out in runs of at most this many bytes, each found by
   * one lastIndexOf instead of one indexOf per line (npipe send: a run of at most
   * PIPE_BUF bytes is one atomic write). Must be at most `max + 1`, so that no line in
   * a run can be over the limit. A line that does not fit a run goes out alone through
   * `line()` NOT checked against the limit, nor is a joined line: the sink's own send
   * refuses it, in order with the lines around it. Only the kept tail is held to `max`.
   */
  runBytes?: number;
}

/**
 * Takes a byte stream in chunks cut anywhere and gives back the same lines as one
 * split of the whole stream would: `pushLines` one line at a time, `push` runs of
 * whole lines as they are (no per-line work beyond finding the "\n"). A line without
 * "\n" at the end comes out of `end()`.
 *
 * Every line, whole or still being read, is checked against `max` (except as
 * `runBytes` says): over it, ERR_NPIPE_FRAME_TOO_LARGE is thrown after the lines
 * before it went out, and the splitter is unusable afterwards.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #what: string;
  readonly #copyTail: boolean;
  /** 0: runs are all of a chunk's whole lines, each one checked. */
  readonly #runBytes: number;
  /** The start of a line whose "\n" has not come yet, in pieces (it may span many chunks). */
  #tail: Buffer[] = [];
  #tailBytes = 0;

  constructor(max: number, { what = 'message', copyTail = false, runBytes }: LineSplitterOptions = {}) {
    if (runBytes !== undefined && !(runBytes >= 1 && runBytes <= max + 1)) {
      throw new RangeError(`runBytes must be from 1 to max + 1 (${max + 1}), got ${runBytes}`);
    }
    this.#max = max;
    this.#what = what;
    this.#copyTail = copyTail;
    this.#runBytes = runBytes ?? 0;
  }

  /** Bytes kept of a line whose "\n" has not come yet. */
  get pendingBytes(): number {
    return this.#tailBytes;
  }

  /**
   * The next chunk of the stream, its whole lines one at a time through `emit`:
   * views of `chunk`, or buffers of their own for lines begun in earlier chunks.
   * @throws ERR_NPIPE_FRAME_TOO_LARGE
   */
  pushLines(chunk: Buffer, emit: (line: Buffer) => void): void {
    let at = 0;
    if (this.#tailBytes > 0) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) return this.#keep(chunk, 0);
      emit(this.#join(chunk, nl, true));
      at = nl + 1;
    }
    const max = this.#max;
    for (let nl = chunk.indexOf(LF, at); nl !== -1; nl = chunk.indexOf(LF, at)) {
      if (nl - at > max) this.#tooLarge(nl - at);
      emit(view(chunk, at, nl));
      at = nl + 1;
    }
    this.#keep(chunk, at);
  }

  /**
   * The next chunk of the stream, its whole lines handed to `sink` as they are: the
   * line the kept tail ends in first (`line`), then the chunk's own whole lines as
   * one run, or, with `runBytes`, as runs of at most that and long lines alone.
   * @throws ERR_NPIPE_FRAME_TOO_LARGE
   */
  push(chunk: Buffer, sink: LineSink): void {
    const checked = this.#runBytes === 0;
    let at = 0;
    if (this.#tailBytes > 0) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) return this.#keep(chunk, 0);
      sink.line(this.#join(chunk, nl, checked));
      at = nl + 1;
    }
    if (checked) {
      const from = at;
      const max = this.#max;
      let lines = 0;
      for (let nl = chunk.indexOf(LF, at); nl !== -1; nl = chunk.indexOf(LF, at)) {
        if (nl - at > max) {
          if (lines > 0) sink.run(chunk.subarray(from, at), lines);
          this.#tooLarge(nl - at);
        }
        lines++;
        at = nl + 1;
      }
      if (lines > 0) sink.run(chunk.subarray(from, at), lines);
    } else {
      const runBytes = this.#runBytes;
      while (at < chunk.length) {
        // The last "\n" within runBytes: everything up to it is whole lines. (lastIndexOf
        // looks back from there, past `at` if need be: it then finds the "\n" before `at`.)
        const end = chunk.lastIndexOf(LF, Math.min(chunk.length, at + runBytes) - 1);
        if (end >= at) {
          sink.run(chunk.subarray(at, end + 1), 0);
          at = end + 1;
          continue;
        }
        // No "\n" within runBytes: a long line, or the chunk ends inside a line.
        const nl = chunk.indexOf(LF, at);
        if (nl === -1) break;
        sink.line(chunk.subarray(at, nl));
        at = nl + 1;
      }
    }
    this.#keep(chunk, at);
  }

  /**
   * The end of the stream (or a stop): the kept start of a line without "\n", now a
   * line of its own; undefined when none. The splitter is empty afterwards.
   */
  end(): Buffer | undefined {
    if (this.#tailBytes === 0) return undefined;
    const line = this.#tail.length === 1 ? this.#tail[0]! : Buffer.concat(this.#tail, this.#tailBytes);
    this.#tail = [];
    this.#tailBytes = 0;
    return line;
  }

  /** The kept tail and chunk[0, nl) as one line; the tail is empty afterwards. */
  #join(chunk: Buffer, nl: number, check: boolean): Buffer {
    const size = this.#tailBytes + nl;
    if (check && size > this.#max) this.#tooLarge(size);
    this.#tail.push(view(chunk, 0, nl));
    const line = Buffer.concat(this.#tail, size);
    this.#tail = [];
    this.#tailBytes = 0;
    return line;
  }

  /** chunk[at, end) starts a line whose "\n" has not come: kept, checked first (nothing over the limit is copied). */
  #keep(chunk: Buffer, at: number): void {
    const rest = chunk.length - at;
    if (rest === 0) return;
    const size = this.#tailBytes + rest;
    if (size > this.#max) this.#tooLarge(size);
    this.#tail.push(this.#copyTail ? Buffer.from(chunk.subarray(at)) : chunk.subarray(at));
    this.#tailBytes = size;
  }

  #tooLarge(size: number): never {
    throw new FrameTooLargeError(size, this.#max, this.#what);
  }
}

/** Each line of a run from `LineSink.run` (each ends with "\n"), without its "\n". */
export function eachLine(run: Buffer, f: (line: Buffer) => void): void {
  for (let at = 0; at < run.length; ) {
    const nl = run.indexOf(LF, at);
    f(run.subarray(at, nl));
    at = nl + 1;
  }
}
