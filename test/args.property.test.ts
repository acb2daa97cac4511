/**
 * Property tests for the CLI's argument parsing (src/cli/args.ts), issue 15:
 * every valid value round-trips, every invalid one is ERR_NPIPE_INVALID_ARG
 * (exit 2) and never another error, and no input crashes the parser.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  EXIT,
  MAX_WAIT_MS,
  checkAddress,
  commonFifoOptions,
  durationOption,
  exitCodeFor,
  microsecondsOption,
  intOption,
  modeOption,
  parse,
  type Command,
} from '../src/cli/args.js';
import { bridgeCommand } from '../src/cli/bridge.js';
import { demoCommand } from '../src/cli/demo.js';
import { listenCommand } from '../src/cli/listen.js';
import { mkfifoCommand } from '../src/cli/mkfifo.js';
import { requestCommand } from '../src/cli/request.js';
import { sendCommand } from '../src/cli/send.js';
import { serveCommand } from '../src/cli/serve.js';
import { InvalidArgumentError, NpipeError } from '../src/errors.js';

const COMMANDS: Command[] = [sendCommand, listenCommand, serveCommand, requestCommand, bridgeCommand, mkfifoCommand, demoCommand];
const RUNS = { numRuns: 500 };

/** Calls `f`; an exception must be the usage error (code and exit 2), never anything else. */
function usageErrorOr<T>(f: () => T): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, `not a usage error: ${String((err as Error)?.stack ?? err)}`);
    assert.equal(err.code, 'ERR_NPIPE_INVALID_ARG');
    assert.equal(exitCodeFor(err), EXIT.usage);
    return { ok: false };
  }
}

/**
 * As usageErrorOr, for a check that looks at an address's driver (async): it
 * resolves, or rejects with a usage error, or (an address this platform cannot
 * serve, e.g. a Windows pipe name on Linux) with ERR_NPIPE_UNSUPPORTED; nothing else.
 */
async function usageErrorOrAsync<T>(f: () => Promise<T>): Promise<void> {
  try {
    await f();
  } catch (err) {
    if (err instanceof NpipeError && err.code === 'ERR_NPIPE_UNSUPPORTED') return;
    usageErrorOr(() => {
      throw err;
    });
  }
}

/** Strings a user might type, and hostile ones. */
const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.stringMatching(/^[-+]?[0-9]{0,25}(\.[0-9]*)?(e[-+]?[0-9]+)?$/),
  fc.constantFrom('', ' 1', '1 ', '0x10', '1e3', '-0', 'Infinity', 'NaN', '٣', '007', '9007199254740993', '2147483648', '0777', '8'),
);

describe('args.ts properties', () => {
  test('intOption: every whole number from min up round-trips through its decimal text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat(), (min, n) => {
        fc.pre(n >= min);
        assert.equal(intOption(String(n), 'count', { min }), n);
      }),
      RUNS,
    );
  });

  test('durationOption: --timeout takes 0..2^31-1 ms, bare or with a unit (ms, s, m, h), and refuses anything above', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_WAIT_MS }), (n) => {
        assert.equal(durationOption(String(n), 'timeout'), n);
        assert.equal(durationOption(`${n}ms`, 'timeout'), n);
        if (n % 1000 === 0) assert.equal(durationOption(`${n / 1000}s`, 'timeout'), n);
        if (n % 100 === 0) assert.equal(durationOption(`${(n / 1000).toFixed(1)}s`, 'timeout'), n);
        if (n % 60_000 === 0) assert.equal(durationOption(`${n / 60_000}m`, 'timeout'), n);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.integer({ min: MAX_WAIT_MS + 1, max: Number.MAX_SAFE_INTEGER }), (n) =>
        assert.equal(usageErrorOr(() => durationOption(String(n), 'timeout')).ok, false),
      ),
      RUNS,
    );
  });

  test('durationOption: any text is whole milliseconds in range or ERR_NPIPE_INVALID_ARG, never another error', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.stringMatching(/^\d{1,4}(\.\d{1,4})?(ms|s|m|h)?$/)), (text) => {
        const r = usageErrorOr(() => durationOption(text, 'timeout'));
        if (r.ok) {
          assert.match(text, /^\d+(\.\d+)?(ms|s|m|h)?$/);
          assert.ok(Number.isSafeInteger(r.value) && r.value! >= 0 && r.value! <= MAX_WAIT_MS);
        }
      }),
      RUNS,
    );
     // Whole milliseconds written in microseconds are still not a millisecond option's unit.
    for (const text of ['1000us', '2000µs']) assert.equal(usageErrorOr(() => durationOption(text, 'timeout')).ok, false, text);
  });

  test('microsecondsOption: --busy-poll takes whole microseconds, bare or with a unit (us, µs, ms, s); any other text is a usage error (issue 19 #4)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), (n) => {
        assert.equal(microsecondsOption(String(n), 'busy-poll'), n);
        assert.equal(microsecondsOption(`${n}us`, 'busy-poll'), n);
        assert.equal(microsecondsOption(`${n}µs`, 'busy-poll'), n);
        if (n % 1000 === 0) assert.equal(microsecondsOption(`${n / 1000}ms`, 'busy-poll'), n);
        if (n % 100 === 0) assert.equal(microsecondsOption(`${(n / 1000).toFixed(1)}ms`, 'busy-poll'), n);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.oneof(anyText, fc.stringMatching(/^\d{1,4}(\.\d{1,4})?(us|µs|ms|s)?$/)), (text) => {
        const r = usageErrorOr(() => microsecondsOption(text, 'busy-poll'));
        if (r.ok) assert.ok(/^\d+(\.\d+)?(us|µs|ms|s|m|h)?$/.test(text) && Number.isSafeInteger(r.value) && r.value! >= 0);
      }),
      RUNS,
    );
    assert.equal(usageErrorOr(() => microsecondsOption('0.5', 'busy-poll')).ok, false, 'a bare number is whole microseconds');
  });

  test('intOption: any text is a whole number in range or ERR_NPIPE_INVALID_ARG, never another error', () => {
    fc.assert(
      fc.property(anyText, fc.integer({ min: 0, max: 5 }), fc.constantFrom('count', 'timeout', 'max-size'), (text, min, name) => {
        const r = usageErrorOr(() => intOption(text, name, { min }));
        if (r.ok) {
          assert.match(text, /^\d+$/);
          assert.ok(Number.isSafeInteger(r.value) && r.value! >= min);
          assert.equal(r.value, Number(text));
        }
      }),
      RUNS,
    );
  });

  test('intOption: a value that is not a string (a flag given as a boolean) is a usage error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.boolean(), fc.integer(), fc.constant(null)), (v) => assert.equal(usageErrorOr(() => intOption(v, 'count')).ok, false)),
    );
  });

  test('modeOption: every mode 000..777 round-trips through its octal text; any other text is a usage error', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0o777 }), fc.boolean(), (mode, zero) => {
        const text = (zero ? '0' : '') + mode.toString(8).padStart(3, '0');
        assert.equal(modeOption(text), mode);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(anyText, (text) => {
        const r = usageErrorOr(() => modeOption(text));
        if (r.ok) assert.ok(r.value! >= 0 && r.value! <= 0o777);
      }),
      RUNS,
    );
  });

  test('parse: any argv, for every command, parses or is a usage error; it never throws anything else', async () => {
    const token = fc.oneof(
      anyText,
      fc.constantFrom('--count', '-n', '--timeout', '-t', '--format', '-f', '--mode', '--no-create', '--json', '--once', '--', '-', '--help', '-h', '--no-json', '--=x', '---x', '-s', '--server', 'nats:///subject', 'shm://x', '\\\\.\\pipe\\x'),
      anyText.map((s) => `--${s}`),
      anyText.map((s) => `-${s}`),
    );
    // Async: checkAddress looks at the address's driver, and its rejection must be awaited here
    // (it was not: a rejection such as "--server does not apply to ..." surfaced after the test ended).
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...COMMANDS), fc.array(token, { maxLength: 8 }), async (command, argv) => {
        const r = usageErrorOr(() => parse(command, argv));
        if (r.ok) {
          // Whatever parsed must then be checked without surprises too.
          const values = r.value.values as Record<string, string | boolean | undefined>;
          for (const address of r.value.positionals.slice(0, 1)) await usageErrorOrAsync(() => checkAddress(address, values));
          if ('max-size' in command.options) usageErrorOr(() => commonFifoOptions(values));
        }
      }),
      RUNS,
    );
  });

  test('parse: an option no command knows is always a usage error', () => {
    const known = new Set(COMMANDS.flatMap((c) => Object.keys(c.options)).concat(['help']));
    fc.assert(
      fc.property(
        fc.constantFrom(...COMMANDS),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((s) => !known.has(s) && !known.has(s.replace(/^no-/, ''))),
        (command, name) => assert.equal(usageErrorOr(() => parse(command, ['/tmp/x', `--${name}`])).ok, false),
      ),
      RUNS,
    );
  });

  test('listen: valid options round-trip from argv to the values used', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            count: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
            timeout: fc.integer({ min: 0, max: MAX_WAIT_MS }),
            maxSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
            mode: fc.integer({ min: 0, max: 0o777 }),
            format: fc.constantFrom('lines', 'length', 'frames', 'raw', 'fixed:1', 'fixed:22'),
            short: fc.boolean(),
          },
          { requiredKeys: ['short'] },
        ),
        (o) => {
          const argv = ['/tmp/p'];
          if (o.count !== undefined) argv.push(o.short ? '-n' : '--count', String(o.count));
          if (o.timeout !== undefined) argv.push(o.short ? '-t' : '--timeout', String(o.timeout));
          if (o.maxSize !== undefined) argv.push('--max-size', String(o.maxSize));
          if (o.mode !== undefined) argv.push('--mode', o.mode.toString(8).padStart(3, '0'));
          if (o.format !== undefined) argv.push(o.short ? '-f' : '--format', o.format);
          const { values, positionals } = parse(listenCommand, argv);
          assert.deepEqual(positionals, ['/tmp/p']);
          const v = values as Record<string, string | boolean | undefined>;
          checkAddress('/tmp/p', v);
          const fifo = commonFifoOptions(v);
          assert.equal(intOption(v.count, 'count', { min: 1 }), o.count);
          assert.equal(fifo.timeout, o.timeout);
          assert.equal(fifo.maxMessageSize, o.maxSize);
          assert.equal(fifo.mode, o.mode);
          assert.equal(fifo.format, o.format ?? 'lines');
        },
      ),
      RUNS,
    );
  });
});
