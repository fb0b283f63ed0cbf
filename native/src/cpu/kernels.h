/*
 * CPU kernels for MLX affine-quantized weights (groups of 64). The fast kernels take x "prepared":
 * permuted within each group so that the codes of one bit position in consecutive bytes line up with
 * consecutive floats (element k*per+j of a group -> position j*nbytes+k, per = 8/bits codes per byte,
 * nbytes = 8*bits bytes per group), plus the sum of x over each group (the bias term).
 *
 * The integer path gemm_q (x86 avx512vnni; several tokens at once: prefill, experts shared by several
 * tokens of a batch). The arm64 int8 levels use another scheme, matmul_qx, described at fc_cpu_prepare_xq.
 * Activations are quantized to int8 per token and per group of 64 inputs (the weights' group):
 *     amax = max |x_i|,  q_i = nearbyint(x_i * (127 / amax)) in [-127, 127],  d = amax / 127,
 *     s = d * sum_i q_i                 (amax == 0: q = 0, d = 0, s = 0)
 * and a row with codes c, scale a and bias b per group (w = c * a + b) is dotted as, over the groups
 * g = 0, 1, ... in order, starting from acc = 0:
 *     acc = fmaf((float)C_g, a_g * d_g, acc);  acc = fmaf(s_g, b_g, acc);    C_g = sum_i c_i q_i (int32)
 * i.e. the dot of the row with the quantized x (q * d), the integer part exact. The backend uses two
 * levels: x is quantized, then its residual r_i = x_i - (float)q_i * d (a product then a difference,
 * never fused), and the two products are added (out = dot(x1) + dot(r1)): about 16-bit precision of
 * the activations for twice the integer work (one level moves the fixture's logits by up to 1.8). Every level with
 * gemm_q computes these same q, d, s, C and the same float steps, so the levels agree bit for bit; only the
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
    /*
     * Int8-activation paths (each optional, NULL where a level has none). Two schemes share this table;
     * a level has at most one of them:
     *
     * matmul_qx (the arm64 dot-product levels and generic-int8; when set, the backend uses it for every
     * quantized product, one token or many): x quantized per group by fc_cpu_prepare_xq (two int8 planes,
     * below). For r < n_rows, t < n_tokens: out[t * out_stride + r] = sum over the row r's groups of w * x.
     * Row r's codes at codes + r * row_bytes, its scales/biases at scales/biases + r * n_groups; token t's
     * arrays at xq + t * n_groups * FC_QX_BYTES and xd/xsum/xqs + t * n_groups.
     */
    void (*matmul_qx[3])(const uint8_t * codes, size_t row_bytes, const uint16_t * scales, const uint16_t * biases,
                         int32_t n_rows, int32_t n_groups, const int8_t * xq, const float * xd, const float * xsum,
                         const float * xqs, int32_t n_tokens, float * out, size_t out_stride);

    /* gemm_q, the integer path of the top of this file (x86 avx512vnni; the backend uses it for 2- and
       4-bit products of two tokens or more; one token's 4-bit products take dot_xv below). */
    /* Bytes quantize_x writes for n_tokens rows of cols inputs (cols % 64 == 0). */
    size_t (*xq_bytes)(int32_t n_tokens, int32_t cols);
    /* Quantize groups [g0, g1) of tokens [t0, t1) of x (row t at x + t * cols) into xq, laid out for bits-wide
       weights; the layout allows quantizing disjoint token ranges in parallel when t0, t1 are multiples of
       xq_tokens, and disjoint group ranges of the same tokens in parallel. residual (NULL or like x) receives
       x - (float)q * d of those inputs. */
    void (*quantize_x)(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, int32_t g0, int32_t g1,
                       void * xq, float * residual);
    int32_t xq_tokens; /* token block of the layout (a multiple of it splits quantize_x between threads) */
    /* out[t * out_stride + r] = row r of w dotted with token t of xq (added to what is there when
       accumulate), for r in [r0, r1), t < n_tokens. */
    void (*gemm_q)(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                   size_t out_stride, int accumulate);
    /* (optional, by bits as dot_q) both levels at once, the same numbers bit for bit as gemm_q(xq) then
       gemm_q(yq, accumulate): out[t * out_stride + r] = row r . token t of xq + row r . token t of yq. */
    void (*gemm2_q[3])(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, const void * yq, int32_t n_tokens,
                       float * out, size_t out_stride);

    /*
     * (optional, by bits as dot_q; x86 avx512vnni, 4-bit) one token's products on int8 activations (decode): x
     * quantized per group of 64 in the two levels of the integer path (q1, d1 of x, then q2, d2 of its residual,
     * the contract above) by prepare_xv into xv_bytes(cols) bytes and xsum[cols / 64] = s1 + s2; then
     *     row . x = sum over groups of a_g (d1_g C1_g + d2_g C2_g) + b_g xsum_g      (C = the integer sums)
     * with the float sums in the kernel's own order: not the float kernels' numbers bit for bit, within the
     * two-level rounding bound of the reference (tests/test-kernels.c).
     */
    size_t (*xv_bytes)(int32_t cols);
    void (*prepare_xv)(const float * x, int32_t cols, void * xv, float * xsum);
    float (*dot_xv[3])(const uint8_t * codes, const uint16_t * scales, const uint16_t * biases, const void * xv, const float * xsum,
                       int32_t n_groups);
    /* (optional, where dot_xv is) rows r0..r1 of w on one prepared x: out[r] = dot_xv of row r, bit for bit,
       several rows at a time */
    void (*dot_xv_rows[3])(const struct fc_matrix * w, int64_t r0, int64_t r1, const void * xv, const float * xsum, float * out);

    /* The gated delta rule of one linear-attention head over n tokens (fc_cpu_delta_rule_generic below);
       NULL: the generic one. */
    void (*delta_rule)(float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k, size_t qk_stride,
                       const float * v, size_t v_stride, const float * beta, const float * decay, float * o, size_t o_stride);
};

/*
 * Levels: 0 = portable C everywhere. x86-64: 1 = AVX2+FMA, 2 = AVX-512, 3 = AVX-512 + VNNI (gemm_q for
 * prefill). aarch64: 1 = NEON float FMA, 2 = NEON dot product (sdot on int8 activations, matmul_qx),
 * 3 = 2 plus i8mm (smmla for several tokens). NULL when this build or CPU lacks the level.
 */
#define FC_CPU_MAX_LEVEL 3
const struct fc_cpu_kernels * fc_cpu_kernels_get(int level);
/* The default: the best level without matmul_qx (the arm64 int8 scheme; opt-in, native/PLATFORM.md). */
const struct fc_cpu_kernels * fc_cpu_kernels_best(void);
/* A level by number ("2") or a kernel set by name ("neon-dot", "generic-int8"); NULL if this CPU lacks it. */
const struct fc_cpu_kernels * fc_cpu_kernels_by_name(const char * name);
/* "0 generic, 1 neon, ..., generic-int8": what this CPU can run, for messages. */
const char * fc_cpu_kernels_list(void);

static inline int fc_bits_index(int bits) {
    return bits == 2 ? 0 : bits == 4 ? 1 : 2;
}

/* Prepare x[cols] for bits-wide codes: xp[cols] permuted per group, xsum[cols / 64]. cols % 64 == 0. */
void fc_cpu_prepare_x(int bits, const float * x, int32_t cols, float * xp, float * xsum);

/*
 * Int8 activations for matmul_qx, two int8 planes per group of 64 (in the prepared, permuted order):
 * d = max|x| / 127, q1 = round(x / d), q2 = round((x / d - q1) * 254), so x ~ d * (q1 + q2 / 254) to
 * within d / 508 (one plane alone, d / 2, moved the fixture's logits by up to 4; two, by 1e-2). A group
 * takes FC_QX_BYTES bytes of xq: q1 then q2. xsum = the exact float sum of x (bias term), xqs = the sum of
 * the approximation (the 8-bit kernels compute on codes - 128 and add 128 * scale * xqs back).
 */
#define FC_QX_BYTES 128
void fc_cpu_prepare_xq(int bits, const float * x, int32_t cols, int8_t * xq, float * xd, float * xsum, float * xqs);
/* Plain-C matmul_qx (same integer sums as the SIMD ones; the tests' reference for them). */
void fc_cpu_matmul_qx_generic(int bits, const uint8_t * codes, size_t row_bytes, const uint16_t * scales, const uint16_t * biases,
                              int32_t n_rows, int32_t n_groups, const int8_t * xq, const float * xd, const float * xsum,
                              const float * xqs, int32_t n_tokens, float * out, size_t out_stride);

/*
 * How far a product is from fc_matmul_reference's, in the measure its tolerance is stated in: float
 * kernels max |err| / max |ref|; int8-activation kernels (k->matmul_qx, quantized w) the largest
 * |err| / (|w_row| * |x_token|), since rounding x costs an error proportional to the product's magnitude,
 * not to its (possibly cancelling) value. k may be NULL (float).
 */
double fc_cpu_product_error(const struct fc_cpu_kernels * k, const struct fc_matrix * w, const float * x, const float * got,
                            const float * ref, int32_t n_tokens);
/* The tolerance held for that measure (1e-4 for both; see native/PLATFORM.md). */
double fc_cpu_product_tolerance(const struct fc_cpu_kernels * k, const struct fc_matrix * w);

/* Portable kernels (also the building blocks of the others' tails). */
extern const struct fc_cpu_kernels fc_cpu_kernels_generic;
/* Portable float kernels plus the plain-C matmul_qx: the int8-activation numbers on any CPU (the
   reference the SIMD int8 levels are checked against; not a numbered level). */
extern const struct fc_cpu_kernels fc_cpu_kernels_generic_int8;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_KERNELS 1
extern const struct fc_cpu_kernels fc_cpu_kernels_avx2;
extern const struct fc_cpu_kernels fc_cpu_kernels_avx512;
extern const struct fc_cpu_kernels fc_cpu_kernels_avx512vnni;
#endif
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_ARM_KERNELS 1
extern const struct fc_cpu_kernels fc_cpu_kernels_neon;
extern const struct fc_cpu_kernels fc_cpu_kernels_neon_dot;
extern const struct fc_cpu_kernels fc_cpu_kernels_neon_i8mm;
#endif

#ifdef FC_HAVE_X86_KERNELS
/* Best single-core GMAC/s of independent vpdpbusd over ~ms (call only where level 3 exists): the compute ceiling. */
double fc_cpu_int8_peak_gmacs(double ms);
#endif

/* The portable integer path (the reference every level's is checked against, bit for bit): natural
   layout, per token [q: cols int8][d: cols/64 floats][s: cols/64 floats]. */
size_t fc_cpu_xq_bytes_generic(int32_t n_tokens, int32_t cols);
void fc_cpu_quantize_x_generic(int bits, const float * x, int32_t n_tokens, int32_t cols, int32_t t0, int32_t t1, int32_t g0, int32_t g1, void * xq,
                               float * residual);
void fc_cpu_gemm_q_generic(const struct fc_matrix * w, int32_t r0, int32_t r1, const void * xq, int32_t n_tokens, float * out,
                           size_t out_stride, int accumulate);
/* One group's int8 quantization, shared by every level: q[64], returns d; *s = d * sum q. */
float fc_cpu_quantize_group(const float * x, int8_t * q, float * s);

/*
 * The gated delta rule (GatedDeltaNet's recurrence) of one head, tokens t = 0 .. n-1 in order, on its state
 * S [dk][dv] (row i = key dimension i), updated in place:
 *     kv = S^T k_t;  delta = beta_t (v_t - decay_t kv);  S = decay_t S + k_t delta^T;  o_t = S^T q_t
 * with q_t, k_t at q, k + t * qk_stride (dk floats), v_t at v + t * v_stride and o_t at o + t * o_stride (dv
 * floats). Every column j of S evolves on its own, so the kernels work on column blocks that stay in L1
 * for all n tokens, and fuse the two passes over S a token needs into one (S^T k_{t+1} is summed while
 * token t writes S). Only the order of the float sums differs between levels (tests: relative 1e-5).
 */
void fc_cpu_delta_rule_generic(float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k, size_t qk_stride,
                               const float * v, size_t v_stride, const float * beta, const float * decay, float * o, size_t o_stride);
/* The delta rule of kernel set k (its own, else the generic one). */
void fc_cpu_delta_rule(const struct fc_cpu_kernels * k, float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k_,
                       size_t qk_stride, const float * v, size_t v_stride, const float * beta, const float * decay, float * o,
                       size_t o_stride);

#endif
