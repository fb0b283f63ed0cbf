/* The engine: model + backend + expert streaming + one sequence state + scratch; evaluation of tokens. */
#ifndef FC_ENGINE_H
#define FC_ENGINE_H

#include <stdint.h>

#include "backend.h"
#include "experts.h"
#include "kv-cache.h"
#include "model.h"
#include "threads.h"
#include "util.h"

/* Everything that depends on the tokens seen so far. */
struct fc_gpu;
struct fc_metal_forward;

struct fc_seq_state {
    int32_t n_past;   /* tokens evaluated */
    int32_t n_valid;  /* KV rows [0, n_valid) hold the K/V of tokens[0, n_valid) (may exceed n_past after a reset) */
    int32_t * tokens; /* [tokens_cap] the tokens evaluated, in order (their K/V are in the cache) */
    int32_t tokens_cap; /* grown with the cache (fc_engine_reserve) */
    float ** conv;    /* [n_linear][(kernel - 1) * conv_dim] rolling conv inputs, oldest first */
    float ** ssm;     /* [n_linear][nv * dk * dv] delta-rule state per value head, [dk][dv] */
    struct fc_kv_cache kv; /* K/V of the full-attention layers, grown with n_valid */
};

struct fc_engine_options {
    const char * artifacts_dir;
    const char * experts_dir;  /* NULL = <artifacts>/packed_experts */
    const char * backend;      /* "cpu", "cpu:N", "metal", "metal-emu" or "auto" (metal on macOS with a GPU, else cpu) */
    int32_t n_threads;         /* <= 0: all CPUs */
    int32_t context;           /* <= 0: max_position_embeddings, lowered to what fits in memory */
    int kv_type;               /* enum fc_kv_type (0 = f16) */
    int32_t n_active_experts;  /* <= 0: the model's own */
    int32_t max_batch;         /* prefill tokens per forward chunk; <= 0: 512 */
    int32_t n_io_threads;      /* <= 0: automatic */
    int expert_io;             /* enum fc_expert_io: pread copies, in place from mapped files, or auto (by size) */
};

struct fc_scratch {
    float * x;        /* [B, H] residual stream */
    float * xn;       /* [B, H] normed input of a block */
    float * out;      /* [B, H] block output */
    float * proj;     /* [B, max(conv_dim, 2*nh*hd)] */
    float * proj2;    /* [B, max(vdim, nkv*hd)] z / k */
    float * proj3;    /* [B, max(nv, nkv*hd)] b / v */
    float * proj4;    /* [B, nv] a */
    float * attn;     /* [B, max(vdim, nh*hd)] attention output before its out projection */
    float * attn_tmp; /* [n_threads, fc_full_attn_scratch_floats] blocks of K/V rows, scores, running sums */
    float * router;   /* [B, n_experts] */
    float * gate;     /* [B, max(moe_inter, shared_inter)] */
    float * up;       /* [B, max(moe_inter, shared_inter)] */
    float * gathered; /* [B, H] rows of xn routed to one expert */
    float * down;     /* [B, H] */
    float * sh_gate;  /* [B] shared expert gate */
    int32_t * topk_ids;   /* [B, K] */
    float * topk_w;       /* [B, K] */
    int32_t * tok_idx;    /* [B] tokens of one expert */
    int32_t * topk_pair;  /* [B] their (token, k) slots */
    float * tok_w;        /* [B] */
    float * inv_freq;     /* [rotary_dim / 2] */
};

struct fc_engine {
    struct fc_model model;
    struct fc_experts experts;
    struct fc_backend be;
    struct fc_pool * pool;
    int32_t n_threads;
    int32_t context;      /* tokens the sequence may hold */
    int32_t max_context;  /* the model's max_position_embeddings */
    int32_t n_active;
    int32_t max_batch;
    struct fc_seq_state st;
    struct fc_scratch s;
    uint8_t ** expert_bufs; /* [n_expert_bufs] each experts.expert_bytes, inside expert_arena */
    uint8_t * expert_arena;
    int32_t n_expert_bufs;
    /* per expert id scratch for prefill grouping */
    int32_t * expert_count; /* [n_experts] */
    /* (optional) called after each layer of every forward chunk, e.g. to report prefill progress; NULL = none */
    void (*on_layer)(void * ctx, int32_t layer);
    void * on_layer_ctx;
    /* The layer-level backend forward.c drives (backend.h): the CPU's (over `be`) or the GPU's (--backend metal /
       metal-emu), which wraps the engine's weights, expert arena and sequence state; `be` stays the CPU's kernels. */
    struct fc_layer_backend lb;
    struct fc_gpu * gpu;       /* the GPU device (NULL: CPU) */
    const char * backend_name; /* "cpu", "metal" or "metal-emu" */
    int32_t chunk_n, chunk_pos0; /* (CPU layer backend) the chunk being evaluated */
    float * pair_out;          /* (CPU layer backend, verify) routed experts' outputs per (token, k) [B*K][H], or NULL */
    double gpu_wait_ms;        /* (GPU backend, since load) the host blocked waiting for the GPU */
    uint64_t gpu_commits;      /* (GPU backend, since load) command buffers committed */
    struct fc_moe_par * par;   /* (CPU layer backend) a batch's routed experts in parallel (moe.c), made on first use */
    /* (bench) told of each flush of the parallel experts: its wall time, multiply-adds and weight bytes; NULL = none */
    void (*on_par_experts)(double ms, double macs, double bytes);
    /* timing of the layer kinds (bench) */
    double t_matmul_ms;
};

/* Is the backend `name` part of this build ("metal": macOS builds; "metal-emu": builds with a C++ compiler)? */
int fc_engine_backend_built(const char * name);

/* The GPU backends (gpu-select.c): "auto" resolved (a device it created on the way in *created, or NULL); open
   one into e->lb (over `created` if not NULL); close it. */
struct fc_gpu;
const char * fc_engine_resolve_backend(const char * name, struct fc_gpu ** created);
enum fc_status fc_engine_gpu_open(struct fc_engine * e, const char * name, struct fc_gpu * created, struct fc_error * err);
void fc_engine_gpu_close(struct fc_engine * e);
void fc_gpu_release(struct fc_gpu * g);

/* ===== the forward pass (forward.c) over the layer-level seam ===== */
/* The CPU layer backend over the engine's scratch, sequence state and CPU kernels. */
void fc_layer_cpu_init(struct fc_layer_backend * lb, struct fc_engine * e);
/* One chunk of n <= max_batch tokens through lb (tokens list and n_past updated). */
enum fc_status fc_forward_chunk(struct fc_engine * e, struct fc_layer_backend * lb, const int32_t * tokens, int32_t n,
                                float * logits_all, float * logits_last, struct fc_error * err);
/* (bench verify) a GPU layer backend against the CPU one op by op (rmsnorm, qkv, rope, attention, deltanet, router,
   experts, combine, logits), a prefill chunk and a decoded token; a result line per op (json: an object each, *first
   says whether one was printed yet). 1 = all within tolerance, or no GPU backend. */
int fc_forward_verify(struct fc_engine * e, int json, int * first);
/* (bench) the CPU's MoE block of `layer` over s.xn (already normed): routing, the experts' reads, s.out, added to s.x. */
enum fc_status fc_moe_forward(struct fc_engine * e, int32_t layer, int32_t n, struct fc_error * err);

enum fc_status fc_engine_init(struct fc_engine * e, const struct fc_engine_options * opt, struct fc_error * err);
void fc_engine_free(struct fc_engine * e);
/* How the experts are read, as decided at load (never FC_EXPERT_IO_AUTO). */
enum fc_expert_io fc_engine_expert_io(const struct fc_engine * e);

/* Make room for a sequence of n tokens (n <= context): K/V rows and the token list grow, never shrink. */
enum fc_status fc_engine_reserve(struct fc_engine * e, int32_t n, struct fc_error * err);

/* Forget the sequence (n_past = 0, states zeroed). */
void fc_engine_reset(struct fc_engine * e);

/*
 * Evaluate tokens[0..n) after the current sequence. logits_all (NULL or [n, vocab]) receives every
 * position's logits; logits_last (NULL or [vocab]) the last one's. CONTEXT_OVERFLOW / BAD_TOKEN leave
 * the state untouched; an IO_ERROR mid-way leaves it inconsistent (the caller resets).
 */
enum fc_status fc_engine_eval(struct fc_engine * e, const int32_t * tokens, int32_t n, float * logits_all, float * logits_last,
                              struct fc_error * err);

/* Bytes of one sequence state's snapshot-able part (conv + ssm), and of one KV position (all layers, K and V). */
size_t fc_engine_recurrent_bytes(const struct fc_engine * e);
size_t fc_engine_kv_bytes_per_pos(const struct fc_engine * e);

/* ===== the CPU layer backend's math (one file per layer kind; forward.c calls them) ===== */
void fc_linear_attn_forward(struct fc_engine * e, int32_t layer, int32_t n);
void fc_full_attn_forward(struct fc_engine * e, int32_t layer, int32_t n);
size_t fc_full_attn_scratch_floats(const struct fc_engine * e); /* per compute thread */
/* moe.c: router softmax + top-K into s.topk_ids / s.topk_w; the gated shared expert into s.out (zero without one);
   one routed expert's tokens added into s.out (and their outputs into e->pair_out when set) */
void fc_moe_route(struct fc_engine * e, int32_t layer, int32_t n);
void fc_moe_shared(struct fc_engine * e, int32_t layer, int32_t n);
void fc_moe_expert(struct fc_engine * e, const struct fc_expert_use * use, int32_t n);
/* One token's n_uses routed experts at once (n_uses <= FC_MATMUL_BATCH_MAX / 2 and <= max_batch), the same numbers. */
void fc_moe_experts_one(struct fc_engine * e, const struct fc_expert_use * uses, int32_t n_uses);
/*
 * A batch's routed experts in parallel, one expert per thread (single-threaded kernels, no round of the pool
 * per product): defer takes an expert whose bytes stay valid until the next flush; flush computes those
 * deferred since the last one (each into its pairs' rows of a per-(token, k) buffer); combine flushes and
 * adds each token's experts to s.out in expert-id order, the numbers fc_moe_expert one by one gives.
 */
void fc_moe_expert_defer(struct fc_engine * e, const struct fc_expert_use * use);
void fc_moe_experts_flush(struct fc_engine * e);
void fc_moe_experts_combine(struct fc_engine * e, int32_t n);
void fc_moe_experts_discard(struct fc_engine * e);
void fc_moe_par_free(struct fc_engine * e);

#endif
