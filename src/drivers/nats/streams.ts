/**
 * The JetStream streams npipe makes (jetstream-setup.ts), listed and removed for
 * `npipe streams`: a stream per subject accumulates on the server, and nothing
 * else in npipe removes one. npipe's own are those whose description says so, or
 * whose name has its NPIPE_ prefix (streams of npipes from before the description).
 */
import { jetstreamManager, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { InvalidArgumentError, NpipeError, UnreachableError } from '../../errors.js';
import type { MediumOptions, StreamAdmin, StreamSummary } from '../types.js';
import { connectNats } from './connection.js';
import { NPIPE_STREAM_DESCRIPTION } from './jetstream-setup.js';
import { withServer } from './servers.js';
import { DEFAULT_ACK_WAIT_MS, NATS_DEFAULT_PORT, type NatsAddress } from './url.js';

/** `nats://[user:password@]host[:port][/]`, or `nats:///` for the server of the connection options. */
function serverAddress(url: string, options: MediumOptions): NatsAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`${JSON.stringify(url)} is not a NATS server address; write nats://host:port (or nats:/// with --server or NATS_URL)`);
  }
  if (parsed.protocol !== 'nats:' || (parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search !== '' || parsed.hash !== '') {
    throw new InvalidArgumentError(`${JSON.stringify(url)} is not a NATS server address; write nats://host:port, without a subject or options`);
  }
  const address: NatsAddress = {
    server: parsed.hostname === '' ? '' : `${parsed.hostname}:${parsed.port === '' ? NATS_DEFAULT_PORT : parsed.port}`,
    ...(parsed.username === '' ? {} : { user: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { pass: decodeURIComponent(parsed.password) }),
    subject: '',
    delivery: 'jetstream',
    stream: '',
    durable: '',
    ackWait: DEFAULT_ACK_WAIT_MS,
    group: '',
  };
  return withServer(url, address, options.nats);
}

async function withManager<T>(url: string, options: MediumOptions, use: (jsm: JetStreamManager, address: NatsAddress) => Promise<T>): Promise<T> {
  const address = serverAddress(url, options);
  const nc: NatsConnection = await connectNats(address, options.nats === undefined ? {} : { nats: options.nats });
  try {
    const jsm = await jetstreamManager(nc).catch((err: unknown) => {
      throw new UnreachableError(`JetStream is not enabled on the NATS server at ${address.server}; there are no streams`, { cause: err });
    });
    return await use(jsm, address);
  } finally {
    await nc.close().catch(() => {});
  }
}

function isNpipes(name: string, description: string | undefined): boolean {
  return description?.startsWith(NPIPE_STREAM_DESCRIPTION) === true || name.startsWith('NPIPE_');
}

export const streamAdmin: StreamAdmin = {
  list: (url, options) =>
    withManager(url, options, async (jsm) => {
      const found: StreamSummary[] = [];
      for await (const info of jsm.streams.list()) {
        found.push({
          name: info.config.name,
          subjects: info.config.subjects ?? [],
          messages: info.state.messages,
          bytes: info.state.bytes,
          consumers: info.state.consumer_count,
          npipe: isNpipes(info.config.name, info.config.description),
        });
      }
      return found.sort((a, b) => a.name.localeCompare(b.name));
    }),
  remove: (url, name, options) =>
    withManager(url, options, async (jsm, address) => {
      let description: string | undefined;
      try {
        description = (await jsm.streams.info(name)).config.description;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === 10059) throw new NpipeError('ERR_NPIPE_NOT_FOUND', `the NATS server at ${address.server} has no stream ${name}; npipe streams lists them`);
        throw err instanceof JetStreamApiError ? new InvalidArgumentError(`the stream ${JSON.stringify(name)}: ${err.message}`) : err;
      }
      if (!isNpipes(name, description) && options.force !== true) {
        throw new InvalidArgumentError(`the stream ${name} was not made by npipe (no NPIPE_ name, no "${NPIPE_STREAM_DESCRIPTION}" description); pass force (--force) to remove it anyway`);
      }
      await jsm.streams.delete(name);
    }),
};
