// start_response and the request runner (DESIGN §1): headers held until the first non-empty
// chunk, excInfo re-calls, hop-by-hop refusal, close() exactly once on every path, HEAD and
// 204/304 without body bytes, 500 before the head and a cut after it, 504 on timeout.
// The sink here is an in-memory recorder of what a protocol server would be asked to send.
import { describe, expect, it } from "vitest";
import { buildEnviron, type Body, type Environ } from "../../src/gateway/environ.ts";
import { fileWrapper } from "../../src/gateway/body.ts";
import { TsgiInput } from "../../src/gateway/input.ts";
import { RequestAbort } from "../../src/gateway/abort.ts";
import { runRequest, type Application, type ResponseSink } from "../../src/gateway/request.ts";
import { HeadCache, ResponseHead } from "../../src/gateway/start-response.ts";
import { tsgiError } from "../../src/errors.ts";

interface Sent {
  status: string | null;
  headers: [string, string][];
  body: string;
  ended: boolean;
  aborted: boolean;
  /** One entry a send() call: [chunk text or null, last]. */
  calls: [string | null, boolean][];
}

function recorder(): { sink: ResponseSink; sent: Sent } {
  const sent: Sent = { status: null, headers: [], body: "", ended: false, aborted: false, calls: [] };
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
    },
    abort() {
      sent.aborted = true;
    },
  };
  return { sink, sent };
}

function environ(method = "GET", abort = new RequestAbort()): Environ {
  const r = buildEnviron(["REQUEST_METHOD", method, "DOCUMENT_URI", "/x", "SERVER_NAME", "h", "SERVER_PORT", "80"], {
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

const errors: unknown[] = [];
const log = { error: (_m: string, err?: unknown) => void errors.push(err) };

async function run(app: Application, method = "GET", controller = new RequestAbort()) {
  const { sink, sent } = recorder();
  // The server's own checks, not a validator's in front of them (validate.ts has its own tests).
  const outcome = await runRequest(app, environ(method, controller), sink, { abort: controller, log });
  return { sent, outcome };
}

/** A body that counts its close() calls. */
function counted(chunks: (string | Uint8Array)[], opts: { async?: boolean; throwAt?: number } = {}) {
  const state = { closes: 0 };
  const body = opts.async
    ? {
        async *[Symbol.asyncIterator]() {
          for (let i = 0; i < chunks.length; i++) {
            if (i === opts.throwAt) throw new Error("boom in the iteration");
            yield chunks[i]!;
          }
        },
        close() {
          state.closes++;
        },
      }
    : {
        *[Symbol.iterator]() {
          for (let i = 0; i < chunks.length; i++) {
            if (i === opts.throwAt) throw new Error("boom in the iteration");
            yield chunks[i]!;
          }
        },
        close() {
          state.closes++;
        },
      };
  return { body: body as Body, state };
}

describe("the response", () => {
  it("sends the head with the first non-empty chunk, and ends with the last chunk in the same send", async () => {
    const { sent } = await run((_e, start) => {
      start("200 OK", [["Content-Type", "text/plain"]]);
      return ["", "hello ", "world"];
    });
    expect(sent.status).toBe("200 OK");
    expect(sent.body).toBe("hello world");
    expect(sent.calls).toEqual([
      ["hello ", false],
      ["world", true],
    ]);
  });

  it("an empty body still sends the head and ends", async () => {
    const { sent } = await run((_e, start) => {
      start("204 No Content", []);
      return [];
    });
    expect(sent).toMatchObject({ status: "204 No Content", body: "", ended: true });
  });

  it("refuses hop-by-hop headers by name (a 500 the client sees, the error logged)", async () => {
    const { sent } = await run((_e, start) => {
      start("200 OK", [["Transfer-Encoding", "chunked"]]);
      return ["x"];
    });
    expect(sent.status).toBe("500 Internal Server Error");
    expect(String(errors.at(-1))).toMatch(/Transfer-Encoding/);
  });

  it("refuses a status that is not 'NNN Reason' and headers with CR/LF", async () => {
    for (const bad of [() => ["200", []], () => ["200 OK", [["X", "a\r\nY: b"]]]] as const) {
      const { sent } = await run((_e, start) => {
        const [s, h] = bad();
        start(s as string, h as [string, string][]);
        return ["x"];
      });
      expect(sent.status).toBe("500 Internal Server Error");
    }
  });


  it("the header names it remembers as good change nothing: past the ones it keeps, a bad name is still refused and a good one sent", async () => {
    // More distinct good names than start_response remembers (512), then the same names again.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 600; i += 50) {
        const names = Array.from({ length: 50 }, (_, k) => `X-Name-${i + k}`);
        const { sent } = await run((_e, start) => {
          start("200 OK", names.map((n) => [n, "v"]));
          return ["x"];
        });
        expect(sent.status).toBe("200 OK");
        expect(sent.headers.map(([n]) => n)).toEqual(names);
      }
    }
    for (const name of ["X Bad", "Connection", "status", "X-Name-1\r\nX-Evil"]) {
      const { sent } = await run((_e, start) => {
        start("200 OK", [["X-Name-1", "v"], [name, "v"]]);
        return ["x"];
      });
      expect(sent.status, name).toBe("500 Internal Server Error");
    }
  });

  it("sends the headers as start_response checked them, whatever the application does to its array afterwards", async () => {
    const { sent } = await run((_e, start) => {
      const headers: [string, string][] = [["Content-Type", "text/plain"]];
      start("200 OK", headers);
      headers[0]![1] = "text/plain\r\nX-Evil: 1";
      headers.push(["Connection", "close"]);
      return ["x"];
    });
    expect(sent.status).toBe("200 OK");
    expect(sent.headers).toEqual([["Content-Type", "text/plain"]]);
  });
  it("start_response may be called again with excInfo until the head went out", async () => {
    const { sent } = await run((_e, start) => {
      start("200 OK", [["A", "1"]]);
      try {
        throw new Error("late failure");
      } catch (err) {
        start("503 Service Unavailable", [["B", "2"]], err);
      }
      return ["sorry"];
    });
    expect(sent.status).toBe("503 Service Unavailable");
    expect(sent.headers).toEqual([["B", "2"]]);
  });

  it("after the head went out, start_response with excInfo rethrows and the response is cut", async () => {
    const { sent, outcome } = await run((_e, start) => {
      start("200 OK", []);
      return (async function* () {
        yield "part";
        start("500 Oops", [], new Error("after the head"));
      })();
    });
    expect(sent.status).toBe("200 OK");
    expect(sent.aborted).toBe(true);
    expect(outcome.end).toBe("aborted");
  });

  it("an exception before the head is a 500 with a short plain body", async () => {
    const { sent } = await run(() => {
      throw new Error("secret detail");
    });
    expect(sent.status).toBe("500 Internal Server Error");
    expect(sent.body).toBe("Internal Server Error\n");
    expect(sent.headers).toContainEqual(["Content-Type", "text/plain; charset=utf-8"]);
  });

  it("HEAD, 204 and 304 carry no body bytes", async () => {
    for (const [method, status] of [["HEAD", "200 OK"], ["GET", "204 No Content"], ["GET", "304 Not Modified"]] as const) {
      const { body, state } = counted(["not ", "sent"]);
      const { sent } = await run((_e, start) => {
        start(status, [["Content-Length", "8"]]);
        return body;
      }, method);
      expect(sent.status).toBe(status);
      expect(sent.body).toBe("");
      expect(sent.ended).toBe(true);
      expect(state.closes).toBe(1);
    }
  });

  it("a string body is refused (it would be sent char by char)", async () => {
    const { sent } = await run(((_e: Environ, start: (s: string, h: [string, string][]) => unknown) => {
      start("200 OK", []);
      return "oops";
    }) as unknown as Application);
    expect(sent.status).toBe("500 Internal Server Error");
  });

  it("the legacy write() sends at once, before the body's chunks", async () => {
    const { sent } = await run((_e, start) => {
      const write = start("200 OK", []);
      write("early ");
      return ["late"];
    });
    expect(sent.body).toBe("early late");
  });
});

describe("the legacy write()", () => {
  it("returns a promise while the socket drains, and its chunks go out in order after what waits", async () => {
    const { sink: base, sent } = recorder();
    let release: () => void = () => undefined;
    let waits = 0;
    // The first send has to wait for the socket; the others go at once.
    const sink: ResponseSink = {
      ...base,
      send(head, chunk, last) {
        base.send(head, chunk, last);
        if (waits++ === 0) return new Promise<void>((r) => (release = r));
        return undefined;
      },
    };
    const order: string[] = [];
    const controller = new RequestAbort();
    const pending = runRequest(
      async (_e, start) => {
        const write = start("200 OK", []);
        const first = write("one ");
        order.push(first instanceof Promise ? "first waits" : "first sent");
        const second = write("two ");
        order.push(second instanceof Promise ? "second waits" : "second sent");
        setTimeout(() => release(), 20);
        await second;
        order.push("drained");
        return ["three"];
      },
      environ("GET", controller),
      sink,
      { abort: controller, log },
    );
    const outcome = await pending;
    expect(order).toEqual(["first waits", "second waits", "drained"]);
    expect(sent.body).toBe("one two three");
    expect(outcome).toMatchObject({ status: 200, end: "complete" });
  });

  it("a client gone during a write() ends the request without an unhandled rejection", async () => {
    const { sink: base, sent } = recorder();
    const controller = new RequestAbort();
    const sink: ResponseSink = {
      ...base,
      send(head, chunk, last) {
        base.send(head, chunk, last);
        return Promise.reject(tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason: "test" }));
      },
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    try {
      const outcome = await runRequest(
        async (_e, start) => {
          const write = start("200 OK", []);
          void write("a");
          void write("b");
          await new Promise((r) => setTimeout(r, 10));
          return ["c"];
        },
        environ("GET", controller),
        sink,
        { abort: controller, log },
      );
      await new Promise((r) => setTimeout(r, 10));
      expect(outcome.end).toBe("aborted");
      expect(sent.aborted).toBe(true);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe("max-body on a body of unknown length", () => {
  it("an application reading past max-body gets a 413 when nothing was sent yet", async () => {
    const input = new TsgiInput(null, null, 4);
    const e = environ();
    e["tsgi.input"] = input;
    const { sink, sent } = recorder();
    const controller = new RequestAbort();
    const pending = runRequest(
      async (env, start) => {
        await env["tsgi.input"].read();
        start("200 OK", []);
        return ["read it all"];
      },
      e,
      sink,
      { abort: controller, log },
    );
    input.feed(Buffer.from("too long"));
    const outcome = await pending;
    expect(outcome.status).toBe(413);
    expect(sent.status).toBe("413 Content Too Large");
  });
});

describe("close() exactly once", () => {
  for (const async of [false, true]) {
    it(`normal end (${async ? "async" : "sync"} body)`, async () => {
      const { body, state } = counted(["a", "b"], { async });
      await run((_e, start) => {
        start("200 OK", []);
        return body;
      });
      expect(state.closes).toBe(1);
    });

    it(`an exception in the iteration (${async ? "async" : "sync"} body)`, async () => {
      const { body, state } = counted(["a", "b", "c"], { async, throwAt: 2 });
      const { sent } = await run((_e, start) => {
        start("200 OK", []);
        return body;
      });
      expect(state.closes).toBe(1);
      expect(sent.aborted).toBe(true);
    });
  }

  it("the client going away mid-stream: signal aborted, close() once, nothing more sent", async () => {
    const controller = new RequestAbort();
    const state = { closes: 0, sawAbort: false };
    let yielded = 0;
    const body = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          yielded++;
          if (yielded === 3) controller.abort(tsgiError("TSGI_ERR_APP_CLIENT_GONE", { reason: "test" }));
          yield "chunk";
          await new Promise((r) => setTimeout(r, 1));
        }
      },
      close() {
        state.closes++;
      },
    };
    const { sent, outcome } = await run((e, start) => {
      e["tsgi.signal"].addEventListener("abort", () => (state.sawAbort = true));
      start("200 OK", []);
      return body;
    }, "GET", controller);
    expect(state).toEqual({ closes: 1, sawAbort: true });
    expect(outcome.end).toBe("aborted");
    expect(sent.body.length).toBeLessThanOrEqual("chunk".length * 3);
  });

  it("a timeout before anything was sent answers 504 and closes the body", async () => {
    const controller = new RequestAbort();
    const state = { closes: 0 };
    const pending = run((_e, start) => {
      start("200 OK", []);
      return {
        async *[Symbol.asyncIterator]() {
          await new Promise((r) => setTimeout(r, 10_000).unref());
          yield "never";
        },
        close() {
          state.closes++;
        },
      };
    }, "GET", controller);
    setTimeout(() => controller.abort(tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: "0.05s" })), 50);
    const { sent, outcome } = await pending;
    expect(sent.status).toBe("504 Gateway Timeout");
    expect(outcome).toMatchObject({ status: 504, end: "error" });
    expect(state.closes).toBe(1);
  });

  it("an application that never returns: 504 at the timeout, and its late body is closed when it comes", async () => {
    const controller = new RequestAbort();
    let release: (b: Body) => void = () => undefined;
    const { body, state } = counted(["late"]);
    const pending = run(() => new Promise<Body>((r) => (release = r)), "GET", controller);
    setTimeout(() => controller.abort(tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: "0.02s" })), 20);
    const { sent } = await pending;
    expect(sent.status).toBe("504 Gateway Timeout");
    release(body);
    await new Promise((r) => setTimeout(r, 20));
    expect(state.closes).toBe(1);
  });

  it("the outcome of an abort says whether the application's work is still pending, and settles when it ends (the worker's stuck-request watch)", async () => {
    const settled = (p: Promise<void> | undefined) => Promise.race([p!.then(() => true), new Promise((r) => setTimeout(() => r(false), 30))]);
    // A promise that settles after the timeout.
    const c1 = new RequestAbort();
    let release: (b: Body) => void = () => undefined;
    const late = run(() => new Promise<Body>((r) => (release = r)), "GET", c1);
    setTimeout(() => c1.abort(tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: "0.02s" })), 20);
    const first = (await late).outcome;
    expect(first.status).toBe(504);
    expect(await settled(first.unfinished)).toBe(false);
    release(["late"]);
    expect(await settled(first.unfinished)).toBe(true);
    // A body stuck in next() after its first chunk: a cut, still pending.
    const c2 = new RequestAbort();
    const stuck = run((_e, startResponse) => {
      startResponse("200 OK", []);
      return (async function* () {
        yield "first";
        await new Promise(() => undefined);
      })();
    }, "GET", c2);
    setTimeout(() => c2.abort(tsgiError("TSGI_ERR_APP_TIMEOUT", { timeout: "0.02s" })), 20);
    const second = (await stuck).outcome;
    expect(second).toMatchObject({ status: 200, end: "aborted" });
    expect(await settled(second.unfinished)).toBe(false);
    // An application that had finished: nothing pending.
    expect((await run(() => ["ok"])).outcome.unfinished).toBeUndefined();
  });
});

describe("the head as a protocol serializes it", () => {
  it("is made again whenever the status, a header or the first line differs from the last one, and reused when none does", () => {
    const cache = new HeadCache();
    const head = (status: string, fields: string[]) => {
      const h = new ResponseHead();
      h.status = status;
      h.fields = fields;
      return h;
    };
    const hello = head("200 OK", ["Content-Type", "text/plain", "Content-Length", "14"]);
    const text = "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n";
    expect(hello.serialize("Status: ", cache)).toBe(text);
    // The same head in new arrays (as each request makes them): the same text.
    expect(head("200 OK", ["Content-Type", "text/plain", "Content-Length", "14"]).serialize("Status: ", cache)).toBe(text);
    expect(head("404 Not Found", ["Content-Type", "text/plain", "Content-Length", "14"]).serialize("Status: ", cache)).toBe(
      "Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n",
    );
    expect(head("200 OK", ["Content-Type", "text/plain", "Content-Length", "15"]).serialize("Status: ", cache)).toBe(
      "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\n",
    );
    expect(head("200 OK", ["Content-Type", "text/plain"]).serialize("Status: ", cache)).toBe("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    expect(head("200 OK", ["Content-Type", "text/plain"]).serialize("HTTP/1.1 ", cache)).toBe("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    expect(head("200 OK", []).serialize("HTTP/1.1 ", cache)).toBe("HTTP/1.1 200 OK\r\n\r\n");
    expect(hello.serialize("Status: ")).toBe(text);
  });
});
