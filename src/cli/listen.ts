import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { isErrno, isNatsUrl, openReceiver } from '../index.js';
import { canSplice, receiveRawInto } from '../transport/raw-stream.js';
import { deadline } from '../util/abort.js';
import { EXIT, FIFO_OPTIONS_HELP, UsageError, checkAddress, commonFifoOptions, fifoOptions, intOption, type Command } from './args.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export const listenCommand: Command = {
  name: 'listen',
  summary: 'print the messages arriving on a FIFO',
  help: `Usage: npipe listen <path> [options]

Prints each message arriving on the FIFO to stdout, followed by a newline (raw
passes the bytes through untouched; on Linux, without --count, they are spliced
into a file, /dev/null or a pipe without passing through npipe). Creates the FIFO if it is missing. Keeps
listening while writers come and go, until --count, --once, --timeout, or
SIGINT/SIGTERM (which end it at once, exit 0, with everything already received
written out).

Options:
  -n, --count N      exit 0 after N messages
      --once         end at the first end of file, when every writer has
                     closed the FIFO (the textbook reader's behaviour)
      --json         print each message as one JSON line: {"text":"..."}, or
                     {"base64":"..."} when it is not valid UTF-8
      --no-create    fail (ERR_NPIPE_NOT_FOUND) instead of creating a missing FIFO
      --max-partial N  frames: bytes kept for unfinished messages, all writers
                     together (default max(4 x --max-size, 256 MiB))
${FIFO_OPTIONS_HELP.replace('give up after MS milliseconds', 'exit if no message comes for MS milliseconds')}

With --format frames, a message that cannot be delivered whole (its writer died
mid-message, it was cut by an earlier reader's departure and sent again, it is
over --max-size) is dropped and reported on stderr, one line each:
  npipe listen: dropped a message from writer 5f3a9c01 (pid 4242): writer-died, 1048576 bytes

Exit codes: 0 done, 1 failure (a malformed stream: ERR_NPIPE_BAD_FRAME), 2 usage,
3 timeout, 4 not a FIFO or unsafe.

Examples:
  npipe listen /tmp/jobs
  npipe listen /tmp/jobs --count 1 --timeout 5000
  npipe listen /tmp/jobs --format length --json
  npipe listen nats://127.0.0.1:4222/jobs --jetstream

Over NATS (a nats:// URL): listeners on one subject share its messages (a queue
group; ?group=NAME to choose it). With --jetstream a message is acknowledged once
the next one is asked for, that is after it was written out: a listener killed
before that gets it again after ack-wait (30 s; ?ack-wait=MS in the URL).`,
  options: {
    ...fifoOptions,
    count: { type: 'string', short: 'n' },
    once: { type: 'boolean' },
    json: { type: 'boolean' },
    create: { type: 'boolean' },
    'max-partial': { type: 'string' },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe listen takes exactly one FIFO path (see npipe listen --help)');
    const path = positionals[0]!;
    checkAddress(path, values);
    const { timeout, ...options } = commonFifoOptions(values);
    const count = intOption(values.count, 'count', { min: 1 });
    const json = values.json === true;
    const raw = options.format === 'raw';
    if (json && raw) throw new UsageError('--json needs message boundaries; it does not go with --format raw');

    const maxPartialBytes = intOption(values['max-partial'], 'max-partial', { min: 1 });
    if (raw && count === undefined && !isNatsUrl(path) && io.stdout === process.stdout && canSplice() && spliceableStdout()) {
      // The byte stream is spliced from the FIFO into stdout, never through this
      // process (Linux; docs/TUNING.md). --timeout: no byte for that long. A signal
      // ends it at once, exit 0, with everything read from the pipe written out.
      try {
        await receiveRawInto(path, 1, io.stdout, {
          ...options,
          keepOpen: values.once !== true,
          create: values.create !== false,
          signal: io.stop,
          ...(timeout === undefined ? {} : { idleTimeout: timeout }),
        });
      } catch (err) {
        // Whoever read our stdout went away (npipe listen | head -c 10): stop quietly, as cat does.
        if (isErrno(err, 'EPIPE')) return EXIT.ok;
        throw err;
      }
      return EXIT.ok;
    }

    const receiver = await openReceiver<Buffer>(path, {
      ...options,
      ...(maxPartialBytes === undefined ? {} : { maxPartialBytes }),
      codec: 'bytes',
      keepOpen: values.once !== true,
      create: values.create !== false,
      onDrop: (d) =>
        io.stderr.write(
          `npipe listen: dropped a message${d.writerId ? ` from writer ${d.writerId.toString(16).padStart(8, '0')}` : ''}` +
            `${d.pid ? ` (pid ${d.pid})` : ''}: ${d.reason}, ${d.bytes} bytes\n`,
        ),
    });
    const stop = () => void receiver.close();
    io.stop.addEventListener('abort', stop, { once: true });
    let received = 0;
    try {
      // Output is gathered and written in large pieces: one write per message would
      // cost more than everything else together.
      const out: Buffer[] = [];
      let outBytes = 0;
      const flush = async () => {
        if (outBytes === 0) return;
        const data = out.length === 1 ? out[0]! : Buffer.concat(out, outBytes);
        out.length = 0;
        outBytes = 0;
        if (!io.stdout.write(data)) await drained(io.stdout);
      };
      const add = (chunk: Buffer) => {
        out.push(chunk);
        outBytes += chunk.length;
      };
      try {
        for (;;) {
          let message = receiver.tryReceive();
          if (message === undefined) {
            await flush();
            const wait = deadline(
              { timeout },
              `no message arrived on ${path}; check that a writer is sending, or wait longer (--timeout)`,
            );
            try {
              message = await receiver.receive({ signal: wait.signal });
            } finally {
              wait.dispose();
            }
            if (message === undefined) break;
          }
          received++;
          if (raw) add(message);
          else if (json) add(Buffer.from(jsonLine(message)));
          else {
            add(message);
            add(NEWLINE);
          }
          if (outBytes >= OUTPUT_CHUNK) await flush();
          if (count !== undefined && received >= count) break;
        }
      } finally {
        await flush();
      }
    } finally {
      io.stop.removeEventListener('abort', stop);
      await receiver.close();
      // Messages this process took out of the pipe past --count: say so rather than drop them silently.
      let extra = 0;
      while ((await receiver.receive()) !== undefined) extra++;
      if (extra > 0) {
        io.stderr.write(`npipe listen: ${extra} message(s) read from the pipe after the ${count}th were discarded\n`);
      }
    }
    return EXIT.ok;
  },
};

/** stdout is something splice(2) writes to: a regular file, a pipe, or a device such as /dev/null that is not a terminal. */
function spliceableStdout(): boolean {
  const st = fstatSync(1);
  return st.isFile() || st.isFIFO() || (st.isCharacterDevice() && !isatty(1));
}

const NEWLINE = Buffer.from('\n');
const OUTPUT_CHUNK = 256 * 1024;

function jsonLine(message: Buffer): string {
  let record: { text: string } | { base64: string };
  try {
    record = { text: utf8.decode(message) };
  } catch {
    record = { base64: message.toString('base64') };
  }
  return `${JSON.stringify(record)}\n`;
}

function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
