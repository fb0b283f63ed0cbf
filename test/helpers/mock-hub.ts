// A local stand-in for the Hugging Face Hub (Bun.serve on 127.0.0.1, port 0) speaking the endpoints
// @huggingface/hub calls to list and download files, serving model folders from disk; with fault injection.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "pathe";

export interface MockRepo {
  /** Folder whose files make up the repo. */
  dir: string;
  /** Needs a valid token (401 without, as the Hub hides private repos). */
  private?: boolean;
  /** Gated: 401 without a token, 403 with one that has not been granted access. */
  gated?: boolean;
  /** Tokens granted access to a gated repo. */
  grantedTokens?: string[];
  /** Large files are Xet-backed: a client asking for Xet file info gets it (as the Hub answers today). */
  xet?: boolean;
}

export interface MockHubOptions {
  repos: Record<string, string | MockRepo>;
  /** Tokens the hub accepts; any other Bearer token gets 401 "Invalid credentials". */
  validTokens?: string[];
}

export interface MockFaults {
  /** End the body of the next `times` downloads of `path` after `bytes` bytes (Content-Length still promises all). */
  cut?: { path: string; bytes: number; times: number };
  /** Flip one byte of `path` in every download (size unchanged). */
  corrupt?: { path: string };
  /** Answer Range requests for `path` that do not start at 0 with the whole file (200). */
  ignoreRange?: { path: string };
  /** Answer every request with this status (e.g. 503). */
  status?: number;
}

export interface MockRequest {
  method: string;
  path: string;
  range: string | null;
  auth: string | null;
}

interface RepoFile {
  path: string;
  abs: string;
  size: number;
  /** git blob sha1 of the content (regular) or of the LFS pointer (LFS) */
  oid: string;
  sha256?: string;
}

const sha1 = (b: Uint8Array | string) => new Bun.CryptoHasher("sha1").update(b).digest("hex");
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array | string) => {
  const bytes = typeof b === "string" ? new TextEncoder().encode(b) : b;
  return new Bun.CryptoHasher("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
};
const isLfs = (p: string) => /\.(safetensors|bin|gguf|pt)$/.test(p);

function walk(dir: string, root = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(join(dir, d.name), root) : [relative(root, join(dir, d.name))],
  );
}

function describeRepo(dir: string): { files: RepoFile[]; commit: string } {
  const files = walk(dir)
    .sort()
    .map((path) => {
      const abs = join(dir, path);
      const data = readFileSync(abs);
      if (!isLfs(path)) return { path, abs, size: data.length, oid: gitOid(data) };
      const digest = sha256(data);
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${digest}\nsize ${data.length}\n`;
      return { path, abs, size: data.length, oid: gitOid(pointer), sha256: digest };
    });
  return { files, commit: sha1(files.map((f) => `${f.path}:${f.oid}`).join("\n")) };
}

export interface MockHub {
  url: string;
  requests: MockRequest[];
  faults: MockFaults;
  /** Commit id the hub reports for `repo`'s main branch. */
  commitOf(repo: string): string;
  /** The repo's files as the hub describes them. */
  filesOf(repo: string): RepoFile[];
  /** Requests that fetched file bytes (not probes, not API calls). */
  downloads(): MockRequest[];
  stop(): void;
  [Symbol.dispose](): void;
}

export function createMockHub(opts: MockHubOptions): MockHub {
  const repos = new Map<string, MockRepo & { files: RepoFile[]; commit: string }>();
  for (const [name, r] of Object.entries(opts.repos)) {
    const repo = typeof r === "string" ? { dir: r } : r;
    repos.set(name, { ...repo, ...describeRepo(repo.dir) });
  }
  const valid = new Set(opts.validTokens ?? []);
  const requests: MockRequest[] = [];
  const faults: MockFaults = {};
  const blobsBySha = new Map<string, RepoFile>();
  for (const r of repos.values()) for (const f of r.files) if (f.sha256) blobsBySha.set(f.sha256, f);

  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

  /** Access rules of the real Hub; returns an error Response or null. */
  const checkAccess = (name: string, req: Request): Response | null => {
    const auth = req.headers.get("authorization");
    const token = auth?.replace(/^Bearer\s+/i, "");
    if (token && !valid.has(token)) return json({ error: "Invalid credentials in Authorization header" }, 401);
    const repo = repos.get(name);
    if (!repo || (repo.private && !token)) {
      return json({ error: "Repository not found" }, token ? 404 : 401, { "x-error-code": "RepoNotFound" });
    }
    if (repo.gated && !(token && repo.grantedTokens?.includes(token))) {
      return token
        ? json({ error: `Access to model ${name} is restricted and you are not in the authorized list. Visit ${server.url}${name} to ask for access.` }, 403, { "x-error-code": "GatedRepo" })
        : json({ error: `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.` }, 401, { "x-error-code": "GatedRepo" });
    }
    return null;
  };

  const serveBytes = (req: Request, f: RepoFile, extra: Record<string, string>): Response => {
    let data: Uint8Array = readFileSync(f.abs);
    if (faults.corrupt?.path === f.path && data.length > 0) {
      data = Uint8Array.from(data);
      data[data.length >> 1]! ^= 0xff;
    }
    const range = req.headers.get("range");
    let start = 0;
    let end = data.length - 1;
    let status = 200;
    const m = range?.match(/^bytes=(\d+)-(\d*)$/);
    if (m && !(faults.ignoreRange?.path === f.path && m[1] !== "0")) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
      if (start >= data.length) {
        return new Response(null, { status: 416, headers: { "content-range": `bytes */${data.length}` } });
      }
      status = 206;
    }
    const headers: Record<string, string> = {
      ...extra,
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      "content-length": String(end - start + 1),
    };
    if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${data.length}`;
    let body = data.subarray(start, end + 1);
    const isProbe = range === "bytes=0-0";
    if (!isProbe && faults.cut?.path === f.path && faults.cut.times > 0) {
      faults.cut.times--;
      const keep = body.subarray(0, Math.max(0, faults.cut.bytes));
      // promise the whole range, send a part, then close: what a dropped connection looks like to the client
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(keep);
          c.close();
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body, { status, headers });
  };

  const server: Bun.Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req): Promise<Response> {
      const url = new URL(req.url);
      const path = decodeURIComponent(url.pathname);
      requests.push({ method: req.method, path, range: req.headers.get("range"), auth: req.headers.get("authorization") });
      if (faults.status) return json({ error: "Service unavailable" }, faults.status);

      let m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/);
      if (m) {
        const denied = checkAccess(m[1]!, req);
        if (denied) return denied;
        const repo = repos.get(m[1]!)!;
        if (!["main", "HEAD", repo.commit].includes(m[2]!)) return json({ error: "Revision not found" }, 404, { "x-error-code": "RevisionNotFound" });
        return json({
          _id: sha1(m[1]!).slice(0, 24),
          id: m[1],
          sha: repo.commit,
          private: Boolean(repo.private),
          gated: repo.gated ? "manual" : false,
          downloads: 0,
          likes: 0,
          lastModified: "2026-01-01T00:00:00.000Z",
          pipeline_tag: "text-generation",
          siblings: repo.files.map((f) => ({ rfilename: f.path })),
        });
      }

      m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/);
      if (m) {
        const denied = checkAccess(m[1]!, req);
        if (denied) return denied;
        const repo = repos.get(m[1]!)!;
        if (![repo.commit, "main"].includes(m[2]!)) return json({ error: "Revision not found" }, 404, { "x-error-code": "RevisionNotFound" });
        const prefix = m[3] ? `${m[3]}/` : "";
        const recursive = url.searchParams.get("recursive") === "true";
        const entries: unknown[] = [];
        const dirs = new Set<string>();
        for (const f of repo.files) {
          if (!f.path.startsWith(prefix)) continue;
          const rest = f.path.slice(prefix.length);
          if (!recursive && rest.includes("/")) {
            dirs.add(prefix + rest.split("/")[0]);
            continue;
          }
          entries.push({
            type: "file",
            oid: f.oid,
            size: f.size,
            path: f.path,
            ...(f.sha256 ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
          });
        }
        for (const d of dirs) entries.unshift({ type: "directory", oid: sha1(d), size: 0, path: d });
        return json(entries);
      }

      m = path.match(/^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/);
      if (m && req.method === "POST") {
        const denied = checkAccess(m[1]!, req);
        if (denied) return denied;
        const repo = repos.get(m[1]!)!;
        const body = (await req.json()) as { paths: string[] };
        return json(
          repo.files
            .filter((f) => body.paths.includes(f.path))
            .map((f) => ({
              type: "file",
              path: f.path,
              oid: f.oid,
              size: f.size,
              ...(f.sha256 ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
              lastCommit: { id: repo.commit, title: "fixture", date: "2026-01-01T00:00:00.000Z" },
            })),
        );
      }

      m = path.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
      if (m) {
        const denied = checkAccess(m[1]!, req);
        if (denied) return denied;
        const repo = repos.get(m[1]!)!;
        if (![repo.commit, "main"].includes(m[2]!)) return json({ error: "Revision not found" }, 404, { "x-error-code": "RevisionNotFound" });
        const f = repo.files.find((x) => x.path === m![3]);
        if (!f) return json({ error: "Entry not found" }, 404, { "x-error-code": "EntryNotFound" });
        const common = { "x-repo-commit": repo.commit };
        if (f.sha256 && repo.xet && req.headers.get("accept")?.includes("application/vnd.xet-fileinfo+json")) {
          // Xet-backed file: file info instead of a redirect (clients without Xet then GET the same URL plainly)
          const xetHash = sha256(new TextEncoder().encode(`xet:${f.sha256}`));
          return json({ hash: xetHash, refreshUrl: `${server.url}api/models/${m[1]}/xet-read-token/${repo.commit}` }, 200, {
            ...common,
            "content-type": "application/vnd.xet-fileinfo+json",
            "x-xet-hash": xetHash,
            "x-linked-size": String(f.size),
            "x-linked-etag": `"${f.sha256}"`,
            etag: `"${f.oid}"`,
            link: `<${server.url}api/models/${m[1]}/xet-read-token/${repo.commit}>; rel="xet-auth", <${server.url}xet/reconstruction/${xetHash}>; rel="xet-reconstruction-info"`,
          });
        }
        if (f.sha256) {
          // LFS files: the Hub redirects to its CDN and names the content in X-Linked-* headers
          return new Response(null, {
            status: 302,
            headers: {
              ...common,
              location: `${server.url}cdn/${f.sha256}`,
              "x-linked-etag": `"${f.sha256}"`,
              "x-linked-size": String(f.size),
              etag: `"${f.oid}"`,
            },
          });
        }
        return serveBytes(req, f, { ...common, etag: `"${f.oid}"` });
      }

      m = path.match(/^\/cdn\/([0-9a-f]{64})$/);
      if (m) {
        const f = blobsBySha.get(m[1]!);
        if (!f) return new Response("NoSuchKey", { status: 404 });
        return serveBytes(req, f, { etag: `"${f.sha256}"` });
      }
      return json({ error: "not found" }, 404);
    },
  });

  const hub: MockHub = {
    url: server.url.href.replace(/\/$/, ""),
    requests,
    faults,
    commitOf: (repo) => repos.get(repo)!.commit,
    filesOf: (repo) => repos.get(repo)!.files,
    downloads: () => requests.filter((r) => (r.path.startsWith("/cdn/") || r.path.includes("/resolve/")) && r.range !== "bytes=0-0" && r.method === "GET"),
    stop: () => server.stop(true),
    [Symbol.dispose]: () => server.stop(true),
  };
  return hub;
}

/** File sizes and hashes of a folder as the hub would list them (for assertions). */
export function fileSizes(dir: string): Record<string, number> {
  return Object.fromEntries(walk(dir).map((p) => [p, statSync(join(dir, p)).size]));
}
