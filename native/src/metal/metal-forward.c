/*
 * The Metal layer backend (backend.h's layer-level seam) over the GPU device interface (device.h), on Metal or
 * the emulator: buffer ownership, bindings, dispatch sizes, command buffers and sync points. Everything the GPU
 * reads or writes in place is the engine's memory wrapped without a copy (newBufferWithBytesNoCopy): the
 * dense weights' mapping, the expert arena (2 MiB-aligned pread slots) or the mapped layer files, the KV cache
 * and the recurrent states (so snapshots copy them as on the CPU); the small float vectors (norms, conv weights,
 * A, dt bias) are copied once into one buffer; the activations are the backend's own shared buffers.
 *
 * Command buffers of a layer: attend + router in one, committed and awaited by route (the layer's one host
 * sync); the shared expert in a second, committed by shared() right after the host issued the expert reads (it
 * runs while they are in flight); each routed expert in its own, committed as soon as its read has landed (the
 * GPU multiplies one expert while the next is read); the combine opens the command buffer the next layer's
 * attention continues in. A batch (prefill) uses the batched matmuls, and each expert multiplies only the
 * tokens routed to it (gathered, then scattered to their (token, k) slots).
 */
#include "metal-forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel-args.h"

struct loc {
    struct fc_gpu_buffer * b;
    size_t off;
};

struct layer_vectors {
    size_t input_norm, post_norm, q_norm, k_norm, conv_w, dt_bias, a_neg, la_norm;
};

/* memory of the engine's the GPU reads or writes in place */
struct region {
    const uint8_t * base;
    size_t bytes;
    struct fc_gpu_buffer * b;
};

#define MAX_PENDING 1024

struct fc_metal_layers {
    struct fc_gpu * gpu;
    struct fc_engine * e;
    const struct fc_model * m;
    int32_t n_active, max_batch;
    const char * kv_store_kernel, * attn_kernel; /* the kernels of the cache's type */
    int kv_q8;
    int32_t n, pos0;      /* the chunk */
    size_t idx_used;      /* ints of `idx` used by this layer's experts */
    struct region * regions;
    int32_t n_regions;
    struct fc_gpu_buffer * vectors;
    struct layer_vectors * lv;
    size_t final_norm, inv_freq;
    /* activations */
    struct fc_gpu_buffer *xb, *xn, *out, *q, *k, *v, *attn, *qkv, *z, *b, *a, *router, *ids, *w, *gate, *up, *sh_out,
        *sh_logit, *eg, *eu, *eo, *logits, *argmax, *tok, *gathered, *down, *idx;
    /* sequence state: the engine's, wrapped */
    struct loc * kc, * vc;
    struct fc_gpu_buffer ** conv, ** ssm;
    /* the command buffer being recorded (NULL: none), and those committed but not yet awaited, in order */
    struct fc_gpu_cmd * cmd;
    struct fc_gpu_cmd * pending[MAX_PENDING];
    int32_t n_pending;
    uint64_t n_commits, n_waits;
};

static size_t page_round(size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

static struct loc locate(const struct fc_metal_layers * f, const void * p) {
    const uint8_t * u = p;
    for (int32_t i = 0; i < f->n_regions; i++) {
        const struct region * r = &f->regions[i];
        if (u >= r->base && u < r->base + r->bytes) return (struct loc){ r->b, (size_t)(u - r->base) };
    }
    fc_abort(__FILE__, __LINE__, "a weight outside every GPU buffer");
    return (struct loc){ NULL, 0 };
}

static enum fc_status add_region(struct fc_metal_layers * f, void * base, size_t bytes, struct fc_error * err) {
    struct fc_gpu_buffer * b = f->gpu->ops->buffer_wrap(f->gpu, base, page_round(bytes), err);
    if (!b) return err->status;
    f->regions = realloc(f->regions, (size_t)(f->n_regions + 1) * sizeof *f->regions);
    if (!f->regions) fc_abort(__FILE__, __LINE__, "out of memory");
    f->regions[f->n_regions++] = (struct region){ base, page_round(bytes), b };
    return FC_STATUS_OK;
}

static struct loc at(struct fc_gpu_buffer * b, size_t off_bytes) { return (struct loc){ b, off_bytes }; }

/* One dispatch into cmd: kernel, argument struct at buffer 0, buffers 1.. */
static void launch(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, const char * kernel, const void * args, size_t args_bytes,
                   const struct loc * bufs, int n_bufs, struct fc_gpu_size groups, struct fc_gpu_size threads) {
    struct fc_error err;
    struct fc_gpu_pipeline * p = f->gpu->ops->pipeline(f->gpu, kernel, &err);
    if (!p) fc_abort(__FILE__, __LINE__, err.message);
    f->gpu->ops->set_pipeline(cmd, p);
    f->gpu->ops->set_bytes(cmd, 0, args, args_bytes);
    for (int i = 0; i < n_bufs; i++) f->gpu->ops->set_buffer(cmd, (uint32_t)i + 1, bufs[i].b, bufs[i].off);
    f->gpu->ops->dispatch(cmd, groups, threads);
}

static uint32_t cdiv(int64_t a, int64_t b) { return (uint32_t)((a + b - 1) / b); }

/* out[t] = W x[t] for n tokens (rows of x and out packed): the matvec for one token, the batched matmul else. */
static void matmul(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, const struct fc_matrix * w, struct loc x, struct loc out,
                   int32_t n) {
    static const char * mv[] = { "fc_matvec_f32", "fc_matvec_f16", "fc_matvec_bf16", "fc_matvec_q2", "fc_matvec_q4", "fc_matvec_q8" };
    static const char * mm[] = { "fc_matmul_f32", "fc_matmul_f16", "fc_matmul_bf16", "fc_matmul_q2", "fc_matmul_q4", "fc_matmul_q8" };
    struct fc_matmul_args a = { w->rows, w->cols, n, (int32_t)w->row_bytes, w->cols, w->rows };
    const struct loc data = locate(f, w->data);
    const int quant = fc_dtype_is_quantized(w->type);
    struct loc bufs[5] = { data, quant ? locate(f, w->scales) : data, quant ? locate(f, w->biases) : data, x, out };
    launch(f, cmd, n == 1 ? mv[w->type] : mm[w->type], &a, sizeof a, bufs, 5,
           fc_gpu_size2(cdiv(w->rows, FC_MM_ROWS * FC_MM_SIMDGROUPS), n == 1 ? 1 : cdiv(n, FC_MM_TOKENS)),
           fc_gpu_size1(FC_MM_SIMDGROUPS * FC_SIMD_WIDTH));
}

static void rms_norm(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, struct loc x, size_t w_off, struct loc out, int32_t n,
                     int32_t rows, int32_t x_stride, int32_t out_stride) {
    struct fc_rms_norm_args a = { n, x_stride, out_stride, f->m->cfg.rms_eps };
    struct loc bufs[3] = { x, at(f->vectors, w_off), out };
    uint32_t threads = n >= 1024 ? 1024 : cdiv(n, 32) * 32;
    launch(f, cmd, "fc_rms_norm", &a, sizeof a, bufs, 3, fc_gpu_size1((uint32_t)rows), fc_gpu_size1(threads));
}

static void elementwise(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, const char * kernel, const void * args, size_t n_args,
                        const struct loc * bufs, int n_bufs, int64_t n) {
    launch(f, cmd, kernel, args, n_args, bufs, n_bufs, fc_gpu_size1(cdiv(n, 256)), fc_gpu_size1(256));
}

static int quant_ok(const struct fc_matrix * w) {
    return !fc_dtype_is_quantized(w->type) || (w->group_size == FC_QGROUP && w->cols % FC_QGROUP == 0);
}

static void full_attention(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly, const struct layer_vectors * v,
                           int32_t n) {
    const struct fc_config * c = &f->m->cfg;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, pos0 = f->pos0;
    matmul(f, cmd, &ly->q_proj, at(f->xn, 0), at(f->q, 0), n); /* per head [query | gate] */
    matmul(f, cmd, &ly->k_proj, at(f->xn, 0), at(f->k, 0), n);
    matmul(f, cmd, &ly->v_proj, at(f->xn, 0), at(f->v, 0), n);
    rms_norm(f, cmd, at(f->q, 0), v->q_norm, at(f->q, 0), hd, n * nh, 2 * hd, 2 * hd);
    rms_norm(f, cmd, at(f->k, 0), v->k_norm, at(f->k, 0), hd, n * nkv, hd, hd);
    struct fc_rope_args rq = { n, nh, c->rotary_dim, 2 * hd, 2 * nh * hd, pos0 };
    struct loc bq[2] = { at(f->q, 0), at(f->vectors, f->inv_freq) };
    elementwise(f, cmd, "fc_rope", &rq, sizeof rq, bq, 2, (int64_t)n * nh * c->rotary_dim / 2);
    struct fc_rope_args rk = { n, nkv, c->rotary_dim, hd, nkv * hd, pos0 };
    struct loc bk[2] = { at(f->k, 0), at(f->vectors, f->inv_freq) };
    elementwise(f, cmd, "fc_rope", &rk, sizeof rk, bk, 2, (int64_t)n * nkv * c->rotary_dim / 2);
    struct loc bs[4] = { at(f->k, 0), at(f->v, 0), f->kc[ly->index_in_kind], f->vc[ly->index_in_kind] };
    if (f->kv_q8) { /* a row-wide max per (token, kv head): one simdgroup each */
        struct fc_kv_store_q8_args ks = { n, nkv, hd, nkv * hd, pos0 };
        launch(f, cmd, "fc_kv_store_q8", &ks, sizeof ks, bs, 4, fc_gpu_size2((uint32_t)nkv, (uint32_t)n), fc_gpu_size1(FC_SIMD_WIDTH));
    } else {
        struct fc_kv_store_args ks = { n, nkv * hd, nkv * hd, pos0 };
        elementwise(f, cmd, f->kv_store_kernel, &ks, sizeof ks, bs, 4, (int64_t)n * nkv * hd);
    }
    struct fc_attn_args aa = { nh, nkv, hd, n, pos0, 2 * nh * hd, 2 * hd, hd, nh * hd, 1.0f / sqrtf((float)hd) };
    struct loc ba[4] = { at(f->q, 0), bs[2], bs[3], at(f->attn, 0) };
    launch(f, cmd, f->attn_kernel, &aa, sizeof aa, ba, 4, fc_gpu_size2((uint32_t)nh, (uint32_t)n),
           fc_gpu_size1(FC_ATTN_SIMDGROUPS * FC_SIMD_WIDTH));
    matmul(f, cmd, &ly->o_proj, at(f->attn, 0), at(f->out, 0), n);
}

static void linear_attention(struct fc_metal_layers * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly,
                             const struct layer_vectors * v, int32_t n) {
    const struct fc_config * c = &f->m->cfg;
    const int32_t nk = c->la_n_k_heads, nv = c->la_n_v_heads, dk = c->la_k_dim, dv = c->la_v_dim, conv = fc_la_conv_dim(c);
    matmul(f, cmd, &ly->in_qkv, at(f->xn, 0), at(f->qkv, 0), n);
    matmul(f, cmd, &ly->in_z, at(f->xn, 0), at(f->z, 0), n);
    matmul(f, cmd, &ly->in_b, at(f->xn, 0), at(f->b, 0), n);
    matmul(f, cmd, &ly->in_a, at(f->xn, 0), at(f->a, 0), n);
    struct fc_conv1d_args ca = { conv, c->la_conv_kernel, n, conv };
    struct loc bc[3] = { at(f->qkv, 0), at(f->vectors, v->conv_w), at(f->conv[ly->index_in_kind], 0) };
    elementwise(f, cmd, "fc_conv1d_silu", &ca, sizeof ca, bc, 3, conv);
    struct fc_l2norm_args la = { n, 2 * nk, dk, conv, nk, 1.0f / sqrtf((float)dk), 1e-6f };
    struct loc bl[1] = { at(f->qkv, 0) };
    launch(f, cmd, "fc_l2norm_heads", &la, sizeof la, bl, 1, fc_gpu_size2((uint32_t)(2 * nk), (uint32_t)n), fc_gpu_size1(32));
    struct fc_delta_args da = { n, nk, nv, dk, dv, conv, nv * dv, nv * dv, c->rms_eps };
    struct loc bd[9] = { at(f->qkv, 0), at(f->z, 0), at(f->b, 0), at(f->a, 0), at(f->vectors, v->a_neg), at(f->vectors, v->dt_bias),
                         at(f->vectors, v->la_norm), at(f->ssm[ly->index_in_kind], 0), at(f->attn, 0) };
    launch(f, cmd, "fc_delta_step", &da, sizeof da, bd, 9, fc_gpu_size1((uint32_t)nv), fc_gpu_size1(cdiv(dv, 32) * 32));
    matmul(f, cmd, &ly->out_proj, at(f->attn, 0), at(f->out, 0), n);
}


/* ===== command buffers ===== */

static struct fc_metal_layers * ctx_of(struct fc_layer_backend * lb) { return lb->ctx; }

/* The command buffer being recorded (begun if none). */
static struct fc_gpu_cmd * recording(struct fc_metal_layers * f) {
    if (!f->cmd) f->cmd = f->gpu->ops->cmd_begin(f->gpu);
    return f->cmd;
}

static enum fc_status wait_pending(struct fc_metal_layers * f, struct fc_error * err) {
    enum fc_status st = FC_STATUS_OK;
    const double t0 = fc_time_ms();
    for (int32_t i = 0; i < f->n_pending; i++) {
        struct fc_error e2;
        enum fc_status s = f->gpu->ops->wait(f->pending[i], st == FC_STATUS_OK && err ? err : &e2);
        f->n_waits++;
        if (st == FC_STATUS_OK) st = s;
    }
    f->n_pending = 0;
    f->e->gpu_wait_ms += fc_time_ms() - t0;
    return st;
}

/* Commit the command buffer being recorded (the GPU starts on it; the host goes on). */
static enum fc_status commit(struct fc_metal_layers * f, struct fc_error * err) {
    if (!f->cmd) return FC_STATUS_OK;
    enum fc_status st = FC_STATUS_OK;
    if (f->n_pending == MAX_PENDING) st = wait_pending(f, err);
    f->gpu->ops->commit(f->cmd);
    f->pending[f->n_pending++] = f->cmd;
    f->cmd = NULL;
    f->n_commits++;
    f->e->gpu_commits++;
    return st;
}

static enum fc_status metal_sync(struct fc_layer_backend * lb, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    enum fc_status st = commit(f, err);
    enum fc_status s2 = wait_pending(f, st == FC_STATUS_OK ? err : NULL);
    return st != FC_STATUS_OK ? st : s2;
}

/* ===== the seam ===== */

static enum fc_status metal_add_memory(struct fc_layer_backend * lb, void * base, size_t n_bytes, struct fc_error * err) {
    return add_region(ctx_of(lb), base, n_bytes, err);
}

static enum fc_status metal_begin(struct fc_layer_backend * lb, const int32_t * ids, int32_t n, int32_t pos0, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_model * m = f->m;
    if (n <= 0 || n > f->max_batch) return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%d tokens (1..%d per chunk)", n, f->max_batch);
    enum fc_status st = metal_sync(lb, err); /* the token buffer is rewritten */
    if (st != FC_STATUS_OK) return st;
    f->n = n;
    f->pos0 = pos0;
    memcpy(f->gpu->ops->buffer_contents(f->tok), ids, (size_t)n * sizeof *ids);
    const struct fc_matrix * em = &m->embed;
    struct fc_embed_args ea = { (int32_t)em->type, em->cols, (int32_t)em->row_bytes, em->group_size, n };
    const int quant = fc_dtype_is_quantized(em->type);
    struct loc be[5] = { locate(f, em->data), quant ? locate(f, em->scales) : locate(f, em->data),
                         quant ? locate(f, em->biases) : locate(f, em->data), at(f->tok, 0), at(f->xb, 0) };
    elementwise(f, recording(f), "fc_embed", &ea, sizeof ea, be, 5, (int64_t)n * m->cfg.hidden_size);
    return FC_STATUS_OK;
}

static enum fc_status metal_attend(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_layer * ly = &f->m->layers[l];
    const struct layer_vectors * v = &f->lv[l];
    const int32_t H = f->m->cfg.hidden_size, n = f->n;
    struct fc_gpu_cmd * cmd = recording(f);
    rms_norm(f, cmd, at(f->xb, 0), v->input_norm, at(f->xn, 0), H, n, H, H);
    if (ly->is_full) full_attention(f, cmd, ly, v, n);
    else linear_attention(f, cmd, ly, v, n);
    struct fc_add_args ad = { n * H };
    struct loc bad[2] = { at(f->xb, 0), at(f->out, 0) };
    elementwise(f, cmd, "fc_add", &ad, sizeof ad, bad, 2, (int64_t)n * H);
    return FC_STATUS_OK;
}

static enum fc_status metal_route(struct fc_layer_backend * lb, int32_t l, const int32_t ** ids, const float ** weights,
                                  struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_config * c = &f->m->cfg;
    const struct fc_layer * ly = &f->m->layers[l];
    const int32_t H = c->hidden_size, n = f->n;
    struct fc_gpu_cmd * cmd = recording(f);
    rms_norm(f, cmd, at(f->xb, 0), f->lv[l].post_norm, at(f->xn, 0), H, n, H, H);
    matmul(f, cmd, &ly->router, at(f->xn, 0), at(f->router, 0), n);
    struct fc_router_args ra = { c->n_experts, f->n_active, c->norm_topk_prob };
    struct loc br[3] = { at(f->router, 0), at(f->ids, 0), at(f->w, 0) };
    launch(f, cmd, "fc_router_topk", &ra, sizeof ra, br, 3, fc_gpu_size1((uint32_t)n),
           fc_gpu_size1(c->n_experts >= 1024 ? 1024 : cdiv(c->n_experts, 32) * 32));
    /* the layer's sync point: the host needs the routed experts' ids to read them */
    enum fc_status st = metal_sync(lb, err);
    if (st != FC_STATUS_OK) return st;
    f->idx_used = 0;
    *ids = f->gpu->ops->buffer_contents(f->ids);
    *weights = f->gpu->ops->buffer_contents(f->w);
    return FC_STATUS_OK;
}

static enum fc_status metal_shared(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_layer * ly = &f->m->layers[l];
    const int32_t n = f->n;
    if (!ly->has_shared) return FC_STATUS_OK;
    struct fc_gpu_cmd * cmd = recording(f);
    const int32_t SI = ly->sh_gate.rows;
    matmul(f, cmd, &ly->sh_gate, at(f->xn, 0), at(f->gate, 0), n);
    matmul(f, cmd, &ly->sh_up, at(f->xn, 0), at(f->up, 0), n);
    struct fc_swiglu_args sa = { n * SI };
    struct loc bsw[2] = { at(f->gate, 0), at(f->up, 0) };
    elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, (int64_t)n * SI);
    matmul(f, cmd, &ly->sh_down, at(f->gate, 0), at(f->sh_out, 0), n);
    matmul(f, cmd, &ly->sh_expert_gate, at(f->xn, 0), at(f->sh_logit, 0), n);
    return commit(f, err); /* runs while the expert reads are in flight */
}

static enum fc_status metal_expert(struct fc_layer_backend * lb, int32_t l, const struct fc_expert_use * use, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_config * c = &f->m->cfg;
    const int32_t H = c->hidden_size, I = c->moe_inter, n_e = use->n_tok;
    struct fc_gpu_cmd * cmd = recording(f);
    struct fc_matrix mg, mu, md;
    fc_experts_view(&f->e->experts, use->data, &mg, &mu, &md);
    if (f->n == 1) { /* one token: straight from xn into its (token, k) slot */
        matmul(f, cmd, &mg, at(f->xn, 0), at(f->eg, 0), 1);
        matmul(f, cmd, &mu, at(f->xn, 0), at(f->eu, 0), 1);
        struct fc_swiglu_args sa = { I };
        struct loc bsw[2] = { at(f->eg, 0), at(f->eu, 0) };
        elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, I);
        matmul(f, cmd, &md, at(f->eg, 0), at(f->eo, (size_t)use->pair[0] * H * 4), 1);
        return commit(f, err);
    }
    /* the tokens routed to this expert (src) and the (token, k) slots their outputs go to (dst), in `idx` */
    if (f->idx_used + 2 * (size_t)n_e > 2 * (size_t)f->max_batch * f->n_active) {
        return fc_error_set(err, FC_STATUS_INTERNAL, "metal: more routed (token, k) pairs than the chunk has");
    }
    int32_t * idx = (int32_t *)f->gpu->ops->buffer_contents(f->idx) + f->idx_used;
    memcpy(idx, use->tok, (size_t)n_e * sizeof *idx);
    memcpy(idx + n_e, use->pair, (size_t)n_e * sizeof *idx);
    const size_t src_off = f->idx_used * 4, dst_off = (f->idx_used + (size_t)n_e) * 4;
    f->idx_used += 2 * (size_t)n_e;
    struct fc_copy_rows_args ga = { n_e, H, H, H, 1, 0 };
    struct loc bg[4] = { at(f->xn, 0), at(f->gathered, 0), at(f->idx, src_off), at(f->idx, dst_off) };
    elementwise(f, cmd, "fc_copy_rows", &ga, sizeof ga, bg, 4, (int64_t)n_e * H);
    matmul(f, cmd, &mg, at(f->gathered, 0), at(f->eg, 0), n_e);
    matmul(f, cmd, &mu, at(f->gathered, 0), at(f->eu, 0), n_e);
    struct fc_swiglu_args sa = { n_e * I };
    struct loc bsw[2] = { at(f->eg, 0), at(f->eu, 0) };
    elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, (int64_t)n_e * I);
    matmul(f, cmd, &md, at(f->eg, 0), at(f->down, 0), n_e);
    struct fc_copy_rows_args sc = { n_e, H, H, H, 0, 1 };
    struct loc bsc[4] = { at(f->down, 0), at(f->eo, 0), at(f->idx, src_off), at(f->idx, dst_off) };
    elementwise(f, cmd, "fc_copy_rows", &sc, sizeof sc, bsc, 4, (int64_t)n_e * H);
    return commit(f, err); /* the GPU multiplies it while the next expert is read */
}

static enum fc_status metal_finish(struct fc_layer_backend * lb, int32_t l, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const int32_t H = f->m->cfg.hidden_size;
    struct fc_combine_args ca = { H, f->n_active, f->n, f->m->layers[l].has_shared, 1 };
    struct loc bcm[5] = { at(f->xb, 0), at(f->sh_out, 0), at(f->sh_logit, 0), at(f->eo, 0), at(f->w, 0) };
    elementwise(f, recording(f), "fc_moe_combine", &ca, sizeof ca, bcm, 5, (int64_t)f->n * H);
    return FC_STATUS_OK; /* the next layer's attention continues this command buffer */
}

static enum fc_status metal_logits(struct fc_layer_backend * lb, float * all, float * last, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_model * m = f->m;
    const int32_t H = m->cfg.hidden_size, V = m->cfg.vocab_size, n = f->n;
    if (!all && !last) return metal_sync(lb, err);
    const int32_t first = all ? 0 : n - 1, n_out = n - first;
    struct fc_gpu_cmd * cmd = recording(f);
    rms_norm(f, cmd, at(f->xb, (size_t)first * H * 4), f->final_norm, at(f->xn, 0), H, n_out, H, H);
    matmul(f, cmd, &m->lm_head, at(f->xn, 0), at(f->logits, 0), n_out);
    struct fc_argmax_args aa = { V };
    struct loc bam[2] = { at(f->logits, 0), at(f->argmax, 0) };
    launch(f, cmd, "fc_argmax", &aa, sizeof aa, bam, 2, fc_gpu_size1((uint32_t)n_out), fc_gpu_size1(1024));
    enum fc_status st = metal_sync(lb, err);
    if (st != FC_STATUS_OK) return st;
    const float * lg = f->gpu->ops->buffer_contents(f->logits);
    if (all) memcpy(all, lg, (size_t)n * V * sizeof(float));
    if (last) memcpy(last, lg + (size_t)(n_out - 1) * V, (size_t)V * sizeof(float));
    return FC_STATUS_OK;
}

static enum fc_status metal_tap(struct fc_layer_backend * lb, enum fc_tap which, struct fc_tap_view * v, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    const struct fc_config * c = &f->m->cfg;
    enum fc_status st = metal_sync(lb, err);
    if (st != FC_STATUS_OK) return st;
    const struct fc_gpu_ops * o = f->gpu->ops;
    const size_t n = (size_t)f->n, H = (size_t)c->hidden_size, nv = (size_t)c->la_n_v_heads, vdim = nv * c->la_v_dim;
    const size_t qdim = (size_t)c->n_heads * c->head_dim, kvdim = (size_t)c->n_kv_heads * c->head_dim;
#define VIEW(i, buf, count) (v->p[i] = o->buffer_contents(buf), v->n[i] = (count))
    memset(v, 0, sizeof *v);
    switch (which) {
    case FC_TAP_NORM: VIEW(0, f->xn, n * H); break;
    case FC_TAP_QKV: VIEW(0, f->v, n * kvdim); VIEW(1, f->z, n * vdim); VIEW(2, f->a, n * nv); break;
    case FC_TAP_ROPE: VIEW(0, f->q, n * 2 * qdim); VIEW(1, f->k, n * kvdim); break;
    case FC_TAP_ATTENTION: VIEW(0, f->attn, n * qdim); break;
    case FC_TAP_DELTANET: VIEW(0, f->qkv, n * fc_la_conv_dim(c)); VIEW(1, f->attn, n * vdim); break;
    case FC_TAP_ROUTER: VIEW(0, f->router, n * c->n_experts); break;
    case FC_TAP_EXPERTS: VIEW(0, f->eo, n * f->n_active * H); break;
    case FC_TAP_COMBINE: VIEW(0, f->xb, n * H); break;
    default: return fc_error_set(err, FC_STATUS_INTERNAL, "tap %d", (int)which);
    }
#undef VIEW
    return FC_STATUS_OK;
}

static enum fc_status metal_set_residual(struct fc_layer_backend * lb, const float * x, struct fc_error * err) {
    struct fc_metal_layers * f = ctx_of(lb);
    enum fc_status st = metal_sync(lb, err);
    if (st == FC_STATUS_OK) memcpy(f->gpu->ops->buffer_contents(f->xb), x, (size_t)f->n * f->m->cfg.hidden_size * sizeof(float));
    return st;
}

static void metal_free(struct fc_layer_backend * lb) {
    struct fc_metal_layers * f = ctx_of(lb);
    lb->ops = NULL;
    lb->ctx = NULL;
    if (!f) return;
    const struct fc_gpu_ops * o = f->gpu->ops;
    metal_sync(&(struct fc_layer_backend){ NULL, f }, NULL);
    struct fc_gpu_buffer * all[] = { f->vectors, f->xb, f->xn, f->out, f->q, f->k, f->v, f->attn, f->qkv, f->z, f->b, f->a, f->router,
                                     f->ids, f->w, f->gate, f->up, f->sh_out, f->sh_logit, f->eg, f->eu, f->eo, f->logits, f->argmax,
                                     f->tok, f->gathered, f->down, f->idx };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) o->buffer_free(all[i]);
    for (int32_t i = 0; f->conv && i < f->m->n_linear_layers; i++) o->buffer_free(f->conv[i]), o->buffer_free(f->ssm[i]);
    for (int32_t i = 0; i < f->n_regions; i++) o->buffer_free(f->regions[i].b);
    free(f->kc), free(f->vc), free(f->conv), free(f->ssm), free(f->lv), free(f->regions);
    free(f);
}

static const struct fc_layer_ops metal_layer_ops = {
    "metal", metal_add_memory, metal_begin, metal_attend, metal_route, metal_shared, metal_expert, metal_finish, metal_logits,
    metal_sync, metal_tap, metal_set_residual, metal_free, NULL,
};

uint64_t fc_metal_layers_commits(const struct fc_layer_backend * lb) { return ((const struct fc_metal_layers *)lb->ctx)->n_commits; }

enum fc_status fc_metal_layers_init(struct fc_layer_backend * lb, struct fc_gpu * gpu, struct fc_engine * e, struct fc_error * err) {
    const struct fc_model * m = &e->model;
    const struct fc_config * c = &m->cfg;
    struct fc_experts * x = &e->experts;
    const int32_t n_active = e->n_active;
    if (n_active > FC_ROUTER_MAX_K || c->n_experts > FC_ROUTER_MAX_EXPERTS || c->head_dim > FC_ATTN_MAX_HEAD_DIM ||
        x->group_size != FC_QGROUP) {
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "the Metal backend needs K <= %d, <= %d experts, head_dim <= %d and 64-wide groups",
                            FC_ROUTER_MAX_K, FC_ROUTER_MAX_EXPERTS, FC_ATTN_MAX_HEAD_DIM);
    }
    const enum fc_kv_type kvt = e->st.kv.type;
    if (kvt == FC_KV_Q8 && c->head_dim % 4 != 0) return fc_error_set(err, FC_STATUS_BAD_REQUEST, "the Metal backend's q8 KV cache needs head_dim %% 4 == 0");
    struct fc_metal_layers * f = fc_xcalloc(1, sizeof *f);
    const struct fc_gpu_ops * o = gpu->ops;
    f->gpu = gpu;
    f->e = e;
    f->m = m;
    f->n_active = n_active;
    static const char * const stores[] = { "fc_kv_store_f16", "fc_kv_store_bf16", "fc_kv_store_q8", "fc_kv_store_f32" };
    static const char * const attns[] = { "fc_attn_f16", "fc_attn_bf16", "fc_attn_q8", "fc_attn_f32" };
    f->kv_store_kernel = stores[kvt]; /* enum fc_kv_type's order */
    f->attn_kernel = attns[kvt];
    f->kv_q8 = kvt == FC_KV_Q8;
    f->max_batch = e->max_batch > 0 ? e->max_batch : 1;
    lb->ops = &metal_layer_ops;
    lb->ctx = f;
    enum fc_status st = FC_STATUS_OK;
#define TRY(expr) do { if (!(expr)) { st = err->status; goto fail; } } while (0)
#define TRYS(expr) do { if ((st = (expr)) != FC_STATUS_OK) goto fail; } while (0)
    /* the engine's memory in place: the dense weights' mapping, the expert slots or the mapped layer files */
    TRYS(add_region(f, m->map, m->map_bytes, err));
    const size_t huge = (size_t)2 << 20; /* fc_alloc_huge's rounding */
    TRYS(add_region(f, e->expert_arena, (e->experts.expert_bytes * (size_t)e->n_expert_bufs + huge - 1) / huge * huge, err));
    for (int32_t l = 0; x->use_mmap && l < x->n_layers; l++) TRYS(add_region(f, (void *)x->maps[l], (size_t)x->n_experts * x->expert_bytes, err));
    const struct fc_matrix * mats[] = { &m->embed, &m->lm_head };
    for (int i = 0; i < 2; i++) {
        if (!quant_ok(mats[i])) { st = fc_error_set(err, FC_STATUS_BAD_REQUEST, "the Metal backend: a matrix with groups other than 64"); goto fail; }
    }
    /* the sequence state: the engine's KV cache (the whole context made usable now: pages still come when
       touched) and recurrent states */
    TRYS(fc_kv_reserve(&e->st.kv, e->context, err));
    const struct fc_kv_cache * kv = &e->st.kv;
    struct region * kvr = NULL;
    if (m->n_full_layers > 0) {
        TRYS(add_region(f, kv->base, (size_t)2 * kv->n_layers * kv->region_bytes, err));
        kvr = &f->regions[f->n_regions - 1];
    }
    f->kc = fc_xcalloc((size_t)m->n_full_layers + 1, sizeof *f->kc);
    f->vc = fc_xcalloc((size_t)m->n_full_layers + 1, sizeof *f->vc);
    for (int32_t i = 0; i < m->n_full_layers; i++) {
        f->kc[i] = at(kvr->b, (size_t)(fc_kv_region(kv, i, 0) - kv->base));
        f->vc[i] = at(kvr->b, (size_t)(fc_kv_region(kv, i, 1) - kv->base));
    }
    const int32_t H = c->hidden_size, hd = c->head_dim, conv = fc_la_conv_dim(c), nv = c->la_n_v_heads;
    f->conv = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *f->conv);
    f->ssm = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *f->ssm);
    for (int32_t i = 0; i < m->n_linear_layers; i++) {
        TRY(f->conv[i] = o->buffer_wrap(gpu, e->st.conv[i], page_round(((size_t)(c->la_conv_kernel - 1) * conv + 1) * sizeof(float)), err));
        TRY(f->ssm[i] = o->buffer_wrap(gpu, e->st.ssm[i], page_round((size_t)nv * c->la_k_dim * c->la_v_dim * sizeof(float)), err));
    }
    /* the float vectors, copied into one buffer */
    size_t n_floats = (size_t)H + (size_t)c->rotary_dim / 2 + 1;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        n_floats += 2 * (size_t)H + (ly->is_full ? 2 * (size_t)hd : (size_t)conv * c->la_conv_kernel + 2 * (size_t)nv + c->la_v_dim);
    }
    TRY(f->vectors = o->buffer_new(gpu, n_floats * sizeof(float), err));
    float * vec = o->buffer_contents(f->vectors);
    size_t used = 0;
#define PUT(dst, src, count) do { (dst) = used * sizeof(float); memcpy(vec + used, (src), (size_t)(count) * sizeof(float)); used += (size_t)(count); } while (0)
    f->lv = fc_xcalloc((size_t)c->n_layers, sizeof *f->lv);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        struct layer_vectors * v = &f->lv[l];
        PUT(v->input_norm, ly->input_norm, H);
        PUT(v->post_norm, ly->post_norm, H);
        if (ly->is_full) {
            PUT(v->q_norm, ly->q_norm, hd);
            PUT(v->k_norm, ly->k_norm, hd);
        } else {
            PUT(v->conv_w, ly->conv_w, (size_t)conv * c->la_conv_kernel);
            PUT(v->dt_bias, ly->dt_bias, nv);
            PUT(v->a_neg, ly->a_neg, nv);
            PUT(v->la_norm, ly->la_norm, c->la_v_dim);
        }
    }
    PUT(f->final_norm, m->final_norm, H);
    f->inv_freq = used * sizeof(float);
    for (int32_t i = 0; i < c->rotary_dim / 2; i++) vec[used++] = e->s.inv_freq[i];
#undef PUT
    /* activations */
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, vdim = nv * c->la_v_dim, K = n_active;
    const int32_t inter = c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter;
    const size_t attn_n = (size_t)(vdim > nh * hd ? vdim : nh * hd);
    const size_t B = (size_t)f->max_batch;
#define NEWF(buf, count) TRY((buf) = o->buffer_new(gpu, (size_t)(count) * sizeof(float), err))
    NEWF(f->xb, B * H); NEWF(f->xn, B * H); NEWF(f->out, B * H); NEWF(f->q, B * 2 * nh * hd); NEWF(f->k, B * nkv * hd);
    NEWF(f->v, B * nkv * hd); NEWF(f->attn, B * attn_n); NEWF(f->qkv, B * conv); NEWF(f->z, B * vdim); NEWF(f->b, B * nv);
    NEWF(f->a, B * nv); NEWF(f->router, B * c->n_experts); NEWF(f->ids, B * K); NEWF(f->w, B * K); NEWF(f->gate, B * inter);
    NEWF(f->up, B * inter); NEWF(f->sh_out, B * H); NEWF(f->sh_logit, B); NEWF(f->eg, B * K * c->moe_inter);
    NEWF(f->eu, B * K * c->moe_inter); NEWF(f->eo, B * K * H); NEWF(f->logits, B * c->vocab_size); NEWF(f->argmax, B);
    NEWF(f->tok, B); NEWF(f->gathered, B * H); NEWF(f->down, B * H); NEWF(f->idx, 2 * B * K);
#undef NEWF
#undef TRY
#undef TRYS
    return FC_STATUS_OK;
fail:
    metal_free(lb);
    return st;
}
