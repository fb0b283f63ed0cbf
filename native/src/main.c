/*
 * flashchat-engine: flags, then one of three modes -
 *   (default)  serve the stdio protocol (native/PROTOCOL.md)
 *   logits     write the logits of every position of --tokens to --out (float32 [n, vocab]) and exit
 *   bench MODE run a benchmark or verification (run verify bench moe moebench full fullbench kernels)
 * Exit codes: 0 ok, 1 a benchmark verification failed or logits could not be written, 2 bad flags,
 * 3 the model could not be loaded (a JSON error line on stdout names the file and the problem).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "engine.h"
#include "json.h"
#include "platform.h"
#include "protocol.h"


static void usage(FILE * f) {
    fprintf(f,
            "usage: flashchat-engine [logits | bench MODE] --artifacts DIR [options] | evict FILE...\n"
            "\n"
            "modes:\n"
            "  (none)               serve the JSON-lines protocol on stdin/stdout (native/PROTOCOL.md)\n"
            "  logits               --tokens 1,2,3 --out FILE: float32 logits [n, vocab] of every position\n"
            "  evict FILE...        drop the files from the page cache (posix_fadvise; a JSON line says what\n"
            "                       was resident before and after); no other flags\n"
            "  bench MODE           run | bench (one expert, 1 / 10 iterations), verify (kernels vs the scalar\n"
            "                       reference), moe | moebench (one MoE layer), full | fullbench (whole model,\n"
            "                       one token), prefill (--prompt N tokens from an empty context: tok/s and where\n"
            "                       the time goes), kernels (synthetic single-core matvec GB/s; no model needed),\n"
            "                       membw (read-only streaming bandwidth with 1..--threads threads; no model)\n"
            "\n"
            "options:\n"
            "  --artifacts DIR          model_weights.bin + model_weights.json (required except bench kernels)\n"
            "  --experts DIR            packed experts folder (default DIR/packed_experts)\n"
            "  --threads N              compute threads (default: all CPUs)\n"
            "  --context N              context length in tokens (default: the model's max_position_embeddings,\n"
            "                           lowered to what fits in memory, with a note on stderr); more than the\n"
            "                           model's maximum, or more than fits, is an error\n"
            "  --kv-type T              K/V cache of the full-attention layers: f16 (default), bf16, q8 (8-bit,\n"
            "                           a scale per row) or f32\n"
            "  --active-experts K       experts per token (default: the model's)\n"
            "  --snapshot-budget-mb N   memory for prefix-reuse snapshots (default 1024)\n"
            "  --backend NAME           auto (default: metal on macOS with a GPU, else cpu) | cpu | metal (macOS builds) | metal-emu (the Metal backend on the CPU emulator; builds with a C++ compiler) | cpu:N | cpu:NAME (force kernel level N or a set by name; see RUN.md)\n"
            "  --batch N                prefill tokens per forward chunk (default 512)\n"
            "  --io-threads N           pread threads (default max(4, K))\n"
            "  --progress-ms N          least time between two progress lines while a prompt is evaluated\n"
            "                           (default 1000; 0: after every layer)\n"
            "  --expert-io MODE         how routed experts reach the kernels (default auto):\n"
            "                             pread     copies into reusable buffers (the OS page cache caches)\n"
            "                             mmap      in place from the mapped layer files, faulted in when touched\n"
            "                             populate  in place, every page read and mapped at load (no copy and\n"
            "                                       no fault per token; the files count in the resident size)\n"
            "                             auto      populate if the expert files fit in half the available\n"
            "                                       memory, else pread\n"
            "  --expert-mmap            same as --expert-io mmap\n"
            "  --expert-cache-mb MB     with --expert-io pread: keep at most N MB of the expert files in the page\n"
            "                           cache (the least recently read experts are dropped with posix_fadvise),\n"
            "                           so a model that fits in memory streams like one that does not (Linux)\n"
            "  --iters N  --layer L     bench: iterations, layer\n"
            "  --prompt N               bench prefill: prompt tokens (default 512; needs --context >= N)\n"
            "  --json                   bench: one JSON line instead of text\n"
            "  --help                   this text\n"
            "\n"
            "exit codes: 0 ok, 1 failure (verification, writing logits), 2 bad flags (also --context above the\n"
            "model's maximum), 3 model load failed (also a --context whose KV cache does not fit)\n");
}

static int parse_int(const char * s, int32_t * out) {
    char * end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L) return 0;
    *out = (int32_t)v;
    return 1;
}

static int parse_tokens(const char * s, int32_t ** out, int32_t * n) {
    int32_t cap = 16;
    *out = malloc((size_t)cap * sizeof **out);
    *n = 0;
    const char * p = s;
    while (*p) {
        char * end;
        long v = strtol(p, &end, 10);
        if (end == p) return 0;
        if (*n == cap) { cap *= 2; *out = realloc(*out, (size_t)cap * sizeof **out); }
        (*out)[(*n)++] = (int32_t)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return 0;
    }
    return *n > 0;
}

static void load_error(const struct fc_error * err) {
    printf("{\"type\":\"error\",\"code\":\"load_failed\",\"message\":");
    fc_json_write_string(stdout, err->message);
    printf("}\n");
    fflush(stdout);
    fprintf(stderr, "flashchat-engine: %s\n", err->message);
}

int main(int argc, char ** argv) {
    const pid_t parent = getppid(); /* as early as possible: in protocol mode the engine exits when its parent does */
    struct fc_engine_options opt = { 0 };
    struct fc_bench_options bopt = { 0 };
    const char * mode = NULL;
    const char * tokens_arg = NULL;
    const char * out_path = NULL;
    int32_t budget_mb = 1024;
    int32_t progress_ms = 1000;
    double cache_mb = 0.0;
    opt.backend = "auto"; /* metal on macOS with a GPU, else cpu */
    int i = 1;
    if (i < argc && strcmp(argv[i], "evict") == 0) return fc_bench_evict(argc - 2, argv + 2);
    if (i < argc && strcmp(argv[i], "logits") == 0) { mode = "logits"; i++; }
    else if (i < argc && strcmp(argv[i], "bench") == 0) {
        mode = "bench";
        i++;
        if (i >= argc) { usage(stderr); return 2; }
        bopt.mode = argv[i++];
    }
    for (; i < argc; i++) {
        const char * a = argv[i];
        const char * v = i + 1 < argc ? argv[i + 1] : NULL;
        int32_t n;
#define NEED_VALUE() if (!v) { fprintf(stderr, "flashchat-engine: %s needs a value\n", a); return 2; } i++
#define INT_VALUE(dst, min) NEED_VALUE(); if (!parse_int(v, &n) || n < (min)) { fprintf(stderr, "flashchat-engine: %s: bad value %s\n", a, v); return 2; } dst = n
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(a, "--artifacts") == 0) { NEED_VALUE(); opt.artifacts_dir = v; }
        else if (strcmp(a, "--experts") == 0) { NEED_VALUE(); opt.experts_dir = v; }
        else if (strcmp(a, "--backend") == 0) { NEED_VALUE(); opt.backend = v; }
        else if (strcmp(a, "--threads") == 0) { INT_VALUE(opt.n_threads, 1); }
        else if (strcmp(a, "--context") == 0) { INT_VALUE(opt.context, 0); }
        else if (strcmp(a, "--active-experts") == 0) { INT_VALUE(opt.n_active_experts, 1); }
        else if (strcmp(a, "--snapshot-budget-mb") == 0) { INT_VALUE(budget_mb, 0); }
        else if (strcmp(a, "--batch") == 0) { INT_VALUE(opt.max_batch, 1); }
        else if (strcmp(a, "--progress-ms") == 0) { INT_VALUE(progress_ms, 0); }
        else if (strcmp(a, "--io-threads") == 0) { INT_VALUE(opt.n_io_threads, 1); }
        else if (strcmp(a, "--expert-cache-mb") == 0) {
            NEED_VALUE();
            char * end;
            cache_mb = strtod(v, &end);
            if (*end || end == v || !(cache_mb > 0) || cache_mb > 1e9) { fprintf(stderr, "flashchat-engine: %s: bad value %s (MB > 0)\n", a, v); return 2; }
        }
        else if (strcmp(a, "--iters") == 0) { INT_VALUE(bopt.iters, 1); }
        else if (strcmp(a, "--layer") == 0) { INT_VALUE(bopt.layer, 0); }
        else if (strcmp(a, "--prompt") == 0) { INT_VALUE(bopt.prompt, 1); }
        else if (strcmp(a, "--json") == 0) { bopt.json = 1; }
        else if (strcmp(a, "--expert-mmap") == 0) { opt.expert_io = FC_EXPERT_IO_MMAP; }
        else if (strcmp(a, "--expert-io") == 0) {
            NEED_VALUE();
            if (strcmp(v, "auto") == 0) opt.expert_io = FC_EXPERT_IO_AUTO;
            else if (strcmp(v, "pread") == 0) opt.expert_io = FC_EXPERT_IO_PREAD;
            else if (strcmp(v, "mmap") == 0) opt.expert_io = FC_EXPERT_IO_MMAP;
            else if (strcmp(v, "populate") == 0) opt.expert_io = FC_EXPERT_IO_POPULATE;
            else { fprintf(stderr, "flashchat-engine: --expert-io: bad value %s (auto, pread, mmap or populate)\n", v); return 2; }
        }
        else if (strcmp(a, "--kv-type") == 0) {
            NEED_VALUE();
            enum fc_kv_type kt;
            if (!fc_kv_type_parse(v, &kt)) { fprintf(stderr, "flashchat-engine: --kv-type: bad value %s (f16, bf16, q8 or f32)\n", v); return 2; }
            opt.kv_type = (int)kt;
        }
        else if (strcmp(a, "--tokens") == 0) { NEED_VALUE(); tokens_arg = v; }
        else if (strcmp(a, "--out") == 0) { NEED_VALUE(); out_path = v; }
        else { fprintf(stderr, "flashchat-engine: unknown flag %s (see --help)\n", a); return 2; }
#undef INT_VALUE
#undef NEED_VALUE
    }
    if (mode && strcmp(mode, "bench") == 0) {
        static const char * const modes[] = { "run", "verify", "bench", "moe", "moebench", "full", "fullbench", "prefill", "kernels", "membw" };
        int known = 0;
        for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) known |= strcmp(bopt.mode, modes[k]) == 0;
        if (!known) { fprintf(stderr, "flashchat-engine: unknown bench mode %s (see --help)\n", bopt.mode); return 2; }
        bopt.threads = opt.n_threads;
        if (strcmp(bopt.mode, "kernels") == 0 || strcmp(bopt.mode, "membw") == 0) return fc_bench_run(NULL, &bopt);
    }
    if (!opt.artifacts_dir) { fprintf(stderr, "flashchat-engine: --artifacts DIR is required (see --help)\n"); return 2; }
    int32_t * tokens = NULL;
    int32_t n_tokens = 0;
    if (mode && strcmp(mode, "logits") == 0) {
        if (!tokens_arg || !out_path || !parse_tokens(tokens_arg, &tokens, &n_tokens)) {
            fprintf(stderr, "flashchat-engine: logits needs --tokens 1,2,3 and --out FILE\n");
            free(tokens);
            return 2;
        }
        if (opt.context <= 0 || opt.context < n_tokens) opt.context = n_tokens;
    }

    /* a server child: never outlive the server (not even with the compute threads busy); before the load, which
       can take long */
    if (!mode) fc_platform_exit_with_parent(parent);
    struct fc_engine e;
    struct fc_error err = { 0 };
    if (fc_engine_init(&e, &opt, &err) != FC_STATUS_OK) {
        load_error(&err);
        free(tokens);
        return err.status == FC_STATUS_BAD_REQUEST ? 2 : 3; /* 2: a flag the model does not allow (--context) */
    }
    if (cache_mb > 0 && fc_experts_set_cache_limit(&e.experts, (uint64_t)(cache_mb * 1048576.0), &err) != FC_STATUS_OK) {
        fprintf(stderr, "flashchat-engine: --expert-cache-mb: %s\n", err.message);
        fc_engine_free(&e);
        free(tokens);
        return 2;
    }
    fprintf(stderr, "flashchat-engine: %s model (%d layers, %d experts, K=%d), %.1f MB dense, %d-bit experts of %.2f MB, "
            "experts by %s, backend %s/%s, %d thread(s), context %d (KV %s, %zu bytes/token)\n",
            e.model.source_format, e.model.cfg.n_layers, e.model.cfg.n_experts, e.n_active, e.model.dense_bytes / 1e6,
            e.experts.bits, e.experts.expert_bytes / 1e6, fc_expert_io_name(fc_engine_expert_io(&e)), e.backend_name, e.be.ops->describe ? e.be.ops->describe(&e.be) : "",
            e.n_threads, e.context, fc_kv_type_name(e.st.kv.type), fc_engine_kv_bytes_per_pos(&e));
    int rc = 0;
    if (!mode) {
        rc = fc_protocol_run(&e, (size_t)budget_mb << 20, 0, progress_ms);
    } else if (strcmp(mode, "logits") == 0) {
        const int32_t V = e.model.cfg.vocab_size;
        float * all = malloc((size_t)n_tokens * V * sizeof(float));
        enum fc_status st = all ? fc_engine_eval(&e, tokens, n_tokens, all, NULL, &err) : FC_STATUS_NO_MEMORY;
        if (st != FC_STATUS_OK) {
            fprintf(stderr, "flashchat-engine: %s\n", all ? err.message : "out of memory");
            rc = 1;
        } else {
            FILE * f = fopen(out_path, "wb");
            if (!f || fwrite(all, sizeof(float), (size_t)n_tokens * V, f) != (size_t)n_tokens * V || fclose(f) != 0) {
                fprintf(stderr, "flashchat-engine: %s: cannot write (%s)\n", out_path, strerror(errno));
                rc = 1;
            }
        }
        free(all);
    } else {
        rc = fc_bench_run(&e, &bopt);
    }
    free(tokens);
    fc_engine_free(&e);
    return rc;
}
