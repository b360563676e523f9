/**
 * Every Reader against the shared Reader contract suite
 * (test/helpers/reader-contract.ts): HttpReader over the scripted fault
 * server (every fault) and over a real nginx (the cases nginx can serve),
 * FileReader over temp files (faults made by changing the file), and the
 * FakeReader the downloaders' tests stand on.
 */
import { appendFile, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { FileReader } from '../src/download/file-reader.js';
import { HttpReader } from '../src/http/http-reader.js';
import { FakeReader, transient, type FakeFault } from './helpers/fake-reader.js';
import { startFaultServer, type Fault } from './helpers/fault-server.js';
import { startNginx, type NginxServer } from './helpers/nginx.js';
import { readerContract, type ReaderFault } from './helpers/reader-contract.js';
import { httpFault, reprDigest } from './helpers/http-faults.js';

let dir: string;
let nginx: NginxServer;
let made = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bf-reader-contract-'));
  nginx = await startNginx();
});
afterAll(async () => {
  await nginx?.stop();
  await rm(dir, { recursive: true, force: true });
});

readerContract('HttpReader over the fault server', {
  faults: ['cut', 'long', 'stall', 'refuse'],
  sourceFaults: 'transient',
  advertisesDigest: true,
  make: async (content, options = {}) => {
    const server = await startFaultServer({ content, ...(options.digest === undefined ? {} : { headers: reprDigest(options.digest) }) });
    // A small first block, so that the ranges the suite asks for need requests of their own.
    const reader = new HttpReader({ url: server.url, blockSize: 4096 });
    let armed: Fault | undefined;
    server.script(() => {
      const fault = armed;
      armed = undefined;
      return fault;
    });
    return {
      reader,
      fault: async (fault) => {
        armed = httpFault(fault);
      },
      close: async () => {
        await reader.close();
        await server.close();
      },
    };
  },
});

readerContract('HttpReader over nginx', {
  faults: [],
  sourceFaults: 'transient',
  advertisesDigest: false,
  make: async (content) => {
    const name = `f${++made}.bin`;
    await nginx.writeFile(name, content);
    const reader = new HttpReader({ url: nginx.url(name), blockSize: 4096 });
    return {
      reader,
      fault: async (fault) => {
        throw new Error(`nginx cannot be made to ${fault.kind}`);
      },
      close: () => reader.close(),
    };
  },
});

readerContract('FileReader', {
  faults: ['cut', 'long'],
  sourceFaults: 'changes',
  advertisesDigest: true,
  make: async (content, options = {}) => {
    const path = join(dir, `f${++made}.bin`);
    await writeFile(path, content);
    const reader = new FileReader(path, { chunkSize: 4096, ...(options.digest === undefined ? {} : { digest: options.digest }) });
    return {
      reader,
      // A local file can only run short or long by changing: truncated, or appended to.
      fault: async (fault) => {
        if (fault.kind === 'cut') await truncate(path, fault.after);
        else if (fault.kind === 'long') await appendFile(path, Buffer.alloc(fault.extra, 0xee));
        else throw new Error(`a file cannot ${fault.kind}`);
      },
      close: () => rm(path, { force: true }),
    };
  },
});

/** The FakeReader's script entry for each contract fault. */
function fakeFault(fault: ReaderFault): FakeFault {
  switch (fault.kind) {
    case 'cut':
      return { endAfter: fault.after }; // ends cleanly, short: the caller's count must catch it
    case 'long':
      return { overrun: fault.extra };
    case 'stall':
      return { stallAfter: fault.after };
    case 'refuse':
      return { refuse: transient('busy (contract)', fault.retryAfterMs) };
  }
}

readerContract('FakeReader', {
  faults: ['cut', 'long', 'stall', 'refuse'],
  sourceFaults: 'transient',
  advertisesDigest: true,
  make: async (content, options = {}) => {
    let armed: FakeFault | undefined;
    const reader = new FakeReader({
      size: content.length,
      content: (from, to) => content.subarray(from, to + 1),
      chunkSize: 4096,
      ...(options.digest === undefined ? {} : { digest: options.digest }),
      script: () => {
        const fault = armed;
        armed = undefined;
        return fault;
      },
    });
    return {
      reader,
      fault: async (fault) => {
        armed = fakeFault(fault);
      },
      close: async () => undefined,
    };
  },
});
