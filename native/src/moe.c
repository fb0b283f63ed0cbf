/*
 * Mixture of experts on the CPU: router softmax over all experts, top-K, renormalisation; the shared expert
 * behind its sigmoid gate; one routed SwiGLU expert over the tokens routed to it. forward.c groups the tokens
 * by expert (each expert read once per batch), reads them, and calls these while the reads are in flight.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "nn-math.h"

/* Top-k of probs[n_experts] by descending value (ties: lower id first). */
static void top_k(const float * probs, int32_t n_experts, int32_t k, int32_t * ids, float * w) {
    for (int32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t x = 0; x < n_experts; x++) {
            int taken = 0;
            for (int32_t q = 0; q < j; q++) taken |= ids[q] == x;
            if (!taken && (best < 0 || probs[x] > probs[best])) best = x;
        }
        ids[j] = best;
        w[j] = probs[best];
    }
}

static void swiglu_range(float * gate, const float * up, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) gate[i] = fc_silu(gate[i]) * up[i];
}

struct swiglu_job {
    float * gate;
    const float * up;
    size_t n;
};

static void swiglu_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct swiglu_job * job = p;
    int64_t i0, i1;
    fc_split_range((int64_t)job->n, chunk, n_chunks, 16, &i0, &i1);
    swiglu_range(job->gate, job->up, (size_t)i0, (size_t)i1);
}

/* gate = silu(gate) * up over n values (over the pool when there are enough) */
static void swiglu(struct fc_engine * e, float * gate, const float * up, size_t n) {
    struct swiglu_job job = { gate, up, n };
    const int32_t chunks = fc_pool_chunks(e->pool, (int64_t)n, 4096);
    if (chunks > 1) fc_pool_run(e->pool, swiglu_worker, &job, chunks);
    else swiglu_range(gate, up, 0, n);
}

/* a job over a chunk's n tokens (routing, combining the deferred experts) */
struct tokens_job {
    struct fc_engine * e;
    int32_t n;
};

/* softmax over the experts, top-K, renormalised: token ranges */
static void route_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct tokens_job * job = p;
    struct fc_engine * e = job->e;
    const struct fc_config * c = &e->model.cfg;
    struct fc_scratch * s = &e->s;
    const int32_t E = c->n_experts, K = e->n_active;
    int64_t t0, t1;
    fc_split_range(job->n, chunk, n_chunks, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float * p = s->router + (size_t)t * E;
        float mx = p[0];
        for (int32_t x = 1; x < E; x++) mx = p[x] > mx ? p[x] : mx;
        double sum = 0.0;
        for (int32_t x = 0; x < E; x++) { p[x] = expf(p[x] - mx); sum += p[x]; }
        for (int32_t x = 0; x < E; x++) p[x] = (float)(p[x] / sum);
        int32_t * ids = s->topk_ids + (size_t)t * K;
        float * w = s->topk_w + (size_t)t * K;
        top_k(p, E, K, ids, w);
        if (c->norm_topk_prob) {
            float tot = 0.0f;
            for (int32_t j = 0; j < K; j++) tot += w[j];
            for (int32_t j = 0; j < K; j++) w[j] /= tot;
        }
    }
}

void fc_moe_route(struct fc_engine * e, int32_t layer, int32_t n) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t E = c->n_experts, K = e->n_active;
    be->ops->matmul(be, &ly->router, s->xn, s->router, n);
    struct tokens_job job = { e, n };
    const int32_t chunks = fc_pool_chunks(e->pool, (int64_t)n * E * K, 65536);
    if (chunks > 1) fc_pool_run(e->pool, route_worker, &job, chunks);
    else route_worker(&job, 0, 1, 0);
}

void fc_moe_shared(struct fc_engine * e, int32_t layer, int32_t n) {
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t H = e->model.cfg.hidden_size;
    if (!ly->has_shared) {
        memset(s->out, 0, (size_t)n * H * sizeof(float));
        return;
    }
    const int32_t SI = ly->sh_gate.rows;
    const struct fc_matrix * ws[3] = { &ly->sh_gate, &ly->sh_up, &ly->sh_expert_gate };
    float * outs[3] = { s->gate, s->up, s->sh_gate };
    fc_matmul_n(be, ws, outs, 3, s->xn, n);
    swiglu(e, s->gate, s->up, (size_t)n * SI);
    be->ops->matmul(be, &ly->sh_down, s->gate, s->out, n);
    for (int32_t t = 0; t < n; t++) {
        const float g = fc_sigmoid(s->sh_gate[t]);
        for (int32_t i = 0; i < H; i++) s->out[(size_t)t * H + i] *= g;
    }
}

struct scatter_job {
    struct fc_engine * e;
    const struct fc_expert_use * use;
};

/* out[token] += weight * down[i] for the expert's tokens, over column ranges */
static void scatter_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct scatter_job * job = p;
    struct fc_scratch * s = &job->e->s;
    const int32_t H = job->e->model.cfg.hidden_size;
    int64_t k0, k1;
    fc_split_range(H, chunk, n_chunks, 16, &k0, &k1);
    for (int32_t i = 0; i < job->use->n_tok; i++) {
        float * o = s->out + (size_t)job->use->tok[i] * H;
        const float * d = s->down + (size_t)i * H;
        const float wt = job->use->w[i];
        for (int64_t k = k0; k < k1; k++) o[k] += wt * d[k];
    }
}

void fc_moe_expert(struct fc_engine * e, const struct fc_expert_use * use, int32_t n) {
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t H = e->model.cfg.hidden_size;
    struct fc_matrix mg, mu, md;
    fc_experts_view(&e->experts, use->data, &mg, &mu, &md);
    const float * xin = s->xn;
    if (n > 1) { /* the rows of the tokens routed to it */
        for (int32_t i = 0; i < use->n_tok; i++) {
            memcpy(s->gathered + (size_t)i * H, s->xn + (size_t)use->tok[i] * H, (size_t)H * sizeof(float));
        }
        xin = s->gathered;
    }
    const struct fc_matrix * ws[2] = { &mg, &mu };
    float * outs[2] = { s->gate, s->up };
    fc_matmul_n(be, ws, outs, 2, xin, use->n_tok);
    swiglu(e, s->gate, s->up, (size_t)use->n_tok * mg.rows);
    be->ops->matmul(be, &md, s->gate, s->down, use->n_tok);
    struct scatter_job job = { e, use };
    const int32_t chunks = fc_pool_chunks(e->pool, (int64_t)use->n_tok * H, 16384);
    if (chunks > 1) fc_pool_run(e->pool, scatter_worker, &job, chunks);
    else scatter_worker(&job, 0, 1, 0);
    for (int32_t i = 0; e->pair_out && i < use->n_tok; i++) {
        memcpy(e->pair_out + (size_t)use->pair[i] * H, s->down + (size_t)i * H, (size_t)H * sizeof(float));
    }
}

/*
 * One token's routed experts at once (decode): the gates and ups of all of them as one batch of products of xn
 * (x prepared once, one round of the pool), SwiGLU, the downs as another batch, then the weighted sum in the
 * experts' order, as fc_moe_expert one after the other gives it.
 */
void fc_moe_experts_one(struct fc_engine * e, const struct fc_expert_use * uses, int32_t n_uses) {
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t H = e->model.cfg.hidden_size;
    struct fc_matrix mg[FC_MATMUL_BATCH_MAX / 2], mu[FC_MATMUL_BATCH_MAX / 2], md[FC_MATMUL_BATCH_MAX / 2];
    struct fc_matmul_item items[FC_MATMUL_BATCH_MAX];
    FC_ASSERT(n_uses <= FC_MATMUL_BATCH_MAX / 2 && n_uses <= e->max_batch);
    for (int32_t i = 0; i < n_uses; i++) fc_experts_view(&e->experts, uses[i].data, &mg[i], &mu[i], &md[i]);
    const int32_t I = mg[0].rows;
    for (int32_t i = 0; i < n_uses; i++) {
        items[2 * i] = (struct fc_matmul_item){ &mg[i], s->xn, s->gate + (size_t)i * I };
        items[2 * i + 1] = (struct fc_matmul_item){ &mu[i], s->xn, s->up + (size_t)i * I };
    }
    fc_matmul_batch(be, items, 2 * n_uses, 1);
    swiglu(e, s->gate, s->up, (size_t)n_uses * I);
    for (int32_t i = 0; i < n_uses; i++) items[i] = (struct fc_matmul_item){ &md[i], s->gate + (size_t)i * I, s->down + (size_t)i * H };
    fc_matmul_batch(be, items, n_uses, 1);
    for (int32_t i = 0; i < n_uses; i++) {
        const float * d = s->down + (size_t)i * H;
        const float wt = uses[i].w[0];
        for (int32_t k = 0; k < H; k++) s->out[k] += wt * d[k];
        if (e->pair_out) memcpy(e->pair_out + (size_t)uses[i].pair[0] * H, d, (size_t)H * sizeof(float));
    }
}

/* ===== a batch's routed experts in parallel ===== */

struct par_expert {
    const uint8_t * data;
    int32_t expert, n_tok, first; /* its tokens are rows first.. of down (and of tok) */
};

struct fc_moe_par {
    struct fc_backend * be;           /* [n_threads] single-threaded CPU backends, the engine's kernels */
    float * gathered, * gate, * up;   /* per thread: [B][H], [B][I], [B][I] */
    float * down;                     /* [B*K][H]: the experts' outputs, each expert's tokens in a run of rows */
    int32_t * tok;                    /* [B*K] row -> token */
    int32_t * row;                    /* [B*K] pair (token * K + k) -> its row, -1: not routed here */
    int32_t * pair_expert;            /* [B*K] pair -> expert */
    float * pair_w;                   /* [B*K] pair -> weight */
    struct par_expert * ex;           /* [n_experts] deferred, in the order given */
    int32_t * order;                  /* [n_experts] */
    int32_t n_ex, flushed, n_rows, n_threads;
    size_t per_thread_h, per_thread_i;
};

static struct fc_moe_par * par_get(struct fc_engine * e) {
    if (e->par) return e->par;
    const struct fc_config * c = &e->model.cfg;
    const size_t B = (size_t)e->max_batch, K = (size_t)e->n_active, H = (size_t)c->hidden_size;
    const size_t I = (size_t)(c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter);
    struct fc_moe_par * p = fc_xcalloc(1, sizeof *p);
    p->n_threads = fc_pool_size(e->pool);
    p->be = fc_xcalloc((size_t)p->n_threads, sizeof *p->be);
    const char * kernels = e->be.ops->describe ? e->be.ops->describe(&e->be) : NULL;
    for (int32_t t = 0; t < p->n_threads; t++) {
        struct fc_error err;
        FC_ASSERT(fc_backend_cpu_init(&p->be[t], NULL, kernels, &err) == FC_STATUS_OK);
    }
    p->per_thread_h = B * H, p->per_thread_i = B * I;
    p->gathered = fc_alloc_aligned((size_t)p->n_threads * B * H * sizeof(float));
    p->gate = fc_alloc_aligned((size_t)p->n_threads * B * I * sizeof(float));
    p->up = fc_alloc_aligned((size_t)p->n_threads * B * I * sizeof(float));
    p->down = fc_alloc_aligned(B * K * H * sizeof(float));
    p->tok = fc_xcalloc(B * K, sizeof *p->tok);
    p->row = fc_xcalloc(B * K, sizeof *p->row);
    p->pair_expert = fc_xcalloc(B * K, sizeof *p->pair_expert);
    p->pair_w = fc_xcalloc(B * K, sizeof *p->pair_w);
    p->ex = fc_xcalloc((size_t)c->n_experts, sizeof *p->ex);
    p->order = fc_xcalloc((size_t)c->n_experts, sizeof *p->order);
    FC_ASSERT(p->gathered && p->gate && p->up && p->down);
    for (size_t i = 0; i < B * K; i++) p->row[i] = -1;
    e->par = p;
    return p;
}

void fc_moe_par_free(struct fc_engine * e) {
    struct fc_moe_par * p = e->par;
    if (!p) return;
    for (int32_t t = 0; t < p->n_threads; t++) fc_backend_free(&p->be[t]);
    free(p->be); free(p->gathered); free(p->gate); free(p->up); free(p->down);
    free(p->tok); free(p->row); free(p->pair_expert); free(p->pair_w); free(p->ex); free(p->order);
    free(p);
    e->par = NULL;
}

void fc_moe_expert_defer(struct fc_engine * e, const struct fc_expert_use * use) {
    struct fc_moe_par * p = par_get(e);
    const int32_t E = e->model.cfg.n_experts;
    FC_ASSERT(p->n_ex < E && p->n_rows + use->n_tok <= e->max_batch * e->n_active);
    p->ex[p->n_ex++] = (struct par_expert){ use->data, use->expert, use->n_tok, p->n_rows };
    for (int32_t i = 0; i < use->n_tok; i++) {
        const int32_t r = p->n_rows + i, q = use->pair[i];
        p->tok[r] = use->tok[i];
        p->row[q] = r;
        p->pair_expert[q] = use->expert;
        p->pair_w[q] = use->w[i];
    }
    p->n_rows += use->n_tok;
}

struct par_job {
    struct fc_engine * e;
    struct fc_moe_par * p;
    int32_t base; /* ex[base + order[chunk]] */
};

/* One expert on one thread: its tokens' rows gathered, gate and up, SwiGLU, down into its rows of p->down. */
static void par_worker(void * arg, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct par_job * job = arg;
    struct fc_engine * e = job->e;
    struct fc_moe_par * p = job->p;
    const struct par_expert * x = &p->ex[job->base + p->order[chunk]];
    const int32_t H = e->model.cfg.hidden_size;
    struct fc_backend * be = &p->be[thread];
    float * xg = p->gathered + (size_t)thread * p->per_thread_h;
    float * gate = p->gate + (size_t)thread * p->per_thread_i, * up = p->up + (size_t)thread * p->per_thread_i;
    struct fc_matrix mg, mu, md;
    fc_experts_view(&e->experts, x->data, &mg, &mu, &md);
    for (int32_t i = 0; i < x->n_tok; i++) {
        memcpy(xg + (size_t)i * H, e->s.xn + (size_t)p->tok[x->first + i] * H, (size_t)H * sizeof(float));
    }
    const struct fc_matrix * ws[2] = { &mg, &mu };
    float * outs[2] = { gate, up };
    fc_matmul_n(be, ws, outs, 2, xg, x->n_tok);
    swiglu_range(gate, up, 0, (size_t)x->n_tok * mg.rows);
    be->ops->matmul(be, &md, gate, p->down + (size_t)x->first * H, x->n_tok);
}

void fc_moe_experts_flush(struct fc_engine * e) {
    struct fc_moe_par * p = e->par;
    if (!p || p->flushed == p->n_ex) return;
    const int32_t n = p->n_ex - p->flushed;
    /* heaviest first: the last chunks to start are the shortest */
    for (int32_t i = 0; i < n; i++) {
        int32_t j = i;
        const int32_t nt = p->ex[p->flushed + i].n_tok;
        while (j > 0 && p->ex[p->flushed + p->order[j - 1]].n_tok < nt) { p->order[j] = p->order[j - 1]; j--; }
        p->order[j] = i;
    }
    struct par_job job = { e, p, p->flushed };
    const double t0 = e->on_par_experts ? fc_time_ms() : 0.0;
    if (n > 1) fc_pool_run(e->pool, par_worker, &job, n);
    else par_worker(&job, 0, 1, 0);
    if (e->on_par_experts) {
        double macs = 0.0, bytes = 0.0;
        for (int32_t i = p->flushed; i < p->n_ex; i++) {
            struct fc_matrix mg, mu, md;
            fc_experts_view(&e->experts, p->ex[i].data, &mg, &mu, &md);
            macs += ((double)mg.rows * mg.cols + (double)mu.rows * mu.cols + (double)md.rows * md.cols) * p->ex[i].n_tok;
            bytes += (double)(fc_matrix_bytes(&mg) + fc_matrix_bytes(&mu) + fc_matrix_bytes(&md));
        }
        e->on_par_experts(fc_time_ms() - t0, macs, bytes);
    }
    p->flushed = p->n_ex;
}

/* out[t] += w * down[row] for each of token t's experts, by ascending id (fc_moe_expert's order) */
static void combine_worker(void * arg, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct tokens_job * job = arg;
    struct fc_engine * e = job->e;
    struct fc_moe_par * p = e->par;
    const int32_t H = e->model.cfg.hidden_size, K = e->n_active;
    int64_t t0, t1;
    fc_split_range(job->n, chunk, n_chunks, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        int32_t q[64], m = 0;
        for (int32_t k = 0; k < K && m < 64; k++) {
            const int32_t pq = (int32_t)t * K + k;
            if (p->row[pq] < 0) continue;
            int32_t j = m++;
            while (j > 0 && p->pair_expert[q[j - 1]] > p->pair_expert[pq]) { q[j] = q[j - 1]; j--; }
            q[j] = pq;
        }
        float * o = e->s.out + (size_t)t * H;
        for (int32_t j = 0; j < m; j++) {
            const float * d = p->down + (size_t)p->row[q[j]] * H;
            const float wt = p->pair_w[q[j]];
            for (int32_t i = 0; i < H; i++) o[i] += wt * d[i];
            if (e->pair_out) memcpy(e->pair_out + (size_t)q[j] * H, d, (size_t)H * sizeof(float));
        }
    }
}

/* forget what was deferred and not combined (a layer that failed half-way) */
void fc_moe_experts_discard(struct fc_engine * e) {
    struct fc_moe_par * p = e->par;
    if (!p || p->n_ex == 0) return;
    for (size_t i = 0; i < (size_t)e->max_batch * e->n_active; i++) p->row[i] = -1;
    p->n_ex = p->flushed = p->n_rows = 0;
}

void fc_moe_experts_combine(struct fc_engine * e, int32_t n) {
    struct fc_moe_par * p = e->par;
    if (!p || p->n_ex == 0) return;
    FC_ASSERT(e->n_active <= 64);
    fc_moe_experts_flush(e);
    struct tokens_job job = { e, n };
    const int32_t chunks = fc_pool_chunks(e->pool, (int64_t)n * e->n_active * e->model.cfg.hidden_size, 16384);
    if (chunks > 1) fc_pool_run(e->pool, combine_worker, &job, chunks);
    else combine_worker(&job, 0, 1, 0);
    for (int32_t i = 0; i < n * e->n_active; i++) p->row[i] = -1;
    p->n_ex = p->flushed = p->n_rows = 0;
}
