/**
 * The `--help` texts. The option lists are printed from the same tables the
 * parser reads (`DOWNLOAD_OPTIONS`, `INSPECT_OPTIONS`, `VERIFY_OPTIONS` in
 * `args.ts`), defaults included, so that help and parser cannot drift;
 * `docs/cli.md` says the same at more length.
 */
import { DOWNLOAD_OPTIONS, INSPECT_OPTIONS, VERIFY_OPTIONS, type HelpCommand, type OptionSpec } from './args.js';

/** The width help is wrapped to, and the column option help starts at. */
const WIDTH = 80;
const HELP_COLUMN = 25;

/**
 * The "Options:" lines for a table: `  -c, --concurrency N    parallel
 * requests (default 8)`, the help wrapped under its column; a name too long
 * for the column gets its help on the next line.
 *
 * @example
 * ```ts
 * formatOptions([{ long: 'force', short: 'f', help: 'overwrite FILE' }])
 * // '  -f, --force            overwrite FILE\n'
 * ```
 */
export function formatOptions(specs: readonly OptionSpec[]): string {
  const lines: string[] = [];
  for (const spec of specs) {
    const names = `  ${spec.short === undefined ? '    ' : `-${spec.short}, `}--${spec.long}${spec.value === undefined ? '' : ` ${spec.value}`}`;
    const text = spec.default === undefined ? spec.help : `${spec.help} (default ${spec.default})`;
    const wrapped = wrap(text, WIDTH - HELP_COLUMN);
    if (names.length + 1 > HELP_COLUMN) lines.push(names);
    else lines.push(names.padEnd(HELP_COLUMN) + (wrapped.shift() ?? ''));
    for (const rest of wrapped) lines.push(' '.repeat(HELP_COLUMN) + rest);
  }
  return `${lines.join('\n')}\n`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

const DOWNLOAD = `Usage: blockfetch <url> [options]
       blockfetch <url> <url>... [-d DIR] | -i FILE [-j N] [options]
       blockfetch s3://BUCKET/KEY | s3://BUCKET/PREFIX/ [-d DIR] [options]
       blockfetch inspect <FILE|FILE.blockfetch.json> [--json]
       blockfetch verify <FILE> --sha256 HEX | --sha512 HEX

Downloads <url> with many ranged requests at once, pinned to one revision of
the remote file. Interrupt it any way you like (Ctrl-C, kill -9, reboot): the
same command resumes from the blocks already on disk. While it runs, the data
is in FILE.blockfetch and its index in FILE.blockfetch.json, next to FILE.
Run again after it finished, it says "already complete" when the file is
that remote (size and modification time, or a digest you gave).

Several URLs, or -i FILE (aria2c's input format: out=, dir=, checksum=,
header= lines under each URL), download a set: -c counts connections across
all files, -j files run at once, and the same command again skips finished
files and resumes the rest; a summary lists every file.

Options:
${formatOptions(DOWNLOAD_OPTIONS)}
Sizes: KiB, MiB, GiB are powers of 2; kB, MB, GB powers of 10.

Exit status:
  0 success            2 usage error          3 network failure (resumable)
  4 remote changed     5 digest mismatch      6 not enough space
  7 locked by another blockfetch              8 index corrupt or foreign
  1 other failure      130 interrupted (SIGINT), 143 terminated (SIGTERM)
  141 stdout closed by its reader (--stdout | head; with -o FILE the partial
      file is kept: run again to resume)
  A set of files exits with its most severe failure: 6 8 5 4 7 2 1 3, in
  that order (3, resumable, is the least); see docs/cli.md.

-o FILE --stdout streams the file to stdout while saving it: a re-run streams
from byte 0 again and resumes the download. Bytes leave before the digest is
checked: treat a non-zero exit status as a failed stream (set -o pipefail).
`;

const INSPECT = `Usage: blockfetch inspect <FILE|FILE.blockfetch|FILE.blockfetch.json> [--json]

Shows what a download's index says: size, block size, how much is done, the
byte ranges still missing, the remote revision and when it was last saved.
Read-only: safe to run while another process is downloading.

Options:
${formatOptions(INSPECT_OPTIONS)}`;

const VERIFY = `Usage: blockfetch verify <FILE> --sha256 HEX [--sha512 HEX]

Hashes FILE and compares. Exit status 0 when every digest matches, 5 when
one does not.

Options:
${formatOptions(VERIFY_OPTIONS)}`;

/**
 * The help text for a command.
 *
 * @example
 * ```ts
 * helpText('verify').startsWith('Usage: blockfetch verify') // true
 * ```
 */
export function helpText(topic: HelpCommand['topic']): string {
  return topic === 'inspect' ? INSPECT : topic === 'verify' ? VERIFY : DOWNLOAD;
}
