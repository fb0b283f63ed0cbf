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
    const char * backend;      /* "cpu" */
    int32_t n_threads;         /* <= 0: all CPUs */
    int32_t context;           /* <= 0: max_position_embeddings, lowered to what fits in memory */
    int kv_type;               /* enum fc_kv_type (0 = f16) */
    int32_t n_active_experts;  /* <= 0: the model's own */
    int32_t max_batch;         /* prefill tokens per forward chunk; <= 0: 256 */
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
    /* timing of the layer kinds (bench) */
    double t_matmul_ms;
};

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

/* ===== layer kinds (one file each) ===== */
void fc_linear_attn_forward(struct fc_engine * e, int32_t layer, int32_t n);
void fc_full_attn_forward(struct fc_engine * e, int32_t layer, int32_t n);
size_t fc_full_attn_scratch_floats(const struct fc_engine * e); /* per compute thread */
enum fc_status fc_moe_forward(struct fc_engine * e, int32_t layer, int32_t n, struct fc_error * err);

#endif
