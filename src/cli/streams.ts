import { EXIT, UsageError, checkAddress, type Command } from './args.js';
import { NATS_FLAGS_HELP, natsFlags, natsOptionsFrom } from './nats-options.js';

/** The server given apart (--server, NATS_URL) when no address is: a nats:// address naming no host. */
const SERVER_FROM_OPTIONS = 'nats:///';

export const streamsCommand: Command = {
  name: 'streams',
  help: `Usage: npipe streams [nats://host:port] [options]

Lists the JetStream streams npipe made on a NATS server (send and listen with
--jetstream make one per subject: NPIPE_<subject>_<hash>, or the URL's
?stream=): name, subjects, messages, bytes and consumers. They stay on the
server, with their messages, until removed. With no address, the server is
--server or NATS_URL.

Options:
      --all          list every stream, not only npipe's
      --json         one JSON object per stream and line: name, subjects,
                     messages, bytes, consumers, npipe (made by npipe)
      --remove NAME  delete stream NAME, its messages and consumers with it
                     (repeat for several); a stream npipe did not make (no
                     NPIPE_ name or npipe description) is refused, exit 2
      --force        with --remove: delete it even if npipe did not make it
  -h, --help         show this help

${NATS_FLAGS_HELP}

The same with the nats CLI: nats stream ls, nats stream info NAME, nats
stream rm NAME.

Exit codes: 0 done, 1 failure (a stream that is not there: ERR_NPIPE_NOT_FOUND;
refused by the server: ERR_NPIPE_AUTH), 2 usage, 3 NATS server not reachable.

Examples:
  npipe streams nats://127.0.0.1:4222
  NATS_URL=10.0.0.5 npipe streams --json
  npipe streams -s 127.0.0.1 --remove NPIPE_jobs_5d9a17cb70b9733aadc073a4`,
  options: {
    all: { type: 'boolean' },
    json: { type: 'boolean' },
    remove: { type: 'string', multiple: true },
    force: { type: 'boolean' },
    ...natsFlags,
  },
  async run(values, positionals, io) {
    if (positionals.length > 1) throw new UsageError('npipe streams takes at most one address, nats://host:port (see npipe streams --help)');
    const address = positionals[0] ?? SERVER_FROM_OPTIONS;
    const driver = await checkAddress(address, values);
    const admin = driver.capabilities.streams;
    if (!admin) throw new UsageError(`npipe streams lists the streams of a NATS server (nats://host:port); ${address} is ${driver.noun}`);
    const nats = natsOptionsFrom(values);
    const options = nats === undefined ? {} : { nats };
    const remove = (values.remove as unknown as string[] | undefined) ?? [];
    if (values.force === true && remove.length === 0) throw new UsageError('--force goes with --remove NAME');
    if (remove.length > 0) {
      if (values.all === true || values.json === true) throw new UsageError('--remove does not list: it takes no --all or --json');
      for (const name of remove) {
        await admin.remove(address, name, { ...options, force: values.force === true });
        io.stdout.write(`removed ${name}\n`);
      }
      return EXIT.ok;
    }
    const streams = (await admin.list(address, options)).filter((s) => values.all === true || s.npipe);
    if (values.json === true) {
      for (const s of streams) io.stdout.write(`${JSON.stringify(s)}\n`);
      return EXIT.ok;
    }
    const rows = [['NAME', 'SUBJECTS', 'MESSAGES', 'BYTES', 'CONSUMERS', ...(values.all === true ? ['NPIPE'] : [])]];
    for (const s of streams) {
      rows.push([s.name, s.subjects.join(','), String(s.messages), String(s.bytes), String(s.consumers), ...(values.all === true ? [s.npipe ? 'yes' : 'no'] : [])]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) io.stdout.write(`${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`);
    return EXIT.ok;
  },
};

