// The models the setup wizard and menu offer: the registry's (with what is on this machine) and other models
// in the Hugging Face cache. No network.
import type { ResolvedConfig } from "../config/schema.ts";
import type { ModelChoice } from "../config/wizard.ts";
import { formatBytes } from "../format.ts";
import { cachedRepos, listModelStatus } from "./status.ts";

export function listModelChoices(config: ResolvedConfig): ModelChoice[] {
  const registry = listModelStatus(config).map((m) => {
    const state = m.prepared ? "ready" : m.downloaded ? "downloaded, not prepared yet" : m.origin === "generated" ? "generated here, no download" : `${formatBytes(m.sizes.checkpointBytes)} download`;
    return { value: m.id, label: `${m.id}  ${m.title}`, hint: state, repo: m.repo };
  });
  return [...registry, ...cachedRepos(config).map((repo) => ({ value: repo, label: repo, hint: "in the Hugging Face cache" }))];
}
