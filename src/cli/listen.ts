import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { DEFAULT_MAX_MESSAGE_SIZE } from '../framing/index.js';
import { openReceiver } from '../api.js';
import type { Receiver } from '../messaging.js';
import { isErrno } from '../sys/errno.js';
import type { DropInfo } from '../framing/index.js';
import { LineSplitter, eachLine, type LineSink } from '../framing/split-lines.js';
import { deadline } from '../util/abort.js';
import type { Capabilities, CountedReader, CountedReaderOptions } from '../drivers/types.js';
import { ProgressReport } from './progress.js';
import { NEWLINE, Output, jsonLine, printMessages } from './output.js';
import { NATS_FLAGS_HELP, natsFlags } from './nats-options.js';
import { ADDRESS_HELP, EXIT, FIFO_OPTIONS_HELP, UsageError, checkAddress, commonFifoOptions, fifoOptions, intOption, type CliIO, type Command } from './args.js';

export const listenCommand: Command = {
  name: 'listen',
  help: `Usage: npipe listen <path> [options]

Prints each message arriving on <path> (a FIFO path, a Windows pipe name or a
nats:// URL) to stdout, followed by a newline (raw passes the bytes through
untouched; on Linux, without --count, into a file, /dev/null or a pipe without
going through the event loop). Creates the FIFO if it is missing. Keeps
listening while writers come and go, until --count, --once, --timeout, or
SIGINT/SIGTERM (which end it at once, exit 0, with everything already received
written out; a line received without its newline is printed as the last one).
If stdout's reader goes away (| head -1) it exits 0 quietly; any other error
writing stdout (a full disk) is ERR_NPIPE_SYSTEM, exit 1.

Options:
  -n, --count N      exit 0 after N messages, taking exactly N out of the FIFO:
                     the rest stays in the pipe for the next reader, as long as
                     some process holds the FIFO open (raw: N reads; frames:
                     another writer's message half read at that moment is
                     lost, and the next reader reports its rest as orphan)
      --once         end at the first end of file, when every writer has
                     closed the FIFO (the textbook reader's behaviour)
      --json         print each message as one JSON line: {"text":"..."}, or
                     {"base64":"..."} when it is not valid UTF-8
      --no-create    fail (ERR_NPIPE_NOT_FOUND) rather than make a missing FIFO
      --progress     raw: bytes received and the rate on stderr, redrawn on a
                     terminal, else a line a second; the total at the end.
                     Splicing goes on as without it
      --max-partial N
                     frames: bytes kept for unfinished messages, all writers
                     together (default max(4 x --max-size, 256 MiB))
      --queue NAME   core NATS: join queue group NAME, sharing the messages
                     with its other listeners (as nats sub --queue NAME; the
                     URL's ?group=NAME; default npipe)
      --fan-out      core NATS: join no group, get every message (as nats sub
                     without --queue; the URL's ?fan-out=true)
${FIFO_OPTIONS_HELP.replace('give up after T: 250ms, 5s, 2m', 'exit if no message comes for T: 250ms, 5s')}

${NATS_FLAGS_HELP}

${ADDRESS_HELP}

With --format frames, a message that cannot be delivered whole (its writer died
mid-message, it was cut by an earlier reader's departure and sent again, it is
over --max-size) is dropped and reported on stderr, one line each:
  npipe listen: dropped a message from writer 5f3a9c01 (pid 4242):
    writer-died, 1048576 bytes
On Windows a connection that did not send the pipe's key (README, "Platform
notes") is refused before any message, and reported the same way.

Exit codes: 0 done, 1 failure (a malformed stream: ERR_NPIPE_BAD_FRAME),
2 usage, 3 timeout, 4 not a FIFO or unsafe.

Examples:
  npipe listen /tmp/jobs
  npipe listen /tmp/jobs --count 1 --timeout 5s
  npipe listen /tmp/jobs --format length --json
  npipe listen nats://127.0.0.1:4222/jobs --jetstream

Over NATS (a nats:// URL), by default listeners on one subject share its
messages, like readers of one FIFO: each message goes to one of them.
                     npipe listen          nats sub
  share (default)    nats://h/s            --queue npipe s
  share, group G     --queue G, ?group=G   --queue G s
  every message      --fan-out             s (its default)
With --jetstream listeners always share the stream's consumer (a work queue):
--queue and --fan-out are refused there. With --jetstream a message is
acknowledged once the next one is asked for, that is after it was written
out: a listener killed before that gets it again after ack-wait (30 s;
?ack-wait=T in the URL: 30s, 500ms, 2m).`,
  options: {
    ...fifoOptions,
    ...natsFlags,
    count: { type: 'string', short: 'n' },
    once: { type: 'boolean' },
    json: { type: 'boolean' },
    create: { type: 'boolean' },
    'max-partial': { type: 'string' },
    progress: { type: 'boolean' },
    queue: { type: 'string' },
    'fan-out': { type: 'boolean' },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe listen takes exactly one FIFO path (see npipe listen --help)');
    const path = positionals[0]!;
    const { capabilities } = await checkAddress(path, values);
    const fifo = commonFifoOptions(values);
    const count = intOption(values.count, 'count', { min: 1 });
    const json = values.json === true;
    const raw = fifo.format === 'raw';
    if (json && raw) throw new UsageError('--json needs message boundaries; it does not go with --format raw');
    if (values.progress === true) {
      if (!raw) throw new UsageError('--progress shows a raw byte stream: it goes with --format raw');
      if (count !== undefined) throw new UsageError('--progress shows a stream; it does not go with --count (N reads)');
    }
    const progress = values.progress === true ? new ProgressReport(io.stderr, 'npipe listen', 'received') : undefined;
    try {
      return await listenWith(path, values, io, capabilities, fifo, count, progress);
    } finally {
      progress?.finish();
    }
  },
};

async function listenWith(
  path: string,
  values: Record<string, string | boolean | undefined>,
  io: CliIO,
  capabilities: Capabilities,
  fifo: ReturnType<typeof commonFifoOptions>,
  count: number | undefined,
  progress: ProgressReport | undefined,
): Promise<number> {
  const { timeout, ...options } = fifo;
  const json = values.json === true;
  const raw = options.format === 'raw';

  const maxPartialBytes = intOption(values['max-partial'], 'max-partial', { min: 1 });
  if (values.queue !== undefined && values['fan-out'] === true) {
    throw new UsageError('--queue (share the messages in a group) and --fan-out (get every message) do not go together: give one');
  }
  /** --queue / --fan-out (NATS only: refused with other addresses by checkAddress). */
  const groupChoice = {
    ...(typeof values.queue === 'string' ? { group: values.queue } : {}),
    ...(typeof values['fan-out'] === 'boolean' ? { fanOut: values['fan-out'] } : {}),
  };
  if (count !== undefined && capabilities.countedReader) {
    return listenCounted(path, capabilities.countedReader, io, {
      ...options,
      count,
      timeout,
      json,
      once: values.once === true,
      create: values.create !== false,
      ...(maxPartialBytes === undefined ? {} : { maxPartialBytes }),
    });
  }
  const splice = capabilities.splice;
  if (raw && count === undefined && splice && io.stdout === process.stdout && splice.available() && spliceableStdout()) {
    // The byte stream is spliced from the FIFO into stdout, never through this
    // process (Linux; docs/TUNING.md). --timeout: no byte for that long. A signal
    // ends it at once, exit 0, with everything read from the pipe written out.
    try {
      await splice.receiveInto(path, 1, io.stdout, {
        ...options,
        keepOpen: values.once !== true,
        create: values.create !== false,
        signal: io.stop,
        ...(timeout === undefined ? {} : { idleTimeout: timeout }),
        ...(progress ? { progress } : {}),
      });
    } catch (err) {
      // Whoever read our stdout went away (npipe listen | head -c 10): stop quietly, as cat does.
      if (isErrno(err, 'EPIPE')) return EXIT.ok;
      throw err;
    }
    return EXIT.ok;
  }

  if (options.format === 'lines' && capabilities.wireFormat && count === undefined) {
    // The FIFO already holds the lines format, and so does our output: pass whole
    // lines through as they are, without taking them apart into messages (--json:
    // one JSON line each). A line cut by a stop is still printed (issue 15 #16).
    // Not with --count on a medium without a counted reader (Windows pipes): raw
    // chunks cannot be counted in lines, so the message loop below takes N.
    const { maxMessageSize, ...fifo } = options;
    const receiver = await openReceiver<Buffer>(path, {
      ...fifo,
      format: 'raw',
      codec: 'bytes',
      keepOpen: values.once !== true,
      create: values.create !== false,
    });
    return passLinesThrough(receiver, { path, io, timeout, json, max: maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE });
  }

  const receiver = await openReceiver<Buffer>(path, {
    ...options,
    ...groupChoice,
    ...(maxPartialBytes === undefined ? {} : { maxPartialBytes }),
    codec: 'bytes',
    keepOpen: values.once !== true,
    create: values.create !== false,
    onDrop: reportDrop(io),
  });
  const stop = () => void receiver.close();
  io.stop.addEventListener('abort', stop, { once: true });
  try {
    const out = new Output(io.stdout);
    await printMessages(receiver, out, {
      timeout,
      count, // here: a medium without a counted reader (NATS)
      nothingCame: `no message arrived on ${path}; check that a writer is sending, or wait longer (--timeout)`,
      print: raw
        ? (message) => {
            out.add(message);
            if (progress) progress.bytes += message.length;
          }
        : (message) => out.addMessage(message, json),
    });
  } finally {
    io.stop.removeEventListener('abort', stop);
    await receiver.close();
  }
  return EXIT.ok;
}

/** stdout is something splice(2) writes to: a regular file, a pipe, or a device such as /dev/null that is not a terminal. */
function spliceableStdout(): boolean {
  const st = fstatSync(1);
  return st.isFile() || st.isFIFO() || (st.isCharacterDevice() && !isatty(1));
}

function reportDrop(io: CliIO): (d: DropInfo) => void {
  return (d) =>
    io.stderr.write(
      d.reason === 'refused'
        ? `npipe listen: refused a connection that did not send the pipe's key (${d.bytes} bytes read; a client on another machine, another user's, or not an npipe writer)\n`
        : `npipe listen: dropped a message${d.writerId ? ` from writer ${d.writerId.toString(16).padStart(8, '0')}` : ''}` +
          `${d.pid ? ` (pid ${d.pid})` : ''}: ${d.reason}, ${d.bytes} bytes\n`,
    );
}

/**
 * `listen --count N` on a FIFO: exactly N messages are taken out of the pipe, and
 * not a byte more (issue 15 #15): what follows stays in the pipe for the next
 * reader, as long as some process still has the FIFO open (the kernel frees a
 * FIFO's contents when its last descriptor closes). See drivers/fifo/counted-reader.ts.
 */
async function listenCounted(
  path: string,
  open: (address: string, options: CountedReaderOptions) => Promise<CountedReader>,
  io: CliIO,
  options: {
    format: string;
    count: number;
    timeout: number | undefined;
    json: boolean;
    once: boolean;
    create: boolean;
    maxMessageSize?: number;
    maxPartialBytes?: number;
    mode?: number;
    pipeSize?: number;
    allowShared: boolean;
  },
): Promise<number> {
  const { format, count, timeout, json } = options;
  const reader = await open(path, {
    format,
    maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    create: options.create,
    keepOpen: !options.once,
    allowShared: options.allowShared,
    ...(options.mode === undefined ? {} : { mode: options.mode }),
    ...(options.pipeSize === undefined ? {} : { pipeSize: options.pipeSize }),
    ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
    onDrop: reportDrop(io),
  });
  const out = new Output(io.stdout);
  const print = (message: Buffer) => {
    if (format === 'raw') out.add(message);
    else if (json) out.add(Buffer.from(jsonLine(message)));
    else {
      out.add(message);
      out.add(NEWLINE);
    }
  };
  // Output goes out in pieces, and whenever the reader is about to wait for the pipe.
  reader.beforeWait = () => out.flush();
  try {
    // Plain lines go out as they came, whole lines at a time; other messages one by one.
    const passLines = format === 'lines' && !json;
    for (let received = 0; received < count; ) {
      if (out.full) await out.flush();
      const ready = passLines ? undefined : reader.tryNext();
      if (ready !== undefined) {
        print(ready);
        received++;
        continue;
      }
      // --timeout: no whole message for that long.
      const wait = deadline({ timeout, signal: io.stop }, `no message arrived on ${path}; check that a writer is sending, or wait longer (--timeout)`);
      let got: { bytes: Buffer; lines: number } | Buffer | undefined;
      try {
        got = passLines ? await reader.nextLines(wait.signal, count - received) : await reader.next(wait.signal, count - received);
      } finally {
        wait.dispose();
      }
      if (Buffer.isBuffer(got)) {
        print(got);
        received++;
        continue;
      }
      if (got !== undefined) {
        out.add(got.bytes);
        received += got.lines;
        continue;
      }
      if (io.stop.aborted) {
        // Everything received is written out: a line a stop cut is the last message.
        const line = reader.unfinishedLine();
        if (line) print(line);
        else if (reader.cutBytes > 0) {
          io.stderr.write(`npipe listen: ${reader.cutBytes} bytes of an unfinished message were read when it was stopped; not printed\n`);
        }
        break;
      }
      if (wait.signal?.aborted) throw wait.signal.reason;
      break; // the end of the stream (--once)
    }
  } finally {
    await out.flush();
    reader.close();
  }
  return EXIT.ok;
}

/**
 * `npipe listen` for lines (without --count): the FIFO's bytes, read as raw chunks,
 * go to stdout as they are, a run of whole lines at a time (what decoding each line
 * and printing it with "\n" would give, byte for byte); with --json, one JSON line
 * per line. Each line is checked against the size limit, and --timeout still means
 * no whole line for that long. A last line without "\n" is printed with one, whether
 * the stream ended (--once) or a signal stopped the listener (README: everything
 * already received is written out; issue 15 #16).
 */
async function passLinesThrough(
  receiver: Receiver<Buffer>,
  { path, io, timeout, json, max }: { path: string; io: CliIO; timeout: number | undefined; json: boolean; max: number },
): Promise<number> {
  const stop = () => void receiver.close();
  io.stop.addEventListener('abort', stop, { once: true });
  const out = new Output(io.stdout);
  const lines = new LineSplitter(max);
  /** Whether a whole line came out of the last chunk. */
  let whole = false;
  const printJson = (line: Buffer) => out.add(Buffer.from(jsonLine(line)));
  const sink: LineSink = json
    ? {
        run: (run) => {
          eachLine(run, printJson);
          whole = true;
        },
        line: (line) => {
          printJson(line);
          whole = true;
        },
      }
    : {
        run: (run) => {
          out.add(run);
          whole = true;
        },
        line: (line) => {
          out.add(line);
          out.add(NEWLINE);
          whole = true;
        },
      };
  let wait: ReturnType<typeof deadline> | undefined;
  try {
    try {
      for (;;) {
        let chunk = receiver.tryReceive();
        if (chunk === undefined) {
          await out.flush();
          // --timeout runs from the last whole line, not from the last byte.
          wait ??= deadline({ timeout }, `no message arrived on ${path}; check that a writer is sending, or wait longer (--timeout)`);
          chunk = await receiver.receive({ signal: wait.signal });
          if (chunk === undefined) break;
        }
        lines.push(chunk, sink);
        if (whole) {
          whole = false;
          wait?.dispose();
          wait = undefined;
        }
        if (out.full) await out.flush();
      }
      // The end of the stream (--once) or a stop: a last line without "\n" is still a line.
      const last = lines.end();
      if (last) sink.line(last);
    } finally {
      wait?.dispose();
      await out.flush();
    }
  } finally {
    io.stop.removeEventListener('abort', stop);
    await receiver.close();
  }
  return EXIT.ok;
}
