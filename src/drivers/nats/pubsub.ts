/**
 * Publish/subscribe over NATS (issue 20): the same API as over a FIFO topic, on
 * core NATS's own model. A publisher publishes on the subject; a subscriber is a
 * plain subscription, in no queue group (`nats sub`), so every subscriber gets
 * every message published while it is subscribed.
 *
 * Slow subscribers are NATS's to handle: the server never waits for one, and a
 * subscriber's client drops what it cannot hold (maxQueuedBytes), each drop
 * reported as a missed message. That is the `drop` policy; `block` and
 * `disconnect` need a FIFO topic and are refused here rather than pretended.
 */
import { UnsupportedError } from '../../errors.js';
import type { CallOptions, FramePublisher, FrameReceiver, SlowPolicy } from '../../transport/types.js';
import type { DropInfo } from '../../framing/index.js';
import { openNatsFrameReceiver, openNatsFrameSender, type NatsReceiverOptions, type NatsSenderOptions } from './open.js';
import type { NatsAddress } from './url.js';

function checkNatsPubSub(address: NatsAddress, slow: SlowPolicy | undefined): void {
  if (address.delivery !== 'core') {
    throw new UnsupportedError(
      `publish/subscribe over NATS is core NATS (every subscriber gets every message published while it is subscribed); delivery=${address.delivery} applies to send/listen`,
    );
  }
  if (slow !== undefined && slow !== 'drop') {
    throw new UnsupportedError(
      `over NATS a subscriber that does not keep up is NATS's to handle: its client drops what it cannot hold (the drop policy); slow: '${slow}' needs a FIFO topic`,
    );
  }
}

export async function openNatsPublisher(address: NatsAddress, options: NatsSenderOptions & { slow?: SlowPolicy }): Promise<FramePublisher> {
  checkNatsPubSub(address, options.slow);
  const sender = await openNatsFrameSender(address, options);
  return {
    publish: (message: Uint8Array, call?: CallOptions) => sender.send(message, call),
    // The server knows its subscriptions; a publisher does not.
    subscribers: undefined,
    close: (call?: CallOptions) => sender.close(call),
    get closed() {
      return sender.closed;
    },
  };
}

export async function subscribeNats(
  address: NatsAddress,
  options: NatsReceiverOptions & { slow?: SlowPolicy; onMissed?: (info: { publisher: string; messages: number }) => void },
): Promise<FrameReceiver> {
  checkNatsPubSub(address, options.slow);
  const { onMissed, onDrop, slow: _slow, ...rest } = options;
  const reportDrop = (info: DropInfo) => {
    onDrop?.(info);
    // What the client could not hold is what a FIFO topic's drop subscriber would miss.
    if (info.reason === 'slow-consumer') onMissed?.({ publisher: 'nats', messages: 1 });
  };
  const { fanOut: _group, ...plain } = address;
  return openNatsFrameReceiver({ ...plain, fanOut: true }, { ...rest, onDrop: reportDrop });
}
