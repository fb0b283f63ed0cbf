// The one consent screen before downloads or large writes: what will happen, bytes to download and to write,
// free disk; Y/n on a terminal, --yes elsewhere (never a prompt without a terminal or under CI).
import { UserError } from "../errors.ts";
import { fitsOnDisk, freeDiskBytes } from "../fs.ts";
import { formatBytes } from "../format.ts";
import { isInteractive } from "../term.ts";
import { diskNeeds, type SetupPlan } from "./plan.ts";

/** Writes below this (per run) need no consent: the demo model, a rebuilt engine. */
export const LARGE_WRITE_BYTES = 200e6;

export const totalDownloadBytes = (plan: SetupPlan) => plan.steps.filter((s) => !s.done).reduce((a, s) => a + s.downloadBytes, 0);
export const totalWriteBytes = (plan: SetupPlan) => plan.steps.filter((s) => !s.done).reduce((a, s) => a + s.writeBytes, 0);

/** Does running this plan need the user's yes? */
export const needsConsent = (plan: SetupPlan) => totalDownloadBytes(plan) > 0 || totalWriteBytes(plan) >= LARGE_WRITE_BYTES;

const home = process.env.HOME;
const tilde = (p: string) => (home && p.startsWith(`${home}/`) ? `~${p.slice(home.length)}` : p);

/** The plan as the user reads it: one line per step (✔ done, • to do), totals and free disk. */
export function renderPlan(plan: SetupPlan, opts: { color?: boolean } = {}): string {
  const c = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const t = plan.target;
  const title = t.entry ? `${t.entry.title} (${t.repo})` : t.repo;
  const lines = [`Setting up ${title}`];
  const width = Math.max(...plan.steps.map((s) => s.title.length));
  for (const s of plan.steps) {
    const mark = s.done ? c("32", "✔") : c("36", "•");
    const size = !s.done && (s.downloadBytes || s.writeBytes) ? `  [${s.downloadBytes ? `download ${formatBytes(s.downloadBytes)}` : `write ${s.estimated ? "≈" : ""}${formatBytes(s.writeBytes)}`}]` : "";
    lines.push(`  ${mark} ${s.title.padEnd(width)}  ${tilde(s.detail)}${size}`);
  }
  const dl = totalDownloadBytes(plan);
  const wr = totalWriteBytes(plan);
  if (dl || wr) {
    lines.push("");
    const approx = plan.steps.some((s) => !s.done && s.estimated && s.writeBytes) ? "≈" : "";
    lines.push(`  ${[dl ? `To download: ${formatBytes(dl)}` : "Nothing to download", wr ? `to write: ${approx}${formatBytes(wr)}` : ""].filter(Boolean).join("   ")}`);
    for (const d of diskNeeds(plan)) {
      const free = freeDiskBytes(d.dir);
      const short = free < d.needBytes;
      lines.push(`  Free disk: ${formatBytes(free)} on the disk of ${tilde(d.dir)}${short ? c("31", ` (needs ${formatBytes(d.needBytes)})`) : ""}`);
    }
  }
  for (const n of plan.notes) lines.push(`  ${c("33", "!")} ${n}`);
  return lines.join("\n");
}

/** Stop before starting when a disk cannot hold what the steps will write there. */
export function checkDisks(plan: SetupPlan): void {
  for (const d of diskNeeds(plan)) {
    if (!fitsOnDisk(d.dir, d.needBytes)) {
      const free = freeDiskBytes(d.dir);
      throw new UserError(
        `not enough free disk: setting up ${plan.target.repo} needs about ${formatBytes(d.needBytes)} in ${d.dir}, ${formatBytes(free)} is free`,
        "free some space, or put the Hugging Face cache (HF_HOME / HF_HUB_CACHE) or ARTIFACTS_DIR on a bigger disk",
      );
    }
  }
}

export interface ConsentOptions {
  yes?: boolean;
  /** A terminal to ask on (default: stdin is a TTY and CI is not set). */
  interactive?: boolean;
  /** Ask the question (default: consola's confirm prompt); resolve false for no. */
  confirm?: (question: string) => Promise<boolean>;
  /** How to run this again, for messages ("flashchat setup --model demo"). */
  resumeCommand: string;
}

/** Ask once (or take --yes); without a terminal and without --yes stop and name the flag. Throws when declined. */
export async function askConsent(plan: SetupPlan, opts: ConsentOptions): Promise<void> {
  if (opts.yes) return;
  const dl = totalDownloadBytes(plan);
  const wr = totalWriteBytes(plan);
  const what = [dl ? `download ${formatBytes(dl)}` : "", wr ? `write about ${formatBytes(wr)}` : ""].filter(Boolean).join(" and ");
  if (!(opts.interactive ?? isInteractive())) {
    throw new UserError(
      `setting up ${plan.target.repo} needs your consent to ${what}, and there is no terminal to ask on`,
      `re-run with --yes to agree (e.g. ${opts.resumeCommand} --yes)`,
    );
  }
  const confirm =
    opts.confirm ??
    (async (q: string) => {
      const { consola } = await import("consola");
      try {
        return (await consola.prompt(q, { type: "confirm", initial: true, cancel: "reject" })) === true;
      } catch {
        return false; // Ctrl-C: a no
      }
    });
  if (!(await confirm(`Proceed: ${what}?`))) {
    throw new UserError(
      "setup cancelled: nothing was downloaded or written",
      `to continue later, run: ${opts.resumeCommand} (a download or repack that was started resumes where it stopped)`,
    );
  }
}
