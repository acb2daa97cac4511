import { spawn } from 'node:child_process';
import { FrameTooLargeError, serve, type Handler } from '../index.js';
import { EXIT, UsageError, checkAddress, intOption, type Command } from './args.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'answer requests arriving on a FIFO (with a shell command, or echo)',
  help: `Usage: npipe serve <path> (--exec '<shell command>' | --echo) [options]

Serves requests from any number of clients (npipe request, or the library's
connect()) arriving on the FIFO <path>, created if missing. Replies go to each
client's private reply FIFO; a dead, slow or malicious client never blocks the
server or other clients. Runs until SIGINT/SIGTERM (exit 0).

  --exec CMD         run "sh -c CMD" once per request, with the request on stdin;
                     its stdout is the reply; a nonzero exit is an error reply
                     (the client gets ERR_NPIPE_REMOTE with CMD's stderr)
  --echo             answer each request with the request itself

Options:
  -c, --concurrency N  requests handled at once (default 8)
      --max-size N     largest request or reply in bytes (default 1048576)
      --allow-shared   accept a request FIFO writable by group or others
      --busy-poll US   after each request and reply, keep polling for the
                       next request for US microseconds instead of sleeping
                       (default 0: off); a faster round trip where waking an
                       idle CPU is slow (VMs), for that much CPU time
                       (docs/TUNING.md)
  -h, --help           show this help

Refused reply addresses and dropped replies are reported on stderr.

Examples:
  npipe serve /tmp/upper --exec 'tr a-z A-Z'
  npipe request /tmp/upper hello          # prints HELLO`,
  options: {
    exec: { type: 'string' },
    echo: { type: 'boolean' },
    concurrency: { type: 'string', short: 'c' },
    'max-size': { type: 'string' },
    'allow-shared': { type: 'boolean' },
    'busy-poll': { type: 'string' },
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe serve takes exactly one FIFO path (see npipe serve --help)');
    checkAddress(positionals[0]!, values); // --allow-shared with a nats:// URL: refused, not ignored
    const exec = values.exec as string | undefined;
    if ((exec === undefined) === (values.echo !== true)) {
      throw new UsageError('npipe serve needs one of --exec CMD or --echo (see npipe serve --help)');
    }
    const concurrency = intOption(values.concurrency, 'concurrency', { min: 1 }) ?? 8;
    const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 }) ?? 1024 * 1024;
    const busyPoll = intOption(values['busy-poll'], 'busy-poll') ?? 0;
    const handler: Handler<Buffer, Buffer> = exec === undefined ? (request) => request : runCommand(exec, maxMessageSize);
    const server = await serve<Buffer, Buffer>(positionals[0]!, handler, {
      codec: 'bytes',
      concurrency,
      maxMessageSize,
      busyPoll,
      signal: io.stop,
      onEvent: (e) => io.stderr.write(`npipe serve: ${e.kind}${e.client ? ` (${e.client})` : ''}: ${e.reason}\n`),
    });
    await server.done;
    return EXIT.ok;
  },
};

/** A handler running `sh -c command` per request: request on stdin, reply from stdout. */
function runCommand(command: string, maxReply: number): Handler<Buffer, Buffer> {
  return (request, { signal }) =>
    new Promise<Buffer>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = '';
      let tooLarge = false;
      const onAbort = () => child.kill('SIGTERM');
      signal.addEventListener('abort', onAbort, { once: true });
      child.stdout.on('data', (chunk: Buffer) => {
        outBytes += chunk.length;
        if (outBytes > maxReply) {
          tooLarge = true;
          child.kill('SIGTERM');
        } else out.push(chunk);
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (err.length < 4096) err += chunk;
      });
      child.stdin.on('error', () => {}); // the command may exit without reading its input
      child.stdin.end(request);
      child.on('error', (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      });
      child.on('close', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) reject(signal.reason);
        else if (tooLarge) reject(new FrameTooLargeError(outBytes, maxReply, 'reply'));
        else if (code === 0) resolve(Buffer.concat(out, outBytes));
        else {
          reject(Object.assign(new Error(err.trim() || `${command} exited with ${sig ?? `code ${code}`}`), { code: 'ERR_NPIPE_REMOTE' }));
        }
      });
    });
}
