/**
 * `readerForUrls`: the one place that turns the URLs given for one file into
 * a Reader: an {@link HttpReader} for one URL, a {@link MirrorReader} for
 * several. The CLI's `--mirror` and the input file's tab-separated URLs
 * both come through here.
 */
import type { Reader } from '../download/reader.js';
import { InvalidArgumentError } from '../errors.js';
import { HttpReader } from '../http/http-reader.js';
import { MirrorReader } from './mirror-reader.js';
import type { MirrorReaderOptions } from './options.js';

/** The options of {@link readerForUrls}: those of {@link MirrorReader} without the URLs. */
export type ReaderForUrlsOptions = Omit<MirrorReaderOptions, 'urls'>;

/**
 * A Reader for one file served at `urls` (the first one first): one URL
 * gives a plain {@link HttpReader} (exactly what a download without mirrors
 * uses, so its index is unchanged), several a {@link MirrorReader}. Close
 * it (`close()`) when done.
 *
 * @example
 * ```ts
 * const reader = readerForUrls(['https://a.example/f.iso', 'https://b.example/f.iso'], {
 *   http: { headers: { 'user-agent': 'me' } },
 *   expectedDigest: { algorithm: 'sha256', hex: '…' },
 * });
 * try {
 *   await downloadFile(reader, 'f.iso');
 * } finally {
 *   await reader.close();
 * }
 * ```
 */
export function readerForUrls(urls: readonly (string | URL)[], options: ReaderForUrlsOptions = {}): Reader & { close(): Promise<void> } {
  if (!Array.isArray(urls) || urls.length === 0) {
    throw new InvalidArgumentError('readerForUrls needs at least one URL');
  }
  if (urls.length === 1) return new HttpReader({ ...(options.http ?? {}), url: urls[0] as string | URL });
  return new MirrorReader({ ...options, urls });
}
