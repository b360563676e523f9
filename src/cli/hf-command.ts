/**
 * `blockfetch hf://OWNER/NAME[@REVISION][/PATH]`: the command's side of a
 * Hugging Face download. It reads the settings (HF_ENDPOINT, HF_TOKEN…),
 * asks `src/hf/` for the plan, runs the files, and prints one line per
 * file and a summary (stderr; nothing with --quiet). Failures are reported
 * as every other failure: one `blockfetch:` line and a hint.
 */
import { createDefaultDispatcher } from '../http/dispatcher.js';
import { downloadEntriesOneByOne, finishHfCache, planHfDownload, prepareHfTargets, type HfPlan } from '../hf/hf-download.js';
import { hubSettingsFromEnvironment } from '../hf/hub-settings.js';
import type { DownloadCommand } from './args.js';
import { tlsOptions } from './download-command.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import type { CliIo } from './io.js';
import { Interrupted } from './io.js';
import { describeFailure, formatFailure } from './report.js';
import { formatBytes } from './units.js';

/**
 * Downloads a `hf://` URL as the command line asks, and returns the exit
 * code: 0 when every file is complete, else the first failure's.
 *
 * @example
 * ```ts
 * const code = await runHfDownload(parseCommandLine(['hf://org/model', '-d', 'models/m']) as DownloadCommand, io);
 * ```
 */
export async function runHfDownload(command: DownloadCommand, io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<ExitCodeValue> {
  const say = (line: string): void => {
    if (command.outputMode !== 'quiet') io.stderr.write(`${line}\n`);
  };
  let dispatcher: ReturnType<typeof createDefaultDispatcher> | undefined;
  try {
    const settings = await hubSettingsFromEnvironment(env);
    dispatcher = createDefaultDispatcher(env, await tlsOptions(command));
    const retry = { attemptsPerBlock: command.retries + 1, lowestSpeedBytesPerSecond: command.speedLimitBytesPerSecond, lowestSpeedTimeMs: command.speedTimeMs };
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
      retry,
      overwrite: command.force,
      restart: command.restart,
      signal: io.signal,
      onRetry: (r) => say(`blockfetch: ${r.error.message}; retrying in ${(r.delayMs / 1000).toFixed(1)} s`),
    });
    say(describePlan(plan));
    const { pending, complete } = await prepareHfTargets(plan, io.signal);
    for (const entry of complete) say(`  ${entry.key}: already complete`);
    const outcomes = await downloadEntriesOneByOne(pending, {
      concurrency: command.concurrency,
      ...(command.requestSize === undefined ? {} : { maxRequestBytes: command.requestSize }),
      ...(command.rateBytesPerSecond === undefined ? {} : { bytesPerSecond: command.rateBytesPerSecond }),
      retry,
      signal: io.signal,
      onEvent: (key, event) => {
        if (event.type === 'open') {
          say(`  ${key}: ${formatBytes(event.size)}${event.resumedBytes > 0 ? `, resuming: ${formatBytes(event.resumedBytes)} already on disk` : ''}…`);
        }
      },
    });
    const snapshot = await finishHfCache(plan);
    let firstFailure: unknown;
    for (const outcome of outcomes) {
      if (outcome.status === 'done') {
        const { result } = outcome;
        say(`  ${outcome.key}: ${formatBytes(result.size)} ${result.digest?.verified === true ? `${result.digest.algorithm} verified` : 'done'}`);
      } else {
        firstFailure ??= outcome.error;
        say(`  ${outcome.key}: FAILED: ${describeFailure(outcome.error).message}`);
      }
    }
    if (io.signal.aborted) throw io.signal.reason instanceof Interrupted ? io.signal.reason : new Interrupted('SIGINT');
    const notRun = pending.length - outcomes.length;
    if (firstFailure !== undefined) {
      io.stderr.write(formatFailure(firstFailure, command.debug));
      if (notRun > 0) say(`blockfetch: ${notRun} file(s) not started; run the same command again: finished files are kept and partial ones resume`);
      return describeFailure(firstFailure).exitCode;
    }
    say(`blockfetch: ${plan.files.length} file(s) of ${plan.location.repoId} at commit ${plan.commit} in ${snapshot ?? plan.root}`);
    return ExitCode.SUCCESS;
  } catch (err) {
    if (err instanceof Interrupted || io.signal.aborted) {
      const reason = io.signal.reason instanceof Interrupted ? io.signal.reason : err instanceof Interrupted ? err : undefined;
      say('blockfetch: interrupted; run the same command again to resume');
      return reason?.signalName === 'SIGTERM' ? ExitCode.TERMINATED : ExitCode.INTERRUPTED;
    }
    io.stderr.write(formatFailure(err, command.debug));
    return describeFailure(err).exitCode;
  } finally {
    await dispatcher?.close().catch(() => undefined);
  }
}

function describePlan(plan: HfPlan): string {
  const bytes = plan.files.reduce((sum, f) => sum + f.size, 0);
  const where = plan.layout === 'hf-cache' ? `the Hugging Face cache (${plan.root})` : plan.root;
  return `blockfetch: ${plan.location.repoType} ${plan.location.repoId}@${plan.revision} is commit ${plan.commit}: ${plan.files.length} file(s), ${formatBytes(bytes)}, into ${where}`;
}
