// A step in JavaScript: the input document on stdin, the output on stdout, through the
// WASI streams (componentize-js has no `process.stdin`); no SDK.
import { getStdin } from "wasi:cli/stdin@0.2.12";
import { getStdout } from "wasi:cli/stdout@0.2.12";
import { getStderr } from "wasi:cli/stderr@0.2.12";

function readAll() {
  const input = getStdin();
  const chunks = [];
  for (;;) {
    let chunk;
    try {
      chunk = input.blockingRead(65536n);
    } catch (e) {
      break; // the stream is closed at the end of stdin
    }
    if (chunk.length === 0) break;
    chunks.push(chunk);
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

function write(stream, text) {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length; at += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(at, at + 4096));
  }
}

export const run = {
  run() {
    const doc = JSON.parse(readAll());
    const name = (doc.event && doc.event.data && doc.event.data.name) || "world";
    write(getStderr(), `greeting ${name} from JavaScript\n`);
    write(getStdout(), JSON.stringify({ status: 200, body: { message: `Hello, ${name}!`, lang: "javascript", attempt: doc.ctx.attempt } }));
  },
};
