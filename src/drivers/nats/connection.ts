/**
 * Opening a NATS connection the npipe way: errors with npipe codes, an optional
 * wait for the server (timeout, signal), and reconnection for ever once connected
 * (a server restart is a pause, not an error: nats.js buffers and resubscribes).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { UnreachableError } from '../../errors.js';
import { deadline, sleep, type WaitOptions } from '../../util/abort.js';
import type { NatsAddress } from './url.js';

export interface NatsConnectOptions extends WaitOptions {
  /** Retry until the server is there (up to `timeout`), instead of failing at once. */
  wait?: boolean;
}

const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 1000;

/**
 * A NATS connection to `address`'s server (not a request/reply client: that is rpc-client.ts's connectNatsClient).
 * @throws ERR_NPIPE_UNREACHABLE (no server answered, without `wait`), ERR_NPIPE_TIMEOUT (with `wait`: none within `timeout`), `signal.reason` (aborted).
 */
export async function connectNats(address: NatsAddress, options: NatsConnectOptions = {}): Promise<NatsConnection> {
  const wait = deadline(options, `no NATS server answered at ${address.server}`);
  try {
    for (let delay = FIRST_RETRY_MS; ; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
      wait.signal?.throwIfAborted();
      try {
        return await connect({
          servers: address.server,
          ...(address.user === undefined ? {} : { user: address.user }),
          ...(address.pass === undefined ? {} : { pass: address.pass }),
          name: `npipe ${process.pid}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          timeout: 5000,
        });
      } catch (err) {
        if (!options.wait) {
          throw new UnreachableError(
            `cannot reach the NATS server at ${address.server} (${(err as Error).message}); start one (nats-server -js) or check the URL`,
            { cause: err },
          );
        }
      }
      await sleep(delay, wait.signal);
    }
  } finally {
    wait.dispose();
  }
}

/** The server's largest message (max_payload), or 1 MiB (its default) before the server said. */
export function maxPayload(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}
