/**
 * `npipe stat nats://...`: the server and subject an address reaches and, for
 * JetStream, its stream and durable consumer as the server counts them (issue 19
 * #1). Looking creates nothing: a missing stream or consumer is reported as
 * missing (null), not made, unlike a sender or receiver.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, JetStreamApiError, type ConsumerInfo, type StreamInfo } from '@nats-io/jetstream';
import { UnreachableError } from '../../errors.js';
import { connectNats, maxPayload, type NatsConnectOptions } from './connection.js';
import { lost } from './failures.js';
import { streamNameFor, type NatsAddress } from './url.js';

export interface NatsStatus {
  type: 'nats';
  server: { address: string; name: string; version: string; maxPayload: number; jetstream: boolean };
  subject: string;
  delivery: NatsAddress['delivery'];
  /** Core NATS: the queue group listeners join (core NATS keeps no messages, so nothing waits). */
  group?: string;
  /** JetStream: the stream that stores the subject, or null if there is none yet. */
  stream?: { name: string; subjects: string[]; messages: number; bytes: number; firstSeq: number; lastSeq: number; consumers: number } | null;
  /** JetStream: npipe's durable consumer for the subject, or null if no receiver has made it yet. */
  consumer?: {
    name: string;
    /** Stored and not yet delivered to it. */
    pending: number;
    /** Delivered and not yet acknowledged. */
    ackPending: number;
    redelivered: number;
    /** The last stream sequence delivered, and the one up to which every message is acknowledged. */
    deliveredSeq: number;
    ackedSeq: number;
    /** Whether a receiver is listening now (a push consumer's interest). */
    active: boolean;
  } | null;
}

const NOT_FOUND_STREAM = 10059;
const NOT_FOUND_CONSUMER = 10014;

async function orMissing<T>(promise: Promise<T>, code: number): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === code) return undefined;
    throw err;
  }
}

async function jetStreamPart(nc: NatsConnection, address: NatsAddress): Promise<Pick<NatsStatus, 'stream' | 'consumer'>> {
  const jsm = await jetstreamManager(nc).catch((err: unknown) => {
    throw new UnreachableError(`JetStream is not enabled on the NATS server at ${address.server}; start it with nats-server -js`, { cause: err });
  });
  let info: StreamInfo | undefined = await orMissing(jsm.streams.info(address.stream), NOT_FOUND_STREAM);
  if (!info && address.stream === streamNameFor(address.subject)) {
    // With the default name, a stream that captures the subject already is the one used (jetstream-setup.ts).
    const other = await jsm.streams.find(address.subject).catch(() => undefined);
    if (other) info = await orMissing(jsm.streams.info(other), NOT_FOUND_STREAM);
  }
  if (!info) return { stream: null, consumer: null };
  const consumer: ConsumerInfo | undefined = await orMissing(jsm.consumers.info(info.config.name, address.durable), NOT_FOUND_CONSUMER);
  return {
    stream: {
      name: info.config.name,
      subjects: info.config.subjects ?? [],
      messages: info.state.messages,
      bytes: info.state.bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      consumers: info.state.consumer_count,
    },
    consumer: consumer
      ? {
          name: consumer.name,
          pending: consumer.num_pending,
          ackPending: consumer.num_ack_pending,
          redelivered: consumer.num_redelivered,
          deliveredSeq: consumer.delivered.stream_seq,
          ackedSeq: consumer.ack_floor.stream_seq,
          active: consumer.push_bound === true,
        }
      : null,
  };
}

export async function statNats(address: NatsAddress, options: NatsConnectOptions): Promise<NatsStatus> {
  const nc = await connectNats(address, options);
  try {
    const info = nc.info;
    const status: NatsStatus = {
      type: 'nats',
      server: {
        address: address.server,
        name: info?.server_name ?? '',
        version: info?.version ?? '',
        maxPayload: maxPayload(nc),
        jetstream: info?.jetstream === true,
      },
      subject: address.subject,
      delivery: address.delivery,
    };
    if (address.delivery === 'core') return { ...status, group: address.group };
    return { ...status, ...(await jetStreamPart(nc, address)) };
  } catch (err) {
    throw lost(address, err);
  } finally {
    await nc.close().catch(() => {});
  }
}
