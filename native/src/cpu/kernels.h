/*
 * CPU kernels for MLX affine-quantized weights (groups of 64). The fast kernels take x "prepared":
 * permuted within each group so that the codes of one bit position in consecutive bytes line up with
 * consecutive floats (element k*per+j of a group -> position j*nbytes+k, per = 8/bits codes per byte,
 * nbytes = 8*bits bytes per group), plus the sum of x over each group (the bias term).
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
};

/* 0 = portable C, 1 = AVX2+FMA, 2 = AVX-512. NULL when this build or CPU lacks the level. */
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
#endif

#endif
