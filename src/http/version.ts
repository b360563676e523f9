/**
 * The package version, read once from package.json, for the User-Agent.
 * `../../package.json` is right both from `src/http/` (tests, tsx) and from
 * `dist/http/` (the published build, whose rootDir is `src`).
 */
import { createRequire } from 'node:module';

function readVersion(): string {
  try {
    const pkg: unknown = createRequire(import.meta.url)('../../package.json');
    const version = (pkg as { version?: unknown }).version;
    return typeof version === 'string' ? version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * The version of blockfetch, from its package.json (also in the default User-Agent).
 *
 * @example
 * ```ts
 * console.log(`blockfetch ${BLOCKFETCH_VERSION}`);
 * ```
 */
export const BLOCKFETCH_VERSION: string = readVersion();

/** The User-Agent the HTTP reader sends unless told otherwise: `blockfetch/<version>`. */
export const DEFAULT_USER_AGENT = `blockfetch/${BLOCKFETCH_VERSION}`;
