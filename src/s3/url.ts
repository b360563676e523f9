/**
 * `s3://BUCKET/KEY` and `s3://BUCKET/PREFIX/`: what the user wrote, and the
 * HTTP URL of an object or of a bucket listing on a given endpoint.
 *
 * Addressing: AWS's own endpoint is addressed virtual-hosted style
 * (`https://BUCKET.s3.REGION.amazonaws.com/KEY`), which AWS prefers, except
 * for a bucket name with dots (its host would not match the wildcard TLS
 * certificate); a custom endpoint (`AWS_ENDPOINT_URL_S3`: MinIO, s3rver,
 * Ceph, R2...) is addressed path style (`ENDPOINT/BUCKET/KEY`), which is
 * what S3-compatible servers expect.
 */
import { InvalidArgumentError } from '../errors.js';
import { percentEncode } from '../percent-encode.js';

/** An `s3://` URL taken apart. */
export interface S3Location {
  readonly bucket: string;
  /** The key of one object, or the prefix of several (empty: the whole bucket). */
  readonly key: string;
  /** True when the URL names every key under a prefix (`s3://b/dir/` or `s3://b`). */
  readonly isPrefix: boolean;
}

/**
 * S3's rule for bucket names (3-63 characters of lower-case letters, digits,
 * dots and hyphens), loosened to allow upper case and underscores, which
 * some S3-compatible servers and legacy buckets have. Anything else (a
 * slash, a space, `..`) cannot be a bucket and would change the request path.
 */
const BUCKET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{1,62}$/;

/**
 * Parses `s3://BUCKET/KEY` (one object) or `s3://BUCKET/PREFIX/`,
 * `s3://BUCKET` (every key under the prefix). The key is taken as written,
 * not percent-decoded: S3 keys may contain `%`.
 *
 * @example
 * ```ts
 * parseS3Url('s3://my-bucket/models/llama.gguf') // { bucket: 'my-bucket', key: 'models/llama.gguf', isPrefix: false }
 * parseS3Url('s3://my-bucket/models/')           // { bucket: 'my-bucket', key: 'models/', isPrefix: true }
 * ```
 */
export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/?#]*)(?:\/(.*))?$/is.exec(text);
  if (match === null) {
    throw new InvalidArgumentError(`not an s3:// URL: ${JSON.stringify(text)}`, { hint: 'write s3://BUCKET/KEY, or s3://BUCKET/PREFIX/ for every key under a prefix' });
  }
  const bucket = match[1] ?? '';
  const key = match[2] ?? '';
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..')) {
    throw new InvalidArgumentError(`${JSON.stringify(bucket)} in ${JSON.stringify(text)} is not a bucket name`, {
      hint: 'a bucket name is 3-63 letters, digits, dots and hyphens: s3://BUCKET/KEY',
    });
  }
  return { bucket, key, isPrefix: key === '' || key.endsWith('/') };
}

/** The `s3://bucket/key` form of a location: what messages and the index show. */
export function s3UrlOf(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/** How requests reach a bucket. */
export interface S3Endpoint {
  /** The endpoint's base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:4568`. */
  readonly url: URL;
  /** Address buckets as a path (`ENDPOINT/BUCKET/KEY`) rather than a host name. */
  readonly pathStyle: boolean;
}

/**
 * The URL of `bucket` (and of `key` in it, when given; `key` undefined is
 * the bucket itself, for listing) on `endpoint`.
 *
 * @example
 * ```ts
 * bucketUrl({ url: new URL('http://127.0.0.1:4568'), pathStyle: true }, 'b', 'a b.txt').href
 * // 'http://127.0.0.1:4568/b/a%20b.txt'
 * ```
 */
export function bucketUrl(endpoint: S3Endpoint, bucket: string, key?: string): URL {
  const base = endpoint.url;
  const basePath = base.pathname.replace(/\/+$/, '');
  // SigV4's canonical URI: RFC 3986 unreserved characters stay, everything else is percent-encoded, the slashes kept.
  const keyPath = key === undefined ? '' : percentEncode(key, { keepSlashes: true });
  // A dotted bucket name in a host name would not match *.s3.amazonaws.com's certificate.
  if (endpoint.pathStyle || bucket.includes('.')) {
    // The bucket itself is `/BUCKET`, without a trailing slash (which some servers read as an empty key).
    return new URL(`${base.protocol}//${base.host}${basePath}/${bucket}${key === undefined ? '' : `/${keyPath}`}`);
  }
  return new URL(`${base.protocol}//${bucket}.${base.host}${basePath}/${keyPath}`);
}
