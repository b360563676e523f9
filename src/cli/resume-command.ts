/**
 * The command that resumes an interrupted download, printed for the person
 * to copy: the same arguments, with secrets replaced.
 */
import { redactUrl } from '../errors.js';
import type { DownloadCommand } from './args.js';

/** Header names whose values are secrets: never printed back. */
const SECRET_HEADER = /auth|cookie|token|key|secret|session|password/i;

/**
 * The command that resumes this download, for the person to copy: the
 * original arguments, plus `-o TARGET` when the name came from the server,
 * with credentials in the URL and secret header values replaced.
 */
export function resumeCommand(argv: readonly string[], command: DownloadCommand, target: string | undefined): string {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === command.url) {
      words.push(redactUrl(arg));
    } else if ((arg === '-H' || arg === '--header') && i + 1 < argv.length) {
      words.push(arg, redactHeader(argv[++i] as string));
    } else if (arg.startsWith('--header=')) {
      words.push(`--header=${redactHeader(arg.slice('--header='.length))}`);
    } else {
      words.push(arg);
    }
  }
  if (command.output === undefined && !command.toStdout && target !== undefined) words.push('-o', target);
  return ['blockfetch', ...words].map(shellQuote).join(' ');
}

function redactHeader(header: string): string {
  const colon = header.indexOf(':');
  if (colon < 0) return header;
  const name = header.slice(0, colon);
  return SECRET_HEADER.test(name) ? `${name}: REDACTED` : header;
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
