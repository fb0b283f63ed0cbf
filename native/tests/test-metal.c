/*
 * Every Metal kernel against a plain-C reference at odd sizes (one row, row counts not a multiple of the
 * threadgroup's rows, tails, several tokens, f32, f16 and bf16 KV caches), through the device interface: the
 * emulator (--device metal-emu, the default where it is built in), the GPU on a Mac (--device metal). Per op it prints the
 * number of cases, the largest error relative to the reference's largest magnitude and the largest
 * normalised MSE (sum (got - ref)^2 / sum ref^2); each is held to a tolerance. Exit 0 when all pass.
 *   test-metal [--device metal-emu|metal] [--all] [--workers N] [--bench]
 *              [--model ARTIFACTS [--experts DIR] [--kv-f16] [--chunk N] [--slots N] [--expert-io pread|mmap] [--dump FILE]]
 * Without --all a focused subset of the sizes runs (the test suite's); --bench times the emulator.
 * --model runs the engine with the GPU layer backend on this device beside the engine on the CPU — the fixture's
 * prompt in chunks of --chunk tokens (13: odd batches, a tail), then the device's greedy tokens one at a
 * time (printed) — and compares every position's logits and argmax; --slots limits the expert slots (a
 * batch's experts then come in waves); --experts reads another expert folder (packed_experts_2bit);
 * --expert-io mmap has the GPU read the experts in place from the mapped layer files;
 * --dump writes the device's logits
 * [positions][vocab] as float32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "engine.h"
#include "metal/device.h"
#include "metal/metal-forward.h"
#include "metal/kernel-args.h"
#include "util.h"

static struct fc_gpu * gpu;
static int all_sizes;

/* ===== random data ===== */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}
static float rndf(void) { return (float)(rnd() >> 8) / 8388608.0f - 1.0f; }
static void fill(float * x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = rndf() * scale;
}
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
static uint16_t to_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

/* ===== error accounting per op ===== */

struct op_stats {
    const char * name;
    double tol_rel, tol_nmse;
    int cases, failures;
    double max_rel, max_nmse;
};

static int total_failures;

static void compare(struct op_stats * op, const char * what, const float * got, const float * ref, size_t n) {
    double max_ref = 1e-30, max_diff = 0.0, se = 0.0, sr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (isnan(got[i]) != isnan(ref[i])) d = INFINITY;
        if (d > max_diff) max_diff = d;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        se += d * d;
        sr += (double)ref[i] * ref[i];
    }
    double rel = max_diff / max_ref, nmse = sr > 0 ? se / sr : se;
    op->cases++;
    if (rel > op->max_rel) op->max_rel = rel;
    if (nmse > op->max_nmse) op->max_nmse = nmse;
    if (!(rel <= op->tol_rel) || !(nmse <= op->tol_nmse)) {
        op->failures++;
        total_failures++;
        printf("FAIL %s %s: max rel err %.3g (tol %.1g), nmse %.3g (tol %.1g)\n", op->name, what, rel, op->tol_rel, nmse, op->tol_nmse);
    }
}

static void compare_int(struct op_stats * op, const char * what, const int32_t * got, const int32_t * ref, size_t n) {
    op->cases++;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != ref[i]) {
            op->failures++;
            total_failures++;
            printf("FAIL %s %s: index %zu is %d, expected %d\n", op->name, what, i, got[i], ref[i]);
            return;
        }
    }
}

static void report(const struct op_stats * op) {
    printf("op %-14s cases %4d  max rel err %.3g  max nmse %.3g  %s\n", op->name, op->cases, op->max_rel, op->max_nmse,
           op->failures ? "FAIL" : "ok");
}

/* ===== device helpers ===== */

static struct fc_gpu_buffer * buf_from(const void * data, size_t n_bytes) {
    struct fc_error err;
    struct fc_gpu_buffer * b = gpu->ops->buffer_new(gpu, n_bytes ? n_bytes : 4, &err);
    if (!b) {
        fprintf(stderr, "%s\n", err.message);
        exit(2);
    }
    if (data) memcpy(gpu->ops->buffer_contents(b), data, n_bytes);
    return b;
}
static void * contents(struct fc_gpu_buffer * b) { return gpu->ops->buffer_contents(b); }

struct launch {
    const char * kernel;
    const void * args;
    size_t args_bytes;
    struct fc_gpu_buffer * bufs[12]; /* bound at indices 1.. */
    int n_bufs;
    struct fc_gpu_size groups, threads;
};

static void run(const struct launch * l) {
    struct fc_error err;
    struct fc_gpu_pipeline * p = gpu->ops->pipeline(gpu, l->kernel, &err);
    if (!p) {
        fprintf(stderr, "%s\n", err.message);
        exit(2);
    }
    struct fc_gpu_cmd * c = gpu->ops->cmd_begin(gpu);
    gpu->ops->set_pipeline(c, p);
    gpu->ops->set_bytes(c, 0, l->args, l->args_bytes);
    for (int i = 0; i < l->n_bufs; i++) gpu->ops->set_buffer(c, (uint32_t)i + 1, l->bufs[i], 0);
    gpu->ops->dispatch(c, l->groups, l->threads);
    gpu->ops->commit(c);
    if (gpu->ops->wait(c, &err) != FC_STATUS_OK) {
        fprintf(stderr, "%s: %s\n", l->kernel, err.message);
        exit(2);
    }
}

static uint32_t ceil_div(int64_t a, int64_t b) { return (uint32_t)((a + b - 1) / b); }

/* ===== matmul: quantized and float weights, one token and several ===== */

static struct op_stats op_matvec = { "matvec", 2e-5, 1e-10, 0, 0, 0, 0 };
static struct op_stats op_matmul = { "matmul", 2e-5, 1e-10, 0, 0, 0, 0 };

static void check_matmul(enum fc_dtype type, int32_t rows, int32_t cols, int32_t n_tokens, int batched) {
    const int bits = fc_dtype_bits(type);
    const int quant = fc_dtype_is_quantized(type);
    const int32_t ng = quant ? cols / FC_QGROUP : 0;
    const size_t row_bytes = quant ? (size_t)cols * bits / 8 : (size_t)cols * (type == FC_DTYPE_F32 ? 4 : 2);
    /* weights in page-aligned memory wrapped without a copy, as the engine's mapped weights will be */
    const size_t page = 16384, data_bytes = ((size_t)rows * row_bytes + page - 1) / page * page;
    uint8_t * data = aligned_alloc(page, data_bytes);
    uint16_t * scales = malloc((size_t)rows * ng * 2 + 2), * biases = malloc((size_t)rows * ng * 2 + 2);
    for (size_t i = 0; i < data_bytes; i++) data[i] = (uint8_t)rnd();
    if (!quant) {
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            float v = rndf();
            if (type == FC_DTYPE_F32) memcpy(data + i * 4, &v, 4);
            else {
                uint16_t h = type == FC_DTYPE_BF16 ? to_bf16(v) : to_f16(v);
                memcpy(data + i * 2, &h, 2);
            }
        }
    }
    for (int32_t i = 0; i < rows * ng; i++) {
        scales[i] = to_bf16(rndf() * 0.05f); /* negative scales occur in MLX files */
        biases[i] = to_bf16(rndf() * 0.2f);
    }
    struct fc_matrix m = { type, rows, cols, quant ? FC_QGROUP : 0, row_bytes, data, scales, biases };
    float * x = malloc((size_t)n_tokens * cols * sizeof(float));
    float * ref = malloc((size_t)n_tokens * rows * sizeof(float));
    fill(x, (size_t)n_tokens * cols, 1.0f);
    fc_matmul_reference(&m, x, ref, n_tokens);

    struct fc_error err;
    struct fc_gpu_buffer * bw = gpu->ops->buffer_wrap(gpu, data, data_bytes, &err);
    if (!bw) {
        fprintf(stderr, "%s\n", err.message);
        exit(2);
    }
    struct fc_gpu_buffer * bs = buf_from(scales, (size_t)rows * ng * 2), * bb = buf_from(biases, (size_t)rows * ng * 2);
    struct fc_gpu_buffer * bx = buf_from(x, (size_t)n_tokens * cols * 4), * bo = buf_from(NULL, (size_t)n_tokens * rows * 4);
    struct fc_matmul_args a = { rows, cols, n_tokens, (int32_t)row_bytes, cols, rows };
    static const char * names[] = { "f32", "f16", "bf16", "q2", "q4", "q8" };
    char kernel[32];
    snprintf(kernel, sizeof kernel, "fc_%s_%s", batched ? "matmul" : "matvec", names[type]);
    const int per_group_tokens = batched ? FC_MM_TOKENS : 1;
    struct launch l = { kernel, &a, sizeof a, { bw, bs, bb, bx, bo }, 5,
                        fc_gpu_size2(ceil_div(rows, FC_MM_ROWS * FC_MM_SIMDGROUPS), ceil_div(n_tokens, per_group_tokens)),
                        fc_gpu_size1(FC_MM_SIMDGROUPS * FC_SIMD_WIDTH) };
    run(&l);
    char what[96];
    snprintf(what, sizeof what, "%s [%d x %d] tokens=%d", kernel, rows, cols, n_tokens);
    compare(batched ? &op_matmul : &op_matvec, what, contents(bo), ref, (size_t)n_tokens * rows);
    gpu->ops->buffer_free(bw);
    gpu->ops->buffer_free(bs);
    gpu->ops->buffer_free(bb);
    gpu->ops->buffer_free(bx);
    gpu->ops->buffer_free(bo);
    free(data);
    free(scales);
    free(biases);
    free(x);
    free(ref);
}

static void test_matmul(void) {
    const int32_t rows_q[] = { 1, 9, 67, 130 }, cols_q[] = { 64, 320, 1024 };
    const int32_t rows_f[] = { 1, 5, 33 }, cols_f[] = { 16, 40, 200 };
    const int32_t tokens[] = { 1, 3, 8, 13 };
    const enum fc_dtype qtypes[] = { FC_DTYPE_Q2, FC_DTYPE_Q4, FC_DTYPE_Q8 };
    const enum fc_dtype ftypes[] = { FC_DTYPE_F32, FC_DTYPE_F16, FC_DTYPE_BF16 };
    for (int q = 0; q < 3; q++) {
        for (int ri = 0; ri < 4; ri++) {
            for (int ci = 0; ci < 3; ci++) {
                if (!all_sizes && (ri + ci) % 2) continue;
                check_matmul(qtypes[q], rows_q[ri], cols_q[ci], 1, 0);
                check_matmul(qtypes[q], rows_q[ri], cols_q[ci], ri == 0 ? 2 : 1, 0); /* matvec over grid.y tokens */
                for (int ti = 1; ti < 4; ti++) {
                    if (!all_sizes && ti != 1 + (ri + ci) % 3) continue;
                    check_matmul(qtypes[q], rows_q[ri], cols_q[ci], tokens[ti], 1);
                }
            }
        }
    }
    for (int f = 0; f < 3; f++) {
        for (int ri = 0; ri < 3; ri++) {
            for (int ci = 0; ci < 3; ci++) {
                if (!all_sizes && (ri + ci) % 2) continue;
                check_matmul(ftypes[f], rows_f[ri], cols_f[ci], 1, 0);
                check_matmul(ftypes[f], rows_f[ri], cols_f[ci], tokens[1 + ci], 1);
            }
        }
    }
    report(&op_matvec);
    report(&op_matmul);
}

/* ===== RMSNorm and the per-head L2 norm ===== */

static void ref_rmsnorm(float * out, const float * x, const float * w, int32_t n, float eps) {
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int32_t i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

static struct op_stats op_rms = { "rms_norm", 1e-5, 1e-11, 0, 0, 0, 0 };
static struct op_stats op_l2 = { "l2norm_heads", 1e-5, 1e-11, 0, 0, 0, 0 };

static void test_norms(void) {
    const int32_t ns[] = { 1, 7, 64, 130, 1000, 4096 };
    const uint32_t threads[] = { 32, 96, 256, 1024 };
    for (int ni = 0; ni < 6; ni++) {
        for (int ti = 0; ti < 4; ti++) {
            if (!all_sizes && (ni + ti) % 3) continue;
            const int32_t n = ns[ni], rows = 3, stride = n + 5;
            float * x = malloc((size_t)rows * stride * 4), * w = malloc((size_t)n * 4), * ref = calloc((size_t)rows * n, 4);
            fill(x, (size_t)rows * stride, 3.0f);
            fill(w, (size_t)n, 1.5f);
            for (int r = 0; r < rows; r++) ref_rmsnorm(ref + (size_t)r * n, x + (size_t)r * stride, w, n, 1e-6f);
            struct fc_gpu_buffer * bx = buf_from(x, (size_t)rows * stride * 4), * bw = buf_from(w, (size_t)n * 4);
            struct fc_gpu_buffer * bo = buf_from(NULL, (size_t)rows * n * 4);
            struct fc_rms_norm_args a = { n, stride, n, 1e-6f };
            struct launch l = { "fc_rms_norm", &a, sizeof a, { bx, bw, bo }, 3, fc_gpu_size1(rows), fc_gpu_size1(threads[ti]) };
            run(&l);
            char what[64];
            snprintf(what, sizeof what, "n=%d threads=%u", n, threads[ti]);
            compare(&op_rms, what, contents(bo), ref, (size_t)rows * n);
            /* in place, as the engine normalises q/k heads */
            struct fc_rms_norm_args ip = { n, stride, stride, 1e-6f };
            struct launch l2 = { "fc_rms_norm", &ip, sizeof ip, { bx, bw, bx }, 3, fc_gpu_size1(rows), fc_gpu_size1(threads[ti]) };
            run(&l2);
            float * got = malloc((size_t)rows * n * 4);
            for (int r = 0; r < rows; r++) memcpy(got + (size_t)r * n, (float *)contents(bx) + (size_t)r * stride, (size_t)n * 4);
            compare(&op_rms, "in place", got, ref, (size_t)rows * n);
            gpu->ops->buffer_free(bx);
            gpu->ops->buffer_free(bw);
            gpu->ops->buffer_free(bo);
            free(x), free(w), free(ref), free(got);
        }
    }
    report(&op_rms);
    const int32_t dims[] = { 32, 48, 128 };
    for (int di = 0; di < 3; di++) {
        const int32_t dim = dims[di], n_heads = 6, n_tokens = 3, stride = n_heads * dim + 11, n_scaled = 3;
        const float scale = 1.0f / sqrtf((float)dim);
        float * x = malloc((size_t)n_tokens * stride * 4), * ref = malloc((size_t)n_tokens * stride * 4);
        fill(x, (size_t)n_tokens * stride, 2.0f);
        memcpy(ref, x, (size_t)n_tokens * stride * 4);
        for (int t = 0; t < n_tokens; t++) {
            for (int h = 0; h < n_heads; h++) {
                float * v = ref + (size_t)t * stride + (size_t)h * dim;
                double ss = 0.0;
                for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
                const float r = (float)(1.0 / sqrt(ss + 1e-6)) * (h < n_scaled ? scale : 1.0f);
                for (int i = 0; i < dim; i++) v[i] *= r;
            }
        }
        struct fc_gpu_buffer * bx = buf_from(x, (size_t)n_tokens * stride * 4);
        struct fc_l2norm_args a = { n_tokens, n_heads, dim, stride, n_scaled, scale, 1e-6f };
        struct launch l = { "fc_l2norm_heads", &a, sizeof a, { bx }, 1, fc_gpu_size2(n_heads, n_tokens), fc_gpu_size1(32) };
        run(&l);
        char what[32];
        snprintf(what, sizeof what, "dim=%d", dim);
        compare(&op_l2, what, contents(bx), ref, (size_t)n_tokens * stride);
        gpu->ops->buffer_free(bx);
        free(x), free(ref);
    }
    report(&op_l2);
}

/* ===== RoPE ===== */

static struct op_stats op_rope = { "rope", 2e-6, 1e-12, 0, 0, 0, 0 };

static void test_rope(void) {
    const int32_t rots[] = { 2, 16, 64 }, pos0s[] = { 0, 5, 3000 };
    for (int ri = 0; ri < 3; ri++) {
        for (int pi = 0; pi < 3; pi++) {
            const int32_t rot = rots[ri], hd = 64, n_heads = 3, n_tokens = 4, head_stride = 2 * hd, tok_stride = n_heads * head_stride;
            float * inv = malloc((size_t)rot / 2 * 4);
            for (int i = 0; i < rot / 2; i++) inv[i] = (float)(1.0 / pow(1e7, (double)((float)(2 * i) / (float)rot)));
            float * x = malloc((size_t)n_tokens * tok_stride * 4), * ref = malloc((size_t)n_tokens * tok_stride * 4);
            fill(x, (size_t)n_tokens * tok_stride, 1.0f);
            memcpy(ref, x, (size_t)n_tokens * tok_stride * 4);
            for (int t = 0; t < n_tokens; t++) {
                for (int h = 0; h < n_heads; h++) {
                    float * v = ref + (size_t)t * tok_stride + (size_t)h * head_stride;
                    for (int i = 0; i < rot / 2; i++) {
                        const float angle = (float)(pos0s[pi] + t) * inv[i];
                        const float cs = (float)cos((double)angle), sn = (float)sin((double)angle);
                        const float x1 = v[i], x2 = v[i + rot / 2];
                        v[i] = x1 * cs - x2 * sn;
                        v[i + rot / 2] = x2 * cs + x1 * sn;
                    }
                }
            }
            struct fc_gpu_buffer * bx = buf_from(x, (size_t)n_tokens * tok_stride * 4), * bi = buf_from(inv, (size_t)rot / 2 * 4);
            struct fc_rope_args a = { n_tokens, n_heads, rot, head_stride, tok_stride, pos0s[pi] };
            const uint32_t n = (uint32_t)(n_tokens * n_heads * rot / 2);
            struct launch l = { "fc_rope", &a, sizeof a, { bx, bi }, 2, fc_gpu_size1(ceil_div(n, 64)), fc_gpu_size1(64) };
            run(&l);
            char what[48];
            snprintf(what, sizeof what, "rot=%d pos0=%d", rot, pos0s[pi]);
            compare(&op_rope, what, contents(bx), ref, (size_t)n_tokens * tok_stride);
            gpu->ops->buffer_free(bx);
            gpu->ops->buffer_free(bi);
            free(inv), free(x), free(ref);
        }
    }
    report(&op_rope);
}

/* ===== KV store and attention ===== */

static struct op_stats op_kv = { "kv_store", 0, 0, 0, 0, 0, 0 };
static struct op_stats op_attn = { "attn", 2e-5, 1e-10, 0, 0, 0, 0 };

/* cache types: 0 f32, 1 f16, 2 bf16 (the CPU cache's conversions) */
static const char * const kv_names[] = { "f32", "f16", "bf16" };

static float cache_value(const void * cache, int ty, size_t i) {
    if (ty == 1) return fc_f16_to_f32(((const uint16_t *)cache)[i]);
    if (ty == 2) return fc_bf16_to_f32(((const uint16_t *)cache)[i]);
    return ((const float *)cache)[i];
}

static uint16_t to_half_kind(int ty, float x) { return ty == 1 ? to_f16(x) : fc_f32_to_bf16(x); }

static void check_attention(int ty, int32_t nh, int32_t nkv, int32_t hd, int32_t n_tokens, int32_t pos0) {
    const int32_t kvdim = nkv * hd, ctx = pos0 + n_tokens + 3, group = nh / nkv;
    const size_t esz = ty ? 2 : 4;
    /* cache rows before pos0 from earlier steps; this step's K/V stored by the kernel */
    float * hist = malloc((size_t)ctx * kvdim * 4 * 2);
    fill(hist, (size_t)ctx * kvdim * 2, 1.0f);
    uint8_t * kc = calloc((size_t)ctx * kvdim, esz), * vc = calloc((size_t)ctx * kvdim, esz);
    for (size_t i = 0; i < (size_t)pos0 * kvdim; i++) {
        if (ty) {
            ((uint16_t *)kc)[i] = to_half_kind(ty, hist[i]);
            ((uint16_t *)vc)[i] = to_half_kind(ty, hist[(size_t)ctx * kvdim + i]);
        } else {
            ((float *)kc)[i] = hist[i];
            ((float *)vc)[i] = hist[(size_t)ctx * kvdim + i];
        }
    }
    const int32_t src_stride = kvdim + 3;
    float * k = malloc((size_t)n_tokens * src_stride * 4), * v = malloc((size_t)n_tokens * src_stride * 4);
    fill(k, (size_t)n_tokens * src_stride, 1.0f);
    fill(v, (size_t)n_tokens * src_stride, 1.0f);
    struct fc_gpu_buffer * bk = buf_from(k, (size_t)n_tokens * src_stride * 4), * bv = buf_from(v, (size_t)n_tokens * src_stride * 4);
    struct fc_gpu_buffer * bkc = buf_from(kc, (size_t)ctx * kvdim * esz), * bvc = buf_from(vc, (size_t)ctx * kvdim * esz);
    struct fc_kv_store_args ka = { n_tokens, kvdim, src_stride, pos0 };
    char store_name[32], attn_name[32];
    snprintf(store_name, sizeof store_name, "fc_kv_store_%s", kv_names[ty]);
    snprintf(attn_name, sizeof attn_name, "fc_attn_%s", kv_names[ty]);
    struct launch ls = { store_name, &ka, sizeof ka, { bk, bv, bkc, bvc }, 4,
                         fc_gpu_size1(ceil_div((int64_t)n_tokens * kvdim, 64)), fc_gpu_size1(64) };
    run(&ls);
    /* the store: exactly the converted values at pos0.., nothing else touched */
    int32_t * got_bits = malloc((size_t)ctx * kvdim * 2 * sizeof(int32_t)), * ref_bits = malloc((size_t)ctx * kvdim * 2 * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)ctx * kvdim; i++) {
        const int32_t t = (int32_t)(i / kvdim) - pos0, c = (int32_t)(i % kvdim);
        const int fresh = t >= 0 && t < n_tokens;
        for (int which = 0; which < 2; which++) {
            const uint8_t * src = which ? vc : kc;
            const float * s = which ? v : k;
            const void * dev = contents(which ? bvc : bkc);
            int32_t r = 0, g = 0;
            if (ty) {
                r = fresh ? to_half_kind(ty, s[(size_t)t * src_stride + c]) : ((const uint16_t *)src)[i];
                g = ((const uint16_t *)dev)[i];
            } else {
                float rf = fresh ? s[(size_t)t * src_stride + c] : ((const float *)src)[i];
                memcpy(&r, &rf, 4);
                memcpy(&g, (const float *)dev + i, 4);
            }
            ref_bits[2 * i + which] = r;
            got_bits[2 * i + which] = g;
        }
    }
    char what[80];
    snprintf(what, sizeof what, "%s kvdim=%d tokens=%d pos0=%d", kv_names[ty], kvdim, n_tokens, pos0);
    compare_int(&op_kv, what, got_bits, ref_bits, (size_t)ctx * kvdim * 2);

    /* attention: q heads with their gates as the engine lays them out, [q | gate] per head */
    const int32_t q_tok = 2 * nh * hd;
    float * q = malloc((size_t)n_tokens * q_tok * 4), * ref = calloc((size_t)n_tokens * nh * hd, 4);
    fill(q, (size_t)n_tokens * q_tok, 1.0f);
    const void * kcd = contents(bkc), * vcd = contents(bvc);
    const float scale = 1.0f / sqrtf((float)hd);
    float * scores = malloc((size_t)ctx * 4);
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int32_t h = 0; h < nh; h++) {
            const int32_t kvh = h / group, pos = pos0 + t;
            const float * qh = q + (size_t)t * q_tok + (size_t)h * 2 * hd;
            float mx = -INFINITY;
            for (int32_t j = 0; j <= pos; j++) {
                float d = 0.0f;
                for (int32_t i = 0; i < hd; i++) d += qh[i] * cache_value(kcd, ty, ((size_t)j * nkv + kvh) * hd + i);
                scores[j] = d * scale;
                if (scores[j] > mx) mx = scores[j];
            }
            double sum = 0.0;
            for (int32_t j = 0; j <= pos; j++) {
                scores[j] = expf(scores[j] - mx);
                sum += scores[j];
            }
            float * o = ref + (size_t)t * nh * hd + (size_t)h * hd;
            for (int32_t j = 0; j <= pos; j++) {
                const float pj = (float)(scores[j] / sum);
                for (int32_t i = 0; i < hd; i++) o[i] += pj * cache_value(vcd, ty, ((size_t)j * nkv + kvh) * hd + i);
            }
            for (int32_t i = 0; i < hd; i++) o[i] *= 1.0f / (1.0f + expf(-qh[hd + i]));
        }
    }
    struct fc_gpu_buffer * bq = buf_from(q, (size_t)n_tokens * q_tok * 4), * bo = buf_from(NULL, (size_t)n_tokens * nh * hd * 4);
    struct fc_attn_args aa = { nh, nkv, hd, n_tokens, pos0, q_tok, 2 * hd, hd, nh * hd, scale };
    struct launch la = { attn_name, &aa, sizeof aa, { bq, bkc, bvc, bo }, 4,
                         fc_gpu_size2(nh, n_tokens), fc_gpu_size1(FC_ATTN_SIMDGROUPS * FC_SIMD_WIDTH) };
    run(&la);
    snprintf(what, sizeof what, "%s nh=%d nkv=%d hd=%d tokens=%d pos0=%d", kv_names[ty], nh, nkv, hd, n_tokens, pos0);
    compare(&op_attn, what, contents(bo), ref, (size_t)n_tokens * nh * hd);
    struct fc_gpu_buffer * bufs[] = { bk, bv, bkc, bvc, bq, bo };
    for (int i = 0; i < 6; i++) gpu->ops->buffer_free(bufs[i]);
    free(hist), free(kc), free(vc), free(k), free(v), free(got_bits), free(ref_bits), free(q), free(ref), free(scores);
}

/* The 8-bit cache: the store against the CPU cache's own (fc_kv_store, bit for bit), the attention against a
   plain softmax over the CPU cache's decoded rows (fc_kv_rows). */
static void check_attention_q8(int32_t nh, int32_t nkv, int32_t hd, int32_t n_tokens, int32_t pos0) {
    const int32_t kvdim = nkv * hd, ctx = pos0 + n_tokens + 3, group = nh / nkv;
    struct fc_kv_cache kv;
    struct fc_error err;
    if (fc_kv_init(&kv, FC_KV_Q8, 1, nkv, hd, ctx, &err) != FC_STATUS_OK || fc_kv_reserve(&kv, ctx, &err) != FC_STATUS_OK) {
        fprintf(stderr, "test-metal: %s\n", err.message);
        exit(2);
    }
    const size_t region = (size_t)ctx * kv.pos_bytes;
    float * hist = malloc((size_t)ctx * kvdim * 4);
    for (int which = 0; which < 2; which++) { /* rows before pos0 from earlier steps */
        for (int32_t j = 0; j < pos0; j++) {
            fill(hist, (size_t)kvdim, 1.0f);
            fc_kv_store(&kv, 0, which, j, hist);
        }
    }
    const int32_t src_stride = kvdim + 3;
    float * k = malloc((size_t)n_tokens * src_stride * 4), * v = malloc((size_t)n_tokens * src_stride * 4);
    fill(k, (size_t)n_tokens * src_stride, 1.0f);
    fill(v, (size_t)n_tokens * src_stride, 1.0f);
    if (n_tokens > 1) for (int32_t i = 0; i < hd; i++) k[(size_t)src_stride + i] = 0.0f; /* an all-zero row: scale 0 */
    struct fc_gpu_buffer * bk = buf_from(k, (size_t)n_tokens * src_stride * 4), * bv = buf_from(v, (size_t)n_tokens * src_stride * 4);
    struct fc_gpu_buffer * bkc = buf_from(fc_kv_region(&kv, 0, 0), region), * bvc = buf_from(fc_kv_region(&kv, 0, 1), region);
    struct fc_kv_store_q8_args ka = { n_tokens, nkv, hd, src_stride, pos0 };
    struct launch ls = { "fc_kv_store_q8", &ka, sizeof ka, { bk, bv, bkc, bvc }, 4, fc_gpu_size2(nkv, n_tokens), fc_gpu_size1(32) };
    run(&ls);
    for (int32_t t = 0; t < n_tokens; t++) { /* the reference: the CPU cache stores the same rows */
        for (int which = 0; which < 2; which++) {
            for (int32_t i = 0; i < kvdim; i++) hist[i] = (which ? v : k)[(size_t)t * src_stride + i];
            fc_kv_store(&kv, 0, which, pos0 + t, hist);
        }
    }
    int32_t * got = malloc(region * 2 * sizeof(int32_t)), * ref = malloc(region * 2 * sizeof(int32_t));
    for (size_t i = 0; i < region; i++) {
        for (int which = 0; which < 2; which++) {
            got[2 * i + which] = ((const uint8_t *)contents(which ? bvc : bkc))[i];
            ref[2 * i + which] = fc_kv_region(&kv, 0, which)[i];
        }
    }
    char what[96];
    snprintf(what, sizeof what, "q8 kvdim=%d tokens=%d pos0=%d", kvdim, n_tokens, pos0);
    compare_int(&op_kv, what, got, ref, region * 2);
    /* attention over the device's cache, against the CPU's decoded rows of the same bytes */
    memcpy(fc_kv_region(&kv, 0, 0), contents(bkc), region);
    memcpy(fc_kv_region(&kv, 0, 1), contents(bvc), region);
    const int32_t q_tok = 2 * nh * hd;
    float * q = malloc((size_t)n_tokens * q_tok * 4), * out = calloc((size_t)n_tokens * nh * hd, 4);
    float * kr = malloc((size_t)ctx * hd * 4), * vr = malloc((size_t)ctx * hd * 4), * scores = malloc((size_t)ctx * 4);
    fill(q, (size_t)n_tokens * q_tok, 1.0f);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int32_t h = 0; h < nh; h++) {
            const int32_t pos = pos0 + t;
            size_t ks, vs;
            const float * K = fc_kv_rows(&kv, 0, 0, h / group, 0, pos + 1, kr, &ks), * V = fc_kv_rows(&kv, 0, 1, h / group, 0, pos + 1, vr, &vs);
            const float * qh = q + (size_t)t * q_tok + (size_t)h * 2 * hd;
            float mx = -INFINITY;
            for (int32_t j = 0; j <= pos; j++) {
                float d = 0.0f;
                for (int32_t i = 0; i < hd; i++) d += qh[i] * K[(size_t)j * ks + i];
                scores[j] = d * scale;
                if (scores[j] > mx) mx = scores[j];
            }
            double sum = 0.0;
            for (int32_t j = 0; j <= pos; j++) sum += scores[j] = expf(scores[j] - mx);
            float * o = out + (size_t)t * nh * hd + (size_t)h * hd;
            for (int32_t j = 0; j <= pos; j++) {
                for (int32_t i = 0; i < hd; i++) o[i] += (float)(scores[j] / sum) * V[(size_t)j * vs + i];
            }
            for (int32_t i = 0; i < hd; i++) o[i] *= 1.0f / (1.0f + expf(-qh[hd + i]));
        }
    }
    struct fc_gpu_buffer * bq = buf_from(q, (size_t)n_tokens * q_tok * 4), * bo = buf_from(NULL, (size_t)n_tokens * nh * hd * 4);
    struct fc_attn_args aa = { nh, nkv, hd, n_tokens, pos0, q_tok, 2 * hd, hd, nh * hd, scale };
    struct launch la = { "fc_attn_q8", &aa, sizeof aa, { bq, bkc, bvc, bo }, 4, fc_gpu_size2(nh, n_tokens),
                         fc_gpu_size1(FC_ATTN_SIMDGROUPS * FC_SIMD_WIDTH) };
    run(&la);
    snprintf(what, sizeof what, "q8 nh=%d nkv=%d hd=%d tokens=%d pos0=%d", nh, nkv, hd, n_tokens, pos0);
    compare(&op_attn, what, contents(bo), out, (size_t)n_tokens * nh * hd);
    struct fc_gpu_buffer * bufs[] = { bk, bv, bkc, bvc, bq, bo };
    for (int i = 0; i < 6; i++) gpu->ops->buffer_free(bufs[i]);
    fc_kv_free(&kv);
    free(hist), free(k), free(v), free(got), free(ref), free(q), free(out), free(kr), free(vr), free(scores);
}

static void test_attention(void) {
    const int32_t hds[] = { 64, 80, 256 }, tokens[] = { 1, 3 }, pos0s[] = { 0, 2, 37 };
    for (int ty = 0; ty < 3; ty++) {
        for (int hi = 0; hi < 3; hi++) {
            for (int ti = 0; ti < 2; ti++) {
                for (int pi = 0; pi < 3; pi++) {
                    if (!all_sizes && (hi + ti + pi + ty) % 3) continue;
                    check_attention(ty, 4, 2, hds[hi], tokens[ti], pos0s[pi]);
                }
            }
        }
    }
    check_attention(0, 2, 2, 32, 1, 700); /* more positions than threads; one kv head per head */
    const int32_t q8_hds[] = { 64, 80, 256 };
    for (int hi = 0; hi < 3; hi++) {
        for (int ti = 0; ti < 2; ti++) {
            for (int pi = 0; pi < 3; pi++) {
                if (!all_sizes && (hi + ti + pi) % 3) continue;
                check_attention_q8(4, 2, q8_hds[hi], tokens[ti], pos0s[pi]);
            }
        }
    }
    report(&op_kv);
    report(&op_attn);
}

/* ===== GatedDeltaNet: conv1d + SiLU, the delta rule ===== */

static struct op_stats op_conv = { "conv1d_silu", 1e-6, 1e-13, 0, 0, 0, 0 };
static struct op_stats op_delta = { "delta_step", 2e-5, 1e-10, 0, 0, 0, 0 };

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

static void test_conv(void) {
    const int32_t chans[] = { 1, 33, 100 }, taps[] = { 1, 2, 4 }, tokens[] = { 1, 5 };
    for (int ci = 0; ci < 3; ci++) {
        for (int ki = 0; ki < 3; ki++) {
            for (int ti = 0; ti < 2; ti++) {
                const int32_t C = chans[ci], K = taps[ki], n = tokens[ti], stride = C + 7;
                float * x = malloc((size_t)n * stride * 4), * w = malloc((size_t)C * K * 4);
                float * st = malloc(((size_t)(K - 1) * C + 1) * 4);
                fill(x, (size_t)n * stride, 1.0f);
                fill(w, (size_t)C * K, 1.0f);
                fill(st, (size_t)(K - 1) * C + 1, 1.0f);
                struct fc_gpu_buffer * bx = buf_from(x, (size_t)n * stride * 4), * bw = buf_from(w, (size_t)C * K * 4);
                struct fc_gpu_buffer * bs = buf_from(st, ((size_t)(K - 1) * C + 1) * 4);
                for (int32_t t = 0; t < n; t++) {
                    float * row = x + (size_t)t * stride;
                    for (int32_t ch = 0; ch < C; ch++) {
                        const float * wc = w + (size_t)ch * K;
                        float acc = wc[K - 1] * row[ch];
                        for (int32_t j = 0; j < K - 1; j++) acc += wc[j] * st[(size_t)j * C + ch];
                        for (int32_t j = 0; j + 1 < K - 1; j++) st[(size_t)j * C + ch] = st[(size_t)(j + 1) * C + ch];
                        if (K > 1) st[(size_t)(K - 2) * C + ch] = row[ch];
                        row[ch] = silu(acc);
                    }
                }
                struct fc_conv1d_args a = { C, K, n, stride };
                struct launch l = { "fc_conv1d_silu", &a, sizeof a, { bx, bw, bs }, 3, fc_gpu_size1(ceil_div(C, 32)), fc_gpu_size1(32) };
                run(&l);
                char what[48];
                snprintf(what, sizeof what, "C=%d K=%d tokens=%d", C, K, n);
                compare(&op_conv, what, contents(bx), x, (size_t)n * stride);
                if (K > 1) compare(&op_conv, "state", contents(bs), st, (size_t)(K - 1) * C);
                gpu->ops->buffer_free(bx);
                gpu->ops->buffer_free(bw);
                gpu->ops->buffer_free(bs);
                free(x), free(w), free(st);
            }
        }
    }
    report(&op_conv);
}

static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

static void check_delta(int32_t nk, int32_t nv, int32_t dk, int32_t dv, int32_t n) {
    const int32_t qkv_stride = 2 * nk * dk + nv * dv, z_stride = nv * dv + 2, out_stride = nv * dv + 1;
    float * qkv = malloc((size_t)n * qkv_stride * 4), * z = malloc((size_t)n * z_stride * 4);
    float * b = malloc((size_t)n * nv * 4), * av = malloc((size_t)n * nv * 4), * a_neg = malloc((size_t)nv * 4);
    float * dt = malloc((size_t)nv * 4), * nw = malloc((size_t)dv * 4), * S = malloc((size_t)nv * dk * dv * 4);
    float * ref = calloc((size_t)n * out_stride, 4);
    fill(qkv, (size_t)n * qkv_stride, 0.3f);
    fill(z, (size_t)n * z_stride, 2.0f);
    fill(b, (size_t)n * nv, 2.0f);
    fill(av, (size_t)n * nv, 3.0f);
    for (int32_t h = 0; h < nv; h++) a_neg[h] = -expf(rndf());
    fill(dt, (size_t)nv, 1.0f);
    fill(nw, (size_t)dv, 1.0f);
    fill(S, (size_t)nv * dk * dv, 0.5f);
    struct fc_gpu_buffer * bq = buf_from(qkv, (size_t)n * qkv_stride * 4), * bz = buf_from(z, (size_t)n * z_stride * 4);
    struct fc_gpu_buffer * bb = buf_from(b, (size_t)n * nv * 4), * ba = buf_from(av, (size_t)n * nv * 4);
    struct fc_gpu_buffer * ban = buf_from(a_neg, (size_t)nv * 4), * bdt = buf_from(dt, (size_t)nv * 4), * bnw = buf_from(nw, (size_t)dv * 4);
    struct fc_gpu_buffer * bs = buf_from(S, (size_t)nv * dk * dv * 4), * bo = buf_from(NULL, (size_t)n * out_stride * 4);
    /* the engine's delta rule (linear-attn.c), per value head, tokens in order */
    float * kv = malloc((size_t)dv * 4), * delta = malloc((size_t)dv * 4), * o = malloc((size_t)dv * 4);
    for (int32_t h = 0; h < nv; h++) {
        float * Sh = S + (size_t)h * dk * dv;
        const int32_t kh = h / (nv / nk);
        for (int32_t t = 0; t < n; t++) {
            const float * row = qkv + (size_t)t * qkv_stride;
            const float * q = row + (size_t)kh * dk, * k = row + (size_t)nk * dk + (size_t)kh * dk;
            const float * v = row + (size_t)2 * nk * dk + (size_t)h * dv;
            const float beta = sigm(b[(size_t)t * nv + h]);
            const float decay = expf(a_neg[h] * softplus(av[(size_t)t * nv + h] + dt[h]));
            for (int32_t j = 0; j < dv; j++) kv[j] = 0.0f;
            for (int32_t i = 0; i < dk; i++)
                for (int32_t j = 0; j < dv; j++) kv[j] += Sh[(size_t)i * dv + j] * k[i];
            for (int32_t j = 0; j < dv; j++) {
                delta[j] = beta * (v[j] - decay * kv[j]);
                o[j] = 0.0f;
            }
            for (int32_t i = 0; i < dk; i++) {
                for (int32_t j = 0; j < dv; j++) {
                    float sv = decay * Sh[(size_t)i * dv + j] + k[i] * delta[j];
                    Sh[(size_t)i * dv + j] = sv;
                    o[j] += sv * q[i];
                }
            }
            double ss = 0.0;
            for (int32_t j = 0; j < dv; j++) ss += (double)o[j] * o[j];
            const float r = (float)(1.0 / sqrt(ss / dv + 1e-6));
            for (int32_t j = 0; j < dv; j++) {
                ref[(size_t)t * out_stride + (size_t)h * dv + j] = o[j] * r * nw[j] * silu(z[(size_t)t * z_stride + (size_t)h * dv + j]);
            }
        }
    }
    struct fc_delta_args a = { n, nk, nv, dk, dv, qkv_stride, z_stride, out_stride, 1e-6f };
    struct launch l = { "fc_delta_step", &a, sizeof a, { bq, bz, bb, ba, ban, bdt, bnw, bs, bo }, 9, fc_gpu_size1(nv),
                        fc_gpu_size1(ceil_div(dv, 32) * 32) };
    run(&l);
    char what[64];
    snprintf(what, sizeof what, "nk=%d nv=%d dk=%d dv=%d tokens=%d", nk, nv, dk, dv, n);
    compare(&op_delta, what, contents(bo), ref, (size_t)n * out_stride);
    compare(&op_delta, "state", contents(bs), S, (size_t)nv * dk * dv);
    struct fc_gpu_buffer * bufs[] = { bq, bz, bb, ba, ban, bdt, bnw, bs, bo };
    for (int i = 0; i < 9; i++) gpu->ops->buffer_free(bufs[i]);
    free(qkv), free(z), free(b), free(av), free(a_neg), free(dt), free(nw), free(S), free(ref), free(kv), free(delta), free(o);
}

static void test_delta(void) {
    check_delta(2, 4, 32, 32, 1);
    check_delta(2, 4, 32, 48, 4);
    check_delta(1, 3, 16, 70, 2);
    if (all_sizes) {
        check_delta(2, 4, 128, 128, 3);
        check_delta(4, 8, 64, 33, 5);
    }
    report(&op_delta);
}

/* ===== MoE: router + top-K, SwiGLU, combine; residual add; argmax ===== */

static struct op_stats op_router = { "router_topk", 2e-6, 1e-12, 0, 0, 0, 0 };
static struct op_stats op_swiglu = { "swiglu", 1e-6, 1e-13, 0, 0, 0, 0 };
static struct op_stats op_combine = { "moe_combine", 1e-6, 1e-13, 0, 0, 0, 0 };
static struct op_stats op_add = { "add", 0, 0, 0, 0, 0, 0 };
static struct op_stats op_argmax = { "argmax", 0, 0, 0, 0, 0, 0 };

static void check_router(int32_t E, int32_t K, int norm, int32_t n, uint32_t threads, int ties) {
    float * logits = malloc((size_t)n * E * 4), * probs = malloc((size_t)n * E * 4), * w = malloc((size_t)n * K * 4);
    int32_t * ids = malloc((size_t)n * K * 4);
    fill(logits, (size_t)n * E, 4.0f);
    if (ties) {
        for (size_t i = 0; i < (size_t)n * E; i++) logits[i] = (float)(rnd() % 4); /* many equal probabilities */
    }
    for (int32_t t = 0; t < n; t++) {
        const float * l = logits + (size_t)t * E;
        float * p = probs + (size_t)t * E;
        float mx = l[0];
        for (int32_t x = 1; x < E; x++) mx = l[x] > mx ? l[x] : mx;
        double sum = 0.0;
        for (int32_t x = 0; x < E; x++) { p[x] = expf(l[x] - mx); sum += p[x]; }
        for (int32_t x = 0; x < E; x++) p[x] = (float)(p[x] / sum);
        for (int32_t j = 0; j < K; j++) {
            int32_t best = -1;
            for (int32_t x = 0; x < E; x++) {
                int taken = 0;
                for (int32_t q = 0; q < j; q++) taken |= ids[(size_t)t * K + q] == x;
                if (!taken && (best < 0 || p[x] > p[best])) best = x;
            }
            ids[(size_t)t * K + j] = best;
            w[(size_t)t * K + j] = p[best];
        }
        if (norm) {
            float tot = 0.0f;
            for (int32_t j = 0; j < K; j++) tot += w[(size_t)t * K + j];
            for (int32_t j = 0; j < K; j++) w[(size_t)t * K + j] /= tot;
        }
    }
    struct fc_gpu_buffer * bl = buf_from(logits, (size_t)n * E * 4), * bi = buf_from(NULL, (size_t)n * K * 4), * bw = buf_from(NULL, (size_t)n * K * 4);
    struct fc_router_args a = { E, K, norm };
    struct launch l = { "fc_router_topk", &a, sizeof a, { bl, bi, bw }, 3, fc_gpu_size1(n), fc_gpu_size1(threads) };
    run(&l);
    char what[64];
    snprintf(what, sizeof what, "E=%d K=%d norm=%d threads=%u%s", E, K, norm, threads, ties ? " ties" : "");
    compare_int(&op_router, what, contents(bi), ids, (size_t)n * K);
    compare(&op_router, what, contents(bw), w, (size_t)n * K);
    compare(&op_router, "probabilities", contents(bl), probs, (size_t)n * E);
    gpu->ops->buffer_free(bl);
    gpu->ops->buffer_free(bi);
    gpu->ops->buffer_free(bw);
    free(logits), free(probs), free(w), free(ids);
}

static void test_moe(void) {
    check_router(8, 2, 1, 3, 32, 0);
    check_router(100, 10, 0, 2, 64, 0);
    check_router(512, 10, 1, 2, 256, 0);
    check_router(60, 8, 1, 4, 96, 1);
    if (all_sizes) {
        check_router(4096, 16, 1, 1, 1024, 0);
        check_router(256, 8, 1, 5, 1024, 1);
    }
    report(&op_router);

    const int32_t ns[] = { 1, 1000 };
    for (int i = 0; i < 2; i++) {
        const int32_t n = ns[i];
        float * g = malloc((size_t)n * 4), * u = malloc((size_t)n * 4), * ref = malloc((size_t)n * 4);
        fill(g, (size_t)n, 8.0f);
        fill(u, (size_t)n, 2.0f);
        for (int32_t k = 0; k < n; k++) ref[k] = silu(g[k]) * u[k];
        struct fc_gpu_buffer * bg = buf_from(g, (size_t)n * 4), * bu = buf_from(u, (size_t)n * 4);
        struct fc_swiglu_args a = { n };
        struct launch l = { "fc_swiglu", &a, sizeof a, { bg, bu }, 2, fc_gpu_size1(ceil_div(n, 256)), fc_gpu_size1(256) };
        run(&l);
        compare(&op_swiglu, "n", contents(bg), ref, (size_t)n);
        /* residual add on the same data */
        for (int32_t k = 0; k < n; k++) ref[k] += u[k];
        struct fc_add_args aa = { n };
        struct launch la = { "fc_add", &aa, sizeof aa, { bg, bu }, 2, fc_gpu_size1(ceil_div(n, 64)), fc_gpu_size1(64) };
        run(&la);
        compare(&op_add, "n", contents(bg), ref, (size_t)n);
        gpu->ops->buffer_free(bg);
        gpu->ops->buffer_free(bu);
        free(g), free(u), free(ref);
    }
    report(&op_swiglu);
    report(&op_add);

    const int32_t Hs[] = { 33, 64 }, Ks[] = { 1, 4 }, Ts[] = { 1, 3 };
    for (int hi = 0; hi < 2; hi++) {
        for (int ki = 0; ki < 2; ki++) {
            for (int ti = 0; ti < 2; ti++) {
                for (int mode = 0; mode < 4; mode++) {
                    const int32_t H = Hs[hi], K = Ks[ki], n = Ts[ti];
                    const int has_shared = mode & 1, add = mode >> 1;
                    float * x = malloc((size_t)n * H * 4), * sh = malloc((size_t)n * H * 4), * gl = malloc((size_t)n * 4);
                    float * eo = malloc((size_t)n * K * H * 4), * w = malloc((size_t)n * K * 4), * ref = malloc((size_t)n * H * 4);
                    fill(x, (size_t)n * H, 1.0f);
                    fill(sh, (size_t)n * H, 1.0f);
                    fill(gl, (size_t)n, 3.0f);
                    fill(eo, (size_t)n * K * H, 1.0f);
                    fill(w, (size_t)n * K, 1.0f);
                    for (int32_t t = 0; t < n; t++) {
                        for (int32_t i = 0; i < H; i++) {
                            float y = has_shared ? sigm(gl[t]) * sh[(size_t)t * H + i] : 0.0f;
                            for (int32_t j = 0; j < K; j++) y += w[(size_t)t * K + j] * eo[((size_t)t * K + j) * H + i];
                            ref[(size_t)t * H + i] = add ? x[(size_t)t * H + i] + y : y;
                        }
                    }
                    struct fc_gpu_buffer * bx = buf_from(x, (size_t)n * H * 4), * bs = buf_from(sh, (size_t)n * H * 4);
                    struct fc_gpu_buffer * bg = buf_from(gl, (size_t)n * 4), * be = buf_from(eo, (size_t)n * K * H * 4), * bw = buf_from(w, (size_t)n * K * 4);
                    struct fc_combine_args a = { H, K, n, has_shared, add };
                    struct launch l = { "fc_moe_combine", &a, sizeof a, { bx, bs, bg, be, bw }, 5,
                                        fc_gpu_size1(ceil_div((int64_t)n * H, 64)), fc_gpu_size1(64) };
                    run(&l);
                    char what[64];
                    snprintf(what, sizeof what, "H=%d K=%d tokens=%d shared=%d add=%d", H, K, n, has_shared, add);
                    compare(&op_combine, what, contents(bx), ref, (size_t)n * H);
                    struct fc_gpu_buffer * bufs[] = { bx, bs, bg, be, bw };
                    for (int q = 0; q < 5; q++) gpu->ops->buffer_free(bufs[q]);
                    free(x), free(sh), free(gl), free(eo), free(w), free(ref);
                }
            }
        }
    }
    report(&op_combine);

    const int32_t lens[] = { 1, 5, 513, 248320 };
    for (int li = 0; li < 4; li++) {
        if (!all_sizes && li == 3) continue;
        const int32_t n = lens[li], rows = 3;
        float * v = malloc((size_t)rows * n * 4);
        int32_t ref[3];
        fill(v, (size_t)rows * n, 10.0f);
        if (n > 2) v[n + 2] = v[n + 1] = 100.0f; /* a tie in row 1: the lower index */
        for (int r = 0; r < rows; r++) {
            ref[r] = 0;
            for (int32_t i = 1; i < n; i++) if (v[(size_t)r * n + i] > v[(size_t)r * n + ref[r]]) ref[r] = i;
        }
        struct fc_gpu_buffer * bv = buf_from(v, (size_t)rows * n * 4), * bi = buf_from(NULL, rows * 4);
        struct fc_argmax_args a = { n };
        struct launch l = { "fc_argmax", &a, sizeof a, { bv, bi }, 2, fc_gpu_size1(rows), fc_gpu_size1(li == 0 ? 32 : 1024) };
        run(&l);
        char what[32];
        snprintf(what, sizeof what, "n=%d", n);
        compare_int(&op_argmax, what, contents(bi), ref, rows);
        gpu->ops->buffer_free(bv);
        gpu->ops->buffer_free(bi);
        free(v);
    }
    report(&op_argmax);
}

/* ===== token embeddings; row gather / scatter ===== */

static struct op_stats op_embed = { "embed", 0, 0, 0, 0, 0, 0 };
static struct op_stats op_copy = { "copy_rows", 0, 0, 0, 0, 0, 0 };

static void test_embed_copy(void) {
    const enum fc_dtype types[] = { FC_DTYPE_F32, FC_DTYPE_F16, FC_DTYPE_BF16, FC_DTYPE_Q2, FC_DTYPE_Q4, FC_DTYPE_Q8 };
    for (int ti = 0; ti < 6; ti++) {
        const enum fc_dtype type = types[ti];
        const int quant = fc_dtype_is_quantized(type), bits = fc_dtype_bits(type);
        const int32_t vocab = 37, cols = quant ? 192 : 40, ng = quant ? cols / 64 : 0, n = 5;
        const size_t row_bytes = (size_t)cols * bits / 8;
        uint8_t * data = malloc((size_t)vocab * row_bytes);
        uint16_t * sc = malloc((size_t)vocab * ng * 2 + 2), * bi = malloc((size_t)vocab * ng * 2 + 2);
        for (size_t i = 0; i < (size_t)vocab * row_bytes; i++) data[i] = (uint8_t)rnd();
        if (!quant) {
            for (size_t i = 0; i < (size_t)vocab * cols; i++) {
                float v = rndf();
                if (type == FC_DTYPE_F32) memcpy(data + 4 * i, &v, 4);
                else {
                    uint16_t h = type == FC_DTYPE_BF16 ? to_bf16(v) : to_f16(v);
                    memcpy(data + 2 * i, &h, 2);
                }
            }
        }
        for (int32_t i = 0; i < vocab * ng; i++) sc[i] = to_bf16(rndf() * 0.1f), bi[i] = to_bf16(rndf());
        int32_t ids[5] = { 0, 36, 7, 7, 20 };
        float * ref = malloc((size_t)n * cols * 4);
        for (int32_t t = 0; t < n; t++) {
            const uint8_t * r = data + (size_t)ids[t] * row_bytes;
            for (int32_t i = 0; i < cols; i++) {
                float v;
                uint16_t h;
                if (type == FC_DTYPE_F32) memcpy(&v, r + 4 * i, 4);
                else if (!quant) {
                    memcpy(&h, r + 2 * i, 2);
                    v = type == FC_DTYPE_BF16 ? fc_bf16_to_f32(h) : fc_f16_to_f32(h);
                } else {
                    const size_t bit = (size_t)i * bits;
                    const float q = (float)((r[bit / 8] >> (bit % 8)) & ((1u << bits) - 1u));
                    const size_t g = (size_t)ids[t] * ng + (size_t)(i / 64);
                    v = q * fc_bf16_to_f32(sc[g]) + fc_bf16_to_f32(bi[g]);
                }
                ref[(size_t)t * cols + i] = v;
            }
        }
        struct fc_gpu_buffer * bd = buf_from(data, (size_t)vocab * row_bytes), * bs = buf_from(sc, (size_t)vocab * ng * 2);
        struct fc_gpu_buffer * bb = buf_from(bi, (size_t)vocab * ng * 2), * bids = buf_from(ids, sizeof ids);
        struct fc_gpu_buffer * bo = buf_from(NULL, (size_t)n * cols * 4);
        struct fc_embed_args a = { (int32_t)type, cols, (int32_t)row_bytes, 64, n };
        struct launch l = { "fc_embed", &a, sizeof a, { bd, bs, bb, bids, bo }, 5, fc_gpu_size1(ceil_div((int64_t)n * cols, 64)),
                            fc_gpu_size1(64) };
        run(&l);
        static const char * names[] = { "f32", "f16", "bf16", "q2", "q4", "q8" };
        compare(&op_embed, names[type], contents(bo), ref, (size_t)n * cols);
        struct fc_gpu_buffer * bufs[] = { bd, bs, bb, bids, bo };
        for (int i = 0; i < 5; i++) gpu->ops->buffer_free(bufs[i]);
        free(data), free(sc), free(bi), free(ref);
    }
    report(&op_embed);
    /* gather rows 4, 0, 4 of a [6 x 33] block (stride 35) into a packed [3 x 33], then scatter them to rows 5, 1, 2 */
    const int32_t rows = 6, cols = 33, stride = 35;
    float * src = malloc((size_t)rows * stride * 4), * ref = calloc((size_t)rows * cols, 4), * gathered = malloc(3 * (size_t)cols * 4);
    fill(src, (size_t)rows * stride, 1.0f);
    const int32_t sidx[3] = { 4, 0, 4 }, didx[3] = { 5, 1, 2 };
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < cols; c++) {
            gathered[r * cols + c] = src[(size_t)sidx[r] * stride + c];
            ref[(size_t)didx[r] * cols + c] = gathered[r * cols + c];
        }
    }
    struct fc_gpu_buffer * bs = buf_from(src, (size_t)rows * stride * 4), * bg = buf_from(NULL, 3 * (size_t)cols * 4);
    struct fc_gpu_buffer * bd = buf_from(NULL, (size_t)rows * cols * 4), * bsi = buf_from(sidx, sizeof sidx), * bdi = buf_from(didx, sizeof didx);
    struct fc_copy_rows_args ga = { 3, cols, stride, cols, 1, 0 };
    struct launch lg = { "fc_copy_rows", &ga, sizeof ga, { bs, bg, bsi, bdi }, 4, fc_gpu_size1(ceil_div(3 * cols, 32)), fc_gpu_size1(32) };
    run(&lg);
    compare(&op_copy, "gather", contents(bg), gathered, 3 * (size_t)cols);
    struct fc_copy_rows_args sa = { 3, cols, cols, cols, 0, 1 };
    struct launch lsc = { "fc_copy_rows", &sa, sizeof sa, { bg, bd, bsi, bdi }, 4, fc_gpu_size1(ceil_div(3 * cols, 32)), fc_gpu_size1(32) };
    run(&lsc);
    compare(&op_copy, "scatter", contents(bd), ref, (size_t)rows * cols);
    struct fc_gpu_buffer * bufs[] = { bs, bg, bd, bsi, bdi };
    for (int i = 0; i < 5; i++) gpu->ops->buffer_free(bufs[i]);
    free(src), free(ref), free(gathered);
    report(&op_copy);
}

/* ===== the whole model: the device's forward pass against the CPU engine ===== */

/* The prompt in chunks of `chunk` tokens (the batched path), then greedy tokens one at a time (decode): the engine
   with the GPU layer backend (this device's kind) beside the engine on the CPU one, each over its own copy of the
   model. slots > 0: the GPU engine reads a batch's experts in waves of `slots`. */
static int check_model(const char * dir, const char * experts_dir, int kv_f16, const int32_t * prompt, int32_t n_prompt,
                       int32_t n_gen, int32_t chunk, int32_t slots, const char * io, const char * dump) {
    struct fc_engine_options opt = { 0 };
    opt.artifacts_dir = dir;
    opt.experts_dir = experts_dir;
    opt.backend = "cpu:generic"; /* a float level: the default may round prefill activations to int8 (PLATFORM.md) */
    opt.n_threads = 1;
    opt.context = 256;
    opt.max_batch = chunk;
    opt.expert_io = FC_EXPERT_IO_PREAD;
    opt.kv_type = FC_KV_F32;
    struct fc_engine e, g;
    struct fc_error err = { 0 };
    if (fc_engine_init(&e, &opt, &err) != FC_STATUS_OK) {
        fprintf(stderr, "test-metal: %s\n", err.message);
        return 2;
    }
    opt.backend = gpu->ops->name;
    opt.kv_type = kv_f16 ? FC_KV_F16 : FC_KV_F32;
    opt.expert_io = strcmp(io, "mmap") == 0 ? FC_EXPERT_IO_MMAP : FC_EXPERT_IO_PREAD;
    if (fc_engine_init(&g, &opt, &err) != FC_STATUS_OK) {
        fprintf(stderr, "test-metal: %s\n", err.message);
        fc_engine_free(&e);
        return 2;
    }
    if (slots > 0 && 2 * slots < g.n_expert_bufs) g.n_expert_bufs = 2 * slots; /* smaller waves over the same arena */
    const int32_t V = e.model.cfg.vocab_size;
    float * ref = malloc((size_t)chunk * V * 4), * got = malloc((size_t)chunk * V * 4);
    double worst = 0.0;
    int mismatches = 0, rc = 0;
    FILE * out = dump ? fopen(dump, "wb") : NULL;
    if (dump && !out) {
        fprintf(stderr, "test-metal: cannot write %s\n", dump);
        return 2;
    }
    int32_t tok = 0;
    char generated[1024] = "";
    for (int32_t done = 0; done < n_prompt + n_gen;) {
        const int32_t n = done < n_prompt ? (n_prompt - done < chunk ? n_prompt - done : chunk) : 1;
        const int32_t * toks = done < n_prompt ? prompt + done : &tok;
        if (fc_engine_eval(&e, toks, n, ref, NULL, &err) != FC_STATUS_OK || fc_engine_eval(&g, toks, n, got, NULL, &err) != FC_STATUS_OK) {
            fprintf(stderr, "test-metal: %s\n", err.message);
            return 2;
        }
        int32_t am = 0;
        for (int32_t r = 0; r < n; r++) {
            const float * rr = ref + (size_t)r * V, * gr = got + (size_t)r * V;
            int32_t best = 0, gbest = 0;
            double d = 0.0;
            for (int32_t v = 0; v < V; v++) {
                if (rr[v] > rr[best]) best = v;
                if (gr[v] > gr[gbest]) gbest = v;
                double x = fabs((double)gr[v] - rr[v]);
                if (x > d || isnan(gr[v])) d = isnan(gr[v]) ? INFINITY : x;
            }
            if (d > worst) worst = d;
            if (gbest != best) {
                mismatches++;
                printf("FAIL forward position %d: device argmax %d, CPU %d\n", done + r, gbest, best);
            }
            am = gbest;
        }
        if (out && fwrite(got, 4, (size_t)n * V, out) != (size_t)n * V) rc = 2;
        done += n;
        if (done >= n_prompt) {
            tok = am; /* greedy continuation: the device's own choice */
            snprintf(generated + strlen(generated), sizeof generated - strlen(generated), " %d", am);
        }
    }
    if (out && fclose(out) != 0) rc = 2;
    if (rc) fprintf(stderr, "test-metal: cannot write %s\n", dump);
    printf("generated:%s\n", generated);
    printf("forward %s kv %s experts %s: %d positions (prompt in chunks of %d), max |logit diff| vs the CPU engine %.3g, %d argmax mismatches, "
           "%llu command buffers\n",
           gpu->ops->name, kv_f16 ? "f16" : "f32", io, n_prompt + n_gen, chunk, worst, mismatches,
           (unsigned long long)fc_metal_layers_commits(&g.lb));
    const int ok = mismatches == 0 && worst < (kv_f16 ? 5e-3 : 1e-3);
    printf("forward: %s\n", ok ? "ok" : "FAIL");
    free(ref), free(got);
    fc_engine_free(&g);
    fc_engine_free(&e);
    return rc ? rc : ok ? 0 : 1;
}

/* ===== emulator speed ===== */

static void bench(void) {
    /* one 4-bit decode matvec of the 397B's shape class (4096 x 4096) and one RMSNorm of 4096 */
    const int32_t rows = 4096, cols = 4096;
    const size_t row_bytes = (size_t)cols / 2, ng = (size_t)cols / 64;
    struct fc_gpu_buffer * bw = buf_from(NULL, (size_t)rows * row_bytes), * bs = buf_from(NULL, rows * ng * 2);
    struct fc_gpu_buffer * bb = buf_from(NULL, rows * ng * 2), * bx = buf_from(NULL, (size_t)64 * cols * 4), * bo = buf_from(NULL, (size_t)rows * 4);
    struct fc_matmul_args a = { rows, cols, 1, (int32_t)row_bytes, cols, rows };
    struct launch l = { "fc_matvec_q4", &a, sizeof a, { bw, bs, bb, bx, bo }, 5,
                        fc_gpu_size2(ceil_div(rows, FC_MM_ROWS * FC_MM_SIMDGROUPS), 1), fc_gpu_size1(64) };
    run(&l);
    const int iters = 5;
    double t0 = fc_time_ms();
    for (int i = 0; i < iters; i++) run(&l);
    double ms = (fc_time_ms() - t0) / iters;
    const double threads = (double)ceil_div(rows, 8) * 64;
    printf("bench matvec_q4 %dx%d: %.2f ms per dispatch, %.2f GB/s of weights, %.1f M threads/s\n", rows, cols, ms,
           (double)rows * row_bytes / (ms * 1e6), threads / (ms * 1e3));
    float * w = malloc((size_t)cols * 4);
    for (int i = 0; i < cols; i++) w[i] = 1.0f;
    struct fc_gpu_buffer * bn = buf_from(w, (size_t)cols * 4);
    struct fc_rms_norm_args na = { cols, cols, cols, 1e-6f };
    struct launch ln = { "fc_rms_norm", &na, sizeof na, { bx, bn, bx }, 3, fc_gpu_size1(64), fc_gpu_size1(1024) };
    t0 = fc_time_ms();
    for (int i = 0; i < iters; i++) run(&ln);
    ms = (fc_time_ms() - t0) / iters;
    /* each thread passes 2 simd_sums' exchanges and 2 barriers per fc_tg_sum */
    printf("bench rms_norm 64 rows x 4096 (1024 threads each): %.2f ms per dispatch, %.2f M thread-barriers/s\n", ms,
           64.0 * 1024 * 3 / (ms * 1e3));
    struct fc_gpu_buffer * bufs[] = { bw, bs, bb, bx, bo, bn };
    for (int i = 0; i < 6; i++) gpu->ops->buffer_free(bufs[i]);
    free(w);
}

int main(int argc, char ** argv) {
#ifdef FC_HAVE_METAL_EMU
    const char * device = "metal-emu";
#else
    const char * device = "metal";
#endif
    int workers = 1, do_bench = 0, kv_f16 = 0, chunk = 13, slots = 0;
    const char * model = NULL, * dump = NULL, * experts = NULL, * io = "pread";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0) all_sizes = 1;
        else if (strcmp(argv[i], "--bench") == 0) do_bench = 1;
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--kv-f16") == 0) kv_f16 = 1;
        else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) chunk = atoi(argv[++i]);
        else if (strcmp(argv[i], "--slots") == 0 && i + 1 < argc) slots = atoi(argv[++i]);
        else if (strcmp(argv[i], "--experts") == 0 && i + 1 < argc) experts = argv[++i];
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump = argv[++i];
        else if (strcmp(argv[i], "--expert-io") == 0 && i + 1 < argc) io = argv[++i];
        else {
            fprintf(stderr, "usage: test-metal [--device metal-emu|metal] [--all] [--workers N] [--bench] [--model ARTIFACTS [--experts DIR] [--kv-f16] [--chunk N] [--slots N] [--expert-io pread|mmap] [--dump FILE]]\n");
            return 2;
        }
    }
    struct fc_error err = { 0 };
    if (strcmp(device, "metal-emu") == 0) {
#ifdef FC_HAVE_METAL_EMU
        gpu = fc_gpu_emu_create(fc_metal_source, workers, &err);
#else
        (void)workers;
        fc_error_set(&err, FC_STATUS_BAD_REQUEST, "this build has no Metal emulator");
#endif
    } else if (strcmp(device, "metal") == 0) {
#ifdef FC_HAVE_METAL
        gpu = fc_gpu_metal_create(fc_metal_source, &err);
#else
        fc_error_set(&err, FC_STATUS_BAD_REQUEST, "this build has no Metal (macOS builds only)");
#endif
    } else {
        fc_error_set(&err, FC_STATUS_BAD_REQUEST, "unknown device '%s' (expected metal-emu or metal)", device);
    }
    if (!gpu) {
        fprintf(stderr, "test-metal: %s\n", err.message);
        return 2;
    }
    printf("device %s, %s sizes\n", gpu->ops->name, all_sizes ? "all" : "focused");
    if (model) {
        /* the fixture's prompt (test/fixtures/tiny-qwen35-moe/expected/prompt.json), then greedy tokens */
        static const int32_t prompt[] = { 67, 19, 464, 319, 217, 116, 207, 165, 19, 49, 390, 352, 375, 291, 222, 21,
                                          274, 369, 392, 30, 324, 447, 377, 487, 82, 439, 333, 343, 345, 362, 336, 211 };
        int rc = check_model(model, experts, kv_f16, prompt, 32, all_sizes ? 32 : 8, chunk > 0 ? chunk : 1, slots, io, dump);
        gpu->ops->destroy(gpu);
        return rc;
    }
    if (do_bench) {
        bench();
    } else {
        test_matmul();
        test_norms();
        test_rope();
        test_attention();
        test_conv();
        test_delta();
        test_moe();
        test_embed_copy();
        int checks = op_matvec.cases + op_matmul.cases + op_rms.cases + op_l2.cases + op_rope.cases + op_kv.cases + op_attn.cases +
                     op_conv.cases + op_delta.cases + op_router.cases + op_swiglu.cases + op_combine.cases + op_add.cases +
                     op_argmax.cases + op_embed.cases + op_copy.cases;
        printf("%d checks, %d failures\n", checks, total_failures);
    }
    gpu->ops->destroy(gpu);
    return total_failures ? 1 : 0;
}
