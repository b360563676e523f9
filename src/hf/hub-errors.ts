/**
 * The Hub's refusals as typed errors, read the way huggingface_hub reads
 * them (`hf_raise_for_status` in `utils/_http.py`): the `X-Error-Code`
 * header (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
 * `GatedRepo`) and `X-Error-Message` decide, the status only where they are
 * absent. A rate limit (429) and a server error stay the ordinary
 * retryable `BLOCKFETCH_HTTP_TRANSIENT`, with the Retry-After delay.
 *
 * Messages name the repository and what to do; never the token, only
 * where it came from.
 */
import type { IncomingHttpHeaders } from 'node:http';

import { BlockfetchError, type BlockfetchErrorOptions } from '../errors.js';
import { statusError } from '../http/failures.js';
import { headerValue } from '../http/headers.js';

/** The header names the Hub uses (huggingface_hub's `constants.py` and `utils/_http.py`). */
export const HUB_HEADERS = Object.freeze({
  errorCode: 'x-error-code',
  errorMessage: 'x-error-message',
  repoCommit: 'x-repo-commit',
  linkedEtag: 'x-linked-etag',
  linkedSize: 'x-linked-size',
});

/** The X-Error-Message the Hub sends for a token it does not know. */
const INVALID_TOKEN_MESSAGE = 'Invalid credentials in Authorization header';

/** How to give blockfetch a token, for hints. */
export const HUB_TOKEN_HINT = 'set HF_TOKEN to a token with read access (https://huggingface.co/settings/tokens), or log in with `huggingface-cli login`';

/**
 * The Hub refused a request: `BLOCKFETCH_HUB_AUTH` (gated, private, a bad
 * token) or `BLOCKFETCH_HUB_NOT_FOUND` (no such repository, revision or path).
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof HubError && err.hubCode === 'GatedRepo') askForAccess(); }
 * ```
 */
export class HubError extends BlockfetchError {
  /** The HTTP status, or undefined when the refusal was found without one (a path no file matches). */
  readonly status: number | undefined;
  /** The Hub's `X-Error-Code`, if it sent one (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, `GatedRepo`). */
  readonly hubCode: string | undefined;
  constructor(
    code: 'BLOCKFETCH_HUB_AUTH' | 'BLOCKFETCH_HUB_NOT_FOUND',
    message: string,
    details: { readonly status?: number; readonly hubCode?: string } & BlockfetchErrorOptions = {},
  ) {
    super(code, message, details);
    this.status = details.status;
    this.hubCode = details.hubCode;
  }
}

/** Who asked: what the repository is called in messages, and whether (and whence) a token went along. */
export interface HubRequestContext {
  /** e.g. `model openai/whisper-tiny` or `dataset org/data`. */
  readonly what: string;
  /** Where the token came from, or undefined when none was sent. */
  readonly tokenSource: string | undefined;
}

/**
 * The error for a Hub response with status `status` (not 2xx/3xx).
 *
 * @example
 * ```ts
 * hubErrorFor(404, { 'x-error-code': 'RevisionNotFound' }, url, { what: 'model a/b@nope', tokenSource: undefined })
 * // HubError BLOCKFETCH_HUB_NOT_FOUND: "the Hub has no revision … (RevisionNotFound)"
 * ```
 */
export function hubErrorFor(status: number, headers: IncomingHttpHeaders, url: string, context: HubRequestContext, maxRetryAfterMs: number): BlockfetchError {
  const hubCode = headerValue(headers, HUB_HEADERS.errorCode)?.trim();
  const serverSays = oneLine(headerValue(headers, HUB_HEADERS.errorMessage));
  const said = serverSays === undefined ? '' : ` (the Hub says: ${serverSays})`;
  const withToken = context.tokenSource !== undefined;
  const details = { status, ...(hubCode === undefined ? {} : { hubCode }) };
  switch (hubCode) {
    case 'RevisionNotFound':
      return new HubError('BLOCKFETCH_HUB_NOT_FOUND', `the Hub has no such revision of ${context.what} (RevisionNotFound, HTTP ${status})${said}`, {
        ...details,
        hint: 'check the branch, tag or commit after @ (a revision with a slash is written URL-encoded: @feature%2Fx, or as refs/pr/N)',
      });
    case 'EntryNotFound':
      return new HubError('BLOCKFETCH_HUB_NOT_FOUND', `the Hub has no such file or folder in ${context.what} (EntryNotFound, HTTP ${status})${said}`, {
        ...details,
        hint: 'check the path after the repository (it is case-sensitive)',
      });
    case 'GatedRepo':
      return new HubError('BLOCKFETCH_HUB_AUTH', `${context.what} is gated: ${withToken ? `the token (from ${context.tokenSource}) has not been granted access` : 'it needs a token, and none is set'} (GatedRepo, HTTP ${status})${said}`, {
        ...details,
        hint: withToken ? "accept the repository's conditions on its Hub page with the token's account, then run again" : `${HUB_TOKEN_HINT}; accept the repository's conditions on its Hub page first`,
      });
    default:
      break;
  }
  if (status === 401 && serverSays === INVALID_TOKEN_MESSAGE) {
    return new HubError('BLOCKFETCH_HUB_AUTH', `the Hub rejected the token (from ${context.tokenSource ?? 'nowhere'}) for ${context.what} (HTTP 401)${said}`, {
      ...details,
      hint: `the token is wrong, expired or revoked: ${HUB_TOKEN_HINT}`,
    });
  }
  if (hubCode === 'RepoNotFound' || status === 401) {
    // The Hub answers 401 for a private or gated repository asked for
    // without a token AND for one that does not exist (huggingface_hub
    // reads both as RepositoryNotFound): without a token, say both.
    if (!withToken) {
      return new HubError('BLOCKFETCH_HUB_AUTH', `${context.what} was not found, or is private or gated and no token is set (HTTP ${status})${said}`, {
        ...details,
        hint: `check the repository id and type (hf://datasets/…, hf://spaces/…); if it is private or gated, ${HUB_TOKEN_HINT}`,
      });
    }
    return new HubError('BLOCKFETCH_HUB_NOT_FOUND', `${context.what} was not found, or the token (from ${context.tokenSource}) cannot see it (HTTP ${status})${said}`, {
      ...details,
      hint: 'check the repository id and type (hf://datasets/…, hf://spaces/…), and that the token has read access to it',
    });
  }
  if (status === 403) {
    return new HubError('BLOCKFETCH_HUB_AUTH', `the Hub refused access to ${context.what} (HTTP 403)${said}`, {
      ...details,
      hint: withToken ? 'the token lacks the permission this needs: use a token with read access to the repository' : HUB_TOKEN_HINT,
    });
  }
  if (status === 404) {
    return new HubError('BLOCKFETCH_HUB_NOT_FOUND', `the Hub found nothing for ${context.what} (HTTP 404)${said}`, {
      ...details,
      hint: 'check the repository id and type, the revision and the path',
    });
  }
  return statusError(status, headers, url, maxRetryAfterMs);
}

/** The server's message on one line, at most 200 characters, or undefined. */
function oneLine(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const line = text.replace(/\s+/g, ' ').trim();
  return line === '' ? undefined : line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
