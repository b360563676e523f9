/**
 * Where the Hub is, who we are to it, and where its standard cache lives:
 * read from the same environment variables and files as huggingface_hub
 * (`constants.py`), so a machine set up for it works unchanged.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { InvalidArgumentError } from '../errors.js';

/** What {@link hubSettingsFromEnvironment} found. */
export interface HubSettings {
  /** The Hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  /** The access token, if any. Sent to the Hub's origin only. */
  readonly token: string | undefined;
  /** Where the token came from, for messages (never the token itself). */
  readonly tokenSource: 'HF_TOKEN' | 'token file' | undefined;
  /** The standard cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`). */
  readonly hubCache: string;
}

/**
 * The defaults huggingface_hub uses.
 *
 * @example
 * ```ts
 * defaultHubSettings.endpoint // 'https://huggingface.co'
 * ```
 */
export const defaultHubSettings = Object.freeze({
  /** `HF_ENDPOINT` when unset. @default 'https://huggingface.co' */
  endpoint: 'https://huggingface.co',
  /** `HF_HOME` when unset, under the home directory. @default '.cache/huggingface' */
  home: join('.cache', 'huggingface'),
});

/**
 * Reads the Hub settings: `HF_ENDPOINT` (default https://huggingface.co);
 * the token from `HF_TOKEN`, else the file `HF_TOKEN_PATH` (default
 * `$HF_HOME/token`, the file `huggingface-cli login` writes), `HF_HOME`
 * defaulting to `~/.cache/huggingface`; the cache from `HF_HUB_CACHE`,
 * else `$HF_HOME/hub`. A missing token file is no error: public
 * repositories need none.
 *
 * @example
 * ```ts
 * const settings = await hubSettingsFromEnvironment(process.env);
 * settings.token === undefined // no token: public repositories only
 * ```
 */
export async function hubSettingsFromEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<HubSettings> {
  const endpoint = (nonEmpty(env['HF_ENDPOINT']) ?? defaultHubSettings.endpoint).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    throw new InvalidArgumentError(`HF_ENDPOINT is not a URL: ${JSON.stringify(endpoint)}`, { hint: 'set HF_ENDPOINT to the Hub base URL, e.g. https://huggingface.co, or unset it' });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new InvalidArgumentError(`HF_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  const home = nonEmpty(env['HF_HOME']) ?? join(homedir(), defaultHubSettings.home);
  const hubCache = nonEmpty(env['HF_HUB_CACHE']) ?? join(home, 'hub');
  const fromEnv = nonEmpty(env['HF_TOKEN']?.trim());
  if (fromEnv !== undefined) return { endpoint, token: fromEnv, tokenSource: 'HF_TOKEN', hubCache };
  const tokenPath = nonEmpty(env['HF_TOKEN_PATH']) ?? join(home, 'token');
  const fromFile = nonEmpty((await readFile(tokenPath, 'utf8').catch(() => '')).trim());
  return { endpoint, token: fromFile, tokenSource: fromFile === undefined ? undefined : 'token file', hubCache };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
