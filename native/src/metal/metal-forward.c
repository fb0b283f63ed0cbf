/*
 * The model's forward pass, one token at a time, over the GPU device interface (device.h): the host side
 * of the Metal backend — buffer ownership, bindings, dispatch sizes and sync points — before it goes
 * behind the layer-level seam (BACKENDS.md). Dense weights are the model's mapping wrapped without a
 * copy; the small float vectors (norms, conv weights, A, dt bias) are copied once into one buffer; the
 * K routed experts of a layer are pread into 2 MiB-aligned slots wrapped once. Per layer: one command
 * buffer up to the router's top-K (the host waits for it, reads the experts), then the experts and the
 * combine are encoded into the command buffer that continues with the next layer.
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

struct fc_metal_forward {
    struct fc_gpu * gpu;
    const struct fc_model * m;
    struct fc_experts * x;
    int32_t context, n_active, kv_f16, n_past;
    /* memory the GPU reads in place */
    struct fc_gpu_buffer * weights; /* the model's mapping */
    const uint8_t * weights_base;
    size_t weights_bytes;
    struct fc_gpu_buffer * vectors;
    struct layer_vectors * lv;
    size_t final_norm, inv_freq;
    uint8_t * arena; /* expert slots */
    size_t arena_bytes;
    struct fc_gpu_buffer * slots;
    uint8_t * slot_ptr[FC_ROUTER_MAX_K];
    /* activations */
    struct fc_gpu_buffer *xb, *xn, *out, *q, *k, *v, *attn, *qkv, *z, *b, *a, *router, *ids, *w, *gate, *up, *sh_out,
        *sh_logit, *eg, *eu, *eo, *logits, *argmax, *tok;
    /* sequence state */
    struct fc_gpu_buffer ** kc, ** vc, ** conv, ** ssm;
};

static size_t page_round(size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

static struct loc locate(const struct fc_metal_forward * f, const void * p) {
    const uint8_t * u = p;
    if (u >= f->weights_base && u < f->weights_base + f->weights_bytes) return (struct loc){ f->weights, (size_t)(u - f->weights_base) };
    if (u >= f->arena && u < f->arena + f->arena_bytes) return (struct loc){ f->slots, (size_t)(u - f->arena) };
    fc_abort(__FILE__, __LINE__, "a weight outside every GPU buffer");
    return (struct loc){ NULL, 0 };
}

static struct loc at(struct fc_gpu_buffer * b, size_t off_bytes) { return (struct loc){ b, off_bytes }; }

/* One dispatch into cmd: kernel, argument struct at buffer 0, buffers 1.. */
static void launch(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const char * kernel, const void * args, size_t args_bytes,
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

/* out = W x for one token. */
static void matvec(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_matrix * w, struct loc x, struct loc out) {
    static const char * names[] = { "fc_matvec_f32", "fc_matvec_f16", "fc_matvec_bf16", "fc_matvec_q2", "fc_matvec_q4", "fc_matvec_q8" };
    struct fc_matmul_args a = { w->rows, w->cols, 1, (int32_t)w->row_bytes, w->cols, w->rows };
    const struct loc data = locate(f, w->data);
    const int quant = fc_dtype_is_quantized(w->type);
    struct loc bufs[5] = { data, quant ? locate(f, w->scales) : data, quant ? locate(f, w->biases) : data, x, out };
    launch(f, cmd, names[w->type], &a, sizeof a, bufs, 5, fc_gpu_size2(cdiv(w->rows, FC_MM_ROWS * FC_MM_SIMDGROUPS), 1),
           fc_gpu_size1(FC_MM_SIMDGROUPS * FC_SIMD_WIDTH));
}

static void rms_norm(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, struct loc x, size_t w_off, struct loc out, int32_t n,
                     int32_t rows, int32_t x_stride, int32_t out_stride) {
    struct fc_rms_norm_args a = { n, x_stride, out_stride, f->m->cfg.rms_eps };
    struct loc bufs[3] = { x, at(f->vectors, w_off), out };
    uint32_t threads = n >= 1024 ? 1024 : cdiv(n, 32) * 32;
    launch(f, cmd, "fc_rms_norm", &a, sizeof a, bufs, 3, fc_gpu_size1((uint32_t)rows), fc_gpu_size1(threads));
}

static void elementwise(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const char * kernel, const void * args, size_t n_args,
                        const struct loc * bufs, int n_bufs, int64_t n) {
    launch(f, cmd, kernel, args, n_args, bufs, n_bufs, fc_gpu_size1(cdiv(n, 256)), fc_gpu_size1(256));
}

static int quant_ok(const struct fc_matrix * w) {
    return !fc_dtype_is_quantized(w->type) || (w->group_size == FC_QGROUP && w->cols % FC_QGROUP == 0);
}

void fc_metal_forward_free(struct fc_metal_forward * f) {
    if (!f) return;
    const struct fc_gpu_ops * o = f->gpu->ops;
    struct fc_gpu_buffer * all[] = { f->weights, f->vectors, f->slots, f->xb, f->xn, f->out, f->q, f->k, f->v, f->attn, f->qkv, f->z,
                                     f->b, f->a, f->router, f->ids, f->w, f->gate, f->up, f->sh_out, f->sh_logit, f->eg, f->eu,
                                     f->eo, f->logits, f->argmax, f->tok };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) o->buffer_free(all[i]);
    for (int32_t i = 0; f->kc && i < f->m->n_full_layers; i++) o->buffer_free(f->kc[i]), o->buffer_free(f->vc[i]);
    for (int32_t i = 0; f->conv && i < f->m->n_linear_layers; i++) o->buffer_free(f->conv[i]), o->buffer_free(f->ssm[i]);
    free(f->kc), free(f->vc), free(f->conv), free(f->ssm), free(f->lv), free(f->arena);
    free(f);
}

enum fc_status fc_metal_forward_init(struct fc_metal_forward ** out, struct fc_gpu * gpu, const struct fc_model * m,
                                     struct fc_experts * x, int32_t context, int32_t n_active, int kv_f16, struct fc_error * err) {
    const struct fc_config * c = &m->cfg;
    if (n_active > FC_ROUTER_MAX_K || c->n_experts > FC_ROUTER_MAX_EXPERTS || c->head_dim > FC_ATTN_MAX_HEAD_DIM ||
        x->group_size != FC_QGROUP || x->use_mmap) {
        return fc_error_set(err, FC_STATUS_BAD_REQUEST,
                            "metal forward: needs K <= %d, <= %d experts, head_dim <= %d, 64-wide groups and experts read with pread",
                            FC_ROUTER_MAX_K, FC_ROUTER_MAX_EXPERTS, FC_ATTN_MAX_HEAD_DIM);
    }
    struct fc_metal_forward * f = fc_xcalloc(1, sizeof *f);
    const struct fc_gpu_ops * o = gpu->ops;
    f->gpu = gpu;
    f->m = m;
    f->x = x;
    f->context = context;
    f->n_active = n_active;
    f->kv_f16 = kv_f16;
    enum fc_status st = FC_STATUS_OK;
#define TRY(expr) do { if (!(expr)) { st = err->status; goto fail; } } while (0)
    /* dense weights in place: the mapping covers whole pages */
    f->weights_base = m->map;
    f->weights_bytes = page_round(m->map_bytes);
    TRY(f->weights = o->buffer_wrap(gpu, m->map, f->weights_bytes, err));
    const struct fc_matrix * mats[] = { &m->embed, &m->lm_head };
    for (int i = 0; i < 2; i++) {
        if (!quant_ok(mats[i])) { st = fc_error_set(err, FC_STATUS_BAD_REQUEST, "metal forward: a matrix with groups other than 64"); goto fail; }
    }
    /* the float vectors, copied into one buffer */
    const int32_t H = c->hidden_size, hd = c->head_dim, conv = fc_la_conv_dim(c), nv = c->la_n_v_heads;
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
    for (int32_t i = 0; i < c->rotary_dim / 2; i++) {
        float ex = (float)(2 * i) / (float)c->rotary_dim;
        vec[used++] = (float)(1.0 / pow((double)c->rope_theta, (double)ex));
    }
#undef PUT
    /* expert slots: 2 MiB-aligned memory the reads land in, wrapped once */
    f->arena_bytes = page_round(x->expert_bytes * (size_t)n_active);
    f->arena = fc_alloc_huge(f->arena_bytes);
    if (!f->arena) { st = fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory for expert slots"); goto fail; }
    TRY(f->slots = o->buffer_wrap(gpu, f->arena, f->arena_bytes, err));
    for (int32_t k = 0; k < n_active; k++) f->slot_ptr[k] = f->arena + x->expert_bytes * (size_t)k;
    /* activations */
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, vdim = nv * c->la_v_dim, K = n_active;
    const int32_t inter = c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter;
    const size_t attn_n = (size_t)(vdim > nh * hd ? vdim : nh * hd);
#define NEWF(buf, count) TRY((buf) = o->buffer_new(gpu, (size_t)(count) * sizeof(float), err))
    NEWF(f->xb, H); NEWF(f->xn, H); NEWF(f->out, H); NEWF(f->q, 2 * (size_t)nh * hd); NEWF(f->k, (size_t)nkv * hd);
    NEWF(f->v, (size_t)nkv * hd); NEWF(f->attn, attn_n); NEWF(f->qkv, conv); NEWF(f->z, vdim); NEWF(f->b, nv); NEWF(f->a, nv);
    NEWF(f->router, c->n_experts); NEWF(f->ids, K); NEWF(f->w, K); NEWF(f->gate, inter); NEWF(f->up, inter); NEWF(f->sh_out, H);
    NEWF(f->sh_logit, 1); NEWF(f->eg, (size_t)K * c->moe_inter); NEWF(f->eu, (size_t)K * c->moe_inter); NEWF(f->eo, (size_t)K * H);
    NEWF(f->logits, c->vocab_size); NEWF(f->argmax, 1); NEWF(f->tok, 1);
    /* sequence state */
    f->kc = fc_xcalloc((size_t)m->n_full_layers + 1, sizeof *f->kc);
    f->vc = fc_xcalloc((size_t)m->n_full_layers + 1, sizeof *f->vc);
    f->conv = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *f->conv);
    f->ssm = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *f->ssm);
    const size_t kv_bytes = (size_t)context * nkv * hd * (kv_f16 ? 2 : 4);
    for (int32_t i = 0; i < m->n_full_layers; i++) {
        TRY(f->kc[i] = o->buffer_new(gpu, kv_bytes, err));
        TRY(f->vc[i] = o->buffer_new(gpu, kv_bytes, err));
    }
    for (int32_t i = 0; i < m->n_linear_layers; i++) {
        NEWF(f->conv[i], (size_t)(c->la_conv_kernel - 1) * conv + 1);
        NEWF(f->ssm[i], (size_t)nv * c->la_k_dim * c->la_v_dim);
    }
#undef NEWF
#undef TRY
    *out = f;
    return FC_STATUS_OK;
fail:
    fc_metal_forward_free(f);
    return st;
}

static void full_attention(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly, const struct layer_vectors * v) {
    const struct fc_config * c = &f->m->cfg;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, pos = f->n_past;
    matvec(f, cmd, &ly->q_proj, at(f->xn, 0), at(f->q, 0)); /* per head [query | gate] */
    matvec(f, cmd, &ly->k_proj, at(f->xn, 0), at(f->k, 0));
    matvec(f, cmd, &ly->v_proj, at(f->xn, 0), at(f->v, 0));
    rms_norm(f, cmd, at(f->q, 0), v->q_norm, at(f->q, 0), hd, nh, 2 * hd, 2 * hd);
    rms_norm(f, cmd, at(f->k, 0), v->k_norm, at(f->k, 0), hd, nkv, hd, hd);
    struct fc_rope_args rq = { 1, nh, c->rotary_dim, 2 * hd, 2 * nh * hd, pos };
    struct loc bq[2] = { at(f->q, 0), at(f->vectors, f->inv_freq) };
    elementwise(f, cmd, "fc_rope", &rq, sizeof rq, bq, 2, (int64_t)nh * c->rotary_dim / 2);
    struct fc_rope_args rk = { 1, nkv, c->rotary_dim, hd, nkv * hd, pos };
    struct loc bk[2] = { at(f->k, 0), at(f->vectors, f->inv_freq) };
    elementwise(f, cmd, "fc_rope", &rk, sizeof rk, bk, 2, (int64_t)nkv * c->rotary_dim / 2);
    struct fc_kv_store_args ks = { 1, nkv * hd, nkv * hd, pos };
    struct loc bs[4] = { at(f->k, 0), at(f->v, 0), at(f->kc[ly->index_in_kind], 0), at(f->vc[ly->index_in_kind], 0) };
    elementwise(f, cmd, f->kv_f16 ? "fc_kv_store_f16" : "fc_kv_store_f32", &ks, sizeof ks, bs, 4, (int64_t)nkv * hd);
    struct fc_attn_args aa = { nh, nkv, hd, 1, pos, 2 * nh * hd, 2 * hd, hd, nh * hd, 1.0f / sqrtf((float)hd) };
    struct loc ba[4] = { at(f->q, 0), bs[2], bs[3], at(f->attn, 0) };
    launch(f, cmd, f->kv_f16 ? "fc_attn_f16" : "fc_attn_f32", &aa, sizeof aa, ba, 4, fc_gpu_size2(nh, 1),
           fc_gpu_size1(FC_ATTN_SIMDGROUPS * FC_SIMD_WIDTH));
    matvec(f, cmd, &ly->o_proj, at(f->attn, 0), at(f->out, 0));
}

static void linear_attention(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly, const struct layer_vectors * v) {
    const struct fc_config * c = &f->m->cfg;
    const int32_t nk = c->la_n_k_heads, nv = c->la_n_v_heads, dk = c->la_k_dim, dv = c->la_v_dim, conv = fc_la_conv_dim(c);
    matvec(f, cmd, &ly->in_qkv, at(f->xn, 0), at(f->qkv, 0));
    matvec(f, cmd, &ly->in_z, at(f->xn, 0), at(f->z, 0));
    matvec(f, cmd, &ly->in_b, at(f->xn, 0), at(f->b, 0));
    matvec(f, cmd, &ly->in_a, at(f->xn, 0), at(f->a, 0));
    struct fc_conv1d_args ca = { conv, c->la_conv_kernel, 1, conv };
    struct loc bc[3] = { at(f->qkv, 0), at(f->vectors, v->conv_w), at(f->conv[ly->index_in_kind], 0) };
    elementwise(f, cmd, "fc_conv1d_silu", &ca, sizeof ca, bc, 3, conv);
    struct fc_l2norm_args la = { 1, 2 * nk, dk, conv, nk, 1.0f / sqrtf((float)dk), 1e-6f };
    struct loc bl[1] = { at(f->qkv, 0) };
    launch(f, cmd, "fc_l2norm_heads", &la, sizeof la, bl, 1, fc_gpu_size2((uint32_t)(2 * nk), 1), fc_gpu_size1(32));
    struct fc_delta_args da = { 1, nk, nv, dk, dv, conv, nv * dv, nv * dv, c->rms_eps };
    struct loc bd[9] = { at(f->qkv, 0), at(f->z, 0), at(f->b, 0), at(f->a, 0), at(f->vectors, v->a_neg), at(f->vectors, v->dt_bias),
                         at(f->vectors, v->la_norm), at(f->ssm[ly->index_in_kind], 0), at(f->attn, 0) };
    launch(f, cmd, "fc_delta_step", &da, sizeof da, bd, 9, fc_gpu_size1((uint32_t)nv), fc_gpu_size1(cdiv(dv, 32) * 32));
    matvec(f, cmd, &ly->out_proj, at(f->attn, 0), at(f->out, 0));
}

static struct fc_gpu_cmd * submit_and_restart(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, enum fc_status * st, struct fc_error * err) {
    f->gpu->ops->commit(cmd);
    *st = f->gpu->ops->wait(cmd, err);
    return f->gpu->ops->cmd_begin(f->gpu);
}

enum fc_status fc_metal_forward_token(struct fc_metal_forward * f, int32_t token, float * logits, int32_t * argmax, struct fc_error * err) {
    const struct fc_model * m = f->m;
    const struct fc_config * c = &m->cfg;
    const struct fc_gpu_ops * o = f->gpu->ops;
    const int32_t H = c->hidden_size, K = f->n_active;
    if (token < 0 || token >= c->vocab_size) return fc_error_set(err, FC_STATUS_BAD_TOKEN, "token %d is outside the vocabulary", token);
    if (f->n_past >= f->context) return fc_error_set(err, FC_STATUS_CONTEXT_OVERFLOW, "the context of %d is full", f->context);
    enum fc_status st = FC_STATUS_OK;
    *(int32_t *)o->buffer_contents(f->tok) = token;
    struct fc_gpu_cmd * cmd = o->cmd_begin(f->gpu);
    const struct fc_matrix * em = &m->embed;
    struct fc_embed_args ea = { (int32_t)em->type, em->cols, (int32_t)em->row_bytes, em->group_size, 1 };
    const int quant = fc_dtype_is_quantized(em->type);
    struct loc be[5] = { locate(f, em->data), quant ? locate(f, em->scales) : locate(f, em->data),
                         quant ? locate(f, em->biases) : locate(f, em->data), at(f->tok, 0), at(f->xb, 0) };
    elementwise(f, cmd, "fc_embed", &ea, sizeof ea, be, 5, H);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        const struct layer_vectors * v = &f->lv[l];
        rms_norm(f, cmd, at(f->xb, 0), v->input_norm, at(f->xn, 0), H, 1, H, H);
        if (ly->is_full) full_attention(f, cmd, ly, v);
        else linear_attention(f, cmd, ly, v);
        struct fc_add_args ad = { H };
        struct loc bad[2] = { at(f->xb, 0), at(f->out, 0) };
        elementwise(f, cmd, "fc_add", &ad, sizeof ad, bad, 2, H);
        rms_norm(f, cmd, at(f->xb, 0), v->post_norm, at(f->xn, 0), H, 1, H, H);
        matvec(f, cmd, &ly->router, at(f->xn, 0), at(f->router, 0));
        struct fc_router_args ra = { c->n_experts, K, c->norm_topk_prob };
        struct loc br[3] = { at(f->router, 0), at(f->ids, 0), at(f->w, 0) };
        launch(f, cmd, "fc_router_topk", &ra, sizeof ra, br, 3, fc_gpu_size1(1), fc_gpu_size1(c->n_experts >= 1024 ? 1024 : cdiv(c->n_experts, 32) * 32));
        if (ly->has_shared) {
            const int32_t SI = ly->sh_gate.rows;
            matvec(f, cmd, &ly->sh_gate, at(f->xn, 0), at(f->gate, 0));
            matvec(f, cmd, &ly->sh_up, at(f->xn, 0), at(f->up, 0));
            struct fc_swiglu_args sa = { SI };
            struct loc bsw[2] = { at(f->gate, 0), at(f->up, 0) };
            elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, SI);
            matvec(f, cmd, &ly->sh_down, at(f->gate, 0), at(f->sh_out, 0));
            matvec(f, cmd, &ly->sh_expert_gate, at(f->xn, 0), at(f->sh_logit, 0));
        }
        /* sync point: the host needs the routed experts' ids to read them */
        cmd = submit_and_restart(f, cmd, &st, err);
        if (st != FC_STATUS_OK) goto done;
        const int32_t * ids = o->buffer_contents(f->ids);
        fc_experts_read_start(f->x, l, ids, K, f->slot_ptr, 0);
        if ((st = fc_experts_read_wait(f->x, err)) != FC_STATUS_OK) goto done;
        for (int32_t k = 0; k < K; k++) {
            struct fc_matrix mg, mu, md;
            fc_experts_view(f->x, f->x->slot_data[k], &mg, &mu, &md);
            const int32_t I = mg.rows;
            matvec(f, cmd, &mg, at(f->xn, 0), at(f->eg, (size_t)k * c->moe_inter * 4));
            matvec(f, cmd, &mu, at(f->xn, 0), at(f->eu, (size_t)k * c->moe_inter * 4));
            struct fc_swiglu_args sa = { I };
            struct loc bsw[2] = { at(f->eg, (size_t)k * c->moe_inter * 4), at(f->eu, (size_t)k * c->moe_inter * 4) };
            elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, I);
            matvec(f, cmd, &md, at(f->eg, (size_t)k * c->moe_inter * 4), at(f->eo, (size_t)k * H * 4));
        }
        struct fc_combine_args ca = { H, K, 1, ly->has_shared, 1 };
        struct loc bcm[5] = { at(f->xb, 0), at(f->sh_out, 0), at(f->sh_logit, 0), at(f->eo, 0), at(f->w, 0) };
        elementwise(f, cmd, "fc_moe_combine", &ca, sizeof ca, bcm, 5, H);
    }
    rms_norm(f, cmd, at(f->xb, 0), f->final_norm, at(f->xn, 0), H, 1, H, H);
    matvec(f, cmd, &m->lm_head, at(f->xn, 0), at(f->logits, 0));
    struct fc_argmax_args aa = { c->vocab_size };
    struct loc bam[2] = { at(f->logits, 0), at(f->argmax, 0) };
    launch(f, cmd, "fc_argmax", &aa, sizeof aa, bam, 2, fc_gpu_size1(1), fc_gpu_size1(1024));
    o->commit(cmd);
    st = o->wait(cmd, err);
    cmd = NULL;
    if (st != FC_STATUS_OK) return st;
    if (logits) memcpy(logits, o->buffer_contents(f->logits), (size_t)c->vocab_size * sizeof(float));
    if (argmax) *argmax = *(const int32_t *)o->buffer_contents(f->argmax);
    f->n_past++;
    return FC_STATUS_OK;
done:
    if (cmd) {
        o->commit(cmd);
        o->wait(cmd, NULL);
    }
    return st;
}

void fc_metal_forward_reset(struct fc_metal_forward * f) {
    const struct fc_gpu_ops * o = f->gpu->ops;
    for (int32_t i = 0; i < f->m->n_linear_layers; i++) {
        memset(o->buffer_contents(f->conv[i]), 0, o->buffer_bytes(f->conv[i]));
        memset(o->buffer_contents(f->ssm[i]), 0, o->buffer_bytes(f->ssm[i]));
    }
    f->n_past = 0;
}
