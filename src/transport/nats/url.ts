/**
 * `nats://host:port/subject[?delivery=jetstream&stream=S&durable=D&ack-wait=MS&group=G]`:
 * where a NATS address is written instead of a FIFO path. Options given in code
 * override the query; the URL alone is enough for the CLI and for configuration files.
 */
import { InvalidArgumentError } from '../../errors.js';

export type Delivery = 'core' | 'jetstream';

export interface NatsAddress {
  /** `host:port`. */
  server: string;
  /** From `nats://user:password@host`, when given. */
  user?: string;
  pass?: string;
  subject: string;
  delivery: Delivery;
  /** JetStream stream name (default derived from the subject). */
  stream: string;
  /** JetStream durable consumer name (default `npipe`): receivers sharing it share the messages. */
  durable: string;
  /** ms before a message taken and not acknowledged is delivered again (JetStream; default 30000). */
  ackWait: number;
  /** Core NATS queue group: receivers in the same group share the messages (default `npipe`). */
  group: string;
}

export const NATS_DEFAULT_PORT = 4222;
export const DEFAULT_ACK_WAIT_MS = 30_000;
const QUERY_KEYS = new Set(['delivery', 'stream', 'durable', 'ack-wait', 'group']);
/** A NATS subject token: printable, no spaces; `*` and `>` are wildcards, which a sender cannot use. */
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function isNatsUrl(address: string): boolean {
  return /^nats:\/\//i.test(address);
}

export function parseNatsUrl(address: string): NatsAddress {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new InvalidArgumentError(`${JSON.stringify(address)} is not a valid URL; write nats://host:port/subject`);
  }
  if (url.protocol !== 'nats:') throw new InvalidArgumentError(`${address}: only nats:// URLs are supported (not ${url.protocol}//)`);
  if (url.hostname === '') throw new InvalidArgumentError(`${address}: no host; write nats://host:port/subject`);
  const subject = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!SUBJECT.test(subject)) {
    throw new InvalidArgumentError(
      `${address}: ${JSON.stringify(subject)} is not a NATS subject (dot-separated tokens, no spaces or wildcards); write nats://host:port/subject`,
    );
  }
  for (const key of url.searchParams.keys()) {
    if (!QUERY_KEYS.has(key)) throw new InvalidArgumentError(`${address}: unknown option ${JSON.stringify(key)} (known: ${[...QUERY_KEYS].join(', ')})`);
  }
  const q = url.searchParams;
  const delivery = q.get('delivery') ?? 'core';
  if (delivery !== 'core' && delivery !== 'jetstream') {
    throw new InvalidArgumentError(`${address}: delivery is core or jetstream, got ${JSON.stringify(delivery)}`);
  }
  const stream = q.get('stream') ?? streamNameFor(subject);
  const durable = q.get('durable') ?? 'npipe';
  const group = q.get('group') ?? 'npipe';
  for (const [what, value] of [['stream', stream], ['durable', durable], ['group', group]] as const) {
    if (!NAME.test(value)) throw new InvalidArgumentError(`${address}: ${what} must be 1-64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  const ackWaitText = q.get('ack-wait');
  const ackWait = ackWaitText === null ? DEFAULT_ACK_WAIT_MS : Number(ackWaitText);
  if (!Number.isSafeInteger(ackWait) || ackWait < 1) {
    throw new InvalidArgumentError(`${address}: ack-wait is a whole number of ms >= 1, got ${JSON.stringify(ackWaitText)}`);
  }
  return {
    server: `${url.hostname}:${url.port === '' ? NATS_DEFAULT_PORT : url.port}`,
    ...(url.username ? { user: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { pass: decodeURIComponent(url.password) } : {}),
    subject,
    delivery,
    stream,
    durable,
    ackWait,
    group,
  };
}

/** `jobs.eu-1` -> `NPIPE_jobs_eu-1`: one stream per subject unless the URL names one. */
export function streamNameFor(subject: string): string {
  return `NPIPE_${subject.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 64);
}
