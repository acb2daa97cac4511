/**
 * How to reach and log in to a NATS server, beside the address: the `nats` option
 * of openSender, openReceiver, serve and connect (and of the CLI's flags, which
 * cli/nats-options.ts turns into this). The names follow nats.js's own
 * ConnectionOptions (`servers`, `user`, `pass`, `token`, `tls.caFile`...), with
 * files where nats.js takes authenticators (`nkeyFile`, `credsFile`).
 */
export interface NatsOptions {
  /**
   * The server(s) for an address that names none (`nats:///jobs`): `host:port`,
   * `nats://[user:password@]host:port`, or several, as an array or comma-separated
   * (what the `nats` CLI takes in NATS_URL). An address with a host uses its own
   * host and ignores this. A user and password (or a token, a user alone) in
   * these URLs are used when no other credentials are given.
   */
  servers?: string | readonly string[];
  /** A token (nats-server `authorization { token }`). */
  token?: string;
  /** User and password (`authorization { user, password }`). */
  user?: string;
  pass?: string;
  /** An NKey seed (`SU...`), for a server that lists the user's public key (`nkey: U...`). */
  nkeySeed?: string;
  /** A file holding the NKey seed (what `nats --nkey` takes). */
  nkeyFile?: string;
  /** A credentials file (`.creds`: the user's JWT and NKey seed; operator/JWT mode). */
  credsFile?: string;
  /**
   * TLS. Given (even `{}`), the connection must be TLS; a server that requires TLS
   * gets it anyway, verified against the system's CAs unless `caFile` is given.
   */
  tls?: {
    /** The CA (PEM) that signed the server's certificate. */
    caFile?: string;
    /** A client certificate (PEM) and its key, for a server with `verify: true`. */
    certFile?: string;
    keyFile?: string;
  };
}
