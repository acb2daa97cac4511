/**
 * The CLI's commands: name, one-line summary, and how to load it. A call loads
 * only the command it runs (a one-shot `npipe send` is all start-up: issue 18 #6),
 * and `npipe --help` loads none.
 */
import type { Command } from './args.js';

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'send', summary: 'send messages into a FIFO (from arguments, or stdin line by line)', load: async () => (await import('./send.js')).sendCommand },
  { name: 'listen', summary: 'print the messages arriving on a FIFO', load: async () => (await import('./listen.js')).listenCommand },
  {
    name: 'serve',
    summary: 'answer requests on a FIFO, pipe or NATS subject (command or echo)',
    load: async () => (await import('./serve.js')).serveCommand,
  },
  { name: 'request', summary: 'send one request to an npipe server and print its reply', load: async () => (await import('./request.js')).requestCommand },
  { name: 'publish', summary: 'send messages to every subscriber of a topic (a folder of FIFOs)', load: async () => (await import('./publish.js')).publishCommand },
  { name: 'subscribe', summary: 'print every message published to a topic from now on', load: async () => (await import('./subscribe.js')).subscribeCommand },
  { name: 'bridge', summary: 'carry messages from a FIFO to NATS, or from NATS to a FIFO', load: async () => (await import('./bridge.js')).bridgeCommand },
  { name: 'stat', summary: 'who holds a FIFO open, its capacity and bytes waiting (or NATS)', load: async () => (await import('./stat.js')).statCommand },
  {
    name: 'streams',
    summary: 'list or remove the JetStream streams npipe made on a NATS server',
    load: async () => (await import('./streams.js')).streamsCommand,
  },
  { name: 'mkfifo', summary: 'create a FIFO (an existing FIFO is left as it is)', load: async () => (await import('./mkfifo.js')).mkfifoCommand },
  { name: 'demo', summary: "run the textbook's writer and reader as two unrelated processes", load: async () => (await import('./demo.js')).demoCommand },
];
