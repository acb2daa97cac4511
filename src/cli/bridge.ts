import { NpipeError } from '../errors.js';
import { openReceiver, openSender } from '../api.js';
import type { Sender } from '../messaging.js';
import { NATS_FLAGS_HELP, natsFlags } from './nats-options.js';
import { EXIT, FIFO_OPTIONS_HELP, UsageError, checkBridgeAddresses, commonFifoOptions, fifoOptions, takes, type Command } from './args.js';

/** Sends not yet confirmed, at most, when the source has no acknowledgements to wait for. */
const WINDOW = 1024;

export const bridgeCommand: Command = {
  name: 'bridge',
  help: `Usage: npipe bridge <from> <to> [options]

Carries every message arriving on <from> to <to>, where one of them is a FIFO
path and the other a NATS URL (nats://host:port/subject):

  npipe bridge /tmp/jobs nats://10.0.0.5:4222/jobs   # where scripts write
  npipe bridge nats://10.0.0.5:4222/jobs /tmp/jobs   # where a reader reads

so that an unchanged script writing "echo hello > /tmp/jobs" on one machine
reaches a reader of /tmp/jobs (or npipe listen nats://...) on another. The FIFO
side uses --format (default lines: one message per line); each message is one
NATS message. FIFOs are created if missing. Runs until SIGINT/SIGTERM (exit 0).

It keeps going while FIFO writers and readers come and go, and while the NATS
server restarts (it reconnects). Delivery across a restart: with --jetstream
nothing is lost (sends are stored and retried until the server confirms; a
message is acknowledged only once it is in the FIFO); with core NATS, messages
sent while no listener is subscribed, or lost with the connection, are gone.
A message one side refuses (longer than the NATS server's max_payload, or
one the FIFO's --format cannot carry) is reported on stderr and skipped.

Options:
${FIFO_OPTIONS_HELP.replace('  -t, --timeout T    give up after T: 250ms, 5s, 2m (a bare number is\n                     milliseconds); exit 3, ERR_NPIPE_TIMEOUT\n', '')}

${NATS_FLAGS_HELP}

Exit codes: 0 stopped by a signal, 1 failure, 2 usage, 3 NATS server not
reachable at start (ERR_NPIPE_UNREACHABLE), 4 not a FIFO or unsafe.`,
  options: { ...fifoOptions, ...natsFlags },
  async run(values, positionals, io) {
    if (positionals.length !== 2) throw new UsageError('npipe bridge takes <from> and <to> (see npipe bridge --help)');
    const [from, to] = positionals as [string, string];
    const [source, target] = await checkBridgeAddresses(from, to, values);
    if (source.name === target.name) {
      throw new UsageError(`npipe bridge carries messages between two transports, one FIFO path and one nats:// URL; both are ${source.noun}s (see npipe bridge --help)`);
    }
    if (values.timeout !== undefined) throw new UsageError('npipe bridge runs until stopped; it takes no --timeout');
    const { timeout: _unused, delivery, ...options } = commonFifoOptions(values);
    /** --jetstream for the side that takes it. */
    const deliveryFor = (driver: typeof source) => (delivery && takes(driver, 'jetstream') ? { delivery } : {});
    const receiver = await openReceiver<Buffer>(from, {
      ...options,
      ...deliveryFor(source),
      codec: 'bytes',
      keepOpen: true,
      onDrop: (d) => io.stderr.write(`npipe bridge: dropped a message from ${from}: ${d.reason}, ${d.bytes} bytes\n`),
    });
    let sending = false;
    const stop = () => {
      // A message still on its way into the FIFO is not done: JetStream keeps it (at least once).
      if (sending) receiver.giveBack();
      void receiver.close();
    };
    io.stop.addEventListener('abort', stop, { once: true });
    let sender: Sender<Buffer> | undefined;
    /** A message one side refuses (too large for it, not encodable in the FIFO's format): reported and skipped. */
    const skippable = (err: unknown) => err instanceof NpipeError && (err.code === 'ERR_NPIPE_FRAME_TOO_LARGE' || err.code === 'ERR_NPIPE_BAD_FRAME');
    const skip = (err: NpipeError, size: number) =>
      io.stderr.write(`npipe bridge: skipped a message of ${size} bytes from ${from}: ${err.code}: ${err.message.replace(/[\r\n]+/g, ' ')}\n`);
    try {
      // A FIFO side waits for its reader for as long as it takes. A NATS server that is
      // not there at start is an error at once (exit 3), in both directions; once
      // connected, the bridge rides out restarts (it reconnects).
      sender = await openSender<Buffer>(to, {
        ...options,
        ...deliveryFor(target),
        codec: 'bytes',
        waitForReader: target.capabilities.waitsForReader,
        signal: io.stop,
      });
      io.stderr.write(`npipe bridge: ${from} -> ${to}\n`);
      // From NATS: one message at a time, so that (JetStream) a message is acknowledged
      // only once it is in the FIFO. From a FIFO there is nothing to acknowledge: keep
      // up to WINDOW sends going, in order; each settles into `failure` or a report,
      // never into an unhandled rejection.
      const inFlight: Promise<void>[] = [];
      let failure: { err: unknown } | undefined;
      const awaitEach = source.capabilities.acknowledges;
      for await (const message of receiver) {
        const sent = sender.send(message);
        if (awaitEach) {
          sending = true;
          try {
            await sent;
          } catch (err) {
            // Never fits the FIFO: reported and acknowledged (given back, it would come back for ever).
            if (skippable(err)) skip(err as NpipeError, message.byteLength);
            else {
              // Not in the FIFO: JetStream delivers it again (to us when we restart).
              receiver.giveBack();
              throw err;
            }
          } finally {
            sending = false;
          }
        } else {
          inFlight.push(
            sent.catch((err: unknown) => {
              if (skippable(err)) skip(err as NpipeError, message.byteLength);
              else if (!failure) {
                // Reported now, not when the next message comes: the loop ends.
                failure = { err };
                void receiver.close();
              }
            }),
          );
          if (failure) throw failure.err;
          if (inFlight.length >= WINDOW) await Promise.all(inFlight.splice(0, WINDOW / 2));
        }
      }
      await Promise.all(inFlight);
      if (failure) throw failure.err;
    } catch (err) {
      if (!io.stop.aborted) throw err;
    } finally {
      io.stop.removeEventListener('abort', stop);
      await receiver.close();
      // Stopped: what is still queued is dropped rather than waited for (a reader may never come).
      await sender?.close(io.stop.aborted ? { signal: io.stop } : {});
    }
    return EXIT.ok;
  },
};
