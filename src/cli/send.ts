import { createReadStream, fstatSync, readFileSync } from 'node:fs';
import { DEFAULT_MAX_MESSAGE_SIZE, PIPE_BUF, createFraming } from '../framing/index.js';
import { openSender } from '../api.js';
import type { Sender } from '../messaging.js';
import { LineSplitter, type LineSink } from '../framing/split-lines.js';
import { unitsSender } from '../messaging.js';
import { FrameTooLargeError } from '../errors.js';
import { waitingHint } from './waiting-hint.js';
import { ProgressReport } from './progress.js';
import type { Progress } from '../drivers/types.js';
import { NATS_FLAGS_HELP, natsFlags } from './nats-options.js';
import { ADDRESS_HELP, EXIT, FIFO_OPTIONS_HELP, UsageError, checkAddress, commonFifoOptions, fifoOptions, type Command } from './args.js';

export const sendCommand: Command = {
  name: 'send',
  help: `Usage: npipe send <path> [message...] [options]

Sends each message argument as one message. With no message arguments, reads
stdin: one message per line, or with --whole all of stdin as one message (for
--format raw, the byte stream as it is; on Linux a regular file is spliced into
the FIFO without passing through npipe).
Creates the FIFO if it is missing, like the textbook writer, unless --no-create.
Waits for a reader to open the FIFO (forever, or until --timeout). --timeout
also bounds each write: the pipe taking no byte for that long (a reader that
stopped reading) is exit 3 (ERR_NPIPE_TIMEOUT).

On SIGINT, SIGTERM or SIGHUP: messages not started are dropped, a lines, length
or fixed:N message being written is finished whole (a frames reader drops a cut
message; raw stops at once), then exit 128+n. A second signal (another one, or
the same one a second or more later) stops at once.

Options:
      --wait         if the reader goes away, wait for the next one (up to
                     --timeout each time) and carry on; a message the departure
                     cut is sent again whole (frames). Without it: exit 3
                     (ERR_NPIPE_NO_READER)
      --whole        stdin is one message, not one per line (lines: without its
                     last newline, and it may hold no other; up to --max-size)
      --no-create    fail (ERR_NPIPE_NOT_FOUND) rather than make a missing FIFO
      --progress     raw from stdin: bytes sent and the rate on stderr (with
                     the size, the percentage and time left, when stdin is a
                     file), redrawn on a terminal, else a line a second; the
                     total at the end. Splicing goes on as without it
${FIFO_OPTIONS_HELP}

${NATS_FLAGS_HELP}

${ADDRESS_HELP}

Exit codes: 0 sent, 1 failure, 2 usage (also a message argument the format
cannot carry: then none is sent), 3 no reader (timeout, or it went away), 4 not
a FIFO or unsafe, 128+n stopped by signal n.

Examples:
  npipe send /tmp/jobs "hello" "world"
  seq 1000 | npipe send /tmp/jobs --timeout 5s
  npipe send /tmp/jobs --format frames --whole < report.json
  npipe send /tmp/jobs --format length < messages.txt
  npipe send /tmp/jobs --format raw --progress < disk.img
  npipe send nats://127.0.0.1:4222/jobs hello --jetstream

Over NATS (a nats:// URL): --wait waits for the NATS server instead of failing
(exit 3, ERR_NPIPE_UNREACHABLE); core NATS delivers to the listeners subscribed
at that moment, JetStream stores the message until a listener takes it.`,
  options: { ...fifoOptions, ...natsFlags, create: { type: 'boolean' }, wait: { type: 'boolean' }, whole: { type: 'boolean' }, progress: { type: 'boolean' } },
  async run(values, positionals, io) {
    const [path, ...messages] = positionals;
    if (!path) throw new UsageError('npipe send needs a FIFO path (see npipe send --help)');
    const { capabilities } = await checkAddress(path, values);
    const options = commonFifoOptions(values);
    // Where the format is on the wire, a message it cannot carry is refused before any is sent.
    if (messages.length > 0 && capabilities.wireFormat) checkMessages(messages, options.format, options.maxMessageSize);
    if (values.whole === true) {
      if (messages.length > 0) throw new UsageError('--whole sends stdin as one message; message arguments are whole already (give one or the other)');
      if (options.format === 'raw') throw new UsageError('--whole needs message boundaries; raw is a byte stream (send it without --whole)');
    }
    if (values.progress === true) {
      if (options.format !== 'raw') throw new UsageError('--progress shows a raw byte stream: it goes with --format raw');
      if (messages.length > 0) throw new UsageError('--progress shows the stream read from stdin; give no message arguments');
    }
    if (messages.length === 0 && io.stdin === process.stdin && stdinIsDirectory()) {
      // Node reads a directory as an empty stream: it would send nothing and exit 0.
      throw new UsageError('npipe send: stdin is a directory, not messages; redirect a file (npipe send FIFO < file) or give messages as arguments');
    }
    const splice = capabilities.splice;
    if (messages.length === 0 && options.format === 'raw' && splice && values.wait !== true && io.stdin === process.stdin && splice.available() && fstatSync(0).isFile()) {
      // A regular file as a raw stream: spliced into the FIFO, never through this
      // process (Linux; docs/TUNING.md). A signal stops it at once, as below.
      try {
        // The hint is about waiting for a reader, not about a long transfer: cancelled once the FIFO is open.
        const hinted = waitingHint(io, readerHint(path));
        const progress = values.progress === true ? new ProgressReport(io.stderr, 'npipe send', 'sent', stdinFileLeft()) : undefined;
        try {
          await splice.sendFile(0, path, { ...options, create: values.create !== false, signal: io.stop, onOpen: hinted, ...(progress ? { progress } : {}) });
        } finally {
          hinted();
          progress?.finish();
        }
      } catch (err) {
        throw io.stop.aborted ? io.stop.reason : err;
      }
      return EXIT.ok;
    }
    // --whole: stdin read and checked before the FIFO is opened: nothing is sent if it cannot go as one message.
    const whole = values.whole === true ? await wholeStdin(io.stdin, options.format, options.maxMessageSize, capabilities.wireFormat === true) : undefined;
    const hinted = waitingHint(io, readerHint(path));
    let sender: Sender<Uint8Array>;
    try {
      sender = await openSender<Uint8Array>(path, {
        ...options,
        codec: 'bytes',
        create: values.create !== false,
        waitForReader: values.wait === true,
        signal: io.stop,
      });
    } finally {
      hinted();
    }
    const progress = values.progress === true ? new ProgressReport(io.stderr, 'npipe send', 'sent', stdinFileLeft()) : undefined;
    // On SIGINT/SIGTERM/SIGHUP: drop what is still queued; a lines/length/fixed
    // message being written is finished first (cut, it would put the reader out of
    // step), then the exit is 128+n. Errors of close() come out of the finally below.
    const stop = () => void sender.close({ signal: io.stop }).catch(() => {});
    io.stop.addEventListener('abort', stop, { once: true });
    try {
      if (messages.length > 0) {
        await Promise.all(messages.map((m) => sender.send(Buffer.from(m, 'utf8'))));
      } else if (whole) {
        await sender.send(whole);
      } else {
        await sendStdin(sender, io.stdin, options.format, options.maxMessageSize, io.stop, capabilities.rawPiece, progress);
      }
    } catch (err) {
      throw io.stop.aborted ? io.stop.reason : err;
    } finally {
      io.stop.removeEventListener('abort', stop);
      try {
        await sender.close({ signal: io.stop });
      } finally {
        progress?.finish();
      }
    }
    if (io.stop.aborted) throw io.stop.reason;
    return EXIT.ok;
  },
};

/**
 * All of stdin as one message (--whole), read up to the size limit and checked
 * against the format before anything is sent: `lines` drops one last newline (what
 * `echo` adds) and refuses a newline inside, which would be two messages to its reader.
 */
async function wholeStdin(stdin: NodeJS.ReadableStream, format: string, maxMessageSize: number | undefined, wireFormat: boolean): Promise<Buffer> {
  const limit = maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += bytes.length;
    if (size > limit + 1) throw new FrameTooLargeError(size, limit, 'stdin (--whole)');
    chunks.push(bytes);
  }
  let message = Buffer.concat(chunks);
  if (format === 'lines' && message.length > 0 && message[message.length - 1] === 0x0a) message = message.subarray(0, message.length - 1);
  if (message.length > limit) throw new FrameTooLargeError(message.length, limit, 'stdin (--whole)');
  if (wireFormat) {
    try {
      createFraming(format, maxMessageSize === undefined ? {} : { maxMessageSize }).unitSize(message);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_NPIPE_INTERNAL';
      throw new UsageError(`stdin cannot be sent as one ${format} message, so nothing was sent (${code}: ${(err as Error).message})`);
    }
  }
  return message;
}

/** What send says when it has waited a second for a reader (stderr a terminal). */
function readerHint(path: string): string {
  return `npipe send: waiting for a reader of ${path} (start one: npipe listen ${path}); Ctrl-C to stop`;
}

function stdinIsDirectory(): boolean {
  try {
    return fstatSync(0).isDirectory();
  } catch {
    return false; // no stdin at all: reading it says so
  }
}

/**
 * Every message argument must be one the format can carry, checked before the
 * first is sent: a bad one sends none (issue 15 #17: `--format fixed:5 abcde xy`
 * sent `abcde`, then failed). Usage error, exit 2.
 */
function checkMessages(messages: string[], format: string, maxMessageSize: number | undefined): void {
  const framing = createFraming(format, maxMessageSize === undefined ? {} : { maxMessageSize });
  messages.forEach((m, i) => {
    try {
      framing.unitSize(Buffer.from(m, 'utf8'));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_NPIPE_INTERNAL';
      throw new UsageError(`message ${i + 1} cannot be sent as ${format}, so none was sent (${code}: ${(err as Error).message})`);
    }
  });
}

/** When stdin is a regular file, a function giving the bytes to read from it (its size now less the offset it was read from at the start); else undefined. */
function stdinFileLeft(): (() => number | undefined) | undefined {
  try {
    const st = fstatSync(0);
    if (!st.isFile()) return undefined;
    let offset = 0;
    try {
      offset = Number(/^pos:\s*(\d+)/m.exec(readFileSync('/proc/self/fdinfo/0', 'utf8'))?.[1] ?? 0);
    } catch {
      // No /proc (macOS): from the start.
    }
    // Asked again at each line: a file still being written (a log, a download) grows meanwhile.
    return () => {
      try {
        return Math.max(fstatSync(0).size - offset, 0);
      } catch {
        return undefined;
      }
    };
  } catch {
    return undefined;
  }
}

/**
 * Stdin as messages (see sendSource). A regular file is read in 1 MiB chunks;
 * anything else (a pipe, a terminal) through process.stdin, so that no threadpool
 * thread ever waits on a pipe. A stop ends the reading too.
 */
async function sendStdin(
  sender: Sender<Uint8Array>,
  stdin: NodeJS.ReadableStream,
  format: string,
  maxMessageSize: number | undefined,
  stop: AbortSignal,
  pieceSize?: number,
  progress?: Progress,
) {
  const source = stdin === process.stdin && fstatSync(0).isFile() ? createReadStream('', { fd: 0, autoClose: false, highWaterMark: 1 << 20 }) : stdin;
  // A signal stops reading stdin too: an idle stdin must not keep the process.
  // With the signal's reason as the error: a plain destroy() can leave `for await` waiting for ever.
  const stopReading = () => (source as Partial<NodeJS.ReadStream>).destroy?.(stop.reason as Error);
  if (stop.aborted) return;
  stop.addEventListener('abort', stopReading, { once: true });
  try {
    await sendSource(sender, source, format, maxMessageSize, pieceSize, progress);
  } finally {
    stop.removeEventListener('abort', stopReading);
  }
}

/**
 * `source` as messages: lines, or raw chunks (in pieces of `pieceSize` where the
 * medium wants them smaller). One chunk's sends are awaited before the next is
 * read, so memory stays bounded.
 */
async function sendSource(
  sender: Sender<Uint8Array>,
  source: NodeJS.ReadableStream,
  format: string,
  maxMessageSize: number | undefined,
  pieceSize?: number,
  progress?: Progress,
) {
  if (format === 'raw') {
    // Up to four chunks in flight: reading the next one overlaps writing this one.
    // Each is watched from the start: one failing while another is awaited is no
    // unhandled rejection (issue 15 #5: NoReaderError crashed send, exit 1).
    const { watch, settle, failed } = inOrder();
    const inFlight: Promise<void>[] = [];
    for await (const chunk of source) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      for (let at = 0; at < bytes.length; at += pieceSize ?? bytes.length) {
        const piece = pieceSize === undefined ? bytes : bytes.subarray(at, at + pieceSize);
        const sent = sender.send(piece);
        watch(sent);
        if (progress) void sent.then(() => void (progress.bytes += piece.length), () => {});
        inFlight.push(sent);
        if (inFlight.length >= 4) await inFlight.shift()!.catch(() => {});
        failed();
      }
    }
    await settle();
    return;
  }
  const sendUnits = unitsSender(sender);
  const max = maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  if (format === 'lines' && sendUnits && max >= PIPE_BUF - 1) {
    await sendLinesAsTheyAre(sender, sendUnits, source, max);
    return;
  }
  const decoder = createFraming('lines', maxMessageSize === undefined ? {} : { maxMessageSize }).createDecoder();
  const { watch, settle } = inOrder();
  const emit = (line: Buffer) => watch(sender.send(line));
  for await (const chunk of source) {
    decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer), emit);
    await settle();
  }
  decoder.end(emit);
  await settle();
}

/**
 * Lines from stdin into a FIFO without taking them apart: stdin already is the
 * lines format, so each run of whole lines of at most PIPE_BUF bytes is written as
 * it is (atomic: it never tears, nor is torn by, another writer's lines), under
 * the writers' shared lock as usual. A line longer than PIPE_BUF - 1 goes through
 * send() (checked against the size limit, written under the exclusive lock); a
 * last line without "\n" gets one, as with send(). The bytes in the FIFO are the
 * same as line-by-line sending would give, for a fraction of the work.
 */
async function sendLinesAsTheyAre(
  sender: Sender<Uint8Array>,
  sendUnits: (units: Uint8Array) => Promise<void>,
  source: AsyncIterable<unknown>,
  max: number,
): Promise<void> {
  const { watch, settle } = inOrder();
  // Only the start of a line still without its "\n" is held to `max` here (memory);
  // whole lines over it are refused by send(), in order with the lines around them.
  const lines = new LineSplitter(max, { runBytes: PIPE_BUF });
  const sink: LineSink = {
    run: (units) => watch(sendUnits(units)),
    line: (line) => watch(sender.send(line)),
  };
  for await (const item of source) {
    lines.push(typeof item === 'string' ? Buffer.from(item) : (item as Buffer), sink);
    await settle(); // bounded memory: this chunk is in the pipe before the next one is read
  }
  const last = lines.end();
  if (last) watch(sender.send(last));
  await settle();
}

/**
 * Sends settle in order, so waiting for the last one waits for all of them. Any of
 * them may fail (a line the format cannot carry): the first error wins. Messages
 * written together share one promise: each promise is watched once, not each message.
 */
function inOrder(): { watch(sent: Promise<void>): void; settle(): Promise<void>; failed(): void } {
  let last: Promise<void> | undefined;
  let failed: unknown;
  return {
    /** Throws the first error seen so far, without waiting. */
    failed() {
      if (failed !== undefined) throw failed;
    },
    watch(sent) {
      if (sent !== last) sent.catch((err: unknown) => (failed ??= err));
      last = sent;
    },
    async settle() {
      await last?.catch(() => {});
      if (failed !== undefined) throw failed;
    },
  };
}
