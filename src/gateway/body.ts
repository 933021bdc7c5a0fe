// Response bodies the server provides: `tsgi.file_wrapper` (DESIGN §1), a file's bytes read
// in blocks, marked so that a protocol server may later send it without copying it through
// JavaScript (or hand it to the front server with X-Sendfile / X-Accel-Redirect).

import { createReadStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import type { Body } from "./environ.ts";

export const FILE_WRAPPER = Symbol.for("tsgi.file_wrapper");

export interface FileBody extends AsyncIterable<Uint8Array> {
  readonly [FILE_WRAPPER]: { pathOrFd: string | number; blockSize: number };
  close(): Promise<void>;
}

const DEFAULT_BLOCK = 64 * 1024;

export function fileWrapper(pathOrFd: string | number, blockSize: number = DEFAULT_BLOCK): Body {
  let handle: FileHandle | null = null;
  let closed = false;
  const body: FileBody = {
    [FILE_WRAPPER]: { pathOrFd, blockSize },
    async *[Symbol.asyncIterator]() {
      if (closed) return;
      if (typeof pathOrFd === "number") {
        const stream = createReadStream("", { fd: pathOrFd, highWaterMark: blockSize, autoClose: false });
        for await (const chunk of stream) yield chunk as Uint8Array;
        return;
      }
      handle = await open(pathOrFd, "r");
      for (;;) {
        // A fresh buffer a block: the chunk is handed on without a copy and may still be queued.
        const buf = Buffer.allocUnsafe(blockSize);
        const { bytesRead } = await handle.read(buf, 0, blockSize, null);
        if (bytesRead === 0) return;
        yield bytesRead === blockSize ? buf : buf.subarray(0, bytesRead);
      }
    },
    async close() {
      closed = true;
      const h = handle;
      handle = null;
      await h?.close();
    },
  };
  return body;
}
