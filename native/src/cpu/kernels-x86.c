/*
 * x86 kernels (AVX2+FMA, AVX-512, AVX-512 VNNI), compiled with per-function target attributes so the
 * default build runs on any x86-64 and picks these at run time (fc_cpu_kernels_get). Same math as
 * kernels-generic.c: per group, codes widened to int32 -> float, FMA with prepared x, then scale
 * and bias applied once per group; the VNNI level adds the integer path (int8 activations, vpdpbusd).
 */
#include "kernels.h"

#ifdef FC_HAVE_X86_KERNELS

#include <immintrin.h>
#include <stdlib.h>

#include "../util.h"

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,bmi2")))
#define T_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,bmi2")))

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

#ifndef DOT_PF
#define DOT_PF 2048
#endif
/*
 * The shape shared by the 2/4/8-bit AVX-512 dots: scales converted 16 groups at a time into a small
 * buffer (one broadcast load per group), two accumulator chains, the bias term as one vector dot.
 * GROUP(g, x) yields the group's unscaled sum as a __m512 of partial sums.
 */
#define DOT_AVX512_BODY(GROUP, GB)                                                                   \
    __m512 total0 = _mm512_setzero_ps(), total1 = _mm512_setzero_ps();                               \
    float sbuf[16] __attribute__((aligned(64)));                                                     \
    for (int32_t g0 = 0; g0 < n_groups; g0 += 16) {                                                  \
        const int32_t n = n_groups - g0 < 16 ? n_groups - g0 : 16;                                   \
        /* software prefetch DOT_PF bytes ahead (past the row's end: the next row, consecutive in a   \
           matrix); the hardware prefetcher alone leaves a core at ~60% of its read bandwidth */    \
        for (int32_t p_ = 0; p_ < n * (GB); p_ += 64) _mm_prefetch((const char *)codes + (size_t)g0 * (GB) + DOT_PF + p_, _MM_HINT_T0); \
        _mm_prefetch((const char *)(sc + g0 + DOT_PF / (GB)), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)(bi + g0 + DOT_PF / (GB)), _MM_HINT_T0);                          \
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
    DOT_AVX512_BODY(Q4_GROUP, 32)
}

T_AVX512 static float dot_q8_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                    const float * xp, const float * xsum, int32_t n_groups) {
    DOT_AVX512_BODY(Q8_GROUP, 64)
}

T_AVX512 static float dot_q2_avx512(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi,
                                    const float * xp, const float * xsum, int32_t n_groups) {
    const __m512i m2 = _mm512_set1_epi32(3);
    DOT_AVX512_BODY(Q2_GROUP, 16)
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

/*
 * The gated delta rule (kernels.h), 16 columns of S (one vector) at a time, copied to a contiguous block
 * (dk x 64 bytes) that stays in L1 for all tokens. Per row of the block one pass does the update, o_t and
 * the next token's S^T k; the rows go in fours with their own accumulators (8 independent chains).
 */
T_AVX512 static void delta_rule_avx512(float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k, size_t qk_stride,
                                       const float * v, size_t v_stride, const float * beta, const float * decay, float * o,
                                       size_t o_stride) {
    if (n <= 0) return;
    if (dv % 16 != 0 || dk % 4 != 0) {
        fc_cpu_delta_rule_generic(S, dk, dv, n, q, k, qk_stride, v, v_stride, beta, decay, o, o_stride);
        return;
    }
    __m512 * B = fc_alloc_aligned((size_t)dk * sizeof(__m512));
    FC_ASSERT(B != NULL);
    for (int32_t j0 = 0; j0 < dv; j0 += 16) {
        for (int32_t i = 0; i < dk; i++) B[i] = _mm512_loadu_ps(S + (size_t)i * dv + j0);
        __m512 kv0 = _mm512_setzero_ps(), kv1 = kv0, kv2 = kv0, kv3 = kv0;
        for (int32_t i = 0; i < dk; i += 4) {
            kv0 = _mm512_fmadd_ps(B[i], _mm512_set1_ps(k[i]), kv0);
            kv1 = _mm512_fmadd_ps(B[i + 1], _mm512_set1_ps(k[i + 1]), kv1);
            kv2 = _mm512_fmadd_ps(B[i + 2], _mm512_set1_ps(k[i + 2]), kv2);
            kv3 = _mm512_fmadd_ps(B[i + 3], _mm512_set1_ps(k[i + 3]), kv3);
        }
        for (int32_t t = 0; t < n; t++) {
            const float * qt = q + (size_t)t * qk_stride, * kt = k + (size_t)t * qk_stride;
            const float * kn = t + 1 < n ? kt + qk_stride : kt;
            const __m512 dc = _mm512_set1_ps(decay[t]);
            const __m512 kv = _mm512_add_ps(_mm512_add_ps(kv0, kv1), _mm512_add_ps(kv2, kv3));
            const __m512 delta = _mm512_mul_ps(_mm512_set1_ps(beta[t]),
                                               _mm512_fnmadd_ps(dc, kv, _mm512_loadu_ps(v + (size_t)t * v_stride + j0)));
            __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
            kv0 = kv1 = kv2 = kv3 = o0;
#define DELTA_ROW(u, OA, KA)                                                                     \
    {                                                                                            \
        const __m512 sv_ = _mm512_fmadd_ps(dc, B[i + u], _mm512_mul_ps(_mm512_set1_ps(kt[i + u]), delta)); \
        B[i + u] = sv_;                                                                          \
        OA = _mm512_fmadd_ps(sv_, _mm512_set1_ps(qt[i + u]), OA);                                \
        KA = _mm512_fmadd_ps(sv_, _mm512_set1_ps(kn[i + u]), KA);                                \
    }
            for (int32_t i = 0; i < dk; i += 4) {
                DELTA_ROW(0, o0, kv0)
                DELTA_ROW(1, o1, kv1)
                DELTA_ROW(2, o2, kv2)
                DELTA_ROW(3, o3, kv3)
            }
#undef DELTA_ROW
            _mm512_storeu_ps(o + (size_t)t * o_stride + j0, _mm512_add_ps(_mm512_add_ps(o0, o1), _mm512_add_ps(o2, o3)));
        }
        for (int32_t i = 0; i < dk; i++) _mm512_storeu_ps(S + (size_t)i * dv + j0, B[i]);
    }
    free(B);
}

const struct fc_cpu_kernels fc_cpu_kernels_avx512 = {
    .name = "avx512",
    .dot_q = { dot_q2_avx512, dot_q4_avx512, dot_q8_avx512 },
    .dequant_q = { dequant_q2_avx512, dequant_q4_avx512, dequant_q8_avx512 },
    .dot4 = dot4_avx512,
    .dot4x4 = dot4x4_avx512,
    .delta_rule = delta_rule_avx512,
};

/* ===== AVX-512 VNNI: the integer path ===== */

/*
 * Layout of the quantized activations (kernels.h gives the numbers; this is where they sit). Tokens in
 * blocks of 16, one per vector lane; the last block padded with zeros. Block (tb, g) of group g of token
 * block tb, at xq + (tb * n_groups + g) * XQ_BLOCK: 16 vectors of 64 bytes, then d[16] and s[16] as floats.
 * Vector v = m * per + j (per = 8 / bits codes per byte) holds, in lane l (token 16 tb + l), the four int8
 * inputs (4m + i) * per + j, i = 0..3: the inputs that bit position j of weight bytes 4m..4m+3 multiply.
 * So one broadcast of 4 weight bytes, masked and shifted, meets every token of the block in one vpdpbusd
 * (u8 codes x s8 activations, 4 products per int32 lane), and the weights are used as stored on disk.
 */
enum { XQ_TB = 16, XQ_BLOCK = 16 * 64 + 2 * 16 * 4 };

static size_t xq_bytes_vnni(int32_t n_tokens, int32_t cols) {
    return (size_t)((n_tokens + XQ_TB - 1) / XQ_TB) * (size_t)(cols / FC_QK) * XQ_BLOCK;
}

/* pshufb pattern taking a group's 64 int8 in input order to 16 dwords in vector order (see above). */
static void xq_shuffle(int bits, uint8_t pat[64]) {
    const int per = 8 / bits;
    for (int o = 0; o < 64; o++) {
        const int v = o / 4, i = o % 4, m = v / per, j = v % per;
        pat[o] = (uint8_t)(((4 * m + i) * per + j) % 16); /* stays within its 16-byte lane */
    }
}

/*
 * One group of 64 inputs quantized as the contract says (kernels.h): q in four vectors of 16 int32, d and
 * s = d * sum q; the residual x - (float)q * d (a product, then a difference) into r when asked. amax 0:
 * returns 0 with q, d, s zero and r = x.
 */
T_VNNI static inline int quantize_group_512(const float * xg, __m512i q[4], float * d, float * s, float * r) {
    const __m512 v0 = _mm512_loadu_ps(xg), v1 = _mm512_loadu_ps(xg + 16), v2 = _mm512_loadu_ps(xg + 32), v3 = _mm512_loadu_ps(xg + 48);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)),
                                                          _mm512_max_ps(_mm512_abs_ps(v2), _mm512_abs_ps(v3))));
    if (!(amax > 0.0f)) {
        q[0] = q[1] = q[2] = q[3] = _mm512_setzero_si512();
        *d = *s = 0.0f;
        if (r) memcpy(r, xg, FC_QK * sizeof(float));
        return 0;
    }
    const __m512 id = _mm512_set1_ps(127.0f / amax);
    const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
    *d = amax / 127.0f;
    /* cvtps rounds to nearest even, as nearbyintf does in the default mode */
    q[0] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), nlim), lim);
    q[1] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)), nlim), lim);
    q[2] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v2, id)), nlim), lim);
    q[3] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v3, id)), nlim), lim);
    *s = *d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(q[0], q[1]), _mm512_add_epi32(q[2], q[3])));
    if (r) {
        const __m512 dv = _mm512_set1_ps(*d);
        _mm512_storeu_ps(r, _mm512_sub_ps(v0, _mm512_mul_ps(_mm512_cvtepi32_ps(q[0]), dv)));
        _mm512_storeu_ps(r + 16, _mm512_sub_ps(v1, _mm512_mul_ps(_mm512_cvtepi32_ps(q[1]), dv)));
        _mm512_storeu_ps(r + 32, _mm512_sub_ps(v2, _mm512_mul_ps(_mm512_cvtepi32_ps(q[2]), dv)));
        _mm512_storeu_ps(r + 48, _mm512_sub_ps(v3, _mm512_mul_ps(_mm512_cvtepi32_ps(q[3]), dv)));
    }
    return 1;
}

T_VNNI static void quantize_x_vnni(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, int32_t g0,
                                   int32_t g1, void * xq, float * residual) {
    const int32_t ng = cols / FC_QK;
    uint8_t pat[64] __attribute__((aligned(64)));
    xq_shuffle(bits, pat);
    const __m512i shuf = _mm512_load_si512(pat);
    for (int32_t tb = t0 / XQ_TB; tb * XQ_TB < t1; tb++) {
        for (int32_t g = g0; g < g1; g++) {
            uint8_t * blk = (uint8_t *)xq + ((size_t)tb * ng + g) * XQ_BLOCK;
            float * dd = (float *)(void *)(blk + 1024), * ss = dd + 16;
            for (int32_t l = 0; l < XQ_TB; l++) {
                const int32_t t = tb * XQ_TB + l;
                uint32_t words[16] __attribute__((aligned(64)));
                float d = 0.0f, s = 0.0f;
                const float * xg = x + (size_t)t * cols + (size_t)g * FC_QK;
                if (t < n_tokens) {
                    __m512i q[4];
                    float * rg = residual ? residual + (size_t)t * cols + (size_t)g * FC_QK : NULL;
                    if (quantize_group_512(xg, q, &d, &s, rg)) {
                        __m512i qb = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(_mm512_cvtepi32_epi8(q[1]), _mm512_cvtepi32_epi8(q[0]))),
                                                        _mm256_set_m128i(_mm512_cvtepi32_epi8(q[3]), _mm512_cvtepi32_epi8(q[2])), 1);
                        _mm512_store_si512(words, _mm512_shuffle_epi8(qb, shuf));
                    } else {
                        memset(words, 0, sizeof words);
                    }
                } else {
                    memset(words, 0, sizeof words);
                }
                for (int v = 0; v < 16; v++) memcpy(blk + v * 64 + l * 4, &words[v], 4);
                dd[l] = d;
                ss[l] = s;
            }
        }
    }
}

/*
 * One tile: the rows of ROWS (a list macro; row i is r + i) x one block of 16 tokens, all groups. Per
 * group the integer sums go to two accumulators per row (a: even vectors, b: odd ones, so each chain has
 * half the vpdpbusd and their latency hides), then the float steps of the contract into f (one lane per
 * token). Written out with named variables per row: compilers keep those in registers, arrays of vectors
 * they spill. A "unit" is what one row does with the activation vectors xv0.. of one step:
 *   4-bit: one 4-byte broadcast, low and high nibbles       (2 vectors, 8 units per group)
 *   8-bit: two 4-byte broadcasts, the bytes as they are      (2 vectors, 8 units)
 *   2-bit: one 4-byte broadcast, the four 2-bit fields       (4 vectors, 4 units)
 */
/* vpdpbusd acc += a (u8) . b (s8), written as asm: GCC copies accumulators around the intrinsic. */
T_VNNI static inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

#define ROWS1(X) X(0)
#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

#define T_DECL(i) const uint8_t * c##i = w->data + (size_t)(r + i) * w->row_bytes; __m512 f##i = _mm512_setzero_ps();
#define T_ZERO(i) __m512i a##i = _mm512_setzero_si512(), b##i = _mm512_setzero_si512();
#define T_BCAST(i, off) __extension__({ int32_t w_; memcpy(&w_, c##i + goff + (off), 4); _mm512_set1_epi32(w_); })
/* 4-bit: the high nibbles masked in place (16 x their value, so b holds 16 x its sum: shifted out at the end) */
#define T_UNIT4(i) { const __m512i v_ = T_BCAST(i, 4 * u);                                                \
        a##i = dpbusd(a##i, _mm512_and_si512(v_, mask), xv0);                                               \
        b##i = dpbusd(b##i, _mm512_and_si512(v_, maskh), xv1); }
#define T_UNIT8(i) { a##i = dpbusd(a##i, T_BCAST(i, 8 * u), xv0);                             \
        b##i = dpbusd(b##i, T_BCAST(i, 8 * u + 4), xv1); }
#define T_UNIT2(i) { const __m512i v_ = T_BCAST(i, 4 * u);                                                \
        a##i = dpbusd(a##i, _mm512_and_si512(v_, mask), xv0);                                  \
        b##i = dpbusd(b##i, _mm512_and_si512(_mm512_srli_epi32(v_, 2), mask), xv1);            \
        a##i = dpbusd(a##i, _mm512_and_si512(_mm512_srli_epi32(v_, 4), mask), xv2);            \
        b##i = dpbusd(b##i, _mm512_and_si512(_mm512_srli_epi32(v_, 6), mask), xv3); }
#define T_FLOAT(i)                                                                                          \
    f##i = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a##i, hshift ? _mm512_srai_epi32(b##i, 4) : b##i)), _mm512_mul_ps(dv, _mm512_set1_ps(sa[i * ng + g])), f##i); \
    f##i = _mm512_fmadd_ps(sv, _mm512_set1_ps(sb[i * ng + g]), f##i);
/* accumulate == FOLD (gemm2_small): lanes 0-7 hold a token's first level, lanes 8-15 its second; out = their sum */
enum { FOLD = 2 };
#define T_STORE(i) {                                                                                        \
        float res_[16] __attribute__((aligned(64)));                                                        \
        _mm512_store_ps(res_, f##i);                                                                        \
        if (accumulate == FOLD) for (int32_t l = 0; l < nv; l++) out[(size_t)(t_base + l) * out_stride + r + i] = res_[l] + res_[l + 8]; \
        else if (accumulate) for (int32_t l = 0; l < nv; l++) out[(size_t)(t_base + l) * out_stride + r + i] += res_[l];           \
        else for (int32_t l = 0; l < nv; l++) out[(size_t)(t_base + l) * out_stride + r + i] = res_[l]; }

/* NVEC activation vectors per unit, NUNIT units per group (16 vectors a group in all). */
#define DEF_TILE(NAME, BITS, ROWS, UNIT, NVEC, NUNIT, HI_SHIFT)                                            \
    T_VNNI static void NAME(const struct fc_matrix * w, int32_t r, const uint8_t * xq, int32_t tb, int32_t ng,  \
                            int32_t n_tokens, float * out, size_t out_stride, const float * sa, const float * sb,   \
                            int accumulate) {                                                                       \
        const __m512i mask = _mm512_set1_epi8((char)((1 << BITS) - 1));                                    \
        const __m512i maskh = _mm512_set1_epi8((char)0xf0);                                                 \
        const int hshift = HI_SHIFT;                                                                        \
        (void)mask; (void)maskh;                                                                            \
        ROWS(T_DECL)                                                                                        \
        const uint8_t * xb = xq + (size_t)tb * ng * XQ_BLOCK;                                               \
        for (int32_t g = 0; g < ng; g++, xb += XQ_BLOCK) {                                                  \
            const size_t goff = (size_t)g * 8 * BITS;                                                       \
            ROWS(T_ZERO)                                                                                    \
            for (int u = 0; u < NUNIT; u++) {                                                               \
                const uint8_t * xu = xb + u * NVEC * 64;                                                    \
                const __m512i xv0 = _mm512_loadu_si512(xu), xv1 = _mm512_loadu_si512(xu + 64);             \
                const __m512i xv2 = NVEC > 2 ? _mm512_loadu_si512(xu + 128) : xv0;                          \
                const __m512i xv3 = NVEC > 2 ? _mm512_loadu_si512(xu + 192) : xv1;                          \
                (void)xv2; (void)xv3;                                                                       \
                ROWS(UNIT)                                                                                  \
            }                                                                                               \
            const __m512 dv = _mm512_loadu_ps(xb + 1024), sv = _mm512_loadu_ps(xb + 1024 + 64);            \
            ROWS(T_FLOAT)                                                                                   \
        }                                                                                                   \
        const int32_t t_base = tb * XQ_TB;                                                                  \
        const int32_t nv = n_tokens - t_base < XQ_TB ? n_tokens - t_base : XQ_TB;                          \
        ROWS(T_STORE)                                                                                       \
    }

DEF_TILE(tile_q4x8, 4, ROWS8, T_UNIT4, 2, 8, 1)
DEF_TILE(tile_q4x1, 4, ROWS1, T_UNIT4, 2, 8, 1)
DEF_TILE(tile_q8x8, 8, ROWS8, T_UNIT8, 2, 8, 0)
DEF_TILE(tile_q8x1, 8, ROWS1, T_UNIT8, 2, 8, 0)
DEF_TILE(tile_q2x6, 2, ROWS6, T_UNIT2, 4, 4, 0)
DEF_TILE(tile_q2x1, 2, ROWS1, T_UNIT2, 4, 4, 0)

/* Scales and biases of rows [r, r + R) as floats, [R][ng] each: the same layout as the matrix's, so one
   flat conversion of R * ng values (16 at a time). */
T_VNNI static void rows_scales(const struct fc_matrix * w, int32_t r, int R, int32_t ng, float * sa, float * sb) {
    const size_t n = (size_t)R * ng;
    const uint16_t * sc = w->scales + (size_t)r * ng, * bi = w->biases + (size_t)r * ng;
    for (size_t i = 0; i < n; i += 16) {
        const int32_t m = n - i < 16 ? (int32_t)(n - i) : 16;
        const __mmask16 k = (__mmask16)(m >= 16 ? 0xffff : (1u << m) - 1u);
        _mm512_mask_storeu_ps(sa + i, k, load_bf16x16(sc + i, m));
        _mm512_mask_storeu_ps(sb + i, k, load_bf16x16(bi + i, m));
    }
}

/*
 * Rows in blocks of up to 256 (their codes stay in L2; their scales and biases converted to floats once,
 * at most 8192 of each), and within a block, for each token block (its activations, 1152 bytes a group,
 * stay in L1) the rows in tiles of RT (8; 6 at 2 bits, whose 4 vectors per step need more registers),
 * then single rows.
 */
enum { SCALE_BUF = 8192 };
static int32_t rows_per_block(int32_t ng, int32_t rt) {
    int32_t rb = SCALE_BUF / ng / rt * rt;
    return rb > 256 ? 256 : rb;
}

#define GEMM_VNNI(BITS, RT)                                                                                     \
    T_VNNI static void gemm_q##BITS##_vnni(const struct fc_matrix * w, int32_t r0, int32_t r1, const uint8_t * xq,     \
                                           int32_t n_tokens, float * out, size_t out_stride, int accumulate) {      \
        const int32_t ng = w->cols / FC_QK, ntb = (n_tokens + XQ_TB - 1) / XQ_TB, RB = rows_per_block(ng, RT);      \
        float sa[SCALE_BUF], sb[SCALE_BUF];                                                                         \
        for (int32_t rb = r0; rb < r1; rb += RB) {                                                                  \
            const int32_t re = rb + RB < r1 ? rb + RB : r1;                                                         \
            rows_scales(w, rb, re - rb, ng, sa, sb);                                                                \
            for (int32_t tb = 0; tb < ntb; tb++) {                                                                  \
                int32_t r = rb;                                                                                     \
                for (; r + RT <= re; r += RT) {                                                                     \
                    tile_q##BITS##x##RT(w, r, xq, tb, ng, n_tokens, out, out_stride, sa + (size_t)(r - rb) * ng,     \
                                        sb + (size_t)(r - rb) * ng, accumulate);                                    \
                }                                                                                                   \
                for (; r < re; r++) {                                                                               \
                    tile_q##BITS##x1(w, r, xq, tb, ng, n_tokens, out, out_stride, sa + (size_t)(r - rb) * ng,        \
                                     sb + (size_t)(r - rb) * ng, accumulate);                                       \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

GEMM_VNNI(2, 6)
GEMM_VNNI(4, 8)
GEMM_VNNI(8, 8)

/*
 * Both levels of x (kernels.h) in one pass, 4-bit weights: each broadcast weight word, masked once, meets
 * the token block of x and of its residual (4 vpdpbusd per 2 masks instead of 2), and each level keeps its
 * own float sum, added at the end: out = dot(x1) + dot(r1) exactly as two gemm_q calls give it. Tiles of
 * 3 rows (x 2 levels x 2 accumulators: 12 integer chains, 6 float ones), then single rows.
 */
#define L_DECL(i) const uint8_t * c##i = w->data + (size_t)(r + i) * w->row_bytes; __m512 f##i = _mm512_setzero_ps(), g##i = f##i;
#define L_ZERO(i) __m512i a##i = _mm512_setzero_si512(), b##i = a##i, p##i = a##i, q##i = a##i;
#define L_UNIT(i) { const __m512i v_ = T_BCAST(i, 4 * u);                                                   \
        const __m512i lo_ = _mm512_and_si512(v_, mask), hi_ = _mm512_and_si512(v_, maskh);                  \
        a##i = dpbusd(a##i, lo_, xv0); b##i = dpbusd(b##i, hi_, xv1);                                        \
        p##i = dpbusd(p##i, lo_, yv0); q##i = dpbusd(q##i, hi_, yv1); }
#define L_FLOAT(i) {                                                                                          \
        const __m512 sa_ = _mm512_set1_ps(sa[i * ng + g]), sb_ = _mm512_set1_ps(sb[i * ng + g]);             \
        f##i = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a##i, _mm512_srai_epi32(b##i, 4))), _mm512_mul_ps(dv, sa_), f##i); \
        f##i = _mm512_fmadd_ps(sv, sb_, f##i);                                                                \
        g##i = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(p##i, _mm512_srai_epi32(q##i, 4))), _mm512_mul_ps(dw, sa_), g##i); \
        g##i = _mm512_fmadd_ps(sw, sb_, g##i); }
#define L_STORE(i) {                                                                                          \
        float r1_[16] __attribute__((aligned(64))), r2_[16] __attribute__((aligned(64)));                  \
        _mm512_store_ps(r1_, f##i);                                                                           \
        _mm512_store_ps(r2_, g##i);                                                                           \
        for (int32_t l = 0; l < nv; l++) out[(size_t)(t_base + l) * out_stride + r + i] = r1_[l] + r2_[l]; }
#define ROWS3(X) X(0) X(1) X(2)

#define DEF_TILE_2L(NAME, ROWS)                                                                              \
    T_VNNI static void NAME(const struct fc_matrix * w, int32_t r, const uint8_t * xq, const uint8_t * yq, int32_t tb, \
                            int32_t ng, int32_t n_tokens, float * out, size_t out_stride, const float * sa,           \
                            const float * sb) {                                                                       \
        const __m512i mask = _mm512_set1_epi8(0x0f), maskh = _mm512_set1_epi8((char)0xf0);                      \
        ROWS(L_DECL)                                                                                          \
        const uint8_t * xb = xq + (size_t)tb * ng * XQ_BLOCK, * yb = yq + (size_t)tb * ng * XQ_BLOCK;         \
        for (int32_t g = 0; g < ng; g++, xb += XQ_BLOCK, yb += XQ_BLOCK) {                                    \
            const size_t goff = (size_t)g * 32;                                                               \
            ROWS(L_ZERO)                                                                                      \
            for (int u = 0; u < 8; u++) {                                                                     \
                const __m512i xv0 = _mm512_loadu_si512(xb + u * 128), xv1 = _mm512_loadu_si512(xb + u * 128 + 64); \
                const __m512i yv0 = _mm512_loadu_si512(yb + u * 128), yv1 = _mm512_loadu_si512(yb + u * 128 + 64); \
                ROWS(L_UNIT)                                                                                  \
            }                                                                                                 \
            const __m512 dv = _mm512_loadu_ps(xb + 1024), sv = _mm512_loadu_ps(xb + 1024 + 64);              \
            const __m512 dw = _mm512_loadu_ps(yb + 1024), sw = _mm512_loadu_ps(yb + 1024 + 64);              \
            ROWS(L_FLOAT)                                                                                     \
        }                                                                                                     \
        const int32_t t_base = tb * XQ_TB;                                                                    \
        const int32_t nv = n_tokens - t_base < XQ_TB ? n_tokens - t_base : XQ_TB;                            \
        ROWS(L_STORE)                                                                                         \
    }

DEF_TILE_2L(tile2_q4x3, ROWS3)
DEF_TILE_2L(tile2_q4x1, ROWS1)

/*
 * At most 8 tokens in a block (a routed expert's last block of a prefill chunk, or all of its tokens) fill
 * half its lanes: both levels then share one block, x in lanes 0-7 and its residual in lanes 8-15 (one
 * vpdpbusd serves both), and the store adds lane l + 8 to lane l, the same float sum as two passes. A
 * routed expert of a 512-token chunk has ~16 tokens: this halves the cost of its last block about half the
 * time (the lanes doing work: ~70% -> ~82% on uniform routing).
 */
static void gemm_q_vnni(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                        size_t out_stride, int accumulate);

/* Token block tb of x and of y (its residual), tokens 0-7 of each, into one block of `both` (ng groups). */
T_VNNI static void fold_block(uint8_t * both, const uint8_t * xq, const uint8_t * yq, int32_t tb, int32_t ng) {
    const uint8_t * x = xq + (size_t)tb * ng * XQ_BLOCK, * y = yq + (size_t)tb * ng * XQ_BLOCK;
    for (size_t v = 0; v < (size_t)ng * XQ_BLOCK; v += 64) {
        /* 128-bit lanes 0, 1 of x, then lanes 0, 1 of y: tokens 0-7 of each */
        _mm512_store_si512(both + v, _mm512_shuffle_i64x2(_mm512_loadu_si512(x + v), _mm512_loadu_si512(y + v), 0x44));
    }
}

enum { FOLD_STACK_GROUPS = 64 }; /* 72 KiB: hidden sizes up to 4096 fold on the stack */

static void gemm2_q_vnni(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, const void * yq, int32_t n_tokens,
                         float * out, size_t out_stride) {
    const int32_t ng = w->cols / FC_QK, full = n_tokens / XQ_TB, rem = n_tokens % XQ_TB;
    const int fold = rem > 0 && rem <= XQ_TB / 2;
    const int32_t ntb = full + (rem > 0 && !fold), RB = rows_per_block(ng, 3);
    FC_ASSERT(ng <= 512 && fc_dtype_bits(w->type) == 4);
    uint8_t stack[fold ? FOLD_STACK_GROUPS * XQ_BLOCK : 64] __attribute__((aligned(64)));
    uint8_t * both = NULL;
    if (fold) {
        both = ng <= FOLD_STACK_GROUPS ? stack : fc_alloc_aligned((size_t)ng * XQ_BLOCK);
        FC_ASSERT(both != NULL);
        fold_block(both, xq, yq, full, ng);
    }
    float * tail = out + (size_t)full * XQ_TB * out_stride; /* the folded block's tokens */
    float sa[SCALE_BUF], sb[SCALE_BUF];
    for (int32_t rb = r0; rb < r1; rb += RB) {
        const int32_t re = rb + RB < r1 ? rb + RB : r1;
        rows_scales(w, rb, re - rb, ng, sa, sb);
        for (int32_t tb = 0; tb < ntb; tb++) {
            int32_t r = rb;
            for (; r + 3 <= re; r += 3) {
                tile2_q4x3(w, r, xq, yq, tb, ng, n_tokens, out, out_stride, sa + (size_t)(r - rb) * ng, sb + (size_t)(r - rb) * ng);
            }
            for (; r < re; r++) {
                tile2_q4x1(w, r, xq, yq, tb, ng, n_tokens, out, out_stride, sa + (size_t)(r - rb) * ng, sb + (size_t)(r - rb) * ng);
            }
        }
        if (fold) {
            int32_t r = rb;
            for (; r + 8 <= re; r += 8) {
                tile_q4x8(w, r, both, 0, ng, rem, tail, out_stride, sa + (size_t)(r - rb) * ng, sb + (size_t)(r - rb) * ng, FOLD);
            }
            for (; r < re; r++) {
                tile_q4x1(w, r, both, 0, ng, rem, tail, out_stride, sa + (size_t)(r - rb) * ng, sb + (size_t)(r - rb) * ng, FOLD);
            }
        }
    }
    if (both && both != stack) free(both);
}

static void gemm_q_vnni(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                        size_t out_stride, int accumulate) {
    FC_ASSERT(w->cols / FC_QK <= 512);
    switch (fc_dtype_bits(w->type)) {
    case 2: gemm_q2_vnni(w, r0, r1, xq, n_tokens, out, out_stride, accumulate); break;
    case 4: gemm_q4_vnni(w, r0, r1, xq, n_tokens, out, out_stride, accumulate); break;
    default: gemm_q8_vnni(w, r0, r1, xq, n_tokens, out, out_stride, accumulate); break;
    }
}

/*
 * Decode on int8 activations (4-bit weights). A row's codes are read 64 bytes = two groups at a time as 16 dwords,
 * lanes 0-7 group g, 8-15 group g + 1; dword j's bytes hold inputs 8j + 2b (low nibble) and 8j + 2b + 1 (high).
 * So x is laid out per pair of groups as: L1, H1 (level 1's even and odd inputs of both groups, 64 bytes each,
 * in the dwords' order), L2, H2 (level 2's), then D1, D2 (16 floats: each group's d in its 8 lanes): XV_PAIR bytes.
 * One vpdpbusd per nibble and level yields each lane's 8-product integer sum; scaled per lane (a_g d_g) and
 * summed in float, the bias term as the float kernels have it (16 groups a vector).
 */
enum { XV_PAIR = 4 * 64 + 2 * 64 };

static size_t xv_bytes_vnni(int32_t cols) {
    return (size_t)((cols / FC_QK + 1) / 2) * XV_PAIR;
}

/* One level of a group as the contract has it (q, d, s = d * sum q; amax 0: all 0), q split into its even and
   odd inputs (L, H: 32 bytes each); the residual x - q * d into r when asked. */
T_VNNI static inline float xv_level(const float * xg, uint8_t * L, uint8_t * H, float * s, float * r) {
    __m512i q[4];
    float d;
    quantize_group_512(xg, q, &d, s, r);
    const __m128i eo = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m128i b0 = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q[0]), eo), b1 = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q[1]), eo);
    const __m128i b2 = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q[2]), eo), b3 = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q[3]), eo);
    _mm_storeu_si128((__m128i *)(void *)L, _mm_unpacklo_epi64(b0, b1));
    _mm_storeu_si128((__m128i *)(void *)(L + 16), _mm_unpacklo_epi64(b2, b3));
    _mm_storeu_si128((__m128i *)(void *)H, _mm_unpackhi_epi64(b0, b1));
    _mm_storeu_si128((__m128i *)(void *)(H + 16), _mm_unpackhi_epi64(b2, b3));
    return d;
}

T_VNNI static void prepare_xv_vnni(const float * x, int32_t cols, void * xv, float * xsum) {
    const int32_t ng = cols / FC_QK;
    uint8_t * out = xv;
    if (ng % 2) memset(out + (size_t)(ng / 2) * XV_PAIR, 0, XV_PAIR); /* the last pair's second group: zeros */
    for (int32_t g = 0; g < ng; g++) {
        float r[FC_QK] __attribute__((aligned(64))), s1, s2;
        uint8_t * p = out + (size_t)(g / 2) * XV_PAIR;
        const int half = (g % 2) * 32;
        const float d1 = xv_level(x + (size_t)g * FC_QK, p + half, p + 64 + half, &s1, r);
        const float d2 = xv_level(r, p + 128 + half, p + 192 + half, &s2, NULL);
        _mm256_storeu_ps((float *)(void *)(p + 256) + (g % 2) * 8, _mm256_set1_ps(d1));
        _mm256_storeu_ps((float *)(void *)(p + 320) + (g % 2) * 8, _mm256_set1_ps(d2));
        xsum[g] = s1 + s2;
    }
}

T_VNNI static float dot_xv_q4_vnni(const uint8_t * codes, const uint16_t * sc, const uint16_t * bi, const void * xv, const float * xsum,
                                   int32_t n_groups) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
    const __m512i half = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const uint8_t * xp = xv;
    __m512 f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps();
    for (int32_t g0 = 0; g0 < n_groups; g0 += 16) {
        const int32_t n = n_groups - g0 < 16 ? n_groups - g0 : 16;
        for (int32_t p_ = 0; p_ < n * 32; p_ += 64) _mm_prefetch((const char *)codes + (size_t)g0 * 32 + DOT_PF + p_, _MM_HINT_T0);
        _mm_prefetch((const char *)(sc + g0 + DOT_PF / 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(bi + g0 + DOT_PF / 32), _MM_HINT_T0);
        const __m512 s16 = load_bf16x16(sc + g0, n);
        for (int32_t u = 0; u < n; u += 2) {
            const uint8_t * c = codes + (size_t)(g0 + u) * 32;
            const uint8_t * x = xp + (size_t)((g0 + u) / 2) * XV_PAIR;
            /* the last group alone: only its 32 bytes (the row may end there) */
            const __m512i v = u + 1 < n ? _mm512_loadu_si512(c) : _mm512_maskz_loadu_epi8((__mmask64)0xffffffffu, c);
            const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            const __m512i c1 = dpbusd(dpbusd(zero, lo, _mm512_loadu_si512(x)), hi, _mm512_loadu_si512(x + 64));
            const __m512i c2 = dpbusd(dpbusd(zero, lo, _mm512_loadu_si512(x + 128)), hi, _mm512_loadu_si512(x + 192));
            const __m512 a = _mm512_permutexvar_ps(_mm512_add_epi32(half, _mm512_set1_epi32(u)), s16);
            f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c1), _mm512_mul_ps(a, _mm512_loadu_ps(x + 256)), f1);
            f2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c2), _mm512_mul_ps(a, _mm512_loadu_ps(x + 320)), f2);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(f1, f2)) + bias_dot(bi, xsum, n_groups);
}

/* dot_xv_q4_vnni over rows r0..r1 of a matrix, two rows at a time: the pair shares its loads of x (in L1) and
   the loop's bookkeeping, each row keeps its own sums in dot_xv's order, so every row's number is dot_xv's bit
   for bit (tests/test-kernels.c). Decode's one-token products (the lm_head most of all) are this. */
#ifndef XV_ROWS_PF
#define XV_ROWS_PF 8192
#endif
/* one row's step of the pair (dot_xv's: both levels of two groups), on the x loaded for the pair */
#define XV_ROW_STEP(codes_, s16_, f1_, f2_)                                                                          \
    do {                                                                                                             \
        const uint8_t * c_ = (codes_) + (size_t)(g0 + u) * 32;                                                       \
        const __m512i v_ = u + 1 < n ? _mm512_loadu_si512(c_) : _mm512_maskz_loadu_epi8((__mmask64)0xffffffffu, c_); \
        const __m512i lo_ = _mm512_and_si512(v_, m4), hi_ = _mm512_and_si512(_mm512_srli_epi16(v_, 4), m4);         \
        const __m512i c1_ = dpbusd(dpbusd(zero, lo_, x0), hi_, x1), c2_ = dpbusd(dpbusd(zero, lo_, x2), hi_, x3);    \
        const __m512 a_ = _mm512_permutexvar_ps(idx, (s16_));                                                        \
        (f1_) = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c1_), _mm512_mul_ps(a_, d1), (f1_));                              \
        (f2_) = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c2_), _mm512_mul_ps(a_, d2), (f2_));                              \
    } while (0)
T_VNNI static void dot_xv_rows_q4_vnni(const struct fc_matrix * w, int64_t r0, int64_t r1, const void * xv, const float * xsum,
                                       float * out) {
    const int32_t ng = w->cols / FC_QK;
    const __m512i m4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
    const __m512i half = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const uint8_t * xp = xv;
    int64_t r = r0;
    for (; r + 1 < r1; r += 2) {
        const uint8_t * ca = w->data + (size_t)r * w->row_bytes, * cb = ca + w->row_bytes;
        const uint16_t * sa = w->scales + (size_t)r * ng, * sb = sa + ng;
        const uint16_t * ba = w->biases + (size_t)r * ng, * bb = ba + ng;
        __m512 f1a = _mm512_setzero_ps(), f2a = f1a, f1b = f1a, f2b = f1a;
        for (int32_t g0 = 0; g0 < ng; g0 += 16) {
            const int32_t n = ng - g0 < 16 ? ng - g0 : 16;
            /* both rows' codes are one run of memory (consecutive rows): prefetch XV_ROWS_PF bytes on */
            for (int32_t p_ = 0; p_ < n * 32; p_ += 64) {
                _mm_prefetch((const char *)ca + (size_t)g0 * 32 + XV_ROWS_PF + p_, _MM_HINT_T0);
                _mm_prefetch((const char *)cb + (size_t)g0 * 32 + XV_ROWS_PF + p_, _MM_HINT_T0);
            }
            _mm_prefetch((const char *)(sa + g0 + XV_ROWS_PF / 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(ba + g0 + XV_ROWS_PF / 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(sb + g0 + XV_ROWS_PF / 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(bb + g0 + XV_ROWS_PF / 32), _MM_HINT_T0);
            const __m512 s16a = load_bf16x16(sa + g0, n), s16b = load_bf16x16(sb + g0, n);
            for (int32_t u = 0; u < n; u += 2) {
                const uint8_t * x = xp + (size_t)((g0 + u) / 2) * XV_PAIR;
                const __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 64);
                const __m512i x2 = _mm512_loadu_si512(x + 128), x3 = _mm512_loadu_si512(x + 192);
                const __m512 d1 = _mm512_loadu_ps(x + 256), d2 = _mm512_loadu_ps(x + 320);
                const __m512i idx = _mm512_add_epi32(half, _mm512_set1_epi32(u));
                XV_ROW_STEP(ca, s16a, f1a, f2a);
                XV_ROW_STEP(cb, s16b, f1b, f2b);
            }
        }
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(f1a, f2a)) + bias_dot(ba, xsum, ng);
        out[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(f1b, f2b)) + bias_dot(bb, xsum, ng);
    }
#undef XV_ROW_STEP
    if (r < r1) {
        out[r] = dot_xv_q4_vnni(w->data + (size_t)r * w->row_bytes, w->scales + (size_t)r * ng, w->biases + (size_t)r * ng, xv, xsum, ng);
    }
}

/* GMAC/s one core reaches with independent vpdpbusd (12 chains) for ~ms: the compute ceiling's input. */
T_VNNI double fc_cpu_int8_peak_gmacs(double ms) {
    __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512i x = _mm512_set1_epi32(0x01020304), y = _mm512_set1_epi32(0x05060708);
    double best = 0.0, t_end = fc_time_ms() + ms;
    while (fc_time_ms() < t_end) {
        const double t0 = fc_time_ms();
        for (int i = 0; i < 20000; i++) {
            a0 = dpbusd(a0, x, y); a1 = dpbusd(a1, x, y); a2 = dpbusd(a2, x, y); a3 = dpbusd(a3, x, y);
            a4 = dpbusd(a4, x, y); a5 = dpbusd(a5, x, y); a6 = dpbusd(a6, x, y); a7 = dpbusd(a7, x, y);
            a8 = dpbusd(a8, x, y); a9 = dpbusd(a9, x, y); a10 = dpbusd(a10, x, y); a11 = dpbusd(a11, x, y);
        }
        const double dt = fc_time_ms() - t0, g = 20000.0 * 12 * 64 / (dt / 1e3) / 1e9;
        if (g > best) best = g;
    }
    volatile int sink = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                        _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)),
                                         _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)))));
    (void)sink;
    return best;
}

/* 2-bit: the shared block for up to 8 tokens, else the two passes */
static void gemm2_q2_vnni(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, const void * yq, int32_t n_tokens,
                          float * out, size_t out_stride) {
    if (n_tokens <= XQ_TB / 2) {
        const int32_t ng = w->cols / FC_QK;
        uint8_t stack[FOLD_STACK_GROUPS * XQ_BLOCK] __attribute__((aligned(64)));
        uint8_t * both = ng <= FOLD_STACK_GROUPS ? stack : fc_alloc_aligned((size_t)ng * XQ_BLOCK);
        FC_ASSERT(both != NULL);
        fold_block(both, xq, yq, 0, ng);
        gemm_q_vnni(w, r0, r1, both, n_tokens, out, out_stride, FOLD);
        if (both != stack) free(both);
        return;
    }
    gemm_q_vnni(w, r0, r1, xq, n_tokens, out, out_stride, 0);
    gemm_q_vnni(w, r0, r1, yq, n_tokens, out, out_stride, 1);
}

const struct fc_cpu_kernels fc_cpu_kernels_avx512vnni = {
    .name = "avx512vnni",
    .dot_q = { dot_q2_avx512, dot_q4_avx512, dot_q8_avx512 },
    .dequant_q = { dequant_q2_avx512, dequant_q4_avx512, dequant_q8_avx512 },
    .dot4 = dot4_avx512,
    .dot4x4 = dot4x4_avx512,
    .xq_bytes = xq_bytes_vnni,
    .quantize_x = quantize_x_vnni,
    .xq_tokens = XQ_TB,
    .gemm_q = gemm_q_vnni,
    .gemm2_q = { gemm2_q2_vnni, gemm2_q_vnni, NULL },
    .xv_bytes = xv_bytes_vnni,
    .prepare_xv = prepare_xv_vnni,
    .dot_xv = { NULL, dot_xv_q4_vnni, NULL },
    .dot_xv_rows = { NULL, dot_xv_rows_q4_vnni, NULL },
    .delta_rule = delta_rule_avx512,
};

#endif
