/**
 * hf:// URLs parse as huggingface_hub's parse_hf_uri parses them (the cases
 * below are its documented examples and rules), and Hub URL pieces are
 * quoted as Python's urllib.parse.quote quotes them.
 */
import { describe, expect, it } from 'vitest';
import { parseHfUrl, quoteLikePython } from '../src/hf/hf-url.js';
import { blobName, hfCachePaths, repoFolderName } from '../src/hf/hf-cache.js';
import { parseCommandLine, type DownloadCommand } from '../src/cli/args.js';

describe('parseHfUrl', () => {
  it.each([
    ['hf://my-org/my-model', { repoType: 'model', repoId: 'my-org/my-model', name: 'my-model', revision: undefined, path: '' }],
    ['hf://models/my-org/my-model', { repoType: 'model', repoId: 'my-org/my-model', revision: undefined, path: '' }],
    ['hf://datasets/my-org/my-dataset@refs/pr/3/train.json', { repoType: 'dataset', repoId: 'my-org/my-dataset', revision: 'refs/pr/3', path: 'train.json' }],
    ['hf://datasets/org/data@refs%2Fpr%2F1/train/a.parquet', { repoType: 'dataset', revision: 'refs/pr/1', path: 'train/a.parquet' }],
    ['hf://org/model@refs/convert/parquet-v2', { revision: 'refs/convert/parquet-v2', path: '' }],
    ['hf://org/model@feature%2Fx/sub/file.bin', { revision: 'feature/x', path: 'sub/file.bin' }],
    ['hf://org/model@v1.0', { revision: 'v1.0', path: '' }],
    ['hf://org/model/dir/file@1.txt', { revision: undefined, path: 'dir/file@1.txt' }],
    ['hf://spaces/org/app/app.py', { repoType: 'space', repoId: 'org/app', path: 'app.py' }],
    ['hf://org/model/', { repoId: 'org/model', path: '' }],
  ])('%s', (url, expected) => {
    expect(parseHfUrl(url)).toMatchObject(expected);
  });

  it.each([
    ['hf://', /OWNER\/NAME is missing/],
    ['hf://gpt2', /must be OWNER\/NAME/],
    ['hf://dataset/org/data', /must be plural: datasets\//],
    ['hf://buckets/org/b', /buckets are not supported/],
    ['hf://org/model@', /revision after @ is empty/],
    ['hf://org/bad--name', /not a valid owner or repository name/],
    ['hf://org/-bad', /not a valid owner or repository name/],
    ['hf://org/model//x', /empty segments/],
    ['hf://org/model@%zz', /not valid URL encoding/],
  ])('refuses %s', (url, message) => {
    expect(() => parseHfUrl(url)).toThrow(message);
  });
});

describe('Hub URL pieces and cache names', () => {
  it('quotes as urllib.parse.quote', () => {
    expect(quoteLikePython('refs/pr/1', '')).toBe('refs%2Fpr%2F1');
    expect(quoteLikePython("a b/c(1)!'*.bin")).toBe('a%20b/c%281%29%21%27%2A.bin');
    expect(quoteLikePython('naïve~_.-')).toBe('na%C3%AFve~_.-');
  });

  it('names the cache folders and blobs as huggingface_hub does', () => {
    expect(repoFolderName({ repoType: 'model', repoId: 'julien-c/EsperBERTo-small' })).toBe('models--julien-c--EsperBERTo-small');
    expect(repoFolderName({ repoType: 'dataset', repoId: 'org/data' })).toBe('datasets--org--data');
    const lfs = { type: 'file', path: 'a/model.bin', oid: '1'.repeat(40), size: 9, lfs: { oid: 'f'.repeat(64), size: 9 } } as const;
    const small = { type: 'file', path: 'config.json', oid: 'd'.repeat(40), size: 2 } as const;
    expect(blobName(lfs)).toBe('f'.repeat(64));
    expect(blobName(small)).toBe('d'.repeat(40));
    const paths = hfCachePaths('/c/hub', { repoType: 'space', repoId: 'o/n' });
    expect(paths.pointer('c'.repeat(40), lfs)).toBe(`/c/hub/spaces--o--n/snapshots/${'c'.repeat(40)}/a/model.bin`);
    expect(paths.ref('refs/pr/1')).toBe('/c/hub/spaces--o--n/refs/refs/pr/1');
  });
});

describe('the command line', () => {
  it('takes hf:// with -d, --include, --exclude and --hf-cache', () => {
    const command = parseCommandLine(['hf://org/model', '-d', 'out', '--include', '*.json', '--include', 'onnx/*', '--exclude', '*.md']) as DownloadCommand;
    expect(command).toMatchObject({ kind: 'download', url: 'hf://org/model', output: 'out/', include: ['*.json', 'onnx/*'], exclude: ['*.md'], hfCache: false });
    expect(parseCommandLine(['hf://org/model', '--hf-cache'])).toMatchObject({ hfCache: true });
  });

  it.each([
    [['https://example.com/f', '--include', '*.json'], /--include applies to hf:\/\/ URLs only/],
    [['https://example.com/f', '--hf-cache'], /--hf-cache applies to hf:\/\/ URLs only/],
    [['hf://org/model', '-o', 'x'], /--output cannot be used with a hf:\/\/ URL/],
    [['hf://org/model', '--sha256', 'ab'.repeat(32)], /--sha256 cannot be used/],
    [['hf://org/model', '-H', 'Authorization: Bearer x'], /--header cannot be used/],
    [['hf://org/model', '--hf-cache', '-d', 'x'], /two destinations/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseCommandLine(argv)).toThrow(message);
  });
});
