/*
 * The forward pass, one place for every backend: the engine loop over the layer-level seam (backend.h) —
 * embed, per layer attend / route (the host sync) / the routed experts' reads / shared / experts / finish,
 * then the logits — with the expert reads grouped by expert over a batch and issued in two waves of slots;
 * the CPU layer backend (the seam over the engine's scratch, sequence state and CPU kernels; the layer math
 * is in full-attn.c, linear-attn.c and moe.c); and `bench verify`'s op-by-op comparison of a GPU backend
 * with the CPU one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "nn-math.h"

/* ===== the CPU layer backend ===== */

/* Dequantize embedding row `tok` into out[hidden]. */
static void embed_token(const struct fc_matrix * m, int32_t tok, float * out) {
    const uint8_t * r = m->data + (size_t)tok * m->row_bytes;
    for (int32_t i = 0; i < m->cols; i++) {
        switch (m->type) {
        case FC_DTYPE_F32: memcpy(&out[i], r + (size_t)i * 4, 4); break;
        case FC_DTYPE_BF16: { uint16_t h; memcpy(&h, r + (size_t)i * 2, 2); out[i] = fc_bf16_to_f32(h); break; }
        case FC_DTYPE_F16: { uint16_t h; memcpy(&h, r + (size_t)i * 2, 2); out[i] = fc_f16_to_f32(h); break; }
        default: {
            const int bits = fc_dtype_bits(m->type);
            const size_t bit = (size_t)i * bits;
            const float q = (float)((r[bit / 8] >> (bit % 8)) & ((1u << bits) - 1u));
            const size_t g = (size_t)tok * (size_t)(m->cols / m->group_size) + (size_t)(i / m->group_size);
            out[i] = q * fc_bf16_to_f32(m->scales[g]) + fc_bf16_to_f32(m->biases[g]);
        }
        }
    }
}

static struct fc_engine * cpu_engine(struct fc_layer_backend * lb) { return lb->ctx; }

static enum fc_status cpu_add_memory(struct fc_layer_backend * lb, void * base, size_t n_bytes, struct fc_error * err) {
    return FC_STATUS_OK; /* the CPU reads any memory */
}

static enum fc_status cpu_begin(struct fc_layer_backend * lb, const int32_t * ids, int32_t n, int32_t pos0, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    const int32_t H = e->model.cfg.hidden_size;
    e->chunk_n = n;
    e->chunk_pos0 = pos0;
    for (int32_t t = 0; t < n; t++) embed_token(&e->model.embed, ids[t], e->s.x + (size_t)t * H);
    return FC_STATUS_OK;
}

struct norm_job {
    struct fc_engine * e;
    const float * w;
    int32_t n;
};

static void norm_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct norm_job * job = p;
    const struct fc_config * c = &job->e->model.cfg;
    const int32_t H = c->hidden_size;
    int64_t t0, t1;
    fc_split_range(job->n, chunk, n_chunks, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) fc_rmsnorm(job->e->s.xn + (size_t)t * H, job->e->s.x + (size_t)t * H, job->w, H, c->rms_eps);
}

/* xn = rmsnorm(x) * w, token by token (over the pool for a batch) */
static void norm_rows(struct fc_engine * e, const float * w, int32_t n) {
    struct norm_job job = { e, w, n };
    const int32_t chunks = fc_pool_chunks(e->pool, (int64_t)n * e->model.cfg.hidden_size, 32768);
    if (chunks > 1) fc_pool_run(e->pool, norm_worker, &job, chunks);
    else norm_worker(&job, 0, 1, 0);
}

static void add_out(struct fc_engine * e, int32_t n) {
    const size_t count = (size_t)n * e->model.cfg.hidden_size;
    for (size_t i = 0; i < count; i++) e->s.x[i] += e->s.out[i];
}

static enum fc_status cpu_attend(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    const struct fc_layer * ly = &e->model.layers[l];
    norm_rows(e, ly->input_norm, e->chunk_n);
    if (ly->is_full) fc_full_attn_forward(e, l, e->chunk_n);
    else fc_linear_attn_forward(e, l, e->chunk_n);
    add_out(e, e->chunk_n);
    return FC_STATUS_OK;
}

static enum fc_status cpu_route(struct fc_layer_backend * lb, int32_t l, const int32_t ** ids, const float ** weights,
                                struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    norm_rows(e, e->model.layers[l].post_norm, e->chunk_n);
    fc_moe_route(e, l, e->chunk_n);
    *ids = e->s.topk_ids;
    *weights = e->s.topk_w;
    return FC_STATUS_OK;
}

static enum fc_status cpu_shared(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    fc_moe_experts_discard(e); /* nothing of an earlier layer that stopped half-way */
    fc_moe_shared(e, l, e->chunk_n);
    return FC_STATUS_OK;
}

static enum fc_status cpu_expert(struct fc_layer_backend * lb, int32_t l, const struct fc_expert_use * use, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    if (e->chunk_n > 1) fc_moe_expert_defer(e, use); /* computed with the others at sync / finish */
    else fc_moe_expert(e, use, e->chunk_n);
    return FC_STATUS_OK;
}

static enum fc_status cpu_experts_one(struct fc_layer_backend * lb, int32_t l, const struct fc_expert_use * uses, int32_t n_uses,
                                      struct fc_error * err) {
    fc_moe_experts_one(cpu_engine(lb), uses, n_uses);
    return FC_STATUS_OK;
}

static enum fc_status cpu_finish(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    fc_moe_experts_combine(cpu_engine(lb), cpu_engine(lb)->chunk_n);
    add_out(cpu_engine(lb), cpu_engine(lb)->chunk_n);
    return FC_STATUS_OK;
}

static enum fc_status cpu_logits(struct fc_layer_backend * lb, float * all, float * last, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    const struct fc_model * m = &e->model;
    const int32_t H = m->cfg.hidden_size, V = m->cfg.vocab_size, n = e->chunk_n;
    struct fc_scratch * s = &e->s;
    if (all) {
        norm_rows(e, m->final_norm, n);
        e->be.ops->matmul(&e->be, &m->lm_head, s->xn, all, n);
        if (last) memcpy(last, all + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    } else if (last) {
        fc_rmsnorm(s->xn, s->x + (size_t)(n - 1) * H, m->final_norm, H, m->cfg.rms_eps);
        e->be.ops->matmul(&e->be, &m->lm_head, s->xn, last, 1);
    }
    return FC_STATUS_OK;
}

/* the deferred experts of the wave whose slots are about to be refilled */
static enum fc_status cpu_sync(struct fc_layer_backend * lb, struct fc_error * err) {
    fc_moe_experts_flush(cpu_engine(lb));
    return FC_STATUS_OK;
}

static enum fc_status cpu_tap(struct fc_layer_backend * lb, enum fc_tap which, struct fc_tap_view * v, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    const struct fc_config * c = &e->model.cfg;
    const struct fc_scratch * s = &e->s;
    const size_t n = (size_t)e->chunk_n, H = (size_t)c->hidden_size, nv = (size_t)c->la_n_v_heads, vdim = nv * c->la_v_dim;
    const size_t qdim = (size_t)c->n_heads * c->head_dim, kvdim = (size_t)c->n_kv_heads * c->head_dim;
    memset(v, 0, sizeof *v);
    switch (which) {
    case FC_TAP_NORM: v->p[0] = s->xn, v->n[0] = n * H; break;
    case FC_TAP_QKV: /* which kind the caller knows; both are given */
        v->p[0] = s->proj3, v->n[0] = n * kvdim;               /* full: v */
        v->p[1] = s->proj2, v->n[1] = n * vdim;                /* linear: z */
        v->p[2] = s->proj4, v->n[2] = n * nv;                  /* linear: a */
        break;
    case FC_TAP_ROPE: v->p[0] = s->proj, v->n[0] = n * 2 * qdim; v->p[1] = s->proj2, v->n[1] = n * kvdim; break;
    case FC_TAP_ATTENTION: v->p[0] = s->attn, v->n[0] = n * qdim; break;
    case FC_TAP_DELTANET: v->p[0] = s->proj, v->n[0] = n * fc_la_conv_dim(c); v->p[1] = s->attn, v->n[1] = n * vdim; break;
    case FC_TAP_ROUTER: v->p[0] = s->router, v->n[0] = n * c->n_experts; break;
    case FC_TAP_EXPERTS:
        if (!e->pair_out) return fc_error_set(err, FC_STATUS_INTERNAL, "tap experts: pair outputs not kept");
        v->p[0] = e->pair_out, v->n[0] = n * e->n_active * H;
        break;
    case FC_TAP_COMBINE: v->p[0] = s->x, v->n[0] = n * H; break;
    default: return fc_error_set(err, FC_STATUS_INTERNAL, "tap %d", (int)which);
    }
    return FC_STATUS_OK;
}

static enum fc_status cpu_set_residual(struct fc_layer_backend * lb, const float * x, struct fc_error * err) {
    struct fc_engine * e = cpu_engine(lb);
    memmove(e->s.x, x, (size_t)e->chunk_n * e->model.cfg.hidden_size * sizeof(float));
    return FC_STATUS_OK;
}

static void cpu_free(struct fc_layer_backend * lb) { lb->ops = NULL; }

static const struct fc_layer_ops cpu_layer_ops = {
    "cpu", cpu_add_memory, cpu_begin, cpu_attend, cpu_route, cpu_shared, cpu_expert, cpu_finish, cpu_logits, cpu_sync, cpu_tap,
    cpu_set_residual, cpu_free, cpu_experts_one,
};

void fc_layer_cpu_init(struct fc_layer_backend * lb, struct fc_engine * e) {
    lb->ops = &cpu_layer_ops;
    lb->ctx = e;
}

/* ===== the engine loop ===== */

/*
 * Layer l's routed experts for the chunk's n tokens (ids/weights [n][K] from route): the distinct experts (a
 * token's choices in order for one token, by id for a batch), read in waves of half the engine's slots so the
 * next wave is read while this one is computed; the shared expert is issued once the first wave's reads are;
 * each expert goes to the backend as soon as its read has landed.
 */
static enum fc_status layer_experts(struct fc_engine * e, struct fc_layer_backend * lb, int32_t l, int32_t n, const int32_t * ids,
                                    const float * weights, struct fc_error * err) {
    const int32_t E = e->model.cfg.n_experts, K = e->n_active;
    int32_t used[4096], n_used = 0;
    memset(e->expert_count, 0, (size_t)E * sizeof *e->expert_count);
    for (int32_t i = 0; i < n * K; i++) e->expert_count[ids[i]]++;
    if (n == 1) {
        for (int32_t j = 0; j < K; j++) used[n_used++] = ids[j];
    } else {
        for (int32_t x = 0; x < E; x++) {
            if (e->expert_count[x]) used[n_used++] = x;
        }
    }
    /* mapped experts need no slot buffers: a batch takes them in waves of 128 (more experts to share out between
       the threads at a time) */
    const int32_t wave = e->experts.use_mmap && n > 1 ? 128 : e->n_expert_bufs / 2 > 0 ? e->n_expert_bufs / 2 : 1;
    int32_t n_wave = n_used < wave ? n_used : wave, next = n_wave;
    fc_experts_read_start(&e->experts, l, used, n_wave, e->expert_bufs, 0);
    enum fc_status st = lb->ops->shared(lb, l, err);
    if (n == 1 && lb->ops->experts_one && n_used <= wave && n_used <= FC_MATMUL_BATCH_MAX / 2 && n_used <= e->max_batch) {
        /* one token (decode): every expert once its read has landed, as one batch of products */
        struct fc_expert_use uses[FC_MATMUL_BATCH_MAX / 2];
        for (int32_t b = 0; b < n_used && st == FC_STATUS_OK; b++) {
            st = fc_experts_read_wait_one(&e->experts, b, err);
            e->s.tok_idx[b] = 0;
            e->s.topk_pair[b] = b;
            e->s.tok_w[b] = weights[b];
            uses[b] = (struct fc_expert_use){ used[b], e->experts.slot_data[b], 1, e->s.tok_idx + b, e->s.topk_pair + b, e->s.tok_w + b };
        }
        if (st == FC_STATUS_OK) st = lb->ops->experts_one(lb, l, uses, n_used, err);
        enum fc_status rs = fc_experts_read_wait(&e->experts, err);
        if (st != FC_STATUS_OK) return st;
        if (rs != FC_STATUS_OK) return rs;
        return lb->ops->finish(lb, l, err);
    }
    for (int32_t w = 0, start = 0; st == FC_STATUS_OK && start < n_used; w++) {
        const int32_t base = (w % 2) * wave;
        if (next < n_used) { /* the next wave into the other half, once the backend is done with that half */
            if (w >= 1 && (st = lb->ops->sync(lb, err)) != FC_STATUS_OK) break;
            const int32_t n_next = n_used - next < wave ? n_used - next : wave;
            fc_experts_read_start(&e->experts, l, used + next, n_next, e->expert_bufs, ((w + 1) % 2) * wave);
            next += n_next;
        }
        for (int32_t b = 0; b < n_wave && st == FC_STATUS_OK; b++) {
            if ((st = fc_experts_read_wait_one(&e->experts, base + b, err)) != FC_STATUS_OK) break;
            const int32_t x = used[start + b];
            struct fc_expert_use use = { x, e->experts.slot_data[base + b], 0, e->s.tok_idx, e->s.topk_pair, e->s.tok_w };
            for (int32_t i = 0; i < n * K; i++) {
                if (ids[i] == x) {
                    e->s.tok_idx[use.n_tok] = i / K;
                    e->s.topk_pair[use.n_tok] = i;
                    e->s.tok_w[use.n_tok] = weights[i];
                    use.n_tok++;
                }
            }
            st = lb->ops->expert(lb, l, &use, err);
        }
        start += n_wave;
        n_wave = n_used - start < wave ? n_used - start : wave;
    }
    enum fc_status rs = fc_experts_read_wait(&e->experts, err);
    if (st != FC_STATUS_OK) return st;
    if (rs != FC_STATUS_OK) return rs;
    return lb->ops->finish(lb, l, err);
}

enum fc_status fc_moe_forward(struct fc_engine * e, int32_t layer, int32_t n, struct fc_error * err) {
    struct fc_layer_backend cpu;
    fc_layer_cpu_init(&cpu, e);
    e->chunk_n = n;
    fc_moe_route(e, layer, n);
    return layer_experts(e, &cpu, layer, n, e->s.topk_ids, e->s.topk_w, err);
}

enum fc_status fc_forward_chunk(struct fc_engine * e, struct fc_layer_backend * lb, const int32_t * tokens, int32_t n,
                                float * logits_all, float * logits_last, struct fc_error * err) {
    const struct fc_config * c = &e->model.cfg;
    enum fc_status st = lb->ops->begin(lb, tokens, n, e->st.n_past, err);
    for (int32_t l = 0; st == FC_STATUS_OK && l < c->n_layers; l++) {
        const int32_t * ids;
        const float * w;
        if ((st = lb->ops->attend(lb, l, err)) != FC_STATUS_OK) break;
        if ((st = lb->ops->route(lb, l, &ids, &w, err)) != FC_STATUS_OK) break;
        if ((st = layer_experts(e, lb, l, n, ids, w, err)) != FC_STATUS_OK) break;
        if (e->on_layer) e->on_layer(e->on_layer_ctx, l);
    }
    if (st == FC_STATUS_OK) st = lb->ops->logits(lb, logits_all, logits_last, err);
    if (st != FC_STATUS_OK) {
        lb->ops->sync(lb, NULL);
        return st;
    }
    /* the K/V of these positions are in the cache now */
    memcpy(e->st.tokens + e->st.n_past, tokens, (size_t)n * sizeof *tokens);
    e->st.n_past += n;
    e->st.n_valid = e->st.n_past;
    return FC_STATUS_OK;
}

/* ===== bench verify: a GPU layer backend against the CPU one, op by op ===== */

static const char * const tap_names[] = { "rmsnorm", "qkv", "rope", "attention", "deltanet", "router", "experts", "combine", "logits" };
#define N_VERIFY_OPS 9

/* Largest |got - ref| relative to ref's largest magnitude, folded into worst[op]. */
static void compare(double * worst, int op, const float * got, const float * ref, size_t n) {
    double err = 0.0, mag = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]);
        if (d > err || isnan(got[i])) err = isnan(got[i]) ? INFINITY : d;
        if (fabs(ref[i]) > mag) mag = fabs(ref[i]);
    }
    const double r = mag > 0 ? err / mag : err;
    if (r > worst[op]) worst[op] = r;
}

static int compare_tap(struct fc_layer_backend * gpu, struct fc_layer_backend * cpu, enum fc_tap which, int op, const int * parts,
                       double * worst, struct fc_error * err) {
    struct fc_tap_view g, r;
    if (gpu->ops->tap(gpu, which, &g, err) != FC_STATUS_OK || cpu->ops->tap(cpu, which, &r, err) != FC_STATUS_OK) return 0;
    for (int i = 0; i < 3; i++) {
        if (parts[i] && g.p[i] && r.p[i] && g.n[i] == r.n[i]) compare(worst, op, g.p[i], r.p[i], g.n[i]);
        else if (parts[i]) return fc_error_set(err, FC_STATUS_INTERNAL, "tap %s: part %d differs in size", tap_names[op], i), 0;
    }
    return 1;
}

/*
 * One chunk on both backends in lockstep. Each layer starts from the CPU's residual and sequence state (the
 * state is the engine's, shared by both: saved before the GPU's attend, restored before the CPU's), so an op's
 * error is that layer's, not the sum of the layers before it; within a layer each backend chains its own ops.
 */
static int verify_chunk(struct fc_engine * e, struct fc_layer_backend * gpu, struct fc_layer_backend * cpu, const int32_t * toks,
                        int32_t n, float * lg, float * lc, double * worst, int32_t * id_mismatch, int32_t * argmax_mismatch,
                        struct fc_error * err) {
    const struct fc_model * m = &e->model;
    const struct fc_config * c = &m->cfg;
    const int32_t K = e->n_active, V = c->vocab_size;
    const size_t nconv = (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c);
    const size_t nssm = (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim;
    float * saved = fc_xcalloc(nconv + nssm + 1, sizeof(float));
    int ok = gpu->ops->begin(gpu, toks, n, e->st.n_past, err) == FC_STATUS_OK && cpu->ops->begin(cpu, toks, n, e->st.n_past, err) == FC_STATUS_OK;
    static const int one[3] = { 1, 0, 0 }, two[3] = { 1, 1, 0 }, v_only[3] = { 1, 0, 0 }, z_a[3] = { 0, 1, 1 };
    for (int32_t l = 0; ok && l < c->n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        struct fc_tap_view x;
        ok = cpu->ops->tap(cpu, FC_TAP_COMBINE, &x, err) == FC_STATUS_OK && gpu->ops->set_residual(gpu, x.p[0], err) == FC_STATUS_OK;
        const int32_t li = ly->index_in_kind;
        if (ok && !ly->is_full) {
            memcpy(saved, e->st.conv[li], nconv * sizeof(float));
            memcpy(saved + nconv, e->st.ssm[li], nssm * sizeof(float));
        }
        ok = ok && gpu->ops->attend(gpu, l, err) == FC_STATUS_OK && gpu->ops->sync(gpu, err) == FC_STATUS_OK;
        if (ok && !ly->is_full) {
            memcpy(e->st.conv[li], saved, nconv * sizeof(float));
            memcpy(e->st.ssm[li], saved + nconv, nssm * sizeof(float));
        }
        ok = ok && cpu->ops->attend(cpu, l, err) == FC_STATUS_OK;
        ok = ok && compare_tap(gpu, cpu, FC_TAP_NORM, 0, one, worst, err);
        if (ly->is_full) {
            ok = ok && compare_tap(gpu, cpu, FC_TAP_QKV, 1, v_only, worst, err) && compare_tap(gpu, cpu, FC_TAP_ROPE, 2, two, worst, err) &&
                 compare_tap(gpu, cpu, FC_TAP_ATTENTION, 3, one, worst, err);
        } else {
            ok = ok && compare_tap(gpu, cpu, FC_TAP_QKV, 1, z_a, worst, err) && compare_tap(gpu, cpu, FC_TAP_DELTANET, 4, two, worst, err);
        }
        const int32_t * gi, * ci;
        const float * gw, * cw;
        ok = ok && gpu->ops->route(gpu, l, &gi, &gw, err) == FC_STATUS_OK && cpu->ops->route(cpu, l, &ci, &cw, err) == FC_STATUS_OK;
        ok = ok && compare_tap(gpu, cpu, FC_TAP_NORM, 0, one, worst, err) && compare_tap(gpu, cpu, FC_TAP_ROUTER, 5, one, worst, err);
        if (!ok) break;
        for (int32_t i = 0; i < n * K; i++) *id_mismatch += gi[i] != ci[i];
        ok = layer_experts(e, gpu, l, n, gi, gw, err) == FC_STATUS_OK && gpu->ops->sync(gpu, err) == FC_STATUS_OK &&
             layer_experts(e, cpu, l, n, ci, cw, err) == FC_STATUS_OK;
        ok = ok && compare_tap(gpu, cpu, FC_TAP_EXPERTS, 6, one, worst, err) && compare_tap(gpu, cpu, FC_TAP_COMBINE, 7, one, worst, err);
    }
    if (ok) {
        struct fc_tap_view x;
        ok = cpu->ops->tap(cpu, FC_TAP_COMBINE, &x, err) == FC_STATUS_OK && gpu->ops->set_residual(gpu, x.p[0], err) == FC_STATUS_OK &&
             gpu->ops->logits(gpu, lg, NULL, err) == FC_STATUS_OK && cpu->ops->logits(cpu, lc, NULL, err) == FC_STATUS_OK;
    }
    if (ok) {
        compare(worst, 8, lg, lc, (size_t)n * V);
        for (int32_t r = 0; r < n; r++) {
            int32_t a = 0, b = 0;
            for (int32_t i = 1; i < V; i++) {
                if (lg[(size_t)r * V + i] > lg[(size_t)r * V + a]) a = i;
                if (lc[(size_t)r * V + i] > lc[(size_t)r * V + b]) b = i;
            }
            *argmax_mismatch += a != b;
        }
        memcpy(e->st.tokens + e->st.n_past, toks, (size_t)n * sizeof *toks);
        e->st.n_past += n;
        e->st.n_valid = e->st.n_past;
    }
    free(saved);
    return ok;
}

int fc_forward_verify(struct fc_engine * e, int json, int * first) {
    if (!e->gpu) return 1;
    const struct fc_config * c = &e->model.cfg;
    const int32_t V = c->vocab_size, H = c->hidden_size;
    int32_t n = e->context - 1 < 16 ? e->context - 1 : 16;
    if (n > e->max_batch) n = e->max_batch;
    if (n < 1) return 1;
    int32_t * toks = fc_xcalloc((size_t)n + 1, sizeof *toks);
    for (int32_t i = 0; i <= n; i++) toks[i] = (int32_t)(((int64_t)i * 7919 + 11) % V);
    float * lg = fc_xcalloc((size_t)n * V, sizeof(float)), * lc = fc_xcalloc((size_t)n * V, sizeof(float));
    struct fc_error err = { 0 };
    /* the CPU side on a float kernel set (a default set may round prefill activations to int8) */
    struct fc_backend saved = e->be, fl;
    static const char * floats[] = { "cpu:avx512", "cpu:avx2", "cpu:neon", "cpu:generic" };
    int have_float = 0;
    const char * cpu_name = "cpu";
    for (size_t i = 0; i < sizeof floats / sizeof floats[0] && !have_float; i++) {
        have_float = fc_backend_init(&fl, floats[i], e->pool, &err) == FC_STATUS_OK;
        if (have_float) cpu_name = floats[i];
    }
    if (have_float) e->be = fl;
    struct fc_layer_backend cpu;
    fc_layer_cpu_init(&cpu, e);
    e->pair_out = fc_xcalloc((size_t)e->max_batch * e->n_active * H, sizeof(float));
    double worst[2][N_VERIFY_OPS] = { { 0 } };
    int32_t ids[2] = { 0, 0 }, am[2] = { 0, 0 };
    fc_engine_reset(e);
    int ok = fc_engine_reserve(e, n + 1, &err) == FC_STATUS_OK &&
             verify_chunk(e, &e->lb, &cpu, toks, n, lg, lc, worst[0], &ids[0], &am[0], &err) &&
             verify_chunk(e, &e->lb, &cpu, toks + n, 1, lg, lc, worst[1], &ids[1], &am[1], &err);
    if (!ok) fprintf(stderr, "verify: %s\n", err.message);
    free(e->pair_out);
    e->pair_out = NULL;
    if (have_float) {
        e->be = saved;
        fc_backend_free(&fl);
    }
    fc_engine_reset(e);
    const double tol = 1e-3;
    for (int pass = 0; pass < 2 && ok; pass++) {
        const char * phase = pass == 0 ? "prefill" : "decode";
        const int32_t rows = pass == 0 ? n : 1;
        for (int op = 0; op < N_VERIFY_OPS; op++) {
            /* the routing ids and the argmax must agree exactly; they are reported with the router and the logits */
            const int32_t mism = op == 5 ? ids[pass] : op == 8 ? am[pass] : 0;
            const int op_ok = worst[pass][op] < tol && mism == 0;
            if (json) {
                printf("%s{\"name\":\"%s/%s/%s\",\"op\":\"%s\",\"tokens\":%d,\"max_rel_err\":%.3g,\"mismatches\":%d,\"tolerance\":%.0e,\"ok\":%s}",
                       *first ? "" : ",", e->backend_name, phase, tap_names[op], tap_names[op], rows, worst[pass][op], mism, tol,
                       op_ok ? "true" : "false");
                *first = 0;
            } else {
                printf("verify %s %-7s %-9s vs %s tokens=%-2d  error %.3g (< %.0e)%s  %s\n", e->backend_name, phase, tap_names[op],
                       cpu_name, rows, worst[pass][op], tol,
                       op == 5 ? (mism ? ", top-K ids differ" : ", top-K ids identical") : op == 8 ? (mism ? ", argmax differs" : ", argmax identical") : "",
                       op_ok ? "ok" : "FAILED");
            }
            ok &= op_ok;
        }
    }
    free(toks), free(lg), free(lc);
    return ok;
}
