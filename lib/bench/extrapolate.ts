// From a bench slice (the first few layers of a model) to the whole model: the engine's per-layer decode time and
// bytes (fullbench), averaged per kind of layer, summed over the full model's layer pattern, plus the lm_head.
// The slices are dominated by the lm_head (one per model, whatever its depth), so their own tok/s says little about
// the full model's; this does.
import { formatNumber } from "./stats.ts";

export type LayerKind = "linear" | "full";

export interface LayerFigure {
  kind: LayerKind;
  /** median decode time of this layer per token, ms */
  ms: number;
  /** bytes the layer's dense matrices (attention, router, shared expert) hold */
  denseBytes: number;
  /** bytes of the K routed experts a token reads in this layer */
  expertBytes: number;
}

export interface SliceFigures {
  layers: LayerFigure[];
  /** final norm + lm_head per token, ms */
  headMs: number;
  headBytes: number;
}

export interface Extrapolation {
  nLayers: number;
  msPerToken: number;
  tokS: number;
  bytesPerToken: number;
  /** share of the bytes per token that are the lm_head */
  headShare: number;
  /** layer kinds of the full model that the slice has none of, estimated from the other kind */
  missingKinds: LayerKind[];
}

/** Layer kinds of a Qwen3.5/3-Next hybrid: every `interval`-th layer (1-based) is full attention. */
export const layerKinds = (nLayers: number, interval: number): LayerKind[] =>
  Array.from({ length: nLayers }, (_, i) => ((i + 1) % interval === 0 ? "full" : "linear"));

/** The slice's measured figures as a whole (what it would print as its own tok/s from these parts). */
export const sliceTotal = (s: SliceFigures) => resolveExtrapolation(s, s.layers.map((l) => l.kind));

/**
 * The full model's decode time and bytes per token: the lm_head once, and each of its layers at the mean time and
 * bytes of the slice's layers of the same kind. A kind the slice lacks (a 2-layer slice has no full-attention layer)
 * takes the other kind's mean time and bytes, and is listed in `missingKinds` so the caller says so.
 */
export function resolveExtrapolation(s: SliceFigures, kinds: readonly LayerKind[]): Extrapolation {
  if (!s.layers.length) throw new Error("bug: resolveExtrapolation() of a slice with no layers");
  const mean = (xs: LayerFigure[], f: (l: LayerFigure) => number) => xs.reduce((a, l) => a + f(l), 0) / xs.length;
  const byKind = new Map<LayerKind, { ms: number; bytes: number }>();
  for (const k of ["linear", "full"] as const) {
    const xs = s.layers.filter((l) => l.kind === k);
    if (xs.length) byKind.set(k, { ms: mean(xs, (l) => l.ms), bytes: mean(xs, (l) => l.denseBytes + l.expertBytes) });
  }
  const missing = new Set<LayerKind>();
  let ms = s.headMs;
  let bytes = s.headBytes;
  for (const k of kinds) {
    let f = byKind.get(k);
    if (!f) {
      missing.add(k);
      f = byKind.get(k === "full" ? "linear" : "full")!;
    }
    ms += f.ms;
    bytes += f.bytes;
  }
  return { nLayers: kinds.length, msPerToken: ms, tokS: 1000 / ms, bytesPerToken: bytes, headShare: s.headBytes / bytes, missingKinds: [...missing] };
}

/** Slice figures from one `flashchat-engine bench fullbench --json` line (its `layers`, `head_ms`, `head_bytes`). */
export function parseSliceFigures(j: Record<string, unknown>): SliceFigures | null {
  const layers = j.layers as { kind: string; ms: number; dense_bytes: number; expert_bytes: number }[] | undefined;
  if (!Array.isArray(layers) || typeof j.head_ms !== "number" || typeof j.head_bytes !== "number") return null;
  return {
    layers: layers.map((l) => ({ kind: l.kind === "full" ? "full" : "linear", ms: l.ms, denseBytes: l.dense_bytes, expertBytes: l.expert_bytes })),
    headMs: j.head_ms,
    headBytes: j.head_bytes,
  };
}

/** The per-layer medians of several runs' slice figures (same model): each layer's and the head's median time. */
export function medianSliceFigures(runs: readonly SliceFigures[]): SliceFigures {
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const first = runs[0]!;
  return {
    layers: first.layers.map((l, i) => ({ ...l, ms: med(runs.map((r) => r.layers[i]!.ms)) })),
    headMs: med(runs.map((r) => r.headMs)),
    headBytes: first.headBytes,
  };
}

/** "~12.3 tok/s (81.2 ms/token, 1.23 GB/token, lm_head 3%)" */
export const renderExtrapolation = (e: Extrapolation) =>
  `${formatNumber(e.tokS)} tok/s (${formatNumber(e.msPerToken)} ms/token, ${formatNumber(e.bytesPerToken / 1e9)} GB/token, lm_head ${Math.round(100 * e.headShare)}%)`;
