/**
 * Percent-encoding for URL paths built from names we do not choose (a Hub
 * file's path, an S3 key): one rule behind `quoteLikePython` (src/hf) and
 * the S3 key path (src/s3), which both need every character outside RFC
 * 3986's unreserved set encoded.
 */

/**
 * `text` with every character outside RFC 3986's unreserved set
 * (`A-Z a-z 0-9 - . _ ~`) percent-encoded as UTF-8, upper-case hex; `/`
 * kept as it is when `keepSlashes` is true. Stricter than
 * `encodeURIComponent`, which leaves `! ' ( ) *`: Python's
 * `urllib.parse.quote` and SigV4's canonical URI both encode them. Throws
 * a `URIError` on a lone surrogate, as `encodeURIComponent` does.
 *
 * @example
 * ```ts
 * percentEncode('a b/c(1).bin', { keepSlashes: true })  // 'a%20b/c%281%29.bin'
 * percentEncode('refs/pr/1', { keepSlashes: false })    // 'refs%2Fpr%2F1'
 * ```
 */
export function percentEncode(text: string, options: { readonly keepSlashes: boolean }): string {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  // `%2F` can only come from a `/`: a `%` in the text is encoded as `%25`.
  return options.keepSlashes ? encoded.replace(/%2F/g, '/') : encoded;
}
