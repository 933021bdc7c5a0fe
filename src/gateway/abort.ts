// A request's abort: what `tsgi.signal` reports (DESIGN §1) without paying for an
// AbortController on every request — the AbortSignal is made the first time the application
// asks for it (already aborted if the request was), and the server's own wait on an abort is
// a single callback slot, not an event listener.

export class RequestAbort {
  #controller: AbortController | null = null;
  #aborted = false;
  #reason: unknown = undefined;
  #onAbort: (() => void) | null = null;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** The AbortSignal the application sees as environ["tsgi.signal"]. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const fn = this.#onAbort;
    this.#onAbort = null;
    fn?.();
  }

  /** The server's one listener (the request runner's wait); replaces any previous one, null clears it. */
  onAbort(fn: (() => void) | null): void {
    if (this.#aborted) fn?.();
    else this.#onAbort = fn;
  }
}
