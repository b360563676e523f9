// s3rver in a process of its own, started by test/helpers/s3-server.ts with
// --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation
// tokens with DES, which Node's OpenSSL 3 refuses without it (a truncated
// listing is then a 500 InternalError). Prints {"port":N} once it listens.
'use strict';
const S3rver = require('s3rver');

const [directory, buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  vhostBuckets: false,
  configureBuckets: JSON.parse(buckets).map((name) => ({ name })),
});
server.run().then(
  (address) => process.stdout.write(`${JSON.stringify({ port: address.port })}\n`),
  (err) => {
    process.stderr.write(`s3rver failed to start: ${err && err.stack}\n`);
    process.exit(1);
  },
);
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
