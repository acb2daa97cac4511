/**
 * FrameSender and FrameReceiver over NATS. A NATS message is already a whole
 * message, so there is no framing: one send is one NATS message on the subject.
 * The address's delivery picks how: core NATS (core.ts, at most once) or
 * JetStream (jetstream.ts, stored, at least once).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { DropInfo } from '../../framing/index.js';
import type { FrameReceiver, FrameSender } from '../../transport/types.js';
import { connectNats, maxPayload, type NatsConnectOptions } from './connection.js';
import { CoreFrameReceiver, CoreFrameSender, DEFAULT_MAX_QUEUED_BYTES } from './core.js';
import { lost } from './failures.js';
import { JetStreamFrameReceiver, JetStreamFrameSender } from './jetstream.js';
import { ensureConsumer, ensureStream } from './jetstream-setup.js';
import type { NatsAddress } from './url.js';

export interface NatsSenderOptions extends NatsConnectOptions {
  /** Largest message, bytes; never more than the server's max_payload (1 MiB unless configured). */
  maxMessageSize?: number;
}

export interface NatsReceiverOptions extends NatsConnectOptions {
  maxMessageSize?: number;
  onDrop?: (info: DropInfo) => void;
  /** Core NATS: bytes of messages held and not yet taken before new ones are dropped (default 64 MiB). */
  maxQueuedBytes?: number;
  /**
   * receiveInto() with a message longer than its buffer fills the buffer and keeps
   * the rest for the next call, instead of ERR_NPIPE_BUFFER_TOO_SMALL: the `raw`
   * format, a byte stream, as over a FIFO.
   */
  splitInto?: boolean;
}

/** Room for the headers a JetStream publish adds (Nats-Msg-Id) within the server's max_payload. */
const JS_HEADER_ROOM = 128;

function limitFor(nc: NatsConnection, maxMessageSize: number | undefined, delivery: NatsAddress['delivery'] = 'core'): number {
  return Math.min(maxPayload(nc) - (delivery === 'jetstream' ? JS_HEADER_ROOM : 0), maxMessageSize ?? Infinity);
}

export async function openNatsFrameSender(address: NatsAddress, options: NatsSenderOptions = {}): Promise<FrameSender> {
  const nc = await connectNats(address, options);
  try {
    if (address.delivery === 'jetstream') {
      const stream = await ensureStream(nc, address);
      return new JetStreamFrameSender(nc, { ...address, stream }, limitFor(nc, options.maxMessageSize, 'jetstream'));
    }
    return new CoreFrameSender(nc, address, limitFor(nc, options.maxMessageSize));
  } catch (err) {
    await nc.close().catch(() => {});
    throw lost(address, err); // an NpipeError as it is; anything else from NATS: the connection failed
  }
}

export async function openNatsFrameReceiver(address: NatsAddress, options: NatsReceiverOptions = {}): Promise<FrameReceiver> {
  const nc = await connectNats(address, options);
  try {
    const limit = limitFor(nc, options.maxMessageSize);
    let receiver: FrameReceiver;
    if (address.delivery === 'jetstream') {
      const resolved = { ...address, stream: await ensureStream(nc, address) };
      await ensureConsumer(nc, resolved);
      receiver = new JetStreamFrameReceiver(nc, resolved, limit, options.onDrop, options.splitInto ?? false);
    } else receiver = new CoreFrameReceiver(nc, address, limit, options.onDrop, options.splitInto ?? false, options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES);
    // The subscription is on the server when this returns: a message sent after it is ours.
    await nc.flush();
    return receiver;
  } catch (err) {
    await nc.close().catch(() => {});
    throw lost(address, err); // an NpipeError as it is; anything else from NATS: the connection failed
  }
}

