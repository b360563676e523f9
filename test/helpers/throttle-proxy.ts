/**
 * A TCP proxy on 127.0.0.1 that passes requests to an upstream server as
 * they are and sends the answers back at most `bytesPerSecond` (over all its
 * connections together, as a mirror with that much capacity would), counting
 * the bytes it sends back. For tests of slow mirrors: no timing is asserted,
 * only who delivered how many bytes.
 *
 * @example
 * ```ts
 * const slow = await startThrottleProxy({ upstreamPort: 8080, bytesPerSecond: 1_000_000 });
 * // request `http://127.0.0.1:${slow.port}/file`
 * await slow.close();
 * ```
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A running proxy. */
export interface ThrottleProxy {
  readonly port: number;
  /** Bytes sent back to clients so far (headers included). */
  readonly bytesDown: () => number;
  /** Stops accepting and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a proxy to `127.0.0.1:upstreamPort`. Always `close()` it. */
export async function startThrottleProxy(options: { readonly upstreamPort: number; readonly bytesPerSecond: number }): Promise<ThrottleProxy> {
  const sockets = new Set<net.Socket>();
  let down = 0;
  /** When the shared link is free again (performance.now() ms): chunks queue behind each other. */
  let freeAt = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(options.upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      const now = performance.now();
      freeAt = Math.max(freeAt, now) + (chunk.length * 1000) / options.bytesPerSecond;
      setTimeout(() => {
        if (client.destroyed) return;
        down += chunk.length;
        client.write(chunk, () => upstream.resume());
      }, freeAt - now);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    bytesDown: () => down,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
