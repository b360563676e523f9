/**
 * The `--help` texts. Kept next to each other so that they read as one
 * manual page; `docs/cli.md` says the same at more length.
 */
import { DIGEST_HEX_LENGTH } from '../cache/types.js';
import { defaultCliOptions, type HelpCommand } from './args.js';
import { formatDurationOption, formatSizeOption } from './units.js';

// The defaults are interpolated, not written out, so that the help cannot
// drift from what a run does.
const d = defaultCliOptions;

const DOWNLOAD = `Usage: blockfetch <url> [options]
       blockfetch inspect <FILE|FILE.blockfetch.json> [--json]
       blockfetch verify <FILE> --sha256 HEX | --sha512 HEX

Downloads <url> with many ranged requests at once, pinned to one revision of
the remote file. Interrupt it any way you like (Ctrl-C, kill -9, reboot): the
same command resumes from the blocks already on disk. While it runs, the data
is in FILE.blockfetch and its index in FILE.blockfetch.json, next to FILE.

Options:
  -o, --output FILE      where to save (default: the server's file name or the
                         URL's last path segment); '-' streams to stdout; a
                         directory saves under that name inside it
      --stdout           stream the file in order to stdout (same as -o -)
  -c, --concurrency N    parallel requests (default ${d.concurrency})
      --block-size SIZE  the unit of resumption: a kill loses at most one
                         partly received block per connection (default ${formatSizeOption(d.blockSize)})
      --request-size SIZE
                         the most one request fetches (default ${formatSizeOption(d.requestSize)}); with
                         --stdout the unit of the stream
      --rate RATE        limit the transfer rate, e.g. 50MB/s, 8MiB/s
  -H, --header 'N: V'    send an extra request header (repeatable)
      --sha256 HEX       the SHA-256 the file must have (checked before the
      --sha512 HEX       final rename; a mismatch keeps the partial file)
      --restart          if the remote changed since the partial download
                         began, discard it and download the new revision
      --retries N        retries of a request that makes no progress
                         before giving up (default ${d.retries})
      --timeout DURATION give up on a silent request after this, e.g. 30s
                         (default ${formatDurationOption(d.timeoutMs)}); it is retried
      --speed-limit RATE retry a request slower than this for --speed-time,
                         e.g. 10KiB/s; 0 is off (default ${d.speedLimitBytesPerSecond} B/s)
      --speed-time DURATION
                         (default ${formatDurationOption(d.speedTimeMs)})
  -f, --force            overwrite FILE if it exists
  -q, --quiet            print nothing but errors
      --json             print one JSON object per line (progress, retries,
                         the final status) instead of a progress bar
      --debug            show error codes, stacks and causes
                         (also: NODE_DEBUG=blockfetch)
  -h, --help             show this help
  -V, --version          show the version

Sizes: KiB, MiB, GiB are powers of 2; kB, MB, GB powers of 10.

Exit status:
  0 success            2 usage error          3 network failure (resumable)
  4 remote changed     5 digest mismatch      6 not enough space
  7 locked by another blockfetch              8 index corrupt or foreign
  1 other failure      130 interrupted (SIGINT), 143 terminated (SIGTERM)
  141 stdout closed by its reader (--stdout | head)
`;

const INSPECT = `Usage: blockfetch inspect <FILE|FILE.blockfetch|FILE.blockfetch.json> [--json]

Shows what a download's index says: size, block size, how much is done, the
byte ranges still missing, the remote revision and when it was last saved.
Read-only: safe to run while another process is downloading.

Options:
  --json    print the report as one JSON object
  --debug   show error codes, stacks and causes
`;

const VERIFY = `Usage: blockfetch verify <FILE> --sha256 HEX [--sha512 HEX]

Hashes FILE and compares. Exit status 0 when every digest matches, 5 when
one does not.

Options:
  --sha256 HEX   the expected SHA-256 (${DIGEST_HEX_LENGTH.sha256} hex digits)
  --sha512 HEX   the expected SHA-512 (${DIGEST_HEX_LENGTH.sha512} hex digits)
  --json         print the result as one JSON object
  --debug        show error codes, stacks and causes
`;

/** The help text for a command. */
export function helpText(topic: HelpCommand['topic']): string {
  return topic === 'inspect' ? INSPECT : topic === 'verify' ? VERIFY : DOWNLOAD;
}
