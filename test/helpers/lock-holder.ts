/**
 * A second process for the lock tests: takes the CacheLock on argv[2] with
 * the backend argv[3] ('auto' | 'flock' | 'mkdir' | 'both', or 'default':
 * no backend option), prints `locked <backend>`
 * (or `held` if another process has it), then holds it until killed, or
 * until a line on stdin: `release` releases and exits, `exit` exits without
 * releasing (the kernel drops a flock; the mkdir lock is left to go stale).
 */
import { createInterface } from 'node:readline';
import { CacheLock, type CacheLockBackend } from '../../src/cache/lock.js';
import { LockHeldError } from '../../src/errors.js';

const [path, backend = 'auto'] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: lock-holder.ts PATH [BACKEND]');

const backendOption = backend === 'default' ? {} : { backend: backend as CacheLockBackend | 'auto' };
const lock = await CacheLock.acquire(path, { ...backendOption, staleMs: 60_000 }).catch((err: unknown) => {
  if (err instanceof LockHeldError) {
    process.stdout.write('held\n');
    process.exit(7);
  }
  throw err;
});
process.stdout.write(`locked ${lock.backend}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'release') {
    await lock.release();
    process.stdout.write('released\n');
    process.exit(0);
  }
  if (line === 'exit') process.exit(0);
}
