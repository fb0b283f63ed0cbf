// `flashchat models` as text: the registry with sizes, RAM, experts and what is on this machine.
import { formatBytes, renderTable } from "../format.ts";
import { hfRepoFolderName } from "../model/hf-cache.ts";
import type { ModelStatus } from "./status.ts";

export function renderModelTable(
  models: ModelStatus[],
  others: { prepared: string[]; cached: string[] },
  o: { hfCacheDir: string; artifactsDir: string; color?: boolean },
): string {
  const c = (code: string, s: string) => (o.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const size = formatBytes;
  const rows = models.map((m) => {
    const here = m.prepared ? "ready" : m.downloaded ? "downloaded" : m.downloadedBytes > 0 ? `partial (${formatBytes(m.downloadedBytes)})` : "-";
    return [
      `${m.current ? "*" : " "} ${m.id}`,
      m.title,
      m.origin === "generated" ? "generated" : m.format,
      m.origin === "generated" ? "none" : size(m.sizes.checkpointBytes),
      `${size(m.sizes.denseBytes + m.sizes.expertsBytes)} (+${size(m.sizes.experts2bitBytes)} 2-bit)`,
      `${size(m.sizes.ramMinBytes)} / ${size(m.sizes.ramRecommendedBytes)}`,
      String(m.activeExperts),
      here,
    ];
  });
  const head = ["  id", "model", "source", "download", "prepared on disk", "RAM min / good", "K", "here"];
  const out = [renderTable(rows, { head, style: (line, i) => (i < 0 ? c("1", line) : models[i]!.prepared ? c("32", line) : line) })];
  out.push("");
  out.push("  * = the model MODEL_REPO names. Sizes are computed from each model's dimensions (the Hub's file sizes may differ a little).");
  out.push("  K = experts read per token (ACTIVE_EXPERTS overrides). RAM: min runs it; good keeps the hot experts in the page cache.");
  const demo = models.find((m) => m.id === "demo");
  if (demo) out.push(`  demo: ${demo.description}.`);
  out.push("  Any other Hugging Face repo of the Qwen3.5-MoE / Qwen3-Next family works too: --model org/name (or a local folder).");
  out.push("");
  out.push(`  Set one up:  flashchat setup --model ID     Downloads: ${o.hfCacheDir}     Prepared: ${o.artifactsDir}`);
  for (const m of models.filter((x) => x.downloadDeletable)) {
    out.push(`  ${m.id} is prepared: its download (${formatBytes(m.downloadedBytes)} in ${o.hfCacheDir}/${hfRepoFolderName(m.repo)}) is no longer needed: flashchat models rm ${m.id} --download`);
  }
  if (others.cached.length) out.push(`  Also in the Hugging Face cache: ${others.cached.join(", ")}`);
  if (others.prepared.length) out.push(`  Also prepared: ${others.prepared.join(", ")}`);
  return out.join("\n");
}
