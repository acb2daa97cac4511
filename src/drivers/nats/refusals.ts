/**
 * Why a NATS server would not have us, from nats.js's connect error: failures
 * that no retry can mend, told apart from a server that is not there. A refusal
 * is ERR_NPIPE_AUTH (credentials refused, a certificate not trusted) or
 * ERR_NPIPE_INVALID_ARG (our own TLS settings unusable); connectNats throws it at
 * once, also while waiting for the server (waitForServer, --wait), which would
 * otherwise retry a wrong password for ever.
 */
import { AuthorizationError, TimeoutError as NatsTimeoutError, UserAuthenticationExpiredError, type ConnectionOptions } from '@nats-io/transport-node';
import { AuthError, InvalidArgumentError, type NpipeError } from '../../errors.js';
import { peekInfo } from './peek-info.js';
import type { NatsAddress } from './url.js';

/** Node's codes for a server certificate that does not verify (tls.connect). */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  return code;
}

function credentialsGiven(login: ConnectionOptions): string {
  if (login.token !== undefined) return 'a token';
  if (login.user !== undefined) return `user ${JSON.stringify(login.user)} and a password`;
  if (login.authenticator !== undefined) return 'an NKey or credentials file';
  return 'no credentials';
}

/**
 * The refusal behind `err`, or undefined when it may be the server's absence (retry).
 * `login`: the options we connected with (what was given, for the message).
 */
export async function refusal(err: unknown, address: NatsAddress, login: ConnectionOptions): Promise<NpipeError | undefined> {
  const at = `the NATS server at ${address.server}`;
  const detail = (err as Error)?.message ?? String(err);
  if (err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError || /authorization violation/i.test(detail)) {
    return new AuthError(
      `${at} refused to let npipe in (${detail}) with ${credentialsGiven(login)}; check the credentials it expects: ` +
        'nats.token, nats.user and nats.pass, nats.nkeyFile or nats.credsFile',
      { cause: err },
    );
  }
  const code = codeOf(err);
  if (code !== undefined && UNTRUSTED.has(code)) {
    return new AuthError(`${at} presented a TLS certificate npipe does not trust (${code}: ${detail}); give the CA that signed it: nats.tls.caFile`, { cause: err });
  }
  if (code?.startsWith('ERR_OSSL_') || /^ERR_SSL_/.test(code ?? '')) {
    return new InvalidArgumentError(`the TLS settings for ${at} are not usable (${code}: ${detail}); check nats.tls.certFile, nats.tls.keyFile and nats.tls.caFile`, { cause: err });
  }
  if (/tls.*(is not available|does not support)|does not support 'tls'/i.test(detail)) {
    return new InvalidArgumentError(`${at} does not offer TLS, and TLS was asked for; connect without nats.tls, or turn TLS on in the server`, { cause: err });
  }
  if (err instanceof NatsTimeoutError && login.tls) {
    // A TLS 1.3 server that rejects the client's certificate (or its absence) closes the
    // connection after a handshake the client thought complete; nats.js only times out.
    const info = await peekInfo(address.server.split(',')[0]!);
    if (info?.tls_verify) {
      const has = login.tls.cert !== undefined || login.tls.certFile !== undefined;
      return new AuthError(
        `${at} requires a TLS client certificate it trusts (tls verify), and ` +
          (has ? 'did not accept the one given; give one signed by a CA the server trusts' : 'none was given; give one') +
          ': nats.tls.certFile and nats.tls.keyFile',
        { cause: err },
      );
    }
  }
  return undefined;
}
