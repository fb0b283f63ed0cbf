// Build prerequisites of the engine (a C compiler and make; the Xcode command line tools on macOS),
// and exactly how to install what is missing on the common systems.
import { existsSync, readFileSync } from "node:fs";

export interface Prerequisites {
  ok: boolean;
  /** What was found, e.g. { cc: "/usr/bin/cc", make: "/usr/bin/make" }. */
  found: Record<string, string>;
  missing: string[];
  /** One command (or instruction) that installs everything missing; "" when nothing is. */
  installHint: string;
}

export type OsFamily = "macos" | "debian" | "fedora" | "arch" | "alpine" | "suse" | "linux" | "other";

/** Which family of system this is (for the install command). */
export function detectOsFamily(platform = process.platform, osRelease = readOsRelease()): OsFamily {
  if (platform === "darwin") return "macos";
  if (platform !== "linux") return "other";
  const ids = `${osRelease.ID ?? ""} ${osRelease.ID_LIKE ?? ""}`.toLowerCase();
  if (/debian|ubuntu/.test(ids)) return "debian";
  if (/fedora|rhel|centos/.test(ids)) return "fedora";
  if (/arch/.test(ids)) return "arch";
  if (/alpine/.test(ids)) return "alpine";
  if (/suse/.test(ids)) return "suse";
  return "linux";
}

function readOsRelease(): Record<string, string> {
  for (const p of ["/etc/os-release", "/usr/lib/os-release"]) {
    if (!existsSync(p)) continue;
    const out: Record<string, string> = {};
    for (const line of readFileSync(p, "utf8").split("\n")) {
      const m = /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim());
      if (m) out[m[1]!] = m[3]!;
    }
    return out;
  }
  return {};
}

/** The install command for the missing tools on this family of system. */
export function installHint(os: OsFamily, missing: readonly string[]): string {
  if (missing.length === 0) return "";
  switch (os) {
    case "macos":
      return "install the Xcode command line tools: xcode-select --install";
    case "debian":
      return "install them: sudo apt-get install -y build-essential";
    case "fedora":
      return "install them: sudo dnf install -y gcc make";
    case "arch":
      return "install them: sudo pacman -S --needed base-devel";
    case "alpine":
      return "install them: sudo apk add build-base";
    case "suse":
      return "install them: sudo zypper install -y gcc make";
    default:
      return `install ${missing.join(" and ")} with your system's package manager`;
  }
}

/**
 * Check for what `make engine` needs: a C compiler ($CC, else cc, clang or gcc) and make; on macOS also the
 * command line tools (xcode-select -p), without which /usr/bin/cc is only a stub that offers to install them.
 */
export async function checkPrerequisites(env: Record<string, string | undefined> = process.env, platform = process.platform): Promise<Prerequisites> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  const PATH = env.PATH ?? "";
  const which = (name: string) => Bun.which(name, { PATH }) ?? "";
  const cc = [env.CC, "cc", "clang", "gcc"].filter((c): c is string => Boolean(c)).map((c) => (c.includes("/") ? (existsSync(c) ? c : "") : which(c))).find(Boolean);
  if (cc) found.cc = cc;
  else missing.push("a C compiler");
  const make = which("make");
  if (make) found.make = make;
  else missing.push("make");
  if (platform === "darwin") {
    const { $ } = await import("zx"); // macOS only: not loaded elsewhere
    const r = await $({ quiet: true, nothrow: true })`xcode-select -p`;
    if (r.exitCode === 0 && r.stdout.trim()) found.xcode = r.stdout.trim();
    else missing.push("the Xcode command line tools");
  }
  return { ok: missing.length === 0, found, missing, installHint: installHint(detectOsFamily(platform), missing) };
}
