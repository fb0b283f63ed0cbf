// Load OpenTUI with its native library bound lazily. Importing @opentui/core opens libopentui with bun:ffi's
// dlopen, which compiles a call stub for each of the ~450 functions it declares before the import returns
// (most of OpenTUI's start-up: about 300 ms on a slow core); the TUI's first frame calls about 45 of them.
// While OpenTUI is imported, bun:ffi's dlopen is swapped for one that looks every function up (dlsym: a
// missing one still fails at once, as bun's does) but compiles its stub on first call (bun:ffi CFunction,
// the same signature). Any other library, or any failure to set this up, goes to bun's own dlopen unchanged.
import type { FFIFunction, Pointer } from "bun:ffi";

type Ffi = typeof import("bun:ffi");
type Definitions = Record<string, FFIFunction>;

/** The C library that has dlopen and dlsym, per platform (glibc 2.34+ has them in libc itself). */
const LIBC: Partial<Record<NodeJS.Platform, string[]>> = { linux: ["libc.so.6", "libdl.so.2"], darwin: ["libSystem.B.dylib"] };
const RTLD_NOW = 2;

/** How many functions were compiled (for tests and the benchmark's notes). */
export const lazyStats = { libraries: 0, declared: 0, compiled: 0 };

function openDl(ffi: Ffi, dlopen: Ffi["dlopen"]) {
  for (const name of LIBC[process.platform] ?? []) {
    try {
      return dlopen(name, {
        dlopen: { args: ["cstring", "i32"], returns: "ptr" },
        dlsym: { args: ["ptr", "cstring"], returns: "ptr" },
        dlclose: { args: ["ptr"], returns: "i32" },
      }).symbols;
    } catch {
      // not this name: try the next
    }
  }
  return undefined;
}

const cString = (s: string) => Buffer.from(`${s}\0`);

/**
 * A dlopen whose functions are looked up now and compiled when first used. Returns undefined when it cannot
 * (no dlopen/dlsym to call): the caller then uses bun's.
 */
export function lazyDlopen(ffi: Ffi, dlopen: Ffi["dlopen"], path: string, defs: Definitions) {
  const dl = openDl(ffi, dlopen);
  if (!dl) return undefined;
  const handle = dl.dlopen(cString(path), RTLD_NOW);
  if (!handle) return undefined;
  const pointers = new Map<string, Pointer>();
  for (const name of Object.keys(defs)) {
    const p = dl.dlsym(handle, cString(name));
    if (!p) {
      dl.dlclose(handle);
      throw new Error(`${path}: symbol "${name}" not found`);
    }
    pointers.set(name, p as Pointer);
  }
  const compiled = new Map<string, (...args: unknown[]) => unknown>();
  const get = (name: string) => {
    let fn = compiled.get(name);
    if (!fn) {
      fn = ffi.CFunction({ ...defs[name]!, ptr: pointers.get(name)! }) as unknown as (...args: unknown[]) => unknown;
      compiled.set(name, fn);
      lazyStats.compiled++;
    }
    return fn;
  };
  const symbols = new Proxy({} as Record<string, unknown>, {
    get: (_, name) => (typeof name === "string" && pointers.has(name) ? get(name) : undefined),
    has: (_, name) => typeof name === "string" && pointers.has(name),
    ownKeys: () => [...pointers.keys()],
    // an accessor, so that listing the functions (Object.keys, spreading) compiles none of them
    getOwnPropertyDescriptor: (_, name) => (typeof name === "string" && pointers.has(name) ? { configurable: true, enumerable: true, get: () => get(name) } : undefined),
  });
  lazyStats.libraries++;
  lazyStats.declared += pointers.size;
  let closed = false;
  return {
    symbols,
    close() {
      if (closed) return;
      closed = true;
      dl.dlclose(handle);
    },
  };
}

/** Import @opentui/core with libopentui bound lazily (see the top of this file). */
export async function importOpenTui(): Promise<typeof import("@opentui/core")> {
  // the module object OpenTUI itself gets from require("bun:ffi")
  const ffi = require("bun:ffi") as Ffi;
  const original = ffi.dlopen;
  const swapped: Ffi["dlopen"] = ((path: string | URL, defs: Definitions) => {
    const p = String(path);
    if (/libopentui/.test(p)) {
      try {
        const lib = lazyDlopen(ffi, original, p, defs);
        if (lib) return lib;
      } catch {
        // bun's own dlopen below (it says what is wrong: a missing library or function)
      }
    }
    return original(path, defs);
  }) as Ffi["dlopen"];
  try {
    (ffi as { dlopen: Ffi["dlopen"] }).dlopen = swapped;
  } catch {
    return import("@opentui/core"); // a read-only module object: nothing to do
  }
  try {
    return await import("@opentui/core");
  } finally {
    (ffi as { dlopen: Ffi["dlopen"] }).dlopen = original;
  }
}
