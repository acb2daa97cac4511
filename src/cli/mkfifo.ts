import { mkfifo } from '../fifo/index.js';
import { EXIT, UsageError, modeOption, type Command } from './args.js';

export const mkfifoCommand: Command = {
  name: 'mkfifo',
  summary: 'create a FIFO (an existing FIFO is left as it is)',
  help: `Usage: npipe mkfifo <path> [--mode 600]

Creates a FIFO at <path> with mkfifo(3). A FIFO already there is accepted and
left as it is; anything else there (a file, a directory, a symlink) is an error
(exit 4, ERR_NPIPE_NOT_FIFO).

Options:
      --mode OCTAL   permission bits before the umask (default 600: owner only)
  -h, --help         show this help`,
  options: { mode: { type: 'string' } },
  async run(values, positionals) {
    if (positionals.length !== 1) throw new UsageError('npipe mkfifo takes exactly one path (see npipe mkfifo --help)');
    await mkfifo(positionals[0]!, { mode: modeOption(values.mode) ?? 0o600 });
    return EXIT.ok;
  },
};
