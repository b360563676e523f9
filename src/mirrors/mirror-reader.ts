/**
 * `MirrorReader`: one file read from several URLs (mirrors) at once, as a
 * single {@link Reader}. It composes one {@link HttpReader} per mirror, so
 * each mirror's requests are pinned by that mirror's own validator, and
 * spreads requests over them by {@link MirrorPolicy}. Why mixing mirrors is
 * safe only with proof that they serve the same bytes, and what happens when
 * one changes: docs/design.md, "Mirrors".
 */
import type { Dispatcher } from 'undici';
import type { ExpectedDigest, MirrorIdentity, RemoteIdentity } from '../cache/types.js';
import type { ContentInfo, ReadOptions, Reader } from '../download/reader.js';
import { BlockfetchError, InvalidArgumentError, RemoteChangedError, retryResponseOf } from '../errors.js';
import { mirrorsOf, sameRemoteUrl } from '../download/identity.js';
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { isStrongEtag } from '../http/headers.js';
import { HttpReader } from '../http/http-reader.js';
import { MirrorPolicy, type MirrorState } from './policy.js';
import { resolveMirrorReaderOptions, type MirrorEvent, type MirrorReaderOptions, type ResolvedMirrorReaderOptions } from './options.js';
import { SharedLook } from '../download/reader-parts.js';

/** What one mirror did in this run, for reports and tests. */
export interface MirrorStats {
  /** The mirror's URL, credentials removed. */
  readonly url: string;
  /** Requests for file bytes sent to it (the first look not counted). */
  readonly requests: number;
  /** Body bytes it delivered. */
  readonly bytes: number;
  /** False once it was dropped for the rest of the run. */
  readonly active: boolean;
}

/** One mirror: its reader and its state in the policy. */
interface Mirror {
  readonly reader: HttpReader;
  readonly state: MirrorState;
  info?: ContentInfo;
}

/**
 * A {@link Reader} over several mirrors of one file.
 *
 * - `contentLengthAndBlockSize` looks at every mirror in parallel. A mirror
 *   that fails the look is dropped (a `mirror-dropped` event) unless none is
 *   left, then the first mirror's failure is thrown. Every mirror left must
 *   answer the same size, and no two may advertise different digests of one
 *   algorithm (nor one other than `expectedDigest` or `expectedDigests`): else a
 *   `BLOCKFETCH_MIRRORS_DISAGREE` naming both, before a byte is fetched.
 * - Requests are spread only over mirrors PROVEN to serve the same bytes: a
 *   digest is known (given or advertised; the download checks it at the
 *   end), or every mirror sent the same strong ETag. Without that proof only
 *   the first mirror that answered is used (the others are dropped with
 *   reason `unproven`), as one URL would be.
 * - Each `getReader` goes to the mirror whose next request should finish
 *   first (in-flight requests over measured throughput). A mirror that
 *   fails retryably cools down and the request goes to another at once; a
 *   mirror that answers that its file changed (412, another validator) is
 *   dropped when a digest is known, else the change is thrown (as for one
 *   URL: exit 4, nothing stitched).
 * - The identity lists every mirror used with its own validators
 *   (`RemoteIdentity.mirrors`), so a later run with the same mirrors in any
 *   order, or a subset, resumes.
 *
 * @example
 * ```ts
 * const reader = new MirrorReader({
 *   urls: ['https://a.example/f.iso', 'https://b.example/f.iso'],
 *   expectedDigest: { algorithm: 'sha256', hex: '…' },
 * });
 * await downloadFile(reader, 'f.iso', { expectedDigest: { algorithm: 'sha256', hex: '…' } });
 * await reader.close();
 * ```
 */
export class MirrorReader implements Reader {
  /** The first mirror's URL, credentials removed. */
  readonly name: string;
  readonly #options: ResolvedMirrorReaderOptions;
  readonly #mirrors: readonly Mirror[];
  readonly #policy: MirrorPolicy;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  /** The first look, shared by every caller until it fails. */
  readonly #look = new SharedLook((signal) => this.#discover(signal));
  #digest: ExpectedDigest | undefined;
  /** Whether a digest is known, so that a changed mirror can be dropped instead of failing the download. */
  #digestKnown = false;
  /** Block 0 goes to the first mirror once, whose first look holds its body. */
  #firstBlockServed = false;

  /** @throws InvalidArgumentError when an option (or a URL) is not acceptable. */
  constructor(options: MirrorReaderOptions) {
    this.#options = resolveMirrorReaderOptions(options);
    const http = this.#options.http;
    this.#ownsDispatcher = http.dispatcher === undefined;
    this.#dispatcher = http.dispatcher ?? createDefaultDispatcher(process.env, {}, { http2: http.http2 === true });
    this.#policy = new MirrorPolicy(this.#options.urls.length, this.#options);
    // Only the first mirror's first look asks for a whole block (kept for
    // block 0); the others ask for one byte, enough to learn size and identity.
    this.#mirrors = this.#options.urls.map((url, index) => ({
      reader: new HttpReader({ ...http, url, dispatcher: this.#dispatcher, ...(index === 0 ? {} : { blockSize: 1 }) }),
      state: this.#policy.mirrors[index] as MirrorState,
    }));
    // Messages about one mirror name it; the download as a whole is named by the first URL.
    this.name = (this.#mirrors[0] as Mirror).reader.name;
  }

  /** {@inheritDoc Reader.contentLengthAndBlockSize} */
  contentLengthAndBlockSize(signal?: AbortSignal): Promise<ContentInfo> {
    return this.#look.get(signal);
  }

  /** {@inheritDoc Reader.digest} The digest the mirrors advertised (they agree), once known. */
  digest(): ExpectedDigest | undefined {
    return this.#digest;
  }

  /** What each mirror did so far, in the order the URLs were given. */
  stats(): MirrorStats[] {
    return this.#mirrors.map((m) => ({ url: m.reader.name, requests: m.state.requests, bytes: m.state.bytes, active: !m.state.removed }));
  }

  /** {@inheritDoc Reader.getReader} The range is read from one mirror, chosen per request. */
  async getReader(from: number, to: number, signal: AbortSignal, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
    if (signal?.aborted) throw signal.reason;
    await this.contentLengthAndBlockSize(signal);
    const tried = new Set<number>();
    let lastError: unknown;
    for (;;) {
      const mirror = this.#choose(from, tried);
      if (mirror === undefined) throw lastError ?? this.#noneLeft();
      tried.add(mirror.state.index);
      this.#policy.started(mirror.state);
      const started = performance.now();
      let body: AsyncIterable<Uint8Array>;
      try {
        body = await mirror.reader.getReader(from, to, signal, options);
      } catch (err) {
        this.#policy.ended(mirror.state, 0, 0, false);
        if (signal.aborted || err instanceof InvalidArgumentError) throw err;
        lastError = err;
        if (!this.#survive(mirror, err)) throw this.#named(mirror, err);
        continue;
      }
      return this.#measured(mirror, body, started, signal);
    }
  }

  /**
   * {@inheritDoc Reader.revalidate} Every mirror still in use that served
   * bytes is asked; one that changed is dropped when a digest is known (the
   * digest then decides), else its change is thrown.
   */
  async revalidate(signal: AbortSignal): Promise<void> {
    await this.contentLengthAndBlockSize(signal);
    for (const mirror of this.#mirrors) {
      if (mirror.state.removed || mirror.state.requests === 0) continue;
      try {
        await mirror.reader.revalidate(signal);
      } catch (err) {
        // With a digest known, the digest decides: a mirror that changed or
        // cannot be reached now is let go. Without one, its bytes cannot be
        // confirmed: the change (exit 4), or the retryable failure, stands.
        if (signal.aborted || !this.#digestKnown) throw this.#named(mirror, err);
        if (err instanceof RemoteChangedError) this.#drop(mirror, 'changed', err);
        else if (retryResponseOf(err).isRetryable()) this.#drop(mirror, 'unreachable', err);
        else throw err;
      }
    }
  }

  /** Closes every mirror's reader, and the dispatcher if this reader made it. Idempotent. */
  async close(): Promise<void> {
    await Promise.all(this.#mirrors.map((m) => m.reader.close()));
    if (this.#ownsDispatcher && !(this.#dispatcher as { closed?: boolean }).closed) await this.#dispatcher.close();
  }

  /** The first look at every mirror, and the checks that they serve one file. */
  async #discover(signal: AbortSignal | undefined): Promise<ContentInfo> {
    const looks = await Promise.allSettled(this.#mirrors.map((m) => m.reader.contentLengthAndBlockSize(signal)));
    if (signal?.aborted) throw signal.reason;
    let firstFailure: unknown;
    looks.forEach((look, i) => {
      const mirror = this.#mirrors[i] as Mirror;
      if (look.status === 'fulfilled') mirror.info = look.value;
      else firstFailure ??= look.reason;
    });
    const answered = this.#mirrors.filter((m) => m.info !== undefined);
    if (answered.length === 0) throw firstFailure;
    looks.forEach((look, i) => {
      if (look.status === 'rejected') this.#drop(this.#mirrors[i] as Mirror, 'look-failed', look.reason);
    });
    this.#checkSizes(answered);
    const digest = this.#checkDigests(answered);
    // A mirror without byte ranges can only serve the whole file in one
    // stream: of no use beside mirrors that serve ranges.
    const ranged = answered.filter((m) => m.info?.rangesSupported === true);
    if (ranged.length > 0) for (const m of answered) if (!ranged.includes(m)) this.#drop(m, 'no-ranges');
    let used = ranged.length > 0 ? ranged : answered.slice(0, 1);
    const expected = this.#options.expected;
    const recorded = expected === undefined ? [] : mirrorsOf(expected);
    this.#digest = digest;
    this.#digestKnown =
      digest !== undefined || this.#options.expectedDigests.length > 0 || expected?.digest !== undefined || (expected?.extraDigests ?? []).length > 0;
    if (this.#digestKnown && used.length > 1) {
      // A mirror that moved to another revision since the partial began
      // would fail the resume as a whole: with a digest to check the end,
      // the others can carry on without it.
      const moved = used.filter((m) => changedSince(m, recorded));
      if (moved.length < used.length) {
        for (const m of moved) this.#drop(m, 'changed');
        used = used.filter((m) => !moved.includes(m));
      }
    }
    if (used.length > 1 && !this.#digestKnown && sharedStrongEtag(used) === undefined) {
      // Nothing shows these mirrors hold the same bytes: take them from one,
      // the one the partial download's bytes came from if it is among them.
      const keep = used.find((m) => recorded.some((r) => sameRemoteUrl(r.url, m.reader.name))) ?? (used[0] as Mirror);
      for (const m of used) if (m !== keep) this.#drop(m, 'unproven');
      used = [keep];
    }
    for (const m of answered) if (!used.includes(m)) this.#policy.remove(m.state);
    const primary = (used[0] as Mirror).info as ContentInfo;
    return Object.freeze({
      contentLength: primary.contentLength,
      blockSize: this.#options.http.blockSize ?? primary.blockSize,
      identity: setIdentity(used, digest),
      rangesSupported: primary.rangesSupported,
      pinned: used.every((m) => m.info?.pinned === true),
      ...(primary.firstAnswerIdleMs === undefined ? {} : { firstAnswerIdleMs: primary.firstAnswerIdleMs }),
    });
  }

  /** Every mirror that answered must tell the same size. */
  #checkSizes(answered: readonly Mirror[]): void {
    const first = answered[0] as Mirror;
    const other = answered.find((m) => m.info?.contentLength !== first.info?.contentLength);
    if (other === undefined) return;
    throw new BlockfetchError(
      'BLOCKFETCH_MIRRORS_DISAGREE',
      `the mirrors disagree on the size: ${first.reader.name} has ${first.info?.contentLength} bytes, ${other.reader.name} has ${other.info?.contentLength}`,
      { hint: 'drop the mirror that serves another file (or another version of it)' },
    );
  }

  /**
   * No two mirrors may advertise different digests of one algorithm, nor one
   * other than the caller's. Returns the advertised digest (the first
   * mirror's), if any.
   */
  #checkDigests(answered: readonly Mirror[]): ExpectedDigest | undefined {
    let seen: { digest: ExpectedDigest; by: string } | undefined;
    const byAlgorithm = new Map<string, { digest: ExpectedDigest; by: string }>();
    for (const expected of this.#options.expectedDigests) {
      if (!byAlgorithm.has(expected.algorithm)) byAlgorithm.set(expected.algorithm, { digest: expected, by: 'the digest given' });
    }
    for (const m of answered) {
      const digest = m.reader.digest();
      if (digest === undefined) continue;
      seen ??= { digest, by: m.reader.name };
      const earlier = byAlgorithm.get(digest.algorithm);
      if (earlier !== undefined && earlier.digest.hex.toLowerCase() !== digest.hex.toLowerCase()) {
        throw new BlockfetchError(
          'BLOCKFETCH_MIRRORS_DISAGREE',
          `the mirrors disagree on the ${digest.algorithm} digest: ${earlier.by} has ${earlier.digest.hex}, ${m.reader.name} advertises ${digest.hex}`,
          { hint: 'drop the mirror that serves another file (or another version of it)' },
        );
      }
      if (earlier === undefined) byAlgorithm.set(digest.algorithm, { digest, by: m.reader.name });
    }
    return seen?.digest;
  }

  /** The mirror for a request starting at `from`, leaving out those in `tried`. */
  #choose(from: number, tried: ReadonlySet<number>): Mirror | undefined {
    const first = this.#mirrors[0] as Mirror;
    if (from === 0 && !this.#firstBlockServed && !first.state.removed && !tried.has(0)) {
      // The first mirror's look kept block 0's body: reading it from there costs no request.
      this.#firstBlockServed = true;
      return first;
    }
    const state = this.#policy.pick(performance.now(), tried);
    return state === undefined ? undefined : this.#mirrors[state.index];
  }

  /**
   * After `mirror` failed to open a body: true when the request may go to
   * another mirror (this one cooled down or dropped), false when the error
   * must reach the caller (a change that cannot be survived, the last mirror).
   */
  #survive(mirror: Mirror, err: unknown): boolean {
    const others = this.#policy.active().filter((m) => m !== mirror.state);
    if (err instanceof RemoteChangedError) {
      if (!this.#digestKnown || others.length === 0) return false;
      this.#drop(mirror, 'changed', err);
      return true;
    }
    if (retryResponseOf(err).isRetryable()) {
      this.#cool(mirror, err);
      return others.some((m) => m.coolUntil <= performance.now());
    }
    if (others.length === 0) return false;
    this.#drop(mirror, 'refused', err);
    return true;
  }

  /**
   * A mirror's change, with the mirror named in each change: the downloader
   * reports a change under the download's name (the first URL), and the
   * person must learn which mirror changed.
   */
  #named(mirror: Mirror, err: unknown): unknown {
    if (!(err instanceof RemoteChangedError) || mirror === this.#mirrors[0]) return err;
    const changes = err.changes.map((c) => ({ ...c, before: `${c.before} (mirror ${mirror.reader.name})` }));
    return new RemoteChangedError(mirror.reader.name, changes, err.bytesAtRisk, { cause: err });
  }

  /** `body`, counted for the policy: bytes, time, and a retryable failure cools its mirror down. */
  async *#measured(mirror: Mirror, body: AsyncIterable<Uint8Array>, started: number, signal: AbortSignal): AsyncGenerator<Uint8Array, void, undefined> {
    let bytes = 0;
    let ok = false;
    try {
      for await (const chunk of body) {
        bytes += chunk.length;
        yield chunk;
      }
      ok = true;
    } catch (err) {
      if (!signal.aborted && retryResponseOf(err).isRetryable()) this.#cool(mirror, err);
      throw err;
    } finally {
      this.#policy.ended(mirror.state, bytes, performance.now() - started, ok);
    }
  }

  #cool(mirror: Mirror, err: unknown): void {
    const delayMs = this.#policy.failed(mirror.state, performance.now());
    if (err instanceof BlockfetchError) this.#emit({ type: 'mirror-cooldown', mirror: mirror.reader.name, delayMs, error: err });
  }

  #drop(mirror: Mirror, reason: Extract<MirrorEvent, { type: 'mirror-dropped' }>['reason'], err?: unknown): void {
    this.#policy.remove(mirror.state);
    const why = {
      'look-failed': 'it failed the first look',
      'no-ranges': 'it serves no byte ranges',
      changed: 'its file changed since the download started',
      refused: 'it refused a request for good',
      unreachable: 'it could not be reached to confirm its revision at the end (the digest decides)',
      unproven: 'nothing shows it serves the same bytes as the first mirror (no digest known, and no strong ETag shared)',
    }[reason];
    const detail = err instanceof Error ? `: ${err.message}` : '';
    this.#emit({
      type: 'mirror-dropped',
      mirror: mirror.reader.name,
      reason,
      message: `mirror ${mirror.reader.name} is not used for the rest of this run: ${why}${detail}`,
      ...(err instanceof BlockfetchError ? { error: err } : {}),
    });
  }

  #emit(event: MirrorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A listener must not break the download.
    }
  }

  #noneLeft(): BlockfetchError {
    return new BlockfetchError('BLOCKFETCH_NETWORK', `${this.name}: no mirror is left to read from`);
  }
}

/** True when `mirror` is recorded in `recorded` with an ETag or Last-Modified it no longer sends. */
function changedSince(mirror: Mirror, recorded: readonly MirrorIdentity[]): boolean {
  const was = recorded.find((r) => sameRemoteUrl(r.url, mirror.reader.name));
  const now = mirror.info?.identity;
  if (was === undefined || now === undefined) return false;
  return (was.etag !== undefined && was.etag !== now.etag) || (was.lastModified !== undefined && was.lastModified !== now.lastModified);
}

/** The strong ETag every mirror in `mirrors` sent, or undefined when they do not share one. */
function sharedStrongEtag(mirrors: readonly Mirror[]): string | undefined {
  const etag = mirrors[0]?.info?.identity.etag;
  if (!isStrongEtag(etag)) return undefined;
  return mirrors.every((m) => m.info?.identity.etag === etag) ? etag : undefined;
}

/**
 * The identity of the mirrors in use: one mirror's own identity when only
 * one is used (exactly what a single URL records); else the first's URL,
 * the size, the digest, the ETag and Last-Modified where all mirrors share
 * them, and every mirror with its own validators.
 */
function setIdentity(used: readonly Mirror[], digest: ExpectedDigest | undefined): RemoteIdentity {
  const first = (used[0] as Mirror).info as ContentInfo;
  if (used.length === 1) return first.identity;
  const mirrors: MirrorIdentity[] = used.map((m) => {
    const id = (m.info as ContentInfo).identity;
    return {
      url: id.url,
      ...(id.etag === undefined ? {} : { etag: id.etag }),
      ...(id.lastModified === undefined ? {} : { lastModified: id.lastModified }),
    };
  });
  const etag = sharedStrongEtag(used);
  const lastModified = first.identity.lastModified;
  const sharedLastModified = lastModified !== undefined && mirrors.every((m) => m.lastModified === lastModified) ? lastModified : undefined;
  return Object.freeze({
    url: first.identity.url,
    size: first.contentLength,
    ...(etag === undefined ? {} : { etag }),
    ...(sharedLastModified === undefined ? {} : { lastModified: sharedLastModified }),
    ...(digest === undefined ? {} : { digest }),
    mirrors,
  });
}
