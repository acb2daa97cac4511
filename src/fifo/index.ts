export { mkfifo, mkfifoExactSync, mkfifoSync, type MkfifoOptions } from './mkfifo.js';
export {
  FifoEnd,
  MAX_READER_POLL_MS,
  openFifoReader,
  openFifoWriter,
  type FifoRole,
  type OpenFifoOptions,
  type OpenReaderOptions,
} from './open.js';
export { bytesInPipe, getPipeSize, setPipeSize } from './capacity.js';
export { spliceAvailable, spliceNow } from './splice.js';
export { POLLIN, POLLOUT, pollOne, type PollResult } from './poll.js';
export { lock, tryLock, unlock, dup, writeNow, type LockMode } from './lock.js';
export {
  checkReplyFifo,
  checkReplyPath,
  createReplyFifo,
  ensureReplyDirectory,
  removeStaleReplyFifos,
  replyDirectories,
} from './replydir.js';
