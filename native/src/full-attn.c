/*
 * Gated full attention: q (with its per-head output gate), k, v projections; per-head q/k RMSNorm;
 * partial rotate-half RoPE; grouped-query causal attention over the KV cache; sigmoid gate; o_proj.
 */
#include <math.h>
#include <string.h>

#include "engine.h"

struct attn_job {
    struct fc_engine * e;
    float * kc;
    float * vc;
    int32_t n;
    int32_t pos0;
};

static void rope(float * x, const float * inv_freq, int32_t rot, int32_t pos) {
    const int32_t half = rot / 2;
    for (int32_t i = 0; i < half; i++) {
        const float angle = (float)pos * inv_freq[i];
        const float cs = (float)cos((double)angle), sn = (float)sin((double)angle);
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cs - x2 * sn;
        x[i + half] = x2 * cs + x1 * sn;
    }
}

/* (token, head) pairs split between threads. */
static void attn_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct attn_job * job = p;
    struct fc_engine * e = job->e;
    const struct fc_config * c = &e->model.cfg;
    struct fc_scratch * s = &e->s;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, group = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    float * scores = s->scores + (size_t)thread * e->context;
    int64_t w0, w1;
    fc_split_range((int64_t)job->n * nh, chunk, n_chunks, 1, &w0, &w1);
    for (int64_t w = w0; w < w1; w++) {
        const int32_t t = (int32_t)(w / nh), h = (int32_t)(w % nh), kvh = h / group;
        const int32_t pos = job->pos0 + t;
        const float * q = s->proj + (size_t)t * 2 * nh * hd + (size_t)h * 2 * hd;
        const float * gate = q + hd;
        float mx = -INFINITY;
        for (int32_t j = 0; j <= pos; j++) {
            const float * k = job->kc + ((size_t)j * nkv + kvh) * hd;
            float d = 0.0f;
            for (int32_t i = 0; i < hd; i++) d += q[i] * k[i];
            d *= scale;
            scores[j] = d;
            if (d > mx) mx = d;
        }
        double sum = 0.0;
        for (int32_t j = 0; j <= pos; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        const float inv = (float)(1.0 / sum);
        float * o = s->attn + (size_t)t * nh * hd + (size_t)h * hd;
        for (int32_t i = 0; i < hd; i++) o[i] = 0.0f;
        for (int32_t j = 0; j <= pos; j++) {
            const float pj = scores[j] * inv;
            const float * v = job->vc + ((size_t)j * nkv + kvh) * hd;
            for (int32_t i = 0; i < hd; i++) o[i] += pj * v[i];
        }
        for (int32_t i = 0; i < hd; i++) o[i] *= fc_sigmoid(gate[i]);
    }
}

void fc_full_attn_forward(struct fc_engine * e, int32_t layer, int32_t n) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim;
    float * kc = e->st.k_cache[ly->index_in_kind];
    float * vc = e->st.v_cache[ly->index_in_kind];
    const int32_t pos0 = e->st.n_past;

    be->ops->matmul(be, &ly->q_proj, s->xn, s->proj, n);  /* [n, nh * 2 * hd], per head [q | gate] */
    be->ops->matmul(be, &ly->k_proj, s->xn, s->proj2, n); /* [n, nkv * hd] */
    be->ops->matmul(be, &ly->v_proj, s->xn, s->proj3, n);

    for (int32_t t = 0; t < n; t++) {
        const int32_t pos = pos0 + t;
        for (int32_t h = 0; h < nh; h++) {
            float * q = s->proj + (size_t)t * 2 * nh * hd + (size_t)h * 2 * hd;
            fc_rmsnorm(q, q, ly->q_norm, hd, c->rms_eps);
            rope(q, s->inv_freq, c->rotary_dim, pos);
        }
        for (int32_t h = 0; h < nkv; h++) {
            float * k = s->proj2 + (size_t)t * nkv * hd + (size_t)h * hd;
            fc_rmsnorm(k, k, ly->k_norm, hd, c->rms_eps);
            rope(k, s->inv_freq, c->rotary_dim, pos);
        }
        memcpy(kc + (size_t)pos * nkv * hd, s->proj2 + (size_t)t * nkv * hd, (size_t)nkv * hd * sizeof(float));
        memcpy(vc + (size_t)pos * nkv * hd, s->proj3 + (size_t)t * nkv * hd, (size_t)nkv * hd * sizeof(float));
    }

    struct attn_job job = { e, kc, vc, n, pos0 };
    int32_t pairs = n * nh, n_chunks = e->n_threads * 4;
    fc_pool_run(e->pool, attn_worker, &job, pairs < n_chunks ? pairs : n_chunks);

    be->ops->matmul(be, &ly->o_proj, s->attn, s->out, n);
}
