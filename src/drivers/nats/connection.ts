/**
 * Opening a NATS connection the npipe way: errors with npipe codes, an optional
 * wait for the server (timeout, signal), and reconnection for ever once connected
 * (a server restart is a pause, not an error: nats.js buffers and resubscribes).
 * Credentials and TLS come from the `nats` options (credentials.ts); a refusal
 * (refusals.ts: wrong credentials, an untrusted certificate) is never retried.
 */
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { UnreachableError } from '../../errors.js';
import { abortableWait, deadline, sleep, type WaitOptions } from '../../util/abort.js';
import { loginOptions } from './credentials.js';
import type { NatsOptions } from './options.js';
import { refusal } from './refusals.js';
import type { NatsAddress } from './url.js';

export interface NatsConnectOptions extends WaitOptions {
  /** Retry until the server is there (up to `timeout`), instead of failing at once. */
  wait?: boolean;
  /** Credentials and TLS (the server itself is already in the address: servers.ts). */
  nats?: NatsOptions;
}

const FIRST_RETRY_MS = 50;
/** nats.js's wait for a server to answer, per attempt. */
const CONNECT_TIMEOUT_MS = 5000;
const MAX_RETRY_MS = 1000;

/**
 * A NATS connection to `address`'s server (not a request/reply client: that is rpc-client.ts's connectNatsClient).
 * @throws ERR_NPIPE_UNREACHABLE (no server answered, without `wait`), ERR_NPIPE_TIMEOUT (with `wait`: none within `timeout`),
 *   ERR_NPIPE_AUTH (the server refused the credentials, or a certificate is not trusted; never retried),
 *   ERR_NPIPE_INVALID_ARG (a credentials or TLS file that cannot be read or used), `signal.reason` (aborted).
 */
export async function connectNats(address: NatsAddress, options: NatsConnectOptions = {}): Promise<NatsConnection> {
  const login = await loginOptions(address, options.nats);
  const settings: ConnectionOptions = {
    servers: address.server.split(','),
    ...login,
    name: `npipe ${process.pid}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    timeout: CONNECT_TIMEOUT_MS,
  };
  const wait = deadline(options, `no NATS server answered at ${address.server}`);
  // timeout 0 is "do not wait" (one attempt, as a FIFO's timeout 0 fails at once without a reader), not a zero-length attempt.
  const ends = options.timeout === undefined || options.timeout === 0 ? Infinity : performance.now() + options.timeout;
  const cancel = options.timeout === 0 ? options.signal : wait.signal;
  try {
    for (let delay = FIRST_RETRY_MS; ; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
      wait.signal?.throwIfAborted();
      try {
        // One attempt takes no longer than what is left of `timeout` (nats.js's own is 5 s).
        const left = Math.max(1, Math.ceil(ends - performance.now()));
        return await attempt({ ...settings, timeout: Math.min(CONNECT_TIMEOUT_MS, left) }, cancel);
      } catch (err) {
        if (cancel?.aborted && err === cancel.reason) throw err;
        const refused = await refusal(err, address, settings);
        if (refused) throw refused;
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

/**
 * One connect(), given up as soon as `signal` aborts (timeout, SIGINT): nats.js's
 * connect takes no signal, so a connection it makes after that is closed at once.
 */
function attempt(settings: ConnectionOptions, signal: AbortSignal | undefined): Promise<NatsConnection> {
  const connecting = connect(settings);
  if (!signal) return connecting;
  const closeWhenMade = () => void connecting.then((nc) => nc.close().catch(() => {}), () => {});
  if (signal.aborted) {
    closeWhenMade();
    return Promise.reject(signal.reason);
  }
  return abortableWait<NatsConnection>(signal, closeWhenMade, (settle) => void connecting.then(settle.resolve, settle.reject));
}

/** The server's largest message (max_payload), or 1 MiB (its default) before the server said. */
export function maxPayload(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}
