import { subscribe } from '../api.js';
import { EXIT, UsageError, checkAddress, durationOption, intOption, slowOption, type Command } from './args.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';
import { Output, printMessages } from './output.js';

export const subscribeCommand: Command = {
  name: 'subscribe',
  help: `Usage: npipe subscribe <topic> [options]

Prints every message published to <topic> (npipe publish) from now on, each
followed by a newline, as listen does. Any number of subscribers each get every
message. The subscriber keeps a FIFO of its own in the topic folder (made mode
0700 if missing), removed when it ends. Runs until --count, --timeout, or
SIGINT/SIGTERM (exit 0, with everything received written out).
Messages a publisher could not deliver to it are reported on stderr:
  npipe subscribe: missed 12 messages from publisher 5f3a9c0112ab34cd

Options:
  -n, --count N      exit 0 after N messages
  -t, --timeout T    exit 3 if no message comes for T: 250ms, 5s, 2m (a bare
                     number is milliseconds)
      --json         print each message as one JSON line: {"text":"..."}, or
                     {"base64":"..."} when it is not valid UTF-8
      --slow P       when this subscriber does not keep up, publishers:
                     block (wait for it), drop (skip it while it is over
                     their queue behind; it says how many it missed) or
                     disconnect (let it go: exit 1, ERR_NPIPE_SLOW_CONSUMER);
                     default: each publisher's --slow, block unless set
      --max-size N   largest message in bytes (default 67108864, 64 MiB)
  -h, --help         show this help

Over NATS (<topic> a nats:// URL): a plain subscription to the subject, in no
queue group (nats sub): every subscriber gets every message published while it
is subscribed. NATS drops what a slow subscriber's client cannot hold, each
reported as missed; --slow block or disconnect is refused.

${NATS_FLAGS_HELP}

Exit codes: 0 done, 1 failure (also disconnected as too slow), 2 usage,
3 timeout, 4 the topic folder is unsafe.

Examples:
  npipe subscribe /tmp/news
  npipe subscribe /tmp/news --count 1 --timeout 5s`,
  options: {
    count: { type: 'string', short: 'n' },
    timeout: { type: 'string', short: 't' },
    json: { type: 'boolean' },
    'max-size': { type: 'string' },
    slow: { type: 'string' },
    ...natsFlags,
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe subscribe takes exactly one topic folder (see npipe subscribe --help)');
    const topic = positionals[0]!;
    await checkAddress(topic, values);
    const nats = natsOptionsFrom(values);
    const count = intOption(values.count, 'count', { min: 1 });
    const timeout = durationOption(values.timeout, 'timeout');
    const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 });
    const json = values.json === true;
    const slow = slowOption(values.slow);
    const receiver = await subscribe(topic, {
      ...(slow === undefined ? {} : { slow }),
      ...(nats === undefined ? {} : { nats }),
      codec: 'bytes',
      ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
      onMissed: ({ publisher, messages }) => io.stderr.write(`npipe subscribe: missed ${messages} message${messages === 1 ? '' : 's'} from publisher ${publisher}\n`),
      onDrop: (d) => io.stderr.write(`npipe subscribe: dropped a message${d.pid ? ` (pid ${d.pid})` : ''}: ${d.reason}, ${d.bytes} bytes\n`),
    });
    const stop = () => void receiver.close();
    io.stop.addEventListener('abort', stop, { once: true });
    const out = new Output(io.stdout);
    try {
      await printMessages(receiver, out, {
        timeout,
        count,
        nothingCame: `no message was published to ${topic}; check that a publisher is running, or wait longer (--timeout)`,
        print: (message) => out.addMessage(message, json),
      });
    } finally {
      io.stop.removeEventListener('abort', stop);
      await receiver.close();
    }
    return EXIT.ok;
  },
};
