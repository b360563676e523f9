/**
 * `npm run torture`: blockfetch against the two things that must never
 * produce a wrong file with exit 0 — being killed at any moment, and being
 * handed a damaged or forged index.
 *
 * 1. Kills: `--kills` times, a fresh download of `--size` MiB through a
 *    faulty loopback server (test/helpers/fault-server.ts: random resets,
 *    cut bodies, 503 and 429 with Retry-After) is started as a real
 *    `blockfetch` process and killed with SIGKILL at a moment drawn from
 *    four kinds, each aimed at a phase by watching the download's files
 *    (inotify, through `fs.watch`): as soon as the partial data file appears
 *    (creation and preallocation), as the Nth index temp file appears (an
 *    index save), as the target appears (the final rename, before the
 *    cleanup), or once the server has sent a random fraction (5–60 %) of the
 *    file's bytes (mid-transfer; a count, not a clock, so a fast run cannot
 *    finish before its kill). What the
 *    files looked like after the kill says where it landed. The same command
 *    is then run again until it exits 0, and the file's SHA-256 and the
 *    directory's contents (the target and nothing else) are checked.
 * 2. Index fuzzing with fast-check: a valid index (a real partial download's
 *    files, some blocks done) is parsed, mutated (fields replaced, removed,
 *    nudged, the bitmap swapped for a coherent forgery, the block size
 *    doubled, the remote identity edited, raw bytes flipped, deep nesting),
 *    RESEALED with the real canonical form (`canonicalJson`, the code
 *    `encodeIndex` hashes) for most cases, and loaded: the parser must answer
 *    with an index or an `IndexError`, nothing else; every index it accepts
 *    is resumed with `downloadFile` from a loopback server three ways (the
 *    right SHA-256 given; the right digest stored in the index only; no digest
 *    anywhere), and each outcome is classed as the right file, a typed error,
 *    a wrong file, or an untyped error.
 *
 * Usage: `npm run torture -- [--kills 100] [--size 512] [--fuzz 10000] [--seed 1] [--no-deep]`.
 * Exits 1 when a kill round ends with a wrong file or an untidy directory,
 * or the fuzzer finds an untyped error or a wrong file where a digest was
 * given. The counts of a real run are in docs/reliability.md.
 *
 * `test/torture.test.ts` and `test/torture-fuzz.test.ts` run a slice of both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, watch, type FSWatcher } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { canonicalJson, decodeIndex, encodeIndex, indexFromRanges, rangesFromIndex } from '../src/cache/index-format.js';
import type { RemoteIdentity } from '../src/cache/types.js';
import { downloadFile } from '../src/download-file.js';
import { BlockfetchError, IndexError } from '../src/errors.js';
import { ByteRanges } from '../src/ranges/byte-ranges.js';
import { MAIN, TSX_LOADER } from '../test/cli-helpers.js';
import { startFaultServer, type FaultServer, type Script } from '../test/helpers/fault-server.js';
import { payload } from '../test/helpers/payload.js';
import { seededRandom } from '../test/helpers/random.js';

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Shared pieces

/** The self-describing payload of `size` bytes as fault-server content, generated slice by slice. */
export function payloadContent(size: number): { readonly size: number; bytes(from: number, to: number): Buffer } {
  return { size, bytes: (from, to) => payload(from, to) };
}

/** The hex SHA-256 of the first `size` bytes of the payload, hashed 4 MiB at a time. */
export function payloadSha256(size: number): string {
  const hash = createHash('sha256');
  for (let at = 0; at < size; at += 4 * MiB) hash.update(payload(at, Math.min(size, at + 4 * MiB) - 1));
  return hash.digest('hex');
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/**
 * A script of random faults for the fault server, drawn from `random`: per
 * request `rate` of resets, cut bodies, 503 and 429 (both with
 * `Retry-After: 0`, so the run is not slowed by the server's say-so).
 */
export function randomFaults(random: () => number, rate: number): Script {
  return () => {
    const roll = random();
    if (roll >= rate) return undefined;
    const kind = Math.floor((roll / rate) * 4);
    if (kind === 0) return { kind: 'reset' };
    if (kind === 1) return { kind: 'cut', after: Math.floor(random() * 4 * MiB) };
    if (kind === 2) return { kind: 'status', status: 503, headers: { 'retry-after': '0' }, body: 'busy' };
    return { kind: 'status', status: 429, headers: { 'retry-after': '0' }, body: 'slow down' };
  };
}

// ---------------------------------------------------------------------------
// 1. kill -9 at random moments

/** Which moment a round aims its SIGKILL at. */
export type KillAim = 'preallocation' | 'index-save' | 'final-rename' | 'mid-transfer';

/** Where a kill landed, judged from the files it left. */
export type KillLanding =
  | 'before-any-file'
  | 'preallocation (data file, no index yet)'
  | 'index save (temp index left behind)'
  | 'mid-transfer'
  | 'after the final rename (target and index both present)'
  | 'after the end (nothing left but the target)'
  | 'not killed (the run ended first)';

/** Options of {@link runKillTorture}. */
export interface KillTortureOptions {
  /** Rounds: one fresh download killed once, then resumed to the end. */
  readonly kills: number;
  /** The file's size in bytes. */
  readonly size: number;
  /** Seeds the choice of aims, delays and server faults. @default 1 */
  readonly seed?: number;
  /** Fraction of requests the server answers with a fault. @default 0.08 */
  readonly faultRate?: number;
  /** Runs of the resumed command before a round counts as stuck. @default 8 */
  readonly maxResumes?: number;
  /** Receives one line per round. @default nothing */
  readonly log?: (line: string) => void;
  /**
   * The aims of the rounds, in turn (cycled), instead of drawing each one:
   * for a slice that must cover every kind whatever the seed. @default drawn
   */
  readonly aims?: readonly KillAim[];
}

/** What {@link runKillTorture} saw. */
export interface KillTortureResult {
  readonly rounds: number;
  readonly byAim: Readonly<Record<string, number>>;
  readonly byLanding: Readonly<Record<string, number>>;
  /** Exit codes of every resumed run (0 included), by code. */
  readonly resumeExitCodes: Readonly<Record<string, number>>;
  /** Exit codes of the killed runs that ended on their own before the kill, by code. */
  readonly unkilledExitCodes: Readonly<Record<string, number>>;
  /** Rounds that ended with the right SHA-256 and only the target in the directory. */
  readonly correct: number;
  /** Rounds whose final file had the wrong SHA-256 after exit 0. Must be 0. */
  readonly wrongFiles: number;
  /** Rounds that left files other than the target behind after exit 0. Must be 0. */
  readonly untidy: number;
  /** Rounds that never reached exit 0 within `maxResumes` runs. */
  readonly stuck: number;
  /**
   * Rounds killed after the final rename whose re-run exited 2 (the target
   * exists) instead of 0: the target was complete; they are checked like the
   * others and counted in `correct` when right.
   */
  readonly targetExistsAfterRename: number;
  /** Requests the server answered with a fault, in all rounds. */
  readonly faultsInjected: number;
  /** One line per problem. */
  readonly problems: readonly string[];
  readonly durationMs: number;
}

interface RunHandle {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function startBlockfetch(args: readonly string[], cwd: string): RunHandle {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, ...args], {
    cwd,
    env: { ...process.env, NODE_DEBUG: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, exited };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function landingOf(dir: string, name: string, killed: boolean): Promise<KillLanding> {
  if (!killed) return 'not killed (the run ended first)';
  const target = await exists(join(dir, name));
  const partial = await exists(join(dir, `${name}.blockfetch`));
  const index = await exists(join(dir, `${name}.blockfetch.json`));
  const temp = (await exists(join(dir, `.${name}.blockfetch.json.tmp`))) || (await exists(join(dir, `.${name}.blockfetch.live.tmp`)));
  if (temp) return 'index save (temp index left behind)';
  if (target && index) return 'after the final rename (target and index both present)';
  if (target) return 'after the end (nothing left but the target)';
  if (partial && !index) return 'preallocation (data file, no index yet)';
  if (!partial && !index) return 'before-any-file';
  return 'mid-transfer';
}

/**
 * Kills a fresh download at the moment `aim` names. Resolves with whether
 * the SIGKILL was sent before the process ended by itself.
 */
async function killAt(run: RunHandle, dir: string, name: string, aim: KillAim, random: () => number, sent: SentCounter): Promise<boolean> {
  let killed = false;
  const kill = (): void => {
    if (killed || run.child.exitCode !== null || run.child.signalCode !== null) return;
    killed = run.child.kill('SIGKILL');
  };
  let watcher: FSWatcher | undefined;
  if (aim === 'mid-transfer') {
    // Kill once the server has sent a random share of the file: the moment is
    // drawn from the transfer itself, so a fast machine cannot finish first.
    sent.killAt(Math.floor((0.05 + random() * 0.55) * sent.size), kill);
  } else {
    // An index save is the durable index's or the live index's (most are the live one's).
    const wanted = aim === 'preallocation' ? [`${name}.blockfetch`] : aim === 'index-save' ? [`.${name}.blockfetch.json.tmp`, `.${name}.blockfetch.live.tmp`] : [name];
    // Index saves: skip a random number first, so kills land in later saves
    // (mid-download, with blocks claimed) as well as in the first one.
    let skip = aim === 'index-save' ? Math.floor(random() * 6) : 0;
    watcher = watch(dir, (_event, filename) => {
      if (filename === null || !wanted.includes(filename)) return;
      if (skip-- > 0) return;
      kill();
    });
  }
  try {
    await run.exited;
  } finally {
    watcher?.close();
    sent.killAt(Infinity, () => undefined);
  }
  return killed;
}

/**
 * Counts the body bytes the server hands out and calls one action once the
 * count since the last {@link SentCounter.killAt} reaches its threshold.
 */
interface SentCounter {
  readonly size: number;
  killAt(bytes: number, action: () => void): void;
}

function countingContent(size: number): { content: ReturnType<typeof payloadContent>; sent: SentCounter } {
  let count = 0;
  let threshold = Infinity;
  let action: () => void = () => undefined;
  const sent: SentCounter = {
    size,
    killAt(bytes, next) {
      count = 0;
      threshold = bytes;
      action = next;
    },
  };
  const content = {
    size,
    bytes(from: number, to: number): Buffer {
      count += to - from + 1;
      if (count >= threshold) {
        threshold = Infinity;
        action();
      }
      return payload(from, to);
    },
  };
  return { content, sent };
}

/** Runs the kill rounds; see the module comment. */
export async function runKillTorture(options: KillTortureOptions): Promise<KillTortureResult> {
  const started = performance.now();
  const random = seededRandom(options.seed ?? 1);
  const faultRate = options.faultRate ?? 0.08;
  const maxResumes = options.maxResumes ?? 8;
  const log = options.log ?? (() => undefined);
  const expected = payloadSha256(options.size);
  const { content, sent } = countingContent(options.size);
  const server = await startFaultServer({ content });
  let faultsInjected = 0;
  const faults = randomFaults(random, faultRate);
  const root = await mkdtemp(join(tmpdir(), 'blockfetch-torture-'));
  const byAim: Record<string, number> = {};
  const byLanding: Record<string, number> = {};
  const resumeExitCodes: Record<string, number> = {};
  const unkilledExitCodes: Record<string, number> = {};
  const problems: string[] = [];
  let correct = 0;
  let wrongFiles = 0;
  let untidy = 0;
  let stuck = 0;
  let targetExistsAfterRename = 0;
  try {
    for (let round = 0; round < options.kills; round++) {
      const dir = join(root, `round-${round}`);
      await mkdir(dir);
      const name = 'file.bin';
      // Faults on every request but the kill's first look, so rounds differ.
      server.script((req) => {
        const fault = faults(req);
        if (fault !== undefined) faultsInjected++;
        return fault;
      });
      const roll = random();
      const drawn: KillAim = roll < 0.2 ? 'preallocation' : roll < 0.45 ? 'index-save' : roll < 0.65 ? 'final-rename' : 'mid-transfer';
      const aim: KillAim = options.aims === undefined || options.aims.length === 0 ? drawn : (options.aims[round % options.aims.length] as KillAim);
      bump(byAim, aim);
      // Half the rounds give the digest, so the in-order hash across resumes is exercised too.
      const args = [server.url, '-o', name, '-q', '--timeout', '5s', ...(random() < 0.5 ? ['--sha256', expected] : [])];
      const first = startBlockfetch(args, dir);
      const killed = await killAt(first, dir, name, aim, random, sent);
      const firstExit = await first.exited;
      if (!killed) bump(unkilledExitCodes, String(firstExit.code));
      const landing = await landingOf(dir, name, killed);
      bump(byLanding, landing);
      let finalCode: number | null = killed ? null : firstExit.code;
      let lastStderr = firstExit.stderr;
      for (let run = 0; finalCode !== 0 && run < maxResumes; run++) {
        const again = await startBlockfetch(args, dir).exited;
        finalCode = again.code;
        lastStderr = again.stderr;
        bump(resumeExitCodes, String(again.code));
        // Killed after the final rename: the target is complete, the re-run
        // removes the stale index and refuses to overwrite the target (exit 2).
        if (again.code === 2 && /already exists/.test(again.stderr) && !(await exists(join(dir, `${name}.blockfetch`)))) {
          targetExistsAfterRename++;
          finalCode = 0;
        }
      }
      let verdict: string;
      if (finalCode !== 0) {
        stuck++;
        verdict = `STUCK (last exit ${String(finalCode)}: ${lastStderr.trim().split('\n')[0] ?? ''})`;
        problems.push(`round ${round} (${aim}, ${landing}): ${verdict}`);
      } else {
        const sha = await fileSha256(join(dir, name));
        const left = (await readdir(dir)).filter((f) => f !== name);
        if (sha !== expected) {
          wrongFiles++;
          verdict = `WRONG FILE sha256 ${sha}`;
          problems.push(`round ${round} (${aim}, ${landing}): ${verdict}`);
        } else if (left.length > 0) {
          untidy++;
          verdict = `right file, but left ${left.join(', ')}`;
          problems.push(`round ${round} (${aim}, ${landing}): ${verdict}`);
        } else {
          correct++;
          verdict = 'right file';
        }
      }
      log(`round ${round + 1}/${options.kills}: aim ${aim}, landed ${landing}: ${verdict}`);
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    server.script(undefined);
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
  return {
    rounds: options.kills,
    byAim,
    byLanding,
    resumeExitCodes,
    unkilledExitCodes,
    correct,
    wrongFiles,
    untidy,
    stuck,
    targetExistsAfterRename,
    faultsInjected,
    problems,
    durationMs: Math.round(performance.now() - started),
  };
}

// ---------------------------------------------------------------------------
// 2. the index parser and resume, fuzzed

/** Options of {@link runIndexFuzz}. */
export interface IndexFuzzOptions {
  /** fast-check cases. */
  readonly cases: number;
  /** fast-check's seed. @default 1 */
  readonly seed?: number;
  /**
   * Include deeply nested values (issue 11 item 13). Off in the suite's
   * main property while that item is open (its own test pins it).
   * @default true
   */
  readonly deep?: boolean;
  /** Only this share of the rejected indexes is also resumed end to end (the parser already refused them). @default 0.05 */
  readonly rejectedSample?: number;
}

/** How one resume of a (mutated) index ended. */
export type ResumeOutcome = 'right file' | 'wrong file' | `typed ${string}` | `untyped ${string}`;

/** What {@link runIndexFuzz} saw. */
export interface IndexFuzzResult {
  readonly cases: number;
  /** Cases whose checksum was recomputed after the mutation. */
  readonly resealed: number;
  /** Parser outcomes: `accepted`, an IndexError code, or `untyped <name>`. */
  readonly parser: Readonly<Record<string, number>>;
  /** Resume outcomes with the right SHA-256 given (`expectedDigest`). */
  readonly withDigestGiven: Readonly<Record<string, number>>;
  /** Resume outcomes with the right digest stored in the index's `remote.digest` and none given. */
  readonly withDigestStored: Readonly<Record<string, number>>;
  /** Resume outcomes with no digest anywhere. */
  readonly withoutDigest: Readonly<Record<string, number>>;
  /** Examples of every untyped error and every wrong file, at most 20. */
  readonly examples: readonly string[];
  readonly durationMs: number;
}

const FUZZ_SIZE = 1 * MiB;
const FUZZ_BLOCK = 64 * 1024;
/** The blocks the base index claims; their bytes are right on disk, the rest hold 0xEE. */
const FUZZ_DONE = [0, 1, 2, 5, 9, 15];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One edit of the parsed index (applied in order), drawn by fast-check. */
type Mutation =
  | { readonly op: 'set'; readonly key: string; readonly value: Json }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'nudge'; readonly key: string; readonly how: number }
  | { readonly op: 'bitmap'; readonly blocks: readonly number[]; readonly coherent: boolean }
  | { readonly op: 'double-block'; readonly blocks: readonly number[] }
  | { readonly op: 'remote'; readonly key: string; readonly value: Json | undefined }
  | { readonly op: 'deep'; readonly key: string; readonly depth: number; readonly object: boolean };

interface FuzzCase {
  readonly base: 'plain' | 'digest';
  readonly mutations: readonly Mutation[];
  readonly reseal: boolean;
  /** Raw byte damage after sealing: [position fraction, xor]. */
  readonly flip: readonly [number, number] | undefined;
}

const KEYS = ['format', 'version', 'contentLength', 'blockSize', 'numBlocks', 'cachedBlocks', 'cachedBytes', 'remote', 'updatedAt', 'bitmap', 'checksum', 'extra'];
const REMOTE_KEYS = ['url', 'size', 'etag', 'lastModified', 'digest', 'extra'];
const NUDGES = [
  (v: number) => v + 1,
  (v: number) => v - 1,
  (v: number) => v * 2,
  (v: number) => Math.floor(v / 2),
  () => 0,
  () => -1,
  () => 2 ** 53 - 1,
  () => 2 ** 53,
  () => 1e308,
  (v: number) => v + 0.5,
  () => 2 ** 32,
];

function caseArbitrary(deep: boolean): fc.Arbitrary<FuzzCase> {
  const blocks = fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 20 });
  const ops: fc.Arbitrary<Mutation>[] = [
    fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...KEYS), value: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json> }),
    fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
    fc.record({ op: fc.constant('nudge' as const), key: fc.constantFrom('version', 'contentLength', 'blockSize', 'numBlocks', 'cachedBlocks', 'cachedBytes'), how: fc.nat({ max: NUDGES.length - 1 }) }),
    fc.record({ op: fc.constant('bitmap' as const), blocks, coherent: fc.boolean() }),
    fc.record({ op: fc.constant('double-block' as const), blocks }),
    fc.record({
      op: fc.constant('remote' as const),
      key: fc.constantFrom(...REMOTE_KEYS),
      value: fc.option(fc.oneof(fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, fc.constantFrom<Json>('"other"', 'W/"weak"', '', 0, { algorithm: 'sha256', hex: '0'.repeat(64) })), { nil: undefined }),
    }),
  ];
  if (deep) {
    ops.push(fc.record({ op: fc.constant('deep' as const), key: fc.constantFrom('remote', 'extra', 'updatedAt'), depth: fc.integer({ min: 1_000, max: 200_000 }), object: fc.boolean() }));
  }
  return fc.record({
    base: fc.constantFrom('plain' as const, 'digest' as const),
    mutations: fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 3 }),
    reseal: fc.nat({ max: 3 }).map((k) => k > 0), // 3 in 4 resealed
    flip: fc.option(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), { nil: undefined, freq: 5 }),
  });
}

/** A coherent bitmap for the geometry, or (when the geometry itself is invalid) one for the base's. */
function bitmapOf(contentLength: number, blockSize: number, blocks: readonly number[]): { b64: string; count: number; bytes: number } {
  let ranges: ByteRanges;
  try {
    ranges = new ByteRanges(contentLength, blockSize);
  } catch {
    ranges = new ByteRanges(FUZZ_SIZE, FUZZ_BLOCK);
  }
  for (const b of blocks) if (b < ranges.numBlocks) ranges.setBlock(b);
  return { b64: Buffer.from(ranges.serialize()).toString('base64'), count: ranges.setCount, bytes: ranges.setBytes };
}

function asNumber(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

/** Applies the mutations; returns a placeholder text to splice in for a deep value, if any. */
function mutate(body: Record<string, unknown>, mutations: readonly Mutation[]): { placeholder: string; text: string } | undefined {
  let deepValue: { placeholder: string; text: string } | undefined;
  for (const m of mutations) {
    switch (m.op) {
      case 'set':
        body[m.key] = m.value;
        break;
      case 'delete':
        delete body[m.key];
        break;
      case 'nudge':
        body[m.key] = (NUDGES[m.how] ?? ((v: number) => v))(asNumber(body[m.key], 0));
        break;
      case 'bitmap': {
        const bm = bitmapOf(asNumber(body['contentLength'], FUZZ_SIZE), asNumber(body['blockSize'], FUZZ_BLOCK), m.blocks);
        body['bitmap'] = bm.b64;
        if (m.coherent) {
          body['cachedBlocks'] = bm.count;
          body['cachedBytes'] = bm.bytes;
        }
        break;
      }
      case 'double-block': {
        const contentLength = asNumber(body['contentLength'], FUZZ_SIZE);
        const blockSize = asNumber(body['blockSize'], FUZZ_BLOCK) * 2;
        body['blockSize'] = blockSize;
        body['numBlocks'] = Math.ceil(contentLength / blockSize);
        const bm = bitmapOf(contentLength, blockSize, m.blocks.length > 0 ? m.blocks : [0, 1, 2]);
        body['bitmap'] = bm.b64;
        body['cachedBlocks'] = bm.count;
        body['cachedBytes'] = bm.bytes;
        break;
      }
      case 'remote': {
        const remote = body['remote'];
        if (typeof remote === 'object' && remote !== null && !Array.isArray(remote)) {
          const r = remote as Record<string, unknown>;
          if (m.value === undefined) delete r[m.key];
          else r[m.key] = m.value;
        }
        break;
      }
      case 'deep': {
        // JSON.stringify and canonicalJson both recurse; a placeholder string
        // is sealed instead and replaced by the deep text, which is the same
        // in the canonical form and in the file (no whitespace, one key).
        const placeholder = `__deep_${m.depth}__`;
        const text = m.object ? `${'{"a":'.repeat(m.depth)}0${'}'.repeat(m.depth)}` : `${'['.repeat(m.depth)}0${']'.repeat(m.depth)}`;
        body[m.key] = placeholder;
        deepValue = { placeholder, text };
        break;
      }
    }
  }
  return deepValue;
}

/** Seals `body` the way encodeIndex does: `sha256:` + SHA-256 of canonicalJson of every field but `checksum`. */
function seal(body: Record<string, unknown>, deep: { placeholder: string; text: string } | undefined): void {
  const { checksum: _old, ...rest } = body;
  let canonical = canonicalJson(rest);
  if (deep !== undefined) canonical = canonical.replace(JSON.stringify(deep.placeholder), deep.text);
  body['checksum'] = `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

function classify(err: unknown): string {
  if (err instanceof BlockfetchError) return `typed ${err.code}`;
  return `untyped ${err instanceof Error ? `${err.name}: ${err.message.slice(0, 80)}` : String(err)}`;
}

/** Runs the fuzzer; see the module comment. */
export async function runIndexFuzz(options: IndexFuzzOptions): Promise<IndexFuzzResult> {
  const started = performance.now();
  const sampleRejected = options.rejectedSample ?? 0.05;
  const content = payload(0, FUZZ_SIZE - 1);
  const sha = createHash('sha256').update(content).digest('hex');
  const server: FaultServer = await startFaultServer({ content });
  const root = await mkdtemp(join(tmpdir(), 'blockfetch-fuzz-'));
  // The data file a killed download leaves: the claimed blocks right, the rest not.
  const data = Buffer.alloc(FUZZ_SIZE, 0xee);
  for (const b of FUZZ_DONE) content.copy(data, b * FUZZ_BLOCK, b * FUZZ_BLOCK, (b + 1) * FUZZ_BLOCK);
  const ranges = new ByteRanges(FUZZ_SIZE, FUZZ_BLOCK);
  for (const b of FUZZ_DONE) ranges.setBlock(b);
  const identity: RemoteIdentity = {
    url: server.url,
    size: FUZZ_SIZE,
    ...(server.etag === undefined ? {} : { etag: server.etag }),
    ...(server.lastModified === undefined ? {} : { lastModified: server.lastModified }),
  };
  const bases = {
    plain: encodeIndex(indexFromRanges(ranges, identity, new Date(0))),
    digest: encodeIndex(indexFromRanges(ranges, { ...identity, digest: { algorithm: 'sha256', hex: sha } }, new Date(0))),
  };
  const parser: Record<string, number> = {};
  const withDigestGiven: Record<string, number> = {};
  const withDigestStored: Record<string, number> = {};
  const withoutDigest: Record<string, number> = {};
  const examples: string[] = [];
  let resealed = 0;
  let n = 0;
  let dirCount = 0;

  const resume = async (indexBytes: Uint8Array, given: boolean): Promise<ResumeOutcome> => {
    const dir = join(root, String(dirCount++));
    await mkdir(dir);
    const target = join(dir, 'file.bin');
    await writeFile(`${target}.blockfetch`, data);
    await writeFile(`${target}.blockfetch.json`, indexBytes);
    try {
      await downloadFile(server.url, target, {
        concurrency: 4,
        lockWaitMs: 0,
        retry: { attemptsPerBlock: 2, totalRetries: 4, baseDelayMs: 1, maxDelayMs: 10 },
        ...(given ? { expectedDigest: { algorithm: 'sha256' as const, hex: sha } } : {}),
      });
      const got = await readFile(target);
      return got.equals(content) ? 'right file' : 'wrong file';
    } catch (err) {
      return classify(err) as ResumeOutcome;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    await fc.assert(
      fc.asyncProperty(caseArbitrary(options.deep ?? true), async (c) => {
        n++;
        const body = JSON.parse(Buffer.from(bases[c.base]).toString('utf8')) as Record<string, unknown>;
        const deep = mutate(body, c.mutations);
        if (c.reseal) {
          seal(body, deep);
          resealed++;
        }
        let text = `${JSON.stringify(body, null, 2)}\n`;
        if (deep !== undefined) text = text.replace(JSON.stringify(deep.placeholder), deep.text);
        const bytes = Buffer.from(text, 'utf8');
        if (c.flip !== undefined) {
          const at = Math.min(bytes.length - 1, Math.floor(c.flip[0] * bytes.length));
          bytes[at] = (bytes[at] ?? 0) ^ c.flip[1];
        }
        let verdict: string;
        try {
          rangesFromIndex(decodeIndex(bytes, 'fuzz.blockfetch.json'), 'fuzz.blockfetch.json');
          verdict = 'accepted';
        } catch (err) {
          verdict = err instanceof IndexError ? err.code : classify(err);
        }
        bump(parser, verdict);
        const what = `${c.base} ${c.reseal ? 'resealed' : 'not resealed'} ${JSON.stringify(c.mutations).slice(0, 160)}${c.flip ? ` flip ${c.flip.join('/')}` : ''}`;
        if (verdict.startsWith('untyped') && examples.length < 20) examples.push(`parser: ${verdict} for ${what}`);
        if (verdict !== 'accepted' && (n % Math.max(1, Math.round(1 / sampleRejected)) !== 0 || sampleRejected === 0)) return;
        const given = await resume(bytes, true);
        bump(withDigestGiven, given);
        const other = await resume(bytes, false);
        bump(c.base === 'digest' ? withDigestStored : withoutDigest, other);
        for (const [how, outcome] of [['digest given', given], [c.base === 'digest' ? 'digest stored' : 'no digest', other]] as const) {
          if ((outcome === 'wrong file' || outcome.startsWith('untyped')) && examples.length < 20) examples.push(`resume (${how}): ${outcome} for ${what}`);
        }
      }),
      { numRuns: options.cases, seed: options.seed ?? 1, endOnFailure: true },
    );
  } finally {
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
  return {
    cases: n,
    resealed,
    parser,
    withDigestGiven,
    withDigestStored,
    withoutDigest,
    examples,
    durationMs: Math.round(performance.now() - started),
  };
}

// ---------------------------------------------------------------------------
// The command

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number >= 0, got ${String(process.argv[i + 1])}`);
  return value;
}

function table(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `    ${String(v).padStart(6)}  ${k}`)
    .join('\n');
}

async function main(): Promise<void> {
  const kills = flag('kills', 100);
  const sizeMiB = flag('size', 512);
  const cases = flag('fuzz', 10_000);
  const seed = flag('seed', 1);
  let failed = false;
  if (kills > 0) {
    console.log(`kill -9 torture: ${kills} rounds over ${sizeMiB} MiB, seed ${seed}`);
    const r = await runKillTorture({ kills, size: sizeMiB * MiB, seed, log: (line) => console.log(`  ${line}`) });
    console.log(`  aimed at:\n${table(r.byAim)}\n  landed in:\n${table(r.byLanding)}`);
    console.log(`  exit codes of the resumed runs:\n${table(r.resumeExitCodes)}`);
    if (Object.keys(r.unkilledExitCodes).length > 0) console.log(`  exit codes of runs that ended before their kill:\n${table(r.unkilledExitCodes)}`);
    console.log(`  faults injected by the server: ${r.faultsInjected}`);
    console.log(`  re-runs after a kill past the final rename that exited 2 "already exists" (target complete): ${r.targetExistsAfterRename}`);
    console.log(`  right file: ${r.correct}, WRONG FILE: ${r.wrongFiles}, untidy: ${r.untidy}, stuck: ${r.stuck}  (${(r.durationMs / 1000).toFixed(0)} s)`);
    for (const p of r.problems) console.log(`  problem: ${p}`);
    if (r.wrongFiles > 0 || r.untidy > 0 || r.stuck > 0) failed = true;
  }
  if (cases > 0) {
    console.log(`index fuzz: ${cases} fast-check cases, seed ${seed}${process.argv.includes('--no-deep') ? ', no deep nesting' : ''}`);
    const r = await runIndexFuzz({ cases, seed, deep: !process.argv.includes('--no-deep') });
    console.log(`  cases: ${r.cases}, resealed: ${r.resealed}  (${(r.durationMs / 1000).toFixed(0)} s)`);
    console.log(`  parser:\n${table(r.parser)}`);
    console.log(`  resumed with the right --sha256 given:\n${table(r.withDigestGiven)}`);
    console.log(`  resumed with the right digest stored in the index only:\n${table(r.withDigestStored)}`);
    console.log(`  resumed with no digest anywhere:\n${table(r.withoutDigest)}`);
    for (const e of r.examples) console.log(`  example: ${e}`);
    const untypedParser = Object.keys(r.parser).some((k) => k.startsWith('untyped'));
    if (untypedParser || (r.withDigestGiven['wrong file'] ?? 0) > 0 || Object.keys(r.withDigestGiven).some((k) => k.startsWith('untyped'))) failed = true;
  }
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
