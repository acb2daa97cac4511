import { NpipeError, UnsupportedError } from '../errors.js';
import { EXIT, UsageError, exitCodeFor, modeOption, type Command } from './args.js';

export const mkfifoCommand: Command = {
  name: 'mkfifo',
  help: `Usage: npipe mkfifo <path>... [-m, --mode 600]

Creates a FIFO at each <path> with mkfifo(3), as mkfifo(1) does. A FIFO already
there is accepted and left as it is; anything else there (a file, a directory,
a symlink) is an error (exit 4, ERR_NPIPE_NOT_FIFO). With several paths, each
error is said on its own line and the others are still made; the exit code is
the first error's. On Windows, which has no FIFOs, it is ERR_NPIPE_UNSUPPORTED
(exit 1): a Windows pipe is made by its receiver.

Options:
  -m, --mode OCTAL   permission bits, exactly (as mkfifo -m: the umask does not
                     apply); default 600, owner only
  -h, --help         show this help

Examples:
  npipe mkfifo /tmp/jobs
  npipe mkfifo -m 620 /tmp/in /tmp/out`,
  options: { mode: { type: 'string', short: 'm' } },
  async run(values, positionals, io) {
    if (positionals.length === 0) throw new UsageError('npipe mkfifo takes one or more paths (see npipe mkfifo --help)');
    if (process.platform === 'win32') {
      throw new UnsupportedError('Windows has no FIFOs; a Windows pipe is made by its receiver (npipe listen \\\\.\\pipe\\<name>), nothing to create first');
    }
    const mode = modeOption(values.mode) ?? 0o600;
    // Loaded here, not above: the CLI on Windows never loads the FIFO layer.
    const { mkfifoExactSync } = await import('../fifo/index.js');
    let exit: number = EXIT.ok;
    for (const path of positionals) {
      try {
        mkfifoExactSync(path, mode);
      } catch (err) {
        if (positionals.length === 1) throw err;
        // As mkfifo(1): say it, go on with the other paths, fail at the end.
        const code = err instanceof NpipeError ? err.code : 'ERR_NPIPE_INTERNAL';
        io.stderr.write(`npipe mkfifo: ${code}: ${(err as Error).message}\n`);
        if (exit === EXIT.ok) exit = exitCodeFor(err);
      }
    }
    return exit;
  },
};
