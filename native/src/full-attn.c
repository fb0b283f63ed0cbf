/*
 * Gated full attention: q (with its per-head output gate), k, v projections; per-head q/k RMSNorm;
 * partial rotate-half RoPE; grouped-query causal attention over the KV cache (kv-cache.h); sigmoid gate; o_proj.
 */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "nn-math.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* the 32-byte vectors only pass between inlined functions of this file */
#endif

/*
 * Attention runs over the cache in blocks of ATT_BLK positions with a running max and sum per query
 * (online softmax), for up to ATT_TQ tokens at once: the scratch is per block, never per context,
 * and each block of K/V rows is converted to floats once for all those tokens.
 */
#define ATT_BLK 64
#define ATT_TQ 16

struct attn_job {
    struct fc_engine * e;
    int32_t layer; /* index among the full-attention layers */
    int32_t n;
    int32_t pos0;
};

size_t fc_full_attn_scratch_floats(const struct fc_engine * e) {
    const size_t hd = (size_t)e->model.cfg.head_dim;
    return 3 * ATT_BLK * hd + ATT_BLK + ATT_TQ * hd + 2 * ATT_TQ + hd;
}

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

/* Eight floats as one value (gcc/clang vector extensions): AVX2 registers, or two SSE/NEON ones. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f load8(const float * p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float * p, v8f v) { memcpy(p, &v, sizeof v); }

/* q . k over n values, eight lanes at a time (the lanes summed in a fixed order). */
static inline float dot8(const float * q, const float * k, int32_t n) {
    v8f a = { 0 };
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) a += load8(q + i) * load8(k + i);
    float d = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < n; i++) d += q[i] * k[i];
    return d;
}

/*
 * e^x for x <= 0, eight at a time: x log2(e) = n + f with n an integer and |f| <= 1/2, e^(f ln 2) by its
 * Taylor series to degree 7 (relative error < 1e-7), times 2^n through the exponent bits. x is clamped at
 * -87 (e^-87 ~ 1.6e-38: nothing against the max's weight of 1).
 */
static inline v8f exp_neg8(v8f x) {
    const v8f lo = x - x - 87.0f;
    const v8i low = x < lo;
    x = (v8f)(((v8i)x & ~low) | ((v8i)lo & low));
    const v8f t = x * 1.44269504088896341f;
    const v8f n = (t + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    const v8f y = (t - n) * 0.69314718055994531f;
    v8f p = y * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * y + 1.0f / 120.0f;
    p = p * y + 1.0f / 24.0f;
    p = p * y + 1.0f / 6.0f;
    p = p * y + 0.5f;
    p = p * y + 1.0f;
    p = p * y + 1.0f;
    const v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
    return p * (v8f)bits;
}

/* (block of tokens, head) pairs split between threads. */
FC_SIMD_CLONES static void attn_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct attn_job * job = p;
    struct fc_engine * e = job->e;
    const struct fc_config * c = &e->model.cfg;
    struct fc_scratch * s = &e->s;
    const struct fc_kv_cache * kv = &e->st.kv;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, group = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    float * kbuf = s->attn_tmp + (size_t)thread * fc_full_attn_scratch_floats(e);
    float * vbuf = kbuf + (size_t)ATT_BLK * hd;
    float * kt = vbuf + (size_t)ATT_BLK * hd;   /* [hd][ATT_BLK]: the block's K transposed */
    float * sc = kt + (size_t)ATT_BLK * hd;     /* [ATT_BLK] scores, then weights */
    float * acc = sc + ATT_BLK;                 /* [ATT_TQ][hd] */
    float * mx = acc + (size_t)ATT_TQ * hd;     /* [ATT_TQ] running max */
    float * sum = mx + ATT_TQ;                  /* [ATT_TQ] running sum */
    float * qs = sum + ATT_TQ;                  /* [hd] scaled query */
    const int32_t n_tb = (job->n + ATT_TQ - 1) / ATT_TQ;
    int64_t w0, w1;
    fc_split_range((int64_t)n_tb * nh, chunk, n_chunks, 1, &w0, &w1);
    for (int64_t w = w0; w < w1; w++) {
        const int32_t tb = (int32_t)(w / nh), h = (int32_t)(w % nh), kvh = h / group;
        const int32_t t0 = tb * ATT_TQ, t1 = t0 + ATT_TQ < job->n ? t0 + ATT_TQ : job->n, nt = t1 - t0;
        const int32_t last = job->pos0 + t1 - 1;
        for (int32_t t = 0; t < nt; t++) { mx[t] = -INFINITY; sum[t] = 0.0f; }
        memset(acc, 0, (size_t)nt * hd * sizeof(float));
        for (int32_t j0 = 0; j0 <= last; j0 += ATT_BLK) {
            const int32_t j1 = j0 + ATT_BLK <= last + 1 ? j0 + ATT_BLK : last + 1, jb = j1 - j0;
            size_t ks, vs;
            const float * K = fc_kv_rows(kv, job->layer, 0, kvh, j0, j1, kbuf, &ks);
            const float * V = fc_kv_rows(kv, job->layer, 1, kvh, j0, j1, vbuf, &vs);
            /* several queries share the block: transpose K once so 16 scores come out of each pass; one query
               (decoding) reads the rows as they are */
            const int transpose = nt >= 4;
            for (int32_t j = 0; transpose && j < jb; j++) {
                for (int32_t i = 0; i < hd; i++) kt[(size_t)i * ATT_BLK + j] = K[(size_t)j * ks + i];
            }
            for (int32_t i = 0; transpose && jb < ATT_BLK && i < hd; i++) memset(kt + (size_t)i * ATT_BLK + jb, 0, (size_t)(ATT_BLK - jb) * sizeof(float));
            for (int32_t t = 0; t < nt; t++) {
                const int32_t pos = job->pos0 + t0 + t;
                if (j0 > pos) break;
                const int32_t jn = (j1 <= pos + 1 ? j1 : pos + 1) - j0;
                const float * q = s->proj + (size_t)(t0 + t) * 2 * nh * hd + (size_t)h * 2 * hd;
                for (int32_t i = 0; i < hd; i++) qs[i] = q[i] * scale;
                /* 16 scores at a time over the (zero-padded) block, the sums in registers */
                for (int32_t j = 0; !transpose && j < jn; j++) sc[j] = dot8(qs, K + (size_t)j * ks, hd);
                for (int32_t jj = 0; transpose && jj < jn; jj += 16) {
                    v8f a0 = { 0 }, a1 = { 0 };
                    for (int32_t i = 0; i < hd; i++) {
                        const float * kr = kt + (size_t)i * ATT_BLK + jj;
                        a0 += qs[i] * load8(kr);
                        a1 += qs[i] * load8(kr + 8);
                    }
                    store8(sc + jj, a0);
                    store8(sc + jj + 8, a1);
                }
                float bm = mx[t];
                for (int32_t j = 0; j < jn; j++) bm = sc[j] > bm ? sc[j] : bm;
                const float corr = mx[t] == -INFINITY ? 0.0f : exp_neg8((v8f){ 0 } + (mx[t] - bm))[0];
                for (int32_t j = 0; j < jn; j += 8) store8(sc + j, exp_neg8(load8(sc + j) - bm));
                float add = 0.0f;
                for (int32_t j = 0; j < jn; j++) add += sc[j];
                float * o = acc + (size_t)t * hd;
                int32_t i = 0;
                for (; i + 16 <= hd; i += 16) { /* 16 outputs at a time, in registers over the block */
                    v8f a0 = load8(o + i) * corr, a1 = load8(o + i + 8) * corr;
                    for (int32_t j = 0; j < jn; j++) {
                        const float * v = V + (size_t)j * vs + i;
                        a0 += sc[j] * load8(v);
                        a1 += sc[j] * load8(v + 8);
                    }
                    store8(o + i, a0);
                    store8(o + i + 8, a1);
                }
                for (; i < hd; i++) {
                    float a = o[i] * corr;
                    for (int32_t j = 0; j < jn; j++) a += sc[j] * V[(size_t)j * vs + i];
                    o[i] = a;
                }
                sum[t] = sum[t] * corr + add;
                mx[t] = bm;
            }
        }
        for (int32_t t = 0; t < nt; t++) {
            const float * gate = s->proj + (size_t)(t0 + t) * 2 * nh * hd + (size_t)h * 2 * hd + hd;
            float * o = s->attn + (size_t)(t0 + t) * nh * hd + (size_t)h * hd;
            const float inv = 1.0f / sum[t];
            for (int32_t i = 0; i < hd; i++) o[i] = acc[(size_t)t * hd + i] * inv * fc_sigmoid(gate[i]);
        }
    }
}

void fc_full_attn_forward(struct fc_engine * e, int32_t layer, int32_t n) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_layer * ly = &e->model.layers[layer];
    struct fc_scratch * s = &e->s;
    struct fc_backend * be = &e->be;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim;
    const int32_t pos0 = e->st.n_past;

    /* [n, nh * 2 * hd] (per head [q | gate]), [n, nkv * hd] twice */
    const struct fc_matrix * ws[3] = { &ly->q_proj, &ly->k_proj, &ly->v_proj };
    float * outs[3] = { s->proj, s->proj2, s->proj3 };
    fc_matmul_n(be, ws, outs, 3, s->xn, n);

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
        fc_kv_store(&e->st.kv, ly->index_in_kind, 0, pos, s->proj2 + (size_t)t * nkv * hd);
        fc_kv_store(&e->st.kv, ly->index_in_kind, 1, pos, s->proj3 + (size_t)t * nkv * hd);
    }

    struct attn_job job = { e, ly->index_in_kind, n, pos0 };
    int32_t pairs = (n + ATT_TQ - 1) / ATT_TQ * nh, n_chunks = e->n_threads * 4;
    fc_pool_run(e->pool, attn_worker, &job, pairs < n_chunks ? pairs : n_chunks);

    be->ops->matmul(be, &ly->o_proj, s->attn, s->out, n);
}
