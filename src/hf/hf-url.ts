/**
 * The `hf://` URL of a Hugging Face repository, a folder in it or one file,
 * parsed as huggingface_hub parses it (`parse_hf_uri` in
 * `huggingface_hub/utils/_hf_uris.py`, which `HfFileSystem` uses):
 *
 * ```
 * hf://[<TYPE>/]<OWNER>/<NAME>[@<REVISION>][/<PATH>]
 * ```
 *
 * - TYPE is `models` (the default), `datasets` or `spaces`; a singular
 *   (`dataset/`) is refused with the plural spelled out.
 * - `@` separates the revision only right after `OWNER/NAME`; an `@` later
 *   (`file@1.txt`) belongs to the path.
 * - The revision ends at the next `/`, except the special refs
 *   `refs/pr/<N>` and `refs/convert/<name>`, matched whole; any other
 *   revision with a `/` is written URL-encoded (`@feature%2Fx`) and decoded.
 * - The path must not contain empty segments.
 *
 * Nothing here touches the network.
 */
import { InvalidArgumentError } from '../errors.js';
import { percentEncode } from '../percent-encode.js';

/** The kinds of repository the Hub serves. */
export type HubRepoType = 'model' | 'dataset' | 'space';

/** A parsed `hf://` URL. */
export interface HfLocation {
  /** The repository's kind. */
  readonly repoType: HubRepoType;
  /** `OWNER/NAME`. */
  readonly repoId: string;
  /** `NAME`: the default download folder. */
  readonly name: string;
  /** The revision after `@` (URL-decoded), or undefined for the default branch. */
  readonly revision: string | undefined;
  /** The path inside the repository (a file or a folder), `''` for all of it. */
  readonly path: string;
}

/** The scheme of a Hub URL. */
export const HF_URL_PREFIX = 'hf://';

/** The Hub's plural URL prefixes and the kind each names (`HF_URI_TYPE_PREFIXES`, without kernels and buckets). */
const TYPE_PREFIXES: Readonly<Record<string, HubRepoType>> = Object.freeze({ models: 'model', datasets: 'dataset', spaces: 'space' });

/** huggingface_hub's `_SPECIAL_REFS_REVISION_REGEX`: revisions with a `/` that are matched whole. */
const SPECIAL_REF = /^refs\/(?:convert\/[\w.-]+|pr\/\d+)/;

/**
 * huggingface_hub's `REPO_ID_REGEX` for one segment: letters, digits, `-`,
 * `_`, `.`, at most 96, starting and ending with a word character; plus its
 * rules against `--` and `..` and a trailing `.git`.
 */
const REPO_SEGMENT = /^(?=[\w])[\w.-]{1,96}(?<=[\w])$/;

/**
 * True when `text` is meant as a Hub URL (starts with `hf://`).
 *
 * @example
 * ```ts
 * isHfUrl('hf://openai/whisper-tiny') // true
 * isHfUrl('https://huggingface.co/openai/whisper-tiny') // false
 * ```
 */
export function isHfUrl(text: string): boolean {
  return text.startsWith(HF_URL_PREFIX);
}

/**
 * Parses a `hf://` URL. Throws an {@link InvalidArgumentError} that says
 * what is wrong and shows the expected form.
 *
 * @example
 * ```ts
 * parseHfUrl('hf://datasets/org/data@refs/pr/3/train/part-0.parquet')
 * // { repoType: 'dataset', repoId: 'org/data', name: 'data', revision: 'refs/pr/3', path: 'train/part-0.parquet' }
 * parseHfUrl('hf://org/model@feature%2Fx') // revision 'feature/x', path ''
 * ```
 */
export function parseHfUrl(text: string): HfLocation {
  const fail = (what: string): never => {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a Hugging Face URL: ${what}`, {
      hint: 'write hf://OWNER/NAME[@REVISION][/PATH], hf://datasets/OWNER/NAME… or hf://spaces/OWNER/NAME…',
    });
  };
  if (!isHfUrl(text)) fail(`it does not start with ${HF_URL_PREFIX}`);
  let location = text.slice(HF_URL_PREFIX.length);
  let repoType: HubRepoType = 'model';
  const slash = location.indexOf('/');
  const first = slash === -1 ? location : location.slice(0, slash);
  if (Object.hasOwn(TYPE_PREFIXES, first)) {
    repoType = TYPE_PREFIXES[first] as HubRepoType;
    location = slash === -1 ? '' : location.slice(slash + 1);
  } else if (first === 'model' || first === 'dataset' || first === 'space') {
    fail(`the type must be plural: ${first}s/`);
  } else if (first === 'kernels' || first === 'buckets') {
    fail(`${first} are not supported, only models, datasets and spaces`);
  }
  location = location.replace(/^\/+|\/+$/g, '');
  if (location === '') fail('the repository OWNER/NAME is missing');

  let repoId: string;
  let revision: string | undefined;
  let path: string;
  const at = location.indexOf('@');
  if (at === -1 || location.slice(0, at).split('/').length > 2) {
    const parts = location.split('/');
    if (parts.length < 2) fail(`the repository must be OWNER/NAME, got ${JSON.stringify(location)}`);
    repoId = `${parts[0]}/${parts[1]}`;
    path = parts.slice(2).join('/');
  } else {
    repoId = location.slice(0, at);
    if (repoId.split('/').length !== 2) fail(`the repository must be OWNER/NAME, got ${JSON.stringify(repoId)}`);
    const rest = location.slice(at + 1);
    const special = SPECIAL_REF.exec(rest);
    let raw: string;
    if (special !== null) {
      raw = special[0];
      path = rest.slice(raw.length).replace(/^\//, '');
    } else {
      const cut = rest.indexOf('/');
      raw = cut === -1 ? rest : rest.slice(0, cut);
      path = cut === -1 ? '' : rest.slice(cut + 1);
    }
    try {
      revision = decodeURIComponent(raw);
    } catch {
      fail(`the revision ${JSON.stringify(raw)} is not valid URL encoding`);
    }
    if (revision === '') fail('the revision after @ is empty');
  }
  for (const segment of repoId.split('/')) {
    if (!REPO_SEGMENT.test(segment) || segment.includes('--') || segment.includes('..') || segment.endsWith('.git')) {
      fail(
        `${JSON.stringify(segment)} is not a valid owner or repository name (letters, digits, '-', '_' and '.', at most 96, not starting or ending with '-' or '.', no '--' or '..')`,
      );
    }
  }
  if (path.startsWith('/') || path.includes('//')) fail(`the path must not contain empty segments, got ${JSON.stringify(path)}`);
  return Object.freeze({ repoType, repoId, name: repoId.split('/')[1] as string, revision, path });
}

/**
 * Python's `urllib.parse.quote` (what huggingface_hub puts in Hub URLs):
 * every byte outside `A-Z a-z 0-9 _ . - ~` and `safe` percent-encoded.
 * `encodeURIComponent` also leaves `! ' ( ) *`, which `quote` encodes.
 * The rule is {@link percentEncode}'s (an S3 key is encoded alike); of
 * `safe`, only a `/` is honoured.
 *
 * @example
 * ```ts
 * quoteLikePython('refs/pr/1', '')  // 'refs%2Fpr%2F1'
 * quoteLikePython('a b/c(1).bin')   // 'a%20b/c%281%29.bin'
 * ```
 */
export function quoteLikePython(text: string, safe = '/'): string {
  return percentEncode(text, { keepSlashes: safe.includes('/') });
}
