// Preloaded into the CLI by cli-pty.test.ts: throws an uncaught exception
// right after the progress bar hid the cursor, as a bug would.
const write = process.stderr.write.bind(process.stderr);
let thrown = false;
process.stderr.write = (chunk, ...rest) => {
  const result = write(chunk, ...rest);
  if (!thrown && String(chunk).includes('\u001b[?25l')) {
    thrown = true;
    setImmediate(() => {
      throw new Error('a scripted crash while the bar is up');
    });
  }
  return result;
};
