// Finding a model in the standard Hugging Face hub cache (the layout Python's huggingface_hub writes);
// where the cache folder is comes from the environment (lib/config resolvePaths: paths.hfCacheDir).
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "pathe";

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
