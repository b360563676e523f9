/**
 * What `--hf-cache` writes, read by huggingface_hub itself, offline: the
 * proof that transformers (which loads through huggingface_hub) finds the
 * files. The Python with huggingface_hub is `BLOCKFETCH_HF_PYTHON` (.ci/run
 * makes a venv from the wheel the machine image ships); under CI its
 * absence is a failure, elsewhere the test says why it cannot run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './cli-helpers.js';
import { commitSha, startHubStandIn, type HubStandIn, type StandInFile } from './helpers/hub-server.js';
import { payload } from './helpers/payload.js';

const python = process.env['BLOCKFETCH_HF_PYTHON'];
const TOKEN = 'hf_interop_token_0123456789';
const COMMIT = commitSha('interop');
const files: StandInFile[] = [
  { path: 'config.json', content: payload(0, 499) },
  { path: 'model.safetensors', content: payload(1_000_000, 1_300_000), lfs: true },
  { path: 'tokenizer/vocab.txt', content: payload(3_000_000, 3_004_000) },
];

const READ_BACK = `
import json, os, sys
from huggingface_hub import snapshot_download, try_to_load_from_cache, scan_cache_dir
cache = sys.argv[1]
snapshot = snapshot_download("org/interop", cache_dir=cache, local_files_only=True)
out = {"snapshot": snapshot, "files": {}}
for path in ${JSON.stringify(files.map((f) => f.path))}:
    found = try_to_load_from_cache("org/interop", path, cache_dir=cache)
    with open(os.path.join(snapshot, path), "rb") as f:
        out["files"][path] = {"found": found, "size": len(f.read())}
info = scan_cache_dir(cache)
repo = next(iter(info.repos))
out["scan"] = {"repo_id": repo.repo_id, "nb_files": repo.nb_files, "size": repo.size_on_disk,
               "refs": sorted(r for rev in repo.revisions for r in rev.refs), "commit": next(iter(repo.revisions)).commit_hash,
               "warnings": [str(w) for w in info.warnings]}
print(json.dumps(out))
`;

let work: string;
let hub: HubStandIn;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'bf-hf-interop-'));
  hub = await startHubStandIn({ repos: [{ type: 'model', id: 'org/interop', commits: new Map([[COMMIT, files]]), refs: new Map([['main', COMMIT]]) }], token: TOKEN });
});
afterEach(async () => {
  await hub.close();
  await rm(work, { recursive: true, force: true });
});

describe('--hf-cache read by huggingface_hub', () => {
  it.runIf(process.env['CI'] === 'true')('needs a Python with huggingface_hub under CI', () => {
    expect(python, 'BLOCKFETCH_HF_PYTHON must name a Python with huggingface_hub (see .ci/run)').toBeDefined();
  });

  it.runIf(python !== undefined)('snapshot_download, try_to_load_from_cache and scan_cache_dir find every file offline', async () => {
    const cache = join(work, 'hub');
    const result = await runCli(['hf://org/interop', '--hf-cache'], {
      cwd: work,
      env: { HF_ENDPOINT: hub.endpoint, HF_TOKEN: TOKEN, HF_HOME: join(work, 'home'), HF_HUB_CACHE: cache },
    });
    expect(result.code, result.stderr).toBe(0);
    const answer = JSON.parse(
      execFileSync(python as string, ['-c', READ_BACK, cache], { env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: join(work, 'home') } }).toString(),
    ) as {
      snapshot: string;
      files: Record<string, { found: string; size: number }>;
      scan: { repo_id: string; nb_files: number; size: number; refs: string[]; commit: string; warnings: string[] };
    };
    expect(answer.snapshot).toBe(join(cache, 'models--org--interop', 'snapshots', COMMIT));
    for (const f of files) {
      expect(answer.files[f.path]?.found).toBe(join(answer.snapshot, f.path));
      expect(answer.files[f.path]?.size).toBe(f.content.length);
    }
    expect(answer.scan).toMatchObject({ repo_id: 'org/interop', nb_files: files.length, refs: ['main'], commit: COMMIT, warnings: [] });
    expect(answer.scan.size).toBeGreaterThanOrEqual(files.reduce((n, f) => n + f.content.length, 0));
  });
});
