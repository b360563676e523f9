/**
 * The `--json` writer: every line one JSON object that starts with the
 * schema version and the time, so that a program can check what it reads
 * against `docs/cli-json.schema.json` and order lines from several runs.
 */

/**
 * The version of the `--json` line format (`docs/cli-json.schema.json`).
 * Raised when a field changes meaning or goes away; new fields and new
 * line types do not raise it.
 */
export const JSON_SCHEMA_VERSION = 1;

/** How a download ended, on its last `--json` line (`done`, `error` or `interrupted`). */
export type JsonOutcome = 'complete' | 'failed' | 'interrupted';

/**
 * One `--json` line for `object`: `{"schemaVersion":1,"time":"…Z",…object}`
 * and a newline. `now` is for tests.
 *
 * @example
 * ```ts
 * process.stdout.write(jsonLine({ type: 'note', message: 'resuming' }));
 * // {"schemaVersion":1,"time":"2026-12-01T23:55:00.000Z","type":"note","message":"resuming"}
 * ```
 */
export function jsonLine(object: Readonly<Record<string, unknown>>, now: Date = new Date()): string {
  return `${JSON.stringify({ schemaVersion: JSON_SCHEMA_VERSION, time: now.toISOString(), ...object })}\n`;
}
