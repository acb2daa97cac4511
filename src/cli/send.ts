import { createFraming, openSender, type Sender } from '../index.js';
import { EXIT, FIFO_OPTIONS_HELP, UsageError, commonFifoOptions, fifoOptions, type Command } from './args.js';

export const sendCommand: Command = {
  name: 'send',
  summary: 'send messages into a FIFO (from arguments, or stdin line by line)',
  help: `Usage: npipe send <path> [message...] [options]

Sends each message argument as one message. With no message arguments, reads
stdin: one message per line (for --format raw, the byte stream as it is).
Creates the FIFO if it is missing, like the textbook writer, unless --no-create.
Waits for a reader to open the FIFO (forever, or until --timeout).

Options:
      --wait         if the reader goes away, wait for the next one (up to
                     --timeout each time) and carry on; a message the departure
                     cut is sent again whole (frames). Without it: exit 3
                     (ERR_NPIPE_NO_READER)
      --no-create    fail (ERR_NPIPE_NOT_FOUND) instead of creating a missing FIFO
${FIFO_OPTIONS_HELP}

Exit codes: 0 sent, 1 failure, 2 usage, 3 no reader (timeout, or it went away),
4 not a FIFO or unsafe.

Examples:
  npipe send /tmp/jobs "hello" "world"
  seq 1000 | npipe send /tmp/jobs --timeout 5000
  npipe send /tmp/jobs --format length < messages.txt`,
  options: { ...fifoOptions, create: { type: 'boolean' }, wait: { type: 'boolean' } },
  async run(values, positionals, io) {
    const [path, ...messages] = positionals;
    if (!path) throw new UsageError('npipe send needs a FIFO path (see npipe send --help)');
    const options = commonFifoOptions(values);
    const sender = await openSender<Uint8Array>(path, {
      ...options,
      codec: 'bytes',
      create: values.create !== false,
      waitForReader: values.wait === true,
      signal: io.stop,
    });
    try {
      const stop = { signal: io.stop };
      if (messages.length > 0) {
        await Promise.all(messages.map((m) => sender.send(Buffer.from(m, 'utf8'), stop)));
      } else {
        await sendStdin(sender, io.stdin, options.format, options.maxMessageSize, io.stop);
      }
    } finally {
      // On SIGINT/SIGTERM: drop what is still queued (a message being written still goes out whole).
      await sender.close({ signal: io.stop });
    }
    return EXIT.ok;
  },
};

/** Stdin as messages: lines, or raw chunks. One chunk's sends are awaited before the next is read, so memory stays bounded. */
async function sendStdin(
  sender: Sender<Uint8Array>,
  stdin: NodeJS.ReadableStream,
  format: string,
  maxMessageSize: number | undefined,
  signal: AbortSignal,
) {
  const split = createFraming(format === 'raw' ? 'raw' : 'lines', maxMessageSize === undefined ? {} : { maxMessageSize });
  const decoder = split.createDecoder();
  const pending: Promise<void>[] = [];
  const emit = (line: Buffer) => pending.push(sender.send(line, { signal }));
  for await (const chunk of stdin) {
    decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer), emit);
    await Promise.all(pending.splice(0));
  }
  decoder.end(emit);
  await Promise.all(pending.splice(0));
}
