import { closest } from './suggest.js';
import { parseDuration } from '../util/duration.js';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError, NpipeError } from '../errors.js';
import type { Driver } from '../drivers/types.js';
import { isSlowPolicy, type SlowPolicy } from '../transport/types.js';
import type { FormatName } from '../framing/index.js';
import { driverFor } from '../registry.js';
import { NATS_FLAG_NAMES, natsOptionsFrom } from './nats-options.js';

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends InvalidArgumentError {
  static {
    this.prototype.name = 'UsageError';
  }
}

export interface Command {
  name: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: CliIO): Promise<number>;
}

export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Aborts when SIGINT or SIGTERM arrives. */
  stop: AbortSignal;
}

export function parse(command: Command, argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${parseProblem(err as NodeJS.ErrnoException, command)} (see npipe ${command.name} --help)`);
  }
}

/**
 * node:util parseArgs' complaint in npipe's words: the option named as it is typed,
 * quotes that pair up, and a "did you mean" for an option mistyped (issue 19 #5).
 * Anything else it says is passed on as it is.
 */
function parseProblem(err: NodeJS.ErrnoException, command: Command): string {
  const named = /'(-[^']*?)(?: <value>)?'/.exec(err.message)?.[1];
  const option = named?.split(', ').pop();
  const flags = Object.entries({ ...command.options, help: { type: 'boolean', short: 'h' } }).flatMap(([name, o]) => [
    `--${name}`,
    ...((o as { type: string }).type === 'boolean' ? [`--no-${name}`] : []),
  ]);
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const meant = option ? closest(option.split('=')[0]!, flags) : undefined;
      return meant ? `unknown option ${option}; did you mean ${meant}?` : `unknown option ${option ?? '?'} (a message or path that starts with "-" goes after --)`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (option && /argument missing/.test(err.message)) return `${option} needs a value`;
      if (option && /does not take an argument/.test(err.message)) return `${option} takes no value`;
      if (option && /ambiguous/.test(err.message)) return `the value of ${option} starts with "-": write it as ${option}=VALUE`;
      return err.message;
    default:
      return err.message;
  }
}

/**
 * The longest wait in milliseconds an option takes: 2^31-1 (about 24.8 days), the
 * most a Node timer can wait. Above it a timer fires at once (with a
 * TimeoutOverflowWarning), so a larger --timeout is a usage error, exit 2, rather
 * than a wait that ends at once (issue 15 #10). No --timeout: no limit at all.
 */
export const MAX_WAIT_MS = 2 ** 31 - 1;

export function intOption(value: unknown, name: string, { min = 0, max }: { min?: number; max?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const most = max ?? Number.MAX_SAFE_INTEGER;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > most) {
    const range = most === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${most}`;
    throw new UsageError(`--${name} takes a whole number ${range}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * A time option (--timeout), as the `nats` CLI and Go take durations: `250ms`,
 * `5s`, `1.5s`, `2m`, `1h`; a bare whole number stays milliseconds, as before
 * (issue 19 #4). The result is whole milliseconds from 0 to MAX_WAIT_MS; anything
 * else is a usage error (exit 2) naming the forms.
 */
export function durationOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'string' ? parseDuration(value, 'ms') : undefined;
  if (ms === undefined || ms > MAX_WAIT_MS) {
    throw new UsageError(
      `--${name} takes a duration such as 250ms, 5s, 1.5s or 2m (a bare number is milliseconds), in whole milliseconds up to ${MAX_WAIT_MS} (about 24.8 days), got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/**
 * A time option counted in microseconds (serve --busy-poll): `50us`, `200µs`,
 * `1ms`, `0.5ms`; a bare whole number stays microseconds, as before.
 */
export function microsecondsOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const us = typeof value === 'string' ? parseDuration(value, 'us') : undefined;
  if (us === undefined) {
    throw new UsageError(`--${name} takes a duration such as 50us, 200µs or 1ms (a bare number is microseconds), in whole microseconds, got ${JSON.stringify(value)}`);
  }
  return us;
}

export function modeOption(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^0?[0-7]{1,3}$/.test(value)) {
    throw new UsageError(`--mode takes octal permission bits such as 600, got ${JSON.stringify(value)}`);
  }
  return parseInt(value, 8);
}

/** Exit codes, documented in README.md. */
export const EXIT = { ok: 0, failure: 1, usage: 2, noPeer: 3, unsafe: 4 } as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof NpipeError)) return EXIT.failure;
  switch (err.code) {
    case 'ERR_NPIPE_INVALID_ARG':
      return EXIT.usage;
    case 'ERR_NPIPE_TIMEOUT':
    case 'ERR_NPIPE_NO_READER':
    case 'ERR_NPIPE_SERVER_GONE':
    case 'ERR_NPIPE_UNREACHABLE':
      return EXIT.noPeer;
    case 'ERR_NPIPE_UNSAFE':
    case 'ERR_NPIPE_NOT_FIFO':
      return EXIT.unsafe;
    default:
      return EXIT.failure;
  }
}

/** Options shared by the commands that open a FIFO. */
export const fifoOptions = {
  format: { type: 'string', short: 'f' },
  'max-size': { type: 'string' },
  mode: { type: 'string' },
  'allow-shared': { type: 'boolean' },
  'pipe-size': { type: 'string' },
  timeout: { type: 'string', short: 't' },
  jetstream: { type: 'boolean' },
} as const;

export const FIFO_OPTIONS_HELP = `  -f, --format F     lines (default), frames, length, fixed:N or raw; frames
                     keeps messages of any size whole among many writers
                     (docs/PROTOCOL.md); the others: docs/FORMATS.md
  -t, --timeout T    give up after T: 250ms, 5s, 2m (a bare number is
                     milliseconds); exit 3, ERR_NPIPE_TIMEOUT
      --max-size N   largest message in bytes (default 67108864, 64 MiB)
      --mode OCTAL   mode of a FIFO this command creates (default 600)
      --allow-shared accept a FIFO that group or others may write to; on
                     Windows, let other users connect to a listener's pipe, or
                     send to a listener another user shared
      --pipe-size N  ask the kernel for a pipe of N bytes (Linux; up to
                     /proc/sys/fs/pipe-max-size unless root)
      --jetstream    nats:// only: JetStream delivery (stored, acknowledged,
                     at least once) instead of core NATS (at most once); the
                     same as ?delivery=jetstream in the URL
  -h, --help         show this help`;

/** What send and listen say of their <path> beyond a FIFO (not bridge: its two ends are a FIFO and a URL). */
export const ADDRESS_HELP = `<path> may be a NATS URL instead, nats://host:port/subject[?delivery=jetstream]
(README "Scaling out"): the same messages, between machines. --mode,
--pipe-size, --allow-shared and --no-create are FIFO options and are refused
with a URL. On Windows <path> is a pipe name, \\\\.\\pipe\\<name> (README
"Platform notes"); of the FIFO options it takes --allow-shared.`;

/**
 * Options that mean something for one medium only (a driver lists the ones it
 * takes in `capabilities.cliOptions`): given with an address whose driver does not
 * take them, they are refused rather than ignored.
 */
const MEDIUM_OPTIONS: readonly string[] = ['mode', 'pipe-size', 'allow-shared', 'once', 'max-partial', 'no-create', 'jetstream', 'queue', 'fan-out', ...NATS_FLAG_NAMES];

/** The medium options given on the command line. */
function mediumOptionsGiven(values: Record<string, string | boolean | undefined>): string[] {
  return MEDIUM_OPTIONS.filter((name) => {
    if (name === 'no-create') return values.create === false;
    if (name === 'jetstream') return values.jetstream === true;
    return values[name] !== undefined;
  });
}

/** Whether `driver` takes the medium option `name` (a long option name, e.g. 'jetstream'). */
export function takes(driver: Driver, name: string): boolean {
  return driver.capabilities.cliOptions.includes(name);
}

/**
 * The driver of `address`, once every medium option given is one it takes.
 * @throws UsageError (exit 2) for an option of another medium.
 */
export async function checkAddress(address: string, values: Record<string, string | boolean | undefined>): Promise<Driver> {
  const driver = await driverFor(address);
  for (const name of mediumOptionsGiven(values)) {
    if (!takes(driver, name)) throw new UsageError(`--${name} does not apply to ${address} (${driver.noun})`);
  }
  return driver;
}

/**
 * The drivers of a bridge's two addresses, once every medium option given is one
 * that at least one side takes (it applies to that side).
 */
export async function checkBridgeAddresses(from: string, to: string, values: Record<string, string | boolean | undefined>): Promise<[Driver, Driver]> {
  const sides: [Driver, Driver] = [await driverFor(from), await driverFor(to)];
  for (const name of mediumOptionsGiven(values)) {
    if (!sides.some((driver) => takes(driver, name))) {
      throw new UsageError(`--${name} applies to neither ${from} (${sides[0].noun}) nor ${to} (${sides[1].noun})`);
    }
  }
  return sides;
}

export function commonFifoOptions(values: Record<string, string | boolean | undefined>) {
  const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 });
  const mode = modeOption(values.mode);
  const pipeSize = intOption(values['pipe-size'], 'pipe-size', { min: 1 });
  const timeout = durationOption(values.timeout, 'timeout');
  const nats = natsOptionsFrom(values);
  return {
    // Checked where the command opens its address (createFraming's ERR_NPIPE_INVALID_ARG, as
    // before); the type says what it must be.
    format: ((values.format as string | undefined) ?? 'lines') as FormatName,
    ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
    ...(mode === undefined ? {} : { mode }),
    ...(pipeSize === undefined ? {} : { pipeSize }),
    ...(timeout === undefined ? {} : { timeout }),
    allowShared: values['allow-shared'] === true,
    ...(values.jetstream === true ? { delivery: 'jetstream' as const } : {}),
    // For a nats:// address (other drivers ignore it): --server, credentials, TLS, or their variables.
    ...(nats === undefined ? {} : { nats }),
  };
}

/** `--slow`: a subscriber policy (block, drop, disconnect), or undefined. @throws UsageError */
export function slowOption(value: string | boolean | undefined): SlowPolicy | undefined {
  if (value === undefined) return undefined;
  if (isSlowPolicy(value)) return value;
  throw new UsageError(`--slow is block, drop or disconnect, got ${JSON.stringify(value)}`);
}
