/**
 * The library's errors name its options (`timeout`, `waitForServer`); said by the
 * CLI they name its flags instead (issue 19 #5), so that the advice in a message
 * is something the user can type. Applied to the message of every error the CLI
 * prints.
 */
const WORDS: Array<[RegExp, string]> = [
  [/wait longer \((?:--)?timeout\) \(timeout (\d+) ms\)/g, 'wait longer than --timeout $1ms'],
  [/\bpass (allowShared|waitForReader) \((--[a-z-]+)\)/g, 'pass $2'],
  [/\b(raise|set) maxMessageSize \((--max-size)\)/g, '$1 $2'],
  [/\(timeout (\d+) ms\)/g, '(--timeout $1ms)'],
  [/\(timeout\)/g, '(--timeout)'],
  [/\(waitForServer\)/g, '(--wait)'],
  [/\(maxMessageSize\)/g, '(--max-size)'],
  [/\bwaitForServer\b/g, '--wait'],
  // The NATS connection options (drivers/nats/options.ts) as cli/nats-options.ts's flags.
  [/pass nats: \{ servers \} \(--server or NATS_URL\)/g, 'pass --server URL or set NATS_URL'],
  [/nats\.token, nats\.user and nats\.pass, nats\.nkeyFile or nats\.credsFile/g, '--token, --user and --password, --nkey or --creds (or NATS_USER, NATS_PASSWORD, NATS_NKEY, NATS_CREDS)'],
  [/\bnats\.tls\.caFile\b/g, '--tlsca (or NATS_CA)'],
  [/\bnats\.tls\.certFile\b/g, '--tlscert (or NATS_CERT)'],
  [/\bnats\.tls\.keyFile\b/g, '--tlskey (or NATS_KEY)'],
  [/\bnats\.tls\b/g, '--tlsca and --tlscert'],
  [/\bnats\.nkeyFile\b/g, '--nkey (or NATS_NKEY)'],
  [/\bnats\.credsFile\b/g, '--creds (or NATS_CREDS)'],
  [/\bnats\.token\b/g, '--token'],
  [/\bnats\.user\b/g, '--user'],
  [/\bnats\.pass\b/g, '--password'],
];

/** `message` with the library's option names put as the CLI's flags. */
export function inFlags(message: string): string {
  return WORDS.reduce((text, [pattern, flag]) => text.replace(pattern, flag), message);
}
