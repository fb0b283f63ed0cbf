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
    int32_t heads; /* per unit of work: a K/V head's group, or 1 */
};

/* Queries of one head whose scores and weighted sums go through a block of K/V together (the grouped path). */
#define ATT_QT 4

size_t fc_full_attn_scratch_floats(const struct fc_engine * e) {
    const size_t hd = (size_t)e->model.cfg.head_dim, g = (size_t)(e->model.cfg.n_heads / e->model.cfg.n_kv_heads);
    /* K, V and K transposed; the scores of ATT_QT queries; the state of a unit's queries (at most a group's
       heads x ATT_TQ tokens); ATT_QT scaled queries */
    return 3 * ATT_BLK * hd + ATT_QT * ATT_BLK + g * ATT_TQ * hd + 2 * g * ATT_TQ + ATT_QT * hd;
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

/*
 * Units of (block of tokens, heads): in a prefill the heads of one K/V head's group (each block of K/V rows is
 * converted, and K transposed, once for all of them), in decode one head (more units than threads); the
 * heaviest (last) token blocks first. Several queries (a block of tokens) share a transposed K block; ATT_QT
 * queries of a head whose causal range covers the whole block take their scores and weighted sums together, so
 * each K/V vector loaded serves ATT_QT queries. One query's sums run in the same order on every path (and for
 * any split between threads): the numbers do not depend on the path.
 */
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
    float * kt = vbuf + (size_t)ATT_BLK * hd;             /* [hd][ATT_BLK]: the block's K transposed */
    float * sc = kt + (size_t)ATT_BLK * hd;               /* [ATT_QT][ATT_BLK] scores, then weights */
    float * acc = sc + (size_t)ATT_QT * ATT_BLK;          /* [heads][ATT_TQ][hd] */
    float * mx = acc + (size_t)group * ATT_TQ * hd;       /* [heads][ATT_TQ] running max */
    float * sum = mx + (size_t)group * ATT_TQ;            /* [heads][ATT_TQ] running sum */
    float * qs = sum + (size_t)group * ATT_TQ;            /* [ATT_QT][hd] scaled queries */
    const int32_t n_tb = (job->n + ATT_TQ - 1) / ATT_TQ, heads = job->heads, per_tb = nh / heads;
    int64_t w0, w1;
    fc_split_range((int64_t)n_tb * per_tb, chunk, n_chunks, 1, &w0, &w1);
    for (int64_t w = w0; w < w1; w++) {
        const int32_t tb = n_tb - 1 - (int32_t)(w / per_tb), h0 = (int32_t)(w % per_tb) * heads, kvh = h0 / group;
        const int32_t t0 = tb * ATT_TQ, t1 = t0 + ATT_TQ < job->n ? t0 + ATT_TQ : job->n, nt = t1 - t0;
        const int32_t last = job->pos0 + t1 - 1;
        const int transpose = nt >= 4; /* as attn_worker decides it */
        for (int32_t i = 0; i < heads * ATT_TQ; i++) { mx[i] = -INFINITY; sum[i] = 0.0f; }
        memset(acc, 0, (size_t)heads * ATT_TQ * hd * sizeof(float));
        for (int32_t j0 = 0; j0 <= last; j0 += ATT_BLK) {
            const int32_t j1 = j0 + ATT_BLK <= last + 1 ? j0 + ATT_BLK : last + 1, jb = j1 - j0;
            size_t ks, vs;
            const float * K = fc_kv_rows(kv, job->layer, 0, kvh, j0, j1, kbuf, &ks);
            const float * V = fc_kv_rows(kv, job->layer, 1, kvh, j0, j1, vbuf, &vs);
            for (int32_t j = 0; transpose && j < jb; j++) {
                for (int32_t i = 0; i < hd; i++) kt[(size_t)i * ATT_BLK + j] = K[(size_t)j * ks + i];
            }
            for (int32_t i = 0; transpose && jb < ATT_BLK && i < hd; i++) memset(kt + (size_t)i * ATT_BLK + jb, 0, (size_t)(ATT_BLK - jb) * sizeof(float));
            for (int32_t h = h0; h < h0 + heads; h++) {
                const int32_t hg = h - h0;
                for (int32_t ta = 0; ta < nt; ta += ATT_QT) {
                    /* the tile's queries that see any of this block, each with the part it sees */
                    int32_t nq = 0, jn[ATT_QT];
                    for (int32_t q = 0; q < ATT_QT && ta + q < nt; q++) {
                        const int32_t pos = job->pos0 + t0 + ta + q;
                        if (j0 > pos) break;
                        jn[q] = (j1 <= pos + 1 ? j1 : pos + 1) - j0;
                        nq++;
                    }
                    if (nq == 0) break;
                    for (int32_t q = 0; q < nq; q++) {
                        const float * qv = s->proj + (size_t)(t0 + ta + q) * 2 * nh * hd + (size_t)h * 2 * hd;
                        for (int32_t i = 0; i < hd; i++) qs[(size_t)q * hd + i] = qv[i] * scale;
                    }
                    const int full = transpose && nq == ATT_QT && jn[0] == jb && jn[ATT_QT - 1] == jb;
                    if (full) { /* ATT_QT queries x 16 scores at a time, each K vector loaded once for all of them */
                        for (int32_t jj = 0; jj < jb; jj += 16) {
                            v8f a00 = { 0 }, a01 = { 0 }, a10 = { 0 }, a11 = { 0 }, a20 = { 0 }, a21 = { 0 }, a30 = { 0 }, a31 = { 0 };
                            for (int32_t i = 0; i < hd; i++) {
                                const float * kr = kt + (size_t)i * ATT_BLK + jj;
                                const v8f k0 = load8(kr), k1 = load8(kr + 8);
                                const float q0 = qs[i], q1 = qs[hd + i], q2 = qs[2 * hd + i], q3 = qs[3 * hd + i];
                                a00 += q0 * k0; a01 += q0 * k1;
                                a10 += q1 * k0; a11 += q1 * k1;
                                a20 += q2 * k0; a21 += q2 * k1;
                                a30 += q3 * k0; a31 += q3 * k1;
                            }
                            store8(sc + jj, a00); store8(sc + jj + 8, a01);
                            store8(sc + ATT_BLK + jj, a10); store8(sc + ATT_BLK + jj + 8, a11);
                            store8(sc + 2 * ATT_BLK + jj, a20); store8(sc + 2 * ATT_BLK + jj + 8, a21);
                            store8(sc + 3 * ATT_BLK + jj, a30); store8(sc + 3 * ATT_BLK + jj + 8, a31);
                        }
                    } else {
                        for (int32_t q = 0; q < nq; q++) {
                            const float * qq = qs + (size_t)q * hd;
                            float * sq = sc + (size_t)q * ATT_BLK;
                            for (int32_t j = 0; !transpose && j < jn[q]; j++) sq[j] = dot8(qq, K + (size_t)j * ks, hd);
                            for (int32_t jj = 0; transpose && jj < jn[q]; jj += 16) {
                                v8f a0 = { 0 }, a1 = { 0 };
                                for (int32_t i = 0; i < hd; i++) {
                                    const float * kr = kt + (size_t)i * ATT_BLK + jj;
                                    a0 += qq[i] * load8(kr);
                                    a1 += qq[i] * load8(kr + 8);
                                }
                                store8(sq + jj, a0);
                                store8(sq + jj + 8, a1);
                            }
                        }
                    }
                    /* each query's running max, correction and weights, as attn_worker */
                    float corr[ATT_QT];
                    for (int32_t q = 0; q < nq; q++) {
                        float * sq = sc + (size_t)q * ATT_BLK;
                        float * m = mx + (size_t)hg * ATT_TQ + ta + q;
                        float bm = *m;
                        for (int32_t j = 0; j < jn[q]; j++) bm = sq[j] > bm ? sq[j] : bm;
                        corr[q] = *m == -INFINITY ? 0.0f : exp_neg8((v8f){ 0 } + (*m - bm))[0];
                        for (int32_t j = 0; j < jn[q]; j += 8) store8(sq + j, exp_neg8(load8(sq + j) - bm));
                        float add = 0.0f;
                        for (int32_t j = 0; j < jn[q]; j++) add += sq[j];
                        float * su = sum + (size_t)hg * ATT_TQ + ta + q;
                        *su = *su * corr[q] + add;
                        *m = bm;
                    }
                    float * o0 = acc + ((size_t)hg * ATT_TQ + ta) * hd;
                    int32_t i = 0;
                    if (nq == ATT_QT && jn[0] == jn[1] && jn[0] == jn[2] && jn[0] == jn[3]) {
                        /* 16 outputs of ATT_QT queries at a time: each V vector loaded once for all of them */
                        const int32_t m = jn[0];
                        const float * w0_ = sc, * w1_ = sc + ATT_BLK, * w2_ = sc + 2 * ATT_BLK, * w3_ = sc + 3 * ATT_BLK;
                        for (; i + 16 <= hd; i += 16) {
                            float * p0 = o0 + i, * p1 = o0 + hd + i, * p2 = o0 + 2 * hd + i, * p3 = o0 + 3 * hd + i;
                            v8f a00 = load8(p0) * corr[0], a01 = load8(p0 + 8) * corr[0], a10 = load8(p1) * corr[1], a11 = load8(p1 + 8) * corr[1];
                            v8f a20 = load8(p2) * corr[2], a21 = load8(p2 + 8) * corr[2], a30 = load8(p3) * corr[3], a31 = load8(p3 + 8) * corr[3];
                            for (int32_t j = 0; j < m; j++) {
                                const float * v = V + (size_t)j * vs + i;
                                const v8f v0 = load8(v), v1 = load8(v + 8);
                                a00 += w0_[j] * v0; a01 += w0_[j] * v1;
                                a10 += w1_[j] * v0; a11 += w1_[j] * v1;
                                a20 += w2_[j] * v0; a21 += w2_[j] * v1;
                                a30 += w3_[j] * v0; a31 += w3_[j] * v1;
                            }
                            store8(p0, a00); store8(p0 + 8, a01); store8(p1, a10); store8(p1 + 8, a11);
                            store8(p2, a20); store8(p2 + 8, a21); store8(p3, a30); store8(p3 + 8, a31);
                        }
                    }
                    for (int32_t q = 0; q < nq; q++) { /* the rest: one query at a time, as attn_worker */
                        const float * sq = sc + (size_t)q * ATT_BLK;
                        float * o = o0 + (size_t)q * hd;
                        int32_t ii = i;
                        for (; ii + 16 <= hd; ii += 16) {
                            v8f a0 = load8(o + ii) * corr[q], a1 = load8(o + ii + 8) * corr[q];
                            for (int32_t j = 0; j < jn[q]; j++) {
                                const float * v = V + (size_t)j * vs + ii;
                                a0 += sq[j] * load8(v);
                                a1 += sq[j] * load8(v + 8);
                            }
                            store8(o + ii, a0);
                            store8(o + ii + 8, a1);
                        }
                        for (; ii < hd; ii++) {
                            float a = o[ii] * corr[q];
                            for (int32_t j = 0; j < jn[q]; j++) a += sq[j] * V[(size_t)j * vs + ii];
                            o[ii] = a;
                        }
                    }
                }
            }
        }
        for (int32_t h = h0; h < h0 + heads; h++) {
            const int32_t hg = h - h0;
            for (int32_t t = 0; t < nt; t++) {
                const float * gate = s->proj + (size_t)(t0 + t) * 2 * nh * hd + (size_t)h * 2 * hd + hd;
                float * o = s->attn + (size_t)(t0 + t) * nh * hd + (size_t)h * hd;
                const float * a_ = acc + ((size_t)hg * ATT_TQ + t) * hd;
                const float inv = 1.0f / sum[(size_t)hg * ATT_TQ + t];
                for (int32_t i = 0; i < hd; i++) o[i] = a_[i] * inv * fc_sigmoid(gate[i]);
            }
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

    /* a group's heads per unit when that still gives every thread two units, else one head; a unit per chunk
       (each thread claims the next) */
    const int32_t n_tb = (n + ATT_TQ - 1) / ATT_TQ, heads = n_tb * nkv >= 2 * e->n_threads ? nh / nkv : 1, units = n_tb * (nh / heads);
    struct attn_job job = { e, ly->index_in_kind, n, pos0, heads };
    fc_pool_run(e->pool, attn_worker, &job, units < FC_POOL_MAX_CHUNKS ? units : FC_POOL_MAX_CHUNKS);

    be->ops->matmul(be, &ly->o_proj, s->attn, s->out, n);
}
