import { spawn, spawnSync } from 'node:child_process';
import { FrameTooLargeError } from '../errors.js';
import { serve } from '../api.js';
import type { Handler } from '../rpc/handler.js';
import { EXIT, UsageError, checkAddress, intOption, microsecondsOption, type Command } from './args.js';
import { escapeForLog } from './log-escape.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';

/** ms between SIGTERM to a cancelled command's process group and SIGKILL. */
export const KILL_GRACE_MS = 2000;

export const serveCommand: Command = {
  name: 'serve',
  help: `Usage: npipe serve <address> (--exec '<shell command>' | --echo) [options]

Serves requests from any number of clients (npipe request, or the library's
connect()) arriving on <address>: a FIFO path (created if missing), a Windows
pipe name (\\\\.\\pipe\\<name>) or a nats:// URL. Over a FIFO replies go to
each client's private reply FIFO, over a Windows pipe back on the client's
connection; a dead, slow or malicious client never blocks the server or other
clients. Runs until SIGINT/SIGTERM (exit 0).

  --exec CMD         run "sh -c CMD" once per request, the request on stdin;
                     its stdout is the reply; a nonzero exit is an error reply
                     (the client gets ERR_NPIPE_REMOTE: "command exited with
                     status N: " and CMD's stderr). CMD runs in a process group
                     of its own: a cancelled request (the client's timeout) or
                     the server stopping ends the whole group (SIGTERM, then
                     SIGKILL after ${KILL_GRACE_MS / 1000} s), so no child outlives it.
                     On Windows CMD runs as cmd.exe /d /s /c "CMD", and its
                     process tree is ended with taskkill /T /F
  --echo             answer each request with the request itself

Options:
  -c, --concurrency N  requests handled at once (default 8)
      --max-size N     largest request or reply in bytes (default 1048576)
      --allow-shared   accept a request FIFO writable by group or others; a
                       Windows pipe: let other users connect
      --busy-poll T    after each request and reply, keep polling for the
                       next request for T (50us, 1ms; a bare number is
                       microseconds) instead of sleeping (default 0:
                       off); a faster round trip where waking an idle CPU
                       is slow (VMs), for that much CPU time
                       (docs/TUNING.md)
  -h, --help           show this help

${NATS_FLAGS_HELP}

Refused reply addresses and dropped replies are reported on stderr, at most 20
of a kind per second, with control characters in what the peer sent escaped.

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
    ...natsFlags,
  },
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError('npipe serve takes exactly one address: a FIFO path, pipe name or nats:// URL (see npipe serve --help)');
    await checkAddress(positionals[0]!, values); // --allow-shared with a nats:// URL: refused, not ignored
    const exec = values.exec as string | undefined;
    if ((exec === undefined) === (values.echo !== true)) {
      throw new UsageError('npipe serve needs one of --exec CMD or --echo (see npipe serve --help)');
    }
    const concurrency = intOption(values.concurrency, 'concurrency', { min: 1 }) ?? 8;
    const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 }) ?? 1024 * 1024;
    const busyPoll = microsecondsOption(values['busy-poll'], 'busy-poll') ?? 0;
    const nats = natsOptionsFrom(values);
    const running = new Set<Promise<unknown>>();
    const groups = new Set<number>();
    // Last resort, whatever the way out: no command's process group outlives the server.
    const killAll = () => {
      for (const pgid of groups) killGroup(pgid, 'SIGKILL');
    };
    process.on('exit', killAll);
    const handler: Handler<Buffer, Buffer> = exec === undefined ? (request) => request : runCommand(exec, maxMessageSize, running, groups);
    const server = await serve<Buffer, Buffer>(positionals[0]!, handler, {
      // --allow-shared: a request FIFO group or others may write to (a server for several users).
      ...(values['allow-shared'] === true ? { allowShared: true } : {}),
      codec: 'bytes',
      concurrency,
      maxMessageSize,
      busyPoll,
      ...(nats === undefined ? {} : { nats }),
      signal: io.stop,
      onEvent: (e) => io.stderr.write(`npipe serve: ${e.kind}${e.client ? ` (${escapeForLog(e.client)})` : ''}: ${escapeForLog(e.reason)}\n`),
    });
    try {
      await server.done;
      // Stopping aborted every running command: wait until their groups are gone (SIGKILL after the grace).
      await Promise.allSettled([...running]);
    } finally {
      killAll();
      process.off('exit', killAll);
    }
    return EXIT.ok;
  },
};

/**
 * The shell running CMD: `sh -c CMD` leading a process group of its own; on
 * Windows `cmd.exe /d /s /c "CMD"` (as Node's `shell: true` runs it), whose tree
 * killGroup ends with taskkill.
 */
function spawnCommand(command: string) {
  if (process.platform === 'win32') {
    return spawn(process.env.ComSpec ?? 'cmd.exe', ['/d', '/s', '/c', `"${command}"`], {
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsVerbatimArguments: true,
      windowsHide: true,
    });
  }
  return spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  if (process.platform === 'win32') {
    // No process groups or signals: end the command's whole tree at once (sync: this also runs at 'exit').
    spawnSync('taskkill', ['/pid', String(pgid), '/T', '/F'], { stdio: 'ignore', windowsHide: true });
    return;
  }
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

/**
 * A handler running `sh -c command` per request: request on stdin, reply from
 * stdout. The command leads a process group of its own (issue 15 #8: SIGTERM to
 * `sh` alone left its children running, holding the reply pipe and the slot); a
 * cancel ends the group, SIGTERM then SIGKILL, and the handler settles once its
 * output is closed, so its slot is free only when the command is gone.
 */
function runCommand(command: string, maxReply: number, running: Set<Promise<unknown>>, groups: Set<number>): Handler<Buffer, Buffer> {
  return (request, { signal }) => {
    const done = new Promise<Buffer>((resolve, reject) => {
      const child = spawnCommand(command);
      const pgid = child.pid;
      if (pgid !== undefined) groups.add(pgid);
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = '';
      let tooLarge = false;
      let killTimer: NodeJS.Timeout | undefined;
      const stop = () => {
        if (pgid === undefined || killTimer) return;
        killGroup(pgid, 'SIGTERM');
        killTimer = setTimeout(() => killGroup(pgid, 'SIGKILL'), KILL_GRACE_MS);
      };
      signal.addEventListener('abort', stop, { once: true });
      child.stdout.on('data', (chunk: Buffer) => {
        outBytes += chunk.length;
        if (outBytes > maxReply) {
          tooLarge = true;
          stop();
        } else out.push(chunk);
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (err.length < 4096) err += chunk;
      });
      child.stdin.on('error', () => {}); // the command may exit without reading its input
      child.stdin.end(request);
      const finish = () => {
        clearTimeout(killTimer);
        signal.removeEventListener('abort', stop);
        if (pgid !== undefined) groups.delete(pgid);
      };
      child.on('error', (e) => {
        finish();
        reject(e);
      });
      child.on('close', (code, sig) => {
        finish();
        if (signal.aborted) reject(signal.reason);
        else if (tooLarge) reject(new FrameTooLargeError(outBytes, maxReply, 'reply'));
        else if (code === 0) resolve(Buffer.concat(out, outBytes));
        else {
          // One clear line for the client (issue 15 #20): the status, then what the command said.
          const status = sig ? `command was killed by ${sig}` : `command exited with status ${code}`;
          const said = err.trim();
          reject(Object.assign(new Error(said ? `${status}: ${said}` : status), { code: 'ERR_NPIPE_REMOTE', status: code }));
        }
      });
    });
    running.add(done);
    void done.then(
      () => running.delete(done),
      () => running.delete(done),
    );
    return done;
  };
}
