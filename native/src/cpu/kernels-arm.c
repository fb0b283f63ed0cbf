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

/* sum over n groups of bf16 b[g] * x[g] */
static inline float dot_bf16_f32(const uint16_t * b, const float * x, int32_t n) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int32_t g = 0;
    for (; g + 4 <= n; g += 4) acc = vfmaq_f32(acc, bf16x4(b + g), vld1q_f32(x + g));
    float r = vaddvq_f32(acc);
    for (; g < n; g++) r += fc_bf16_to_f32(b[g]) * x[g];
    return r;
}

/* One group's integer sum against both planes of x, as 254 * sum(w q1) + sum(w q2) (fits int32 for every width). */
T_DOT static inline int32x4_t group_isum(const int8x16_t w[4], const int8_t * q) {
    int8x16x4_t x1 = vld1q_s8_x4(q), x2 = vld1q_s8_x4(q + 64);
    int32x4_t a1 = vdotq_s32(vdupq_n_s32(0), w[0], x1.val[0]);
    int32x4_t a2 = vdotq_s32(vdupq_n_s32(0), w[0], x2.val[0]);
    a1 = vdotq_s32(a1, w[1], x1.val[1]);
    a2 = vdotq_s32(a2, w[1], x2.val[1]);
    a1 = vdotq_s32(a1, w[2], x1.val[2]);
    a2 = vdotq_s32(a2, w[2], x2.val[2]);
    a1 = vdotq_s32(a1, w[3], x1.val[3]);
    a2 = vdotq_s32(a2, w[3], x2.val[3]);
    return vmlaq_n_s32(a2, a1, 254);
}

/* The bias term of row (bi, sc) for token arrays xsum/xqs over ng groups: sum b * xsum (+ 128 * s * xqs, 8-bit). */
#define ROW_EXTRA(BITS, sc, bi, xsum, xqs, ng) \
    (dot_bf16_f32((bi), (xsum), (ng)) + (BITS == 8 ? 128.0f * dot_bf16_f32((sc), (xqs), (ng)) : 0.0f))

/*
 * Row r against NT tokens (1 or 4): per group, the codes are unpacked once and dotted with each token's two int8
 * planes by eight SDOTs; four groups at a time, their int32 lanes are scaled by scale * d / 254 (one lane of a
 * vector each). Bias terms are dot products over the groups after the loop.
 */
#define DOT_STEP(BITS, NT, u)                                                                                      \
    do {                                                                                                           \
        int8x16_t w[4];                                                                                            \
        CODES_S8(BITS, c + (size_t)(g + (u)) * (8 * BITS), w);                                                     \
        for (int t = 0; t < NT; t++) {                                                                             \
            int32x4_t is = group_isum(w, xq + ((size_t)t * ng + g + (u)) * FC_QX_BYTES);                           \
            total[t] = vfmaq_laneq_f32(total[t], vcvtq_f32_s32(is), sd[t], u);                                      \
        }                                                                                                          \
    } while (0)

#define DEF_ROW_DOT(BITS, NT)                                                                                       \
    T_DOT static inline void row_q##BITS##_dot_t##NT(const uint8_t * c, const uint16_t * sc, const uint16_t * bi,  \
                                                    int32_t ng, const int8_t * xq, const float * xd,               \
                                                    const float * xsum, const float * xqs, float * res) {          \
        float32x4_t total[NT];                                                                                      \
        for (int t = 0; t < NT; t++) total[t] = vdupq_n_f32(0.0f);                                                  \
        int32_t g = 0;                                                                                              \
        for (; g + 4 <= ng; g += 4) {                                                                               \
            const float32x4_t s4 = vmulq_n_f32(bf16x4(sc + g), 1.0f / 254.0f);                                      \
            float32x4_t sd[NT];                                                                                     \
            for (int t = 0; t < NT; t++) sd[t] = vmulq_f32(s4, vld1q_f32(xd + (size_t)t * ng + g));                 \
            DOT_STEP(BITS, NT, 0);                                                                                  \
            DOT_STEP(BITS, NT, 1);                                                                                  \
            DOT_STEP(BITS, NT, 2);                                                                                  \
            DOT_STEP(BITS, NT, 3);                                                                                  \
        }                                                                                                           \
        for (; g < ng; g++) {                                                                                       \
            int8x16_t w[4];                                                                                         \
            CODES_S8(BITS, c + (size_t)g * (8 * BITS), w);                                                          \
            const float s = fc_bf16_to_f32(sc[g]) * (1.0f / 254.0f);                                                \
            for (int t = 0; t < NT; t++) {                                                                          \
                int32x4_t is = group_isum(w, xq + ((size_t)t * ng + g) * FC_QX_BYTES);                              \
                total[t] = vfmaq_n_f32(total[t], vcvtq_f32_s32(is), s * xd[(size_t)t * ng + g]);                    \
            }                                                                                                       \
        }                                                                                                           \
        for (int t = 0; t < NT; t++) {                                                                              \
            const size_t o = (size_t)t * ng;                                                                        \
            res[t] = vaddvq_f32(total[t]) + ROW_EXTRA(BITS, sc, bi, xsum + o, xqs + o, ng);                         \
        }                                                                                                           \
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
 * SMMLA(acc, a, b): a holds two 8-long int8 rows (a0 | a1), b two 8-long int8 columns (b0 | b1); acc's four int32
 * lanes gain a0.b0, a0.b1, a1.b0, a1.b1. Rows r, r+1 and tokens t, t+1 go in as 8-byte halves interleaved with
 * vzip (64-bit lanes). A tile is 2 rows x 4 tokens: per 64-weight group the two rows are unpacked and interleaved
 * once, then each token pair takes 16 SMMLAs (8 per int8 plane) where SDOT would take 32.
 */
#define ZIP1_8(a, b) vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)))
#define ZIP2_8(a, b) vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)))

/* acc += the 2 x 2 products of one plane: rows' interleaved halves r[0..7], tokens' 64-byte planes p0, p1 */
#define MMLA_PLANE(acc, r, p0, p1)                                                                     \
    do {                                                                                               \
        const int8x16x4_t u_ = vld1q_s8_x4(p0), v_ = vld1q_s8_x4(p1);                                  \
        acc = vmmlaq_s32(acc, r[0], ZIP1_8(u_.val[0], v_.val[0]));                                     \
        acc = vmmlaq_s32(acc, r[1], ZIP2_8(u_.val[0], v_.val[0]));                                     \
        acc = vmmlaq_s32(acc, r[2], ZIP1_8(u_.val[1], v_.val[1]));                                     \
        acc = vmmlaq_s32(acc, r[3], ZIP2_8(u_.val[1], v_.val[1]));                                     \
        acc = vmmlaq_s32(acc, r[4], ZIP1_8(u_.val[2], v_.val[2]));                                     \
        acc = vmmlaq_s32(acc, r[5], ZIP2_8(u_.val[2], v_.val[2]));                                     \
        acc = vmmlaq_s32(acc, r[6], ZIP1_8(u_.val[3], v_.val[3]));                                     \
        acc = vmmlaq_s32(acc, r[7], ZIP2_8(u_.val[3], v_.val[3]));                                     \
    } while (0)

/* token pair (ta, tb) of group g: total += (254 * plane1 + plane2) * s_r * d_t / 254 */
#define PAIR_STEP(total, ta, tb)                                                                                   \
    do {                                                                                                           \
        const int8_t * qa_ = xq + ((size_t)(ta) * ng + g) * FC_QX_BYTES, * qb_ = xq + ((size_t)(tb) * ng + g) * FC_QX_BYTES; \
        int32x4_t a1_ = vdupq_n_s32(0), a2_ = vdupq_n_s32(0);                                                      \
        MMLA_PLANE(a1_, rz, qa_, qb_);                                                                             \
        MMLA_PLANE(a2_, rz, qa_ + 64, qb_ + 64);                                                                   \
        const float32x2_t d_ = { xd[(size_t)(ta) * ng + g], xd[(size_t)(tb) * ng + g] };                           \
        total = vfmaq_f32(total, vcvtq_f32_s32(vmlaq_n_s32(a2_, a1_, 254)), vmulq_f32(s01, vcombine_f32(d_, d_)));  \
    } while (0)

#define DEF_MATMUL_I8MM(BITS)                                                                                         \
    /* rows r, r + 1 against tokens t0 .. t0 + 3; lanes of total[p]: (r, t0+2p) (r, t0+2p+1) (r+1, ...) (r+1, ...) */ \
    T_I8MM static void tile_q##BITS##_i8mm(const uint8_t * c0, size_t row_bytes, const uint16_t * sc, const uint16_t * bi, \
                                           int32_t ng, const int8_t * xq, const float * xd, const float * xsum,       \
                                           const float * xqs, float res[2][4]) {                                      \
        const uint8_t * c1 = c0 + row_bytes;                                                                          \
        float32x4_t total0 = vdupq_n_f32(0.0f), total1 = vdupq_n_f32(0.0f);                                           \
        for (int32_t g = 0; g < ng; g++) {                                                                            \
            int8x16_t w0[4], w1[4], rz[8];                                                                            \
            CODES_S8(BITS, c0 + (size_t)g * (8 * BITS), w0);                                                          \
            CODES_S8(BITS, c1 + (size_t)g * (8 * BITS), w1);                                                          \
            rz[0] = ZIP1_8(w0[0], w1[0]);                                                                             \
            rz[1] = ZIP2_8(w0[0], w1[0]);                                                                             \
            rz[2] = ZIP1_8(w0[1], w1[1]);                                                                             \
            rz[3] = ZIP2_8(w0[1], w1[1]);                                                                             \
            rz[4] = ZIP1_8(w0[2], w1[2]);                                                                             \
            rz[5] = ZIP2_8(w0[2], w1[2]);                                                                             \
            rz[6] = ZIP1_8(w0[3], w1[3]);                                                                             \
            rz[7] = ZIP2_8(w0[3], w1[3]);                                                                             \
            const float32x4_t s01 = vmulq_n_f32(vcombine_f32(vdup_n_f32(fc_bf16_to_f32(sc[g])),                      \
                                                             vdup_n_f32(fc_bf16_to_f32(sc[ng + g]))), 1.0f / 254.0f); \
            PAIR_STEP(total0, 0, 1);                                                                                  \
            PAIR_STEP(total1, 2, 3);                                                                                  \
        }                                                                                                             \
        float32x4_t t_[2] = { total0, total1 };                                                                       \
        for (int p = 0; p < 2; p++) {                                                                                 \
            float l_[4];                                                                                              \
            vst1q_f32(l_, t_[p]);                                                                                     \
            for (int h = 0; h < 2; h++) {                                                                             \
                const size_t o = (size_t)(2 * p + h) * ng;                                                            \
                res[0][2 * p + h] = l_[h] + ROW_EXTRA(BITS, sc, bi, xsum + o, xqs + o, ng);                           \
                res[1][2 * p + h] = l_[2 + h] + ROW_EXTRA(BITS, sc + ng, bi + ng, xsum + o, xqs + o, ng);              \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
    T_I8MM static void matmul_q##BITS##_i8mm(const uint8_t * codes, size_t row_bytes, const uint16_t * scales,        \
                                             const uint16_t * biases, int32_t n_rows, int32_t ng, const int8_t * xq,  \
                                             const float * xd, const float * xsum, const float * xqs,                 \
                                             int32_t n_tokens, float * out, size_t out_stride) {                      \
        const int32_t pair_rows = n_rows & ~1, quad_tokens = n_tokens & ~3;                                           \
        for (int32_t r = 0; r < pair_rows; r += 2) {                                                                  \
            const size_t gr = (size_t)r * ng;                                                                         \
            for (int32_t t = 0; t < quad_tokens; t += 4) {                                                            \
                const size_t gt = (size_t)t * ng;                                                                     \
                float res[2][4];                                                                                      \
                tile_q##BITS##_i8mm(codes + (size_t)r * row_bytes, row_bytes, scales + gr, biases + gr, ng,           \
                                    xq + gt * FC_QX_BYTES, xd + gt, xsum + gt, xqs + gt, res);                        \
                for (int u = 0; u < 4; u++) {                                                                         \
                    out[(size_t)(t + u) * out_stride + r] = res[0][u];                                                \
                    out[(size_t)(t + u) * out_stride + r + 1] = res[1][u];                                            \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        /* the last n_tokens % 4 tokens of the row pairs, and the odd last row with every token: SDOT */             \
        if (quad_tokens < n_tokens) {                                                                                 \
            const size_t o = (size_t)quad_tokens * ng;                                                                \
            matmul_q##BITS##_dot(codes, row_bytes, scales, biases, pair_rows, ng, xq + o * FC_QX_BYTES, xd + o,       \
                                 xsum + o, xqs + o, n_tokens - quad_tokens, out + (size_t)quad_tokens * out_stride,   \
                                 out_stride);                                                                         \
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
