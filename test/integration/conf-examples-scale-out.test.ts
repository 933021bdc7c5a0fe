// conf-examples/scale-out/ (two tsgi hosts behind one front server) is checked as it is:
// `nginx -t` and `apache2 -t` accept nginx.conf and apache.conf unchanged; each host's
// tsgi.toml passes `tsgi check` once its /srv/mysite is a folder that exists (the application
// must exist for the check); tsgi.service passes `systemd-analyze verify` once its commands
// point at this checkout's bin/tsgi.js. test/daemon/scale-out.test.ts runs the same files
// across two network namespaces and kills a host under load.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { CONF_EXAMPLES, rewrite } from "../support/conf-example.ts";

const DIR = join(CONF_EXAMPLES, "scale-out");
const BIN = join(import.meta.dirname, "..", "..", "bin", "tsgi.js");
const tmp = mkdtempSync(join(tmpdir(), "tsgi-scale-out-conf-"));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("conf-examples/scale-out passes each tool's own check", () => {
  test("nginx -t -c conf-examples/scale-out/nginx.conf", () => {
    const run = spawnSync("nginx", ["-t", "-c", join(DIR, "nginx.conf")], { encoding: "utf8" });
    expect(run.stderr).toContain("test is successful");
    expect(run.status).toBe(0);
  });

  test("apache2 -t -f conf-examples/scale-out/apache.conf", () => {
    const run = spawnSync("apache2", ["-t", "-f", join(DIR, "apache.conf")], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toContain("Syntax OK");
    expect(run.status).toBe(0);
  });

  test.each(["host-a", "host-b"])("tsgi check -c %s/tsgi.toml (with /srv/mysite made a real folder)", (host) => {
    const site = join(tmp, host, "mysite");
    mkdirSync(site, { recursive: true });
    writeFileSync(join(site, "tsgi.ts"), "export const application = () => [];\n");
    const file = join(tmp, host, "tsgi.toml");
    writeFileSync(file, rewrite(join(DIR, host, "tsgi.toml"), [[/\/srv\/mysite/, site]]));
    const run = spawnSync(process.execPath, [BIN, "check", "-c", file], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  test("systemd-analyze verify tsgi.service (its commands pointed at this checkout)", () => {
    const unit = join(tmp, "tsgi.service");
    writeFileSync(unit, rewrite(join(DIR, "tsgi.service"), [[/\/usr\/local\/bin\/tsgi /, `${BIN} `]]));
    const run = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    expect(`${run.stdout}${run.stderr}`).toBe("");
    expect(run.status).toBe(0);
  });
});
