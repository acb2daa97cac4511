/**
 * A segment file mapped into this process: made by a sender (0600, O_EXCL,
 * O_NOFOLLOW), mapped by the receiver after checking what it opened (a regular
 * file of the user's, closed to others, of a size that matches its header). The
 * mapping is the only way to the memory: the descriptor is closed once mapped.
 *
 * A view of the mapping must never be touched after munmap (the process would
 * crash), so the views live only here: unmap() replaces them with empty arrays
 * first, and every reader of them goes through this object.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SystemError } from '../../errors.js';
import { fromSystemError } from '../../sys/errno.js';
import { errnoError, loadLibc } from '../../sys/libc.js';
import { euid } from '../../sys/euid.js';
import { removeQuietly } from '../../util/at-exit.js';
import { HEADER_BYTES, I_CAPACITY, I_MAGIC, I_SENDER_PID, I_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY, VERSION, isCapacity } from './layout.js';

const { O_CREAT, O_EXCL, O_RDWR, O_NOFOLLOW, O_NONBLOCK } = constants;
const EMPTY_I32 = new Int32Array(0);
const EMPTY_U8 = new Uint8Array(0);

export class Mapping {
  /** The header's fields. */
  i32: Int32Array;
  /** The ring, `capacity` bytes. */
  data: Uint8Array;
  /** The ring as 32-bit words (record headers are 8-byte aligned). */
  data32: Int32Array;
  readonly capacity: number;
  #pointer: unknown;
  readonly #length: number;

  constructor(pointer: unknown, view: ArrayBuffer, capacity: number) {
    this.#pointer = pointer;
    this.#length = HEADER_BYTES + capacity;
    this.capacity = capacity;
    this.i32 = new Int32Array(view, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(view, HEADER_BYTES, capacity);
    this.data32 = new Int32Array(view, HEADER_BYTES, capacity / 4);
  }

  /** Drops the views, then unmaps. Idempotent. */
  unmap(): void {
    if (this.#pointer === undefined) return;
    this.i32 = EMPTY_I32;
    this.data = EMPTY_U8;
    this.data32 = EMPTY_I32;
    const pointer = this.#pointer;
    this.#pointer = undefined;
    loadLibc().munmap(pointer, this.#length);
  }
}

function map(fd: number, capacity: number, path: string): Mapping {
  const libc = loadLibc();
  const mapped = libc.mmapShared(fd, HEADER_BYTES + capacity);
  if (!mapped) throw fromSystemError(errnoError(libc.errno(), 'mmap', path), path, 'mapping');
  return new Mapping(mapped.pointer, mapped.view, capacity);
}

/**
 * Gives the segment all its pages now. ftruncate on tmpfs reserves none: a ring in a
 * /dev/shm too full to hold it would map fine, and its sender would die of SIGBUS at
 * its first write to a page tmpfs cannot supply. Allocated now, that is ENOSPC here.
 * @throws ERR_NPIPE_SYSTEM (ENOSPC, whose cause has that code)
 */
function reservePages(fd: number, bytes: number, path: string): void {
  const fallocate = loadLibc().posixFallocate;
  if (!fallocate) return;
  const errno = fallocate(fd, 0, bytes);
  if (errno === 0) return;
  const cause = errnoError(errno, 'posix_fallocate', path);
  if (cause.code === 'ENOSPC') {
    throw new SystemError(
      `no room for a ring of ${bytes} bytes in ${dirname(path)} (ENOSPC): its tmpfs is full; free some of it, or use a smaller ringSize`,
      { cause },
    );
  }
  throw fromSystemError(cause, path, 'allocating');
}

export interface NewSegment {
  mapping: Mapping;
  /** `<pid>-<16 hex digits>`: the segment is `<base>.ring`, its doorbell `<base>.bell`. */
  base: string;
  ringPath: string;
  bellPath: string;
}

/** A sender's new segment in `dir`, mapped, its header written (TAIL and HEAD 0). */
export function createSegment(dir: string, capacity: number): NewSegment {
  const base = `${process.pid}-${randomBytes(8).toString('hex')}`;
  const ringPath = join(dir, `${base}.ring`);
  let fd: number;
  try {
    fd = openSync(ringPath, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw fromSystemError(err, ringPath, 'creating');
  }
  let mapping: Mapping;
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    ftruncateSync(fd, HEADER_BYTES + capacity);
    reservePages(fd, HEADER_BYTES + capacity, ringPath);
    mapping = map(fd, capacity, ringPath);
  } catch (err) {
    removeQuietly(ringPath);
    throw fromSystemError(err, ringPath, 'sizing');
  } finally {
    closeSync(fd);
  }
  const { i32 } = mapping;
  i32[I_MAGIC] = MAGIC;
  i32[I_VERSION] = VERSION;
  i32[I_CAPACITY] = capacity;
  i32[I_SENDER_PID] = process.pid;
  return { mapping, base, ringPath, bellPath: join(dir, `${base}.bell`) };
}

/**
 * Maps a sender's segment at `path`, announced as made by `pid`, after checking
 * it: a regular file (O_NOFOLLOW: no symlink), one link, the user's, mode 0600 or
 * narrower, every page allocated (not sparse), of exactly the size its header's capacity gives, with the magic, the
 * version and that pid. What fails is a string saying why (the receiver drops the
 * sender as corrupt), or an OS error thrown.
 */
export function attachSegment(path: string, pid: number): Mapping | string {
  let fd: number;
  try {
    fd = openSync(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    return `cannot open it (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    if (st.uid !== euid()) return `owned by uid ${st.uid}, not ${euid()}`;
    if ((st.mode & 0o077) !== 0) return `mode ${(st.mode & 0o777).toString(8)} lets others in`;
    if (st.nlink !== 1) return `${st.nlink} links`;
    if (st.size < HEADER_BYTES + MIN_CAPACITY || st.size > HEADER_BYTES + MAX_CAPACITY) return `a size of ${st.size} bytes`;
    // Every page there (createSegment allocates them): a page of a sparse file in a full tmpfs
    // would be a SIGBUS in this process at its first read.
    if (st.blocks * 512 < st.size) return `sparse (${st.blocks * 512} of its ${st.size} bytes allocated)`;
    // The header, copied out and checked before anything is mapped.
    const header = Buffer.alloc(16);
    if (readSync(fd, header, 0, 16, 0) !== 16) return 'no header';
    const capacity = header.readUInt32LE(8);
    if (header.readUInt32LE(0) !== MAGIC) return 'not a segment (magic)';
    if (header.readUInt32LE(4) !== VERSION) return `version ${header.readUInt32LE(4)}`;
    if (!isCapacity(capacity) || st.size !== HEADER_BYTES + capacity) return `a capacity of ${capacity} in a file of ${st.size} bytes`;
    if (header.readInt32LE(12) !== pid) return `the pid ${header.readInt32LE(12)}, not ${pid} as its name says`;
    return map(fd, capacity, path);
  } catch (err) {
    if (err instanceof SystemError) throw err;
    return String(err);
  } finally {
    closeSync(fd);
  }
}
