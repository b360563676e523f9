/**
 * Makes V8's code cache for the command's bundle (see scripts/bundle-cli.mjs
 * and src/cli/bundle-loader.ts): runs the bundle, without a cache, on a
 * download of a generated file from a server on 127.0.0.1 (the command's
 * defaults: several ranged requests, the progress lines), and when that process exits writes
 * the code cache, which holds every function the run compiled, to
 * BUNDLE.v8cache (`LoadedBundle.createCodeCache`). Build time only; nothing here ships.
 *
 *   node scripts/train-code-cache.mjs dist/cli/blockfetch.cjs
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [mode, ...rest] = process.argv.slice(2);

if (mode === '--run') {
  // The child: the bundle as the bin runs it, then the cache at exit.
  const [bundle, ...argv] = rest;
  const { loadBundle, codeCachePath } = await import(new URL('../dist/cli/bundle-loader.js', import.meta.url).href);
  const loaded = loadBundle(resolve(bundle), false);
  process.on('exit', (code) => {
    if (code === 0) writeFileSync(codeCachePath(resolve(bundle)), loaded.createCodeCache());
  });
  process.argv = [process.argv[0], resolve(bundle), ...argv];
  loaded.run();
} else {
  const bundle = mode;
  if (bundle === undefined) throw new Error('usage: node scripts/train-code-cache.mjs BUNDLE');
  const content = randomBytes(4 * 1024 * 1024 + 123);
  const etag = '"blockfetch-training"';
  const lastModified = new Date(Date.UTC(2026, 0, 1)).toUTCString();
  const server = createServer((req, res) => {
    const common = { etag, 'last-modified': lastModified, 'accept-ranges': 'bytes' };
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== etag) {
      res.writeHead(412, common).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range === null) {
      res.writeHead(200, { ...common, 'content-length': content.length }).end(content);
      return;
    }
    const from = Number(range[1]);
    const to = Math.min(range[2] === '' ? content.length - 1 : Number(range[2]), content.length - 1);
    if (from > to) {
      res.writeHead(416, { ...common, 'content-range': `bytes */${content.length}` }).end();
      return;
    }
    res
      .writeHead(206, { ...common, 'content-length': to - from + 1, 'content-range': `bytes ${from}-${to}/${content.length}` })
      .end(content.subarray(from, to + 1));
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const dir = mkdtempSync(join(tmpdir(), 'blockfetch-training-'));
  try {
    const target = join(dir, 'training.bin');
    const url = `http://127.0.0.1:${server.address().port}/training.bin`;
    // The command as people run it: default options, progress on stderr.
    const args = ['--run', bundle, url, '-o', target];
    let output = '';
    const code = await new Promise((done, fail) => {
      const child = spawn(process.execPath, [new URL(import.meta.url).pathname, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      child.on('error', fail);
      child.on('exit', (exitCode, signal) => done(exitCode ?? signal));
    });
    if (code !== 0) throw new Error(`the training download exited with ${code}:\n${output}`);
    if (!readFileSync(target).equals(content)) throw new Error('the training download does not match what was served');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.close();
  }
}
