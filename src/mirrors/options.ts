/**
 * The options of {@link MirrorReader} and {@link readerForUrls}: one object,
 * each field with its default, one exported defaults object, and the check
 * that names a bad value.
 */
import type { ExpectedDigest, RemoteIdentity } from '../cache/types.js';
import type { BlockfetchError } from '../errors.js';
import { InvalidArgumentError } from '../errors.js';
import type { HttpReaderOptions } from '../http/options.js';
import { describeValue, wholeNumber } from '../validate.js';

/** What a {@link MirrorReader} tells about its mirrors while it works. */
export type MirrorEvent =
  /**
   * A mirror is out for the rest of the run. `reason`: it failed the first
   * look (`look-failed`), serves no byte ranges while others do
   * (`no-ranges`), answered that its file changed (`changed`), refused for
   * good mid-run (`refused`), could not be reached when the download
   * confirmed each mirror's revision at the end, with a digest known
   * (`unreachable`), or nothing proves it serves the same bytes as
   * the first mirror (`unproven`: no digest known and no strong ETag shared,
   * see docs/design.md).
   */
  | {
      readonly type: 'mirror-dropped';
      readonly mirror: string;
      readonly reason: 'look-failed' | 'no-ranges' | 'changed' | 'refused' | 'unproven' | 'unreachable';
      readonly message: string;
      readonly error?: BlockfetchError;
    }
  /** A mirror failed retryably and is not chosen for `delayMs` while another one can serve. */
  | { readonly type: 'mirror-cooldown'; readonly mirror: string; readonly delayMs: number; readonly error: BlockfetchError };

/** How a {@link MirrorReader} reads one file from several URLs. Only `urls` is required. */
export interface MirrorReaderOptions {
  /**
   * The URLs of one file, the first one first: it names the download in
   * messages and serves block 0. At least one; duplicates are an error.
   */
  readonly urls: readonly (string | URL)[];
  /**
   * The HTTP options every mirror's {@link HttpReader} is made with (headers,
   * timeouts, block size, dispatcher, …). One dispatcher is shared by all
   * mirrors: the reader makes one (and closes it) when none is given.
   * @default {}
   */
  readonly http?: Omit<HttpReaderOptions, 'url' | 'expected'>;
  /**
   * The whole-file digest the caller expects. A digest is what makes it safe
   * to take bytes from mirrors with different ETags (the end-of-run check
   * catches a mirror that served other bytes), and a mirror advertising
   * another digest of the same algorithm is refused before any download.
   * @default undefined
   */
  readonly expectedDigest?: ExpectedDigest;
  /**
   * The identity a partial download recorded (its index's `remote`), when
   * resuming. Its digests count as known (so mirrors with different ETags
   * may be mixed again without the digest given anew); a mirror whose own
   * validator differs from the recorded one is dropped (`changed`) when a
   * digest is known; and when only one mirror may be used, a recorded one
   * is preferred, so the bytes on disk and the new ones come from one place.
   * @default undefined
   */
  readonly expected?: RemoteIdentity;
  /**
   * More whole-file digests the caller expects, of other algorithms (a
   * checksum list's sha512 beside a given sha256, say): each counts as a
   * known digest exactly as `expectedDigest` does, and a mirror advertising
   * another digest of one of their algorithms is refused the same way.
   * @default undefined
   */
  readonly expectedDigests?: readonly ExpectedDigest[];
  /** The cooldown after a mirror's first retryable failure, in ms; doubled for each failure in a row. @default 2000 */
  readonly cooldownMs?: number;
  /** The longest cooldown, in ms. @default 30000 */
  readonly maxCooldownMs?: number;
  /** Receives {@link MirrorEvent}s; a listener that throws is ignored. @default undefined */
  readonly onEvent?: (event: MirrorEvent) => void;
}

/**
 * The defaults of {@link MirrorReaderOptions}.
 *
 * @example
 * ```ts
 * new MirrorReader({ urls, cooldownMs: defaultMirrorReaderOptions.cooldownMs * 5 });
 * ```
 */
export const defaultMirrorReaderOptions = Object.freeze({
  cooldownMs: 2_000,
  maxCooldownMs: 30_000,
});

/** {@link MirrorReaderOptions} checked, defaults filled in. */
export interface ResolvedMirrorReaderOptions {
  readonly urls: readonly (string | URL)[];
  readonly http: Omit<HttpReaderOptions, 'url' | 'expected'>;
  readonly expectedDigest: ExpectedDigest | undefined;
  readonly expected: RemoteIdentity | undefined;
  /** `expectedDigest` and `expectedDigests` together, `expectedDigest` first. */
  readonly expectedDigests: readonly ExpectedDigest[];
  readonly cooldownMs: number;
  readonly maxCooldownMs: number;
  readonly onEvent: ((event: MirrorEvent) => void) | undefined;
}

const OWNER = 'MirrorReader';

/**
 * Fills in defaults and checks every option, naming a bad one.
 *
 * @example
 * ```ts
 * resolveMirrorReaderOptions({ urls: [a, b] }).cooldownMs // 2000
 * resolveMirrorReaderOptions({ urls: [a, a] })            // throws: urls lists one URL twice
 * ```
 */
export function resolveMirrorReaderOptions(options: MirrorReaderOptions): ResolvedMirrorReaderOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`MirrorReader options must be an object with urls, got ${describeValue(options)}`);
  }
  const urls = options.urls;
  if (!Array.isArray(urls) || urls.length === 0) {
    throw new InvalidArgumentError(`MirrorReader option urls must be a non-empty array of URLs, got ${describeValue(urls)}`);
  }
  const seen = new Set<string>();
  for (const url of urls as unknown[]) {
    if (typeof url !== 'string' && !(url instanceof URL)) {
      throw new InvalidArgumentError(`MirrorReader option urls must hold strings or URLs, got ${describeValue(url)}`);
    }
    const key = String(url);
    if (seen.has(key)) {
      // The URL is not shown: it may carry credentials.
      throw new InvalidArgumentError('MirrorReader option urls lists one URL twice', { hint: 'give each mirror once' });
    }
    seen.add(key);
  }
  if (options.expectedDigests !== undefined && !Array.isArray(options.expectedDigests)) {
    throw new InvalidArgumentError(`MirrorReader option expectedDigests must be an array of digests, got ${describeValue(options.expectedDigests)}`);
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new InvalidArgumentError(`MirrorReader option onEvent must be a function, got ${describeValue(options.onEvent)}`);
  }
  const d = defaultMirrorReaderOptions;
  return {
    urls,
    http: options.http ?? {},
    expectedDigest: options.expectedDigest,
    expected: options.expected,
    expectedDigests: [...(options.expectedDigest === undefined ? [] : [options.expectedDigest]), ...(options.expectedDigests ?? [])],
    cooldownMs: wholeNumber(OWNER, 'cooldownMs', options.cooldownMs ?? d.cooldownMs, { min: 0 }),
    maxCooldownMs: wholeNumber(OWNER, 'maxCooldownMs', options.maxCooldownMs ?? d.maxCooldownMs, { min: 0 }),
    onEvent: options.onEvent,
  };
}
