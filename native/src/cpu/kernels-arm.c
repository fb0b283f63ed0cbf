/*
 * arm64 kernels, chosen at run time (fc_cpu_kernels_get, features from platform.h):
 *   neon       float FMA on prepared float x: the AVX2 level's numerics (codes widened to float, FMA with
 *              x, scale and bias applied once per group).
 *   neon-dot   int8 activations in two planes (fc_cpu_prepare_xq) and SDOT: 16 products of code x int8
 *              per instruction, integer sums per group and plane, then scale * d. Activation rounding
 *              changes the numbers (native/PLATFORM.md: the error measured and the tolerance held).
 *   neon-i8mm  neon-dot, plus SMMLA for several tokens: a 2-row x 2-token tile of 8-long int8 dots per
 *              instruction, so each code vector serves two tokens.
 * The dot-product functions carry target attributes (the file itself is built for baseline armv8-a), so
 * one binary runs on every arm64 CPU. The float kernels (dequant, dot4, dot4x4) are shared by all three.
 */
#include "kernels.h"

#ifdef FC_HAVE_ARM_KERNELS

#include <arm_neon.h>

#include "../util.h"

#if defined(__clang__)
#define T_DOT __attribute__((target("dotprod")))
#define T_I8MM __attribute__((target("dotprod,i8mm")))
#else
#define T_DOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define T_I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#endif

static inline float32x4_t bf16x4(const uint16_t * p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

/* A group's 64 codes as four 16-lane vectors, vector k pairing with prepared x[16k .. 16k+15]. */
static inline void codes_q4(const uint8_t * c, uint8x16_t v[4]) {
    const uint8x16_t m4 = vdupq_n_u8(15);
    uint8x16_t b0 = vld1q_u8(c), b1 = vld1q_u8(c + 16);
    v[0] = vandq_u8(b0, m4);
    v[1] = vandq_u8(b1, m4);
    v[2] = vshrq_n_u8(b0, 4);
    v[3] = vshrq_n_u8(b1, 4);
}

static inline void codes_q2(const uint8_t * c, uint8x16_t v[4]) {
    const uint8x16_t m2 = vdupq_n_u8(3);
    uint8x16_t b = vld1q_u8(c);
    v[0] = vandq_u8(b, m2);
    v[1] = vandq_u8(vshrq_n_u8(b, 2), m2);
    v[2] = vandq_u8(vshrq_n_u8(b, 4), m2);
    v[3] = vshrq_n_u8(b, 6);
}

static inline void codes_q8(const uint8_t * c, uint8x16_t v[4]) {
    uint8x16x4_t b = vld1q_u8_x4(c);
    v[0] = b.val[0];
    v[1] = b.val[1];
    v[2] = b.val[2];
    v[3] = b.val[3];
}

/* ===== neon: float FMA ===== */

/* acc0/acc1 += float(v[0..15]) * x[0..15] */
#define FMA16(v, x, acc0, acc1)                                                                   \
    do {                                                                                          \
        uint16x8_t lo_ = vmovl_u8(vget_low_u8(v)), hi_ = vmovl_high_u8(v);                        \
        acc0 = vfmaq_f32(acc0, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo_))), vld1q_f32(x));        \
        acc1 = vfmaq_f32(acc1, vcvtq_f32_u32(vmovl_high_u16(lo_)), vld1q_f32((x) + 4));           \
        acc0 = vfmaq_f32(acc0, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi_))), vld1q_f32((x) + 8));  \
        acc1 = vfmaq_f32(acc1, vcvtq_f32_u32(vmovl_high_u16(hi_)), vld1q_f32((x) + 12));          \
    } while (0)

#define DEF_DOT_NEON(BITS)                                                                                    \
    static float dot_q##BITS##_neon(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,          \
                                    const float * xp, const float * xsum, int32_t n_groups) {                \
        float32x4_t total = vdupq_n_f32(0.0f), bias = vdupq_n_f32(0.0f);                                      \
        int32_t g = 0;                                                                                        \
        for (; g < n_groups; g++) {                                                                           \
            const float * x = xp + (size_t)g * 64;                                                            \
            uint8x16_t v[4];                                                                                  \
            codes_q##BITS(codes + (size_t)g * (8 * BITS), v);                                                 \
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);                                       \
            FMA16(v[0], x, a0, a1);                                                                           \
            FMA16(v[1], x + 16, a0, a1);                                                                      \
            FMA16(v[2], x + 32, a0, a1);                                                                      \
            FMA16(v[3], x + 48, a0, a1);                                                                      \
            total = vfmaq_n_f32(total, vaddq_f32(a0, a1), fc_bf16_to_f32(sc[g]));                             \
        }                                                                                                     \
        for (g = 0; g + 4 <= n_groups; g += 4) bias = vfmaq_f32(bias, bf16x4(bi + g), vld1q_f32(xsum + g));  \
        float b = vaddvq_f32(bias);                                                                           \
        for (; g < n_groups; g++) b += fc_bf16_to_f32(bi[g]) * xsum[g];                                       \
        return vaddvq_f32(total) + b;                                                                         \
    }

DEF_DOT_NEON(2)
DEF_DOT_NEON(4)
DEF_DOT_NEON(8)

#define DEQ16(o, v, s, b)                                                                          \
    do {                                                                                           \
        uint16x8_t lo_ = vmovl_u8(vget_low_u8(v)), hi_ = vmovl_high_u8(v);                         \
        vst1q_f32((o), vfmaq_f32((b), vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo_))), (s)));          \
        vst1q_f32((o) + 4, vfmaq_f32((b), vcvtq_f32_u32(vmovl_high_u16(lo_)), (s)));               \
        vst1q_f32((o) + 8, vfmaq_f32((b), vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi_))), (s)));      \
        vst1q_f32((o) + 12, vfmaq_f32((b), vcvtq_f32_u32(vmovl_high_u16(hi_)), (s)));              \
    } while (0)

#define DEF_DEQUANT_NEON(BITS)                                                                                     \
    static void dequant_q##BITS##_neon(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, \
                                       float * out) {                                                              \
        for (int32_t g = 0; g < n_groups; g++) {                                                                   \
            float * o = out + (size_t)g * 64;                                                                      \
            uint8x16_t v[4];                                                                                       \
            codes_q##BITS(codes + (size_t)g * (8 * BITS), v);                                                      \
            float32x4_t s = vdupq_n_f32(fc_bf16_to_f32(sc[g])), b = vdupq_n_f32(fc_bf16_to_f32(bi[g]));            \
            DEQ16(o, v[0], s, b);                                                                                  \
            DEQ16(o + 16, v[1], s, b);                                                                             \
            DEQ16(o + 32, v[2], s, b);                                                                             \
            DEQ16(o + 48, v[3], s, b);                                                                             \
        }                                                                                                          \
    }

DEF_DEQUANT_NEON(2)
DEF_DEQUANT_NEON(4)
DEF_DEQUANT_NEON(8)

static void dot4_neon(const float * w, size_t w_stride, const float * x, int32_t n, float * out) {
    float32x4_t a[4][2];
    for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = vdupq_n_f32(0.0f);
    for (int32_t i = 0; i < n; i += 8) {
        float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
        for (int r = 0; r < 4; r++) {
            const float * wr = w + (size_t)r * w_stride + i;
            a[r][0] = vfmaq_f32(a[r][0], vld1q_f32(wr), x0);
            a[r][1] = vfmaq_f32(a[r][1], vld1q_f32(wr + 4), x1);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = vaddvq_f32(vaddq_f32(a[r][0], a[r][1]));
}

/* 4 rows x 4 tokens, 16 accumulators: 8 loads per 16 FMAs. */
static void dot4x4_neon(const float * w, size_t w_stride, const float * x, size_t x_stride, int32_t n, float * out) {
    float32x4_t acc[4][4];
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) acc[t][r] = vdupq_n_f32(0.0f);
    for (int32_t i = 0; i < n; i += 4) {
        float32x4_t w0 = vld1q_f32(w + i), w1 = vld1q_f32(w + w_stride + i);
        float32x4_t w2 = vld1q_f32(w + 2 * w_stride + i), w3 = vld1q_f32(w + 3 * w_stride + i);
        for (int t = 0; t < 4; t++) {
            float32x4_t xv = vld1q_f32(x + (size_t)t * x_stride + i);
            acc[t][0] = vfmaq_f32(acc[t][0], w0, xv);
            acc[t][1] = vfmaq_f32(acc[t][1], w1, xv);
            acc[t][2] = vfmaq_f32(acc[t][2], w2, xv);
            acc[t][3] = vfmaq_f32(acc[t][3], w3, xv);
        }
    }
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) out[4 * t + r] = vaddvq_f32(acc[t][r]);
}

const struct fc_cpu_kernels fc_cpu_kernels_neon = {
    .name = "neon",
    .dot_q = { dot_q2_neon, dot_q4_neon, dot_q8_neon },
    .dequant_q = { dequant_q2_neon, dequant_q4_neon, dequant_q8_neon },
    .dot4 = dot4_neon,
    .dot4x4 = dot4x4_neon,
};

/* ===== neon-dot: int8 activations, SDOT ===== */

/* Codes as signed int8 for SDOT: 2/4-bit codes fit as they are; 8-bit ones are shifted to code - 128
   (the kernels add 128 * scale * xqs back). */
#define CODES_S8(BITS, c, w)                                                                  \
    do {                                                                                      \
        uint8x16_t u_[4];                                                                     \
        codes_q##BITS(c, u_);                                                                 \
        for (int k_ = 0; k_ < 4; k_++) {                                                      \
            w[k_] = vreinterpretq_s8_u8(BITS == 8 ? veorq_u8(u_[k_], vdupq_n_u8(0x80)) : u_[k_]); \
        }                                                                                     \
    } while (0)

/*
 * Row r against NT tokens (1 or 4): per group, the codes are unpacked once and dotted with each token's
 * int8 x by four SDOTs; the int32 lanes become floats scaled by scale * d. Bias (and the 8-bit offset)
 * terms per group are scalar.
 */
#define DEF_ROW_DOT(BITS, NT)                                                                                       \
    T_DOT static inline void row_q##BITS##_dot_t##NT(const uint8_t * c, const uint16_t * sc, const uint16_t * bi,  \
                                                    int32_t ng, const int8_t * xq, const float * xd,               \
                                                    const float * xsum, const float * xqs, float * res) {          \
        float32x4_t total[NT];                                                                                      \
        float extra[NT];                                                                                            \
        for (int t = 0; t < NT; t++) {                                                                              \
            total[t] = vdupq_n_f32(0.0f);                                                                           \
            extra[t] = 0.0f;                                                                                        \
        }                                                                                                           \
        for (int32_t g = 0; g < ng; g++) {                                                                          \
            int8x16_t w[4];                                                                                         \
            CODES_S8(BITS, c + (size_t)g * (8 * BITS), w);                                                          \
            const float s = fc_bf16_to_f32(sc[g]), b = fc_bf16_to_f32(bi[g]);                                       \
            for (int t = 0; t < NT; t++) {                                                                          \
                const size_t tg = (size_t)t * ng + g;                                                               \
                int8x16x4_t x1 = vld1q_s8_x4(xq + tg * FC_QX_BYTES), x2 = vld1q_s8_x4(xq + tg * FC_QX_BYTES + 64);  \
                int32x4_t a1 = vdotq_s32(vdupq_n_s32(0), w[0], x1.val[0]);                                          \
                int32x4_t a2 = vdotq_s32(vdupq_n_s32(0), w[0], x2.val[0]);                                          \
                for (int k = 1; k < 4; k++) {                                                                       \
                    a1 = vdotq_s32(a1, w[k], x1.val[k]);                                                            \
                    a2 = vdotq_s32(a2, w[k], x2.val[k]);                                                            \
                }                                                                                                   \
                float32x4_t f = vfmaq_n_f32(vcvtq_f32_s32(a1), vcvtq_f32_s32(a2), 1.0f / 254.0f);                   \
                total[t] = vfmaq_n_f32(total[t], f, s * xd[tg]);                                                    \
                extra[t] += b * xsum[tg] + (BITS == 8 ? 128.0f * s * xqs[tg] : 0.0f);                               \
            }                                                                                                       \
        }                                                                                                           \
        for (int t = 0; t < NT; t++) res[t] = vaddvq_f32(total[t]) + extra[t];                                      \
    }

#define DEF_MATMUL_DOT(BITS)                                                                                          \
    DEF_ROW_DOT(BITS, 1)                                                                                              \
    DEF_ROW_DOT(BITS, 4)                                                                                              \
    T_DOT static void matmul_q##BITS##_dot(const uint8_t * codes, size_t row_bytes, const uint16_t * scales,          \
                                           const uint16_t * biases, int32_t n_rows, int32_t ng, const int8_t * xq,    \
                                           const float * xd, const float * xsum, const float * xqs, int32_t n_tokens, \
                                           float * out, size_t out_stride) {                                          \
        for (int32_t r = 0; r < n_rows; r++) {                                                                        \
            const uint8_t * c = codes + (size_t)r * row_bytes;                                                        \
            const uint16_t * sc = scales + (size_t)r * ng, * bi = biases + (size_t)r * ng;                            \
            int32_t t = 0;                                                                                            \
            for (; t + 4 <= n_tokens; t += 4) {                                                                       \
                float res[4];                                                                                         \
                const size_t o = (size_t)t * ng;                                                                      \
                row_q##BITS##_dot_t4(c, sc, bi, ng, xq + o * FC_QX_BYTES, xd + o, xsum + o, xqs + o, res);                     \
                for (int u = 0; u < 4; u++) out[(size_t)(t + u) * out_stride + r] = res[u];                           \
            }                                                                                                         \
            for (; t < n_tokens; t++) {                                                                               \
                const size_t o = (size_t)t * ng;                                                                      \
                row_q##BITS##_dot_t1(c, sc, bi, ng, xq + o * FC_QX_BYTES, xd + o, xsum + o, xqs + o, &out[(size_t)t * out_stride + r]); \
            }                                                                                                         \
        }                                                                                                             \
    }

DEF_MATMUL_DOT(2)
DEF_MATMUL_DOT(4)
DEF_MATMUL_DOT(8)

const struct fc_cpu_kernels fc_cpu_kernels_neon_dot = {
    .name = "neon-dot",
    .dot_q = { dot_q2_neon, dot_q4_neon, dot_q8_neon },
    .dequant_q = { dequant_q2_neon, dequant_q4_neon, dequant_q8_neon },
    .dot4 = dot4_neon,
    .dot4x4 = dot4x4_neon,
    .matmul_qx = { matmul_q2_dot, matmul_q4_dot, matmul_q8_dot },
};

/* ===== neon-i8mm: SMMLA for pairs of rows x pairs of tokens ===== */

/*
 * SMMLA(acc, a, b): a holds two 8-long int8 rows (a0 | a1), b two 8-long int8 columns (b0 | b1); acc's
 * four int32 lanes gain a0.b0, a0.b1, a1.b0, a1.b1. Rows r, r+1 and tokens t, t+1 go in as 8-byte
 * halves interleaved with vzip (64-bit lanes); per 64-weight group 8 SMMLAs replace the 16 SDOTs of two
 * rows x two tokens, and each unpacked code vector serves two tokens.
 */
#define DEF_MATMUL_I8MM(BITS)                                                                                         \
    T_I8MM static void tile_q##BITS##_i8mm(const uint8_t * c0, const uint8_t * c1, const uint16_t * sc0,              \
                                           const uint16_t * sc1, const uint16_t * bi0, const uint16_t * bi1,          \
                                           int32_t ng, const int8_t * xq0, const int8_t * xq1, const float * xd0,     \
                                           const float * xd1, const float * xs0, const float * xs1,                   \
                                           const float * xqs0, const float * xqs1, float res[4]) {                     \
        float32x4_t total = vdupq_n_f32(0.0f), extra = vdupq_n_f32(0.0f);                                             \
        for (int32_t g = 0; g < ng; g++) {                                                                            \
            int8x16_t w0[4], w1[4];                                                                                   \
            CODES_S8(BITS, c0 + (size_t)g * (8 * BITS), w0);                                                          \
            CODES_S8(BITS, c1 + (size_t)g * (8 * BITS), w1);                                                          \
            int32x4_t acc1 = vdupq_n_s32(0), acc2 = vdupq_n_s32(0);                                                  \
            for (int plane = 0; plane < 2; plane++) {                                                                 \
                const size_t xo = (size_t)g * FC_QX_BYTES + (size_t)plane * 64;                                       \
                int8x16x4_t x0 = vld1q_s8_x4(xq0 + xo), x1 = vld1q_s8_x4(xq1 + xo);                                   \
                int32x4_t acc = vdupq_n_s32(0);                                                                       \
                for (int k = 0; k < 4; k++) {                                                                         \
                    int64x2_t a0 = vreinterpretq_s64_s8(w0[k]), a1 = vreinterpretq_s64_s8(w1[k]);                     \
                    int64x2_t b0 = vreinterpretq_s64_s8(x0.val[k]), b1 = vreinterpretq_s64_s8(x1.val[k]);             \
                    acc = vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip1q_s64(a0, a1)), vreinterpretq_s8_s64(vzip1q_s64(b0, b1))); \
                    acc = vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip2q_s64(a0, a1)), vreinterpretq_s8_s64(vzip2q_s64(b0, b1))); \
                }                                                                                                     \
                if (plane == 0) acc1 = acc;                                                                           \
                else acc2 = acc;                                                                                      \
            }                                                                                                         \
            float32x4_t isum = vfmaq_n_f32(vcvtq_f32_s32(acc1), vcvtq_f32_s32(acc2), 1.0f / 254.0f);                 \
            /* lanes: (r0,t0) (r0,t1) (r1,t0) (r1,t1) */                                                              \
            const float s0 = fc_bf16_to_f32(sc0[g]), s1 = fc_bf16_to_f32(sc1[g]);                                     \
            const float b0 = fc_bf16_to_f32(bi0[g]), b1 = fc_bf16_to_f32(bi1[g]);                                     \
            const float sd[4] = { s0 * xd0[g], s0 * xd1[g], s1 * xd0[g], s1 * xd1[g] };                               \
            total = vfmaq_f32(total, isum, vld1q_f32(sd));                                              \
            float ex[4] = { b0 * xs0[g], b0 * xs1[g], b1 * xs0[g], b1 * xs1[g] };                                     \
            if (BITS == 8) {                                                                                          \
                ex[0] += 128.0f * s0 * xqs0[g];                                                                       \
                ex[1] += 128.0f * s0 * xqs1[g];                                                                       \
                ex[2] += 128.0f * s1 * xqs0[g];                                                                       \
                ex[3] += 128.0f * s1 * xqs1[g];                                                                       \
            }                                                                                                         \
            extra = vaddq_f32(extra, vld1q_f32(ex));                                                                  \
        }                                                                                                             \
        vst1q_f32(res, vaddq_f32(total, extra));                                                                      \
    }                                                                                                                 \
    T_I8MM static void matmul_q##BITS##_i8mm(const uint8_t * codes, size_t row_bytes, const uint16_t * scales,        \
                                             const uint16_t * biases, int32_t n_rows, int32_t ng, const int8_t * xq,  \
                                             const float * xd, const float * xsum, const float * xqs,                 \
                                             int32_t n_tokens, float * out, size_t out_stride) {                      \
        if (n_tokens < 2) {                                                                                           \
            matmul_q##BITS##_dot(codes, row_bytes, scales, biases, n_rows, ng, xq, xd, xsum, xqs, n_tokens, out,      \
                                 out_stride);                                                                         \
            return;                                                                                                   \
        }                                                                                                             \
        const int32_t pair_rows = n_rows & ~1, pair_tokens = n_tokens & ~1;                                           \
        const size_t xs = (size_t)ng * FC_QX_BYTES;                                                                          \
        for (int32_t r = 0; r < pair_rows; r += 2) {                                                                  \
            const uint8_t * c0 = codes + (size_t)r * row_bytes;                                                       \
            const size_t g0 = (size_t)r * ng, g1 = g0 + ng;                                                           \
            for (int32_t t = 0; t < pair_tokens; t += 2) {                                                            \
                const size_t o0 = (size_t)t * ng, o1 = o0 + ng;                                                       \
                float res[4];                                                                                         \
                tile_q##BITS##_i8mm(c0, c0 + row_bytes, scales + g0, scales + g1, biases + g0, biases + g1, ng,       \
                                    xq + (size_t)t * xs, xq + (size_t)(t + 1) * xs, xd + o0, xd + o1, xsum + o0,      \
                                    xsum + o1, xqs + o0, xqs + o1, res);                                              \
                out[(size_t)t * out_stride + r] = res[0];                                                             \
                out[(size_t)(t + 1) * out_stride + r] = res[1];                                                       \
                out[(size_t)t * out_stride + r + 1] = res[2];                                                         \
                out[(size_t)(t + 1) * out_stride + r + 1] = res[3];                                                   \
            }                                                                                                         \
        }                                                                                                             \
        /* the odd last token of every row pair, and the odd last row with every token */                           \
        if (pair_tokens < n_tokens) {                                                                                 \
            const size_t o = (size_t)pair_tokens * ng;                                                                \
            matmul_q##BITS##_dot(codes, row_bytes, scales, biases, pair_rows, ng, xq + o * FC_QX_BYTES, xd + o, xsum + o,      \
                                 xqs + o, 1, out + (size_t)pair_tokens * out_stride, out_stride);                     \
        }                                                                                                             \
        if (pair_rows < n_rows) {                                                                                     \
            const size_t g = (size_t)pair_rows * ng;                                                                  \
            matmul_q##BITS##_dot(codes + (size_t)pair_rows * row_bytes, row_bytes, scales + g, biases + g, 1, ng, xq, \
                                 xd, xsum, xqs, n_tokens, out + pair_rows, out_stride);                               \
        }                                                                                                             \
    }

DEF_MATMUL_I8MM(2)
DEF_MATMUL_I8MM(4)
DEF_MATMUL_I8MM(8)

const struct fc_cpu_kernels fc_cpu_kernels_neon_i8mm = {
    .name = "neon-i8mm",
    .dot_q = { dot_q2_neon, dot_q4_neon, dot_q8_neon },
    .dequant_q = { dequant_q2_neon, dequant_q4_neon, dequant_q8_neon },
    .dot4 = dot4_neon,
    .dot4x4 = dot4x4_neon,
    .matmul_qx = { matmul_q2_i8mm, matmul_q4_i8mm, matmul_q8_i8mm },
};

#endif
