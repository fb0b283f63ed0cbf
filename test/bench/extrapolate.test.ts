import { expect, test } from "bun:test";
import { layerKinds, medianSliceFigures, parseSliceFigures, renderExtrapolation, resolveExtrapolation, sliceTotal, type SliceFigures } from "../../lib/bench/extrapolate.ts";

// A 4-layer slice: 3 linear-attention layers of 2 ms and 1 full-attention layer of 4 ms, lm_head 6 ms.
const slice: SliceFigures = {
  layers: [
    { kind: "linear", ms: 1.5, denseBytes: 10e6, expertBytes: 50e6 },
    { kind: "linear", ms: 2.5, denseBytes: 10e6, expertBytes: 50e6 },
    { kind: "linear", ms: 2, denseBytes: 10e6, expertBytes: 50e6 },
    { kind: "full", ms: 4, denseBytes: 30e6, expertBytes: 50e6 },
  ],
  headMs: 6,
  headBytes: 500e6,
};

test("layer kinds: every 4th layer (1-based) is full attention", () => {
  expect(layerKinds(8, 4)).toEqual(["linear", "linear", "linear", "full", "linear", "linear", "linear", "full"]);
  expect(layerKinds(40, 4).filter((k) => k === "full").length).toBe(10);
  expect(layerKinds(60, 4).filter((k) => k === "full").length).toBe(15);
});

test("the slice from its parts, and the full 40-layer model: the lm_head once, each layer at its kind's mean", () => {
  const own = sliceTotal(slice);
  expect(own.msPerToken).toBeCloseTo(6 + 1.5 + 2.5 + 2 + 4, 9);
  expect(own.bytesPerToken).toBe(500e6 + 3 * 60e6 + 80e6);
  // the lm_head is most of the slice's bytes, little of the full model's
  expect(own.headShare).toBeCloseTo(500 / 760, 9);
  const full = resolveExtrapolation(slice, layerKinds(40, 4));
  expect(full.nLayers).toBe(40);
  expect(full.msPerToken).toBeCloseTo(6 + 30 * 2 + 10 * 4, 9);
  expect(full.tokS).toBeCloseTo(1000 / 106, 9);
  expect(full.bytesPerToken).toBe(500e6 + 30 * 60e6 + 10 * 80e6);
  expect(full.missingKinds).toEqual([]);
  expect(renderExtrapolation(full)).toBe("9.43 tok/s (106 ms/token, 3.10 GB/token, lm_head 16%)");
});

test("a slice without a full-attention layer counts those at the linear layers' mean, and says so", () => {
  const two: SliceFigures = { ...slice, layers: slice.layers.slice(0, 2) };
  const full = resolveExtrapolation(two, layerKinds(60, 4));
  expect(full.msPerToken).toBeCloseTo(6 + 60 * 2, 9);
  expect(full.missingKinds).toEqual(["full"]);
});

test("slice figures from the engine's fullbench JSON, and per-layer medians across runs", () => {
  const j = { head_ms: 6, head_bytes: 500e6, layers: [{ kind: "linear", ms: 2, dense_bytes: 10e6, expert_bytes: 50e6 }, { kind: "full", ms: 4, dense_bytes: 30e6, expert_bytes: 50e6 }] };
  const s = parseSliceFigures(j)!;
  expect(s.layers.map((l) => [l.kind, l.ms, l.denseBytes])).toEqual([["linear", 2, 10e6], ["full", 4, 30e6]]);
  expect(parseSliceFigures({ mode: "fullbench" })).toBeNull();
  const runs = [1, 3, 2].map((k) => ({ ...s, headMs: 6 * k, layers: s.layers.map((l) => ({ ...l, ms: l.ms * k })) }));
  const m = medianSliceFigures(runs);
  expect([m.headMs, m.layers[0]!.ms, m.layers[1]!.ms]).toEqual([12, 4, 8]);
});
