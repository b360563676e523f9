/**
 * `blockfetch hf://…` end to end, against the loopback stand-in of the Hub
 * and its CDN (test/helpers/hub-server.ts): byte-identical files, the token
 * seen by the Hub and never by the CDN nor in any output or index, one
 * commit for the whole set while the branch moves, an expired signed URL
 * resolved again, globs, the standard cache layout, a corrupt small file,
 * and each refusal's message.
 */
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './cli-helpers.js';
import { commitSha, gitBlobId, sha256Hex, startHubStandIn, type HubStandIn, type StandInFile, type StandInRepo } from './helpers/hub-server.js';
import { payload } from './helpers/payload.js';

const TOKEN = 'hf_standin_SECRET_token_0123456789';

/** Distinct bytes per file: the payload at a file's own offset. */
function bytes(offset: number, size: number): Buffer {
  return payload(offset, offset + size - 1);
}

const A = commitSha('a');
const B = commitSha('b');
const PR = commitSha('pr1');
const filesA: StandInFile[] = [
  { path: 'config.json', content: bytes(1_000_000, 700) },
  { path: 'README.md', content: bytes(2_000_000, 300) },
  { path: 'model.safetensors', content: bytes(3_000_000, 700_000), lfs: true },
  { path: 'onnx/model.onnx', content: bytes(5_000_000, 200_000), lfs: true },
  { path: 'sub/dir/tokenizer.json', content: bytes(6_000_000, 5_000) },
];
const filesB: StandInFile[] = filesA.map((f, i) => ({ ...f, content: bytes(10_000_000 + i * 1_000_000, f.content.length) }));
const filesPr: StandInFile[] = [{ path: 'config.json', content: bytes(20_000_000, 123) }];

function model(): StandInRepo {
  return { type: 'model', id: 'org/tiny-model', commits: new Map([[A, filesA], [B, filesB], [PR, filesPr]]), refs: new Map([['main', A], ['refs/pr/1', PR]]) };
}
const datasetFiles: StandInFile[] = [
  { path: 'train/part-0.parquet', content: bytes(30_000_000, 90_000), lfs: true },
  { path: 'train/part-1.parquet', content: bytes(31_000_000, 80_000), lfs: true },
  { path: 'test/part-0.parquet', content: bytes(32_000_000, 1_000) },
  { path: 'README.md', content: bytes(33_000_000, 100) },
];
const dataset: StandInRepo = { type: 'dataset', id: 'org/data', commits: new Map([[commitSha('d'), datasetFiles]]), refs: new Map([['main', commitSha('d')]]) };
const gatedFiles: StandInFile[] = [{ path: 'weights.bin', content: bytes(40_000_000, 50_000), lfs: true }];
const gated: StandInRepo = { type: 'model', id: 'org/gated', gated: true, commits: new Map([[commitSha('g'), gatedFiles]]), refs: new Map([['main', commitSha('g')]]) };
const corrupt: StandInRepo = {
  type: 'model',
  id: 'org/corrupt',
  commits: new Map([[commitSha('c'), [{ path: 'config.json', content: bytes(50_000_000, 400) }]]]),
  refs: new Map([['main', commitSha('c')]]),
};
const escaping: StandInRepo = {
  type: 'model',
  id: 'org/escaping',
  commits: new Map([[commitSha('e'), [{ path: 'ok.txt', content: bytes(60_000_000, 10) }, { path: '../evil.txt', content: bytes(61_000_000, 10) }]]]),
  refs: new Map([['main', commitSha('e')]]),
};

let work: string;
let hub: HubStandIn;
let hooks: Array<(origin: 'hub' | 'cdn', url: string) => void> = [];

async function start(repos: StandInRepo[], extra: Partial<Parameters<typeof startHubStandIn>[0]> = {}): Promise<HubStandIn> {
  hub = await startHubStandIn({ repos, token: TOKEN, onRequest: (origin, req) => hooks.forEach((h) => h(origin, req.url ?? '')), ...extra });
  return hub;
}

function env(overrides: Record<string, string> = {}): Record<string, string> {
  return { HF_ENDPOINT: hub.endpoint, HF_TOKEN: TOKEN, HF_HOME: join(work, 'hf-home'), HF_HUB_CACHE: join(work, 'hub-cache'), ...overrides };
}

async function blockfetch(args: string[], environment = env()): Promise<CliResult> {
  const result = await runCli(args, { cwd: work, env: environment });
  expect(result.stderr, 'the token never appears in stderr').not.toContain(TOKEN);
  expect(result.stdout.toString(), 'the token never appears in stdout').not.toContain(TOKEN);
  return result;
}

/** Every file under `dir`, relative, sorted. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** From request number `from` on: the Hub got the token every time, the CDN never. */
function expectTokenOnlyAtHub(from = 0): void {
  const requests = hub.requests.slice(from);
  const cdn = requests.filter((r) => r.origin === 'cdn');
  expect(cdn.length).toBeGreaterThan(0);
  for (const r of cdn) {
    expect(r.headers['authorization'], r.url).toBeUndefined();
    expect(JSON.stringify(r.headers) + r.url).not.toContain(TOKEN);
  }
  expect(requests.filter((r) => r.origin === 'hub').every((r) => r.headers['authorization'] === `Bearer ${TOKEN}`)).toBe(true);
}

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'bf-hf-'));
  hooks = [];
});
afterEach(async () => {
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

describe('blockfetch hf:// into a folder', () => {
  it('downloads a whole model byte for byte, the token going to the Hub only', async () => {
    await start([model()]);
    const result = await blockfetch(['hf://org/tiny-model', '-d', 'out', '--block-size', '64KiB', '-c', '4']);
    expect(result.stderr).toContain(`is commit ${A}`);
    expect(result.code).toBe(0);
    expect(await listFiles(join(work, 'out'))).toEqual(filesA.map((f) => f.path).sort());
    for (const f of filesA) expect((await readFile(join(work, 'out', f.path))).equals(f.content), f.path).toBe(true);
    expectTokenOnlyAtHub();
    // Every file was fetched by the commit, never by the branch name.
    const resolves = hub.requests.filter((r) => r.origin === 'hub' && r.url.includes('/resolve/'));
    expect(resolves.length).toBeGreaterThanOrEqual(filesA.length);
    expect(resolves.every((r) => r.url.includes(`/resolve/${A}/`))).toBe(true);
    // LFS bytes came from the CDN in ranges.
    expect(hub.requests.some((r) => r.origin === 'cdn' && r.status === 206)).toBe(true);
  });

  it('defaults to ./NAME and, run again, finds every file complete without fetching', async () => {
    await start([model()]);
    expect((await blockfetch(['hf://org/tiny-model'])).code).toBe(0);
    for (const f of filesA) expect((await readFile(join(work, 'tiny-model', f.path))).equals(f.content)).toBe(true);
    const before = hub.requests.length;
    const again = await blockfetch(['hf://org/tiny-model']);
    expect(again.code).toBe(0);
    // The set's summary: one `skipped` line per file.
    expect(again.stderr.match(/^ {2}skipped {2}.*\(already complete\)$/gm)?.length).toBe(filesA.length);
    expect(hub.requests.slice(before).filter((r) => r.origin === 'cdn' || r.url.includes('/resolve/'))).toEqual([]);
  });

  it('a dataset folder, its tree read over several pages', async () => {
    await start([dataset], { pageSize: 1 });
    const result = await blockfetch(['hf://datasets/org/data/train', '-d', 'ds']);
    expect(result.code).toBe(0);
    expect(await listFiles(join(work, 'ds'))).toEqual(['train/part-0.parquet', 'train/part-1.parquet']);
    for (const f of datasetFiles.slice(0, 2)) expect((await readFile(join(work, 'ds', f.path))).equals(f.content)).toBe(true);
    const pages = hub.requests.filter((r) => r.url.includes('/api/datasets/org/data/tree/'));
    expect(pages.length).toBeGreaterThanOrEqual(2);
    expect(pages.some((r) => r.url.includes('cursor='))).toBe(true);
    expect(hub.requests.some((r) => r.url.startsWith('/datasets/org/data/resolve/'))).toBe(true);
  });

  it('one file by its path, and a revision given as refs/pr/N or URL-encoded', async () => {
    await start([model()]);
    expect((await blockfetch(['hf://org/tiny-model/onnx/model.onnx', '-d', 'one'])).code).toBe(0);
    expect(await listFiles(join(work, 'one'))).toEqual(['onnx/model.onnx']);
    expect((await readFile(join(work, 'one', 'onnx/model.onnx'))).equals(filesA[3]!.content)).toBe(true);
    for (const url of ['hf://org/tiny-model@refs/pr/1', 'hf://org/tiny-model@refs%2Fpr%2F1/config.json']) {
      const dir = `pr-${url.length}`;
      const result = await blockfetch([url, '-d', dir]);
      expect(result.code, result.stderr).toBe(0);
      expect((await readFile(join(work, dir, 'config.json'))).equals(filesPr[0]!.content)).toBe(true);
    }
    expect(hub.requests.some((r) => r.url.includes('/revision/refs%2Fpr%2F1'))).toBe(true);
  });

  it('--include and --exclude, with fnmatch rules', async () => {
    await start([model()]);
    const result = await blockfetch(['hf://org/tiny-model', '-d', 'g', '--include', '*.json', '--include', 'onnx/', '--exclude', 'sub/*']);
    expect(result.code, result.stderr).toBe(0);
    expect(await listFiles(join(work, 'g'))).toEqual(['config.json', 'onnx/model.onnx']);
    const none = await blockfetch(['hf://org/tiny-model', '-d', 'none', '--include', '*.gguf']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no file of model org\/tiny-model@main matches --include\/--exclude \(5 listed/);
  });

  it('a branch that moves to another commit mid-download never mixes commits', async () => {
    const repo = model();
    await start([repo]);
    hooks.push((origin) => {
      if (origin === 'cdn') repo.refs.set('main', B);
    });
    const result = await blockfetch(['hf://org/tiny-model', '-d', 'moved', '--block-size', '64KiB']);
    expect(result.code, result.stderr).toBe(0);
    expect(repo.refs.get('main')).toBe(B); // it did move, during the run
    for (const f of filesA) expect((await readFile(join(work, 'moved', f.path))).equals(f.content), f.path).toBe(true);
    expect(hub.requests.filter((r) => r.url.includes('/resolve/')).every((r) => r.url.includes(`/resolve/${A}/`))).toBe(true);
  });

  it('a signed URL that expires mid-download is resolved again and the download completes', async () => {
    await start([model()]);
    const big = sha256Hex(filesA[2]!.content);
    let seen = 0;
    hooks.push((origin, url) => {
      // After a few ranges of the big file, every URL signed so far expires.
      if (origin === 'cdn' && url.startsWith(`/${big}`) && ++seen === 3) hub.advanceClock(7200);
    });
    const result = await blockfetch(['hf://org/tiny-model/model.safetensors', '-d', 'exp', '--block-size', '64KiB', '-c', '2']);
    expect(result.code, result.stderr).toBe(0);
    expect((await readFile(join(work, 'exp', 'model.safetensors'))).equals(filesA[2]!.content)).toBe(true);
    expect(hub.requests.some((r) => r.origin === 'cdn' && r.status === 403)).toBe(true);
    const resolves = hub.requests.filter((r) => r.origin === 'hub' && r.url.endsWith('/resolve/' + A + '/model.safetensors'));
    expect(resolves.length).toBeGreaterThanOrEqual(2);
    // Every ranged CDN request after a URL's first look carried the pinned
    // ETag (a first look is checked against it instead), and none the token.
    const ranged = hub.requests.filter((r) => r.origin === 'cdn' && r.status === 206 && r.headers['range'] !== 'bytes=0-65535');
    expect(ranged.length).toBeGreaterThanOrEqual(2);
    expect(ranged.every((r) => r.headers['if-match'] === `"${big}"`)).toBe(true);
    expectTokenOnlyAtHub();
  });

  it('a re-signed URL that serves another ETag is refused, not mixed in (exit 4, partial kept)', async () => {
    await start([model()]);
    const big = sha256Hex(filesA[2]!.content);
    let seen = 0;
    hooks.push((origin, url) => {
      if (origin === 'cdn' && url.startsWith(`/${big}`) && ++seen === 3) {
        hub.advanceClock(7200);
        hub.setCdnEtag((sha) => `"${sha}-replaced"`);
      }
    });
    const result = await blockfetch(['hf://org/tiny-model/model.safetensors', '-d', 'swap', '--block-size', '64KiB', '-c', '1']);
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`-replaced`);
    await expect(lstat(join(work, 'swap', 'model.safetensors'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await lstat(join(work, 'swap', 'model.safetensors.blockfetch'))).isFile()).toBe(true);
  });

  it('a small file whose bytes do not have the listed git blob id fails with exit 5, partial kept', async () => {
    // The Hub serves other bytes of the same size than the tree's oid (and its ETag) describe.
    const listed = corrupt.commits.get(commitSha('c'))![0]!;
    const served = Buffer.from(listed.content);
    served[100] = served[100]! ^ 0xff;
    await start([corrupt], { serveInstead: new Map([[listed.path, served]]) });
    const result = await blockfetch(['hf://org/corrupt', '-d', 'bad']);
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/git-sha1/);
    await expect(lstat(join(work, 'bad', 'config.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    const index = await readFile(join(work, 'bad', 'config.json.blockfetch.json'), 'utf8');
    expect(index).toContain(gitBlobId(listed.content));
    expect(index).not.toContain(TOKEN);
  });

  it('refuses a tree path that would leave the folder, writing nothing', async () => {
    await start([escaping]);
    const result = await blockfetch(['hf://org/escaping', '-d', 'esc']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/listed the path "\.\.\/evil\.txt", which would leave the download folder/);
    await expect(lstat(join(work, 'evil.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(join(work, 'esc'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('blockfetch hf:// --hf-cache', () => {
  it('writes blobs, relative snapshot links and refs/main; a second run finds it complete', async () => {
    await start([model()]);
    const result = await blockfetch(['hf://org/tiny-model', '--hf-cache', '--block-size', '64KiB']);
    expect(result.code, result.stderr).toBe(0);
    const repo = join(work, 'hub-cache', 'models--org--tiny-model');
    expect((await readFile(join(repo, 'refs', 'main'), 'utf8'))).toBe(A);
    const blobs = (await readdir(join(repo, 'blobs'))).sort();
    const names = filesA.map((f) => (f.lfs === true ? sha256Hex(f.content) : gitBlobId(f.content))).sort();
    expect(blobs).toEqual(names); // nothing else: no partial, no index left
    for (const f of filesA) {
      const pointer = join(repo, 'snapshots', A, f.path);
      const link = await readlink(pointer);
      expect(link.startsWith('../')).toBe(true);
      expect(link).toBe(`${'../'.repeat(f.path.split('/').length + 1)}blobs/${f.lfs === true ? sha256Hex(f.content) : gitBlobId(f.content)}`);
      expect((await readFile(pointer)).equals(f.content), f.path).toBe(true);
    }
    const before = hub.requests.length;
    const again = await blockfetch(['hf://org/tiny-model', '--hf-cache']);
    expect(again.code).toBe(0);
    // The set's summary: one `skipped` line per file.
    expect(again.stderr.match(/^ {2}skipped {2}.*\(already complete\)$/gm)?.length).toBe(filesA.length);
    expect(hub.requests.slice(before).filter((r) => r.origin === 'cdn' || r.url.includes('/resolve/'))).toEqual([]);
  });

  it('keeps a partial blob under another name until it is complete', async () => {
    await start([model()]);
    const big = sha256Hex(filesA[2]!.content);
    hooks.push((origin, url) => {
      // The CDN breaks down after a few ranges: the run fails part way.
      if (origin === 'cdn' && url.startsWith(`/${big}`) && hub.requests.filter((r) => r.origin === 'cdn').length >= 3) hub.advanceClock(1e9);
    });
    const result = await blockfetch(['hf://org/tiny-model/model.safetensors', '--hf-cache', '--block-size', '64KiB', '-c', '1', '--retries', '0']);
    expect(result.code).not.toBe(0);
    const blobs = await readdir(join(work, 'hub-cache', 'models--org--tiny-model', 'blobs'));
    expect(blobs).not.toContain(big);
    expect(blobs).toContain(`${big}.blockfetch`);
    await expect(lstat(join(work, 'hub-cache', 'models--org--tiny-model', 'snapshots', A, 'model.safetensors'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Run again: it resumes, and only the complete, verified blob takes the name.
    hooks = [];
    const again = await blockfetch(['hf://org/tiny-model/model.safetensors', '--hf-cache', '--block-size', '64KiB']);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(join(work, 'hub-cache', 'models--org--tiny-model', 'blobs'))).sort()).toEqual([big]);
    expect((await readFile(join(work, 'hub-cache', 'models--org--tiny-model', 'snapshots', A, 'model.safetensors'))).equals(filesA[2]!.content)).toBe(true);
  });
});

describe('blockfetch hf:// refusals', () => {
  it('a gated repository without a token says how to set one; with the token file it downloads', async () => {
    await start([gated]);
    const noToken = await blockfetch(['hf://org/gated', '-d', 'g'], env({ HF_TOKEN: '' }));
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/model org\/gated@main is gated: it needs a token, and none is set \(GatedRepo, HTTP 401\)/);
    expect(noToken.stderr).toMatch(/hint: set HF_TOKEN .*huggingface-cli login/);
    await mkdir(join(work, 'hf-home'), { recursive: true });
    await writeFile(join(work, 'hf-home', 'token'), `${TOKEN}\n`);
    const withToken = hub.requests.length;
    const fromFile = await blockfetch(['hf://org/gated', '-d', 'g'], env({ HF_TOKEN: '' }));
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect((await readFile(join(work, 'g', 'weights.bin'))).equals(gatedFiles[0]!.content)).toBe(true);
    expectTokenOnlyAtHub(withToken);
  });

  it('a wrong token (401)', async () => {
    await start([gated]);
    const result = await blockfetch(['hf://org/gated'], env({ HF_TOKEN: 'hf_wrong_token_value' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/the Hub rejected the token \(from HF_TOKEN\) for model org\/gated@main \(HTTP 401\)/);
    expect(result.stderr).not.toContain('hf_wrong_token_value');
  });

  it.each([
    [['hf://org/nope'], /model org\/nope@main was not found, or the token \(from HF_TOKEN\) cannot see it \(HTTP 404\)/],
    [['hf://datasets/org/tiny-model'], /dataset org\/tiny-model@main was not found/],
    [['hf://org/tiny-model@nope'], /the Hub has no such revision of model org\/tiny-model@nope \(RevisionNotFound, HTTP 404\)/],
    [['hf://org/tiny-model/missing.bin'], /model org\/tiny-model@main has no file or folder "missing.bin"/],
  ])('%j', async (args, message) => {
    await start([model()]);
    const result = await blockfetch([...args, '-d', 'x']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(2); // one line, and its hint
  });

  it('a private repository asked for without a token: not found or needs a token', async () => {
    await start([model()]);
    const result = await blockfetch(['hf://org/secret'], env({ HF_TOKEN: '' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/model org\/secret@main was not found, or is private or gated and no token is set \(HTTP 401\)/);
  });

  it('rate limiting (429 with Retry-After) is waited out and retried', async () => {
    await start([model()], { rateLimit: { path: /\/revision\//, times: 2, retryAfter: '0' } });
    const result = await blockfetch(['hf://org/tiny-model/config.json', '-d', 'rl']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/HTTP 429.*retrying/);
    expect(hub.requests.filter((r) => r.status === 429)).toHaveLength(2);
    expect((await readFile(join(work, 'rl', 'config.json'))).equals(filesA[0]!.content)).toBe(true);
  });
});
