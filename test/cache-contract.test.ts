/**
 * LocalDownloadCache against the shared DownloadCache contract suite
 * (test/helpers/download-cache-contract.ts), on real files in a temp dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createNewFilesForCache } from '../src/cache/cache-files.js';
import { LocalDownloadCache } from '../src/cache/local-download-cache.js';
import { downloadCacheContract } from './helpers/download-cache-contract.js';

let dir: string;
let made = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-contract-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

downloadCacheContract('LocalDownloadCache', async (contentLength, blockSize) => {
  const data = join(dir, `file-${++made}.bin`);
  const index = `${data}.bfindex`;
  await createNewFilesForCache(data, index, contentLength, blockSize);
  return LocalDownloadCache.open(data, index);
});
