// agent-c/base/sha256.c, the log hash the attestation signs: every block function (the x86 SHA
// extensions where this CPU has them, libmd's portable one, and the ARMv8 SHA2 one, cross-built
// and run under qemu-user as the arm64 agent would run it) against Node's crypto, for every
// length around the block and padding boundaries and for data fed in uneven pieces.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "dpndncy-sha256-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// reads stdin; prints the implementation, the hash fed whole, and fed in pieces of 1..97 bytes
const DRIVER = `
#include <stdio.h>
#include <stdlib.h>
#include "base/sha256.h"
int main(void) {
	static unsigned char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, stdin), off = 0, k = 1;
	struct sha256 a, b;
	char ha[65], hb[65];
	sha256_init(&a);
	sha256_update(&a, buf, n);
	sha256_hex(&a, ha);
	sha256_init(&b);
	while (off < n) {
		size_t m = k < n - off ? k : n - off;
		sha256_update(&b, buf + off, m);
		off += m;
		k = k % 97 + 1;
	}
	sha256_hex(&b, hb);
	printf("%s %s %s\\n", sha256_impl(), ha, hb);
	return 0;
}
`;

function build(cc = "gcc", libdir?: string): string {
  writeFileSync(join(dir, "driver.c"), DRIVER);
  const out = join(dir, `driver-${cc}`);
  execFileSync(cc, [
    ...(libdir ? ["-static", `-L${libdir}`] : []),
    "-O2",
    "-Wall",
    "-Werror",
    "-I",
    join(ROOT, "agent-c"),
    join(dir, "driver.c"),
    join(ROOT, "agent-c/base/sha256.c"),
    "-o",
    out,
    "-lmd",
  ]);
  return out;
}

describe("agent-c/base/sha256.c", () => {
  const bin = build();
  const hasShaNi = /\bsha_ni\b/.test(execFileSync("cat", ["/proc/cpuinfo"], { encoding: "utf8" }));
  const lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 65536 + 7, 1 << 20];

  it("arm64 (cross-built, under qemu-aarch64-static): ARMv8 SHA2 and portable equal Node's SHA-256", () => {
    // scripts/prereqs.sh installs the arm64 cross toolchain (release build) and qemu-user-static
    const arm = build("aarch64-linux-gnu-gcc", "/usr/lib/aarch64-linux-gnu");
    for (const [cpu, force, want] of [
      ["max", "", "armv8-sha2"],
      ["max", "portable", "portable"],
    ] as const) {
      for (const len of [0, 55, 56, 64, 65, 1000, 65536 + 7]) {
        const data = randomBytes(len);
        const [used, whole, pieces] = execFileSync("qemu-aarch64-static", ["-cpu", cpu, arm], {
          input: data,
          env: { ...process.env, DPNDNCY_SHA256: force },
          encoding: "utf8",
        })
          .trim()
          .split(" ");
        const digest = createHash("sha256").update(data).digest("hex");
        expect(used).toBe(want);
        expect(whole, `arm64 ${want} length ${len}`).toBe(digest);
        expect(pieces, `arm64 ${want} length ${len} in pieces`).toBe(digest);
      }
    }
  });

  for (const impl of ["default", "portable"] as const) {
    it(`${impl === "default" ? (hasShaNi ? "sha-ni" : "portable (this CPU has no SHA extensions)") : "portable (DPNDNCY_SHA256=portable)"}: equals Node's SHA-256 for every length`, () => {
      for (const len of lengths) {
        const data = randomBytes(len);
        const want = createHash("sha256").update(data).digest("hex");
        const env = { ...process.env, DPNDNCY_SHA256: impl === "portable" ? "portable" : "" };
        const [used, whole, pieces] = execFileSync(bin, { input: data, env, encoding: "utf8" })
          .trim()
          .split(" ");
        expect(used).toBe(impl === "portable" || !hasShaNi ? "portable" : "sha-ni");
        expect(whole, `length ${len}`).toBe(want);
        expect(pieces, `length ${len} in pieces`).toBe(want);
      }
    });
  }
});
