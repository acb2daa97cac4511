import { UnsupportedError } from '../errors.js';
import type { AddressStatus } from '../drivers/types.js';
import type { FifoStatus } from '../fifo/inspect.js';
import type { NatsStatus } from '../drivers/nats/stat.js';
import { EXIT, UsageError, checkAddress, durationOption, type Command } from './args.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';
import { escapeForLog } from './log-escape.js';

export const statCommand: Command = {
  name: 'stat',
  help: `Usage: npipe stat <address> [--json]

Shows what is at <address> and what waits in it, without changing anything:
no FIFO is opened as a reader or writer (a writer blocked for a reader stays
blocked), no NATS stream or consumer is made.

For a FIFO path: its mode and owner, the pipe's capacity and the bytes waiting
in it, the processes holding it open for reading and for writing, and those
blocked opening it (pid and command, from /proc; Linux). Another user's
processes are seen only by root; they are counted as hidden.
For a nats:// URL: the server, the subject and, with ?delivery=jetstream (or
--jetstream), the stream that stores it and npipe's consumer: messages stored,
pending, delivered and not acknowledged.

Options:
      --json         print one JSON object (for a FIFO: type, path, mode,
                     permissions, owner, group, capacity, buffered, readers,
                     writers, waiting, hidden; capacity and buffered are null
                     when they could not be seen)
      --jetstream    nats:// only: look at the JetStream stream and consumer
  -t, --timeout T    nats:// only: give up reaching the server after T (250ms,
                     5s, 2m; default 5s); exit 3
  -h, --help         show this help

${NATS_FLAGS_HELP}

Exit codes: 0 shown, 1 failure (missing: ERR_NPIPE_NOT_FOUND), 2 usage,
3 NATS server not reachable, 4 not a FIFO (a file, a directory, a symlink).

Examples:
  npipe stat /tmp/jobs
  npipe stat /tmp/jobs --json | jq .writers
  npipe stat 'nats://127.0.0.1:4222/jobs?delivery=jetstream'`,
  options: {
    ...natsFlags,
    json: { type: 'boolean' },
    jetstream: { type: 'boolean' },
    timeout: { type: 'string', short: 't' },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe stat takes one address (see npipe stat --help)');
    const address = positionals[0]!;
    // "" is no path (resolved, it would be the working directory: "is a directory", exit 4).
    if (address === '') throw new UsageError('npipe stat needs a FIFO path or nats:// URL, not an empty string (see npipe stat --help)');
    const driver = await checkAddress(address, values);
    if (values.timeout !== undefined && driver.name !== 'nats') throw new UsageError(`--timeout does not apply to ${address} (${driver.noun}): looking at it never waits`);
    const inspect = driver.capabilities.inspect;
    if (!inspect) throw new UnsupportedError(`npipe stat cannot look at ${driver.noun} (${address}); it looks at FIFO paths and nats:// URLs`);
    const timeout = durationOption(values.timeout, 'timeout') ?? 5000;
    const nats = natsOptionsFrom(values);
    const status = await inspect(values.jetstream === true ? withJetStream(address) : address, { timeout, signal: io.stop, ...(nats === undefined ? {} : { nats }) });
    io.stdout.write(values.json === true ? `${JSON.stringify(status)}\n` : `${describe(address, status)}\n`);
    return EXIT.ok;
  },
};

/** `--jetstream` as the URL says it: ?delivery=jetstream added (one given in the URL already is kept). */
function withJetStream(url: string): string {
  if (/[?&]delivery=/.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}delivery=jetstream`;
}

function describe(address: string, status: AddressStatus): string {
  return status.type === 'fifo' ? describeFifo(status) : describeNats(address, status);
}

function bytes(n: number | null): string {
  if (n === null) return 'unknown';
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n} bytes (${n / (1024 * 1024)} MiB)`;
  if (n >= 1024 && n % 1024 === 0) return `${n} bytes (${n / 1024} KiB)`;
  return `${n} byte${n === 1 ? '' : 's'}`;
}

function processes(list: { pid: number; command: string; fd?: number }[]): string {
  if (list.length === 0) return 'none';
  // A command line is whatever its process chose (another user's too, seen by root): a
  // "\n" or an escape sequence in it must not forge lines or drive the terminal.
  return list.map((p) => `${p.pid} ${escapeForLog(p.command)}${p.fd === undefined ? '' : ` (fd ${p.fd})`}`).join('\n           ');
}

/** The capacity, or why it is not known. */
function capacity(s: FifoStatus): string {
  if (s.capacity !== null) return bytes(s.capacity);
  if (s.seen === 'unopened') return 'none yet (no process holds it open; the next one to open it makes its pipe, 64 KiB by default)';
  if (s.readers.length + s.writers.length > 0) {
    return "unknown (its holders' descriptors could not be borrowed: pidfd_getfd(2) refused, which needs root or the holders' user, Linux 5.6+ and no seccomp filter against it)";
  }
  return 'unknown (held by processes this one may not look into; try as root)';
}

function describeFifo(s: FifoStatus): string {
  const lines = [
    `${escapeForLog(s.path)}: FIFO, ${s.permissions} (${s.mode}), owner ${s.owner.user ?? s.owner.uid} (uid ${s.owner.uid}), group ${s.group.name ?? s.group.gid} (gid ${s.group.gid})`,
    `capacity:  ${capacity(s)}`,
    `buffered:  ${s.buffered === null ? 'unknown' : `${bytes(s.buffered)} waiting to be read`}`,
    `readers:   ${processes(s.readers)}`,
    `writers:   ${processes(s.writers)}`,
  ];
  if (s.waiting.readers.length > 0) lines.push(`waiting to open for reading (until a writer opens it):\n           ${processes(s.waiting.readers)}`);
  if (s.waiting.writers.length > 0) lines.push(`waiting to open for writing (until a reader opens it):\n           ${processes(s.waiting.writers)}`);
  if (s.hidden > 0) lines.push(`hidden:    ${s.hidden} processes of other users could not be looked into (run as root to see them)`);
  const why = diagnosis(s);
  if (why) lines.push(why);
  return lines.join('\n');
}

/** The answer to "why is my writer (or reader) waiting?", when the numbers give one. */
function diagnosis(s: FifoStatus): string | undefined {
  const readers = s.readers.length + s.waiting.readers.length;
  if (s.waiting.writers.length > 0 && readers === 0) return 'A writer is blocked: no process has the FIFO open for reading. Start a reader (npipe listen <path>).';
  if (s.capacity !== null && s.buffered !== null && s.buffered >= s.capacity && s.readers.length > 0) {
    return 'The pipe is full: writers wait for room until a reader reads (is it reading?).';
  }
  if (s.buffered !== null && s.buffered > 0 && s.readers.length === 0) return 'Bytes wait in the pipe with no reader; they are lost when the last writer closes it.';
  if (s.waiting.readers.length > 0 && s.writers.length === 0) return 'A reader is blocked: no process has the FIFO open for writing.';
  return undefined;
}

function describeNats(address: string, s: NatsStatus): string {
  const lines = [
    `${address}: NATS subject ${s.subject} on ${s.server.address}`,
    `server:    nats-server ${s.server.version}, largest message ${bytes(s.server.maxPayload)}, JetStream ${s.server.jetstream ? 'on' : 'off'}`,
  ];
  if (s.delivery === 'core') {
    lines.push(`delivery:  core NATS, at most once; listeners share messages in queue group ${s.group} (core NATS keeps nothing: no messages wait)`);
    return lines.join('\n');
  }
  lines.push('delivery:  JetStream, stored and acknowledged');
  if (!s.stream) {
    lines.push('stream:    none yet (the first sender or listener makes it)');
    return lines.join('\n');
  }
  lines.push(
    `stream:    ${s.stream.name} (subjects ${s.stream.subjects.join(', ')}): ${s.stream.messages} messages, ${bytes(s.stream.bytes)}, sequence ${s.stream.firstSeq}..${s.stream.lastSeq}, ${s.stream.consumers} consumer${s.stream.consumers === 1 ? '' : 's'}`,
  );
  lines.push(
    s.consumer
      ? `consumer:  ${s.consumer.name}: ${s.consumer.pending} pending, ${s.consumer.ackPending} delivered and not acknowledged, ${s.consumer.redelivered} redelivered; acknowledged up to ${s.consumer.ackedSeq}; ${s.consumer.active ? 'a listener is connected' : 'no listener connected'}`
      : 'consumer:  none yet (the first listener makes it)',
  );
  return lines.join('\n');
}
