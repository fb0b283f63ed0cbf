/*
 * GatedDeltaNet linear attention: in-projections, causal depthwise conv1d (rolling state) + SiLU,
 * per-head L2-normalised q/k, the gated delta rule with its persistent per-head state, gated RMSNorm,
 * out-projection.
 */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "nn-math.h"

struct delta_job {
    struct fc_engine * e;
    const struct fc_layer * ly;
    float * ssm;
    int32_t n;
};

static float softplus(float x) {
    return x > 20.0f ? x : log1pf(expf(x)); /* torch's threshold */
}

/* Tokens in order, value heads split between threads. */
static void delta_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct delta_job * job = p;
    struct fc_engine * e = job->e;
    const struct fc_config * c = &e->model.cfg;
    struct fc_scratch * s = &e->s;
    const int32_t nk = c->la_n_k_heads, nv = c->la_n_v_heads, dk = c->la_k_dim, dv = c->la_v_dim;
    const int32_t conv = fc_la_conv_dim(c), vdim = nv * dv, ratio = nv / nk;
    int64_t h0, h1;
    fc_split_range(nv, chunk, n_chunks, 1, &h0, &h1);
    float kv[1024], delta[1024], o[1024];
    FC_ASSERT(dv <= 1024);
    struct fc_backend * be = &e->be;
    for (int32_t h = (int32_t)h0; h < (int32_t)h1; h++) {
        float * S = job->ssm + (size_t)h * dk * dv;
        const int32_t kh = h / ratio;
        if (be->ops->delta_rule) {
            /* the backend's kernel, 64 tokens at a time, then the gated RMSNorm of its outputs */
            float betas[64], decays[64];
            for (int32_t t0 = 0; t0 < job->n; t0 += 64) {
                const int32_t nt = job->n - t0 < 64 ? job->n - t0 : 64;
                for (int32_t u = 0; u < nt; u++) {
                    const int32_t t = t0 + u;
                    betas[u] = fc_sigmoid(s->proj3[(size_t)t * nv + h]);
                    decays[u] = expf(job->ly->a_neg[h] * softplus(s->proj4[(size_t)t * nv + h] + job->ly->dt_bias[h]));
                }
                const float * row = s->proj + (size_t)t0 * conv;
                float * out0 = s->attn + (size_t)t0 * vdim + (size_t)h * dv;
                be->ops->delta_rule(be, S, dk, dv, nt, row + (size_t)kh * dk, row + (size_t)nk * dk + (size_t)kh * dk, (size_t)conv,
                                    row + (size_t)2 * nk * dk + (size_t)h * dv, (size_t)conv, betas, decays, out0, (size_t)vdim);
                for (int32_t u = 0; u < nt; u++) {
                    float * out = out0 + (size_t)u * vdim;
                    double ss = 0.0;
                    for (int32_t j = 0; j < dv; j++) ss += (double)out[j] * out[j];
                    const float r = (float)(1.0 / sqrt(ss / dv + c->rms_eps));
                    const float * z = s->proj2 + (size_t)(t0 + u) * vdim + (size_t)h * dv;
                    for (int32_t j = 0; j < dv; j++) out[j] = out[j] * r * job->ly->la_norm[j] * fc_silu(z[j]);
                }
            }
            continue;
        }
        for (int32_t t = 0; t < job->n; t++) {
            const float * row = s->proj + (size_t)t * conv;
            const float * q = row + (size_t)kh * dk;
            const float * k = row + (size_t)nk * dk + (size_t)kh * dk;
            const float * v = row + (size_t)2 * nk * dk + (size_t)h * dv;
            const float b = s->proj3[(size_t)t * nv + h];
            const float a = s->proj4[(size_t)t * nv + h];
            const float beta = fc_sigmoid(b);
            const float decay = expf(job->ly->a_neg[h] * softplus(a + job->ly->dt_bias[h]));
            /* kv = (decay * S)^T k */
            for (int32_t j = 0; j < dv; j++) kv[j] = 0.0f;
            for (int32_t i = 0; i < dk; i++) {
                const float ki = k[i];
                const float * Si = S + (size_t)i * dv;
                for (int32_t j = 0; j < dv; j++) kv[j] += Si[j] * ki;
            }
            for (int32_t j = 0; j < dv; j++) {
                delta[j] = beta * (v[j] - decay * kv[j]);
                o[j] = 0.0f;
            }
            /* S = decay * S + k (x) delta; o = S^T q */
            for (int32_t i = 0; i < dk; i++) {
                const float ki = k[i], qi = q[i];
                float * Si = S + (size_t)i * dv;
                for (int32_t j = 0; j < dv; j++) {
                    float sv = decay * Si[j] + ki * delta[j];
                    Si[j] = sv;
                    o[j] += sv * qi;
                }
            }
            /* gated RMSNorm over dv: rmsnorm(o) * weight * silu(z) */
            double ss = 0.0;
            for (int32_t j = 0; j < dv; j++) ss += (double)o[j] * o[j];
            const float r = (float)(1.0 / sqrt(ss / dv + c->rms_eps));
            const float * z = s->proj2 + (size_t)t * vdim + (size_t)h * dv;
            float * out = s->attn + (size_t)t * vdim + (size_t)h * dv;
            for (int32_t j = 0; j < dv; j++) out[j] = o[j] * r * job->ly->la_norm[j] * fc_silu(z[j]);
        }
    }
}

/* L2-normalise a head vector in place: x * rsqrt(sum x^2 + 1e-6), then scale. */
static void l2norm(float * x, int32_t n, float scale) {
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float r = (float)(1.0 / sqrt(ss + 1e-6)) * scale;
    for (int32_t i = 0; i < n; i++) x[i] *= r;
}

struct conv_job {
    const struct fc_engine * e;
    const struct fc_layer * ly;
    float * conv_state;
    int32_t n;
};

/*
 * Causal depthwise conv + SiLU over channel ranges (each channel is on its own): tap K-1 multiplies the current
 * token, the state holds the K-1 previous inputs; the sums in the same order for any split. Channels go in
 * blocks of CONV_BLOCK, each block's taps and window in small arrays across all the tokens (a loop over the
 * block's channels the compiler vectorizes), then SiLU over the block's outputs.
 */
enum { CONV_BLOCK = 16, CONV_MAX_K = 8 };

static void conv_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct conv_job * job = p;
    const struct fc_config * c = &job->e->model.cfg;
    const int32_t K = c->la_conv_kernel, conv = fc_la_conv_dim(c);
    float * st = job->conv_state;
    int64_t c0, c1;
    fc_split_range(conv, chunk, n_chunks, CONV_BLOCK, &c0, &c1);
    FC_ASSERT(K >= 1 && K <= CONV_MAX_K);
    float w[CONV_MAX_K][CONV_BLOCK], win[CONV_MAX_K][CONV_BLOCK];
    for (int32_t cb = (int32_t)c0; cb < (int32_t)c1; cb += CONV_BLOCK) {
        const int32_t nb = (int32_t)c1 - cb < CONV_BLOCK ? (int32_t)c1 - cb : CONV_BLOCK;
        for (int32_t j = 0; j < K; j++)
            for (int32_t i = 0; i < CONV_BLOCK; i++) w[j][i] = i < nb ? job->ly->conv_w[(size_t)(cb + i) * K + j] : 0.0f;
        for (int32_t j = 0; j + 1 < K; j++)
            for (int32_t i = 0; i < CONV_BLOCK; i++) win[j][i] = i < nb ? st[(size_t)j * conv + cb + i] : 0.0f;
        for (int32_t t = 0; t < job->n; t++) {
            float * row = job->e->s.proj + (size_t)t * conv + cb;
            float x[CONV_BLOCK], acc[CONV_BLOCK];
            for (int32_t i = 0; i < CONV_BLOCK; i++) x[i] = i < nb ? row[i] : 0.0f;
            for (int32_t i = 0; i < CONV_BLOCK; i++) acc[i] = w[K - 1][i] * x[i];
            for (int32_t j = 0; j < K - 1; j++)
                for (int32_t i = 0; i < CONV_BLOCK; i++) acc[i] += w[j][i] * win[j][i];
            /* shift the window: drop the oldest, append this input */
            for (int32_t j = 0; j + 2 < K; j++)
                for (int32_t i = 0; i < CONV_BLOCK; i++) win[j][i] = win[j + 1][i];
            if (K > 1)
                for (int32_t i = 0; i < CONV_BLOCK; i++) win[K - 2][i] = x[i];
            for (int32_t i = 0; i < nb; i++) row[i] = fc_silu(acc[i]);
        }
        for (int32_t j = 0; j + 1 < K; j++)
            for (int32_t i = 0; i < nb; i++) st[(size_t)j * conv + cb + i] = win[j][i];
    }
}

/* q and k of each head L2-normalised (q also scaled by 1/sqrt(dk)), over token ranges. */
static void qk_norm_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct conv_job * job = p;
    const struct fc_config * c = &job->e->model.cfg;
    const int32_t nk = c->la_n_k_heads, dk = c->la_k_dim, conv = fc_la_conv_dim(c);
    const float qscale = 1.0f / sqrtf((float)dk);
    int64_t t0, t1;
    fc_split_range(job->n, chunk, n_chunks, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float * row = job->e->s.proj + (size_t)t * conv;
        for (int32_t h = 0; h < nk; h++) {
            l2norm(row + (size_t)h * dk, dk, qscale);
            l2norm(row + (size_t)nk * dk + (size_t)h * dk, dk, 1.0f);
        }
    }
}

void fc_linear_attn_forward(struct fc_engine * e, int32_t layer, int32_t n) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t conv = fc_la_conv_dim(c);

    /* [n, conv], [n, nv*dv], [n, nv], [n, nv] */
    const struct fc_matrix * ws[4] = { &ly->in_qkv, &ly->in_z, &ly->in_b, &ly->in_a };
    float * outs[4] = { s->proj, s->proj2, s->proj3, s->proj4 };
    fc_matmul_n(be, ws, outs, 4, s->xn, n);

    /* the conv and the q/k norms over the pool when the chunk is big enough to be worth waking it */
    struct conv_job cj = { e, ly, e->st.conv[ly->index_in_kind], n };
    const int32_t pool_n = fc_pool_size(e->pool), par = (int64_t)n * conv >= 65536 ? pool_n : 1;
    if (par > 1) fc_pool_run(e->pool, conv_worker, &cj, par * 2 < (conv + 15) / 16 ? par * 2 : (conv + 15) / 16);
    else conv_worker(&cj, 0, 1, 0);
    if (par > 1) fc_pool_run(e->pool, qk_norm_worker, &cj, par * 2 < n ? par * 2 : n);
    else qk_norm_worker(&cj, 0, 1, 0);

    struct delta_job job = { e, ly, e->st.ssm[ly->index_in_kind], n };
    fc_pool_run(e->pool, delta_worker, &job, c->la_n_v_heads);

    be->ops->matmul(be, &ly->out_proj, s->attn, s->out, n);
}
