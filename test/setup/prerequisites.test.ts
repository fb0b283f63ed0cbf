import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "pathe";
import { checkPrerequisites, detectOsFamily, installHint } from "../../lib/setup/prerequisites.ts";

test("the system family decides the install command", () => {
  expect(detectOsFamily("darwin", {})).toBe("macos");
  expect(detectOsFamily("linux", { ID: "ubuntu", ID_LIKE: "debian" })).toBe("debian");
  expect(detectOsFamily("linux", { ID: "fedora" })).toBe("fedora");
  expect(detectOsFamily("linux", { ID: "rocky", ID_LIKE: "rhel centos fedora" })).toBe("fedora");
  expect(detectOsFamily("linux", { ID: "arch" })).toBe("arch");
  expect(detectOsFamily("linux", { ID: "nixos" })).toBe("linux");
  expect(installHint("debian", ["make"])).toBe("install them: sudo apt-get install -y build-essential");
  expect(installHint("fedora", ["a C compiler"])).toBe("install them: sudo dnf install -y gcc make");
  expect(installHint("macos", ["the Xcode command line tools"])).toBe("install the Xcode command line tools: xcode-select --install");
  expect(installHint("linux", ["a C compiler", "make"])).toBe("install a C compiler and make with your system's package manager");
  expect(installHint("debian", [])).toBe("");
});

test("a compiler and make are found on PATH, and what is missing is named", async () => {
  const dir = mkdtempSync(join(tmpdir(), "flashchat-prereq-"));
  try {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const none = await checkPrerequisites({ PATH: empty }, "linux");
    expect(none.ok).toBe(false);
    expect(none.missing).toEqual(["a C compiler", "make"]);
    expect(none.installHint).not.toBe("");

    const bin = join(dir, "bin");
    mkdirSync(bin);
    for (const tool of ["cc", "make"]) {
      writeFileSync(join(bin, tool), "#!/bin/sh\nexit 0\n");
      chmodSync(join(bin, tool), 0o755);
    }
    const all = await checkPrerequisites({ PATH: bin }, "linux");
    expect(all).toEqual({ ok: true, found: { cc: join(bin, "cc"), make: join(bin, "make") }, missing: [], installHint: "" });
    // $CC wins when it names a compiler that exists
    const viaCC = await checkPrerequisites({ PATH: join(dir, "empty"), CC: join(bin, "cc") }, "linux");
    expect(viaCC.found.cc).toBe(join(bin, "cc"));
    expect(viaCC.missing).toEqual(["make"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
