/**
 * NATS failures as npipe errors, for senders, receivers and request/reply alike:
 * a connection that is gone is ERR_NPIPE_UNREACHABLE; a message over the limit is
 * ERR_NPIPE_FRAME_TOO_LARGE; an npipe error passes as it is.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { ClosedError, FrameTooLargeError, NpipeError, UnreachableError } from '../../errors.js';
import type { CallOptions } from '../../transport/types.js';
import type { NatsAddress } from './url.js';

function tooLarge(size: number, limit: number, address: NatsAddress): FrameTooLargeError {
  return new FrameTooLargeError(size, limit, `a message for nats://${address.server}/${address.subject} (limit: maxMessageSize or the server's max_payload)`);
}

/** Why a sender cannot take `message` at all (closed, aborted, too large), as a rejected promise; else undefined. */
export function refuseSend(closed: boolean, message: Uint8Array, options: CallOptions, limit: number, address: NatsAddress): Promise<never> | undefined {
  if (closed) return Promise.reject(new ClosedError('this sender is closed'));
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  if (message.byteLength > limit) return Promise.reject(tooLarge(message.byteLength, limit, address));
  return undefined;
}

/** A failure of an open connection: ERR_NPIPE_UNREACHABLE, unless it is an npipe error already. */
export function lost(address: NatsAddress, err: unknown): NpipeError {
  if (err instanceof NpipeError) return err;
  return new UnreachableError(`the connection to the NATS server at ${address.server} is closed (${(err as Error)?.message ?? String(err)})`, {
    cause: err,
  });
}

/** The connection failed between connecting and the first round trip: closes it and throws ERR_NPIPE_UNREACHABLE. */
export async function lostAtStart(nc: NatsConnection, address: NatsAddress, err: unknown): Promise<never> {
  await nc.close().catch(() => {});
  throw new UnreachableError(`lost the connection to the NATS server at ${address.server} while starting (${(err as Error)?.message ?? String(err)})`, { cause: err });
}
