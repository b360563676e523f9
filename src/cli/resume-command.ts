/**
 * The command that resumes an interrupted download, printed for the person
 * to copy: the same arguments, with secrets replaced.
 */
import { redactUrl } from '../errors.js';
import type { DownloadCommand } from './args.js';

/**
 * The download command's short options that take a value (`-o FILE`,
 * `-c N`, `-H HEADER`), as `parseArgs` reads them: in a group (`-qfH V`,
 * `-qHName:v`) the first of them takes the rest of the word, or the next word.
 */
const SHORT_OPTIONS_WITH_VALUE: ReadonlySet<string> = new Set(['o', 'c', 'H']);

/**
 * The command that resumes this download, for the person to copy: the
 * original arguments, plus `-o TARGET` when the name came from the server,
 * with the URL's credentials and secret query values redacted
 * ({@link redactUrl}) and EVERY header value replaced: `-H 'Name: REDACTED'`
 * whatever the header and however it was written (`-H V`, `-HV`, `-qH V`,
 * `--header V`, `--header=V`). A name-based list of secret headers always
 * misses one; the person who typed the header knows its value.
 *
 * @example
 * ```ts
 * resumeCommand(['https://h/f', '-HCookie:s=1'], parseCommandLine(['https://h/f', '-HCookie:s=1']) as DownloadCommand, 'f')
 * // "blockfetch https://h/f -H 'Cookie: REDACTED' -o f"
 * ```
 */
export function resumeCommand(argv: readonly string[], command: DownloadCommand, target: string | undefined): string {
  const words: string[] = [];
  let optionsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === command.url) {
      words.push(redactUrl(arg));
    } else if (optionsEnded) {
      words.push(arg);
    } else if (arg === '--') {
      optionsEnded = true;
      words.push(arg);
    } else if (arg === '--header') {
      if (i + 1 < argv.length) words.push('-H', redactHeader(argv[++i] as string));
    } else if (arg.startsWith('--header=')) {
      words.push('-H', redactHeader(arg.slice('--header='.length)));
    } else if (arg.startsWith('--')) {
      words.push(arg);
    } else if (arg.startsWith('-') && arg.length > 1) {
      i = pushShortGroup(arg, argv, i, words);
    } else {
      words.push(arg);
    }
  }
  if (command.output === undefined && !command.toStdout && target !== undefined) words.push('-o', target);
  return ['blockfetch', ...words].map(shellQuote).join(' ');
}

/** Copies one short-option word (`-q`, `-c4`, `-qfH`, `-HName:v`); returns the index of the last argv word used. */
function pushShortGroup(arg: string, argv: readonly string[], i: number, words: string[]): number {
  const flags: string[] = [];
  for (let at = 1; at < arg.length; at++) {
    const letter = arg[at] as string;
    if (!SHORT_OPTIONS_WITH_VALUE.has(letter)) {
      flags.push(letter);
      continue;
    }
    if (flags.length > 0) words.push(`-${flags.join('')}`);
    const inline = arg.slice(at + 1);
    const hasNext = inline === '' && i + 1 < argv.length;
    const value = inline !== '' ? inline : hasNext ? (argv[i + 1] as string) : undefined;
    if (letter === 'H') {
      if (value !== undefined) words.push('-H', redactHeader(value));
    } else {
      words.push(inline !== '' ? `-${letter}${inline}` : `-${letter}`);
      if (hasNext) words.push(value as string);
    }
    return hasNext ? i + 1 : i;
  }
  words.push(arg);
  return i;
}

/** `Name: REDACTED` for any header the user gave. */
function redactHeader(header: string): string {
  const colon = header.indexOf(':');
  return colon < 0 ? 'REDACTED' : `${header.slice(0, colon).trim()}: REDACTED`;
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
