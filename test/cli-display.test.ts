/**
 * The terminal display's pieces (issue 14): one stable ETA format, a layout
 * by priority for the width, presigned URLs shortened, one `note:` prefix,
 * plurals, and a final line that replaces the bar whole. The same defects
 * are checked under a real pseudo-terminal in cli-pty.test.ts.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';

import { LineView, TerminalView, barLine, displayUrl, formatEta, type ProgressSnapshot, type StartNotice } from '../src/cli/progress.js';

const notice: StartNotice = { url: 'http://h/f', target: '/t/f', totalBytes: 100 * 2 ** 20, blockSize: 2 ** 24, concurrency: 8, resumedBytes: 0 };
const snapshot: ProgressSnapshot = {
  bytesDone: 40 * 2 ** 20,
  totalBytes: 100 * 2 ** 20,
  bytesThisRun: 40 * 2 ** 20,
  elapsedMs: 4000,
  bytesPerSecond: 10 * 2 ** 20,
  activeConnections: 8,
  retries: 0,
};

/** A fake tty stream: what was written, and a width. */
function tty(columns: number): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, { isTTY: true, columns });
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { stream, text: () => text };
}

describe('formatEta', () => {
  it('has one format: whole seconds, then m/s, then h/m; never ms', () => {
    expect(formatEta(985)).toBe('1s');
    expect(formatEta(4700)).toBe('5s');
    expect(formatEta(59_000)).toBe('59s');
    expect(formatEta(245_000)).toBe('4m05s');
    expect(formatEta(7_380_000)).toBe('2h03m');
    expect(formatEta(0)).toBe('0s');
    expect(formatEta(Infinity)).toBe('?');
  });
});

describe('barLine', () => {
  it('keeps percent, ETA, speed and connections at 70 columns, dropping the bar or bytes first', () => {
    for (const columns of [69, 60, 50]) {
      const line = barLine(notice, snapshot, columns);
      expect(line.length, line).toBeLessThanOrEqual(columns);
      expect(line).toContain('40.0%');
      expect(line).toContain('ETA     6s');
      expect(line).toContain('10.0 MiB/s');
      expect(line).toContain('8 conn');
    }
  });

  it('shows everything and a bar on a wide terminal, and only the first fields on a tiny one', () => {
    const wide = barLine(notice, snapshot, 119);
    expect(wide).toMatch(/^ [█░]{30} /);
    expect(wide).toContain('40.0 MiB / 100 MiB');
    const tiny = barLine(notice, snapshot, 20);
    expect(tiny.length).toBeLessThanOrEqual(20);
    expect(tiny).toContain('40.0%');
    expect(tiny).toContain('ETA');
  });
});

describe('displayUrl', () => {
  it('drops the query of a presigned URL and shortens the path from the left', () => {
    const presigned = `https://bucket.s3.amazonaws.com/datasets/2026/big.iso?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${'A'.repeat(200)}&X-Amz-Signature=REDACTED`;
    expect(displayUrl(presigned, 79)).toBe('https://bucket.s3.amazonaws.com/datasets/2026/big.iso');
    expect(displayUrl(presigned, 50)).toBe('https://bucket.s3.amazonaws.com/…/2026/big.iso');
    expect(displayUrl(presigned, 45)).toBe('https://bucket.s3.amazonaws.com/…/big.iso');
    expect(displayUrl('not a url at all, but long', 10).length).toBe(10);
  });
});

describe('TerminalView', () => {
  it('fits the header line to the width, says "1 connection", and replaces the bar whole with the done line', () => {
    const out = tty(70);
    const view = new TerminalView(out.stream);
    const url = `https://bucket.s3.amazonaws.com/a/b/c/file.bin?X-Amz-Signature=REDACTED&X-Amz-Credential=${'x'.repeat(300)}`;
    view.start({ ...notice, url, concurrency: 1 });
    view.update(snapshot);
    view.done({ target: '/t/f', totalBytes: notice.totalBytes, bytesThisRun: notice.totalBytes, elapsedMs: 6000, digest: undefined });
    const text = out.text();
    const header = text.split('\n')[0] ?? '';
    expect(header.length).toBeLessThanOrEqual(69);
    expect(header).toContain('1 connection');
    expect(header).not.toContain('connections');
    expect(header).not.toContain('X-Amz');
    // The cursor was hidden, then shown; the done line starts on a cleared line.
    expect(text).toContain('\u001b[?25l');
    expect(text.endsWith('\u001b[?25h')).toBe(true);
    expect(text).toMatch(/\r\u001b\[2Kdone: \/t\/f /);
  });

  it('prints a note with one "note:" prefix, whatever the message brought', () => {
    const out = tty(80);
    const view = new TerminalView(out.stream);
    view.note('note: the server sends no ETag');
    view.note('resuming: 1 B of 2 B already on disk');
    expect(out.text()).toBe('note: the server sends no ETag\nnote: resuming: 1 B of 2 B already on disk\n');
  });

  it('gives the cursor back on stop, and holds no process listener afterwards', () => {
    const out = tty(80);
    const before = process.listenerCount('exit');
    const view = new TerminalView(out.stream);
    view.start(notice);
    expect(process.listenerCount('exit')).toBe(before + 1);
    view.stop();
    expect(process.listenerCount('exit')).toBe(before);
    expect(out.text().endsWith('\n\u001b[?25h')).toBe(true);
  });
});

describe('LineView', () => {
  it('says "1 connection" and prints notes with one prefix', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString('utf8')));
    const view = new LineView(out, 0);
    view.start({ ...notice, concurrency: 1 });
    view.update({ ...snapshot, activeConnections: 1, elapsedMs: 1 });
    view.note('note: note: twice');
    expect(text.split('\n')).toEqual([
      'http://h/f -> /t/f: 100 MiB in 16.0 MiB blocks, 1 connection',
      '40.0% 40.0 MiB of 100 MiB, 10.0 MiB/s, ETA 6s, 1 connection',
      'note: twice',
      '',
    ]);
  });
});
