/* Engine set-up: model, experts, the sequence state, scratch and the backend; evaluation in chunks (the layer loop is forward.c). */
#define _GNU_SOURCE
#include "engine.h"
#include "nn-math.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }

size_t fc_engine_recurrent_bytes(const struct fc_engine * e) {
    const struct fc_config * c = &e->model.cfg;
    size_t per = (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c) + (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim;
    return per * sizeof(float) * (size_t)e->model.n_linear_layers;
}

static size_t kv_bytes_per_pos(const struct fc_model * m, enum fc_kv_type type) {
    return 2 * (size_t)m->cfg.n_kv_heads * fc_kv_row_bytes(type, m->cfg.head_dim) * (size_t)m->n_full_layers;
}

size_t fc_engine_kv_bytes_per_pos(const struct fc_engine * e) {
    return kv_bytes_per_pos(&e->model, e->st.kv.type);
}

#define ALLOC(ptr, count)                                                                                   \
    do {                                                                                                    \
        (ptr) = fc_alloc_aligned((size_t)(count) * sizeof *(ptr));                                          \
        if (!(ptr)) return fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory allocating %s", #ptr);    \
    } while (0)

/* Zeroed, page-aligned, a whole number of pages: a GPU backend wraps it without a copy (newBufferWithBytesNoCopy). */
static void * alloc_pages(size_t n_bytes) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t n = (n_bytes + page - 1) / page * page;
    void * p = NULL;
    if (posix_memalign(&p, page, n ? n : page) != 0) return NULL;
    memset(p, 0, n ? n : page);
    return p;
}

#define ALLOC_PAGES(ptr, count)                                                                             \
    do {                                                                                                    \
        (ptr) = alloc_pages((size_t)(count) * sizeof *(ptr));                                               \
        if (!(ptr)) return fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory allocating %s", #ptr);    \
    } while (0)

static enum fc_status alloc_state(struct fc_engine * e, enum fc_kv_type type, struct fc_error * err) {
    const struct fc_config * c = &e->model.cfg;
    const struct fc_model * m = &e->model;
    struct fc_seq_state * st = &e->st;
    st->conv = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *st->conv);
    st->ssm = fc_xcalloc((size_t)m->n_linear_layers + 1, sizeof *st->ssm);
    for (int32_t i = 0; i < m->n_linear_layers; i++) {
        ALLOC_PAGES(st->conv[i], (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c) + 1);
        ALLOC_PAGES(st->ssm[i], (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim);
    }
    return fc_kv_init(&st->kv, type, m->n_full_layers, c->n_kv_heads, c->head_dim, e->context, err);
}

static enum fc_status alloc_scratch(struct fc_engine * e, struct fc_error * err) {
    const struct fc_config * c = &e->model.cfg;
    struct fc_scratch * s = &e->s;
    const size_t B = (size_t)e->max_batch, H = (size_t)c->hidden_size;
    const int32_t vdim = c->la_n_v_heads * c->la_v_dim, conv = fc_la_conv_dim(c);
    const int32_t qdim = c->n_heads * c->head_dim, kvdim = c->n_kv_heads * c->head_dim;
    const int32_t inter = imax(c->moe_inter, c->shared_inter);
    ALLOC(s->x, B * H);
    ALLOC(s->xn, B * H);
    ALLOC(s->out, B * H);
    ALLOC(s->proj, B * (size_t)imax(conv, 2 * qdim));
    ALLOC(s->proj2, B * (size_t)imax(vdim, kvdim));
    ALLOC(s->proj3, B * (size_t)imax(c->la_n_v_heads, kvdim));
    ALLOC(s->proj4, B * (size_t)c->la_n_v_heads);
    ALLOC(s->attn, B * (size_t)imax(vdim, qdim));
    ALLOC(s->attn_tmp, (size_t)e->n_threads * fc_full_attn_scratch_floats(e));
    ALLOC(s->router, B * (size_t)c->n_experts);
    ALLOC(s->gate, B * (size_t)inter);
    ALLOC(s->up, B * (size_t)inter);
    ALLOC(s->gathered, B * H);
    ALLOC(s->down, B * H);
    ALLOC(s->sh_gate, B);
    ALLOC(s->topk_ids, B * (size_t)e->n_active);
    ALLOC(s->topk_w, B * (size_t)e->n_active);
    ALLOC(s->tok_idx, B);
    ALLOC(s->topk_pair, B);
    ALLOC(s->tok_w, B);
    ALLOC(s->inv_freq, (size_t)imax(c->rotary_dim / 2, 1));
    for (int32_t i = 0; i < c->rotary_dim / 2; i++) {
        /* as the reference: float32 exponent 2i/rot, inverse of theta^that */
        float ex = (float)(2 * i) / (float)c->rotary_dim;
        s->inv_freq[i] = (float)(1.0 / pow((double)c->rope_theta, (double)ex));
    }
    ALLOC(e->expert_count, (size_t)c->n_experts);
    return FC_STATUS_OK;
}

/*
 * The context: the one asked for, else the model's maximum. Its KV cache (grown as the sequence grows) must
 * fit in KV_MEMORY_SHARE of the memory available now: an asked context that does not is an error naming
 * the setting; the default one is lowered to a power of two that fits, saying so on stderr.
 */
#define KV_MEMORY_SHARE 0.8

static enum fc_status choose_context(struct fc_engine * e, int32_t asked, enum fc_kv_type type, struct fc_error * err) {
    const size_t per = kv_bytes_per_pos(&e->model, type);
    const int32_t want = asked > 0 ? asked : e->max_context;
    const uint64_t avail = fc_available_memory();
    const double budget = (double)avail * KV_MEMORY_SHARE, need = (double)want * (double)per;
    e->context = want;
    if (avail == 0 || per == 0 || need <= budget) return FC_STATUS_OK;
    if (asked > 0) {
        return fc_error_set(err, FC_STATUS_NO_MEMORY,
                            "--context %d needs %.1f GB of KV cache (%s); %.1f GB of memory is free: lower the context "
                            "(CONTEXT_SIZE) or use --kv-type q8",
                            want, need / 1e9, fc_kv_type_name(type), (double)avail / 1e9);
    }
    int64_t fit = (int64_t)(budget / (double)per);
    if (fit >= 4096) {
        int64_t p2 = 4096;
        while (p2 * 2 <= fit) p2 *= 2;
        fit = p2;
    } else {
        fit = fit / 256 * 256;
    }
    if (fit < 256) {
        return fc_error_set(err, FC_STATUS_NO_MEMORY, "even 256 tokens of KV cache (%s) do not fit in the %.1f GB of memory free",
                            fc_kv_type_name(type), (double)avail / 1e9);
    }
    fprintf(stderr, "flashchat-engine: context %d needs %.1f GB of KV cache (%s); %.1f GB free: using %lld\n", want, need / 1e9,
            fc_kv_type_name(type), (double)avail / 1e9, (long long)fit);
    e->context = (int32_t)fit;
    return FC_STATUS_OK;
}

enum fc_status fc_engine_init(struct fc_engine * e, const struct fc_engine_options * opt, struct fc_error * err) {
    memset(e, 0, sizeof *e);
    struct fc_gpu * created = NULL; /* "auto" on a Mac: the device it found, used as it is (not created twice) */
    enum fc_status st = fc_model_load(&e->model, opt->artifacts_dir, err);
    if (st != FC_STATUS_OK) return st;
    const struct fc_config * c = &e->model.cfg;
    e->n_threads = opt->n_threads > 0 ? opt->n_threads : fc_cpu_count();
    e->max_context = c->max_position;
    if (opt->context > e->max_context) {
        st = fc_error_set(err, FC_STATUS_BAD_REQUEST, "--context %d is larger than the model's maximum context of %d tokens",
                          opt->context, e->max_context);
        goto fail;
    }
    e->n_active = opt->n_active_experts > 0 ? opt->n_active_experts : c->n_experts_used;
    if (e->n_active > c->n_experts) e->n_active = c->n_experts;
    e->max_batch = opt->max_batch > 0 ? opt->max_batch : 512; /* bigger batches share more expert reads (and fill the int8 tiles) */
    char dir[4096];
    if (opt->experts_dir) snprintf(dir, sizeof dir, "%s", opt->experts_dir);
    else snprintf(dir, sizeof dir, "%s/packed_experts", opt->artifacts_dir);
    int32_t n_io = opt->n_io_threads > 0 ? opt->n_io_threads : (e->n_active < 4 ? 4 : e->n_active);
    if (n_io > 32) n_io = 32;
    const char * backend = fc_engine_resolve_backend(opt->backend ? opt->backend : "cpu", &created);
    enum fc_expert_io io = (enum fc_expert_io)opt->expert_io;
    const int gpu = strncmp(backend, "metal", 5) == 0;
    st = fc_experts_load(&e->experts, dir, c, n_io, io, err);
    if (st != FC_STATUS_OK) goto fail;
    const enum fc_kv_type kv_type = (enum fc_kv_type)opt->kv_type;
    if ((st = choose_context(e, opt->context, kv_type, err)) != FC_STATUS_OK) goto fail;
    e->pool = fc_pool_init(e->n_threads);
    if (!e->pool) { st = fc_error_set(err, FC_STATUS_INTERNAL, "cannot start %d compute threads", e->n_threads); goto fail; }
    /* the CPU kernels always (bench's kernel modes, verify's CPU side, and the CPU layer backend) */
    st = fc_backend_init(&e->be, gpu ? "cpu" : backend, e->pool, err);
    if (st != FC_STATUS_OK) goto fail;
    if ((st = alloc_state(e, kv_type, err)) != FC_STATUS_OK) goto fail;
    if ((st = alloc_scratch(e, err)) != FC_STATUS_OK) goto fail;
    /* two waves of K: while one wave of experts is multiplied, the next is read (prompt batches) */
    e->n_expert_bufs = e->n_active > 128 ? 256 : 2 * e->n_active;
    e->expert_bufs = fc_xcalloc((size_t)e->n_expert_bufs, sizeof *e->expert_bufs);
    /* one huge-page arena for all expert buffers (each read into and multiplied every token) */
    e->expert_arena = fc_alloc_huge(e->experts.expert_bytes * (size_t)e->n_expert_bufs);
    if (!e->expert_arena) { st = fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory for expert buffers"); goto fail; }
    for (int32_t i = 0; i < e->n_expert_bufs; i++) e->expert_bufs[i] = e->expert_arena + e->experts.expert_bytes * (size_t)i;
    e->backend_name = "cpu";
    fc_layer_cpu_init(&e->lb, e);
    if (gpu) {
        st = fc_engine_gpu_open(e, backend, created, err);
        created = NULL; /* the engine's now (or released) */
        if (st != FC_STATUS_OK) goto fail;
    }
    return FC_STATUS_OK;
fail:
    fc_gpu_release(created);
    fc_engine_free(e);
    return st;
}

enum fc_expert_io fc_engine_expert_io(const struct fc_engine * e) {
    if (!e->experts.use_mmap) return FC_EXPERT_IO_PREAD;
    return e->experts.populated ? FC_EXPERT_IO_POPULATE : FC_EXPERT_IO_MMAP;
}

void fc_engine_free(struct fc_engine * e) {
    /* the GPU first: its buffers wrap the memory freed below */
    if (e->gpu) fc_engine_gpu_close(e);
    else if (e->lb.ops) e->lb.ops->free(&e->lb);
    struct fc_seq_state * st = &e->st;
    for (int32_t i = 0; st->conv && i < e->model.n_linear_layers; i++) { free(st->conv[i]); free(st->ssm[i]); }
    fc_kv_free(&st->kv);
    free(st->conv); free(st->ssm); free(st->tokens);
    struct fc_scratch * s = &e->s;
    void * bufs[] = { s->x, s->xn, s->out, s->proj, s->proj2, s->proj3, s->proj4, s->attn, s->attn_tmp, s->router, s->gate,
                      s->up, s->gathered, s->down, s->sh_gate, s->topk_ids, s->topk_w, s->tok_idx, s->topk_pair, s->tok_w, s->inv_freq,
                      e->expert_count };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(e->expert_arena);
    free(e->expert_bufs);
    fc_moe_par_free(e);
    if (e->be.ops) fc_backend_free(&e->be);
    fc_pool_free(e->pool);
    if (e->experts.fds) fc_experts_free(&e->experts);
    fc_model_free(&e->model);
    memset(e, 0, sizeof *e);
}

enum fc_status fc_engine_reserve(struct fc_engine * e, int32_t n, struct fc_error * err) {
    struct fc_seq_state * st = &e->st;
    enum fc_status s = fc_kv_reserve(&st->kv, n, err);
    if (s != FC_STATUS_OK || n <= st->tokens_cap) return s;
    const int32_t cap = st->kv.committed > n ? st->kv.committed : n;
    int32_t * t = realloc(st->tokens, (size_t)cap * sizeof *t);
    if (!t) return fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory growing the token list to %d", cap);
    st->tokens = t;
    st->tokens_cap = cap;
    return FC_STATUS_OK;
}

void fc_engine_reset(struct fc_engine * e) {
    const struct fc_config * c = &e->model.cfg;
    struct fc_seq_state * st = &e->st;
    for (int32_t i = 0; i < e->model.n_linear_layers; i++) {
        memset(st->conv[i], 0, (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c) * sizeof(float));
        memset(st->ssm[i], 0, (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim * sizeof(float));
    }
    st->n_past = 0; /* KV rows beyond n_past are never read */
}

enum fc_status fc_engine_eval(struct fc_engine * e, const int32_t * tokens, int32_t n, float * logits_all, float * logits_last,
                              struct fc_error * err) {
    const struct fc_config * c = &e->model.cfg;
    if (n <= 0) return fc_error_set(err, FC_STATUS_BAD_REQUEST, "no tokens to evaluate");
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) {
            return fc_error_set(err, FC_STATUS_BAD_TOKEN, "token %d at index %d is outside the vocabulary [0, %d)", tokens[i], i,
                                c->vocab_size);
        }
    }
    if ((int64_t)e->st.n_past + n > e->context) {
        return fc_error_set(err, FC_STATUS_CONTEXT_OVERFLOW, "%d + %d tokens exceed the context of %d", e->st.n_past, n, e->context);
    }
    enum fc_status gst = fc_engine_reserve(e, e->st.n_past + n, err);
    if (gst != FC_STATUS_OK) return gst;
    for (int32_t done = 0; done < n;) {
        int32_t chunk = n - done < e->max_batch ? n - done : e->max_batch;
        int last = done + chunk == n;
        enum fc_status st = fc_forward_chunk(e, &e->lb, tokens + done, chunk,
                                             logits_all ? logits_all + (size_t)done * c->vocab_size : NULL, last ? logits_last : NULL, err);
        if (st != FC_STATUS_OK) return st;
        done += chunk;
    }
    return FC_STATUS_OK;
}
