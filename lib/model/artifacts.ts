// Artifact folder of a model: where model_weights.bin/json and packed_experts(_2bit)/ live, and what is present.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, isAbsolute, join, resolve } from "pathe";
import type { ResolvedConfig } from "../config/schema.ts";

export const WEIGHTS_BIN = "model_weights.bin";
export const WEIGHTS_JSON = "model_weights.json";
export const LAYOUT_JSON = "layout.json";

export interface ArtifactPaths {
  dir: string;
  weightsBin: string;
  weightsJson: string;
  /** packed_experts/ (4-bit, or the source's bits) */
  expertsDir: string;
  /** packed_experts_2bit/ */
  experts2bitDir: string;
}

/** Folder-safe name of a model id: `org/name` -> `org--name`; a local folder -> `local--<name>-<hash of its path>`. */
export function modelSlug(modelId: string): string {
  const looksLocal = isAbsolute(modelId) || modelId.startsWith(".") || modelId.startsWith("~") || modelId.split("/").length > 2;
  if (looksLocal) {
    const abs = resolve(modelId);
    const h = Bun.hash(abs).toString(16).padStart(16, "0").slice(0, 8);
    return `local--${basename(abs).replace(/[^\w.-]/g, "_")}-${h}`;
  }
  return modelId.replace(/\//g, "--").replace(/[^\w.-]/g, "_");
}

/**
 * The artifacts folder of a model: `<artifactsDir>/<slug>`; checkpoints we quantize ourselves (HF bf16) at other
 * than 4 bits get a `-q<bits>` suffix so each bit width has its own folder.
 */
export function resolveModelArtifactsDir(
  config: Pick<ResolvedConfig, "artifactsDir" | "modelRepo">,
  opts: { modelId?: string; quantizedBits?: number } = {},
): string {
  const slug = modelSlug(opts.modelId ?? config.modelRepo);
  const suffix = opts.quantizedBits && opts.quantizedBits !== 4 ? `-q${opts.quantizedBits}` : "";
  return join(config.artifactsDir, slug + suffix);
}

export function artifactPaths(dir: string): ArtifactPaths {
  return {
    dir,
    weightsBin: join(dir, WEIGHTS_BIN),
    weightsJson: join(dir, WEIGHTS_JSON),
    expertsDir: join(dir, "packed_experts"),
    experts2bitDir: join(dir, "packed_experts_2bit"),
  };
}

/** Name of a layer file: 2 digits, 3 when the model has layers beyond 99. */
export const layerFileName = (layer: number, numLayers: number) =>
  `layer_${String(layer).padStart(numLayers > 99 ? 3 : 2, "0")}.bin`;

export interface ExpertSetStatus {
  dir: string;
  /** layout.json present and readable */
  layout: boolean;
  bits: number | null;
  /** MoE layers the layout describes (or the model has, when known) */
  layersExpected: number;
  /** layers whose file exists with exactly the size layout.json gives */
  layersPresent: number[];
  /** layer files present but of the wrong size (interrupted or damaged) */
  layersBad: number[];
  /** leftover .tmp files of an interrupted run */
  tempFiles: string[];
  bytes: number;
  complete: boolean;
}

export interface ArtifactsStatus {
  dir: string;
  exists: boolean;
  weights: { present: boolean; bytes: number };
  manifest: { present: boolean; valid: boolean; sourceFormat?: string; repo?: string; bits?: number; numLayers?: number; tensors?: number; bytesExpected?: number };
  /** weights + manifest present and the bin is as long as the manifest says */
  weightsComplete: boolean;
  experts: ExpertSetStatus;
  experts2bit: ExpertSetStatus;
}

function inspectExpertSet(dir: string, numLayers: number | undefined): ExpertSetStatus {
  const st: ExpertSetStatus = { dir, layout: false, bits: null, layersExpected: 0, layersPresent: [], layersBad: [], tempFiles: [], bytes: 0, complete: false };
  if (!existsSync(dir)) return st;
  const files = readdirSync(dir);
  st.tempFiles = files.filter((f) => f.includes(".tmp"));
  let layout: { bits?: number; num_experts?: number; expert_size?: number; layers?: { layer: number; file: string; size: number }[]; moe_layers?: number[] } | undefined;
  try {
    layout = JSON.parse(readFileSync(join(dir, LAYOUT_JSON), "utf8"));
    st.layout = true;
  } catch {
    layout = undefined;
  }
  st.bits = layout?.bits ?? null;
  const layerSize = layout?.num_experts && layout.expert_size ? layout.num_experts * layout.expert_size : undefined;
  const expected = layout?.moe_layers ?? (numLayers ? Array.from({ length: numLayers }, (_, i) => i) : []);
  st.layersExpected = expected.length;
  for (const f of files) {
    const m = /^layer_(\d+)\.bin$/.exec(f);
    if (!m) continue;
    const size = statSync(join(dir, f)).size;
    const l = Number(m[1]);
    if (layerSize === undefined || size === layerSize) {
      st.layersPresent.push(l);
      st.bytes += size;
    } else st.layersBad.push(l);
  }
  st.layersPresent.sort((a, b) => a - b);
  st.layersBad.sort((a, b) => a - b);
  st.complete = st.layout && expected.length > 0 && expected.every((l) => st.layersPresent.includes(l));
  return st;
}

/** What an artifacts folder holds; reads only small files and directory listings. */
export function inspectArtifacts(dir: string): ArtifactsStatus {
  const p = artifactPaths(dir);
  const weightsPresent = existsSync(p.weightsBin);
  const weightsBytes = weightsPresent ? statSync(p.weightsBin).size : 0;
  const manifest: ArtifactsStatus["manifest"] = { present: existsSync(p.weightsJson), valid: false };
  if (manifest.present) {
    try {
      const m = JSON.parse(readFileSync(p.weightsJson, "utf8"));
      const tensors = m.tensors as { offset: number; size: number }[];
      manifest.valid = m.format === "flashchat-weights" && Array.isArray(tensors);
      manifest.sourceFormat = m.source?.format;
      manifest.repo = m.source?.repo;
      manifest.bits = m.source?.bits;
      manifest.numLayers = m.config?.num_hidden_layers;
      manifest.tensors = tensors.length;
      manifest.bytesExpected = tensors.reduce((a, t) => Math.max(a, t.offset + t.size), 0);
    } catch {
      manifest.valid = false;
    }
  }
  return {
    dir,
    exists: existsSync(dir),
    weights: { present: weightsPresent, bytes: weightsBytes },
    manifest,
    weightsComplete: weightsPresent && manifest.valid && weightsBytes === manifest.bytesExpected,
    experts: inspectExpertSet(p.expertsDir, manifest.numLayers),
    experts2bit: inspectExpertSet(p.experts2bitDir, manifest.numLayers),
  };
}
