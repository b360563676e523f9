/**
 * Seeing the response headers the HTTP reader receives, without asking the
 * reader: an undici interceptor composed onto its dispatcher, and a watch
 * on its range connections (src/http/range-connections.ts).
 *
 * The command needs exactly one header the `Reader` contract does not carry:
 * `Content-Disposition`, for naming the file when `-o` is not given. Taking
 * it from the reader's own first request costs no extra request (a HEAD
 * would), and sees the same (final, after redirects) response.
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';

import { createDefaultDispatcher, shareRangeConnections, type DispatcherProtocolOptions, type DispatcherTlsOptions } from '../http/dispatcher.js';

/** A dispatcher that remembers the first successful response's headers. */
export interface HeaderCapturingDispatcher {
  /** Pass this to `HttpReader` as `dispatcher`; close it when done (it closes the agent under it). */
  readonly dispatcher: Dispatcher;
  /** The headers of the first 2xx response, lower-case names; `undefined` before one arrived. */
  firstSuccessHeaders(): IncomingHttpHeaders | undefined;
}

/**
 * The default dispatcher (an `Agent`, or a proxy agent when the proxy
 * variables are set) with an interceptor that records the first 2xx
 * response's headers. `tls` is how certificates are checked (`--cacert`, `-k`).
 */
export function createHeaderCapturingDispatcher(tls: DispatcherTlsOptions = {}, protocol: DispatcherProtocolOptions = {}): HeaderCapturingDispatcher {
  return captureResponseHeaders(createDefaultDispatcher(process.env, tls, protocol));
}

/**
 * `base` with an interceptor that records the first 2xx response's headers:
 * one per request whose headers are wanted (a set names each file from its
 * own first response), all sharing `base`'s connections. Closing the result
 * closes `base`.
 */
export function captureResponseHeaders(base: Dispatcher): HeaderCapturingDispatcher {
  let captured: IncomingHttpHeaders | undefined;
  const record = (statusCode: number, headers: IncomingHttpHeaders): void => {
    if (captured === undefined && statusCode >= 200 && statusCode < 300) captured = { ...headers };
  };
  // undici hands an interceptor a handler with the new (controller-based)
  // API (Dispatcher.compose wraps legacy ones), so forwarding those methods
  // is the whole contract.
  const dispatcher = base.compose(
    (dispatch) =>
      (options, handler): boolean =>
        dispatch(options, {
          onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
          onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
          onResponseStart: (controller, statusCode, headers, statusMessage) => {
            record(statusCode, headers);
            handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
          },
          onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
          onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
          onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
        }),
  );
  // The range connections stay, watched the same way: a response may come
  // through either path.
  shareRangeConnections(base, dispatcher, record);
  return { dispatcher, firstSuccessHeaders: () => captured };
}

/** The `Content-Disposition` value among `headers`, if one. */
export function contentDispositionOf(headers: IncomingHttpHeaders | undefined): string | undefined {
  const value = headers?.['content-disposition'];
  return Array.isArray(value) ? value[0] : value;
}
