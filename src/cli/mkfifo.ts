import { UnsupportedError } from '../errors.js';
import { EXIT, UsageError, modeOption, type Command } from './args.js';

export const mkfifoCommand: Command = {
  name: 'mkfifo',
  help: `Usage: npipe mkfifo <path> [--mode 600]

Creates a FIFO at <path> with mkfifo(3). A FIFO already there is accepted and
left as it is; anything else there (a file, a directory, a symlink) is an error
(exit 4, ERR_NPIPE_NOT_FIFO). On Windows, which has no FIFOs, it is
ERR_NPIPE_UNSUPPORTED (exit 1): a Windows pipe is made by its receiver.

Options:
      --mode OCTAL   permission bits before the umask (default 600: owner only)
  -h, --help         show this help`,
  options: { mode: { type: 'string' } },
  async run(values, positionals) {
    if (positionals.length !== 1) throw new UsageError('npipe mkfifo takes exactly one path (see npipe mkfifo --help)');
    if (process.platform === 'win32') {
      throw new UnsupportedError('Windows has no FIFOs; a Windows pipe is made by its receiver (npipe listen \\\\.\\pipe\\<name>), nothing to create first');
    }
    // Loaded here, not above: the CLI on Windows never loads the FIFO layer.
    const { mkfifo } = await import('../fifo/index.js');
    await mkfifo(positionals[0]!, { mode: modeOption(values.mode) ?? 0o600 });
    return EXIT.ok;
  },
};
