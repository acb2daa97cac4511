/**
 * The textbook's writer, done properly: creates the FIFO `my_pipe` in the current
 * folder if it is missing, waits for a reader (without blocking Node's event loop
 * or its threadpool), sends "Hello from pid [N]" as one line, and closes.
 *
 *   node dist/examples/write_to_named_pipe.js [path]
 */
import { openSender } from '../src/index.js';

const namedPipe = process.argv[2] ?? 'my_pipe';
const message = `Hello from pid [${process.pid}]`;

const sender = await openSender(namedPipe, { format: 'lines' });
await sender.send(message);
await sender.close();
console.log(`I pid [${process.pid}] sent a message => ${message}`);
