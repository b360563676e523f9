/**
 * `blockfetch hf://OWNER/NAME[@REVISION][/PATH]`: the command's side of a
 * Hugging Face download. It reads the settings (HF_ENDPOINT, HF_TOKEN…),
 * asks `src/hf/` for the plan, and runs the files as a set (`set-run.ts`):
 * the set's progress view, summary, `--json` lines and exit code. A failure
 * before any download is reported as every other one: one `blockfetch:`
 * line and a hint.
 */
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { isFinishedDownload } from '../download-files.js';
import { BlockfetchError } from '../errors.js';
import { finishHfCache, planHfDownload, prepareHfTargets, type HfDownloadEntry, type HfPlan } from '../hf/hf-download.js';
import { hubSettingsFromEnvironment } from '../hf/hub-settings.js';
import type { DownloadCommand } from './args.js';
import { retryOptionsOf, tlsOptions } from './download-command.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import { Interrupted, type CliIo } from './io.js';
import { describeFailure, formatFailure, writeJsonError } from './report.js';
import { resumeCommand } from './resume-command.js';
import { createSetView } from './set-progress.js';
import { runSet, type SetSlot } from './set-run.js';
import { formatBytes } from './units.js';

/**
 * Downloads a `hf://` URL as the command line asks, and returns the exit
 * code: the repository's files are a set (see `set-run.ts`): `-c`
 * connections across all of them, `-j` files at once, the set's view,
 * summary and `--json` lines, and the most severe failure's exit code.
 *
 * @example
 * ```ts
 * const code = await runHfDownload(parseCommandLine(['hf://org/model', '-d', 'models/m']) as DownloadCommand, io);
 * ```
 */
export async function runHfDownload(command: DownloadCommand, io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<ExitCodeValue> {
  const started = performance.now();
  const view = createSetView(command.outputMode, io.stdout, io.stderr);
  let dispatcher: ReturnType<typeof createDefaultDispatcher> | undefined;
  try {
    const settings = await hubSettingsFromEnvironment(env);
    dispatcher = createDefaultDispatcher(env, await tlsOptions(command), { http2: command.http2 });
    const plan = await planHfDownload(command.url, {
      settings,
      dispatcher,
      // `-d DIR` arrives as `DIR/` (see outputIn in args.ts).
      ...(command.output === undefined ? {} : { dir: command.output }),
      hfCache: command.hfCache,
      include: command.include,
      exclude: command.exclude,
      ...(command.blockSize === undefined ? {} : { blockSize: command.blockSize }),
      timeoutMs: command.timeoutMs,
      retry: retryOptionsOf(command),
      overwrite: command.force,
      restart: command.restart,
      signal: io.signal,
      onRetry: (r) => view.note(`${r.error.message}; retrying in ${(r.delayMs / 1000).toFixed(1)} s`),
    });
    view.note(describePlan(plan));
    const { complete } = await prepareHfTargets(plan, io.signal);
    const slots = await hfSlots(plan, complete, command.force);
    return await runSet(slots, {
      command,
      view,
      io,
      started,
      resume: resumeCommand(io.argv, command, undefined),
      afterDownloads: async () => {
        const snapshot = await finishHfCache(plan);
        return `${plan.files.length} file(s) of ${plan.location.repoId} at commit ${plan.commit} in ${snapshot ?? plan.root}`;
      },
    });
  } catch (err) {
    // Before any download (settings, the API, the disk) or a bug: nothing of a file to resume.
    if (io.signal.aborted) {
      const reason = io.signal.reason instanceof Interrupted ? io.signal.reason : undefined;
      if (command.outputMode !== 'json') io.stderr.write('blockfetch: interrupted; run the same command again to resume\n');
      return reason?.signalName === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
    }
    if (command.outputMode === 'json') writeJsonError(io.stdout, err);
    io.stderr.write(formatFailure(err, command.debug));
    return describeFailure(err).exitCode;
  } finally {
    await dispatcher?.close().catch(() => undefined);
  }
}

/**
 * The plan's files in its order: complete ones skipped; any other (every
 * plan entry is either complete or pending, see prepareHfTargets) file
 * whose target is a finished file that is not the repository's (size or
 * digest differ) refused unless `--force`, as `downloadFiles` would skip it;
 * the rest downloaded.
 */
async function hfSlots(plan: HfPlan, complete: readonly HfDownloadEntry[], force: boolean): Promise<SetSlot[]> {
  const done = new Set(complete);
  const slots: SetSlot[] = [];
  for (const entry of plan.entries) {
    if (done.has(entry)) {
      slots.push({ settled: { file: entry.key, outcome: 'skipped' } });
    } else if (!force && (await isFinishedDownload(entry.target))) {
      const error = new BlockfetchError('BLOCKFETCH_TARGET_EXISTS', `${entry.target} already exists and is not ${entry.key} at commit ${plan.commit} (its size or digest differs)`, {
        hint: 'add -f/--force to replace it, or download into another folder (-d DIR)',
      });
      slots.push({ settled: { file: entry.key, outcome: 'failed', report: describeFailure(error) } });
    } else {
      slots.push({ entry: { source: entry.source, target: entry.target, key: entry.key, options: entry.options }, url: entry.source });
    }
  }
  return slots;
}

function describePlan(plan: HfPlan): string {
  const bytes = plan.files.reduce((sum, f) => sum + f.size, 0);
  const where = plan.layout === 'hf-cache' ? `the Hugging Face cache (${plan.root})` : plan.root;
  return `${plan.location.repoType} ${plan.location.repoId}@${plan.revision} is commit ${plan.commit}: ${plan.files.length} file(s), ${formatBytes(bytes)}, into ${where}`;
}
