/**
 * `--progress` (issue 19 #2): a raw stream's bytes, rate and, when its size is
 * known, percentage and time left, on stderr, as pv shows them. On a terminal
 * one line redrawn in place; otherwise (a log file, a pipe) one line a second.
 * The lanes only keep a count (Progress.bytes); this reads it on a timer, so
 * splicing goes on as before and costs nothing more per byte.
 */
import type { Progress } from '../drivers/types.js';

const TERMINAL_EVERY_MS = 250;
const LINES_EVERY_MS = 1000;
/** The rate is measured over about this much of the recent past. */
const RATE_WINDOW_MS = 2000;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  // Rounded up once, then split: 119.5 s is 2m00s, not 1m60s.
  const s = Math.max(Math.ceil(seconds), 0);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export class ProgressReport implements Progress {
  bytes = 0;
  readonly #stderr: NodeJS.WritableStream;
  readonly #prefix: string;
  readonly #verb: string;
  readonly #total: number | (() => number | undefined) | undefined;
  readonly #terminal: boolean;
  readonly #started = performance.now();
  readonly #samples: Array<[number, number]> = [[this.#started, 0]];
  #timer: NodeJS.Timeout | undefined;
  #drawn = false;

  /**
   * `verb`: what happens to the bytes ('sent', 'received'); `total`: the bytes to
   * move, when known (a regular file on stdin), or a function that says it now
   * (a file that grows while it is sent).
   */
  constructor(stderr: NodeJS.WritableStream, prefix: string, verb: string, total?: number | (() => number | undefined)) {
    this.#stderr = stderr;
    this.#prefix = prefix;
    this.#verb = verb;
    this.#total = total;
    this.#terminal = (stderr as NodeJS.WriteStream).isTTY === true;
    this.#timer = setInterval(() => this.#tick(), this.#terminal ? TERMINAL_EVERY_MS : LINES_EVERY_MS);
    this.#timer.unref();
  }

  /** Bytes a second over about the last RATE_WINDOW_MS. */
  #rate(now: number): number {
    this.#samples.push([now, this.bytes]);
    // The oldest sample kept is the newest one at least RATE_WINDOW_MS old (or the start).
    while (this.#samples.length > 2 && now - this.#samples[1]![0] >= RATE_WINDOW_MS) this.#samples.shift();
    const [then, before] = this.#samples[0]!;
    return now > then ? ((this.bytes - before) * 1000) / (now - then) : 0;
  }

  #line(now: number): string {
    const rate = this.#rate(now);
    const known = typeof this.#total === 'function' ? this.#total() : this.#total;
    // Never more than all of it, nor negative time left: a file that grew (or was
    // replaced) since the size was read has at least the bytes already moved.
    const total = known === undefined ? undefined : Math.max(known, this.bytes);
    const parts = [`${formatBytes(this.bytes)}${total === undefined ? '' : ` of ${formatBytes(total)} (${Math.floor((this.bytes * 100) / Math.max(total, 1))}%)`} ${this.#verb}`, `${formatBytes(rate)}/s`];
    if (total !== undefined) parts.push(`${formatSeconds(rate > 0 ? (total - this.bytes) / rate : Infinity)} left`);
    return `${this.#prefix}: ${parts.join(', ')}`;
  }

  #tick(): void {
    // Nothing moved yet (waiting for a reader or a writer): nothing to say; the waiting hint says why.
    if (this.bytes === 0) return;
    const line = this.#line(performance.now());
    this.#stderr.write(this.#terminal ? `\r\x1b[K${line}` : `${line}\n`);
    this.#drawn = true;
  }

  /** Stops the timer and says the total, the time and the average rate (also when stopped by a signal or an error). */
  finish(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    const seconds = (performance.now() - this.#started) / 1000;
    const average = seconds > 0 ? this.bytes / seconds : 0;
    const line = `${this.#prefix}: ${this.bytes} bytes (${formatBytes(this.bytes)}) ${this.#verb} in ${seconds.toFixed(1)}s, ${formatBytes(average)}/s`;
    this.#stderr.write(this.#terminal && this.#drawn ? `\r\x1b[K${line}\n` : `${line}\n`);
  }
}
