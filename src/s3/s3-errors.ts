/**
 * S3's error responses (`<Error><Code>NoSuchKey</Code>…</Error>`) turned
 * into blockfetch errors that say what went wrong and what to check. A
 * wrong secret or an unknown key id is an `HttpStatusError` with a 403
 * (`BLOCKFETCH_HTTP_STATUS`, not retryable): asking again with the same
 * secret cannot succeed, so it ends the run at once instead of looping.
 * Transient statuses (500, 503 SlowDown) keep their retryable code.
 */
import type { IncomingHttpHeaders } from 'node:http';

import { XMLParser } from 'fast-xml-parser';
import type { Dispatcher } from 'undici';

import { HttpStatusError } from '../errors.js';
import { statusError } from '../http/failures.js';
import { headerValue } from '../http/headers.js';

/** The most of an error body that is read: S3's are a few hundred bytes. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** What S3 said in an error body (or a HEAD's `x-amz-error-code` header). */
export interface S3ErrorBody {
  readonly code: string | undefined;
  readonly message: string | undefined;
}

const parser = new XMLParser({ parseTagValue: false, processEntities: true });

/** Parses `<Error><Code>…</Code><Message>…</Message></Error>`; anything else gives undefined fields. */
export function parseS3ErrorXml(xml: string): S3ErrorBody {
  try {
    const doc = parser.parse(xml) as { Error?: { Code?: unknown; Message?: unknown } };
    const code = doc.Error?.Code;
    const message = doc.Error?.Message;
    return { code: typeof code === 'string' ? code : undefined, message: typeof message === 'string' ? message : undefined };
  } catch {
    return { code: undefined, message: undefined };
  }
}

/** Reads an error response's body (at most {@link MAX_ERROR_BODY_BYTES}) and parses it; never throws. */
export async function readS3ErrorBody(response: Dispatcher.ResponseData): Promise<S3ErrorBody> {
  const headerCode = headerValue(response.headers, 'x-amz-error-code');
  const parts: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      parts.push(chunk);
      length += chunk.length;
      if (length >= MAX_ERROR_BODY_BYTES) break;
    }
  } catch {
    // A broken error body: the status still says enough.
  } finally {
    if (!response.body.destroyed) {
      response.body.on('error', () => undefined);
      response.body.destroy();
    }
  }
  const parsed = parseS3ErrorXml(Buffer.concat(parts).toString('utf8'));
  return { code: parsed.code ?? headerCode, message: parsed.message ?? headerValue(response.headers, 'x-amz-error-message') };
}

/** What each S3 error code means to a person, and what to check. */
const EXPLAINED: Readonly<Record<string, { readonly what: string; readonly hint: string }>> = Object.freeze({
  SignatureDoesNotMatch: {
    what: 'the secret access key does not match the access key id (SignatureDoesNotMatch)',
    hint: 'check AWS_SECRET_ACCESS_KEY (or aws_secret_access_key in the profile), and that AWS_REGION is the bucket\'s region',
  },
  InvalidAccessKeyId: {
    what: 'the access key id is not known to this endpoint (InvalidAccessKeyId)',
    hint: 'check AWS_ACCESS_KEY_ID (or aws_access_key_id in the profile) and the endpoint (AWS_ENDPOINT_URL_S3)',
  },
  ExpiredToken: {
    what: 'the session token has expired (ExpiredToken)',
    hint: 'get fresh temporary credentials and set AWS_SESSION_TOKEN again',
  },
  InvalidToken: {
    what: 'the session token is not valid (InvalidToken)',
    hint: 'check AWS_SESSION_TOKEN (or unset it when the key is not temporary)',
  },
  RequestTimeTooSkewed: {
    what: "this machine's clock is too far from the server's to sign requests (RequestTimeTooSkewed)",
    hint: 'set the clock right (e.g. enable NTP)',
  },
  AccessDenied: {
    what: 'access denied (AccessDenied)',
    hint: 'check that the credentials may read this bucket and key (a public bucket also answers unsigned requests: option `noSignRequest`)',
  },
  AuthorizationHeaderMalformed: {
    what: 'the request was signed for the wrong region (AuthorizationHeaderMalformed)',
    hint: "set AWS_REGION to the bucket's region",
  },
  PermanentRedirect: {
    what: 'the bucket is in another region (PermanentRedirect)',
    hint: "set AWS_REGION to the bucket's region",
  },
  NoSuchKey: { what: 'no object has this key (NoSuchKey)', hint: 'check the key: `aws s3 ls s3://BUCKET/PREFIX` lists what there is' },
  NoSuchBucket: { what: 'the bucket does not exist (NoSuchBucket)', hint: 'check the bucket name, and the endpoint (AWS_ENDPOINT_URL_S3) for an S3-compatible server' },
  NoSuchVersion: { what: 'that version of the object no longer exists (NoSuchVersion)', hint: 'start over (option `restart`) to download the current version' },
});

/**
 * The error for an S3 error response: transient statuses (429, 5xx) keep
 * their retryable code and Retry-After; the rest are not retryable, and
 * carry the S3 code, what it means and what to check (never a secret).
 *
 * @example
 * ```ts
 * s3StatusError(403, headers, 's3://b/k', { code: 'SignatureDoesNotMatch', message: '…' }, 120_000).message
 * // 's3://b/k: HTTP 403: the secret access key does not match the access key id (SignatureDoesNotMatch)'
 * ```
 */
export function s3StatusError(status: number, headers: IncomingHttpHeaders, name: string, body: S3ErrorBody, maxRetryAfterMs: number): HttpStatusError {
  const generic = statusError(status, headers, name, maxRetryAfterMs);
  if (generic.retryable) return generic;
  // AWS names the bucket's region on a request signed for another one (301 PermanentRedirect, 400 AuthorizationHeaderMalformed).
  const bucketRegion = headerValue(headers, 'x-amz-bucket-region');
  if (bucketRegion !== undefined && /^[a-z0-9-]+$/.test(bucketRegion) && (status === 301 || body.code === 'PermanentRedirect' || body.code === 'AuthorizationHeaderMalformed')) {
    return new HttpStatusError(status, name, `the bucket is in the region ${bucketRegion}, not the one the requests were signed for (${body.code ?? 'PermanentRedirect'})`, {
      hint: `set AWS_REGION=${bucketRegion}`,
    });
  }
  const explained = body.code === undefined ? undefined : EXPLAINED[body.code];
  if (explained !== undefined) return new HttpStatusError(status, name, explained.what, { hint: explained.hint });
  if (body.code !== undefined) return new HttpStatusError(status, name, body.code, { hint: 'see the S3 error code in the AWS documentation' });
  // A HEAD's error has no body: 404 and 403 are the two that matter.
  if (status === 404) return new HttpStatusError(status, name, 'no such key or bucket', { hint: 'check the bucket and key names' });
  if (status === 403) {
    return new HttpStatusError(status, name, 'access denied: wrong credentials, or no permission to read this object', {
      hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the region',
    });
  }
  return generic;
}
