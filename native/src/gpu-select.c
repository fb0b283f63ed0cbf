/*
 * The GPU backends as the engine selects them (--backend metal | metal-emu | auto): the Metal device or its
 * emulator, and the whole forward pass over it (metal-forward.c). Compiled twice: with FC_HAVE_METAL (macOS)
 * or FC_HAVE_METAL_EMU (a C++ compiler) into the engine, and with neither into the library the native tests
 * link (there every GPU backend is "not part of this build").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
#include "metal/device.h"
#include "metal/metal-forward.h"
#endif

int fc_engine_backend_built(const char * name) {
#if defined(FC_HAVE_METAL)
    if (strcmp(name, "metal") == 0) return 1;
#endif
#if defined(FC_HAVE_METAL_EMU)
    if (strcmp(name, "metal-emu") == 0) return 1;
#endif
    return strcmp(name, "cpu") == 0 || strncmp(name, "cpu:", 4) == 0;
}

/* "auto": metal when this build has it and the system has a GPU (tried once at start-up), else cpu. */
const char * fc_engine_resolve_backend(const char * name) {
    if (strcmp(name, "auto") != 0) return name;
#if defined(FC_HAVE_METAL)
    struct fc_error err;
    struct fc_gpu * g = fc_gpu_metal_create(fc_metal_source, &err);
    if (g) {
        g->ops->destroy(g);
        return "metal";
    }
#endif
    return "cpu";
}

enum fc_status fc_engine_gpu_open(struct fc_engine * e, const char * name, struct fc_error * err) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    struct fc_gpu * g = NULL;
    err->status = FC_STATUS_OK;
#if defined(FC_HAVE_METAL)
    if (strcmp(name, "metal") == 0) g = fc_gpu_metal_create(fc_metal_source, err);
#endif
#if defined(FC_HAVE_METAL_EMU)
    if (strcmp(name, "metal-emu") == 0) g = fc_gpu_emu_create(fc_metal_source, e->n_threads, err);
#endif
    if (!g) {
        if (err->status == FC_STATUS_OK) goto not_built;
        return err->status;
    }
    const enum fc_kv_type kv = e->st.kv.type;
    if (kv != FC_KV_F16 && kv != FC_KV_F32) {
        g->ops->destroy(g);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "--backend %s keeps its KV cache as f16 or f32: --kv-type %s is not supported",
                            name, fc_kv_type_name(kv));
    }
    enum fc_status st = fc_metal_forward_init(&e->gpu_fwd, g, &e->model, &e->experts, e->context, e->n_active, e->max_batch, 0,
                                              kv == FC_KV_F16, err);
    if (st != FC_STATUS_OK) {
        g->ops->destroy(g);
        return st;
    }
    e->gpu = g;
    e->backend_name = g->ops->name;
    return FC_STATUS_OK;
not_built:
#endif
    return fc_error_set(err, FC_STATUS_BAD_REQUEST, "the %s backend is not part of this build (%s)", name,
#if defined(FC_HAVE_METAL)
                        "it has: cpu, metal"
#elif defined(FC_HAVE_METAL_EMU)
                        "it has: cpu, metal-emu"
#else
                        "it has: cpu"
#endif
    );
}

enum fc_status fc_engine_gpu_eval(struct fc_engine * e, const int32_t * tokens, int32_t n, float * logits_all, float * logits_last,
                                  struct fc_error * err) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    return fc_metal_forward_eval(e->gpu_fwd, tokens, n, logits_all, logits_last, NULL, err);
#else
    return fc_error_set(err, FC_STATUS_INTERNAL, "no GPU backend in this build");
#endif
}

void fc_engine_gpu_reset(struct fc_engine * e) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    fc_metal_forward_reset(e->gpu_fwd);
#endif
}

void fc_engine_gpu_close(struct fc_engine * e) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    fc_metal_forward_free(e->gpu_fwd);
    if (e->gpu) e->gpu->ops->destroy(e->gpu);
#endif
    e->gpu_fwd = NULL;
    e->gpu = NULL;
}

/* ===== bench verify: the GPU backend's whole forward pass against the CPU layer loop ===== */

static double max_rel(const float * got, const float * ref, size_t n, int32_t * argmax_diff, int32_t rows, int32_t vocab) {
    double err = 0.0, mag = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        if (d > err) err = d;
        if (fabs(ref[i]) > mag) mag = fabs(ref[i]);
    }
    for (int32_t r = 0; r < rows; r++) {
        int32_t a = 0, b = 0;
        for (int32_t i = 1; i < vocab; i++) {
            if (got[(size_t)r * vocab + i] > got[(size_t)r * vocab + a]) a = i;
            if (ref[(size_t)r * vocab + i] > ref[(size_t)r * vocab + b]) b = i;
        }
        *argmax_diff += a != b;
    }
    return mag > 0 ? err / mag : err;
}

int fc_engine_gpu_verify(struct fc_engine * e, int json, int * first) {
    if (!e->gpu_fwd) return 1;
    const int32_t V = e->model.cfg.vocab_size;
    int32_t n = e->context - 1 < 16 ? e->context - 1 : 16;
    if (n < 1) return 1;
    int32_t * toks = fc_xcalloc((size_t)n + 1, sizeof *toks);
    for (int32_t i = 0; i <= n; i++) toks[i] = (int32_t)(((int64_t)i * 7919 + 11) % V);
    float * got = fc_xcalloc((size_t)(n + 1) * V, sizeof(float)), * ref = fc_xcalloc((size_t)(n + 1) * V, sizeof(float));
    struct fc_error err = { 0 };
    int ok = 1;
    struct fc_metal_forward * gpu = e->gpu_fwd;
    /* the CPU side on a float kernel set (a default set may round prefill activations to int8) */
    struct fc_backend saved = e->be, fl;
    static const char * floats[] = { "cpu:avx512", "cpu:avx2", "cpu:neon", "cpu:generic" };
    int have_float = 0;
    const char * cpu_name = "cpu";
    for (size_t i = 0; i < sizeof floats / sizeof floats[0] && !have_float; i++) {
        have_float = fc_backend_init(&fl, floats[i], e->pool, &err) == FC_STATUS_OK;
        if (have_float) cpu_name = floats[i];
    }
    if (have_float) e->be = fl;
    for (int side = 0; side < 2 && ok; side++) { /* 0: the GPU backend, 1: the CPU layer loop */
        float * out = side == 0 ? got : ref;
        fc_engine_reset(e);
        e->gpu_fwd = side == 0 ? gpu : NULL;
        if (fc_engine_eval(e, toks, n, out, NULL, &err) != FC_STATUS_OK ||
            fc_engine_eval(e, toks + n, 1, NULL, out + (size_t)n * V, &err) != FC_STATUS_OK) {
            fprintf(stderr, "verify: %s\n", err.message);
            ok = 0;
        }
        e->gpu_fwd = gpu;
    }
    if (have_float) {
        e->be = saved;
        fc_backend_free(&fl);
    }
    fc_engine_reset(e);
    const double tol = 1e-3;
    for (int pass = 0; pass < 2 && ok; pass++) {
        int32_t diff = 0;
        const size_t off = pass == 0 ? 0 : (size_t)n * V;
        const int32_t rows = pass == 0 ? n : 1;
        const double r = max_rel(got + off, ref + off, (size_t)rows * V, &diff, rows, V);
        const int pass_ok = r < tol && diff == 0;
        const char * name = pass == 0 ? "prefill logits (all positions)" : "decode logits (next token)";
        if (json) {
            printf("%s{\"name\":\"%s/%s\",\"tokens\":%d,\"max_rel_err\":%.3g,\"argmax_mismatches\":%d,\"tolerance\":%.0e,\"ok\":%s}",
                   *first ? "" : ",", e->backend_name, name, rows, r, diff, tol, pass_ok ? "true" : "false");
            *first = 0;
        } else {
            printf("verify %s %-30s vs %s tokens=%d  error %.3g (< %.0e), argmax mismatches %d  %s\n", e->backend_name, name,
                   cpu_name, rows, r, tol, diff, pass_ok ? "ok" : "FAILED");
        }
        ok &= pass_ok;
    }
    free(toks), free(got), free(ref);
    return ok;
}
