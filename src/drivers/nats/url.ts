/**
 * `nats://host:port/subject[?delivery=jetstream&stream=S&durable=D&ack-wait=T&group=G]`:
 * where a NATS address is written instead of a FIFO path. Options given in code
 * override the query; the URL alone is enough for the CLI and for configuration files.
 * `nats:///subject` names no server: the connection options supply it (servers.ts).
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';

export type Delivery = 'core' | 'jetstream';

export interface NatsAddress {
  /**
   * `host:port`; '' when the URL names none (`nats:///subject`) until servers.ts
   * fills it in from the connection options (then the servers, comma-separated).
   */
  server: string;
  /** From `nats://user:password@host`, when given (a user alone is a token, as NATS's clients take it). */
  user?: string;
  pass?: string;
  /** Set by servers.ts: credentials in the servers option's URLs, used when no other is given. */
  serverUser?: string;
  serverPass?: string;
  /** Set by servers.ts: a `tls://` server URL asks for TLS. */
  serverTls?: boolean;
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
  /**
   * Core NATS receivers: no queue group, each receiver gets every message (`nats sub`
   * without --queue); `?fan-out=true` or the fanOut option. Absent: the queue group.
   */
  fanOut?: true;
}

export const NATS_DEFAULT_PORT = 4222;
export const DEFAULT_ACK_WAIT_MS = 30_000;
const QUERY_KEYS = new Set(['delivery', 'stream', 'durable', 'ack-wait', 'group', 'fan-out']);
/**
 * A subject's longest form, in UTF-8 bytes: well inside the server's control line
 * (max_control_line, 4 KiB by default), which must also hold the reply subject.
 */
export const MAX_SUBJECT_BYTES = 1024;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Control characters (C0, DEL, C1) and every Unicode space: never part of a subject, a user or a password. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SPACE = /[\s\u0085\u200b\u2028\u2029\ufeff]/u;

function invalid(address: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${JSON.stringify(address)}: ${what}; write nats://[user:password@]host[:port]/subject[?option=value] (or nats:///subject for the server given apart)`);
}

/** %-decoding of one URL part; a malformed escape (`%zz`, a cut UTF-8 sequence) is the user's mistake. */
function decode(address: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(address, `the ${what} has a malformed %-escape (${JSON.stringify(part)}): write % as %25`);
  }
}

/**
 * Why `subject` is not one a sender, receiver or server can use, or undefined.
 * NATS's rules: tokens separated by `.`, none empty; no whitespace or control
 * characters; `*` and `>` are wildcards (refused anywhere, as npipe addresses one
 * subject); at most MAX_SUBJECT_BYTES.
 */
export function subjectProblem(subject: string): string | undefined {
  if (subject === '') return 'no subject';
  if (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) return `the subject is longer than ${MAX_SUBJECT_BYTES} bytes`;
  if (CONTROL.test(subject)) return `the subject ${JSON.stringify(subject)} has a control character`;
  if (SPACE.test(subject)) return `the subject ${JSON.stringify(subject)} has whitespace`;
  if (/[*>]/.test(subject)) return `the subject ${JSON.stringify(subject)} has a wildcard (* or >); npipe addresses one subject`;
  if (subject.split('.').includes('')) return `the subject ${JSON.stringify(subject)} has an empty token (a leading, trailing or doubled .)`;
  if (LONE_SURROGATE.test(subject)) return `the subject ${JSON.stringify(subject)} is not valid Unicode`;
  return undefined;
}

export function parseNatsUrl(address: string): NatsAddress {
  // The WHATWG parser silently removes tabs and newlines and resolves /./ and /../:
  // what reaches NATS must be what the user wrote, so both are checked on the raw text.
  if (CONTROL.test(address)) throw invalid(address, 'the URL has a control character (tab, newline, NUL...)');
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw invalid(address, 'not a valid URL');
  }
  if (url.protocol !== 'nats:') throw invalid(address, `only nats:// URLs are supported (not ${url.protocol}//)`);
  // No host (nats:///subject): the server comes from the connection options. A user, password or port needs a host.
  if (url.hostname === '' && (url.username !== '' || url.password !== '' || url.port !== '' || /^nats:\/\/[^/?#]/i.test(address))) {
    throw invalid(address, 'a user, password or port without a host');
  }
  // nats: is not a scheme the URL parser knows, so it checks little of the host: a name, an IPv4 or an [IPv6] address.
  if (url.hostname !== '' && !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$/.test(url.hostname)) throw invalid(address, `${JSON.stringify(url.hostname)} is not a host name or address`);
  if (url.hash !== '' || address.includes('#')) throw invalid(address, 'a #fragment means nothing in a NATS address (write # as %23 in a subject)');
  const rawPath = /^nats:\/\/[^/?#]*(\/[^?#]*)?/i.exec(address)?.[1] ?? '';
  const subject = decode(address, rawPath.replace(/^\//, ''), 'subject');
  const problem = subjectProblem(subject);
  if (problem) throw invalid(address, `${problem} (a NATS subject is dot-separated tokens, no spaces, control characters or wildcards)`);
  const user = url.username ? decode(address, url.username, 'user') : undefined;
  const pass = url.password ? decode(address, url.password, 'password') : undefined;
  for (const [what, value] of [['user', user], ['password', pass]] as const) {
    if (value !== undefined && CONTROL.test(value)) throw invalid(address, `the ${what} has a control character`);
  }
  const q = url.searchParams;
  for (const key of new Set(q.keys())) {
    if (!QUERY_KEYS.has(key)) throw invalid(address, `unknown option ${JSON.stringify(key)} (known: ${[...QUERY_KEYS].join(', ')})`);
    if (q.getAll(key).length > 1) throw invalid(address, `the option ${key} is given more than once`);
  }
  const delivery = q.get('delivery') ?? 'core';
  if (delivery !== 'core' && delivery !== 'jetstream') throw invalid(address, `delivery is core or jetstream, got ${JSON.stringify(delivery)}`);
  const stream = q.get('stream') ?? streamNameFor(subject);
  const durable = q.get('durable') ?? 'npipe';
  const group = q.get('group') ?? 'npipe';
  for (const [what, value] of [['stream', stream], ['durable', durable], ['group', group]] as const) {
    if (!NAME.test(value)) throw invalid(address, `${what} must be 1-64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  const fanOutText = q.get('fan-out');
  if (fanOutText !== null && !['', 'true', 'false'].includes(fanOutText)) throw invalid(address, `fan-out is true or false, got ${JSON.stringify(fanOutText)}`);
  const fanOut = fanOutText === '' || fanOutText === 'true';
  if (fanOut && q.has('group')) throw invalid(address, 'group (listeners share messages) and fan-out (each gets every one) do not go together: give one');
  const ackWaitText = q.get('ack-wait');
  // A duration (30s, 500ms, 2m) or a bare number of milliseconds, as the CLI's time options.
  const ackWait = ackWaitText === null ? DEFAULT_ACK_WAIT_MS : (parseDuration(ackWaitText, 'ms') ?? NaN);
  // The server keeps ack-wait in nanoseconds (an int64): 2^53 ns would already overflow a safe integer here.
  if (!Number.isSafeInteger(ackWait * 1_000_000) || ackWait < 1) {
    throw invalid(
      address,
      `ack-wait is a duration such as 30s, 500ms or 2m (a bare number is milliseconds), in whole ms from 1 to ${Math.floor(Number.MAX_SAFE_INTEGER / 1_000_000)}, got ${JSON.stringify(ackWaitText)}`,
    );
  }
  return {
    server: url.hostname === '' ? '' : `${url.hostname}:${url.port === '' ? NATS_DEFAULT_PORT : url.port}`,
    ...(user === undefined ? {} : { user }),
    ...(pass === undefined ? {} : { pass }),
    subject,
    delivery,
    stream,
    durable,
    ackWait,
    group,
    ...(fanOut ? { fanOut: true as const } : {}),
  };
}

/**
 * `address` with the queue-group choice of a receiver's options (`group`, `fanOut`),
 * which override the URL's; the choice is core NATS's (over JetStream receivers
 * share the stream's one consumer, a work queue).
 * @throws ERR_NPIPE_INVALID_ARG (both given, a bad group name, either with JetStream).
 */
export function withGroupChoice(address: NatsAddress, options: { group?: string; fanOut?: boolean }): NatsAddress {
  const { group, fanOut } = options;
  if (group !== undefined && (typeof group !== 'string' || !NAME.test(group))) {
    throw new InvalidArgumentError(`group must be 1-64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(group)}`);
  }
  if (group !== undefined && fanOut === true) throw new InvalidArgumentError('group (listeners share messages) and fanOut (each gets every one) do not go together: give one');
  let result: NatsAddress = address;
  if (group !== undefined || fanOut === false) {
    const { fanOut: _dropped, ...rest } = address;
    result = group === undefined ? rest : { ...rest, group };
  }
  if (fanOut === true) result = { ...result, fanOut: true };
  // (A ?group= in a JetStream URL was always ignored, and still is: refusing it now would break working URLs.)
  if (result.delivery === 'jetstream' && (result.fanOut || group !== undefined)) {
    throw new InvalidArgumentError(
      `${result.fanOut ? 'fan-out' : 'a queue group'} is core NATS's choice: over JetStream every listener on a subject shares the stream's one consumer ` +
        '(a work queue: each message goes to one listener); to give several programs every message, use core NATS, or a stream of your own per program (stream=, durable=)',
    );
  }
  return result;
}

/**
 * An address for request/reply, which is core NATS's own: `delivery=jetstream`
 * applies to send/listen only.
 * @throws ERR_NPIPE_INVALID_ARG (a bad URL, or a delivery other than core).
 */
export function parseRequestReplyUrl(url: string): NatsAddress {
  const address = parseNatsUrl(url);
  if (address.delivery !== 'core') {
    throw new InvalidArgumentError(`${url}: request/reply uses core NATS (its own request/reply); delivery=${address.delivery} applies to send/listen`);
  }
  if (address.fanOut) {
    throw new InvalidArgumentError(`${url}: servers share requests in a queue group (group=); fan-out would answer each request once per server`);
  }
  return address;
}

/**
 * The default stream of a subject: `NPIPE_<readable part>_<hash>`. The readable
 * part is the subject with every character outside A-Z a-z 0-9 - as `_`, cut at
 * 32; the hash is the first 24 hex digits (96 bits) of the SHA-256 of the exact
 * subject (UTF-8), so two subjects never share a stream (`coll.eu` and `coll_eu`
 * differ in their hash). At most 63 characters, within NATS's name rules.
 */
export function streamNameFor(subject: string): string {
  const readable = subject.replace(/[^A-Za-z0-9-]/g, '_').slice(0, 32);
  const hash = createHash('sha256').update(subject, 'utf8').digest('hex').slice(0, 24);
  return `NPIPE_${readable}_${hash}`;
}
