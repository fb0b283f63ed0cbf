// The engine's stdio protocol: errors that never kill it, cancel, prefix reuse, seeded sampling, snapshots on disk, load failures.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "pathe";
import { type Engine, EngineError, engineArgv, startEngine } from "../../lib/engine/client.ts";
import type { GenerateEvent, GenerateRequest } from "../../lib/engine/types.ts";
import { buildEngine, ENGINE, greedy, makeFixtureArtifacts, makeTempDir, prompt, removeDir, rowMaxDiff, VOCAB } from "./_fixture.ts";

let artifacts = "";
let tmp = "";

beforeAll(async () => {
  await buildEngine();
  artifacts = await makeFixtureArtifacts();
  tmp = makeTempDir();
});

afterAll(() => {
  removeDir(artifacts);
  removeDir(tmp);
});

async function collect(e: Engine, req: GenerateRequest, signal?: AbortSignal): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const ev of e.generate(req, signal)) out.push(ev);
  return out;
}

const tokensOf = (evs: GenerateEvent[]) => evs.flatMap((e) => (e.type === "token" ? [e.token] : []));
const doneOf = (evs: GenerateEvent[]) => evs.find((e) => e.type === "done") as Extract<GenerateEvent, { type: "done" }>;

/**
 * A raw engine process: write `lines`, read replies until one with id `untilId` that ends its request,
 * then shut down. Returns every reply after `ready`.
 */
async function rawSession(lines: string[], untilId: string, args: string[] = []): Promise<{ replies: Record<string, unknown>[]; code: number }> {
  await using proc = Bun.spawn([ENGINE, "--artifacts", artifacts, "--threads", "1", "--context", "40", ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  proc.stdin.write(lines.join("\n") + "\n");
  proc.stdin.flush();
  const replies: Record<string, unknown>[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  let finished = false;
  for await (const chunk of proc.stdout) {
    buf += decoder.decode(chunk);
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      if (m.type !== "ready") replies.push(m);
      if (!finished && m.id === untilId && ["done", "ok", "error", "stats", "logits"].includes(m.type as string)) {
        finished = true;
        proc.stdin.write('{"op":"shutdown","id":"bye"}\n');
        proc.stdin.end();
      }
    }
  }
  return { replies, code: await proc.exited };
}

describe("bad input never kills the engine", () => {
  test("malformed JSON, unknown ops, bad fields, out-of-range tokens and context overflow are errors; the engine keeps serving", async () => {
    const long = Array.from({ length: 41 }, () => 1);
    const { replies, code } = await rawSession([
      "{not json",
      "[1,2,3]",
      '{"op":"nope","id":"a"}',
      '{"op":"generate","id":"b","tokens":[1,512],"max_tokens":2}',
      '{"op":"generate","id":"c","tokens":[-1],"max_tokens":2}',
      `{"op":"generate","id":"d","tokens":${JSON.stringify(long)},"max_tokens":2}`,
      '{"op":"generate","id":"e","tokens":"abc","max_tokens":2}',
      '{"op":"generate","id":"f","tokens":[1,2],"max_tokens":-3}',
      '{"op":"generate","id":"g","tokens":[1,2],"max_tokens":1,"force_tokens":[9999]}',
      '{"op":"logits","id":"h","tokens":[1]}',
      '{"op":"snapshot_load","id":"i","path":"/nonexistent/snap.bin"}',
      "",
      '{"op":"generate","id":"ok","tokens":[1,2,3],"max_tokens":2,"stop_tokens":[]}',
    ], "ok");
    expect(code).toBe(0);
    const codes = replies.filter((r) => r.type === "error").map((r) => [r.id ?? null, r.code]);
    expect(codes).toEqual([
      [null, "bad_request"],
      [null, "bad_request"],
      ["a", "bad_request"],
      ["b", "bad_token"],
      ["c", "bad_token"],
      ["d", "context_overflow"],
      ["e", "bad_request"],
      ["f", "bad_request"],
      ["g", "bad_token"],
      ["h", "bad_request"],
      ["i", "io_error"],
    ]);
    expect(replies.filter((r) => r.id === "ok").map((r) => r.type)).toEqual(["prompt", "token", "token", "done"]);
    expect(replies.at(-1)).toEqual({ type: "ok", id: "bye" });
  });

  test("a cancel already waiting when a generation starts stops it before its first token", async () => {
    const { replies } = await rawSession(
      ['{"op":"generate","id":"x","tokens":[1,2,3],"max_tokens":30,"stop_tokens":[]}', '{"op":"cancel","id":"x"}', '{"op":"stats","id":"s"}'],
      "s",
    );
    expect(replies.find((r) => r.type === "done")).toMatchObject({ id: "x", reason: "cancelled", completion_tokens: 0 });
  });

  test("a generation that reaches the end of the context stops with reason length", async () => {
    const { replies } = await rawSession(['{"op":"generate","id":"x","tokens":[1,2,3,4,5,6,7,8,9,10],"max_tokens":100,"stop_tokens":[]}'], "x");
    const done = replies.find((r) => r.type === "done")!;
    // 10 prompt tokens in a 40-token context: 31 tokens can be sampled (the last one is never evaluated)
    expect(done).toMatchObject({ reason: "length", completion_tokens: 31 });
  });

  test("EOF on stdin ends the engine with status 0, also in the middle of a generation (which is cancelled)", async () => {
    const { code, replies } = await rawSession(['{"op":"stats","id":"s"}'], "s");
    expect(code).toBe(0);
    expect(replies[0]).toMatchObject({ type: "stats", id: "s", requests: 0 });
    await using proc = Bun.spawn([ENGINE, "--artifacts", artifacts, "--threads", "1"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    proc.stdin.write('{"op":"generate","id":"g","tokens":[1,2,3],"max_tokens":100000,"stop_tokens":[]}\n');
    proc.stdin.end();
    const [out, exit] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(exit).toBe(0);
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toMatchObject({ type: "done", id: "g", reason: "cancelled" });
  });
});

describe("load failures name the file", () => {
  test("missing artifacts folder", async () => {
    const err = await startEngine({ artifactsDir: join(tmp, "missing") }).catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.code).toBe("load_failed");
    expect(err.message).toContain("model_weights.json");
  });

  test("a truncated expert file", async () => {
    const dir = join(tmp, "truncated");
    cpSync(artifacts, dir, { recursive: true });
    truncateSync(join(dir, "packed_experts", "layer_02.bin"), 1000);
    const err = await startEngine({ artifactsDir: dir }).catch((e) => e);
    expect(err.code).toBe("load_failed");
    expect(err.message).toContain("layer_02.bin");
    expect(err.message).toContain("truncated");
  });

  test("a truncated weights file and a manifest of another format", async () => {
    const dir = join(tmp, "short-bin");
    cpSync(artifacts, dir, { recursive: true });
    truncateSync(join(dir, "model_weights.bin"), 4096);
    const err = await startEngine({ artifactsDir: dir }).catch((e) => e);
    expect(err.message).toContain("model_weights.bin");
    writeFileSync(join(dir, "model_weights.json"), '{"format":"something-else","version":1}');
    const err2 = await startEngine({ artifactsDir: dir }).catch((e) => e);
    expect(err2.message).toContain("not a flashchat-weights manifest");
  });

  test("engineArgv passes every option as a flag", () => {
    expect(engineArgv({ artifactsDir: "/a", expertsDir: "/b", threads: 2, context: 100, activeExperts: 3, snapshotBudgetMb: 7, expertIo: "pread" })).toEqual([
      "--artifacts", "/a", "--experts", "/b", "--threads", "2", "--context", "100", "--active-experts", "3", "--snapshot-budget-mb", "7",
      "--expert-io", "pread",
    ]);
  });
});

describe("generation", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await startEngine({ artifactsDir: artifacts, threads: 2, context: 256 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  test("ready describes the model", () => {
    expect(engine.ready).toMatchObject({
      type: "ready",
      protocol: 1,
      backend: "cpu",
      context: 256,
      model: { vocab_size: 512, hidden_size: 128, num_hidden_layers: 4, num_experts: 8, active_experts: 2, eos_token_id: [507] },
    });
  });

  test("sampling with the same seed gives the same tokens; another seed differs", async () => {
    const req = (seed: number): GenerateRequest => ({
      tokens: prompt(),
      max_tokens: 12,
      stop_tokens: [],
      sampling: { temperature: 1.2, top_p: 0.95, top_k: 50, seed },
    });
    const a = tokensOf(await collect(engine, req(7)));
    const b = tokensOf(await collect(engine, req(7)));
    const c = tokensOf(await collect(engine, req(8)));
    expect(a).toHaveLength(12);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  test("stop tokens end a generation with reason stop, the stop token included", async () => {
    const g = greedy().generated_ids;
    const evs = await collect(engine, { tokens: prompt(), max_tokens: 16, stop_tokens: [g[3]!] });
    expect(tokensOf(evs)).toEqual(g.slice(0, 4));
    expect(doneOf(evs).reason).toBe("stop");
  });

  test("prefix reuse: a resent prompt with more turns reuses the cached prefix and gives the same tokens as a fresh engine", async () => {
    await using own = await startFresh();
    const engine = own.engine;
    const p = prompt();
    const first = await collect(engine, { tokens: p.slice(0, 20), max_tokens: 4, stop_tokens: [], snapshot_at: [10] });
    expect(doneOf(first).cached_tokens).toBeGreaterThanOrEqual(0);
    // the same 20 tokens again: everything reused
    const again = await collect(engine, { tokens: p.slice(0, 20), max_tokens: 4, stop_tokens: [] });
    expect(doneOf(again).cached_tokens).toBe(20);
    expect(tokensOf(again)).toEqual(tokensOf(first));
    // a prompt sharing only the first 10 tokens (a re-rendered history) restores the snapshot at 10
    const other = [...p.slice(0, 10), ...p.slice(21, 32)];
    const reused = await collect(engine, { tokens: other, max_tokens: 6, stop_tokens: [] });
    expect(doneOf(reused).cached_tokens).toBe(10);
    // the full prompt: the snapshot at 20 holds its own copy of the attention rows now
    const full = await collect(engine, { tokens: p, max_tokens: 16, stop_tokens: [] });
    expect(doneOf(full).cached_tokens).toBe(20);
    expect(tokensOf(full)).toEqual(greedy().generated_ids);

    await using fresh = await startFresh();
    expect(tokensOf(await collect(fresh.engine, { tokens: other, max_tokens: 6, stop_tokens: [] }))).toEqual(tokensOf(reused));
  });

  test("cancel ends a running generation within a token with reason cancelled; the engine keeps serving", async () => {
    const ac = new AbortController();
    const tokens: number[] = [];
    let done: GenerateEvent | undefined;
    for await (const ev of engine.generate({ tokens: [1, 2, 3], max_tokens: 200, stop_tokens: [], sampling: { temperature: 1, seed: 1 } }, ac.signal)) {
      if (ev.type === "token") {
        tokens.push(ev.token);
        if (tokens.length === 3) ac.abort();
      }
      if (ev.type === "done") done = ev;
    }
    expect(done).toMatchObject({ type: "done", reason: "cancelled" });
    // tokens already in the pipe when the client aborted still arrive; the engine stops at the cancel
    expect(tokens.length).toBeLessThan(200);
    const after = await collect(engine, { tokens: prompt(), max_tokens: 2, stop_tokens: [] });
    expect(tokensOf(after)).toEqual(greedy().generated_ids.slice(0, 2));
  });

  test("stats report totals", async () => {
    const s = await engine.stats();
    for (const k of ["requests", "completion_tokens", "expert_bytes", "io_wait_ms", "tokens_per_s", "prefill_tokens_per_s", "rss_bytes"]) {
      expect(typeof s[k]).toBe("number");
    }
    expect(s.requests as number).toBeGreaterThan(3);
    expect(s.snapshots as number).toBeGreaterThan(0);
    expect(s.expert_bytes as number).toBeGreaterThan(0);
    // experts read and, of their bytes, those found in the page cache (mincore; all of them when populated)
    expect(s.expert_reads as number).toBeGreaterThan(0);
    expect(s.expert_bytes_cached as number).toBeGreaterThanOrEqual(0);
    expect(s.expert_bytes_cached as number).toBeLessThanOrEqual(s.expert_bytes as number);
  });

  test("snapshots saved to disk let a restarted engine skip the prefix, with identical logits and tokens", async () => {
    await using own = await startFresh();
    const engine = own.engine;
    const p = prompt();
    await collect(engine, { tokens: p.slice(0, 24), max_tokens: 1, stop_tokens: [] });
    const path = join(tmp, "snaps.bin");
    await engine.saveSnapshots(path);
    expect(existsSync(path)).toBe(true);

    await using restarted = await startFresh();
    await restarted.engine.loadSnapshots(path);
    const evs = await collect(restarted.engine, { tokens: p, max_tokens: 16, stop_tokens: [] });
    expect(doneOf(evs).cached_tokens).toBe(24);
    expect(tokensOf(evs)).toEqual(greedy().generated_ids);
    // logits from the restored state equal those of a fresh evaluation
    const fromSnapshot = await restarted.engine.logits(p); // logits op: fresh state by definition
    await using fresh = await startFresh();
    expect(Math.max(...rowMaxDiff(fromSnapshot, await fresh.engine.logits(p), 32))).toBe(0);

    // a damaged file is an error, not a crash
    const bad = join(tmp, "bad.bin");
    copyFileSync(path, bad);
    truncateSync(bad, Math.floor(readFileSync(path).length / 2));
    const err = (await restarted.engine.loadSnapshots(bad).catch((e: unknown) => e)) as EngineError;
    expect(err).toBeInstanceOf(EngineError);
    expect(err.code).toBe("bad_request");
    expect(tokensOf(await collect(restarted.engine, { tokens: [5, 6], max_tokens: 1, stop_tokens: [] }))).toHaveLength(1);
  });

  test("reset then the same prompt gives the same tokens (state fully cleared)", async () => {
    const a = tokensOf(await collect(engine, { tokens: [9, 8, 7], max_tokens: 5, stop_tokens: [] }));
    await engine.reset();
    const b = tokensOf(await collect(engine, { tokens: [9, 8, 7], max_tokens: 5, stop_tokens: [] }));
    expect(b).toEqual(a);
  });
});

describe("prefix reuse gives the same logits as a fresh evaluation", () => {
  test("tokens continued from a restored snapshot match a fresh engine's logprobs", async () => {
    await using a = await startFresh();
    await using b = await startFresh();
    const p = prompt();
    const seq = [...p, ...greedy().generated_ids];
    // a: snapshot at 16 via a first prompt, then a diverging prompt, then the real one: restores 16
    await collect(a.engine, { tokens: p.slice(0, 16), max_tokens: 1, stop_tokens: [] });
    await collect(a.engine, { tokens: [...p.slice(0, 8), 1, 2, 3], max_tokens: 1, stop_tokens: [] });
    const req = { tokens: p, max_tokens: 16, force_tokens: greedy().generated_ids, stop_tokens: [], logprobs: true } as GenerateRequest;
    const ea = await collect(a.engine, req);
    const eb = await collect(b.engine, req);
    expect(doneOf(ea).cached_tokens).toBe(16);
    expect(doneOf(eb).cached_tokens).toBe(0);
    const lp = (evs: GenerateEvent[]) => evs.flatMap((e) => (e.type === "token" ? [(e as unknown as { logprob: number }).logprob] : []));
    // chunking differs (16 + 16 tokens vs 32): float summation order, and (on CPUs with the integer path) an expert
    // that several tokens of a chunk share is multiplied with int8 activations, one token alone in float
    const [la, lb] = [lp(ea), lp(eb)];
    expect(la).toHaveLength(16);
    for (let i = 0; i < 16; i++) expect(Math.abs(la[i]! - lb[i]!)).toBeLessThan(1e-3);
    expect(tokensOf(ea)).toEqual(tokensOf(eb));
    expect(seq.length).toBe(48);
  });
});

describe("sampling fields are validated; logit_bias, logprobs, top_logprobs and progress", () => {
  test("out-of-range or non-number sampling fields, logprobs fields and logit_bias are errors naming the field", async () => {
    const gen = (id: string, extra: string) => `{"op":"generate","id":"${id}","tokens":[1,2,3],"max_tokens":1,${extra}}`;
    const cases: [string, string, string, string][] = [
      // id, request fields, code, text the message must contain
      ["s1", '"sampling":{"seed":1e308}', "bad_request", "sampling.seed must be an integer in [0, 9007199254740991]"],
      ["s2", '"sampling":{"seed":18446744073709551616}', "bad_request", "sampling.seed"],
      ["s3", '"sampling":{"seed":-1}', "bad_request", "sampling.seed"],
      ["s4", '"sampling":{"seed":1.5}', "bad_request", "sampling.seed"],
      ["s5", '"sampling":{"seed":"7"}', "bad_request", "sampling.seed"],
      ["t1", '"sampling":{"temperature":-0.5}', "bad_request", "sampling.temperature must be a number in [0, 100]"],
      ["t2", '"sampling":{"temperature":1e300}', "bad_request", "sampling.temperature"],
      ["p1", '"sampling":{"top_p":1.5}', "bad_request", "sampling.top_p must be a number in [0, 1]"],
      ["k1", '"sampling":{"top_k":-1}', "bad_request", "sampling.top_k must be an integer"],
      ["k2", '"sampling":{"top_k":1e12}', "bad_request", "sampling.top_k"],
      ["k3", '"sampling":{"top_k":2.5}', "bad_request", "sampling.top_k"],
      ["m1", '"sampling":{"min_p":-0.1}', "bad_request", "sampling.min_p"],
      ["r1", '"sampling":{"repetition_penalty":0}', "bad_request", "sampling.repetition_penalty must be a number in (0, 100]"],
      ["f1", '"sampling":{"frequency_penalty":1e200}', "bad_request", "sampling.frequency_penalty"],
      ["f2", '"sampling":{"presence_penalty":-1000}', "bad_request", "sampling.presence_penalty"],
      ["x1", '"sampling":[1]', "bad_request", "sampling must be an object"],
      ["x2", '"max_tokens":2.5', "bad_request", "max_tokens must be an integer"],
      ["l1", '"logprobs":1', "bad_request", "logprobs must be true or false"],
      ["l2", '"top_logprobs":21', "bad_request", "top_logprobs must be an integer in [0, 20]"],
      ["l3", '"top_logprobs":-1', "bad_request", "top_logprobs"],
      ["b1", '"logit_bias":[1]', "bad_request", "logit_bias must be an object"],
      ["b2", '"logit_bias":{"abc":1}', "bad_request", 'logit_bias key "abc" is not a token id'],
      ["b3", '"logit_bias":{"1.5":1}', "bad_request", 'logit_bias key "1.5"'],
      ["b4", '"logit_bias":{"512":1}', "bad_token", 'logit_bias key "512" is outside the vocabulary [0, 512)'],
      ["b5", '"logit_bias":{"-1":1}', "bad_token", 'logit_bias key "-1"'],
      ["b6", '"logit_bias":{"5":100.5}', "bad_request", 'logit_bias["5"] must be a number in [-100, 100]'],
      ["b7", '"logit_bias":{"5":"1"}', "bad_request", 'logit_bias["5"]'],
    ];
    const { replies, code } = await rawSession(
      [...cases.map(([id, extra]) => gen(id, extra)), gen("ok", '"sampling":{"seed":9007199254740991,"temperature":1},"stop_tokens":[]')],
      "ok",
    );
    expect(code).toBe(0);
    const got = replies.filter((r) => r.type === "error").map((r) => [r.id, r.code, r.message]);
    expect(got.map(([id, c]) => [id, c])).toEqual(cases.map(([id, , c]) => [id, c]));
    for (const [i, [, , , text]] of cases.entries()) expect(got[i]![2] as string).toContain(text);
    expect(replies.filter((r) => r.id === "ok").map((r) => r.type)).toEqual(["prompt", "token", "done"]);
  });

  test("logprobs and top_logprobs are the log-softmax of the logits op's logits plus logit_bias", async () => {
    await using own = await startFresh();
    const e = own.engine;
    const p = prompt().slice(0, 12);
    const bias: Record<string, number> = { "7": 3.5, "100": -2, "300": 1.25 };
    const evs = await collect(e, { tokens: p, max_tokens: 4, stop_tokens: [], logprobs: true, top_logprobs: 5, logit_bias: bias } as GenerateRequest);
    type Tok = { token: number; logprob: number; top_logprobs: { token: number; logprob: number }[] };
    const toks = evs.filter((x) => x.type === "token") as unknown as Tok[];
    expect(toks).toHaveLength(4);
    const seq = [...p, ...toks.slice(0, 3).map((t) => t.token)];
    const logits = await e.logits(seq);
    for (let k = 0; k < 4; k++) {
      const row = Array.from(logits.subarray((p.length - 1 + k) * VOCAB, (p.length + k) * VOCAB)).map((x, i) => x + (bias[String(i)] ?? 0));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      const lp = row.map((x) => x - lse);
      const order = lp.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      expect(toks[k]!.token).toBe(order[0]![1]); // greedy on the biased logits
      expect(Math.abs(toks[k]!.logprob - lp[toks[k]!.token]!)).toBeLessThan(1e-3);
      expect(toks[k]!.top_logprobs.map((t) => t.token)).toEqual(order.slice(0, 5).map(([, i]) => i));
      for (const t of toks[k]!.top_logprobs) expect(Math.abs(t.logprob - lp[t.token]!)).toBeLessThan(1e-3);
      const sorted = toks[k]!.top_logprobs.map((t) => t.logprob);
      expect(sorted).toEqual([...sorted].sort((a, b) => b - a));
    }
  });

  test("logit_bias steers greedy decoding: +100 forces a token, -100 bans the greedy one", async () => {
    await using own = await startFresh();
    const e = own.engine;
    const g = greedy().generated_ids;
    const first = async (logit_bias: Record<string, number>) =>
      tokensOf(await collect(e, { tokens: prompt(), max_tokens: 1, stop_tokens: [], logit_bias } as GenerateRequest))[0];
    expect(await first({})).toBe(g[0]);
    expect(await first({ "42": 100 })).toBe(42);
    const banned = await first({ [String(g[0])]: -100 });
    expect(banned).not.toBe(g[0]);
    // and the bias is per request: the next request without it is greedy again
    expect(await first({})).toBe(g[0]);
  });

  test("constrained generate: each step waits for its mask; only allowed tokens come out, greedy and sampled", async () => {
    await using own = await startFresh();
    const e = own.engine;
    const g = greedy().generated_ids;
    // step k allows exactly {k*7+3} or a set of three: the greedy pick must be inside, never the unmasked greedy
    const allowedAt = (k: number) => (k % 2 === 0 ? [k * 7 + 3] : [k + 100, k + 200, g[k]! === k + 300 ? k + 301 : k + 300]);
    const bits = (ids: number[]) => {
      const b = new Uint8Array(Math.ceil(VOCAB / 8));
      for (const i of ids) b[i >> 3]! |= 1 << (i & 7);
      return b;
    };
    for (const sampling of [{ temperature: 0 }, { temperature: 1.5, seed: 9 }]) {
      let step = 0;
      const seen: number[] = [];
      const grammar = { next: async () => bits(allowedAt(step)), accept: (t: number) => void (seen.push(t), step++), dispose: () => {} };
      const toks = tokensOf(await collect(e, { tokens: prompt(), max_tokens: 6, stop_tokens: [], sampling, grammar }));
      expect(toks).toHaveLength(6);
      toks.forEach((t, k) => expect(allowedAt(k)).toContain(t));
      expect(seen).toEqual(toks);
    }
    // and the next plain request is unconstrained again
    expect(tokensOf(await collect(e, { tokens: prompt(), max_tokens: 3, stop_tokens: [] }))).toEqual(g.slice(0, 3));
  });

  test("a constrained generate frees its grammar however it ends: length, stop, cancel, the consumer leaving", async () => {
    await using own = await startFresh();
    const e = own.engine;
    const all = new Uint8Array(Math.ceil(VOCAB / 8)).fill(0xff);
    const counted = () => {
      const g = { nNext: 0, nDisposed: 0, next: async () => (g.nNext++, all), accept: () => {}, dispose: () => void g.nDisposed++ };
      return g;
    };
    const g0 = greedy().generated_ids;
    // length
    const byLength = counted();
    expect(tokensOf(await collect(e, { tokens: prompt(), max_tokens: 3, stop_tokens: [], grammar: byLength }))).toHaveLength(3);
    expect(byLength.nDisposed).toBe(1);
    // stop token
    const byStop = counted();
    expect(tokensOf(await collect(e, { tokens: prompt(), max_tokens: 8, stop_tokens: [g0[1]!], grammar: byStop }))).toHaveLength(2);
    expect(byStop.nDisposed).toBe(1);
    // cancelled through the signal after the first token
    const byCancel = counted();
    const abort = new AbortController();
    const reasons: string[] = [];
    for await (const ev of e.generate({ tokens: prompt(), max_tokens: 1000, stop_tokens: [], grammar: byCancel }, abort.signal)) {
      if (ev.type === "token") abort.abort();
      if (ev.type === "done") reasons.push(ev.reason);
    }
    expect(reasons).toEqual(["cancelled"]);
    expect(byCancel.nDisposed).toBe(1);
    // the consumer stops reading mid-way
    const byBreak = counted();
    for await (const ev of e.generate({ tokens: prompt(), max_tokens: 1000, stop_tokens: [], grammar: byBreak })) if (ev.type === "token") break;
    expect(byBreak.nDisposed).toBe(1);
    // and the engine still serves a plain request
    expect(tokensOf(await collect(e, { tokens: prompt(), max_tokens: 2, stop_tokens: [] }))).toEqual(g0.slice(0, 2));
  });

  test("mask errors: bad base64 and an empty mask end the generate with bad_request; a stale mask is dropped silently", async () => {
    const gen = '{"op":"generate","id":"c","tokens":[1,2,3],"max_tokens":2,"stop_tokens":[],"constrained":true}';
    const bad = await rawSession([gen, '{"op":"mask","id":"c","step":0,"bits":"***"}'], "c");
    expect(bad.replies.find((r) => r.type === "error")).toMatchObject({ id: "c", code: "bad_request", message: expect.stringContaining("base64") });
    const empty = await rawSession([gen, '{"op":"mask","id":"c","step":0,"bits":""}'], "c");
    expect(empty.replies.find((r) => r.type === "error")).toMatchObject({ id: "c", message: "the mask allows no token" });
    const stale = await rawSession(['{"op":"mask","id":"old","step":3,"bits":"AA=="}', '{"op":"stats","id":"s"}'], "s");
    expect(stale.replies.filter((r) => r.id !== "bye").map((r) => r.type)).toEqual(["stats"]);
  });

  test("progress lines during prefill: checked after each layer (--progress-ms 0), none when the interval has not passed", async () => {
    const req = '{"op":"generate","id":"g","tokens":[1,2,3,4,5,6,7,8,9,10,11,12],"max_tokens":1,"stop_tokens":[]}';
    // one forward chunk (--batch 16): progress from inside the chunk, one line per layer
    const every = await rawSession([req], "g", ["--progress-ms", "0", "--batch", "16"]);
    const kinds = every.replies.map((r) => r.type);
    expect(kinds.slice(0, 5)).toEqual(["progress", "progress", "progress", "progress", "prompt"]);
    expect(every.replies[0]).toEqual({ type: "progress", id: "g", prompt_tokens_done: 0, prompt_tokens: 12 });
    // chunks of 4: tokens done grow chunk by chunk
    const chunked = await rawSession([req], "g", ["--progress-ms", "0", "--batch", "4"]);
    const done = chunked.replies.filter((r) => r.type === "progress").map((r) => r.prompt_tokens_done);
    expect([...new Set(done)]).toEqual([0, 4, 8]);
    const hour = await rawSession([req], "g", ["--progress-ms", "3600000"]);
    expect(hour.replies.filter((r) => r.type === "progress")).toEqual([]);
  });
});

async function startFresh(): Promise<{ engine: Engine; [Symbol.asyncDispose](): Promise<void> }> {
  const engine = await startEngine({ artifactsDir: artifacts, threads: 1, context: 256 });
  return { engine, [Symbol.asyncDispose]: async () => void (await engine.close()) };
}

void VOCAB;
