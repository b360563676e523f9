/**
 * The public API is a promise: this test pins the package root's runtime
 * exports to a reviewed list (a new export must be added here on purpose),
 * keeps it small (issue 9: at most 40; 42 since issues 12 and 13 added
 * sets of files, mirrors and the Hub and S3 sources, each one entry point), and checks that every export carries
 * TSDoc with an `@example` (values) or at least a doc comment (types).
 */
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const INDEX = fileURLToPath(new URL('../src/index.ts', import.meta.url));

/** Every runtime export of the package root, reviewed. */
const RUNTIME_EXPORTS = [
  'AbortedError',
  'BLOCKFETCH_VERSION',
  'BlockfetchError',
  'ByteRanges',
  'ByteRangesTracker',
  'CacheLock',
  'CachingDownloader',
  'DigestMismatchError',
  'ERROR_CODES',
  'FileReader',
  'HttpReader',
  'HttpStatusError',
  'IndexError',
  'InvalidArgumentError',
  'LocalDownloadCache',
  'LockHeldError',
  'NotEnoughSpaceError',
  'RateLimiter',
  'RemoteChangedError',
  'RetriesExhaustedError',
  'StreamingDownloader',
  'backoffDelay',
  'defaultCachingDownloaderOptions',
  'defaultDownloadFileOptions',
  'defaultFileReaderOptions',
  'defaultHttpReaderOptions',
  'defaultLocalDownloadCacheOptions',
  'defaultRetryOptions',
  'defaultStreamingOptions',
  'downloadFile',
  'downloadPaths',
  'hasCode',
  'redactUrl',
  'downloadFiles',
  'defaultDownloadFilesOptions',
  'ConnectionBudget',
  'MirrorReader',
  'defaultMirrorReaderOptions',
  'readerForUrls',
  'planHfDownload',
  'S3Reader',
  'resolveS3Config',
].sort();

function exportedSymbols(): { name: string; symbol: ts.Symbol; checker: ts.TypeChecker }[] {
  const program = ts.createProgram([INDEX], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(INDEX);
  if (source === undefined) throw new Error(`cannot read ${INDEX}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) throw new Error(`${INDEX} is not a module`);
  return checker.getExportsOfModule(moduleSymbol).map((symbol) => ({ name: symbol.getName(), symbol, checker }));
}

function resolved(symbol: ts.Symbol, checker: ts.TypeChecker): ts.Symbol {
  return symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
}

describe('the public API (src/index.ts)', () => {
  it('exports exactly the reviewed runtime names, at most 42', () => {
    const names = Object.keys(api).sort();
    expect(names).toEqual(RUNTIME_EXPORTS);
    expect(names.length).toBeLessThanOrEqual(42);
  });

  it('documents every runtime export with an @example, and every type export with a doc comment', () => {
    const missing: string[] = [];
    for (const { name, symbol, checker } of exportedSymbols()) {
      const target = resolved(symbol, checker);
      const isValue = (target.flags & ts.SymbolFlags.Value) !== 0;
      const docs = ts.displayPartsToString(target.getDocumentationComment(checker)).trim();
      const hasExample = target.getJsDocTags(checker).some((tag) => tag.name === 'example');
      if (isValue && !hasExample) missing.push(`${name}: no @example`);
      if (!isValue && docs === '') missing.push(`${name}: no doc comment`);
    }
    expect(missing).toEqual([]);
  });
});
