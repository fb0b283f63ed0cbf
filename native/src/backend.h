/*
 * The seam between model code and kernels. forward.c and the layer files call only these;
 * src/cpu/ implements them (src/metal/ later). Chosen once at start-up.
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

struct fc_backend_ops {
    const char * name;
    /*
     * out[t * w->rows + r] = sum_i W[r][i] * x[t * w->cols + i] for t < n_tokens.
     * Every dtype of enum fc_dtype; n_tokens > 1 reads each weight row once for all tokens.
     */
    void (*matmul)(struct fc_backend * be, const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens);
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

/* Create the backend called `name` ("cpu"; "metal" on macOS builds with Metal). */
enum fc_status fc_backend_init(struct fc_backend * be, const char * name, struct fc_pool * pool, struct fc_error * err);
void fc_backend_free(struct fc_backend * be);

/* The plain-C reference matmul every backend is verified against (single-threaded, slow). */
void fc_matmul_reference(const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens);

#endif
