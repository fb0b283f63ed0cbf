/*
 * Mixture of experts: router softmax over all experts, top-K, renormalisation, the K routed SwiGLU
 * experts streamed from disk (grouped by expert over a batch of tokens, so each is read once per
 * batch), plus the shared expert behind its sigmoid gate, computed while the reads are in flight.
 */
#include <math.h>
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

static void swiglu(float * gate, const float * up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = fc_silu(gate[i]) * up[i];
}

enum fc_status fc_moe_forward(struct fc_engine * e, int32_t layer, int32_t n, struct fc_error * err) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t H = c->hidden_size, E = c->n_experts, K = e->n_active;

    /* routing */
    be->ops->matmul(be, &ly->router, s->xn, s->router, n);
    for (int32_t t = 0; t < n; t++) {
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

    /* the experts this batch needs, in id order */
    memset(e->expert_count, 0, (size_t)E * sizeof *e->expert_count);
    for (int32_t i = 0; i < n * K; i++) e->expert_count[s->topk_ids[i]]++;
    int32_t used[4096];
    int32_t n_used = 0, next = 0;

    /* experts are read in waves of up to `wave` (half the buffers): wave w+1 is read while wave w is
       multiplied; the first goes out before the shared expert is computed */
    for (int32_t x = 0; x < E; x++) {
        if (e->expert_count[x]) used[n_used++] = x;
    }
    const int32_t wave = e->n_expert_bufs / 2 > 0 ? e->n_expert_bufs / 2 : 1;
    int32_t n_wave = n_used < wave ? n_used : wave;
    fc_experts_read_start(&e->experts, layer, used, n_wave, e->expert_bufs, 0);
    next = n_wave;

    /* shared expert into s->out (zero without one) */
    if (ly->has_shared) {
        const int32_t SI = ly->sh_gate.rows;
        be->ops->matmul(be, &ly->sh_gate, s->xn, s->gate, n);
        be->ops->matmul(be, &ly->sh_up, s->xn, s->up, n);
        swiglu(s->gate, s->up, (size_t)n * SI);
        be->ops->matmul(be, &ly->sh_down, s->gate, s->out, n);
        be->ops->matmul(be, &ly->sh_expert_gate, s->xn, s->sh_gate, n);
        for (int32_t t = 0; t < n; t++) {
            const float g = fc_sigmoid(s->sh_gate[t]);
            for (int32_t i = 0; i < H; i++) s->out[(size_t)t * H + i] *= g;
        }
    } else {
        memset(s->out, 0, (size_t)n * H * sizeof(float));
    }

    for (int32_t w = 0, start = 0; start < n_used; w++) {
        const int32_t base = (w % 2) * wave;
        /* queue the next wave into the other half of the buffers before computing this one */
        if (next < n_used) {
            int32_t n_next = n_used - next < wave ? n_used - next : wave;
            fc_experts_read_start(&e->experts, layer, used + next, n_next, e->expert_bufs, ((w + 1) % 2) * wave);
            next += n_next;
        }
        for (int32_t b = 0; b < n_wave; b++) {
            /* compute each expert as soon as it has arrived, while the others are still being read */
            enum fc_status st = fc_experts_read_wait_one(&e->experts, base + b, err);
            if (st != FC_STATUS_OK) return st;
            const int32_t x = used[start + b];
            struct fc_matrix mg, mu, md;
            fc_experts_view(&e->experts, e->experts.slot_data[base + b], &mg, &mu, &md);
            /* tokens routed to x, with their weights */
            int32_t n_e = 0;
            for (int32_t t = 0; t < n; t++) {
                for (int32_t j = 0; j < K; j++) {
                    if (s->topk_ids[(size_t)t * K + j] == x) {
                        s->tok_idx[n_e] = t;
                        s->tok_w[n_e] = s->topk_w[(size_t)t * K + j];
                        n_e++;
                    }
                }
            }
            const float * xin = s->xn;
            if (n > 1) {
                for (int32_t i = 0; i < n_e; i++) {
                    memcpy(s->gathered + (size_t)i * H, s->xn + (size_t)s->tok_idx[i] * H, (size_t)H * sizeof(float));
                }
                xin = s->gathered;
            }
            be->ops->matmul(be, &mg, xin, s->gate, n_e);
            be->ops->matmul(be, &mu, xin, s->up, n_e);
            swiglu(s->gate, s->up, (size_t)n_e * mg.rows);
            be->ops->matmul(be, &md, s->gate, s->down, n_e);
            for (int32_t i = 0; i < n_e; i++) {
                float * o = s->out + (size_t)s->tok_idx[i] * H;
                const float * d = s->down + (size_t)i * H;
                const float wt = s->tok_w[i];
                for (int32_t k = 0; k < H; k++) o[k] += wt * d[k];
            }
        }
        start += n_wave;
        n_wave = n_used - start < wave ? n_used - start : wave;
    }
    enum fc_status st = fc_experts_read_wait(&e->experts, err);
    if (st != FC_STATUS_OK) return st;
    return FC_STATUS_OK;
}
