import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { UserError } from "../../lib/errors.ts";
import { DTYPE_BYTES, loadSafetensorsHeader, loadTensorIndex, readTensorBytes, writeSafetensors } from "../../lib/model/safetensors.ts";
import { copyFixture, FIXTURE, makeTempDir, removeDir } from "./_helpers.ts";

const tmp = makeTempDir();
afterAll(() => removeDir(tmp));

/** A file with a hand-written header and `dataBytes` of data. */
function rawFile(name: string, header: unknown, dataBytes: number, headerLen?: bigint): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(json.length));
  const p = join(tmp, name);
  writeFileSync(p, Buffer.concat([len, json, Buffer.alloc(dataBytes, 7)]));
  return p;
}

function expectUserError(fn: () => unknown, ...parts: string[]) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  for (const p of parts) expect((err as Error).message).toContain(p);
}

describe("reader", () => {
  test("writer -> reader round trip for every dtype", () => {
    const specs = Object.keys(DTYPE_BYTES).map((dtype, i) => ({ name: `t.${dtype}`, dtype, shape: [3, i + 1] }));
    const p = join(tmp, "all.safetensors");
    writeSafetensors(p, specs, (s, chunk, off) => {
      for (let i = 0; i < chunk.length; i++) chunk[i] = (off + i + s.name.length) & 0xff;
    }, { chunkBytes: 8 });
    const f = loadSafetensorsHeader(p);
    expect(f.dataStart % 8).toBe(0);
    expect(f.metadata).toEqual({ format: "pt" });
    for (const s of specs) {
      const t = f.tensors.get(s.name)!;
      expect([t.dtype, t.shape, t.size]).toEqual([s.dtype, s.shape, 3 * s.shape[1]! * DTYPE_BYTES[s.dtype]!]);
      expect(Array.from(readTensorBytes(t))).toEqual(Array.from({ length: t.size }, (_, i) => (i + s.name.length) & 0xff));
    }
  });

  test("sharded checkpoint through its index; tensors split across shards", () => {
    const idx = loadTensorIndex(FIXTURE);
    expect(idx.files.map((f) => f.split("/").pop())).toEqual(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    expect(idx.tensors.size).toBe(Object.keys(JSON.parse(readFileSync(join(FIXTURE, "model.safetensors.index.json"), "utf8")).weight_map).length);
    expect(idx.tensors.get("language_model.model.layers.0.linear_attn.A_log")).toMatchObject({ dtype: "F32", shape: [4], size: 16 });
  });
});

describe("hostile or broken files: a UserError naming the file and the tensor", () => {
  const good = { a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] }, b: { dtype: "BF16", shape: [4], data_offsets: [16, 24] } };

  test("shorter than the length prefix", () => {
    const p = join(tmp, "tiny.safetensors");
    writeFileSync(p, Buffer.alloc(5));
    expectUserError(() => loadSafetensorsHeader(p), "tiny.safetensors", "truncated");
  });

  test("absurd header length", () => {
    const p = rawFile("huge-header.safetensors", good, 24, 0xffff_ffff_ffff_fff0n);
    expectUserError(() => loadSafetensorsHeader(p), "huge-header.safetensors", "header length", "impossible");
    const q = rawFile("long-header.safetensors", good, 24, 10_000n);
    expectUserError(() => loadSafetensorsHeader(q), "long-header.safetensors", "header length 10000");
  });

  test("header that is not JSON", () => {
    expectUserError(() => loadSafetensorsHeader(rawFile("notjson.safetensors", "{not json", 0)), "notjson.safetensors", "not valid JSON");
    expectUserError(() => loadSafetensorsHeader(rawFile("array.safetensors", "[1,2]", 0)), "array.safetensors", "not a JSON object");
  });

  test("truncated data", () => {
    const p = rawFile("truncated.safetensors", good, 24);
    truncateSync(p, readFileSync(p).length - 3);
    expectUserError(() => loadSafetensorsHeader(p), "truncated.safetensors", "tensor b", "past the end");
  });

  test("offsets out of bounds, backwards, overlapping", () => {
    expectUserError(
      () => loadSafetensorsHeader(rawFile("oob.safetensors", { ...good, c: { dtype: "U8", shape: [8], data_offsets: [100, 108] } }, 24)),
      "oob.safetensors", "tensor c", "past the end",
    );
    expectUserError(
      () => loadSafetensorsHeader(rawFile("backwards.safetensors", { a: { dtype: "U8", shape: [0], data_offsets: [8, 0] } }, 24)),
      "backwards.safetensors", "tensor a", "end before begin",
    );
    expectUserError(
      () => loadSafetensorsHeader(rawFile("overlap.safetensors", { ...good, c: { dtype: "U8", shape: [8], data_offsets: [12, 20] } }, 24)),
      "overlap.safetensors", "overlaps",
    );
    expectUserError(
      () => loadSafetensorsHeader(rawFile("negative.safetensors", { a: { dtype: "U8", shape: [2], data_offsets: [-2, 0] } }, 24)),
      "negative.safetensors", "tensor a", "bad data_offsets",
    );
  });

  test("size does not match dtype x shape; unknown dtype; bad shape", () => {
    expectUserError(
      () => loadSafetensorsHeader(rawFile("size.safetensors", { a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, 24)),
      "size.safetensors", "tensor a", "16 bytes but F32 [2,3] needs 24",
    );
    expectUserError(() => loadSafetensorsHeader(rawFile("dtype.safetensors", { a: { dtype: "Q4_K", shape: [2], data_offsets: [0, 2] } }, 24)), "dtype.safetensors", "tensor a", "unsupported dtype");
    expectUserError(() => loadSafetensorsHeader(rawFile("shape.safetensors", { a: { dtype: "U8", shape: [-1], data_offsets: [0, 2] } }, 24)), "shape.safetensors", "tensor a", "bad shape");
  });

  test("a shard the index names is missing; a tensor the index places in the wrong shard", () => {
    const dir = copyFixture(join(tmp, "ckpt-missing"));
    rmSync(join(dir, "model-00002-of-00002.safetensors"));
    expectUserError(() => loadTensorIndex(dir), "shard model-00002-of-00002.safetensors is missing", "tensor language_model.");
    const dir2 = copyFixture(join(tmp, "ckpt-wrong"));
    const idxPath = join(dir2, "model.safetensors.index.json");
    const idx = JSON.parse(readFileSync(idxPath, "utf8"));
    idx.weight_map["language_model.model.norm.weight"] = "model-00001-of-00002.safetensors";
    writeFileSync(idxPath, JSON.stringify(idx));
    expectUserError(() => loadTensorIndex(dir2), "tensor language_model.model.norm.weight", "model-00001-of-00002.safetensors", "does not hold it");
  });

  test("a truncated shard of a real checkpoint", () => {
    const dir = copyFixture(join(tmp, "ckpt-trunc"));
    const shard = join(dir, "model-00001-of-00002.safetensors");
    truncateSync(shard, readFileSync(shard).length - 100);
    expectUserError(() => loadTensorIndex(dir), "model-00001-of-00002.safetensors", "tensor language_model.", "past the end");
    copyFileSync(join(FIXTURE, "model-00001-of-00002.safetensors"), shard);
    expect(loadTensorIndex(dir).tensors.size).toBeGreaterThan(100);
  });
});
