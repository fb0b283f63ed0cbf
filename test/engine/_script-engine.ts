// A stand-in engine process speaking native/PROTOCOL.md over stdio, for watchdog tests of lib/engine/client.ts:
//   bun test/engine/_script-engine.ts MODE     MODE = progress (a slow prefill reporting progress) | silent (hangs)
// It answers `ready`, then each generate: progress -> 15 progress lines 100 ms apart, prompt, max_tokens tokens, done;
// silent -> nothing at all (as a deadlocked engine). `shutdown` exits 0.
export {};
const mode = process.argv[2] ?? "progress";
const out = (m: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(m)}\n`);
out({
  type: "ready", protocol: 1, backend: "script", threads: 1, context: 4096,
  model: { vocab_size: 512, hidden_size: 8, num_hidden_layers: 1, num_experts: 1, active_experts: 1, eos_token_id: [507] },
  dense_bytes: 0, expert_bytes_per_token: 0,
});
let buf = "";
for await (const chunk of Bun.stdin.stream()) {
  buf += new TextDecoder().decode(chunk);
  let nl: number;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const req = JSON.parse(buf.slice(0, nl)) as { op: string; id?: string; tokens?: number[]; max_tokens?: number };
    buf = buf.slice(nl + 1);
    if (req.op === "shutdown") {
      out({ type: "ok", id: req.id });
      process.exit(0);
    }
    if (req.op !== "generate" || mode === "silent") continue;
    const n = req.tokens?.length ?? 0;
    for (let i = 1; i <= 15; i++) {
      await Bun.sleep(100);
      out({ type: "progress", id: req.id, prompt_tokens_done: Math.round((n * i) / 15), prompt_tokens: n });
    }
    out({ type: "prompt", id: req.id, prompt_tokens: n, cached_tokens: 0 });
    for (let i = 0; i < (req.max_tokens ?? 1); i++) out({ type: "token", id: req.id, token: 65 });
    out({
      type: "done", id: req.id, reason: "length", prompt_tokens: n, cached_tokens: 0, completion_tokens: req.max_tokens ?? 1,
      prefill_ms: 1500, decode_ms: 1, expert_bytes: 0, io_wait_ms: 0,
    });
  }
}
