/**
 * The `npipe/fifo` subpath: the low-level FIFO layer for programs that manage
 * their own descriptors. mkfifo with an exact mode, FIFO ends opened without
 * blocking and checked (a FIFO, not a symlink, not writable by others unless
 * allowed), and the pipe's capacity (Linux). The rest of fifo/ (locks, splice,
 * reply folders) serves the drivers and stays internal.
 */
export { mkfifo, mkfifoSync, type MkfifoOptions } from './fifo/mkfifo.js';
export { FifoEnd, openFifoReader, openFifoWriter, type FifoRole, type OpenFifoOptions, type OpenReaderOptions } from './fifo/open.js';
export { getPipeSize, setPipeSize } from './fifo/capacity.js';
export type { WaitOptions } from './util/abort.js';
