/**
 * The Hub's refusals, read as huggingface_hub's hf_raise_for_status reads
 * them: X-Error-Code first, then the status; the token never named, only
 * where it came from; 429 and 5xx left retryable with their Retry-After.
 */
import { describe, expect, it } from 'vitest';
import { hubErrorFor, HubError } from '../src/hf/hub-errors.js';
import { exitCodeFor } from '../src/cli/exit-codes.js';

const URL_ = 'https://hub.example/api/models/org/m/revision/main';
const anonymous = { what: 'model org/m@main', tokenSource: undefined };
const withToken = { what: 'model org/m@main', tokenSource: 'HF_TOKEN' };

describe('hubErrorFor', () => {
  it.each([
    [404, { 'x-error-code': 'RepoNotFound' }, withToken, 'BLOCKFETCH_HUB_NOT_FOUND', /not found, or the token \(from HF_TOKEN\) cannot see it/],
    [401, { 'x-error-code': 'RepoNotFound' }, anonymous, 'BLOCKFETCH_HUB_AUTH', /not found, or is private or gated and no token is set/],
    [401, {}, anonymous, 'BLOCKFETCH_HUB_AUTH', /no token is set \(HTTP 401\)/],
    [404, { 'x-error-code': 'RevisionNotFound' }, withToken, 'BLOCKFETCH_HUB_NOT_FOUND', /no such revision .*RevisionNotFound/],
    [404, { 'x-error-code': 'EntryNotFound' }, withToken, 'BLOCKFETCH_HUB_NOT_FOUND', /no such file or folder .*EntryNotFound/],
    [403, { 'x-error-code': 'GatedRepo', 'x-error-message': 'You must accept the conditions' }, withToken, 'BLOCKFETCH_HUB_AUTH', /gated: the token \(from HF_TOKEN\) has not been granted access .*the Hub says: You must accept the conditions/],
    [401, { 'x-error-message': 'Invalid credentials in Authorization header' }, withToken, 'BLOCKFETCH_HUB_AUTH', /rejected the token \(from HF_TOKEN\)/],
    [403, { 'x-error-message': 'Forbidden: fine-grained token lacks read access' }, withToken, 'BLOCKFETCH_HUB_AUTH', /refused access to model org\/m@main \(HTTP 403\)/],
    [404, {}, withToken, 'BLOCKFETCH_HUB_NOT_FOUND', /found nothing for model org\/m@main \(HTTP 404\)/],
  ] as const)('%i %j', (status, headers, context, code, message) => {
    const err = hubErrorFor(status, headers, URL_, context, 120_000);
    expect(err).toBeInstanceOf(HubError);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.retryable).toBe(false);
    expect(exitCodeFor(err)).toBe(1);
    expect(err.hint).toBeDefined();
    expect((err as HubError).status).toBe(status);
  });

  it('says how to set a token when none was sent, and how to get access when one was', () => {
    expect(hubErrorFor(401, { 'x-error-code': 'GatedRepo' }, URL_, anonymous, 1).hint).toMatch(/HF_TOKEN.*huggingface-cli login/);
    expect(hubErrorFor(403, { 'x-error-code': 'GatedRepo' }, URL_, withToken, 1).hint).toMatch(/accept the repository's conditions/);
  });

  it('leaves 429 and 5xx retryable, with their Retry-After', () => {
    const limited = hubErrorFor(429, { 'retry-after': '7' }, URL_, withToken, 120_000);
    expect(limited).not.toBeInstanceOf(HubError);
    expect(limited).toMatchObject({ code: 'BLOCKFETCH_HTTP_TRANSIENT', retryable: true, retryAfterMs: 7000 });
    expect(hubErrorFor(503, {}, URL_, withToken, 120_000)).toMatchObject({ code: 'BLOCKFETCH_HTTP_TRANSIENT', retryable: true });
  });

  it('keeps a long or multi-line server message to one short line', () => {
    const err = hubErrorFor(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': `line one\nline two ${'x'.repeat(400)}` }, URL_, withToken, 1);
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/the Hub says: line one line two x+\.\.\.\)$/);
    expect(err.message.length).toBeLessThan(400);
  });
});
