/**
 * ListObjectsV2: every key under a prefix, page by page, following
 * `NextContinuationToken` until `IsTruncated` is false. Each page is a
 * signed GET (unsigned when anonymous), like every other request.
 */
import { XMLParser } from 'fast-xml-parser';
import type { Dispatcher } from 'undici';
import { request } from '../http/undici.js';

import { DEFAULT_MAX_RETRY_AFTER_MS, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import { BlockfetchError } from '../errors.js';
import { networkError } from '../http/failures.js';
import { DEFAULT_USER_AGENT } from '../http/version.js';
import { wholeNumber } from '../validate.js';
import type { S3Config } from './config.js';
import { readS3ErrorBody, s3StatusError } from './s3-errors.js';
import { S3Signer } from './signer.js';
import { bucketUrl, s3UrlOf } from './url.js';

/** One object a listing found. */
export interface S3ListedObject {
  /** The full key. */
  readonly key: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Its ETag, as listed (quoted). */
  readonly etag: string | undefined;
  /** Its last modification, as listed (ISO 8601). */
  readonly lastModified: string | undefined;
}

/** Options of {@link listS3Objects}. */
export interface ListS3ObjectsOptions {
  /** Keys asked for per page (`max-keys`; S3 answers at most 1000). @default 1000 */
  readonly pageSize?: number;
  /** The undici dispatcher to send through; the caller keeps it. */
  readonly dispatcher: Dispatcher;
  /** Stops the listing. */
  readonly signal?: AbortSignal;
  /** Time to wait for a page's headers and between its bytes, in ms. @default DEFAULT_TIMEOUT_MS (30000) */
  readonly timeoutMs?: number;
}

/**
 * The defaults of {@link ListS3ObjectsOptions}.
 *
 * @example
 * ```ts
 * await listS3Objects(config, 'b', 'p/', { dispatcher, pageSize: defaultListS3ObjectsOptions.pageSize });
 * ```
 */
export const defaultListS3ObjectsOptions = Object.freeze({
  pageSize: 1000,
  timeoutMs: DEFAULT_TIMEOUT_MS,
});

/** Keys never have their text turned into numbers (`<Key>007</Key>` is the key "007"). */
const parser = new XMLParser({ parseTagValue: false, processEntities: true, isArray: (name) => name === 'Contents' });

interface ListPage {
  readonly ListBucketResult?: {
    readonly Contents?: readonly { readonly Key?: unknown; readonly Size?: unknown; readonly ETag?: unknown; readonly LastModified?: unknown }[];
    readonly IsTruncated?: unknown;
    readonly NextContinuationToken?: unknown;
  };
}

/**
 * Lists every object whose key starts with `prefix` in `bucket`, in key
 * order, across as many ListObjectsV2 pages as it takes.
 *
 * @example
 * ```ts
 * for (const object of await listS3Objects(config, 'my-bucket', 'models/', { dispatcher })) console.log(object.key, object.size);
 * ```
 */
export async function listS3Objects(config: S3Config, bucket: string, prefix: string, options: ListS3ObjectsOptions): Promise<S3ListedObject[]> {
  const pageSize = wholeNumber('listS3Objects', 'pageSize', options.pageSize ?? defaultListS3ObjectsOptions.pageSize, { min: 1 });
  const timeoutMs = wholeNumber('listS3Objects', 'timeoutMs', options.timeoutMs ?? defaultListS3ObjectsOptions.timeoutMs, { min: 1 });
  const signer = config.credentials === undefined ? undefined : new S3Signer(config.credentials, config.region);
  const name = s3UrlOf(bucket, prefix);
  const found: S3ListedObject[] = [];
  let token: string | undefined;
  // Bounded: a server that answered "truncated" with the same token forever would otherwise never end.
  for (let page = 0; ; page++) {
    const url = bucketUrl(config.endpoint, bucket);
    url.searchParams.set('list-type', '2');
    url.searchParams.set('prefix', prefix);
    url.searchParams.set('max-keys', String(pageSize));
    if (token !== undefined) url.searchParams.set('continuation-token', token);
    const headers = { 'user-agent': DEFAULT_USER_AGENT };
    const sent = signer === undefined ? headers : await signer.sign({ method: 'GET', url, headers });
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        method: 'GET',
        headers: sent,
        dispatcher: options.dispatcher,
        signal: options.signal ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      throw networkError(err, name, options.signal);
    }
    if (response.statusCode !== 200) {
      const body = await readS3ErrorBody(response);
      throw s3StatusError(response.statusCode, response.headers, name, body, DEFAULT_MAX_RETRY_AFTER_MS);
    }
    let text: string;
    try {
      text = await response.body.text();
    } catch (err) {
      throw networkError(err, name, options.signal);
    }
    const result = (parser.parse(text) as ListPage).ListBucketResult;
    if (result === undefined) throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${name}: the listing is not a ListBucketResult`);
    for (const entry of result.Contents ?? []) {
      const key = typeof entry.Key === 'string' ? entry.Key : undefined;
      const size = typeof entry.Size === 'string' && /^\d+$/.test(entry.Size) ? Number(entry.Size) : undefined;
      if (key === undefined || size === undefined || !Number.isSafeInteger(size)) {
        throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${name}: the listing has an entry without a key or a size`);
      }
      found.push({
        key,
        size,
        etag: typeof entry.ETag === 'string' ? entry.ETag : undefined,
        lastModified: typeof entry.LastModified === 'string' ? entry.LastModified : undefined,
      });
    }
    const truncated = result.IsTruncated === 'true';
    const next = typeof result.NextContinuationToken === 'string' ? result.NextContinuationToken : undefined;
    if (!truncated) return found;
    if (next === undefined || next === token || page > 1_000_000) {
      throw new BlockfetchError('BLOCKFETCH_BAD_RESPONSE', `${name}: the listing says it is truncated but gives no new continuation token`);
    }
    token = next;
  }
}
