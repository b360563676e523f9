/**
 * Counts the requests a test server is answering at once, and how many
 * distinct files they are for: the proof that a client keeps to its
 * connection limit (`-c`) and really runs several files at once (`-j`).
 * A request counts from when the server gets it until its response is
 * handed to the OS (`finish`) or its socket closes, whichever comes first:
 * `finish` comes before the client can see the end of the response, so a
 * client that starts its next request only then is never counted twice.
 */
import type { ServerResponse } from 'node:http';

export class RequestGauge {
  readonly #open = new Map<string, number>();
  #total = 0;
  /** The most requests open at once. */
  max = 0;
  /** The most distinct files with a request open at once. */
  maxFiles = 0;

  /** Counts `res` as a request for `file` until it ends. */
  track(file: string, res: ServerResponse): void {
    this.#total++;
    this.#open.set(file, (this.#open.get(file) ?? 0) + 1);
    this.max = Math.max(this.max, this.#total);
    this.maxFiles = Math.max(this.maxFiles, this.#open.size);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      this.#total--;
      const left = (this.#open.get(file) ?? 1) - 1;
      if (left === 0) this.#open.delete(file);
      else this.#open.set(file, left);
    };
    res.once('finish', end);
    res.once('close', end);
  }

  /** Starts counting again from zero (requests open now are still counted as they end). */
  reset(): void {
    this.max = this.#total;
    this.maxFiles = this.#open.size;
  }
}
