/**
 * Whether the process at the other end of a FIFO is gone, asked of our write end
 * without writing: poll(2) reports POLLERR on a FIFO's write end once no process
 * has it open for reading (Linux pipe_poll). A sender asks it of the receiver's
 * control FIFO, the receiver of each sender's doorbell FIFO: exact, where a pid
 * could have been reused.
 */
import { errnoError, loadLibc } from '../../sys/libc.js';

const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLNVAL = 0x20;

const pollfd = new Uint8Array(8);
const fdField = new Int32Array(pollfd.buffer, 0, 1);
const shortFields = new Int16Array(pollfd.buffer, 4, 2); // events, revents

/** True when `writeFd` (a FIFO's write end) has no reader left. Never waits. */
export function readerGone(writeFd: number): boolean {
  const libc = loadLibc();
  fdField[0] = writeFd;
  shortFields[0] = POLLOUT;
  shortFields[1] = 0;
  const n = libc.poll(pollfd, 1, 0);
  if (n < 0) return false; // EINTR and friends: ask again next time
  const revents = shortFields[1]!;
  if (revents & POLLNVAL) throw errnoError(9, 'poll');
  return (revents & POLLERR) !== 0;
}
