// The application of issue-8-input.test.ts (issue 8, point 11): what it got from
// `tsgi.input`, answered as JSON. Routes by PATH_INFO:
//
//   /read-all          `await input.read()` and lets any error through (tsgi answers it)
//   /read-all-caught   `await input.read()`; an error is caught and answered: 200 {error: CODE}
//   /read-parts        read(5) until the end or an error: 200 {parts: [...], error: CODE|null}
//   /iterate-caught    `for await` over the input: 200 {chunks: [...], error: CODE|null}
//   /two-readers       Promise.all([read(4), read(4)]) with a 5 s limit: 200 {results} or {timeout}
//   /read-and-iterate  a read(4) and a `for await` at once, 5 s limit: 200 {read, chunks} or {timeout}

const LIMIT_MS = 5000;

function json(startResponse, value) {
  startResponse("200 OK", [["Content-Type", "application/json"]]);
  return [JSON.stringify(value)];
}

const text = (bytes) => Buffer.from(bytes).toString("latin1");

function withLimit(promise) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), LIMIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function application(environ, startResponse) {
  const input = environ["tsgi.input"];
  switch (environ.PATH_INFO) {
    case "/read-all": {
      const body = await input.read();
      return json(startResponse, { body: text(body) });
    }
    case "/read-all-caught":
      try {
        const body = await input.read();
        return json(startResponse, { body: text(body), error: null });
      } catch (err) {
        return json(startResponse, { error: err.code ?? String(err), message: err.message });
      }
    case "/read-parts": {
      const parts = [];
      try {
        for (;;) {
          const part = await input.read(5);
          if (part.length === 0) break;
          parts.push(text(part));
        }
        return json(startResponse, { parts, error: null });
      } catch (err) {
        return json(startResponse, { parts, error: err.code ?? String(err) });
      }
    }
    case "/iterate-caught": {
      const chunks = [];
      try {
        for await (const chunk of input) chunks.push(text(chunk));
        return json(startResponse, { chunks, error: null });
      } catch (err) {
        return json(startResponse, { chunks, error: err.code ?? String(err) });
      }
    }
    case "/two-readers": {
      const both = await withLimit(Promise.all([input.read(4), input.read(4)]));
      if (both === "timeout") return json(startResponse, { timeout: true });
      return json(startResponse, { results: both.map(text) });
    }
    case "/read-and-iterate": {
      const chunks = [];
      const iterate = (async () => {
        for await (const chunk of input) chunks.push(text(chunk));
      })();
      const both = await withLimit(Promise.all([input.read(4), iterate]));
      if (both === "timeout") return json(startResponse, { timeout: true, chunks });
      return json(startResponse, { read: text(both[0]), chunks });
    }
    default:
      startResponse("404 Not Found", [["Content-Type", "text/plain"]]);
      return [`no route ${environ.PATH_INFO}\n`];
  }
}
