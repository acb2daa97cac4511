/**
 * The Windows named pipe driver: `\\.\pipe\<name>` (or `//./pipe/<name>`). The
 * receiver is the pipe server, each sender one client connection; every format is
 * on the wire, and safe with many writers, since each writer has its own
 * connection (receiver.ts). Request/reply runs over each client's connection, both
 * ways (rpc-transport.ts). Every connection first proves, with the pipe's key,
 * that it comes from this machine and (without `allowShared`) this user
 * (pipe-key.ts).
 *
 * Windows only: elsewhere Node would take the name for a Unix socket path and
 * create a file called `\\.\pipe\<name>` in the current folder, so every entry
 * point refuses first (the registry, which knows the platforms, refuses too).
 */
import { UnsupportedError } from '../../errors.js';
import { serveFrames } from '../../rpc/frame-server.js';
import { connectFrames } from '../../rpc/frame-client.js';
import type { Driver } from '../types.js';
import { normalizeWindowsPipe } from './address.js';
import { openWinPipeFrameReceiver } from './receiver.js';
import { openWinPipeFrameSender } from './sender.js';
import { WinPipeTransport } from './rpc-transport.js';

/** Why a pipe name cannot be used here, told before anything is opened. */
export const NEEDS_WINDOWS = 'Windows named pipes need Windows; on this system use a FIFO path';

/** The name, normalised, once it is known that this is Windows. @throws ERR_NPIPE_INVALID_ARG, ERR_NPIPE_UNSUPPORTED */
function pipeName(address: string): string {
  const name = normalizeWindowsPipe(address);
  if (process.platform !== 'win32') throw new UnsupportedError(NEEDS_WINDOWS);
  return name;
}

/** Request/reply over the connection's two directions, with the caller's size limit and `allowShared`. */
function transportFor(options: { maxMessageSize?: number; allowShared?: boolean }): WinPipeTransport {
  return new WinPipeTransport({
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...(options.allowShared === true ? { allowShared: true } : {}),
  });
}

export const driver: Driver = {
  name: 'winpipe',
  noun: 'a Windows pipe name',
  capabilities: {
    wireFormat: true,
    waitsForReader: true,
    acknowledges: false,
    cliOptions: ['allow-shared'],
  },
  openSender: async (address, framing, options) =>
    openWinPipeFrameSender(pipeName(address), framing, {
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.waitForReader === undefined ? {} : { waitForReader: options.waitForReader }),
      ...(options.allowShared === true ? { allowShared: true } : {}),
      pipeKey: true,
    }),
  openReceiver: async (address, framing, options) =>
    openWinPipeFrameReceiver(pipeName(address), framing, {
      ...(options.keepOpen === undefined ? {} : { keepOpen: options.keepOpen }),
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.allowShared === true ? { allowShared: true } : {}),
      pipeKey: true,
    }),
  serve: async (address, handler, options) => serveFrames(transportFor(options), pipeName(address), handler, options),
  connect: async (address, options) => connectFrames(transportFor(options), pipeName(address), options),
};
