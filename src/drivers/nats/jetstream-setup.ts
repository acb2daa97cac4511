/**
 * Setting up JetStream for an address: the stream that captures its subject and
 * the durable consumer that pushes to npipe's receivers. Both are made if missing
 * and checked if present: one that is someone else's (other subjects, another
 * consumer's settings) is refused with ERR_NPIPE_INVALID_ARG, never used.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager, JetStreamApiError, RetentionPolicy, StorageType, type ConsumerInfo, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { InvalidArgumentError, NpipeError, UnreachableError } from '../../errors.js';
import { streamNameFor, type NatsAddress } from './url.js';

/**
 * The description of every stream npipe creates: how `npipe streams` tells npipe's
 * streams from others (with the NPIPE_ name prefix, for streams made before it).
 */
export const NPIPE_STREAM_DESCRIPTION = 'made by npipe';

/** Messages the server pushes to a consumer's receivers before it waits for acknowledgements. */
const MAX_ACK_PENDING = 256;

/** Where a durable consumer pushes its messages: one subject per stream and consumer. */
export function deliverSubject(address: NatsAddress): string {
  return `_NPIPE.deliver.${address.stream}.${address.durable}`;
}

/** Whether the NATS subject pattern `filter` (`*` one token, `>` one or more at the end) matches `subject`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * A JetStream call that failed, as an npipe error: the server refusing what was
 * asked (a JetStream API error) is ERR_NPIPE_INVALID_ARG, with the server's
 * description and what to change; no answer (timeout, connection) is ERR_NPIPE_UNREACHABLE.
 */
function jetStreamFailure(address: NatsAddress, doing: string, err: unknown): NpipeError {
  if (err instanceof NpipeError) return err;
  if (err instanceof JetStreamApiError) {
    return new InvalidArgumentError(
      `the NATS server at ${address.server} refused to ${doing}: ${err.message} (JetStream error ${err.code}); check the stream= and durable= of nats://${address.server}/${address.subject}`,
    );
  }
  return new UnreachableError(`no answer from JetStream at ${address.server} when asked to ${doing} (${(err as Error)?.message ?? String(err)})`, { cause: err });
}

async function manager(nc: NatsConnection, address: NatsAddress): Promise<JetStreamManager> {
  return jetstreamManager(nc).catch((err: unknown) => {
    throw new UnreachableError(`JetStream is not enabled on the NATS server at ${address.server}; start it with nats-server -js`, { cause: err });
  });
}

function notCaptured(address: NatsAddress, stream: string, subjects: string[] | undefined): InvalidArgumentError {
  return new InvalidArgumentError(
    `the JetStream stream ${stream} does not capture the subject ${JSON.stringify(address.subject)} (its subjects: ${JSON.stringify(subjects ?? [])}), so nothing sent there would be stored; name a stream that captures it (?stream=), or leave stream= out for npipe's own`,
  );
}

/** What a stream is: undefined if it does not exist. */
async function streamInfo(jsm: JetStreamManager, address: NatsAddress, stream: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (apiCode(err) === 10059) return undefined;
    throw jetStreamFailure(address, `describe the stream ${stream}`, err);
  }
}

/**
 * Makes sure a stream captures the address's subject, and returns its name:
 * - the stream the URL names (stream=, or the default, streamNameFor()) if it
 *   exists and captures the subject; one that exists and does not is refused
 *   (ERR_NPIPE_INVALID_ARG), never used;
 * - missing: created with `subjects: [subject]`;
 * - with the default name only: if another stream already captures the subject
 *   (made by hand, or by an npipe from before stream names had a hash), that one.
 */
export async function ensureStream(nc: NatsConnection, address: NatsAddress): Promise<string> {
  const jsm = await manager(nc, address);
  const existing = await streamInfo(jsm, address, address.stream);
  if (existing) {
    if (!existing.config.subjects?.some((f) => subjectMatches(f, address.subject))) throw notCaptured(address, address.stream, existing.config.subjects);
    return address.stream;
  }
  try {
    await jsm.streams.add({
      name: address.stream,
      subjects: [address.subject],
      description: `${NPIPE_STREAM_DESCRIPTION} for ${address.subject}`.slice(0, 1024),
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    return address.stream;
  } catch (err) {
    // Made meanwhile by another sender or receiver: the same checks.
    const made = await streamInfo(jsm, address, address.stream);
    if (made) {
      if (!made.config.subjects?.some((f) => subjectMatches(f, address.subject))) throw notCaptured(address, address.stream, made.config.subjects);
      return address.stream;
    }
    if (apiCode(err) === 10065) {
      // The subject belongs to another stream already.
      const other = await jsm.streams.find(address.subject).catch(() => undefined);
      if (other !== undefined && address.stream === streamNameFor(address.subject)) return other;
      throw new InvalidArgumentError(
        `the subject ${JSON.stringify(address.subject)} is already captured by the JetStream stream ${other ?? '(another stream)'}, so the stream ${address.stream} cannot be made for it; use stream=${other ?? '<that stream>'}`,
      );
    }
    throw jetStreamFailure(address, `create the stream ${address.stream} for ${JSON.stringify(address.subject)}`, err);
  }
}

/**
 * Makes sure the durable consumer exists and delivers exactly the address's
 * subject to npipe's receivers. One that exists with another filter subject,
 * deliver subject or group (another subject's receivers, a consumer made by hand,
 * a pull consumer) is refused with ERR_NPIPE_INVALID_ARG, never reused: its
 * messages are someone else's. Only ack-wait is changed to this address's.
 */
export async function ensureConsumer(nc: NatsConnection, address: NatsAddress): Promise<void> {
  const jsm = await manager(nc, address);
  const config = {
    durable_name: address.durable,
    deliver_subject: deliverSubject(address),
    deliver_group: address.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: address.ackWait * 1_000_000,
    max_ack_pending: MAX_ACK_PENDING,
    filter_subject: address.subject,
  };
  const describe = async (): Promise<ConsumerInfo | undefined> => {
    try {
      return await jsm.consumers.info(address.stream, address.durable);
    } catch (err) {
      if (apiCode(err) === 10014) return undefined;
      throw jetStreamFailure(address, `describe the consumer ${address.durable} of the stream ${address.stream}`, err);
    }
  };
  let info = await describe();
  if (!info) {
    try {
      await jsm.consumers.add(address.stream, config);
      return;
    } catch (err) {
      // Made meanwhile by another receiver: checked below like any existing one.
      info = await describe();
      if (!info) throw jetStreamFailure(address, `create the consumer ${address.durable} on the stream ${address.stream} for ${JSON.stringify(address.subject)}`, err);
    }
  }
  const have = info.config;
  const filters = have.filter_subjects ?? (have.filter_subject ? [have.filter_subject] : []);
  const problem =
    filters.length !== 1 || filters[0] !== address.subject
      ? `delivers ${filters.length === 0 ? 'every subject of the stream' : JSON.stringify(filters)}, not ${JSON.stringify(address.subject)}`
      : have.deliver_subject !== config.deliver_subject || have.deliver_group !== config.deliver_group
        ? have.deliver_subject
          ? `delivers to ${have.deliver_subject} (group ${have.deliver_group ?? 'none'}), not to npipe's ${config.deliver_subject} (group ${config.deliver_group})`
          : 'is a pull consumer (npipe receivers use a push consumer)'
        : have.ack_policy !== AckPolicy.Explicit
          ? `has ack policy ${have.ack_policy}, not explicit`
          : undefined;
  if (problem) {
    throw new InvalidArgumentError(
      `the durable consumer ${address.durable} on the JetStream stream ${address.stream} ${problem}; it is not npipe's for this subject, so it is not used: name another (durable=), or delete it`,
    );
  }
  if (have.ack_wait !== config.ack_wait) {
    try {
      await jsm.consumers.update(address.stream, address.durable, { ack_wait: config.ack_wait });
    } catch (err) {
      throw jetStreamFailure(address, `change the ack-wait of the consumer ${address.durable} on the stream ${address.stream}`, err);
    }
  }
}
