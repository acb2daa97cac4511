/**
 * Whether an address is a NATS URL: its form only, for the transport registry.
 * Apart from url.ts (the parsing, which hashes subjects into stream names with
 * node:crypto) so that a process using only FIFOs loads neither (issue 18 #6).
 */
export function isNatsUrl(address: string): boolean {
  return /^nats:\/\//i.test(address);
}
