/**
 * A way round undici 7's `assert(!this.paused)` crash (nodejs/undici#5360,
 * fixed upstream in undici 8, which needs Node >= 22.19; we stay on Node 20
 * and undici 7).
 *
 * The crash: when a response body is read slower than it arrives (`--rate`,
 * a slow disk), undici pauses its HTTP/1 parser. If the server then closes
 * the connection (`Connection: close`, HTTP/1.0, nginx with
 * `keepalive_timeout 0`, or a cut part way through a body) while the parser
 * is paused with nothing left in the socket, the socket's `end` handler
 * calls `parser.finish()`, which asserts that the parser is not paused: an
 * AssertionError thrown from an event handler, which no caller can catch,
 * and the process dies.
 *
 * The way round: for every socket undici connects (it announces each on the
 * `undici:client:connected` diagnostics channel, whichever dispatcher made
 * it, a caller's own included), an `end` listener that runs before undici's
 * resumes a paused parser first, as undici itself does when the body is read
 * again. The parser then runs over what it holds (a complete body reaches
 * its end, a cut one stays short) and undici's handler finishes it without
 * the assert: a complete body is delivered, a cut one fails as a short body
 * (retried). The bytes the body stream already holds stay there for the
 * reader, so backpressure, and with it `--rate`, works as before.
 *
 * It reads two things undici does not document: the socket's parser under
 * the symbol described `parser`, and that parser's `paused` flag and
 * `resume()` method. When they are not there (another undici version), the
 * guard does nothing, which is exactly the behaviour without it.
 *
 * @module
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

/** The parts of undici's HTTP/1 parser the guard touches. */
interface PausableParser {
  readonly paused: boolean;
  resume(): void;
}

let installed = false;

/**
 * Installs the guard, once per process (later calls do nothing). Called by
 * {@link createDefaultDispatcher} and by every `HttpReader`'s options, so a
 * download never runs without it.
 *
 * @example
 * ```ts
 * guardPausedParserAtSocketEnd();
 * const { body } = await request(url, { headers: { range: 'bytes=0-' } }); // read it as slowly as you like
 * ```
 */
export function guardPausedParserAtSocketEnd(): void {
  if (installed) return;
  installed = true;
  subscribe('undici:client:connected', (message) => {
    const socket = (message as { socket?: unknown } | null)?.socket;
    if (isSocket(socket)) socket.prependListener('end', () => resumeIfPaused(socket));
  });
}

/** Resumes the socket's undici parser when it is paused; never throws. */
function resumeIfPaused(socket: Socket): void {
  const parser = parserOf(socket);
  if (parser === undefined || !parser.paused) return;
  try {
    parser.resume();
  } catch {
    // Left as it was: undici's own handler decides, as without the guard.
  }
}

function parserOf(socket: Socket): PausableParser | undefined {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'parser');
  if (symbol === undefined) return undefined;
  const parser = (socket as unknown as Record<symbol, unknown>)[symbol];
  if (parser === null || typeof parser !== 'object') return undefined;
  const candidate = parser as { paused?: unknown; resume?: unknown };
  return typeof candidate.paused === 'boolean' && typeof candidate.resume === 'function' ? (parser as PausableParser) : undefined;
}

function isSocket(value: unknown): value is Socket {
  return value !== null && typeof value === 'object' && typeof (value as Socket).prependListener === 'function';
}
