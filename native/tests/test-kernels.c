/*
 * Every CPU kernel level against the scalar reference on random matrices: all bit widths, odd row
 * counts, several column counts, one and several tokens, plus float matrices. The integer path (int8
 * activations, kernels.h) of every level that has one must equal the portable one bit for bit, and the
 * backend's results for several tokens (which take it) stay within the int8 tolerance of the float
 * reference. Exit 0 when all pass.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/kernels.h"
#include "model.h"
#include "threads.h"

static uint64_t state = 88172645463325252ull;

static uint32_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)state;
}

static float rndf(void) {
    return (float)(rnd() >> 8) / 8388608.0f - 1.0f;
}

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static int failures = 0, checks = 0;
static double worst_err = 0.0, worst_tol = 0.0; /* largest error seen at the level being checked, its tolerance */
static double worst_int8 = 0.0; /* int8 error / rounding bound */

/* The kernel level a "cpu:N" backend runs (its describe() names it). */
static int be_has_int8(struct fc_backend * be) {
    const char * name = be->ops->describe(be);
    for (int level = 0; level <= FC_CPU_MAX_LEVEL; level++) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (k && strcmp(k->name, name) == 0) return k->gemm_q != NULL;
    }
    return 0;
}

/* Element (r, i) of a quantized test matrix. */
static double wval(const struct fc_matrix * m, int32_t r, int32_t i) {
    const int bits = fc_dtype_bits(m->type);
    const size_t bit = (size_t)i * bits;
    const uint8_t * row = m->data + (size_t)r * m->row_bytes;
    const size_t g = (size_t)r * (m->cols / 64) + (size_t)i / 64;
    return (double)((row[bit / 8] >> (bit % 8)) & ((1u << bits) - 1u)) * fc_bf16_to_f32(m->scales[g]) + fc_bf16_to_f32(m->biases[g]);
}

/*
 * Where int8 activations are used the result is the exact dot with x quantized in two levels: x, then its
 * residual r (|r| <= d/2), each rounded per group to a step of amax / 127, so |got - ref| <= sum_i |w_i| *
 * amax_r(g) / 254 (the rounding bound of the residual), plus float slack. Returns the worst ratio of the
 * error to that bound (<= 1 passes).
 */
static double int8_error_ratio(const struct fc_matrix * m, const float * x, const float * ref, const float * got, int32_t n_tokens) {
    double worst = 0.0;
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int32_t r = 0; r < m->rows; r++) {
            double bound = 0.0, mag = 0.0;
            for (int32_t g = 0; g < m->cols / 64; g++) {
                int8_t q[64];
                float sm;
                const float * xg = x + (size_t)t * m->cols + g * 64;
                const float d = fc_cpu_quantize_group(xg, q, &sm);
                double amax = 0.0;
                /* a plain compare, not fmax: aarch64 gcc 12's vectorizer crashes on that reduction here */
                for (int32_t i = 0; i < 64; i++) {
                    const double v = fabs((double)(xg[i] - (float)q[i] * d));
                    if (v > amax) amax = v;
                }
                for (int32_t i = 0; i < 64; i++) {
                    const double wv = wval(m, r, g * 64 + i);
                    bound += fabs(wv) * amax / 254.0;
                    mag += fabs(wv * x[(size_t)t * m->cols + g * 64 + i]);
                }
            }
            const double err = fabs((double)got[(size_t)t * m->rows + r] - ref[(size_t)t * m->rows + r]);
            const double ratio = err / (bound + 1e-5 * mag + 1e-30);
            worst = isnan(got[(size_t)t * m->rows + r]) ? INFINITY : fmax(worst, ratio);
        }
    }
    return worst;
}

/* Compare a backend against the reference; scales may be negative, as in MLX files. */
static void check(struct fc_backend * be, const char * label, const struct fc_matrix * m, int32_t n_tokens) {
    const struct fc_cpu_kernels * k = fc_cpu_kernels_by_name(be->ops->describe(be));
    float * x = malloc((size_t)n_tokens * m->cols * sizeof(float));
    float * ref = malloc((size_t)n_tokens * m->rows * sizeof(float));
    float * got = malloc((size_t)n_tokens * m->rows * sizeof(float));
    for (size_t i = 0; i < (size_t)n_tokens * m->cols; i++) x[i] = rndf();
    fc_matmul_reference(m, x, ref, n_tokens);
    be->ops->matmul(be, m, x, got, n_tokens);
    checks++;
    /* gemm_q (several 2/4-bit tokens): within the rounding bound of its two-level quantized x; else float
       kernels max |err| / max |ref|, matmul_qx |err| / (|w_row| |x_token|) (kernels.h) */
    /* and dot_xv (one token on int8 x) the same bound */
    const int one_int8 = n_tokens == 1 && k && fc_dtype_is_quantized(m->type) && k->dot_xv[fc_bits_index(fc_dtype_bits(m->type))];
    const int int8 = (fc_dtype_is_quantized(m->type) && n_tokens >= 2 && be_has_int8(be)) || one_int8;
    const double err = int8 ? int8_error_ratio(m, x, ref, got, n_tokens) : fc_cpu_product_error(k, m, x, got, ref, n_tokens);
    const double tol = int8 ? 1.0 : fc_cpu_product_tolerance(k, m);
    if (int8 && err > worst_int8) worst_int8 = err;
    if (!int8 && err > worst_err) worst_err = err;
    if (!int8 && tol > worst_tol) worst_tol = tol;
    if (!(err < tol)) {
        failures++;
        printf("FAIL %s: type %d [%d x %d] tokens=%d: %s %.3g (tolerance %.0e)\n", label, m->type, m->rows, m->cols, n_tokens,
               int8 ? "int8 error / rounding bound" : "error", err, tol);
    }
    free(x);
    free(ref);
    free(got);
}

/*
 * An int8 level's matmul_qx against the plain-C one on the same int8 x: the integer sums are exact, so
 * only float rounding of the per-group scaling differs. Odd rows and tokens reach every tile tail.
 */
static void check_qx(const struct fc_cpu_kernels * k, int level) {
    const int32_t rows_list[] = { 1, 2, 3, 5, 17 }, tokens_list[] = { 1, 2, 3, 4, 5, 7 }, cols_list[] = { 64, 320 };
    for (int bits = 2; bits <= 8; bits *= 2) {
        for (size_t ri = 0; ri < 5; ri++) {
            for (size_t ci = 0; ci < 2; ci++) {
                for (size_t ti = 0; ti < 6; ti++) {
                    const int32_t rows = rows_list[ri], cols = cols_list[ci], nt = tokens_list[ti], ng = cols / 64;
                    const size_t row_bytes = (size_t)cols * bits / 8;
                    uint8_t * codes = malloc(rows * row_bytes);
                    uint16_t * sc = malloc((size_t)rows * ng * 2), * bi = malloc((size_t)rows * ng * 2);
                    float * x = malloc((size_t)nt * cols * 4);
                    int8_t * xq = malloc((size_t)nt * ng * FC_QX_BYTES);
                    float * xd = malloc((size_t)nt * ng * 4), * xs = malloc((size_t)nt * ng * 4), * xqs = malloc((size_t)nt * ng * 4);
                    float * want = malloc((size_t)nt * rows * 4), * got = malloc((size_t)nt * rows * 4);
                    for (size_t i = 0; i < rows * row_bytes; i++) codes[i] = (uint8_t)rnd();
                    for (size_t i = 0; i < (size_t)rows * ng; i++) {
                        sc[i] = to_bf16(rndf() * 0.1f);
                        bi[i] = to_bf16(rndf());
                    }
                    for (size_t i = 0; i < (size_t)nt * cols; i++) x[i] = rndf();
                    for (int32_t t = 0; t < nt; t++) {
                        fc_cpu_prepare_xq(bits, x + (size_t)t * cols, cols, xq + (size_t)t * ng * FC_QX_BYTES, xd + t * ng, xs + t * ng, xqs + t * ng);
                    }
                    fc_cpu_matmul_qx_generic(bits, codes, row_bytes, sc, bi, rows, ng, xq, xd, xs, xqs, nt, want, (size_t)rows);
                    k->matmul_qx[fc_bits_index(bits)](codes, row_bytes, sc, bi, rows, ng, xq, xd, xs, xqs, nt, got, (size_t)rows);
                    double max_ref = 1e-6, max_diff = 0.0;
                    for (size_t i = 0; i < (size_t)nt * rows; i++) {
                        double d = fabs((double)got[i] - want[i]);
                        if (d > max_diff || isnan(got[i])) max_diff = isnan(got[i]) ? INFINITY : d;
                        if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
                    }
                    checks++;
                    if (!(max_diff / max_ref < 1e-5)) {
                        failures++;
                        printf("FAIL level %d matmul_qx vs plain C: %d-bit [%d x %d] tokens=%d: max rel err %.3g\n", level, bits, rows, cols,
                               nt, max_diff / max_ref);
                    }
                    free(codes); free(sc); free(bi); free(x); free(xq); free(xd); free(xs); free(xqs); free(want); free(got);
                }
            }
        }
    }
}

/* A random quantized matrix (codes, scales incl. negative ones, biases); free m->data, scales, biases. */
static struct fc_matrix random_q(int bits, int32_t rows, int32_t cols) {
    const int32_t ng = cols / 64;
    size_t code_bytes = (size_t)rows * cols * bits / 8;
    uint8_t * codes = malloc(code_bytes);
    uint16_t * sc = malloc((size_t)rows * ng * 2), * bi = malloc((size_t)rows * ng * 2);
    for (size_t i = 0; i < code_bytes; i++) codes[i] = (uint8_t)rnd();
    for (size_t i = 0; i < (size_t)rows * ng; i++) {
        sc[i] = to_bf16(rndf() * 0.1f);
        bi[i] = to_bf16(rndf());
    }
    struct fc_matrix m;
    enum fc_dtype t = bits == 2 ? FC_DTYPE_Q2 : bits == 4 ? FC_DTYPE_Q4 : FC_DTYPE_Q8;
    fc_matrix_init(&m, "test", t, rows, cols, 64, codes, (uint8_t *)sc, (uint8_t *)bi, NULL);
    return m;
}

/*
 * A level's integer path against the portable one: same q/d/s and the same float steps, so equal bit
 * for bit. Quantized in token ranges of the level's block (as threads split it) and as one range;
 * some rows of x all zero (amax 0) and some inputs large.
 */
static void check_int8_level(const struct fc_cpu_kernels * k) { /* k NULL: the portable path against the float reference only */
    const int32_t rows_list[] = { 1, 5, 17, 130, 301 }; /* 301: more than one row block (256) */
    const int32_t cols_list[] = { 64, 192, 1024 };
    const int32_t tokens_list[] = { 2, 8, 9, 17, 25, 40 }; /* 8 or fewer in a block: both levels share it */
    for (int bits = 2; bits <= 8; bits *= 2) {
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++) {
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                for (size_t ti = 0; ti < sizeof tokens_list / sizeof tokens_list[0]; ti++) {
                    const int32_t rows = rows_list[ri], cols = cols_list[ci], n = tokens_list[ti];
                    if (rows > 256 && cols > 192) continue; /* the row-block boundary needs no wide rows (keeps qemu runs short) */
                    struct fc_matrix m = random_q(bits, rows, cols);
                    float * x = malloc((size_t)n * cols * sizeof(float));
                    for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = rndf() * (i % 97 == 0 ? 30.0f : 1.0f);
                    memset(x + (size_t)(n / 2) * cols, 0, (size_t)64 * sizeof(float)); /* one all-zero group */
                    void * xq_ref = malloc(fc_cpu_xq_bytes_generic(n, cols));
                    void * xq = malloc(k ? k->xq_bytes(n, cols) : 1);
                    float * ref = malloc((size_t)n * rows * sizeof(float)), * got = malloc((size_t)n * rows * sizeof(float));
                    float * res_ref = malloc((size_t)n * cols * sizeof(float)), * res = malloc((size_t)n * cols * sizeof(float));
                    fc_cpu_quantize_x_generic(bits, x, n, cols, 0, n, 0, cols / FC_QK, xq_ref, res_ref);
                    fc_cpu_gemm_q_generic(&m, 0, rows, xq_ref, n, ref, (size_t)rows, 0);
                    fc_cpu_quantize_x_generic(bits, res_ref, n, cols, 0, n, 0, cols / FC_QK, xq_ref, NULL);
                    fc_cpu_gemm_q_generic(&m, 0, rows, xq_ref, n, ref, (size_t)rows, 1); /* the second level adds */
                    {
                        float * fref = malloc((size_t)n * rows * sizeof(float));
                        fc_matmul_reference(&m, x, fref, n);
                        const double ratio = int8_error_ratio(&m, x, fref, ref, n);
                        checks++;
                        if (!(ratio <= 1.0)) {
                            failures++;
                            printf("FAIL portable int8 path vs float reference: %d-bit [%d x %d] tokens=%d: %.3g of the bound\n", bits, rows, cols, n, ratio);
                        }
                        if (ratio > worst_int8) worst_int8 = ratio;
                        free(fref);
                    }
                    for (int split = 0; k && split < 2; split++) {
                        memset(res, 0xff, (size_t)n * cols * sizeof(float));
                        if (split) {
                            /* token blocks apart, and each block's groups in two ranges (the first an odd count) */
                            const int32_t ng = cols / FC_QK, gm = (ng / 2 | 1) < ng ? (ng / 2 | 1) : ng;
                            for (int32_t t0 = 0; t0 < n; t0 += k->xq_tokens) {
                                const int32_t t1 = t0 + k->xq_tokens < n ? t0 + k->xq_tokens : n;
                                k->quantize_x(bits, x, n, cols, t0, t1, 0, gm, xq, res);
                                k->quantize_x(bits, x, n, cols, t0, t1, gm, ng, xq, res);
                            }
                        } else {
                            k->quantize_x(bits, x, n, cols, 0, n, 0, cols / FC_QK, xq, res);
                        }
                        memset(got, 0xff, (size_t)n * rows * sizeof(float));
                        /* rows in two ranges, the first not a multiple of 4 */
                        int32_t mid = rows / 3;
                        k->gemm_q(&m, 0, mid, xq, n, got, (size_t)rows, 0);
                        k->gemm_q(&m, mid, rows, xq, n, got, (size_t)rows, 0);
                        checks++;
                        if (memcmp(res, res_ref, (size_t)n * cols * sizeof(float)) != 0) {
                            failures++;
                            printf("FAIL int8 %s residual differs from generic: %d-bit [%d x %d] tokens=%d\n", k->name, bits, rows, cols, n);
                        }
                        if (k->gemm2_q[fc_bits_index(bits)]) {
                            /* both levels in one pass: the same numbers as the two gemm_q calls, bit for bit */
                            void * yq = malloc(k->xq_bytes(n, cols));
                            k->quantize_x(bits, res, n, cols, 0, n, 0, cols / FC_QK, yq, NULL);
                            float * got2 = malloc((size_t)n * rows * sizeof(float));
                            memset(got2, 0xff, (size_t)n * rows * sizeof(float));
                            k->gemm2_q[fc_bits_index(bits)](&m, 0, mid, xq, yq, n, got2, (size_t)rows);
                            k->gemm2_q[fc_bits_index(bits)](&m, mid, rows, xq, yq, n, got2, (size_t)rows);
                            checks++;
                            if (memcmp(ref, got2, (size_t)n * rows * sizeof(float)) != 0) {
                                failures++;
                                size_t bad = 0;
                                while (bad < (size_t)n * rows && memcmp(&ref[bad], &got2[bad], sizeof(float)) == 0) bad++;
                                printf("FAIL int8 %s two levels at once vs generic: %d-bit [%d x %d] tokens=%d: out[%zu] %.9g != %.9g\n",
                                       k->name, bits, rows, cols, n, bad, got2[bad], ref[bad]);
                            }
                            free(yq);
                            free(got2);
                        }
                        k->quantize_x(bits, res, n, cols, 0, n, 0, cols / FC_QK, xq, NULL);
                        k->gemm_q(&m, 0, rows, xq, n, got, (size_t)rows, 1);
                        if (memcmp(ref, got, (size_t)n * rows * sizeof(float)) != 0) {
                            failures++;
                            size_t bad = 0;
                            while (bad < (size_t)n * rows && memcmp(&ref[bad], &got[bad], sizeof(float)) == 0) bad++;
                            printf("FAIL int8 %s vs generic: %d-bit [%d x %d] tokens=%d split=%d: out[%zu] %.9g != %.9g\n", k->name, bits,
                                   rows, cols, n, split, bad, got[bad], ref[bad]);
                        }
                    }
                    free(x); free(xq_ref); free(xq); free(ref); free(got); free(res); free(res_ref);
                    free((void *)m.data); free((void *)m.scales); free((void *)m.biases);
                }
            }
        }
    }
}

/*
 * The gated delta rule of kernel set k against the plain two-pass loop (kv = S^T k, then the update and
 * o = S^T q over S again, in double), on odd shapes (a block tail, dk not a multiple of 4) and strides with
 * padding; state and outputs to 1e-5 of their largest magnitude.
 */
static void check_delta(const struct fc_cpu_kernels * k) {
    const int32_t shapes[][3] = { { 128, 128, 37 }, { 24, 48, 5 }, { 7, 40, 3 }, { 64, 16, 1 }, { 13, 19, 9 } }; /* dk, dv, n */
    double worst = 0.0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int32_t dk = shapes[si][0], dv = shapes[si][1], n = shapes[si][2];
        const size_t qks = (size_t)2 * dk + 3, vs = (size_t)dv + 5, os = (size_t)dv + 2;
        float * S = malloc((size_t)dk * dv * sizeof(float)), * q = malloc((size_t)n * qks * sizeof(float));
        float * kk = malloc((size_t)n * qks * sizeof(float)), * v = malloc((size_t)n * vs * sizeof(float));
        float * o = calloc((size_t)n * os, sizeof(float)), beta[64], decay[64];
        double * R = malloc((size_t)dk * dv * sizeof(double)), * ro = malloc((size_t)n * dv * sizeof(double));
        for (size_t i = 0; i < (size_t)dk * dv; i++) R[i] = S[i] = rndf() * 0.5f;
        for (size_t i = 0; i < (size_t)n * qks; i++) { q[i] = rndf() * 0.3f; kk[i] = rndf() * 0.3f; }
        for (size_t i = 0; i < (size_t)n * vs; i++) v[i] = rndf();
        for (int32_t t = 0; t < n; t++) { beta[t] = 0.5f + 0.5f * rndf(); decay[t] = 0.9f + 0.09f * rndf(); }
        for (int32_t t = 0; t < n; t++) {
            const float * qt = q + (size_t)t * qks, * kt = kk + (size_t)t * qks, * vt = v + (size_t)t * vs;
            for (int32_t j = 0; j < dv; j++) {
                double kv = 0.0, oj = 0.0;
                for (int32_t i = 0; i < dk; i++) kv += R[(size_t)i * dv + j] * kt[i];
                const double delta = beta[t] * (vt[j] - decay[t] * kv);
                for (int32_t i = 0; i < dk; i++) {
                    R[(size_t)i * dv + j] = decay[t] * R[(size_t)i * dv + j] + kt[i] * delta;
                    oj += R[(size_t)i * dv + j] * qt[i];
                }
                ro[(size_t)t * dv + j] = oj;
            }
        }
        fc_cpu_delta_rule(k, S, dk, dv, n, q, kk, qks, v, vs, beta, decay, o, os);
        double ms = 0.0, mo = 0.0, es = 0.0, eo = 0.0;
        for (size_t i = 0; i < (size_t)dk * dv; i++) { ms = fmax(ms, fabs(R[i])); es = fmax(es, fabs(R[i] - S[i])); }
        for (int32_t t = 0; t < n; t++) {
            for (int32_t j = 0; j < dv; j++) {
                const double r = ro[(size_t)t * dv + j];
                mo = fmax(mo, fabs(r));
                eo = fmax(eo, fabs(r - o[(size_t)t * os + j]));
            }
            if (o[(size_t)t * os + dv] != 0.0f || o[(size_t)t * os + dv + 1] != 0.0f) eo = INFINITY; /* wrote past dv */
        }
        const double e = fmax(es / ms, eo / mo);
        worst = fmax(worst, e);
        checks++;
        if (!(e < 1e-5)) {
            failures++;
            printf("FAIL delta rule %s dk %d dv %d n %d: relative error %.3g (state %.3g, outputs %.3g)\n", k->name, dk, dv, n, e,
                   es / ms, eo / mo);
        }
        free(S); free(q); free(kk); free(v); free(o); free(R); free(ro);
    }
    printf("delta rule %s: largest relative error %.3g (held to 1e-5)\n", k->name, worst);
}

/*
 * dot_xv_rows (several rows of one prepared x at a time) against dot_xv row by row: bit for bit, over ranges
 * that start and end on odd rows and group counts that end on an odd group, within one block of 16 and past it.
 */
static void check_xv_rows(const struct fc_cpu_kernels * k) {
    const int32_t rows = 37, cols_list[] = { 64, 192, 1024, 1088, 2112 };
    const int32_t ranges[][2] = { { 0, 37 }, { 1, 36 }, { 3, 4 }, { 5, 5 }, { 0, 1 }, { 7, 22 } };
    for (int bits = 2; bits <= 8; bits *= 2) {
        const int bi_ = fc_bits_index(bits);
        if (!k->dot_xv_rows[bi_] || !k->dot_xv[bi_]) continue;
        for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
            const int32_t cols = cols_list[ci], ng = cols / 64;
            const size_t row_bytes = (size_t)cols * bits / 8;
            uint8_t * codes = malloc(rows * row_bytes + 64);
            uint16_t * sc = malloc((size_t)rows * ng * 2), * bi = malloc((size_t)rows * ng * 2);
            float * x = malloc((size_t)cols * 4), * xs = malloc((size_t)ng * 4 + 4);
            void * xv = fc_alloc_aligned(k->xv_bytes(cols) + 64);
            float * want = malloc((size_t)rows * 4), * got = malloc((size_t)rows * 4);
            for (size_t i = 0; i < rows * row_bytes; i++) codes[i] = (uint8_t)rnd();
            for (size_t i = 0; i < (size_t)rows * ng; i++) {
                sc[i] = to_bf16(rndf() * 0.1f);
                bi[i] = to_bf16(rndf());
            }
            for (int32_t i = 0; i < cols; i++) x[i] = rndf();
            struct fc_matrix m;
            fc_matrix_init(&m, "xv-rows", bits == 2 ? FC_DTYPE_Q2 : bits == 4 ? FC_DTYPE_Q4 : FC_DTYPE_Q8, rows, cols, 64, codes,
                           (uint8_t *)sc, (uint8_t *)bi, NULL);
            k->prepare_xv(x, cols, xv, xs);
            for (int32_t r = 0; r < rows; r++) want[r] = k->dot_xv[bi_](codes + (size_t)r * row_bytes, sc + (size_t)r * ng, bi + (size_t)r * ng, xv, xs, ng);
            for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                const int32_t r0 = ranges[ri][0], r1 = ranges[ri][1];
                for (int32_t r = 0; r < rows; r++) got[r] = -12345.0f;
                k->dot_xv_rows[bi_](&m, r0, r1, xv, xs, got);
                checks++;
                int bad = -1;
                for (int32_t r = 0; r < rows && bad < 0; r++) {
                    const int inside = r >= r0 && r < r1;
                    if (inside ? memcmp(&got[r], &want[r], sizeof got[r]) != 0 : got[r] != -12345.0f) bad = r;
                }
                if (bad >= 0) {
                    failures++;
                    printf("FAIL %s dot_xv_rows %d-bit [%d x %d] rows %d..%d: row %d gives %.9g, dot_xv %.9g\n", k->name, bits, rows, cols, r0,
                           r1, bad, got[bad], want[bad]);
                }
            }
            free(codes); free(sc); free(bi); free(x); free(xs); free(xv); free(want); free(got);
        }
    }
}

int main(void) {
    const int32_t rows_list[] = { 1, 3, 17, 64, 129 };
    const int32_t cols_list[] = { 64, 192, 320, 1024 };
    const int32_t tokens_list[] = { 1, 2, 7, 19 };
    const int n_threads_list[] = { 1, 2, 3 };
    check_int8_level(NULL); /* the portable integer path, on every machine */
    /* every numbered level, then the portable int8 set (level FC_CPU_MAX_LEVEL + 1 here) */
    for (int level = 0; level <= FC_CPU_MAX_LEVEL + 1; level++) {
        const struct fc_cpu_kernels * k = level <= FC_CPU_MAX_LEVEL ? fc_cpu_kernels_get(level) : &fc_cpu_kernels_generic_int8;
        if (k && k->gemm_q) check_int8_level(k);
        if (!k) {
            printf("kernel level %d: not supported on this CPU, skipped\n", level);
            continue;
        }
        worst_err = worst_tol = 0.0;
        check_delta(k);
        if (k->matmul_qx[0]) check_qx(k, level);
        if (k->prepare_xv) check_xv_rows(k);
        for (size_t ti = 0; ti < sizeof n_threads_list / sizeof n_threads_list[0]; ti++) {
            struct fc_pool * pool = fc_pool_init(n_threads_list[ti]);
            struct fc_backend be;
            char name[40];
            snprintf(name, sizeof name, "cpu:%s", k->name);
            if (fc_backend_init(&be, name, pool, NULL) != FC_STATUS_OK) return 2;
            for (int bits = 2; bits <= 8; bits *= 2) {
                for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++) {
                    for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                        const int32_t rows = rows_list[ri], cols = cols_list[ci], ng = cols / 64;
                        size_t code_bytes = (size_t)rows * cols * bits / 8;
                        uint8_t * codes = malloc(code_bytes);
                        uint16_t * sc = malloc((size_t)rows * ng * 2), * bi = malloc((size_t)rows * ng * 2);
                        for (size_t i = 0; i < code_bytes; i++) codes[i] = (uint8_t)rnd();
                        for (size_t i = 0; i < (size_t)rows * ng; i++) {
                            sc[i] = to_bf16(rndf() * 0.1f); /* negative scales included */
                            bi[i] = to_bf16(rndf());
                        }
                        struct fc_matrix m;
                        enum fc_dtype t = bits == 2 ? FC_DTYPE_Q2 : bits == 4 ? FC_DTYPE_Q4 : FC_DTYPE_Q8;
                        fc_matrix_init(&m, "test", t, rows, cols, 64, codes, (uint8_t *)sc, (uint8_t *)bi, NULL);
                        for (size_t tk = 0; tk < sizeof tokens_list / sizeof tokens_list[0]; tk++) {
                            char label[64];
                            snprintf(label, sizeof label, "level %d threads %d", level, n_threads_list[ti]);
                            check(&be, label, &m, tokens_list[tk]);
                        }
                        free(codes);
                        free(sc);
                        free(bi);
                    }
                }
            }
            /* float matrices (bf16 / f16 / f32), odd column counts take the reference path */
            const int32_t fcols[] = { 48, 64, 100 };
            for (int dt = 0; dt < 3; dt++) {
                for (size_t ci = 0; ci < 3; ci++) {
                    const int32_t rows = 19, cols = fcols[ci];
                    size_t esz = dt == 0 ? 4 : 2;
                    uint8_t * data = malloc((size_t)rows * cols * esz);
                    for (size_t i = 0; i < (size_t)rows * cols; i++) {
                        float f = rndf();
                        if (dt == 0) memcpy(data + i * 4, &f, 4);
                        else {
                            uint16_t h = dt == 1 ? to_bf16(f) : (uint16_t)(0x3000 | (rnd() & 0x8fff)); /* f16: small normals */
                            memcpy(data + i * 2, &h, 2);
                        }
                    }
                    struct fc_matrix m;
                    enum fc_dtype t = dt == 0 ? FC_DTYPE_F32 : dt == 1 ? FC_DTYPE_BF16 : FC_DTYPE_F16;
                    fc_matrix_init(&m, "test", t, rows, cols, 0, data, NULL, NULL, NULL);
                    check(&be, "float", &m, 1);
                    check(&be, "float", &m, 3);
                    free(data);
                }
            }
            fc_backend_free(&be);
            fc_pool_free(pool);
        }
        printf("kernels %s: largest error %.3g against the reference (held to %.0e)\n", k->name, worst_err, worst_tol);
    }
    printf("int8 path: worst error against the float reference %.3g of the rounding bound\n", worst_int8);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
