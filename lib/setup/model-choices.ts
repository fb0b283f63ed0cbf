// The wizard's model list: lib/model/choices' models (the registry's and the others prepared here, with what
// is set up) plus the other models in the Hugging Face cache, shaped as the wizard's choices. No network.
import type { ResolvedConfig } from "../config/schema.ts";
import type { ModelChoice } from "../config/wizard.ts";
import { formatBytes } from "../format.ts";
import { listModelChoices as listModels } from "../model/choices.ts";
import { estimateSizes, MODELS } from "../model/registry.ts";
import { cachedRepos } from "./status.ts";

export function listModelChoices(config: ResolvedConfig): ModelChoice[] {
  const models = listModels(config).map((c): ModelChoice => {
    const entry = MODELS.find((m) => m.id === c.id);
    const state = c.prepared ? "ready" : c.downloaded ? "downloaded, not prepared yet"
      : entry?.origin === "generated" ? "generated here, no download" : entry ? `${formatBytes(estimateSizes(entry.arch, { format: entry.format, bits: entry.bits }).checkpointBytes)} download` : "";
    return { value: c.id, label: c.kind === "registry" ? `${c.id}  ${c.title}` : c.id, hint: state || undefined, repo: entry?.repo };
  });
  const named = new Set(models.map((m) => m.value.toLowerCase()));
  const cached = cachedRepos(config).filter((r) => !named.has(r.toLowerCase()));
  return [...models, ...cached.map((repo) => ({ value: repo, label: repo, hint: "in the Hugging Face cache" }))];
}
