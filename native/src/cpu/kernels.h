/*
 * CPU kernels for MLX affine-quantized weights (groups of 64). The fast kernels take x "prepared":
 * permuted within each group so that the codes of one bit position in consecutive bytes line up with
 * consecutive floats (element k*per+j of a group -> position j*nbytes+k, per = 8/bits codes per byte,
 * nbytes = 8*bits bytes per group), plus the sum of x over each group (the bias term).
 *
 * The integer path (several tokens at once: prefill, experts shared by several tokens of a batch).
 * Activations are quantized to int8 per token and per group of 64 inputs (the weights' group):
 *     amax = max |x_i|,  q_i = nearbyint(x_i * (127 / amax)) in [-127, 127],  d = amax / 127,
 *     s = d * sum_i q_i                 (amax == 0: q = 0, d = 0, s = 0)
 * and a row with codes c, scale a and bias b per group (w = c * a + b) is dotted as, over the groups
 * g = 0, 1, ... in order, starting from acc = 0:
 *     acc = fmaf((float)C_g, a_g * d_g, acc);  acc = fmaf(s_g, b_g, acc);    C_g = sum_i c_i q_i (int32)
 * i.e. the dot of the row with the quantized x (q * d), the integer part exact. The backend uses two
 * levels: x is quantized, then its residual r_i = x_i - (float)q_i * d (a product then a difference,
 * never fused), and the two products are added (out = dot(x1) + dot(r1)): about 16-bit precision of
 * the activations for twice the integer work (one level moves the fixture's logits by up to 1.8). Every level
 * computes these same q, d, s, C and the same float steps, so the levels agree bit for bit; only the
 * memory layout of the quantized activations is a level's own (it is made by that level's quantize_x
 * and read by its gemm_q, never by callers). The bias uses s = d * sum q rather than the float sum of
 * x: then the error is sum_i w_i (x_i - q_i d), which cancels better than sum_i (w_i - b)(...).
 */
#ifndef FC_CPU_KERNELS_H
#define FC_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

#define FC_QK 64 /* the group size the fast kernels handle; others use the reference path */

struct fc_cpu_kernels {
    const char * name;
    /* index by bits: [0] 2-bit, [1] 4-bit, [2] 8-bit. Returns sum over the row of w * x. */
    float (*dot_q[3])(const uint8_t * codes, const uint16_t * scales, const uint16_t * biases,
                      const float * xp, const float * xsum, int32_t n_groups);
    /* Dequantize one row into out[n_groups * 64], in the permuted order of prepared x. */
    void (*dequant_q[3])(const uint8_t * codes, const uint16_t * scales, const uint16_t * biases,
                         int32_t n_groups, float * out);
    /* out[r] = dot(w + r * w_stride, x, n) for r < 4 (n a multiple of 16). */
    void (*dot4)(const float * w, size_t w_stride, const float * x, int32_t n, float * out);
    /* out[t * 4 + r] = dot(w + r * w_stride, x + t * x_stride, n) for r, t < 4: each weight load serves 4 tokens. */
    void (*dot4x4)(const float * w, size_t w_stride, const float * x, size_t x_stride, int32_t n, float * out);

    /* ---- integer path (optional: NULL where a level has none; see the top of this file) ---- */
    /* Bytes quantize_x writes for n_tokens rows of cols inputs (cols % 64 == 0). */
    size_t (*xq_bytes)(int32_t n_tokens, int32_t cols);
    /* Quantize tokens [t0, t1) of x (row t at x + t * cols) into xq, laid out for bits-wide weights; the
       layout allows quantizing disjoint token ranges in parallel when t0, t1 are multiples of xq_tokens.
       residual (NULL or like x) receives x - (float)q * d of those tokens. */
    void (*quantize_x)(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, void * xq,
                       float * residual);
    int32_t xq_tokens; /* token block of the layout (a multiple of it splits quantize_x between threads) */
    /* out[t * out_stride + r] = row r of w dotted with token t of xq (added to what is there when
       accumulate), for r in [r0, r1), t < n_tokens. */
    void (*gemm_q)(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                   size_t out_stride, int accumulate);
};

/* 0 = portable C, 1 = AVX2+FMA, 2 = AVX-512, 3 = AVX-512 + VNNI (integer path). NULL when this build or CPU lacks the level. */
#define FC_CPU_LEVEL_MAX 3
const struct fc_cpu_kernels * fc_cpu_kernels_get(int level);
/* The best level this CPU supports. */
const struct fc_cpu_kernels * fc_cpu_kernels_best(void);

static inline int fc_bits_index(int bits) {
    return bits == 2 ? 0 : bits == 4 ? 1 : 2;
}

/* Prepare x[cols] for bits-wide codes: xp[cols] permuted per group, xsum[cols / 64]. cols % 64 == 0. */
void fc_cpu_prepare_x(int bits, const float * x, int32_t cols, float * xp, float * xsum);

/* Portable kernels (also the building blocks of the others' tails). */
extern const struct fc_cpu_kernels fc_cpu_kernels_generic;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_KERNELS 1
extern const struct fc_cpu_kernels fc_cpu_kernels_avx2;
extern const struct fc_cpu_kernels fc_cpu_kernels_avx512;
extern const struct fc_cpu_kernels fc_cpu_kernels_avx512vnni;
#endif

#ifdef FC_HAVE_X86_KERNELS
/* Best single-core GMAC/s of independent vpdpbusd over ~ms (call only where level 3 exists): the compute ceiling. */
double fc_cpu_int8_peak_gmacs(double ms);
#endif

/* The portable integer path (the reference every level's is checked against, bit for bit): natural
   layout, per token [q: cols int8][d: cols/64 floats][s: cols/64 floats]. */
size_t fc_cpu_xq_bytes_generic(int32_t n_tokens, int32_t cols);
void fc_cpu_quantize_x_generic(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, void * xq,
                               float * residual);
void fc_cpu_gemm_q_generic(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                           size_t out_stride, int accumulate);
/* One group's int8 quantization, shared by every level: q[64], returns d; *s = d * sum q. */
float fc_cpu_quantize_group(const float * x, int8_t * q, float * s);

#endif
