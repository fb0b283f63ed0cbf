/*
 * Two seams (BACKENDS.md). The layer-level one (struct fc_layer_backend): what forward.c drives, a layer
 * at a time, over weights, activations and sequence state the backend holds or wraps; the CPU implements it
 * in forward.c over its kernels, the Metal backend in metal/metal-forward.c over the GPU device interface.
 * Below it, the CPU's per-matrix kernel table (struct fc_backend): what the CPU layer code and the kernel
 * benchmarks call; src/cpu/ implements it. Both chosen once at start-up.
 */
#ifndef FC_BACKEND_H
#define FC_BACKEND_H

#include "tensor.h"
#include "util.h"

struct fc_pool;

struct fc_backend {
    const struct fc_backend_ops * ops;
    void * ctx;           /* backend-private state */
    struct fc_pool * pool; /* compute threads (shared with the model code for per-head work) */
};

struct fc_matmul_item {
    const struct fc_matrix * w;
    const float * x;
    float * out;
};

struct fc_backend_ops {
    const char * name;
    /*
     * out[t * w->rows + r] = sum_i W[r][i] * x[t * w->cols + i] for t < n_tokens.
     * Every dtype of enum fc_dtype; n_tokens > 1 reads each weight row once for all tokens.
     */
    void (*matmul)(struct fc_backend * be, const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens);
    /* (optional) n_items <= FC_MATMUL_BATCH_MAX products, each items[i].out = items[i].w x items[i].x as matmul gives it
       (bit for bit), all of n_tokens: a backend can prepare each distinct x once and split all the rows between its
       threads in one go. NULL: matmul for each (fc_matmul_batch and fc_matmul_n do either). */
    void (*matmul_batch)(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n_items, int32_t n_tokens);
    /* Release everything init allocated (not the pool). */
    void (*free)(struct fc_backend * be);
    /* (optional) the gated delta rule of one linear-attention head over n tokens, the state S [dk][dv] updated in
       place (src/cpu/kernels.h, fc_cpu_delta_rule_generic, says what it computes); called from several threads at
       once, one head each. NULL: the model code's own loop. */
    void (*delta_rule)(struct fc_backend * be, float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k,
                       size_t qk_stride, const float * v, size_t v_stride, const float * beta, const float * decay, float * o,
                       size_t o_stride);
    /* (optional) human description of the selected kernels, e.g. "avx2" */
    const char * (*describe)(struct fc_backend * be);
};

#define FC_MATMUL_BATCH_MAX 64

/* The products of items (at most FC_MATMUL_BATCH_MAX): the backend's matmul_batch, else matmul for each. */
void fc_matmul_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n_items, int32_t n_tokens);
/* outs[i] = ws[i] x for i < n_w (one x, n_w <= FC_MATMUL_BATCH_MAX). */
void fc_matmul_n(struct fc_backend * be, const struct fc_matrix * const * ws, float * const * outs, int32_t n_w, const float * x,
                 int32_t n_tokens);

/* Create the backend called `name` ("cpu"; "metal" on macOS builds with Metal). */
enum fc_status fc_backend_init(struct fc_backend * be, const char * name, struct fc_pool * pool, struct fc_error * err);
/* The CPU backend over `pool` (NULL: single-threaded, on the caller) with kernels NULL (the best level) or by name. */
enum fc_status fc_backend_cpu_init(struct fc_backend * be, struct fc_pool * pool, const char * kernels, struct fc_error * err);
void fc_backend_free(struct fc_backend * be);

/* ===== the layer-level seam ===== */

/* One routed expert of a layer, its bytes already read (a slot of the engine's expert arena, or the layer
   file's mapping), and the tokens of the chunk routed to it. */
struct fc_expert_use {
    int32_t expert;       /* its id */
    const uint8_t * data; /* its bytes (layout.json's components at their offsets) */
    int32_t n_tok;
    const int32_t * tok;  /* [n_tok] token indices in the chunk */
    const int32_t * pair; /* [n_tok] their (token, k) slots: token * K + k */
    const float * w;      /* [n_tok] their routing weights */
};

/* Named intermediates of the current layer, for `bench verify` op by op (each backend's own buffers). */
enum fc_tap {
    FC_TAP_NORM,      /* input RMSNorm (after attend) or post-attention RMSNorm (after route): [n][H] */
    FC_TAP_QKV,       /* projections before any norm: full v [n][kv_dim]; linear z [n][nv*dv], b, a [n][nv] */
    FC_TAP_ROPE,      /* full: q (with its raw gates, per head [q | gate]) and k after the per-head norm and RoPE */
    FC_TAP_ATTENTION, /* full: gated attention output before o_proj [n][nh*hd] */
    FC_TAP_DELTANET,  /* linear: conv + SiLU + L2 norms [n][conv_dim], and the gated delta rule's output [n][nv*dv] */
    FC_TAP_ROUTER,    /* router probabilities [n][n_experts] */
    FC_TAP_EXPERTS,   /* routed experts' outputs per (token, k) [n*K][H] (after finish) */
    FC_TAP_COMBINE,   /* the residual stream after the layer [n][H] */
    FC_TAP_COUNT
};
struct fc_tap_view {
    const float * p[3];
    size_t n[3];
};

struct fc_layer_backend {
    const struct fc_layer_ops * ops;
    void * ctx;
};

/*
 * The engine loop (forward.c), per chunk of n tokens:
 *   begin(ids, n, pos0); for each layer l: attend(l); route(l) -> ids, weights (the one host sync of a layer);
 *   the host issues the reads of the routed experts; shared(l); expert(l, use) for each expert as its read
 *   lands (one token: experts_one(l, uses) once they all have, where the backend has it); finish(l); then logits(). Calls may be asynchronous (queued on a GPU) except route, sync, tap and
 *   logits, which return with their results valid on the host.
 */
struct fc_layer_ops {
    const char * name;
    /* Memory the experts' bytes will be in (the expert arena; the mapped layer files): wrapped once. */
    enum fc_status (*add_memory)(struct fc_layer_backend * lb, void * base, size_t n_bytes, struct fc_error * err);
    /* Start a chunk of n tokens at positions pos0..: embed ids into the residual stream. */
    enum fc_status (*begin)(struct fc_layer_backend * lb, const int32_t * ids, int32_t n, int32_t pos0, struct fc_error * err);
    /* Layer l's input norm, attention (linear or full; the sequence state updated) and residual add. */
    enum fc_status (*attend)(struct fc_layer_backend * lb, int32_t l, struct fc_error * err);
    /* Post-attention norm, router softmax + top-K: *ids / *weights ([n][K], the backend's) valid on return. */
    enum fc_status (*route)(struct fc_layer_backend * lb, int32_t l, const int32_t ** ids, const float ** weights, struct fc_error * err);
    /* The shared expert (called once the reads are issued: it runs while they are in flight). */
    enum fc_status (*shared)(struct fc_layer_backend * lb, int32_t l, struct fc_error * err);
    /* One routed expert over its tokens (its output kept per (token, k) or accumulated). */
    enum fc_status (*expert)(struct fc_layer_backend * lb, int32_t l, const struct fc_expert_use * use, struct fc_error * err);
    /* Combine the experts (and the gated shared expert) into the residual. */
    enum fc_status (*finish)(struct fc_layer_backend * lb, int32_t l, struct fc_error * err);
    /* Final norm and lm_head: every position (all, [n][vocab]) or the last (last, [vocab]); either may be NULL. */
    enum fc_status (*logits)(struct fc_layer_backend * lb, float * all, float * last, struct fc_error * err);
    /* Wait until all queued work is done: the memory of earlier expert() calls may be overwritten after. */
    enum fc_status (*sync)(struct fc_layer_backend * lb, struct fc_error * err);
    /* (verify) an intermediate of the current layer, valid until the next call; and set the residual [n][H]. */
    enum fc_status (*tap)(struct fc_layer_backend * lb, enum fc_tap which, struct fc_tap_view * out, struct fc_error * err);
    enum fc_status (*set_residual)(struct fc_layer_backend * lb, const float * x, struct fc_error * err);
    void (*free)(struct fc_layer_backend * lb);
    /* (optional) one token's routed experts at once, every read landed (decode): as expert() for each. */
    enum fc_status (*experts_one)(struct fc_layer_backend * lb, int32_t l, const struct fc_expert_use * uses, int32_t n_uses,
                                  struct fc_error * err);
};

/* The plain-C reference matmul every backend is verified against (single-threaded, slow). */
void fc_matmul_reference(const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens);

#endif
