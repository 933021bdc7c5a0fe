// Listen addresses as the settings spell them — `fastcgi:HOST:PORT`, `uwsgi:unix:PATH`,
// `http:[::1]:8000` — parsed once, with an error that names the form expected.

import { tsgiError } from "../errors.ts";

export type Protocol = "fastcgi" | "uwsgi" | "http";

export type ListenSpec =
  | { protocol: Protocol; text: string; path: string }
  | { protocol: Protocol; text: string; host: string; port: number };

const PROTOCOLS = new Set<string>(["fastcgi", "uwsgi", "http"]);

export function parseListen(text: string): ListenSpec {
  const bad = () =>
    tsgiError("TSGI_ERR_CONFIG_LISTEN", {
      listen: JSON.stringify(text),
    });
  const colon = text.indexOf(":");
  const protocol = text.slice(0, colon);
  if (colon < 0 || !PROTOCOLS.has(protocol)) throw bad();
  const rest = text.slice(colon + 1);
  if (rest.startsWith("unix:")) {
    const path = rest.slice("unix:".length);
    if (!path) throw bad();
    return { protocol: protocol as Protocol, text, path };
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(rest);
  if (!m) throw bad();
  const port = Number(m[2]);
  if (port > 65535) throw bad();
  const host = m[1]!.startsWith("[") ? m[1]!.slice(1, -1) : m[1]!;
  return { protocol: protocol as Protocol, text, host, port };
}

/** How a listener is shown to people: "fastcgi unix:/run/x.sock" or "http 127.0.0.1:8000". */
export function describeListen(spec: ListenSpec, port?: number): string {
  if ("path" in spec) return `${spec.protocol} unix:${spec.path}`;
  const host = spec.host.includes(":") ? `[${spec.host}]` : spec.host;
  return `${spec.protocol} ${host}:${port ?? spec.port}`;
}
