/**
 * Option validation: one helper per kind of value, and one message format.
 *
 * Every message names who owns the option, the option, the value (with its
 * type) and what is allowed, e.g.
 * `CachingDownloader option concurrency must be a whole number from 1 to 1024, got 0 (number)`.
 * Every entry point checks its options through these, so the wording is
 * written once and a caller always learns which knob to turn.
 *
 * @module
 */
import { InvalidArgumentError } from './errors.js';

/** What a value was, for a message: strings quoted, then its type. */
export function describeValue(value: unknown): string {
  return `${typeof value === 'string' ? JSON.stringify(value) : String(value)} (${typeof value})`;
}

/** The limits of {@link wholeNumber}. */
export interface WholeNumberLimits {
  /** The smallest value allowed. @default 0 */
  readonly min?: number;
  /** The largest value allowed. @default Number.MAX_SAFE_INTEGER */
  readonly max?: number;
  /** The unit, named in the message (`'bytes'`, `'ms'`). @default none */
  readonly unit?: string;
}

/**
 * Returns `value` when it is a safe integer within the limits; else throws an
 * {@link InvalidArgumentError} naming `owner`, `name`, the value and the range.
 *
 * @example
 * ```ts
 * wholeNumber('downloadFile', 'concurrency', 0, { min: 1 });
 * // throws: downloadFile option concurrency must be a whole number >= 1, got 0 (number)
 * ```
 */
export function wholeNumber(owner: string, name: string, value: unknown, limits: WholeNumberLimits = {}): number {
  const min = limits.min ?? 0;
  const max = limits.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const unit = limits.unit === undefined ? '' : ` of ${limits.unit}`;
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(`${prefix(owner)}${name} must be a whole number${unit} ${range}, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a boolean; else throws naming the option.
 *
 * @example
 * ```ts
 * booleanOption('CachingDownloader', 'computeDigest', 'yes');
 * // throws: CachingDownloader option computeDigest must be true or false, got "yes" (string)
 * ```
 */
export function booleanOption(owner: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new InvalidArgumentError(`${prefix(owner)}${name} must be true or false, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a finite number from `min` to `max`; else throws naming the option.
 *
 * @example
 * ```ts
 * numberInRange('retry', 'jitter', 2, 0, 1);
 * // throws: retry option jitter must be a number from 0 to 1, got 2 (number)
 * ```
 */
export function numberInRange(owner: string, name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${prefix(owner)}${name} must be a number from ${min} to ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is one of `allowed`; else throws naming the option and the choices.
 *
 * @example
 * ```ts
 * oneOf('CacheLock', 'mode', 'block', ['fail', 'wait'] as const);
 * // throws: CacheLock option mode must be one of "fail", "wait", got "block" (string)
 * ```
 */
export function oneOf<T extends string>(owner: string, name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    const choices = allowed.map((a) => JSON.stringify(a)).join(', ');
    throw new InvalidArgumentError(`${prefix(owner)}${name} must be one of ${choices}, got ${describeValue(value)}`);
  }
  return value as T;
}

/**
 * `options` without its `undefined` fields, so that `{ ...defaults, ...defined(options) }`
 * keeps a default where the caller passed `{ key: undefined }`.
 *
 * @example
 * ```ts
 * ({ ...{ a: 1 }, ...definedFields({ a: undefined }) }) // { a: 1 }
 * ```
 */
export function definedFields<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function prefix(owner: string): string {
  return owner === '' ? '' : `${owner} option `;
}
