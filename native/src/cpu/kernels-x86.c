/*
 * x86 kernels (AVX2+FMA and AVX-512), compiled with per-function target attributes so the default
 * build runs on any x86-64 and picks these at run time (fc_cpu_kernels_get). Same math as
 * kernels-generic.c: per group, codes widened to int32 -> float, FMA with prepared x, then scale
 * and bias applied once per group.
 */
#include "kernels.h"

#ifdef FC_HAVE_X86_KERNELS

#include <immintrin.h>

#include "../util.h"

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,bmi2")))

/* ===== AVX2 ===== */

T_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T_AVX2 static inline __m256i load8_u8_epi32(const uint8_t * p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

T_AVX2 static float dot_q4_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                const float * xp, const float * xsum, int32_t n_groups) {
    const __m256i m4 = _mm256_set1_epi32(15);
    __m256 total0 = _mm256_setzero_ps(), total1 = _mm256_setzero_ps();
    float bias0 = 0.0f, bias1 = 0.0f;
    int32_t g = 0;
    for (; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 32;
        const float * x = xp + (size_t)g * 64;
        __m256 acc0, acc1;
        __m256i v0 = load8_u8_epi32(c), v1 = load8_u8_epi32(c + 8), v2 = load8_u8_epi32(c + 16), v3 = load8_u8_epi32(c + 24);
        acc0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, m4)), _mm256_loadu_ps(x));
        acc1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, m4)), _mm256_loadu_ps(x + 8));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v2, m4)), _mm256_loadu_ps(x + 16), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v3, m4)), _mm256_loadu_ps(x + 24), acc1);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), _mm256_loadu_ps(x + 32), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), _mm256_loadu_ps(x + 40), acc1);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v2, 4)), _mm256_loadu_ps(x + 48), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v3, 4)), _mm256_loadu_ps(x + 56), acc1);
        __m256 s = _mm256_set1_ps(fc_bf16_to_f32(sc[g]));
        if (g & 1) {
            total1 = _mm256_fmadd_ps(s, _mm256_add_ps(acc0, acc1), total1);
            bias1 += fc_bf16_to_f32(bi[g]) * xsum[g];
        } else {
            total0 = _mm256_fmadd_ps(s, _mm256_add_ps(acc0, acc1), total0);
            bias0 += fc_bf16_to_f32(bi[g]) * xsum[g];
        }
    }
    return hsum256(_mm256_add_ps(total0, total1)) + bias0 + bias1;
}

T_AVX2 static float dot_q8_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                const float * xp, const float * xsum, int32_t n_groups) {
    __m256 total = _mm256_setzero_ps();
    float bias = 0.0f;
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 64;
        const float * x = xp + (size_t)g * 64;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int k = 0; k < 64; k += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(load8_u8_epi32(c + k)), _mm256_loadu_ps(x + k), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(load8_u8_epi32(c + k + 8)), _mm256_loadu_ps(x + k + 8), acc1);
        }
        total = _mm256_fmadd_ps(_mm256_set1_ps(fc_bf16_to_f32(sc[g])), _mm256_add_ps(acc0, acc1), total);
        bias += fc_bf16_to_f32(bi[g]) * xsum[g];
    }
    return hsum256(total) + bias;
}

T_AVX2 static float dot_q2_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                const float * xp, const float * xsum, int32_t n_groups) {
    const __m256i m2 = _mm256_set1_epi32(3);
    __m256 total = _mm256_setzero_ps();
    float bias = 0.0f;
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 16;
        const float * x = xp + (size_t)g * 64;
        __m256i v0 = load8_u8_epi32(c), v1 = load8_u8_epi32(c + 8);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            __m256i a = _mm256_and_si256(_mm256_srli_epi32(v0, 2 * j), m2);
            __m256i b = _mm256_and_si256(_mm256_srli_epi32(v1, 2 * j), m2);
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_loadu_ps(x + 16 * j), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(b), _mm256_loadu_ps(x + 16 * j + 8), acc1);
        }
        total = _mm256_fmadd_ps(_mm256_set1_ps(fc_bf16_to_f32(sc[g])), _mm256_add_ps(acc0, acc1), total);
        bias += fc_bf16_to_f32(bi[g]) * xsum[g];
    }
    return hsum256(total) + bias;
}

#define DEQ_STORE_AVX2(o, v, s, b) _mm256_storeu_ps((o), _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), (s), (b)))

T_AVX2 static void dequant_q4_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    const __m256i m4 = _mm256_set1_epi32(15);
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 32;
        float * o = out + (size_t)g * 64;
        __m256 s = _mm256_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm256_set1_ps(fc_bf16_to_f32(bi[g]));
        for (int k = 0; k < 32; k += 8) {
            __m256i v = load8_u8_epi32(c + k);
            DEQ_STORE_AVX2(o + k, _mm256_and_si256(v, m4), s, b);
            DEQ_STORE_AVX2(o + 32 + k, _mm256_srli_epi32(v, 4), s, b);
        }
    }
}

T_AVX2 static void dequant_q8_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 64;
        float * o = out + (size_t)g * 64;
        __m256 s = _mm256_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm256_set1_ps(fc_bf16_to_f32(bi[g]));
        for (int k = 0; k < 64; k += 8) DEQ_STORE_AVX2(o + k, load8_u8_epi32(c + k), s, b);
    }
}

T_AVX2 static void dequant_q2_avx2(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    const __m256i m2 = _mm256_set1_epi32(3);
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 16;
        float * o = out + (size_t)g * 64;
        __m256 s = _mm256_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm256_set1_ps(fc_bf16_to_f32(bi[g]));
        __m256i v0 = load8_u8_epi32(c), v1 = load8_u8_epi32(c + 8);
        for (int j = 0; j < 4; j++) {
            DEQ_STORE_AVX2(o + 16 * j, _mm256_and_si256(_mm256_srli_epi32(v0, 2 * j), m2), s, b);
            DEQ_STORE_AVX2(o + 16 * j + 8, _mm256_and_si256(_mm256_srli_epi32(v1, 2 * j), m2), s, b);
        }
    }
}

T_AVX2 static void dot4_avx2(const float * w, size_t w_stride, const float * x, int32_t n, float * out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float * w0 = w, * w1 = w + w_stride, * w2 = w + 2 * w_stride, * w3 = w + 3 * w_stride;
    for (int32_t i = 0; i < n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
    }
    out[0] = hsum256(a0);
    out[1] = hsum256(a1);
    out[2] = hsum256(a2);
    out[3] = hsum256(a3);
}

T_AVX2 static void dot4x4_avx2(const float * w, size_t w_stride, const float * x, size_t x_stride, int32_t n, float * out) {
    for (int t = 0; t < 4; t++) dot4_avx2(w, w_stride, x + (size_t)t * x_stride, n, out + 4 * t);
}

const struct fc_cpu_kernels fc_cpu_kernels_avx2 = {
    .name = "avx2",
    .dot_q = { dot_q2_avx2, dot_q4_avx2, dot_q8_avx2 },
    .dequant_q = { dequant_q2_avx2, dequant_q4_avx2, dequant_q8_avx2 },
    .dot4 = dot4_avx2,
    .dot4x4 = dot4x4_avx2,
};

/* ===== AVX-512 ===== */

T_AVX512 static inline __m512i load16_u8_epi32(const uint8_t * p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* bf16 x16 -> f32 x16; `n` < 16 loads only n (the rest are 0). */
T_AVX512 static inline __m512 load_bf16x16(const uint16_t * p, int32_t n) {
    __m256i h = n >= 16 ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1u), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* sum over groups of bias[g] * xsum[g], 16 groups per step. */
T_AVX512 static inline float bias_dot(const uint16_t * bi, const float * xsum, int32_t n_groups) {
    __m512 acc = _mm512_setzero_ps();
    for (int32_t g = 0; g < n_groups; g += 16) {
        int32_t n = n_groups - g < 16 ? n_groups - g : 16;
        __m512 xs = _mm512_maskz_loadu_ps((__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u), xsum + g);
        acc = _mm512_fmadd_ps(load_bf16x16(bi + g, n), xs, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/*
 * The shape shared by the 2/4/8-bit AVX-512 dots: scales converted 16 groups at a time into a small
 * buffer (one broadcast load per group), two accumulator chains, the bias term as one vector dot.
 * GROUP(g, x) yields the group's unscaled sum as a __m512 of partial sums.
 */
#define DOT_AVX512_BODY(GROUP)                                                                       \
    __m512 total0 = _mm512_setzero_ps(), total1 = _mm512_setzero_ps();                               \
    float sbuf[16] __attribute__((aligned(64)));                                                     \
    for (int32_t g0 = 0; g0 < n_groups; g0 += 16) {                                                  \
        const int32_t n = n_groups - g0 < 16 ? n_groups - g0 : 16;                                   \
        _mm512_store_ps(sbuf, load_bf16x16(sc + g0, n));                                             \
        int32_t u = 0;                                                                               \
        for (; u + 1 < n; u += 2) {                                                                  \
            const int32_t g = g0 + u;                                                                \
            __m512 a0 = GROUP(g), a1 = GROUP(g + 1);                                                 \
            total0 = _mm512_fmadd_ps(_mm512_set1_ps(sbuf[u]), a0, total0);                           \
            total1 = _mm512_fmadd_ps(_mm512_set1_ps(sbuf[u + 1]), a1, total1);                       \
        }                                                                                            \
        if (u < n) total0 = _mm512_fmadd_ps(_mm512_set1_ps(sbuf[u]), GROUP(g0 + u), total0);        \
    }                                                                                                \
    return _mm512_reduce_add_ps(_mm512_add_ps(total0, total1)) + bias_dot(bi, xsum, n_groups);

#define Q4_GROUP(g)                                                                                  \
    __extension__({                                                                                  \
        const uint8_t * c_ = codes + (size_t)(g) * 32;                                               \
        const float * x_ = xp + (size_t)(g) * 64;                                                    \
        __m512i v0_ = load16_u8_epi32(c_), v1_ = load16_u8_epi32(c_ + 16);                           \
        __m512 p0_ = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v0_, m4)), _mm512_loadu_ps(x_)); \
        __m512 p1_ = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v1_, m4)), _mm512_loadu_ps(x_ + 16)); \
        p0_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v0_, 4)), _mm512_loadu_ps(x_ + 32), p0_); \
        p1_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v1_, 4)), _mm512_loadu_ps(x_ + 48), p1_); \
        _mm512_add_ps(p0_, p1_);                                                                     \
    })

#define Q8_GROUP(g)                                                                                  \
    __extension__({                                                                                  \
        const uint8_t * c_ = codes + (size_t)(g) * 64;                                               \
        const float * x_ = xp + (size_t)(g) * 64;                                                    \
        __m512 p0_ = _mm512_mul_ps(_mm512_cvtepi32_ps(load16_u8_epi32(c_)), _mm512_loadu_ps(x_));   \
        __m512 p1_ = _mm512_mul_ps(_mm512_cvtepi32_ps(load16_u8_epi32(c_ + 16)), _mm512_loadu_ps(x_ + 16)); \
        p0_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(load16_u8_epi32(c_ + 32)), _mm512_loadu_ps(x_ + 32), p0_); \
        p1_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(load16_u8_epi32(c_ + 48)), _mm512_loadu_ps(x_ + 48), p1_); \
        _mm512_add_ps(p0_, p1_);                                                                     \
    })

#define Q2_GROUP(g)                                                                                  \
    __extension__({                                                                                  \
        const float * x_ = xp + (size_t)(g) * 64;                                                    \
        __m512i v_ = load16_u8_epi32(codes + (size_t)(g) * 16);                                      \
        __m512 p0_ = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v_, m2)), _mm512_loadu_ps(x_)); \
        __m512 p1_ = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v_, 2), m2)), _mm512_loadu_ps(x_ + 16)); \
        p0_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v_, 4), m2)), _mm512_loadu_ps(x_ + 32), p0_); \
        p1_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v_, 6)), _mm512_loadu_ps(x_ + 48), p1_); \
        _mm512_add_ps(p0_, p1_);                                                                     \
    })

T_AVX512 static float dot_q4_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                    const float * xp, const float * xsum, int32_t n_groups) {
    const __m512i m4 = _mm512_set1_epi32(15);
    DOT_AVX512_BODY(Q4_GROUP)
}

T_AVX512 static float dot_q8_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                    const float * xp, const float * xsum, int32_t n_groups) {
    DOT_AVX512_BODY(Q8_GROUP)
}

T_AVX512 static float dot_q2_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                    const float * xp, const float * xsum, int32_t n_groups) {
    const __m512i m2 = _mm512_set1_epi32(3);
    DOT_AVX512_BODY(Q2_GROUP)
}

#define DEQ_STORE_512(o, v, s, b) _mm512_storeu_ps((o), _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), (s), (b)))

T_AVX512 static void dequant_q4_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    const __m512i m4 = _mm512_set1_epi32(15);
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 32;
        float * o = out + (size_t)g * 64;
        __m512 s = _mm512_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm512_set1_ps(fc_bf16_to_f32(bi[g]));
        __m512i v0 = load16_u8_epi32(c), v1 = load16_u8_epi32(c + 16);
        DEQ_STORE_512(o, _mm512_and_si512(v0, m4), s, b);
        DEQ_STORE_512(o + 16, _mm512_and_si512(v1, m4), s, b);
        DEQ_STORE_512(o + 32, _mm512_srli_epi32(v0, 4), s, b);
        DEQ_STORE_512(o + 48, _mm512_srli_epi32(v1, 4), s, b);
    }
}

T_AVX512 static void dequant_q8_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    for (int32_t g = 0; g < n_groups; g++) {
        const uint8_t * c = codes + (size_t)g * 64;
        float * o = out + (size_t)g * 64;
        __m512 s = _mm512_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm512_set1_ps(fc_bf16_to_f32(bi[g]));
        for (int k = 0; k < 64; k += 16) DEQ_STORE_512(o + k, load16_u8_epi32(c + k), s, b);
    }
}

T_AVX512 static void dequant_q2_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, int32_t n_groups, float * out) {
    const __m512i m2 = _mm512_set1_epi32(3);
    for (int32_t g = 0; g < n_groups; g++) {
        float * o = out + (size_t)g * 64;
        __m512 s = _mm512_set1_ps(fc_bf16_to_f32(sc[g])), b = _mm512_set1_ps(fc_bf16_to_f32(bi[g]));
        __m512i v = load16_u8_epi32(codes + (size_t)g * 16);
        for (int j = 0; j < 4; j++) DEQ_STORE_512(o + 16 * j, _mm512_and_si512(_mm512_srli_epi32(v, 2 * j), m2), s, b);
    }
}

T_AVX512 static void dot4_avx512(const float * w, size_t w_stride, const float * x, int32_t n, float * out) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const float * w0 = w, * w1 = w + w_stride, * w2 = w + 2 * w_stride, * w3 = w + 3 * w_stride;
    for (int32_t i = 0; i < n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
}

/* 4 rows x 4 tokens, 16 accumulators: 8 loads per 16 FMAs (dot4 alone is load-bound at 5 per 4). */
T_AVX512 static void dot4x4_avx512(const float * w, size_t w_stride, const float * x, size_t x_stride, int32_t n, float * out) {
    __m512 acc[4][4];
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) acc[t][r] = _mm512_setzero_ps();
    for (int32_t i = 0; i < n; i += 16) {
        __m512 w0 = _mm512_loadu_ps(w + i), w1 = _mm512_loadu_ps(w + w_stride + i);
        __m512 w2 = _mm512_loadu_ps(w + 2 * w_stride + i), w3 = _mm512_loadu_ps(w + 3 * w_stride + i);
        for (int t = 0; t < 4; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * x_stride + i);
            acc[t][0] = _mm512_fmadd_ps(w0, xv, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, xv, acc[t][1]);
            acc[t][2] = _mm512_fmadd_ps(w2, xv, acc[t][2]);
            acc[t][3] = _mm512_fmadd_ps(w3, xv, acc[t][3]);
        }
    }
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) out[4 * t + r] = _mm512_reduce_add_ps(acc[t][r]);
}

const struct fc_cpu_kernels fc_cpu_kernels_avx512 = {
    .name = "avx512",
    .dot_q = { dot_q2_avx512, dot_q4_avx512, dot_q8_avx512 },
    .dequant_q = { dequant_q2_avx512, dequant_q4_avx512, dequant_q8_avx512 },
    .dot4 = dot4_avx512,
    .dot4x4 = dot4x4_avx512,
};

#endif
