// Finding a model in the standard Hugging Face hub cache (the layout Python's huggingface_hub writes).
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "pathe";

/** The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function resolveHfCacheDir(env: Record<string, string | undefined>, home: string): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, "hub");
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "huggingface", "hub");
}

/** `org/name` -> `models--org--name` (huggingface_hub's repo folder name). */
export const hfRepoFolderName = (repo: string) => `models--${repo.split("/").join("--")}`;

/**
 * The snapshot folder of `repo` in the cache: the revision named by refs/main if its snapshot exists,
 * else the most recently modified snapshot; "" when the repo is not in the cache.
 */
export function findHfSnapshot(hfCacheDir: string, repo: string): string {
  const repoDir = join(hfCacheDir, hfRepoFolderName(repo));
  const snapshots = join(repoDir, "snapshots");
  if (!existsSync(snapshots)) return "";
  const refMain = join(repoDir, "refs", "main");
  if (existsSync(refMain)) {
    const rev = readFileSync(refMain, "utf8").trim();
    if (rev && existsSync(join(snapshots, rev))) return join(snapshots, rev);
  }
  let best = "";
  let bestTime = -1;
  for (const name of readdirSync(snapshots)) {
    const p = join(snapshots, name);
    const st = statSync(p);
    if (st.isDirectory() && st.mtimeMs > bestTime) {
      best = p;
      bestTime = st.mtimeMs;
    }
  }
  return best;
}
