/**
 * The textbook's writer, done properly: creates the FIFO `my_pipe` in the current
 * folder if it is missing, waits for a reader (without blocking Node's event loop
 * or its threadpool), sends "Hello from pid [N]" as one line, and closes.
 *
 * On Windows the pipe is \\.\pipe\my_pipe.
 *
 *   node dist/examples/write_to_named_pipe.js [path or pipe name]
 */
import { openSender } from '../src/index.js';

// On Windows a named pipe has a name, not a path: \\.\pipe\my_pipe (issue 17).
const namedPipe = process.argv[2] ?? (process.platform === 'win32' ? '\\\\.\\pipe\\my_pipe' : 'my_pipe');
const message = `Hello from pid [${process.pid}]`;

const sender = await openSender(namedPipe, { format: 'lines' });
await sender.send(message);
await sender.close();
console.log(`I pid [${process.pid}] sent a message => ${message}`);
