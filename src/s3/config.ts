/**
 * Where an S3 download gets its credentials, region and endpoint: the
 * standard AWS sources, read the way the AWS CLI and SDKs read them, so a
 * machine already set up for `aws s3 cp` works unchanged.
 *
 * - Credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
 *   `AWS_SESSION_TOKEN`), else the profile (`AWS_PROFILE`, default
 *   `default`) in `~/.aws/credentials` then `~/.aws/config`
 *   (`AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE` move them). None at
 *   all: anonymous requests, which public buckets answer.
 * - Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else
 *   `us-east-1`.
 * - Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
 *   `endpoint_url` (each addressed path style), else AWS's regional endpoint.
 *
 * The profile files are parsed by the AWS SDK's own loader
 * (`@smithy/core/config`), so `[profile NAME]` sections, comments and
 * continuation lines mean what they mean to the AWS CLI. Secrets are never
 * put into a message: errors name the variable or file to check.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

import { loadSharedConfigFiles } from '@smithy/core/config';

import { InvalidArgumentError } from '../errors.js';
import type { S3Endpoint } from './url.js';

/** AWS credentials. Never printed. */
export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Temporary credentials (STS) carry a session token. */
  readonly sessionToken?: string;
}

/** Everything an S3 request needs besides the bucket and key. */
export interface S3Config {
  /** The region requests are signed for. */
  readonly region: string;
  /** Where requests go, and how buckets are addressed. */
  readonly endpoint: S3Endpoint;
  /** The credentials to sign with, or undefined to send anonymous (unsigned) requests. */
  readonly credentials: S3Credentials | undefined;
  /** Where the credentials came from (`environment`, `profile "dev"`, `none`), for messages: never the values. */
  readonly credentialSource: string;
}

/** Options of {@link resolveS3Config}. */
export interface S3ConfigOptions {
  /** The environment to read. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Send every request unsigned, whatever credentials exist (the AWS CLI's `--no-sign-request`). @default false */
  readonly noSignRequest?: boolean;
}

/**
 * The defaults of {@link S3ConfigOptions} and of the values the AWS sources may leave unset.
 *
 * @example
 * ```ts
 * defaultS3ConfigOptions.region // 'us-east-1'
 * ```
 */
export const defaultS3ConfigOptions = Object.freeze({
  noSignRequest: false,
  /** The region when none is configured, as the AWS CLI assumes. */
  region: 'us-east-1',
  /** The profile when `AWS_PROFILE` is unset. */
  profile: 'default',
});

/** Profile settings that fetch credentials some other way, which blockfetch does not do. */
const UNSUPPORTED_CREDENTIAL_SETTINGS = ['role_arn', 'credential_process', 'sso_session', 'sso_start_url', 'web_identity_token_file'] as const;

/** A non-empty trimmed value, or undefined. */
function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** `~/x` with the environment's home, as the AWS CLI expands these paths. */
function expandHome(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path;
}

/** A custom endpoint URL, checked (http or https, no query): the variable is named in the message, not only its value. */
function endpointFrom(text: string, from: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`${from} is not a URL: ${JSON.stringify(text)}`, { hint: `set ${from} to e.g. http://127.0.0.1:9000` });
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new InvalidArgumentError(`${from} must be a plain http:// or https:// URL, got ${JSON.stringify(`${url.protocol}//${url.host}${url.pathname}`)}`, {
      hint: `set ${from} to e.g. https://s3.example.com`,
    });
  }
  return url;
}

/**
 * Resolves the region, endpoint and credentials from the standard AWS
 * sources (see the module comment). Throws an {@link InvalidArgumentError}
 * naming what to fix when they are half set (a key id without its secret,
 * a named profile that does not exist, a profile that gets its credentials
 * through SSO or a role, which blockfetch does not support).
 *
 * @example
 * ```ts
 * const config = await resolveS3Config({ env: { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' } });
 * config.endpoint.pathStyle // true
 * config.credentials        // undefined: anonymous, unless ~/.aws has a default profile
 * ```
 */
export async function resolveS3Config(options: S3ConfigOptions = {}): Promise<S3Config> {
  const env = options.env ?? process.env;
  const noSignRequest = options.noSignRequest ?? defaultS3ConfigOptions.noSignRequest;
  const home = nonEmpty(env['HOME']) ?? homedir();
  const credentialsFile = expandHome(nonEmpty(env['AWS_SHARED_CREDENTIALS_FILE']) ?? join(home, '.aws', 'credentials'), home);
  const configFile = expandHome(nonEmpty(env['AWS_CONFIG_FILE']) ?? join(home, '.aws', 'config'), home);
  const profileName = nonEmpty(env['AWS_PROFILE']) ?? defaultS3ConfigOptions.profile;
  // Missing files are not an error: the loader answers {} for them.
  const files = await loadSharedConfigFiles({ filepath: credentialsFile, configFilepath: configFile, ignoreCache: true });
  const fromCredentials = files.credentialsFile[profileName];
  const fromConfig = files.configFile[profileName];
  // As the SDK merges them: the credentials file wins over the config file.
  const profile: Readonly<Record<string, string | undefined>> = { ...fromConfig, ...fromCredentials };
  const profileExists = fromCredentials !== undefined || fromConfig !== undefined;
  if (nonEmpty(env['AWS_PROFILE']) !== undefined && !profileExists && !noSignRequest && envCredentials(env) === undefined) {
    throw new InvalidArgumentError(`AWS_PROFILE names the profile ${JSON.stringify(profileName)}, which is in neither ${credentialsFile} nor ${configFile}`, {
      hint: `add a [${profileName}] section to ${credentialsFile} (or [profile ${profileName}] to ${configFile}), or unset AWS_PROFILE`,
    });
  }

  const region = nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? nonEmpty(profile['region']) ?? defaultS3ConfigOptions.region;
  if (!/^[a-z0-9-]+$/i.test(region)) {
    throw new InvalidArgumentError(`the AWS region ${JSON.stringify(region)} is not a region name`, { hint: 'set AWS_REGION to e.g. eu-west-1' });
  }
  const custom =
    nonEmpty(env['AWS_ENDPOINT_URL_S3']) !== undefined
      ? endpointFrom(nonEmpty(env['AWS_ENDPOINT_URL_S3']) as string, 'AWS_ENDPOINT_URL_S3')
      : nonEmpty(env['AWS_ENDPOINT_URL']) !== undefined
        ? endpointFrom(nonEmpty(env['AWS_ENDPOINT_URL']) as string, 'AWS_ENDPOINT_URL')
        : nonEmpty(profile['endpoint_url']) !== undefined
          ? endpointFrom(nonEmpty(profile['endpoint_url']) as string, `endpoint_url of profile ${JSON.stringify(profileName)}`)
          : undefined;
  const endpoint: S3Endpoint =
    custom === undefined ? { url: new URL(`https://s3.${region}.amazonaws.com`), pathStyle: false } : { url: custom, pathStyle: true };

  if (noSignRequest) return { region, endpoint, credentials: undefined, credentialSource: 'none (--no-sign-request)' };
  const fromEnv = envCredentials(env);
  if (fromEnv !== undefined) return { region, endpoint, credentials: fromEnv, credentialSource: 'environment (AWS_ACCESS_KEY_ID)' };
  const accessKeyId = nonEmpty(profile['aws_access_key_id']);
  const secretAccessKey = nonEmpty(profile['aws_secret_access_key']);
  const where = `profile ${JSON.stringify(profileName)}`;
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    const sessionToken = nonEmpty(profile['aws_session_token']);
    return {
      region,
      endpoint,
      credentials: { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) },
      credentialSource: `${where} (${fromCredentials?.['aws_access_key_id'] !== undefined ? credentialsFile : configFile})`,
    };
  }
  if (accessKeyId !== undefined || secretAccessKey !== undefined) {
    throw new InvalidArgumentError(`${where} sets ${accessKeyId === undefined ? 'aws_secret_access_key but not aws_access_key_id' : 'aws_access_key_id but not aws_secret_access_key'}`, {
      hint: `add the missing line to the [${profileName}] section of ${credentialsFile}`,
    });
  }
  const unsupported = UNSUPPORTED_CREDENTIAL_SETTINGS.find((name) => profile[name] !== undefined);
  if (unsupported !== undefined) {
    throw new InvalidArgumentError(`${where} gets its credentials through ${unsupported}, which blockfetch does not support`, {
      hint: 'set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN first (the AWS CLI prints them with `aws configure export-credentials`), or for a public bucket send unsigned requests (option `noSignRequest`)',
    });
  }
  return { region, endpoint, credentials: undefined, credentialSource: 'none (anonymous requests)' };
}

/** `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), or undefined when neither is set. */
function envCredentials(env: NodeJS.ProcessEnv): S3Credentials | undefined {
  const accessKeyId = nonEmpty(env['AWS_ACCESS_KEY_ID']);
  const secretAccessKey = nonEmpty(env['AWS_SECRET_ACCESS_KEY']);
  if (accessKeyId === undefined && secretAccessKey === undefined) return undefined;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    const missing = accessKeyId === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY';
    throw new InvalidArgumentError(`${missing === 'AWS_ACCESS_KEY_ID' ? 'AWS_SECRET_ACCESS_KEY' : 'AWS_ACCESS_KEY_ID'} is set but ${missing} is not`, {
      hint: `set both, or unset both to use a profile in ~/.aws/credentials`,
    });
  }
  const sessionToken = nonEmpty(env['AWS_SESSION_TOKEN']);
  return { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) };
}
