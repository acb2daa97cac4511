/**
 * Text a peer controls (a reply address, a remote error message), made safe for a
 * log line (issue 15 #13: an address holding "\n" and ANSI escapes forged lines).
 * Control characters (C0, DEL, C1), line and paragraph separators and the bidi
 * controls become \xNN or \u{NNNN}; a backslash is doubled so that an escape in the
 * output always means the server escaped something. Everything else is kept.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

export function escapeForLog(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === '\\') return '\\\\';
    const n = c.codePointAt(0)!;
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}
