import { createInterface } from 'node:readline';
import { openPublisher } from '../api.js';
import { EXIT, UsageError, checkAddress, intOption, slowOption, type Command } from './args.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';

/** Publishes of stdin's lines not yet settled, at most. */
const IN_FLIGHT = 256;

export const publishCommand: Command = {
  name: 'publish',
  help: `Usage: npipe publish <topic> [message...] [options]

Publishes each message argument to every subscriber of <topic> (npipe
subscribe), or, with no message arguments, each line of stdin. A topic is a
folder (made mode 0700 if missing) in which each subscriber keeps a FIFO of its
own; a message goes into every one of them, whole, in order. A subscriber that
joins gets what is published after it joined; one that is gone (closed, or
killed) is let go and its FIFO removed, never waited for. With no subscriber
the message goes nowhere, as on a radio: publish does not wait for one.

Options:
      --slow P       for subscribers that chose no --slow of their own: block
                     (default: wait for the slowest), drop (skip one that is
                     over --max-queued behind; it counts what it missed) or
                     disconnect (let it go and tell it)
      --max-queued N bytes queued for one drop or disconnect subscriber
                     (default 8388608, 8 MiB); memory stays bounded
      --max-size N   largest message in bytes (default 67108864, 64 MiB)
  -h, --help         show this help

Over NATS (<topic> a nats:// URL): a core NATS publish on the subject; every
subscriber subscribed at that moment gets it (nats pub). A subscriber that does
not keep up is NATS's to handle (drop); --slow block or disconnect is refused.

${NATS_FLAGS_HELP}

Exit codes: 0 published, 1 failure, 2 usage, 4 the topic folder is unsafe (a
symlink, another user's, open to others).

Examples:
  npipe publish /tmp/news "hello, everyone"
  tail -f app.log | npipe publish /tmp/log`,
  options: { ...natsFlags, 'max-size': { type: 'string' }, slow: { type: 'string' }, 'max-queued': { type: 'string' } },
  async run(values, positionals, io) {
    const [topic, ...messages] = positionals;
    if (!topic) throw new UsageError('npipe publish needs a topic folder (see npipe publish --help)');
    await checkAddress(topic, values);
    const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 });
    const nats = natsOptionsFrom(values);
    const slow = slowOption(values.slow);
    const maxQueuedBytes = intOption(values['max-queued'], 'max-queued', { min: 1 });
    const publisher = await openPublisher(topic, {
      codec: 'bytes',
      ...(nats === undefined ? {} : { nats }),
      ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
      ...(slow === undefined ? {} : { slow }),
      ...(maxQueuedBytes === undefined ? {} : { maxQueuedBytes }),
    });
    try {
      if (messages.length > 0) {
        await Promise.all(messages.map((m) => publisher.publish(Buffer.from(m, 'utf8'))));
      } else {
        const lines = createInterface({ input: io.stdin, crlfDelay: Infinity });
        const stop = () => lines.close();
        io.stop.addEventListener('abort', stop, { once: true });
        try {
          // Up to IN_FLIGHT publishes at once: the subscribers' senders batch what is queued into fewer writes.
          const inFlight: Promise<void>[] = [];
          for await (const line of lines) {
            const published = publisher.publish(Buffer.from(line, 'utf8'));
            // Awaited in turn below; a later one failing first (the topic folder removed) is not an unhandled rejection.
            published.catch(() => {});
            inFlight.push(published);
            if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
          }
          await Promise.all(inFlight);
        } finally {
          io.stop.removeEventListener('abort', stop);
        }
      }
    } finally {
      await publisher.close();
    }
    if (io.stop.aborted) throw io.stop.reason;
    return EXIT.ok;
  },
};
