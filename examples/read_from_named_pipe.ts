/**
 * The textbook's reader, done properly: opens the FIFO `my_pipe` in the current
 * folder (creating it if it is missing, so either program may start first), reads
 * one whole line whatever its length (the textbook read exactly 22 bytes, which
 * broke with pids of other lengths), and prints it.
 *
 * On Windows the pipe is \\.\pipe\my_pipe.
 *
 *   node dist/examples/read_from_named_pipe.js [path or pipe name]
 */
import { openReceiver } from '../src/index.js';

// On Windows a named pipe has a name, not a path: \\.\pipe\my_pipe (issue 17).
const namedPipe = process.argv[2] ?? (process.platform === 'win32' ? '\\\\.\\pipe\\my_pipe' : 'my_pipe');

// keepOpen: false ends the reader at the first end of file, as the textbook's does.
const receiver = await openReceiver(namedPipe, { format: 'lines', keepOpen: false });
const message = await receiver.receive();
await receiver.close();
if (message === undefined) {
  console.error(`the writer closed ${namedPipe} without sending a message`);
  process.exitCode = 1;
} else {
  console.log(`I pid [${process.pid}] received a message => ${message}`);
}
