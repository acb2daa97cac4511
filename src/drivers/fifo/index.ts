/**
 * The FIFO driver: POSIX named pipes at a file path. Every format is on the wire;
 * request/reply runs over frames with private reply FIFOs (docs/RPC.md); the CLI
 * gets splice(2) lanes and exact counted reads.
 */
import type { Transport } from '../../transport/types.js';
import type { Driver } from '../types.js';
import { serveFrames } from '../../rpc/frame-server.js';
import { connectFrames } from '../../rpc/frame-client.js';
import { openFifoFrameSender } from './sender.js';
import { openFifoFrameReceiver } from './receiver.js';
import { FifoTransport } from './reply-transport.js';
import { canSplice, receiveRawInto, sendFileRaw } from './raw-stream.js';
import { openCountedReader } from './counted-reader.js';

/** Request/reply over FIFOs with the caller's size limit and `allowShared`. */
function transportFor(options: { maxMessageSize?: number; allowShared?: boolean }): Transport {
  return new FifoTransport({
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...(options.allowShared === true ? { allowShared: true } : {}),
  });
}

export const driver: Driver = {
  name: 'fifo',
  noun: 'a FIFO path',
  capabilities: {
    wireFormat: true,
    waitsForReader: true,
    acknowledges: false,
    cliOptions: ['mode', 'pipe-size', 'allow-shared', 'once', 'max-partial', 'no-create'],
    splice: { available: canSplice, sendFile: sendFileRaw, receiveInto: receiveRawInto },
    countedReader: openCountedReader,
  },
  openSender: (path, framing, options) => openFifoFrameSender(path, framing, options),
  openReceiver: (path, framing, options) => openFifoFrameReceiver(path, framing, options),
  serve: (path, handler, options) => serveFrames(transportFor(options), path, handler, options),
  connect: (path, options) => connectFrames(transportFor(options), path, options),
};
