import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { fromSystemError } from '../sys/errno.js';
import { errnoError, loadLibc } from '../sys/libc.js';

// <linux/fcntl.h>: F_LINUX_SPECIFIC_BASE (1024) + 7 and + 8.
const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;

function linuxOnly(): void {
  if (process.platform !== 'linux') {
    throw new UnsupportedError('the pipe capacity can be read and set on Linux only (F_GETPIPE_SZ/F_SETPIPE_SZ)');
  }
}

/**
 * The capacity of the pipe behind `fd`, in bytes (65536 by default on Linux).
 * Platform: Linux only; elsewhere ERR_NPIPE_UNSUPPORTED.
 */
export function getPipeSize(fd: number): number {
  linuxOnly();
  const libc = loadLibc();
  const size = libc.fcntlGet(fd, F_GETPIPE_SZ);
  if (size < 0) throw fromSystemError(errnoError(libc.errno(), 'fcntl(F_GETPIPE_SZ)'), `fd ${fd}`, 'reading the pipe size of');
  return size;
}

/**
 * Sets the capacity of the pipe behind `fd`. The kernel rounds it up to a power
 * of two pages; the size it chose is returned. An unprivileged process may go up to
 * /proc/sys/fs/pipe-max-size (1 MiB by default); above it, ERR_NPIPE_PERMISSION.
 * Shrinking below the bytes already in the pipe fails with ERR_NPIPE_SYSTEM (EBUSY);
 * a size no pipe can have (EINVAL) is ERR_NPIPE_INVALID_ARG.
 * Platform: Linux only; elsewhere ERR_NPIPE_UNSUPPORTED.
 */
const EINVAL = 22;

export function setPipeSize(fd: number, size: number): number {
  linuxOnly();
  const libc = loadLibc();
  const result = libc.fcntlSet(fd, F_SETPIPE_SZ, size);
  if (result < 0) {
    const errno = libc.errno();
    if (errno === EINVAL) {
      // A size no pipe can have (over 2^31 bytes, or past what the kernel can round up): a bad argument, not an OS failure.
      throw new InvalidArgumentError(`no pipe can hold ${size} bytes (fcntl(F_SETPIPE_SZ) answers EINVAL); ask for at most /proc/sys/fs/pipe-max-size`);
    }
    throw fromSystemError(errnoError(errno, 'fcntl(F_SETPIPE_SZ)'), `fd ${fd}`, `setting the pipe size to ${size} on`);
  }
  return result;
}

/** FIONREAD: <asm-generic/ioctls.h> on Linux, <sys/filio.h> on macOS. */
const FIONREAD = process.platform === 'darwin' ? 0x4004667f : 0x541b;

/**
 * Bytes waiting in the pipe behind `fd` (FIONREAD): written, not yet read.
 * @throws ERR_NPIPE_SYSTEM
 */
export function bytesInPipe(fd: number): number {
  const libc = loadLibc();
  const out = [0];
  if (libc.ioctlInt(fd, FIONREAD, out) < 0) {
    throw fromSystemError(errnoError(libc.errno(), 'ioctl(FIONREAD)'), `fd ${fd}`, 'counting the bytes waiting in');
  }
  return out[0]!;
}
