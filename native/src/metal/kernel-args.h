/*
 * Kernel argument structs and launch constants, shared by the host code (C) and the kernels (MSL, or
 * C++ through msl-shim.h in the emulator). Each struct is passed with set_bytes at buffer index 0 of
 * its kernel; the other buffer indices are listed with each kernel in BACKENDS.md. Plain 32-bit fields
 * only, so C, MSL and C++ agree on the layout.
 */
#ifndef FC_KERNEL_ARGS_H
#define FC_KERNEL_ARGS_H

#if !defined(__METAL_VERSION__)
#include <stdint.h>
#endif

#define FC_SIMD_WIDTH 32           /* threads per simdgroup on Apple GPUs (and in the emulator) */
#define FC_QGROUP 64               /* MLX group size the quantized kernels handle */
#define FC_MM_ROWS 4               /* matrix rows per simdgroup (matvec and matmul) */
#define FC_MM_SIMDGROUPS 2         /* simdgroups per threadgroup: one threadgroup covers 8 rows */
#define FC_MM_TOKENS 8             /* tokens per threadgroup of the batched matmul (each weight read serves 8) */
#define FC_ATTN_MAX_HEAD_DIM 256   /* attention head_dim limit (8 dims per lane) */
#define FC_ATTN_SIMDGROUPS 4       /* simdgroups per attention threadgroup (positions split between them) */
#define FC_ROUTER_MAX_EXPERTS 4096 /* probabilities kept in threadgroup memory (16 KiB) */
#define FC_ROUTER_MAX_K 64
#define FC_TG_MAX 1024             /* threads per threadgroup, at most */

/* fc_matvec_* (one token) and fc_matmul_* (n_tokens, FC_MM_TOKENS per threadgroup).
   buffers: 1 codes/values, 2 scales (bf16), 3 biases (bf16), 4 x [n_tokens][x_stride], 5 out [n_tokens][out_stride].
   grid: (ceil(rows / 8), ceil(n_tokens / tokens per threadgroup)), 64 threads. */
struct fc_matmul_args {
    int32_t rows;
    int32_t cols;       /* quantized: a multiple of 64 */
    int32_t n_tokens;
    int32_t row_bytes;  /* bytes of one row of codes (quantized) or values (float types) */
    int32_t x_stride;   /* floats between tokens of x */
    int32_t out_stride; /* floats between tokens of out */
};

/* fc_rms_norm: out = x * rsqrt(mean(x^2) + eps) * w, one threadgroup per row (in place allowed).
   buffers: 1 x, 2 w [n], 3 out. grid: (n_rows). */
struct fc_rms_norm_args {
    int32_t n;
    int32_t x_stride;   /* floats between rows of x */
    int32_t out_stride;
    float eps;
};

/* fc_rope: rotate-half RoPE on the first `rot` dims of each head, in place, position pos0 + token.
   buffers: 1 x, 2 inv_freq [rot / 2]. grid: threads n_tokens * n_heads * rot / 2 (any threadgroup size). */
struct fc_rope_args {
    int32_t n_tokens;
    int32_t n_heads;
    int32_t rot;
    int32_t head_stride; /* floats between heads of one token */
    int32_t tok_stride;  /* floats between tokens */
    int32_t pos0;
};

/* fc_kv_store_f32 / _f16: K and V rows of n_tokens into the cache at positions pos0.. (converted to the cache type).
   buffers: 1 k [n_tokens][src_stride], 2 v, 3 k_cache [context][kv_dim], 4 v_cache. grid: threads n_tokens * kv_dim. */
struct fc_kv_store_args {
    int32_t n_tokens;
    int32_t kv_dim;     /* n_kv_heads * head_dim */
    int32_t src_stride;
    int32_t pos0;
};

/* fc_kv_store_q8: K and V rows into an 8-bit cache, one threadgroup of 32 threads per (token, kv head) row:
   the row is [float scale = max|x| / 127][head_dim signed bytes round(x * 127 / max|x|)], as the CPU's cache.
   buffers: 1 k [n_tokens][src_stride], 2 v, 3 k_cache, 4 v_cache (bytes). grid: (n_kv, n_tokens), 32 threads. */
struct fc_kv_store_q8_args {
    int32_t n_tokens;
    int32_t n_kv;
    int32_t head_dim;   /* a multiple of 4 (the scale stays aligned) */
    int32_t src_stride;
    int32_t pos0;
};

/* fc_attn_f32 / _f16 / _bf16 / _q8: causal grouped-query attention of token t (position pos0 + t) over cache rows [0, pos],
   times sigmoid(gate). buffers: 1 q (with gates), 2 k_cache, 3 v_cache, 4 out.
   grid: (n_heads, n_tokens), FC_ATTN_SIMDGROUPS * 32 threads. */
struct fc_attn_args {
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;      /* <= FC_ATTN_MAX_HEAD_DIM */
    int32_t n_tokens;
    int32_t pos0;
    int32_t q_tok_stride;  /* floats between tokens of q */
    int32_t q_head_stride; /* floats between heads of q */
    int32_t gate_offset;   /* floats from a head's query to its gate */
    int32_t out_tok_stride;
    float scale;           /* 1 / sqrt(head_dim) */
};

/* fc_conv1d_silu: causal depthwise conv over tokens in order with a rolling state of the K-1 previous inputs,
   then SiLU, in place. buffers: 1 x [n_tokens][x_stride], 2 w [channels][K], 3 state [K-1][channels].
   grid: threads `channels`. */
struct fc_conv1d_args {
    int32_t channels;
    int32_t taps;       /* the kernel size K */
    int32_t n_tokens;
    int32_t x_stride;
};

/* fc_l2norm_heads: x * rsqrt(sum x^2 + eps) * (head < n_scaled ? scale : 1) for head vectors of `dim` floats at
   h * dim of each token row, in place. buffers: 1 x. grid: (n_heads, n_tokens), 32 threads. */
struct fc_l2norm_args {
    int32_t n_tokens;
    int32_t n_heads;
    int32_t dim;
    int32_t tok_stride;
    int32_t n_scaled;
    float scale;
    float eps;
};

/* fc_delta_step: the gated delta rule over n_tokens in order for one value head per threadgroup, then the
   gated RMSNorm (rmsnorm(o) * norm_w * silu(z)). buffers: 1 qkv (conv'd, normalised) [n_tokens][qkv_stride],
   2 z [n_tokens][z_stride], 3 b [n_tokens][nv], 4 a [n_tokens][nv], 5 a_neg [nv], 6 dt_bias [nv], 7 norm_w [dv],
   8 state [nv][dk][dv], 9 out [n_tokens][out_stride]. grid: (nv), dv rounded up to 32 threads. */
struct fc_delta_args {
    int32_t n_tokens;
    int32_t nk;
    int32_t nv;
    int32_t dk;
    int32_t dv;
    int32_t qkv_stride;
    int32_t z_stride;
    int32_t out_stride;
    float eps;
};

/* fc_router_topk: softmax over the experts (probabilities written back over the logits), the top k by
   probability (ties: lower id), renormalised when norm_topk. buffers: 1 logits [n_tokens][n_experts],
   2 ids int [n_tokens][k], 3 weights [n_tokens][k]. grid: (n_tokens), up to 1024 threads. */
struct fc_router_args {
    int32_t n_experts; /* <= FC_ROUTER_MAX_EXPERTS */
    int32_t k;         /* <= FC_ROUTER_MAX_K */
    int32_t norm_topk;
};

/* fc_swiglu: gate[i] = silu(gate[i]) * up[i]. buffers: 1 gate, 2 up. grid: threads n. */
struct fc_swiglu_args {
    int32_t n;
};

/* fc_moe_combine: y = (has_shared ? sigmoid(sh_logit[t]) * shared[t] : 0) + sum_j w[t][j] * experts[t * k + j];
   x[t] = y, or x[t] += y when add_residual. buffers: 1 x [n_tokens][hidden], 2 shared [n_tokens][hidden],
   3 sh_logit [n_tokens], 4 experts [n_tokens * k][hidden], 5 weights [n_tokens][k]. grid: threads n_tokens * hidden. */
struct fc_combine_args {
    int32_t hidden;
    int32_t k;
    int32_t n_tokens;
    int32_t has_shared;
    int32_t add_residual;
};

/* fc_embed: rows of a token-embedding matrix, dequantized, for n_tokens ids (type: enum fc_dtype's value,
   F32 0, F16 1, BF16 2, Q2 3, Q4 4, Q8 5). buffers: 1 data, 2 scales, 3 biases, 4 ids int [n_tokens],
   5 out [n_tokens][cols]. grid: threads n_tokens * cols. */
struct fc_embed_args {
    int32_t type;
    int32_t cols;
    int32_t row_bytes;
    int32_t group_size;
    int32_t n_tokens;
};

/* fc_copy_rows: dst[dst_idx ? dst_idx[i] : i] = src[src_idx ? src_idx[i] : i] for n_rows rows of n_cols floats
   (gathering the tokens routed to one expert, scattering its outputs to their slots). buffers: 1 src, 2 dst,
   3 src_idx int, 4 dst_idx int (bind anything when unused). grid: threads n_rows * n_cols. */
struct fc_copy_rows_args {
    int32_t n_rows;
    int32_t n_cols;
    int32_t src_stride;
    int32_t dst_stride;
    int32_t use_src_idx;
    int32_t use_dst_idx;
};

/* fc_add: x[i] += y[i]. buffers: 1 x, 2 y. grid: threads n. */
struct fc_add_args {
    int32_t n;
};

/* fc_argmax: index of the largest value of each row (ties: lower index; NaN never wins).
   buffers: 1 values [n_rows][n], 2 ids int [n_rows]. grid: (n_rows), up to 1024 threads. */
struct fc_argmax_args {
    int32_t n;
};

#endif
