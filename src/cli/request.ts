import { RemoteError } from '../errors.js';
import { connect } from '../api.js';
import { waitingHint } from './waiting-hint.js';
import { EXIT, UsageError, checkAddress, durationOption, intOption, type Command } from './args.js';
import { escapeForLog } from './log-escape.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';

export const requestCommand: Command = {
  name: 'request',
  help: `Usage: npipe request <address> <message> [options]

Sends <message> to the server on <address> (npipe serve, or the library's
serve(): a FIFO path, a Windows pipe name or a nats:// URL) and prints its
reply (followed by a newline if it has none). With no message argument, the
request is all of stdin.

Options:
  -t, --timeout T    give up after T: 250ms, 5s, 2m (a bare number is
                     milliseconds); exit 3, ERR_NPIPE_TIMEOUT, and the server's
                     handler is told to stop
      --wait         wait for the server to appear instead of failing at once
      --max-size N   largest request or reply in bytes (default 1048576)
      --allow-shared accept a server FIFO writable by group or others (a server
                     shared by several users: npipe serve --allow-shared); on
                     Windows, a server another user shared
  -h, --help         show this help

${NATS_FLAGS_HELP}

Exit codes: 0 reply printed, 1 the server answered with an error (printed as
"ERR_NPIPE_REMOTE: <message>", or "ERR_NPIPE_REMOTE: <the handler's code>:
<message>" when the handler gave a code of its own; control characters escaped),
a request or reply over a size limit (ERR_NPIPE_FRAME_TOO_LARGE), or another
failure, 2 usage, 3 timeout or no server (ERR_NPIPE_SERVER_GONE).`,
  options: {
    timeout: { type: 'string', short: 't' },
    wait: { type: 'boolean' },
    'max-size': { type: 'string' },
    'allow-shared': { type: 'boolean' },
    ...natsFlags,
  },
  async run(values, positionals, io) {
    if (positionals.length < 1 || positionals.length > 2) {
      throw new UsageError('npipe request takes an address (FIFO path, pipe name or nats:// URL) and one message (see npipe request --help)');
    }
    await checkAddress(positionals[0]!, values); // --allow-shared with a nats:// URL: refused, not ignored
    const timeout = durationOption(values.timeout, 'timeout');
    const maxMessageSize = intOption(values['max-size'], 'max-size', { min: 1 });
    const nats = natsOptionsFrom(values);
    let payload: Buffer;
    if (positionals.length === 2) payload = Buffer.from(positionals[1]!, 'utf8');
    else {
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      payload = Buffer.concat(chunks);
    }
    // Waiting for the server, at connect (--wait) or for its answer: said after a second on a terminal.
    const hinted = waitingHint(
      io,
      `npipe request: waiting for the server on ${positionals[0]!} to answer (is npipe serve ${positionals[0]!} running?); Ctrl-C to stop`,
    );
    let client: Awaited<ReturnType<typeof connect<Buffer, Buffer>>>;
    try {
      client = await connect<Buffer, Buffer>(positionals[0]!, {
        codec: 'bytes',
        waitForServer: values.wait === true,
        // --wait: --timeout bounds the wait for a server as well as the request.
        ...(timeout === undefined ? {} : { timeout }),
        signal: io.stop,
        ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
        ...(values['allow-shared'] === true ? { allowShared: true } : {}),
        ...(nats === undefined ? {} : { nats }),
      });
    } catch (err) {
      hinted();
      throw err;
    }
    try {
      const reply = await client.request(payload, { signal: io.stop, ...(timeout === undefined ? {} : { timeout }) });
      io.stdout.write(reply.length > 0 && reply[reply.length - 1] === 0x0a ? reply : Buffer.concat([reply, Buffer.from('\n')]));
      return EXIT.ok;
    } catch (err) {
      if (err instanceof RemoteError) {
        // The server's words: escaped, and its code said once (issue 15 #13, #20).
        const own = err.remoteCode === 'ERR_NPIPE_REMOTE' ? '' : `${escapeForLog(err.remoteCode)}: `;
        io.stderr.write(`npipe request: ERR_NPIPE_REMOTE: ${own}${escapeForLog(err.message)}\n`);
        return EXIT.failure;
      }
      throw err;
    } finally {
      hinted();
      await client.close();
    }
  },
};
