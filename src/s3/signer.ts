/**
 * SigV4 signing of one S3 request, by the AWS SDK's own signer
 * (`@smithy/signature-v4`) with Node's SHA-256 (`@smithy/core/serde`'s
 * `Hash`, over node:crypto). Nothing here computes a MAC or a hash itself.
 *
 * Every request is signed afresh (the signature covers `x-amz-date`, and S3
 * refuses one more than 15 minutes old), and every header sent is signed:
 * `Range`, `If-Match` and `x-amz-checksum-mode` are part of what S3 checks,
 * so a proxy cannot change the range or drop the pin without the signature
 * failing. The payload hash is that of the empty body (GET and HEAD).
 */
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';

import type { S3Credentials } from './config.js';

/** What to sign: the method, the full URL, and the headers to send (lower-case names). */
export interface UnsignedRequest {
  readonly method: 'GET' | 'HEAD';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Signs S3 requests for one set of credentials and one region.
 *
 * @example
 * ```ts
 * const signer = new S3Signer({ accessKeyId, secretAccessKey }, 'eu-west-1');
 * const headers = await signer.sign({ method: 'GET', url, headers: { range: 'bytes=0-99' } });
 * // headers.authorization: 'AWS4-HMAC-SHA256 Credential=…, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=…'
 * ```
 */
export class S3Signer {
  readonly #signer: SignatureV4;

  constructor(credentials: S3Credentials, region: string) {
    this.#signer = new SignatureV4({
      service: 's3',
      region,
      credentials: {
        accessKeyId: credentials.accessKeyId,
        secretAccessKey: credentials.secretAccessKey,
        ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken }),
      },
      sha256: Hash.bind(null, 'sha256'),
      // S3 signs the path as sent: its keys are encoded once, not twice as other services' paths are.
      uriEscapePath: false,
    });
  }

  /**
   * The headers to send for `request`: its own, plus `authorization`,
   * `x-amz-date`, `x-amz-content-sha256` and (temporary credentials)
   * `x-amz-security-token`. `host` is signed but left out of the result:
   * the HTTP client sends the URL's host itself, the same value.
   */
  async sign(request: UnsignedRequest, signingDate: Date = new Date()): Promise<Record<string, string>> {
    const { url } = request;
    const query: Record<string, string> = {};
    for (const [name, value] of url.searchParams) query[name] = value;
    const signed = await this.#signer.sign(
      {
        method: request.method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port === '' ? {} : { port: Number(url.port) }),
        path: url.pathname,
        query,
        headers: { ...request.headers, host: url.host },
      },
      { signingDate },
    );
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(signed.headers)) {
      if (name.toLowerCase() !== 'host') headers[name.toLowerCase()] = value;
    }
    return headers;
  }
}
