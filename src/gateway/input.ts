// `tsgi.input`: the request body as a stream of bytes with backpressure. The protocol feeds
// the chunks it decodes and is told to pause its socket while the application has more than
// a high-water mark unread, so a large upload never sits in memory whole. It never yields a
// byte past CONTENT_LENGTH; without one (a chunked upload streamed by the front server) it
// ends where the stream ends.

import { tsgiError } from "../errors.ts";

const EMPTY = new Uint8Array(0);
const END: unique symbol = Symbol("end");
const WAIT: unique symbol = Symbol("wait");
const done = (): IteratorReturnResult<undefined> => ({ value: undefined, done: true });
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;

export interface InputFlow {
  /** Stop (true) or resume (false) reading the socket for this body. */
  pause(paused: boolean): void;
}

export class TsgiInput implements AsyncIterable<Uint8Array> {
  readonly #limit: number;
  readonly #flow: InputFlow | null;
  readonly #maxBody: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #received = 0;
  #ended = false;
  #discarding = false;
  #paused = false;
  #error: Error | null = null;
  /** Readers waiting for bytes: every one is woken (two readers at once must both go on). */
  #waiters: (() => void)[] = [];

  /**
   * `contentLength` null: the body ends when the protocol says so (`finish`). `maxBody` (0 =
   * none) bounds a body of unknown length: past it, readers get TSGI_ERR_APP_BODY_TOO_LARGE
   * (a 413 when nothing was sent yet); a declared length over it is refused before the
   * application runs.
   */
  constructor(contentLength: number | null, flow: InputFlow | null = null, maxBody = 0) {
    this.#limit = contentLength ?? Number.POSITIVE_INFINITY;
    this.#flow = flow;
    this.#maxBody = maxBody;
    if (this.#limit === 0) this.#ended = true;
  }

  /** The input of every request without a body: it never changes, so one serves them all. */
  static readonly EMPTY: TsgiInput = new TsgiInput(0);

  /** An input that is already complete: a request without a body, or a body held whole. */
  static of(body: Uint8Array = EMPTY): TsgiInput {
    const input = new TsgiInput(body.length);
    if (body.length > 0) {
      input.#ended = false;
      input.feed(body);
    }
    return input;
  }

  // ---- the protocol's side ----

  /** The next body bytes from the wire; the chunk must stay unchanged afterwards (it is not copied). */
  feed(chunk: Uint8Array): void {
    if (this.#ended || chunk.length === 0 || this.#error) return;
    const room = this.#limit - this.#received;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.#received += part.length;
    if (this.#maxBody > 0 && this.#received > this.#maxBody) {
      this.#error = tsgiError("TSGI_ERR_APP_BODY_TOO_LARGE", { limit: this.#maxBody });
      this.discard();
      this.#notify();
      return;
    }
    if (this.#received >= this.#limit) this.#ended = true;
    if (!this.#discarding) {
      this.#chunks.push(part);
      this.#buffered += part.length;
      if (!this.#paused && this.#buffered > HIGH_WATER && this.#flow) {
        this.#paused = true;
        this.#flow.pause(true);
      }
    }
    this.#notify();
  }

  /**
   * The body's stream ended (STDIN_END, BODY_END, the HTTP request's end). Short of its
   * CONTENT_LENGTH it is not a body: readers get TSGI_ERR_APP_BODY_INCOMPLETE once they reach
   * the missing part (a FastCGI peer may end FCGI_STDIN early; the request is not whole).
   */
  finish(): void {
    if (this.#ended) return;
    if (this.#limit !== Number.POSITIVE_INFINITY && this.#received < this.#limit && !this.#error) {
      this.#error = tsgiError("TSGI_ERR_APP_BODY_INCOMPLETE", { received: this.#received, expected: this.#limit });
    }
    this.#ended = true;
    this.#notify();
  }

  /** The body will never complete (client gone, connection error): readers get `err`. */
  fail(err: Error): void {
    if (this.#ended && this.#chunks.length === 0) return;
    this.#error = err;
    this.#notify();
  }

  /** The response is over: whatever still arrives is dropped, and the socket flows again. */
  discard(): void {
    this.#discarding = true;
    this.#chunks = [];
    this.#buffered = 0;
    this.#resume();
  }

  /** Bytes received so far (at most CONTENT_LENGTH). */
  get received(): number {
    return this.#received;
  }

  // ---- the application's side ----

  /** Up to `size` bytes (all of the rest when `size` is absent or negative); empty at the end. */
  async read(size?: number): Promise<Uint8Array> {
    if (size === undefined || size < 0) {
      while (!this.#ended) await this.#wait();
      // "All of the rest" cannot be given when part of it never came.
      if (this.#error) throw this.#error;
      return this.#take(this.#buffered);
    }
    if (size === 0) return EMPTY;
    while (this.#buffered < size && !this.#ended) await this.#wait();
    this.#check();
    return this.#take(Math.min(size, this.#buffered));
  }

  /** One line, "\n" included (at most `size` bytes when given); empty at the end. */
  async readline(size?: number): Promise<Uint8Array> {
    const max = size === undefined || size < 0 ? Number.POSITIVE_INFINITY : size;
    for (;;) {
      const nl = this.#indexOfNewline();
      if (nl >= 0 && nl + 1 <= max) return this.#take(nl + 1);
      if (this.#buffered >= max) return this.#take(max);
      if (this.#ended) {
        this.#check();
        return this.#take(this.#buffered);
      }
      await this.#wait();
    }
  }

  async readlines(): Promise<Uint8Array[]> {
    const lines: Uint8Array[] = [];
    for (;;) {
      const line = await this.readline();
      if (line.length === 0) return lines;
      lines.push(line);
    }
  }

  /**
   * The chunks as they came, one a step: an iterator of its own a call, over the same body
   * (a second loop goes on where the first stopped). Not an async generator: a chunk there
   * cost the generator's await on the value, a promise to wait in and its closure, ~1 µs and
   * a dozen objects; here a chunk already buffered is a resolved promise and its result.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return new InputIterator({
      pull: () => this.#pull(),
      park: (wake) => {
        this.#resume();
        this.#waiters.push(wake);
      },
    });
  }

  // ---- internals ----

  /** The iterator's step (BodySource.pull). */
  #pull(): Uint8Array | typeof END | typeof WAIT {
    if (this.#chunks.length === 0 && !this.#ended && !this.#error) return WAIT;
    this.#check();
    if (this.#chunks.length === 0) return END;
    const chunk = this.#chunks.shift()!;
    this.#buffered -= chunk.length;
    this.#maybeResume();
    return chunk;
  }

  #check(): void {
    if (this.#error && !(this.#ended && this.#chunks.length > 0)) throw this.#error;
  }

  // A reader that waits needs more bytes than are buffered (a whole-body read, a long line):
  // the socket must flow whatever the high-water mark says.
  #wait(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    this.#resume();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
    });
  }

  #notify(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #maybeResume(): void {
    if (this.#paused && this.#buffered <= LOW_WATER) this.#resume();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#flow?.pause(false);
  }

  #indexOfNewline(): number {
    let base = 0;
    for (const chunk of this.#chunks) {
      const i = chunk.indexOf(0x0a);
      if (i >= 0) return base + i;
      base += chunk.length;
    }
    return -1;
  }

  /** Removes and returns the first `n` buffered bytes (n <= buffered). */
  #take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const first = this.#chunks[0]!;
    let out: Uint8Array;
    if (first.length === n) {
      this.#chunks.shift();
      out = first;
    } else if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      out = first.subarray(0, n);
    } else {
      out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0]!;
        const part = Math.min(c.length, n - at);
        out.set(c.subarray(0, part), at);
        at += part;
        if (part === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(part);
      }
    }
    this.#buffered -= n;
    this.#maybeResume();
    return out;
  }
}

/** What an InputIterator steps through: its input's chunks. */
interface BodySource {
  /**
   * The next chunk, END at the end, or WAIT with nothing buffered yet; throws the body's
   * error once the chunks before it are taken.
   */
  pull(): Uint8Array | typeof END | typeof WAIT;
  /** Calls `wake` once bytes, the end or an error came (the socket flows meanwhile). */
  park(wake: () => void): void;
}

/**
 * `for await (const chunk of environ["tsgi.input"])`. Steps asked for at once (next() called
 * again before the last settled) are answered in order: each waits behind the one before it.
 * Once the body ended, failed, or the loop left (return()), every step is done.
 */
class InputIterator implements AsyncIterableIterator<Uint8Array> {
  readonly #input: BodySource;
  #finished = false;
  /** The last step not yet settled (null: none), which a step asked for meanwhile follows. */
  #last: Promise<IteratorResult<Uint8Array>> | null = null;

  constructor(input: BodySource) {
    this.#input = input;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#last !== null) {
      const after = this.#last.then(
        () => this.#step(),
        () => this.#step(),
      );
      return this.#track(after);
    }
    return this.#step();
  }

  return(value?: unknown): Promise<IteratorResult<Uint8Array>> {
    this.#finished = true;
    return Promise.resolve({ value, done: true } as IteratorReturnResult<undefined>);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this;
  }

  /** This step's result, now when it can be told, else a promise settled when it can. */
  #step(): Promise<IteratorResult<Uint8Array>> {
    let now: IteratorResult<Uint8Array> | typeof WAIT;
    try {
      now = this.#take();
    } catch (err) {
      return Promise.reject(err);
    }
    if (now !== WAIT) return Promise.resolve(now);
    const step: Promise<IteratorResult<Uint8Array>> = new Promise((resolve, reject) => {
      const wake = () => {
        let later: IteratorResult<Uint8Array> | typeof WAIT;
        try {
          later = this.#take();
        } catch (err) {
          this.#settled(step);
          return reject(err);
        }
        if (later === WAIT) return this.#input.park(wake);
        this.#settled(step);
        resolve(later);
      };
      this.#input.park(wake);
    });
    this.#last = step;
    return step;
  }

  /** The next result, or WAIT; the iterator is done for good at the end and on the body's error (thrown). */
  #take(): IteratorResult<Uint8Array> | typeof WAIT {
    if (this.#finished) return done();
    let got: Uint8Array | typeof END | typeof WAIT;
    try {
      got = this.#input.pull();
    } catch (err) {
      this.#finished = true;
      throw err;
    }
    if (got === WAIT) return WAIT;
    if (got === END) {
      this.#finished = true;
      return done();
    }
    return { value: got, done: false };
  }

  #settled(step: Promise<IteratorResult<Uint8Array>>): void {
    if (this.#last === step) this.#last = null;
  }

  /** Remembers `step` as the last unsettled one until it settles. */
  #track(step: Promise<IteratorResult<Uint8Array>>): Promise<IteratorResult<Uint8Array>> {
    this.#last = step;
    const clear = () => {
      if (this.#last === step) this.#last = null;
    };
    step.then(clear, clear);
    return step;
  }
}
