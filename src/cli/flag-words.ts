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
];

/** `message` with the library's option names put as the CLI's flags. */
export function inFlags(message: string): string {
  return WORDS.reduce((text, [pattern, flag]) => text.replace(pattern, flag), message);
}
