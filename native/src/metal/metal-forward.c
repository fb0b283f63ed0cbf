/*
 * The model's forward pass over the GPU device interface (device.h), a batch of tokens at a time: the host
 * side of the Metal backend — buffer ownership, bindings, dispatch sizes and sync points — before it goes
 * behind the layer-level seam (BACKENDS.md). Dense weights are the model's mapping wrapped without a
 * copy; the small float vectors (norms, conv weights, A, dt bias) are copied once into one buffer; the
 * routed experts of a layer are pread into 2 MiB-aligned slots wrapped once. Per layer: one command
 * buffer up to the router's top-K (the host waits for it and reads the experts), then the experts and the
 * combine are encoded into the command buffer that continues with the next layer. A batch (prefill) uses
 * the batched matmuls, and each expert multiplies only the tokens routed to it (gathered, then scattered
 * to their (token, k) slots); more distinct experts than slots are taken in waves.
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
    int32_t context, n_active, kv_f16, n_past, max_batch, n_slots;
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
    uint8_t ** slot_ptr;
    int32_t * expert_count; /* [n_experts] */
    /* activations */
    struct fc_gpu_buffer *xb, *xn, *out, *q, *k, *v, *attn, *qkv, *z, *b, *a, *router, *ids, *w, *gate, *up, *sh_out,
        *sh_logit, *eg, *eu, *eo, *logits, *argmax, *tok, *gathered, *down, *idx;
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

/* out[t] = W x[t] for n tokens (rows of x and out packed): the matvec for one token, the batched matmul else. */
static void matmul(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_matrix * w, struct loc x, struct loc out,
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
                                     f->eo, f->logits, f->argmax, f->tok, f->gathered, f->down, f->idx };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) o->buffer_free(all[i]);
    for (int32_t i = 0; f->kc && i < f->m->n_full_layers; i++) o->buffer_free(f->kc[i]), o->buffer_free(f->vc[i]);
    for (int32_t i = 0; f->conv && i < f->m->n_linear_layers; i++) o->buffer_free(f->conv[i]), o->buffer_free(f->ssm[i]);
    free(f->kc), free(f->vc), free(f->conv), free(f->ssm), free(f->lv), free(f->arena), free(f->slot_ptr), free(f->expert_count);
    free(f);
}

enum fc_status fc_metal_forward_init(struct fc_metal_forward ** out, struct fc_gpu * gpu, const struct fc_model * m,
                                     struct fc_experts * x, int32_t context, int32_t n_active, int32_t max_batch, int32_t n_slots,
                                     int kv_f16, struct fc_error * err) {
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
    f->max_batch = max_batch > 0 ? max_batch : 1;
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
    /* K slots for one token; by default a batch takes up to 4K distinct experts per wave */
    f->n_slots = n_slots > 0 ? n_slots : f->max_batch == 1 ? n_active : 4 * n_active;
    if (f->n_slots > c->n_experts) f->n_slots = c->n_experts;
    if (f->n_slots < n_active) f->n_slots = n_active;
    if (f->n_slots > 256) f->n_slots = 256;
    f->arena_bytes = page_round(x->expert_bytes * (size_t)f->n_slots);
    f->arena = fc_alloc_huge(f->arena_bytes);
    if (!f->arena) { st = fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory for expert slots"); goto fail; }
    TRY(f->slots = o->buffer_wrap(gpu, f->arena, f->arena_bytes, err));
    f->slot_ptr = fc_xcalloc((size_t)f->n_slots, sizeof *f->slot_ptr);
    for (int32_t k = 0; k < f->n_slots; k++) f->slot_ptr[k] = f->arena + x->expert_bytes * (size_t)k;
    f->expert_count = fc_xcalloc((size_t)c->n_experts, sizeof *f->expert_count);
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

static void full_attention(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly, const struct layer_vectors * v,
                           int32_t n) {
    const struct fc_config * c = &f->m->cfg;
    const int32_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, pos0 = f->n_past;
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
    struct fc_kv_store_args ks = { n, nkv * hd, nkv * hd, pos0 };
    struct loc bs[4] = { at(f->k, 0), at(f->v, 0), at(f->kc[ly->index_in_kind], 0), at(f->vc[ly->index_in_kind], 0) };
    elementwise(f, cmd, f->kv_f16 ? "fc_kv_store_f16" : "fc_kv_store_f32", &ks, sizeof ks, bs, 4, (int64_t)n * nkv * hd);
    struct fc_attn_args aa = { nh, nkv, hd, n, pos0, 2 * nh * hd, 2 * hd, hd, nh * hd, 1.0f / sqrtf((float)hd) };
    struct loc ba[4] = { at(f->q, 0), bs[2], bs[3], at(f->attn, 0) };
    launch(f, cmd, f->kv_f16 ? "fc_attn_f16" : "fc_attn_f32", &aa, sizeof aa, ba, 4, fc_gpu_size2((uint32_t)nh, (uint32_t)n),
           fc_gpu_size1(FC_ATTN_SIMDGROUPS * FC_SIMD_WIDTH));
    matmul(f, cmd, &ly->o_proj, at(f->attn, 0), at(f->out, 0), n);
}

static void linear_attention(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, const struct fc_layer * ly,
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

static struct fc_gpu_cmd * submit_and_restart(struct fc_metal_forward * f, struct fc_gpu_cmd * cmd, enum fc_status * st, struct fc_error * err) {
    f->gpu->ops->commit(cmd);
    *st = f->gpu->ops->wait(cmd, err);
    return f->gpu->ops->cmd_begin(f->gpu);
}

/* The routed experts of layer l for n tokens (ids/weights on the host after the router's sync), in waves of
   at most n_slots distinct experts, into eo [n * K][H]; then the combine into the residual. */
static enum fc_status routed_experts(struct fc_metal_forward * f, struct fc_gpu_cmd ** cmdp, int32_t l, int32_t n, struct fc_error * err) {
    const struct fc_config * c = &f->m->cfg;
    const struct fc_gpu_ops * o = f->gpu->ops;
    const int32_t H = c->hidden_size, K = f->n_active, E = c->n_experts, I = c->moe_inter;
    const int32_t * ids = o->buffer_contents(f->ids);
    int32_t used[FC_ROUTER_MAX_EXPERTS], n_used = 0;
    memset(f->expert_count, 0, (size_t)E * sizeof *f->expert_count);
    for (int32_t i = 0; i < n * K; i++) f->expert_count[ids[i]]++;
    if (n == 1) {
        for (int32_t j = 0; j < K; j++) used[n_used++] = ids[j]; /* slot j is the token's j-th choice */
    } else {
        for (int32_t x = 0; x < E; x++) {
            if (f->expert_count[x]) used[n_used++] = x;
        }
    }
    int32_t * idx = o->buffer_contents(f->idx); /* per expert: its tokens (src), then their (token, k) slots (dst) */
    enum fc_status st = FC_STATUS_OK;
    for (int32_t first = 0; first < n_used; first += f->n_slots) {
        const int32_t n_wave = n_used - first < f->n_slots ? n_used - first : f->n_slots;
        if (first > 0) { /* the slots are reused: the previous wave must be done with them */
            *cmdp = submit_and_restart(f, *cmdp, &st, err);
            if (st != FC_STATUS_OK) return st;
        }
        fc_experts_read_start(f->x, l, used + first, n_wave, f->slot_ptr, 0);
        if ((st = fc_experts_read_wait(f->x, err)) != FC_STATUS_OK) return st;
        size_t idx_used = 0;
        for (int32_t s = 0; s < n_wave; s++) {
            struct fc_gpu_cmd * cmd = *cmdp;
            struct fc_matrix mg, mu, md;
            fc_experts_view(f->x, f->x->slot_data[s], &mg, &mu, &md);
            if (n == 1) {
                const int32_t j = first + s;
                matmul(f, cmd, &mg, at(f->xn, 0), at(f->eg, 0), 1);
                matmul(f, cmd, &mu, at(f->xn, 0), at(f->eu, 0), 1);
                struct fc_swiglu_args sa = { I };
                struct loc bsw[2] = { at(f->eg, 0), at(f->eu, 0) };
                elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, I);
                matmul(f, cmd, &md, at(f->eg, 0), at(f->eo, (size_t)j * H * 4), 1);
                continue;
            }
            /* the tokens routed to this expert and the slots their outputs go to */
            const int32_t x = used[first + s];
            int32_t * src = idx + idx_used, * dst = src + f->expert_count[x], n_e = 0;
            for (int32_t i = 0; i < n * K; i++) {
                if (ids[i] == x) {
                    src[n_e] = i / K;
                    dst[n_e] = i;
                    n_e++;
                }
            }
            const size_t src_off = idx_used * 4, dst_off = (idx_used + (size_t)n_e) * 4;
            idx_used += 2 * (size_t)n_e;
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
        }
    }
    return FC_STATUS_OK;
}

enum fc_status fc_metal_forward_eval(struct fc_metal_forward * f, const int32_t * tokens, int32_t n, float * logits_all,
                                     float * logits_last, int32_t * argmax_last, struct fc_error * err) {
    const struct fc_model * m = f->m;
    const struct fc_config * c = &m->cfg;
    const struct fc_gpu_ops * o = f->gpu->ops;
    const int32_t H = c->hidden_size, K = f->n_active, V = c->vocab_size;
    if (n <= 0 || n > f->max_batch) return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%d tokens (1..%d per call)", n, f->max_batch);
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V) return fc_error_set(err, FC_STATUS_BAD_TOKEN, "token %d is outside the vocabulary", tokens[i]);
    }
    if (f->n_past + n > f->context) return fc_error_set(err, FC_STATUS_CONTEXT_OVERFLOW, "%d + %d tokens exceed the context of %d", f->n_past, n, f->context);
    enum fc_status st = FC_STATUS_OK;
    memcpy(o->buffer_contents(f->tok), tokens, (size_t)n * sizeof *tokens);
    struct fc_gpu_cmd * cmd = o->cmd_begin(f->gpu);
    const struct fc_matrix * em = &m->embed;
    struct fc_embed_args ea = { (int32_t)em->type, em->cols, (int32_t)em->row_bytes, em->group_size, n };
    const int quant = fc_dtype_is_quantized(em->type);
    struct loc be[5] = { locate(f, em->data), quant ? locate(f, em->scales) : locate(f, em->data),
                         quant ? locate(f, em->biases) : locate(f, em->data), at(f->tok, 0), at(f->xb, 0) };
    elementwise(f, cmd, "fc_embed", &ea, sizeof ea, be, 5, (int64_t)n * H);
    for (int32_t l = 0; l < c->n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        const struct layer_vectors * v = &f->lv[l];
        rms_norm(f, cmd, at(f->xb, 0), v->input_norm, at(f->xn, 0), H, n, H, H);
        if (ly->is_full) full_attention(f, cmd, ly, v, n);
        else linear_attention(f, cmd, ly, v, n);
        struct fc_add_args ad = { n * H };
        struct loc bad[2] = { at(f->xb, 0), at(f->out, 0) };
        elementwise(f, cmd, "fc_add", &ad, sizeof ad, bad, 2, (int64_t)n * H);
        rms_norm(f, cmd, at(f->xb, 0), v->post_norm, at(f->xn, 0), H, n, H, H);
        matmul(f, cmd, &ly->router, at(f->xn, 0), at(f->router, 0), n);
        struct fc_router_args ra = { c->n_experts, K, c->norm_topk_prob };
        struct loc br[3] = { at(f->router, 0), at(f->ids, 0), at(f->w, 0) };
        launch(f, cmd, "fc_router_topk", &ra, sizeof ra, br, 3, fc_gpu_size1((uint32_t)n),
               fc_gpu_size1(c->n_experts >= 1024 ? 1024 : cdiv(c->n_experts, 32) * 32));
        if (ly->has_shared) {
            const int32_t SI = ly->sh_gate.rows;
            matmul(f, cmd, &ly->sh_gate, at(f->xn, 0), at(f->gate, 0), n);
            matmul(f, cmd, &ly->sh_up, at(f->xn, 0), at(f->up, 0), n);
            struct fc_swiglu_args sa = { n * SI };
            struct loc bsw[2] = { at(f->gate, 0), at(f->up, 0) };
            elementwise(f, cmd, "fc_swiglu", &sa, sizeof sa, bsw, 2, (int64_t)n * SI);
            matmul(f, cmd, &ly->sh_down, at(f->gate, 0), at(f->sh_out, 0), n);
            matmul(f, cmd, &ly->sh_expert_gate, at(f->xn, 0), at(f->sh_logit, 0), n);
        }
        /* sync point: the host needs the routed experts' ids to read them */
        cmd = submit_and_restart(f, cmd, &st, err);
        if (st != FC_STATUS_OK) goto done;
        if ((st = routed_experts(f, &cmd, l, n, err)) != FC_STATUS_OK) goto done;
        struct fc_combine_args ca = { H, K, n, ly->has_shared, 1 };
        struct loc bcm[5] = { at(f->xb, 0), at(f->sh_out, 0), at(f->sh_logit, 0), at(f->eo, 0), at(f->w, 0) };
        elementwise(f, cmd, "fc_moe_combine", &ca, sizeof ca, bcm, 5, (int64_t)n * H);
    }
    /* logits of every position, or of the last one only */
    const int32_t first = logits_all ? 0 : n - 1, n_out = n - first;
    rms_norm(f, cmd, at(f->xb, (size_t)first * H * 4), f->final_norm, at(f->xn, 0), H, n_out, H, H);
    matmul(f, cmd, &m->lm_head, at(f->xn, 0), at(f->logits, 0), n_out);
    struct fc_argmax_args aa = { V };
    struct loc bam[2] = { at(f->logits, 0), at(f->argmax, 0) };
    launch(f, cmd, "fc_argmax", &aa, sizeof aa, bam, 2, fc_gpu_size1((uint32_t)n_out), fc_gpu_size1(1024));
    o->commit(cmd);
    st = o->wait(cmd, err);
    cmd = NULL;
    if (st != FC_STATUS_OK) return st;
    const float * lg = o->buffer_contents(f->logits);
    if (logits_all) memcpy(logits_all, lg, (size_t)n * V * sizeof(float));
    if (logits_last) memcpy(logits_last, lg + (size_t)(n_out - 1) * V, (size_t)V * sizeof(float));
    if (argmax_last) *argmax_last = ((const int32_t *)o->buffer_contents(f->argmax))[n_out - 1];
    f->n_past += n;
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
