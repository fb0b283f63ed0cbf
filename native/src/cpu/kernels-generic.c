/* Portable C kernels for the prepared-x layout, the error measures against the reference, and kernel selection. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../platform.h"
#include "../util.h"

void fc_cpu_prepare_x(int bits, const float * x, int32_t cols, float * xp, float * xsum) {
    const int per = 8 / bits;
    const int nbytes = 8 * bits;
    for (int32_t g = 0; g < cols / FC_QK; g++) {
        const float * xg = x + (size_t)g * FC_QK;
        float * pg = xp + (size_t)g * FC_QK;
        float s = 0.0f;
        for (int k = 0; k < nbytes; k++) {
            for (int j = 0; j < per; j++) pg[j * nbytes + k] = xg[k * per + j];
        }
        for (int i = 0; i < FC_QK; i++) s += xg[i];
        xsum[g] = s;
    }
}

static inline int32_t round_i32(float v) {
    return (int32_t)(v + (v >= 0.0f ? 0.5f : -0.5f));
}

void fc_cpu_prepare_xq(int bits, const float * x, int32_t cols, int8_t * xq, float * xd, float * xsum, float * xqs) {
    const int per = 8 / bits;
    const int nbytes = 8 * bits;
    for (int32_t g = 0; g < cols / FC_QK; g++) {
        const float * xg = x + (size_t)g * FC_QK;
        int8_t * q1 = xq + (size_t)g * FC_QX_BYTES, * q2 = q1 + FC_QK;
        float s = 0.0f, amax = 0.0f;
        for (int i = 0; i < FC_QK; i++) {
            s += xg[i];
            float a = xg[i] < 0 ? -xg[i] : xg[i];
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        int32_t s1 = 0, s2 = 0;
        for (int k = 0; k < nbytes; k++) {
            for (int j = 0; j < per; j++) {
                const float v = xg[k * per + j] * inv; /* in [-127, 127] */
                int32_t a = round_i32(v);
                a = a > 127 ? 127 : a < -127 ? -127 : a;
                int32_t b = round_i32((v - (float)a) * 254.0f); /* |v - a| <= 0.5 (+ rounding): |b| <= 127 */
                b = b > 127 ? 127 : b < -127 ? -127 : b;
                q1[j * nbytes + k] = (int8_t)a;
                q2[j * nbytes + k] = (int8_t)b;
                s1 += a;
                s2 += b;
            }
        }
        xd[g] = d;
        xsum[g] = s;
        xqs[g] = d * ((float)s1 + (float)s2 * (1.0f / 254.0f));
    }
}

void fc_cpu_matmul_qx_generic(int bits, const uint8_t * codes, size_t row_bytes, const uint16_t * scales, const uint16_t * biases,
                              int32_t n_rows, int32_t n_groups, const int8_t * xq, const float * xd, const float * xsum,
                              const float * xqs, int32_t n_tokens, float * out, size_t out_stride) {
    const int per = 8 / bits, nbytes = 8 * bits, mask = (1 << bits) - 1;
    (void)xqs; /* the codes are used as they are: no -128 offset to undo */
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int32_t r = 0; r < n_rows; r++) {
            const uint8_t * c = codes + (size_t)r * row_bytes;
            float total = 0.0f;
            for (int32_t g = 0; g < n_groups; g++) {
                const size_t tg = (size_t)t * n_groups + g;
                const int8_t * q1 = xq + tg * FC_QX_BYTES, * q2 = q1 + FC_QK;
                int32_t a1 = 0, a2 = 0;
                for (int j = 0; j < per; j++) {
                    for (int k = 0; k < nbytes; k++) {
                        const int32_t code = (c[g * nbytes + k] >> (j * bits)) & mask;
                        a1 += code * q1[j * nbytes + k];
                        a2 += code * q2[j * nbytes + k];
                    }
                }
                const size_t rg = (size_t)r * n_groups + g;
                const float isum = (float)a1 + (float)a2 * (1.0f / 254.0f);
                total += fc_bf16_to_f32(scales[rg]) * xd[tg] * isum + fc_bf16_to_f32(biases[rg]) * xsum[tg];
            }
            out[(size_t)t * out_stride + r] = total;
        }
    }
}

/*
 * Written so compilers vectorize them without -ffast-math: 16 independent partial sums (one per lane),
 * codes of one bit position at a time (contiguous floats of prepared x).
 */
#define DEF_GENERIC(BITS)                                                                                  \
    static float dot_q##BITS##_generic(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,    \
                                       const float * xp, const float * xsum, int32_t n_groups) {          \
        enum { PER = 8 / BITS, NBYTES = 8 * BITS, MASK = (1 << BITS) - 1 };                               \
        float total = 0.0f;                                                                               \
        for (int32_t g = 0; g < n_groups; g++) {                                                          \
            const uint8_t * c = codes + (size_t)g * NBYTES;                                               \
            const float * x = xp + (size_t)g * FC_QK;                                                     \
            float acc[16] = { 0 };                                                                        \
            for (int j = 0; j < PER; j++) {                                                               \
                for (int k = 0; k < NBYTES; k += 16) {                                                    \
                    for (int l = 0; l < 16; l++) {                                                        \
                        acc[l] += (float)((c[k + l] >> (j * BITS)) & MASK) * x[j * NBYTES + k + l];        \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            float a = 0.0f;                                                                               \
            for (int l = 0; l < 16; l++) a += acc[l];                                                     \
            total += fc_bf16_to_f32(sc[g]) * a + fc_bf16_to_f32(bi[g]) * xsum[g];                         \
        }                                                                                                 \
        return total;                                                                                     \
    }                                                                                                     \
    static void dequant_q##BITS##_generic(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, \
                                          int32_t n_groups, float * out) {                                \
        enum { PER = 8 / BITS, NBYTES = 8 * BITS, MASK = (1 << BITS) - 1 };                               \
        for (int32_t g = 0; g < n_groups; g++) {                                                          \
            const uint8_t * c = codes + (size_t)g * NBYTES;                                               \
            float * o = out + (size_t)g * FC_QK;                                                          \
            const float s = fc_bf16_to_f32(sc[g]), b = fc_bf16_to_f32(bi[g]);                             \
            for (int j = 0; j < PER; j++) {                                                               \
                for (int k = 0; k < NBYTES; k++) o[j * NBYTES + k] = (float)((c[k] >> (j * BITS)) & MASK) * s + b; \
            }                                                                                             \
        }                                                                                                 \
    }

DEF_GENERIC(2)
DEF_GENERIC(4)
DEF_GENERIC(8)

static void dot4_generic(const float * w, size_t w_stride, const float * x, int32_t n, float * out) {
    for (int r = 0; r < 4; r++) {
        const float * wr = w + (size_t)r * w_stride;
        float acc[16] = { 0 };
        for (int32_t i = 0; i < n; i += 16) {
            for (int l = 0; l < 16; l++) acc[l] += wr[i + l] * x[i + l];
        }
        float a = 0.0f;
        for (int l = 0; l < 16; l++) a += acc[l];
        out[r] = a;
    }
}

static void dot4x4_generic(const float * w, size_t w_stride, const float * x, size_t x_stride, int32_t n, float * out) {
    for (int t = 0; t < 4; t++) dot4_generic(w, w_stride, x + (size_t)t * x_stride, n, out + 4 * t);
}

/* ===== the integer path, portable (kernels.h: the contract every level follows bit for bit) ===== */

float fc_cpu_quantize_group(const float * x, int8_t * q, float * s) {
    float amax = 0.0f;
    for (int i = 0; i < FC_QK; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (amax == 0.0f) {
        memset(q, 0, FC_QK);
        *s = 0.0f;
        return 0.0f;
    }
    const float id = 127.0f / amax, d = amax / 127.0f;
    int32_t sum = 0;
    for (int i = 0; i < FC_QK; i++) {
        float v = nearbyintf(x[i] * id);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        q[i] = (int8_t)v;
        sum += q[i];
    }
    *s = d * (float)sum;
    return d;
}

size_t fc_cpu_xq_bytes_generic(int32_t n_tokens, int32_t cols) {
    return (size_t)n_tokens * ((size_t)cols + 2 * sizeof(float) * (size_t)(cols / FC_QK));
}

void fc_cpu_quantize_x_generic(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, int32_t g0,
                               int32_t g1, void * xq, float * residual) {
    (void)bits;
    (void)n_tokens;
    const int32_t ng = cols / FC_QK;
    const size_t row = fc_cpu_xq_bytes_generic(1, cols);
    for (int32_t t = t0; t < t1; t++) {
        int8_t * q = (int8_t *)xq + (size_t)t * row;
        float * d = (float *)(void *)(q + cols), * sm = d + ng;
        for (int32_t g = g0; g < g1; g++) {
            const float * xg = x + (size_t)t * cols + (size_t)g * FC_QK;
            d[g] = fc_cpu_quantize_group(xg, q + (size_t)g * FC_QK, &sm[g]);
            if (residual) {
                float * rg = residual + (size_t)t * cols + (size_t)g * FC_QK;
                for (int i = 0; i < FC_QK; i++) {
                    const float p = (float)q[g * FC_QK + i] * d[g];
                    rg[i] = xg[i] - p;
                }
            }
        }
    }
}

void fc_cpu_gemm_q_generic(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                           size_t out_stride, int accumulate) {
    const int bits = fc_dtype_bits(w->type), per = 8 / bits;
    const unsigned mask = (1u << bits) - 1u;
    const int32_t cols = w->cols, ng = cols / FC_QK;
    const size_t row = fc_cpu_xq_bytes_generic(1, cols);
    for (int32_t t = 0; t < n_tokens; t++) {
        const int8_t * q = (const int8_t *)xq + (size_t)t * row;
        const float * d = (const float *)(const void *)(q + cols), * sm = d + ng;
        for (int32_t r = r0; r < r1; r++) {
            const uint8_t * codes = w->data + (size_t)r * w->row_bytes;
            const uint16_t * sc = w->scales + (size_t)r * ng, * bi = w->biases + (size_t)r * ng;
            float acc = 0.0f;
            for (int32_t g = 0; g < ng; g++) {
                const uint8_t * c = codes + (size_t)g * FC_QK * bits / 8;
                const int8_t * qg = q + (size_t)g * FC_QK;
                int32_t isum = 0;
                for (int i = 0; i < FC_QK; i++) isum += (int32_t)((c[i / per] >> (bits * (i % per))) & mask) * qg[i];
                acc = fmaf((float)isum, fc_bf16_to_f32(sc[g]) * d[g], acc);
                acc = fmaf(sm[g], fc_bf16_to_f32(bi[g]), acc);
            }
            if (accumulate) out[(size_t)t * out_stride + r] += acc;
            else out[(size_t)t * out_stride + r] = acc;
        }
    }
}

const struct fc_cpu_kernels fc_cpu_kernels_generic = {
    .name = "generic",
    .dot_q = { dot_q2_generic, dot_q4_generic, dot_q8_generic },
    .dequant_q = { dequant_q2_generic, dequant_q4_generic, dequant_q8_generic },
    .dot4 = dot4_generic,
    .dot4x4 = dot4x4_generic,
    /* no integer path here: the portable one (fc_cpu_gemm_q_generic) is the reference, far slower than
       the float kernels; the SIMD levels have theirs */
};

#define DEF_QX_GENERIC(BITS)                                                                                       \
    static void matmul_q##BITS##x_generic(const uint8_t * codes, size_t row_bytes, const uint16_t * scales,            \
                                          const uint16_t * biases, int32_t n_rows, int32_t n_groups, const int8_t * xq, \
                                          const float * xd, const float * xsum, const float * xqs, int32_t n_tokens,   \
                                          float * out, size_t out_stride) {                                            \
        fc_cpu_matmul_qx_generic(BITS, codes, row_bytes, scales, biases, n_rows, n_groups, xq, xd, xsum, xqs, n_tokens, \
                                 out, out_stride);                                                                     \
    }
DEF_QX_GENERIC(2)
DEF_QX_GENERIC(4)
DEF_QX_GENERIC(8)

const struct fc_cpu_kernels fc_cpu_kernels_generic_int8 = {
    .name = "generic-int8",
    .dot_q = { dot_q2_generic, dot_q4_generic, dot_q8_generic },
    .dequant_q = { dequant_q2_generic, dequant_q4_generic, dequant_q8_generic },
    .dot4 = dot4_generic,
    .dot4x4 = dot4x4_generic,
    .matmul_qx = { matmul_q2x_generic, matmul_q4x_generic, matmul_q8x_generic },
};

const struct fc_cpu_kernels * fc_cpu_kernels_by_name(const char * name) {
    if (name[0] >= '0' && name[0] <= '9' && name[1] == '\0') return fc_cpu_kernels_get(name[0] - '0');
    if (strcmp(name, fc_cpu_kernels_generic_int8.name) == 0) return &fc_cpu_kernels_generic_int8;
    for (int level = 0; level <= FC_CPU_MAX_LEVEL; level++) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (k && strcmp(k->name, name) == 0) return k;
    }
    return NULL;
}

const char * fc_cpu_kernels_list(void) {
    static char buf[256];
    size_t n = 0;
    buf[0] = '\0';
    for (int level = 0; level <= FC_CPU_MAX_LEVEL; level++) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (k) n += (size_t)snprintf(buf + n, sizeof buf - n, "%d %s, ", level, k->name);
    }
    snprintf(buf + n, sizeof buf - n, "%s", fc_cpu_kernels_generic_int8.name);
    return buf;
}

const struct fc_cpu_kernels * fc_cpu_kernels_get(int level) {
    if (level == 0) return &fc_cpu_kernels_generic;
#ifdef FC_HAVE_ARM_KERNELS
    const int f = fc_platform_cpu_features();
    if (level == 1) return &fc_cpu_kernels_neon; /* NEON and FMA are part of armv8-a */
    if (level == 2 && (f & FC_CPU_FEAT_DOTPROD)) return &fc_cpu_kernels_neon_dot;
    if (level == 3 && (f & FC_CPU_FEAT_DOTPROD) && (f & FC_CPU_FEAT_I8MM)) return &fc_cpu_kernels_neon_i8mm;
#endif
#ifdef FC_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (level == 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &fc_cpu_kernels_avx2;
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
    if (level == 2 && avx512) return &fc_cpu_kernels_avx512;
    if (level == 3 && avx512 && __builtin_cpu_supports("avx512vnni")) return &fc_cpu_kernels_avx512vnni;
#endif
    return NULL;
}

/*
 * The default: the highest level without the arm64 int8 scheme. The arm64 int8 levels (matmul_qx) round
 * x to 8 bits (one scale, two planes) in every product, decode included (see native/PLATFORM.md); they are
 * chosen by name (--backend cpu:N). x86's avx512vnni qualifies: its integer path (gemm_q, and dot_xv for
 * decode's 4-bit products) keeps two int8 levels of x, about 16 bits, within the tolerances the tests hold.
 */
const struct fc_cpu_kernels * fc_cpu_kernels_best(void) {
    for (int level = FC_CPU_MAX_LEVEL; level > 0; level--) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (k && !k->matmul_qx[0]) return k;
    }
    return &fc_cpu_kernels_generic;
}

/* ===== error measures (tests, bench verify) ===== */

static int int8_path(const struct fc_cpu_kernels * k, const struct fc_matrix * w) {
    return k && fc_dtype_is_quantized(w->type) && k->matmul_qx[fc_bits_index(fc_dtype_bits(w->type))] != NULL;
}

double fc_cpu_product_tolerance(const struct fc_cpu_kernels * k, const struct fc_matrix * w) {
    (void)k;
    (void)w;
    return 1e-4; /* both measures: float rounding ~1e-6; two int8 planes err by <= d / 508 per element (~1.5e-5 measured) */
}

double fc_cpu_product_error(const struct fc_cpu_kernels * k, const struct fc_matrix * w, const float * x, const float * got,
                            const float * ref, int32_t n_tokens) {
    const size_t n = (size_t)n_tokens * w->rows;
    if (!int8_path(k, w)) {
        double max_ref = 1e-6, max_diff = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - ref[i]);
            if (d > max_diff || isnan(got[i])) max_diff = isnan(got[i]) ? INFINITY : d;
            if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        }
        return max_diff / max_ref;
    }
    const int32_t ng = w->cols / w->group_size;
    double * wn = malloc((size_t)w->rows * sizeof *wn), * xn = malloc((size_t)n_tokens * sizeof *xn);
    FC_ASSERT(wn && xn);
    for (int32_t r = 0; r < w->rows; r++) {
        double s2 = 0.0;
        for (int32_t i = 0; i < w->cols; i++) {
            float v = fc_code_at(w->data + (size_t)r * w->row_bytes, fc_dtype_bits(w->type), i) *
                          fc_bf16_to_f32(w->scales[(size_t)r * ng + i / w->group_size]) +
                      fc_bf16_to_f32(w->biases[(size_t)r * ng + i / w->group_size]);
            s2 += (double)v * v;
        }
        wn[r] = sqrt(s2);
    }
    for (int32_t t = 0; t < n_tokens; t++) {
        double s2 = 0.0;
        for (int32_t i = 0; i < w->cols; i++) s2 += (double)x[(size_t)t * w->cols + i] * x[(size_t)t * w->cols + i];
        xn[t] = sqrt(s2);
    }
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / (wn[i % w->rows] * xn[i / w->rows] + 1e-30);
        if (d > worst || isnan(got[i])) worst = isnan(got[i]) ? INFINITY : d;
    }
    free(wn);
    free(xn);
    return worst;
}

/* ===== the gated delta rule (kernels.h) ===== */

enum { DELTA_BLOCK = 16 }; /* columns of S per block: dk x 16 floats (8 KB at dk = 128) stay in L1 */

/* Columns [j0, j0 + w) of S over all n tokens, the block copied to B [dk][w] (contiguous) meanwhile. */
static inline void delta_block_generic(float * S, int32_t dk, int32_t dv, int32_t j0, int32_t w, int32_t n, const float * q,
                                       const float * k, size_t qk_stride, const float * v, size_t v_stride, const float * beta,
                                       const float * decay, float * o, size_t o_stride, float * B) {
    float kv[DELTA_BLOCK], delta[DELTA_BLOCK], ot[DELTA_BLOCK];
    for (int32_t i = 0; i < dk; i++) memcpy(B + (size_t)i * w, S + (size_t)i * dv + j0, (size_t)w * sizeof(float));
    /* kv of token 0; the others' are summed while the token before writes S */
    for (int32_t j = 0; j < w; j++) kv[j] = 0.0f;
    for (int32_t i = 0; i < dk; i++) {
        const float ki = k[i];
        for (int32_t j = 0; j < w; j++) kv[j] += B[(size_t)i * w + j] * ki;
    }
    for (int32_t t = 0; t < n; t++) {
        const float * qt = q + (size_t)t * qk_stride, * kt = k + (size_t)t * qk_stride, * vt = v + (size_t)t * v_stride + j0;
        const float * kn = t + 1 < n ? kt + qk_stride : kt; /* the last token's "next" sum is not used */
        const float dc = decay[t], bt = beta[t];
        for (int32_t j = 0; j < w; j++) {
            delta[j] = bt * (vt[j] - dc * kv[j]);
            kv[j] = 0.0f;
            ot[j] = 0.0f;
        }
        for (int32_t i = 0; i < dk; i++) {
            const float ki = kt[i], qi = qt[i], ni = kn[i];
            float * Bi = B + (size_t)i * w;
            for (int32_t j = 0; j < w; j++) {
                const float sv = dc * Bi[j] + ki * delta[j];
                Bi[j] = sv;
                ot[j] += sv * qi;
                kv[j] += sv * ni;
            }
        }
        memcpy(o + (size_t)t * o_stride + j0, ot, (size_t)w * sizeof(float));
    }
    for (int32_t i = 0; i < dk; i++) memcpy(S + (size_t)i * dv + j0, B + (size_t)i * w, (size_t)w * sizeof(float));
}

void fc_cpu_delta_rule_generic(float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k, size_t qk_stride,
                               const float * v, size_t v_stride, const float * beta, const float * decay, float * o, size_t o_stride) {
    if (n <= 0) return;
    float * B = fc_xmalloc((size_t)dk * DELTA_BLOCK * sizeof(float));
    int32_t j0 = 0;
    for (; j0 + DELTA_BLOCK <= dv; j0 += DELTA_BLOCK) {
        delta_block_generic(S, dk, dv, j0, DELTA_BLOCK, n, q, k, qk_stride, v, v_stride, beta, decay, o, o_stride, B);
    }
    if (j0 < dv) delta_block_generic(S, dk, dv, j0, dv - j0, n, q, k, qk_stride, v, v_stride, beta, decay, o, o_stride, B);
    free(B);
}

void fc_cpu_delta_rule(const struct fc_cpu_kernels * ks, float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k,
                       size_t qk_stride, const float * v, size_t v_stride, const float * beta, const float * decay, float * o,
                       size_t o_stride) {
    (ks && ks->delta_rule ? ks->delta_rule : fc_cpu_delta_rule_generic)(S, dk, dv, n, q, k, qk_stride, v, v_stride, beta, decay, o,
                                                                        o_stride);
}
