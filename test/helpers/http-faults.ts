/**
 * How an HTTP server of ours plays the Reader contract's faults, and the
 * header a server advertising a digest sends: shared by the contract runs
 * over HttpReader and over MirrorReader.
 */
import type { ExpectedDigest } from '../../src/cache/types.js';
import type { Fault } from './fault-server.js';
import type { ReaderFault } from './reader-contract.js';

/** Repr-Digest (RFC 9530) for a sha256 digest: what a server advertising one sends. */
export function reprDigest(digest: ExpectedDigest): Record<string, string> {
  return { 'repr-digest': `sha-256=:${Buffer.from(digest.hex, 'hex').toString('base64')}:` };
}

/** The fault server's way of suffering each contract fault. */
export function httpFault(fault: ReaderFault): Fault {
  switch (fault.kind) {
    case 'cut':
      return { kind: 'cut', after: fault.after };
    case 'long':
      return { kind: 'extra', bytes: fault.extra };
    case 'stall':
      return { kind: 'stall', after: fault.after };
    case 'refuse':
      return { kind: 'status', status: 503, headers: { 'retry-after': String(fault.retryAfterMs / 1000) } };
  }
}
