/**
 * `--json` against its published schema (docs/cli-json.schema.json, JSON
 * Schema 2020-12), with real output of the real command: a success, a
 * failure, a run with retries and an interrupted run. Every line carries the
 * schema version and a time; the last line says the outcome.
 *
 * The validator is ajv (the standard one; a devDependency with ajv-formats
 * for `date-time`). It is loaded through createRequire so that the type
 * check passes before it is installed; the suite skips, saying so, until it is.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli, startCli, waitFor } from './cli-helpers.js';
import { startFaultServer, type FaultServer } from './helpers/fault-server.js';
import { commitSha, startHubStandIn } from './helpers/hub-server.js';
import { startSetServer } from './helpers/set-server.js';
import { payload } from './helpers/payload.js';

interface ValidateFunction {
  (data: unknown): boolean;
  errors?: unknown;
}
interface AjvInstance {
  compile(schema: unknown): ValidateFunction;
}
type AjvConstructor = new (options: { strict: boolean; allErrors: boolean }) => AjvInstance;

const require = createRequire(import.meta.url);
function loadAjv(): { Ajv: AjvConstructor; addFormats: (ajv: AjvInstance) => void } | undefined {
  try {
    const Ajv = (require('ajv/dist/2020') as { default: AjvConstructor }).default;
    const addFormats = (require('ajv-formats') as { default: (ajv: AjvInstance) => void }).default;
    return { Ajv, addFormats };
  } catch {
    return undefined;
  }
}
const ajv = loadAjv();
if (ajv === undefined) console.warn('cli-json-schema.test.ts: ajv and ajv-formats are not installed (devDependencies): skipped');

const schema: unknown = JSON.parse(readFileSync(new URL('../docs/cli-json.schema.json', import.meta.url), 'utf8'));
const SIZE = 3 * 2 ** 20;

function linesOf(text: string): Record<string, unknown>[] {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(ajv === undefined)('--json output against docs/cli-json.schema.json', () => {
  let validate: ValidateFunction;
  let server: FaultServer;
  let dir: string;
  beforeAll(async () => {
    if (ajv === undefined) return;
    const instance = new ajv.Ajv({ strict: true, allErrors: true });
    ajv.addFormats(instance);
    validate = instance.compile(schema);
    server = await startFaultServer({ content: payload(0, SIZE - 1) });
    dir = await mkdtemp(join(tmpdir(), 'blockfetch-json-'));
  });
  afterAll(async () => {
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const check = (lines: Record<string, unknown>[]): void => {
    for (const line of lines) {
      const ok = validate(line);
      expect(ok, `${JSON.stringify(line)}\n${JSON.stringify(validate.errors)}`).toBe(true);
      expect(line['schemaVersion']).toBe(1);
      expect(Date.parse(String(line['time']))).not.toBeNaN();
    }
  };

  it('a success, with retries, ends with outcome complete', async () => {
    // Requests 1 and 2 get a 503 each: two retry lines before the file is done.
    server.script((req) => (req.index === 1 || req.index === 2 ? { kind: 'status', status: 503 } : undefined));
    const result = await runCli([server.url, '-o', 'ok.bin', '--block-size', '1MiB', '-c', '1', '--json'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const lines = linesOf(result.stdout.toString('utf8'));
    check(lines);
    expect(lines.map((l) => l['type'])).toContain('retry');
    expect(lines.at(-1)).toMatchObject({ type: 'done', outcome: 'complete', totalBytes: SIZE });
  });

  it('a failure ends with outcome failed', async () => {
    server.script(() => ({ kind: 'status', status: 503 }));
    const result = await runCli([server.url, '-o', 'fail.bin', '--block-size', '1MiB', '--retries', '1', '--json'], { cwd: dir });
    expect(result.code).not.toBe(0);
    const lines = linesOf(result.stdout.toString('utf8'));
    check(lines);
    expect(lines.at(-1)).toMatchObject({ type: 'error', outcome: 'failed', exitCode: result.code });
  });

  it('an interrupted run ends with outcome interrupted', async () => {
    server.script((req) => (req.index >= 2 ? { kind: 'stall', after: 1024 } : undefined));
    let out = '';
    const run = startCli([server.url, '-o', 'int.bin', '--block-size', '1MiB', '-c', '1', '--json'], {
      cwd: dir,
      onStdout: (chunk) => (out += chunk.toString('utf8')),
    });
    // Interrupt once the download is under way (its first progress line is out).
    await waitFor(() => out.includes('"type":"progress"'));
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code).toBe(130);
    const lines = linesOf(out);
    check(lines);
    expect(lines.at(-1)).toMatchObject({ type: 'interrupted', outcome: 'interrupted', signal: 'SIGINT', exitCode: 130 });
  });
  it('a set of files: every line in the schema, each about one file names it, the last is the summary', async () => {
    const files = await startSetServer({ '/one.bin': payload(0, 300_000), '/two.bin': payload(1, 2000) });
    try {
      await writeFile(join(dir, 'two.bin'), payload(1, 2000)); // already complete: skipped
      const result = await runCli([files.url('/one.bin'), files.url('/two.bin'), files.url('/none.bin'), '--json'], { cwd: dir });
      expect(result.code).toBe(1);
      const lines = linesOf(result.stdout.toString('utf8'));
      check(lines);
      const types = new Set(lines.map((l) => l['type']));
      for (const type of ['start', 'done', 'skipped', 'error', 'set-progress', 'summary']) expect(types, type).toContain(type);
      for (const line of lines) {
        if (!['set-progress', 'summary'].includes(line['type'] as string)) expect(line['file'], JSON.stringify(line)).toEqual(expect.any(String));
      }
      expect(lines.at(-1)).toMatchObject({ type: 'summary', outcome: 'failed', exitCode: 1 });
    } finally {
      await files.close();
    }
  });

  it('an hf:// repository: a set, so the same lines, each about one file naming its path, the last the summary', async () => {
    const files = [
      { path: 'config.json', content: payload(7_000_000, 7_000_000 + 999) },
      { path: 'model.safetensors', content: payload(8_000_000, 8_000_000 + 400_000 - 1), lfs: true },
      { path: 'onnx/model.onnx', content: payload(9_000_000, 9_000_000 + 300_000 - 1), lfs: true },
    ];
    const hub = await startHubStandIn({ token: 'hf_json_test_token', repos: [{ type: 'model', id: 'org/json', commits: new Map([[commitSha('j'), files]]), refs: new Map([['main', commitSha('j')]]) }] });
    try {
      const env = { HF_ENDPOINT: hub.endpoint, HF_TOKEN: 'hf_json_test_token', HF_HOME: join(dir, 'hf-home') };
      const result = await runCli(['hf://org/json', '-d', 'hf-json', '--json'], { cwd: dir, env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toBe('');
      const lines = linesOf(result.stdout.toString('utf8'));
      check(lines);
      const types = new Set(lines.map((l) => l['type']));
      for (const type of ['note', 'start', 'done', 'set-progress', 'summary']) expect(types, type).toContain(type);
      for (const line of lines) {
        if (['start', 'progress', 'done', 'error', 'skipped'].includes(line['type'] as string)) expect(files.map((f) => f.path), JSON.stringify(line)).toContain(line['file']);
      }
      expect(lines.filter((l) => l['type'] === 'done').map((l) => l['file']).sort()).toEqual(files.map((f) => f.path).sort());
      expect(lines.at(-1)).toMatchObject({ type: 'summary', outcome: 'complete', exitCode: 0 });
      // Run again: every file skipped, still in the schema.
      const again = await runCli(['hf://org/json', '-d', 'hf-json', '--json'], { cwd: dir, env });
      expect(again.code, again.stderr).toBe(0);
      const againLines = linesOf(again.stdout.toString('utf8'));
      check(againLines);
      expect(againLines.filter((l) => l['type'] === 'skipped').map((l) => l['file']).sort()).toEqual(files.map((f) => f.path).sort());
    } finally {
      await hub.close();
    }
  });

  it('inspect --json and verify --json print one line each, in the same schema', async () => {
    // The finished file from the first test, and the interrupted partial from the third.
    const complete = await runCli(['inspect', join(dir, 'ok.bin'), '--json'], { cwd: dir });
    const partial = await runCli(['inspect', join(dir, 'int.bin'), '--json'], { cwd: dir });
    const sha256 = createHash('sha256').update(payload(0, SIZE - 1)).digest('hex');
    const verified = await runCli(['verify', join(dir, 'ok.bin'), '--sha256', sha256, '--json'], { cwd: dir });
    const mismatch = await runCli(['verify', join(dir, 'ok.bin'), '--sha256', '0'.repeat(64), '--json'], { cwd: dir });
    for (const [result, code] of [[complete, 0], [partial, 0], [verified, 0], [mismatch, 5]] as const) {
      expect(result.code, result.stderr).toBe(code);
      const lines = linesOf(result.stdout.toString('utf8'));
      expect(lines).toHaveLength(1);
      check(lines);
    }
    expect(linesOf(complete.stdout.toString('utf8'))[0]).toMatchObject({ type: 'inspect', state: 'complete', size: SIZE });
    expect(linesOf(partial.stdout.toString('utf8'))[0]).toMatchObject({ type: 'inspect', state: 'partial', size: SIZE });
    expect(linesOf(verified.stdout.toString('utf8'))[0]).toMatchObject({ type: 'verified', outcome: 'complete', digests: [{ algorithm: 'sha256', hex: sha256, ok: true }] });
    expect(linesOf(mismatch.stdout.toString('utf8'))[0]).toMatchObject({ type: 'error', outcome: 'failed', exitCode: 5 });
  });
});
