/**
 * The NATS driver: `nats://host:port/subject[?delivery=jetstream]`. Each message
 * is one NATS message (the format only splits the CLI's input); request/reply is
 * NATS's own, with a queue group. Loaded on first use (registry.ts): a process
 * that only uses FIFOs never loads the NATS client (about 12 MiB of RSS and 30 ms
 * of start-up).
 */
import type { Driver } from '../types.js';
import { openNatsFrameReceiver, openNatsFrameSender } from './open.js';
import { connectNatsClient } from './rpc-client.js';
import { serveNats } from './rpc-server.js';
import { statNats } from './stat.js';
import { openNatsPublisher, subscribeNats } from './pubsub.js';
import { streamAdmin } from './streams.js';
import type { NatsOptions } from './options.js';
import { withServer } from './servers.js';
import { parseNatsUrl, withGroupChoice, type Delivery, type NatsAddress } from './url.js';

/** Bytes of a raw stream sent as one NATS message (well under the default max_payload of 1 MiB). */
const RAW_PIECE = 64 * 1024;

function addressOf(url: string, options: { delivery?: Delivery; nats?: NatsOptions }): NatsAddress {
  const address = withServer(url, parseNatsUrl(url), options.nats);
  return options.delivery === undefined ? address : { ...address, delivery: options.delivery };
}

/** A FIFO's waits map onto NATS's: `timeout`/`signal` bound connecting; waiting for a reader means waiting for the server. */
function natsOptions(options: { timeout?: number; signal?: AbortSignal; maxMessageSize?: number; nats?: NatsOptions }, wait: boolean) {
  return {
    wait,
    ...(options.nats === undefined ? {} : { nats: options.nats }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
  };
}

export const driver: Driver = {
  name: 'nats',
  noun: 'a NATS URL',
  capabilities: {
    wireFormat: false,
    waitsForReader: false,
    acknowledges: true,
    rawPiece: RAW_PIECE,
    inspect: (url, options) => statNats(addressOf(url, options), natsOptions(options, false)),
    streams: streamAdmin,
    pubsub: {
      openPublisher: (url, _framing, options) => openNatsPublisher(addressOf(url, options), { ...natsOptions(options, false), ...(options.slow ? { slow: options.slow } : {}) }),
      subscribe: (url, _framing, options) =>
        subscribeNats(addressOf(url, options), {
          ...natsOptions(options, false),
          ...(options.slow ? { slow: options.slow } : {}),
          ...(options.onDrop ? { onDrop: options.onDrop } : {}),
          ...(options.onMissed ? { onMissed: options.onMissed } : {}),
          ...(options.maxQueuedBytes === undefined ? {} : { maxQueuedBytes: options.maxQueuedBytes }),
        }),
    },
    // jetstream, listen's queue-group choice, and cli/nats-options.ts's connection flags (kept in step by test/nats-auth.test.ts).
    cliOptions: ['jetstream', 'queue', 'fan-out', 'server', 'user', 'password', 'token', 'nkey', 'creds', 'tlsca', 'tlscert', 'tlskey'],
  },
  openSender: async (url, _framing, options) => openNatsFrameSender(addressOf(url, options), natsOptions(options, options.waitForReader === true)),
  openReceiver: async (url, framing, options) =>
    openNatsFrameReceiver(withGroupChoice(addressOf(url, options), options), {
      ...natsOptions(options, false),
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
      ...(options.maxQueuedBytes === undefined ? {} : { maxQueuedBytes: options.maxQueuedBytes }),
      splitInto: framing.byteStream,
    }),
  serve: (url, handler, options) => serveNats(url, handler, options),
  connect: (url, options) => connectNatsClient(url, options),
};
