/**
 * What every command runs with: its arguments, its output streams, and the
 * signal that says the user interrupted it.
 */
import { AbortedError } from '../errors.js';

/** Where the command reads its arguments and writes its output. */
export interface CliIo {
  /** The arguments after the program name. */
  readonly argv: readonly string[];
  /** Data (`--stdout`) and `--json` lines (unless streaming data). */
  readonly stdout: NodeJS.WriteStream;
  /** Progress, messages and errors. */
  readonly stderr: NodeJS.WriteStream;
  /**
   * Aborted when the user interrupts (SIGINT/SIGTERM); its `reason` is an
   * {@link Interrupted} naming the signal.
   */
  readonly signal: AbortSignal;
}

/** The abort reason `main.ts` uses for a signal, so the exit code can say which. */
export class Interrupted extends AbortedError {
  /** The signal that stopped the command. */
  readonly signalName: 'SIGINT' | 'SIGTERM';
  constructor(signalName: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signalName}`);
    this.signalName = signalName;
  }
}

/** The abort reason `main.ts` uses when stdout's reader went away (EPIPE): stop quietly. */
export class StdoutClosed extends AbortedError {
  constructor() {
    super('stdout was closed before the end of the file');
  }
}
