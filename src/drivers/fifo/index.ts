/**
 * The FIFO driver: POSIX named pipes at a file path. Every format is on the wire;
 * request/reply runs over frames with private reply FIFOs (docs/RPC.md); the CLI
 * gets splice(2) lanes and exact counted reads.
 *
 * Only the sender is loaded with the driver: the rest (receiver, request/reply,
 * splice lanes, counted reads) on first use, so that a one-shot `npipe send`
 * loads no more than it runs (issue 18 #6).
 */
import type { Driver } from '../types.js';
import { spliceAvailable } from '../../fifo/index.js';
import { openFifoFrameSender } from './sender.js';
import type { FifoTransport } from './reply-transport.js';

/** Request/reply over FIFOs with the caller's size limit and `allowShared`. */
async function transportFor(options: { maxMessageSize?: number; allowShared?: boolean }): Promise<FifoTransport> {
  const { FifoTransport } = await import('./reply-transport.js');
  return new FifoTransport({
    ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
    ...(options.allowShared === true ? { allowShared: true } : {}),
  });
}

/**
 * Whether raw streams can be spliced here: Linux, koffi loaded, and not turned off
 * with the environment variable NPIPE_SPLICE=0 (the copying path then runs).
 */
function canSplice(): boolean {
  return process.env.NPIPE_SPLICE !== '0' && spliceAvailable();
}

export const driver: Driver = {
  name: 'fifo',
  noun: 'a FIFO path',
  capabilities: {
    wireFormat: true,
    waitsForReader: true,
    acknowledges: false,
    cliOptions: ['mode', 'pipe-size', 'allow-shared', 'once', 'max-partial', 'no-create'],
    splice: {
      available: canSplice,
      sendFile: async (fd, path, options) => (await import('./raw-stream.js')).sendFileRaw(fd, path, options),
      receiveInto: async (path, outFd, output, options) => (await import('./raw-stream.js')).receiveRawInto(path, outFd, output, options),
    },
    countedReader: async (path, options) => (await import('./counted-reader.js')).openCountedReader(path, options),
    pubsub: {
      openPublisher: async (topic, framing, options) => (await import('./topic-publisher.js')).openFifoPublisher(topic, framing, options),
      subscribe: async (topic, framing, options) => (await import('./topic-subscriber.js')).subscribeFifo(topic, framing, options),
    },
    inspect: async (path) => (await import('../../fifo/inspect.js')).inspectFifo(path),
  },
  openSender: (path, framing, options) => openFifoFrameSender(path, framing, options),
  openReceiver: async (path, framing, options) => (await import('./receiver.js')).openFifoFrameReceiver(path, framing, options),
  serve: async (path, handler, options) => (await import('../../rpc/frame-server.js')).serveFrames(await transportFor(options), path, handler, options),
  connect: async (path, options) => (await import('../../rpc/frame-client.js')).connectFrames(await transportFor(options), path, options),
};
