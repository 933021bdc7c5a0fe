// The project's source files, watched for `tsgi runserver`: one inotify watch per directory
// under the root (fs.watch, not recursive — Node 20's recursive mode on Linux walks
// node_modules too, thousands of watches in a real project), new directories watched as they
// appear. node_modules, dot-directories and dotfiles are left out, and only files of the
// extensions a module can be written in count: a database or log file the application writes
// into the project must not restart it on every request. A burst of events (an editor saves
// through a temporary file and a rename) is one change, `DEBOUNCE_MS` after the last event.

import { readdirSync, statSync, watch, type FSWatcher } from "node:fs";
import { join, relative, sep } from "node:path";

/** Quiet time after the last event before a change is reported: an editor's save is several events. */
export const DEBOUNCE_MS = 50;

/** What a module of a project can be written in, and the files that configure how it loads. */
const SOURCE = /\.(ts|mts|cts|tsx|js|mjs|cjs|jsx|json)$/;
const SKIPPED_DIRS = new Set(["node_modules"]);

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function skipped(name: string): boolean {
  return name.startsWith(".") || SKIPPED_DIRS.has(name);
}

export class ProjectWatcher {
  readonly root: string;
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #onChange: (files: string[]) => void;
  #changed = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  /** `onChange` gets the changed files, relative to `root`. */
  constructor(root: string, onChange: (files: string[]) => void) {
    this.root = root;
    this.#onChange = onChange;
    this.#watchTree(root);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  #watchTree(dir: string): void {
    if (this.#closed || this.#watchers.has(dir)) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, name) => this.#event(dir, name?.toString() ?? null));
    } catch {
      return; // gone already, or not readable: nothing to watch
    }
    // A watched directory removed (or the watch failing) ends that watch only.
    watcher.on("error", () => this.#unwatch(dir));
    this.#watchers.set(dir, watcher);
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory() && !skipped(e.name)) this.#watchTree(join(dir, e.name));
  }

  #unwatch(dir: string): void {
    for (const [path, w] of this.#watchers) {
      if (path === dir || path.startsWith(dir + sep)) {
        w.close();
        this.#watchers.delete(path);
      }
    }
  }

  #event(dir: string, name: string | null): void {
    if (this.#closed || name === null || skipped(name)) return;
    const path = join(dir, name);
    // A directory created (or moved in) is watched from now on; files already in it count as changed.
    if (!SOURCE.test(name)) {
      if (!isDirectory(path) || this.#watchers.has(path)) return;
      this.#watchTree(path);
    }
    this.#changed.add(relative(this.root, path));
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const files = [...this.#changed];
      this.#changed = new Set();
      this.#onChange(files);
    }, DEBOUNCE_MS);
  }
}
