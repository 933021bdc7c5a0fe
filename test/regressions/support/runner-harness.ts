// The request runner (src/gateway/request.ts) alone, for the issue-8 regression tests: an
// in-memory sink that records what a protocol server would be asked to send (and can be
// told to make a send wait, or fail as a write to a vanished peer does), an environ built
// by the real buildEnviron, and a log that keeps each error with its code. No validator
// anywhere: what is seen is the server's own handling.

import { RequestAbort } from "../../../src/gateway/abort.ts";
import { fileWrapper } from "../../../src/gateway/body.ts";
import { buildEnviron, type Environ } from "../../../src/gateway/environ.ts";
import { TsgiInput } from "../../../src/gateway/input.ts";
import { runRequest, type Application, type RequestOutcome, type ResponseSink } from "../../../src/gateway/request.ts";
import type { ResponseHead } from "../../../src/gateway/start-response.ts";

export interface Sent {
  status: string | null;
  headers: [string, string][];
  body: string;
  /** The response ended cleanly (a send with `last`). */
  ended: boolean;
  /** The sink was told to cut the response. */
  aborted: boolean;
  /** One entry a send() call: [chunk text or null, last]. */
  calls: [string | null, boolean][];
}

export interface SinkBehaviour {
  /**
   * What send number `n` (from 1) returns: undefined (written at once), "wait" (a promise
   * the test resolves with `release()`), or "fail" (a promise that rejects: the peer is gone).
   */
  onSend?: (n: number) => undefined | "wait" | "fail";
  /** Called when a send fails, before its promise rejects (a protocol aborts the request then). */
  beforeFail?: () => void;
}

export interface Recorder {
  sink: ResponseSink;
  sent: Sent;
  /** Lets the sends that wait go on. */
  release(): void;
}

export function recorder(behaviour: SinkBehaviour = {}): Recorder {
  const sent: Sent = { status: null, headers: [], body: "", ended: false, aborted: false, calls: [] };
  let n = 0;
  const waiting: (() => void)[] = [];
  const sink: ResponseSink = {
    send(head: ResponseHead, chunk, last) {
      if (!head.sent) {
        head.sent = true;
        sent.status = head.status;
        sent.headers = head.headers;
      }
      sent.calls.push([chunk ? Buffer.from(chunk).toString() : null, last]);
      if (chunk) sent.body += Buffer.from(chunk).toString();
      if (last) sent.ended = true;
      const what = behaviour.onSend?.(++n);
      if (what === "wait") return new Promise<void>((resolve) => waiting.push(resolve));
      if (what === "fail") {
        return new Promise<void>((_resolve, reject) =>
          setTimeout(() => {
            behaviour.beforeFail?.();
            reject(new Error("write to a peer that is gone"));
          }, 1),
        );
      }
      return undefined;
    },
    abort() {
      sent.aborted = true;
    },
  };
  return { sink, sent, release: () => waiting.splice(0).forEach((r) => r()) };
}

export function environ(method = "GET", abort = new RequestAbort()): Environ {
  const r = buildEnviron(["REQUEST_METHOD", method, "DOCUMENT_URI", "/x", "REQUEST_URI", "/x", "SERVER_NAME", "h", "SERVER_PORT", "80"], {
    mount: "",
    input: TsgiInput.of(),
    errors: { write() {}, flush() {} },
    multiprocess: false,
    abort,
    fileWrapper,
  });
  if (!("environ" in r)) throw r.error;
  return r.environ;
}

export interface Logged {
  message: string;
  err: unknown;
  /** The TSGI_ERR_ code of the error, if it has one. */
  code: string | undefined;
}

export interface RunResult {
  sent: Sent;
  outcome: RequestOutcome;
  logged: Logged[];
}

export interface RunOptions {
  method?: string;
  controller?: RequestAbort;
  rec?: Recorder;
  /** Called once runRequest started (the application was called), with what it may drive. */
  during?: (rec: Recorder, controller: RequestAbort) => void;
}

/** Runs `app` through runRequest with a recorder sink and a recording log. */
export async function run(app: Application, o: RunOptions = {}): Promise<RunResult> {
  const controller = o.controller ?? new RequestAbort();
  const rec = o.rec ?? recorder();
  const logged: Logged[] = [];
  const log = {
    error(message: string, err?: unknown) {
      logged.push({ message, err, code: (err as { code?: string } | null | undefined)?.code });
    },
  };
  const pending = runRequest(app, environ(o.method ?? "GET", controller), rec.sink, { abort: controller, log });
  o.during?.(rec, controller);
  const outcome = await pending;
  return { sent: rec.sent, outcome, logged };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
