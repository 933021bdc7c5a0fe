// The error catalogue and the native statuses agree, and docs/errors.md lists every code.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ERRORS, nativeStatusCode, tsgiError } from "../../src/errors.ts";
import { binding } from "../../src/native.ts";
import { errorsDoc } from "../../scripts/errors-doc.ts";

describe("error catalogue", () => {
  it("maps every native decoder status except OK to a TSGI_ERR code", () => {
    const statuses = binding.statuses.filter((s) => s !== "OK");
    expect(statuses.length).toBeGreaterThan(10);
    for (const status of statuses) expect(nativeStatusCode(status)).toBe(`TSGI_ERR_${status}`);
  });

  it("names every code TSGI_ERR_<AREA>_<CONDITION> with a known area", () => {
    for (const code of Object.keys(ERRORS)) {
      expect(code).toMatch(/^TSGI_ERR_(FCGI|UWSGI|ENVIRON|APP|RESPONSE|SETTINGS|PROJECT|CONFIG|POOL|MASTER|NATIVE)_[A-Z0-9_]+$/);
    }
  });

  it("fills message templates from details and keeps the code", () => {
    const err = tsgiError("TSGI_ERR_FCGI_PARAMS_TOO_LARGE", { limit: 65536 });
    expect(err.code).toBe("TSGI_ERR_FCGI_PARAMS_TOO_LARGE");
    expect(err.message).toBe("FastCGI params larger than max-params (65536 bytes)");
  });

  it("docs/errors.md is the catalogue as scripts/errors-doc.ts writes it", () => {
    const doc = readFileSync(join(import.meta.dirname, "..", "..", "docs", "errors.md"), "utf8");
    const documented = [...doc.matchAll(/^### (TSGI_ERR_[A-Z0-9_]+)$/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(Object.keys(ERRORS).sort());
    expect(doc).toBe(errorsDoc());
  });
});
