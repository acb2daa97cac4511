import { readFileSync } from 'node:fs';
import os from 'node:os';
import { NpipeError } from '../errors.js';
import { type ErrnoLike } from '../sys/errno.js';
import { EXIT, exitCodeFor, parse, type CliIO } from './args.js';
import { COMMANDS as commands } from './commands.js';
import { closest } from './suggest.js';
import { inFlags } from './flag-words.js';

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `Usage: npipe <command> [options]

Named pipes (FIFOs) between unrelated processes: whole messages, no blocking,
clear errors. Give a nats://host:port/subject URL instead of a path to reach
other machines; on Windows a pipe name, \\\\.\\pipe\\<name>, takes the place of
the path. Run "npipe <command> --help" for a command's options.

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Options:
  -h, --help     this help; "npipe <command> --help" for a command's
  -v, --version  print npipe's version

Exit codes: 0 ok, 1 failure, 2 usage, 3 timeout, no peer or NATS server not
reachable, 4 unsafe path or not a FIFO.
Errors go to stderr with their code, for example:
  npipe send: ERR_NPIPE_TIMEOUT: no process opened /tmp/jobs for reading; ...`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    io.stdout.write(`${topic ? (await topic.load()).help : mainHelp()}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    const meant = closest(name, commands.map((c) => c.name));
    io.stderr.write(`npipe: ERR_NPIPE_INVALID_ARG: unknown command ${JSON.stringify(name)}${meant ? `; did you mean ${meant}?` : ''} (npipe --help lists them)\n`);
    return EXIT.usage;
  }
  const command = await entry.load();
  try {
    const { values, positionals } = parse(command, rest);
    if (values.help) {
      io.stdout.write(`${command.help}\n`);
      return EXIT.ok;
    }
    return await command.run(values, positionals, io);
  } catch (err) {
    if (io.stop.aborted && err === io.stop.reason) {
      // Interrupted while waiting (for a reader, for room in the pipe): the conventional 128 + signal number.
      io.stderr.write(`npipe ${command.name}: ${(err as Error).message}\n`);
      return 128 + (os.constants.signals[(err as StopReason).signal ?? 'SIGINT'] ?? 2);
    }
    if (!(err instanceof NpipeError) && err instanceof Error && typeof (err as ErrnoLike).syscall === 'string') {
      // An OS error that reached here unwrapped (writing our stdout: splice, write): one line, exit 1.
      const e = err as ErrnoLike;
      io.stderr.write(`npipe ${command.name}: ERR_NPIPE_SYSTEM: ${e.syscall} failed: ${e.code ?? ''} (${e.message})\n`);
      return EXIT.failure;
    }
    const code = err instanceof NpipeError ? err.code : 'ERR_NPIPE_INTERNAL';
    const detail = err instanceof NpipeError ? inFlags(err.message) : String((err as Error)?.stack ?? err);
    io.stderr.write(`npipe ${command.name}: ${code}: ${detail}\n`);
    return exitCodeFor(err);
  }
}


/** The one line said when writing to stdout failed (other than EPIPE). */
export function stdoutFailure(command: string | undefined, err: NodeJS.ErrnoException): string {
  const name = commands.some((c) => c.name === command) ? `npipe ${command}` : 'npipe';
  return `${name}: ERR_NPIPE_SYSTEM: writing to stdout failed: ${err.message}; check where stdout goes (a full disk, /dev/full)`;
}

/** The reason `io.stop` aborts with: which signal stopped the command. */
export interface StopReason extends Error {
  signal?: NodeJS.Signals;
}
