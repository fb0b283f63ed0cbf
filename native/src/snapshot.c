/* Prefix-reuse snapshots: take, find, restore, detach from the live cache, LRU budget, save/load. */
#define _GNU_SOURCE
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* version 02: K/V rows in the cache's own type (kv-cache.h), which the header names */
static const char MAGIC[8] = { 'F', 'C', 'S', 'N', 'A', 'P', '0', '2' };

static size_t recurrent_floats(const struct fc_engine * e) {
    return fc_engine_recurrent_bytes(e) / sizeof(float);
}

static size_t layer_kv_bytes_per_pos(const struct fc_engine * e) {
    return e->st.kv.pos_bytes;
}

static size_t snap_bytes(const struct fc_engine * e, int32_t n_tokens, int with_kv) {
    size_t b = sizeof(struct fc_snapshot) + (size_t)n_tokens * 4 + fc_engine_recurrent_bytes(e) + (size_t)e->model.cfg.vocab_size * 4;
    if (with_kv) b += (size_t)n_tokens * fc_engine_kv_bytes_per_pos(e);
    return b;
}

void fc_snapshots_init(struct fc_snapshots * s, size_t budget_bytes) {
    memset(s, 0, sizeof *s);
    s->budget_bytes = budget_bytes;
}

static void drop(struct fc_snapshots * s, int32_t i) {
    struct fc_snapshot * x = &s->items[i];
    free(x->tokens);
    free(x->recurrent);
    free(x->logits);
    free(x->kv);
    s->used_bytes -= x->bytes;
    s->items[i] = s->items[--s->n];
}

void fc_snapshots_clear(struct fc_snapshots * s) {
    while (s->n > 0) drop(s, s->n - 1);
}

void fc_snapshots_free(struct fc_snapshots * s) {
    fc_snapshots_clear(s);
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* Drop least recently used snapshots (never `keep`, never the one used at `protect`) until `extra` more bytes fit. */
static int make_room_p(struct fc_snapshots * s, size_t extra, int32_t keep, uint64_t protect) {
    while (s->used_bytes + extra > s->budget_bytes) {
        int32_t lru = -1;
        for (int32_t i = 0; i < s->n; i++) {
            if (i != keep && s->items[i].last_used != protect && (lru < 0 || s->items[i].last_used < s->items[lru].last_used)) lru = i;
        }
        if (lru < 0) return 0;
        drop(s, lru);
    }
    return 1;
}

static int make_room(struct fc_snapshots * s, size_t extra, int32_t keep) {
    return make_room_p(s, extra, keep, 0);
}

static void copy_kv_out(const struct fc_engine * e, uint8_t * dst, int32_t n_tokens) {
    const size_t per = layer_kv_bytes_per_pos(e) * (size_t)n_tokens;
    for (int32_t l = 0; l < e->model.n_full_layers; l++) {
        memcpy(dst + (size_t)(2 * l) * per, fc_kv_region(&e->st.kv, l, 0), per);
        memcpy(dst + (size_t)(2 * l + 1) * per, fc_kv_region(&e->st.kv, l, 1), per);
    }
}

static void copy_recurrent_out(const struct fc_engine * e, float * dst) {
    const struct fc_config * c = &e->model.cfg;
    const size_t nconv = (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c);
    const size_t nssm = (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim;
    for (int32_t l = 0; l < e->model.n_linear_layers; l++) {
        memcpy(dst, e->st.conv[l], nconv * sizeof(float));
        memcpy(dst + nconv, e->st.ssm[l], nssm * sizeof(float));
        dst += nconv + nssm;
    }
}

static void copy_recurrent_in(struct fc_engine * e, const float * src) {
    const struct fc_config * c = &e->model.cfg;
    const size_t nconv = (size_t)(c->la_conv_kernel - 1) * fc_la_conv_dim(c);
    const size_t nssm = (size_t)c->la_n_v_heads * c->la_k_dim * c->la_v_dim;
    for (int32_t l = 0; l < e->model.n_linear_layers; l++) {
        memcpy(e->st.conv[l], src, nconv * sizeof(float));
        memcpy(e->st.ssm[l], src + nconv, nssm * sizeof(float));
        src += nconv + nssm;
    }
}

static int32_t find_exact(struct fc_snapshots * s, const int32_t * tokens, int32_t n) {
    for (int32_t i = 0; i < s->n; i++) {
        if (s->items[i].n_tokens == n && memcmp(s->items[i].tokens, tokens, (size_t)n * 4) == 0) return i;
    }
    return -1;
}

void fc_snapshots_take(struct fc_snapshots * s, const struct fc_engine * e, const float * logits) {
    const int32_t n = e->st.n_past;
    if (n <= 0) return;
    int32_t i = find_exact(s, e->st.tokens, n);
    if (i >= 0) {
        s->items[i].last_used = ++s->clock;
        return;
    }
    size_t bytes = snap_bytes(e, n, 0);
    if (bytes > s->budget_bytes || !make_room(s, bytes, -1)) return;
    struct fc_snapshot x = { 0 };
    x.n_tokens = n;
    x.tokens = malloc((size_t)n * 4);
    x.recurrent = malloc(recurrent_floats(e) * sizeof(float) + 4);
    x.logits = malloc((size_t)e->model.cfg.vocab_size * sizeof(float));
    if (!x.tokens || !x.recurrent || !x.logits) {
        free(x.tokens); free(x.recurrent); free(x.logits);
        return;
    }
    memcpy(x.tokens, e->st.tokens, (size_t)n * 4);
    copy_recurrent_out(e, x.recurrent);
    memcpy(x.logits, logits, (size_t)e->model.cfg.vocab_size * sizeof(float));
    x.bytes = bytes;
    x.last_used = ++s->clock;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->items = realloc(s->items, (size_t)s->cap * sizeof *s->items);
        FC_ASSERT(s->items != NULL);
    }
    s->items[s->n++] = x;
    s->used_bytes += bytes;
}

int32_t fc_snapshots_find(struct fc_snapshots * s, const int32_t * tokens, int32_t n, int32_t max_len) {
    int32_t best = -1;
    for (int32_t i = 0; i < s->n; i++) {
        const struct fc_snapshot * x = &s->items[i];
        if (x->n_tokens > n || x->n_tokens > max_len) continue;
        if (best >= 0 && x->n_tokens <= s->items[best].n_tokens) continue;
        if (memcmp(x->tokens, tokens, (size_t)x->n_tokens * 4) == 0) best = i;
    }
    return best;
}

static void detach_p(struct fc_snapshots * s, const struct fc_engine * e, int32_t keep, uint64_t protect) {
    for (int32_t i = 0; i < s->n;) {
        struct fc_snapshot * x = &s->items[i];
        if (x->kv || x->n_tokens <= keep) { i++; continue; }
        size_t extra = (size_t)x->n_tokens * fc_engine_kv_bytes_per_pos(e);
        uint8_t * kv = NULL;
        const int32_t * key = x->tokens; /* unique: finds this snapshot again if make_room moves items */
        if (x->bytes + extra <= s->budget_bytes && make_room_p(s, extra, i, protect)) {
            for (i = 0; s->items[i].tokens != key; i++) {}
            x = &s->items[i];
            kv = malloc(extra + 4);
        }
        if (!kv) {
            drop(s, i);
        } else {
            copy_kv_out(e, kv, x->n_tokens);
            x->kv = kv;
            x->bytes += extra;
            s->used_bytes += extra;
        }
        i = 0; /* items may have moved: rescan (the handled ones are skipped) */
    }
}

void fc_snapshots_detach(struct fc_snapshots * s, const struct fc_engine * e, int32_t keep) {
    detach_p(s, e, keep, 0);
}

void fc_snapshots_restore(struct fc_snapshots * s, int32_t i, struct fc_engine * e, float * logits_out) {
    /* rows [0, common) of the live cache already hold this prefix */
    int32_t common = 0;
    const int32_t lim = e->st.n_valid < s->items[i].n_tokens ? e->st.n_valid : s->items[i].n_tokens;
    while (common < lim && e->st.tokens[common] == s->items[i].tokens[common]) common++;
    if (common < s->items[i].n_tokens) {
        /* the cache rows from `common` on get overwritten: let the other snapshots copy what they need */
        FC_ASSERT(s->items[i].kv != NULL); /* a kv-less snapshot always matches the live cache */
        const uint64_t id = s->items[i].last_used = ++s->clock; /* unique: protects it and finds it again */
        detach_p(s, e, common, id);
        for (i = 0; i < s->n && s->items[i].last_used != id; i++) {}
        FC_ASSERT(i < s->n);
        const struct fc_snapshot * x = &s->items[i];
        const size_t per = layer_kv_bytes_per_pos(e) * (size_t)x->n_tokens;
        struct fc_error err = { 0 };
        if (fc_engine_reserve(e, x->n_tokens, &err) != FC_STATUS_OK) fc_abort(__FILE__, __LINE__, err.message);
        for (int32_t l = 0; l < e->model.n_full_layers; l++) {
            memcpy(fc_kv_region(&e->st.kv, l, 0), x->kv + (size_t)(2 * l) * per, per);
            memcpy(fc_kv_region(&e->st.kv, l, 1), x->kv + (size_t)(2 * l + 1) * per, per);
        }
        memcpy(e->st.tokens, x->tokens, (size_t)x->n_tokens * 4);
        e->st.n_valid = x->n_tokens;
    }
    struct fc_snapshot * x = &s->items[i];
    copy_recurrent_in(e, x->recurrent);
    e->st.n_past = x->n_tokens;
    memcpy(logits_out, x->logits, (size_t)e->model.cfg.vocab_size * sizeof(float));
    x->last_used = ++s->clock;
}

/* ===== save / load ===== */

struct header {
    char magic[8];
    int32_t dims[13];
    int32_t count;
};

static void fill_header(const struct fc_engine * e, struct header * h) {
    const struct fc_config * c = &e->model.cfg;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, MAGIC, 8);
    int32_t d[13] = { c->vocab_size, c->hidden_size, c->n_layers, c->n_kv_heads, c->head_dim, c->la_n_k_heads,
                      c->la_n_v_heads, c->la_k_dim, c->la_v_dim, c->la_conv_kernel, c->n_experts, (int32_t)sizeof(float),
                      (int32_t)e->st.kv.type };
    memcpy(h->dims, d, sizeof d);
}

enum fc_status fc_snapshots_save(struct fc_snapshots * s, const struct fc_engine * e, const char * path, struct fc_error * err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE * f = fopen(tmp, "wb");
    if (!f) return fc_error_set(err, FC_STATUS_IO_ERROR, "%s: cannot write (%s)", tmp, strerror(errno));
    struct header h;
    fill_header(e, &h);
    h.count = s->n;
    int ok = fwrite(&h, sizeof h, 1, f) == 1;
    const size_t rf = recurrent_floats(e), kvp = fc_engine_kv_bytes_per_pos(e), V = (size_t)e->model.cfg.vocab_size;
    uint8_t * kvbuf = NULL;
    for (int32_t i = 0; ok && i < s->n; i++) {
        const struct fc_snapshot * x = &s->items[i];
        const uint8_t * kv = x->kv;
        if (!kv) {
            kvbuf = realloc(kvbuf, (size_t)x->n_tokens * kvp + 4);
            if (!kvbuf) { ok = 0; break; }
            copy_kv_out(e, kvbuf, x->n_tokens);
            kv = kvbuf;
        }
        ok = fwrite(&x->n_tokens, 4, 1, f) == 1 && fwrite(x->tokens, 4, (size_t)x->n_tokens, f) == (size_t)x->n_tokens &&
             fwrite(x->recurrent, sizeof(float), rf, f) == rf && fwrite(x->logits, sizeof(float), V, f) == V &&
             fwrite(kv, 1, (size_t)x->n_tokens * kvp, f) == (size_t)x->n_tokens * kvp;
    }
    free(kvbuf);
    if (fflush(f) != 0) ok = 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return fc_error_set(err, FC_STATUS_IO_ERROR, "%s: write failed (%s)", path, strerror(errno));
    }
    return FC_STATUS_OK;
}

enum fc_status fc_snapshots_load(struct fc_snapshots * s, const struct fc_engine * e, const char * path, struct fc_error * err) {
    FILE * f = fopen(path, "rb");
    if (!f) return fc_error_set(err, FC_STATUS_IO_ERROR, "%s: cannot open (%s)", path, strerror(errno));
    struct header h, want;
    fill_header(e, &want);
    if (fread(&h, sizeof h.magic, 1, f) != 1 || memcmp(h.magic, MAGIC, 6) != 0) {
        fclose(f);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: not a snapshot file", path);
    }
    if (memcmp(h.magic, MAGIC, 8) != 0) {
        fclose(f);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: snapshot format %.2s; this engine reads format %.2s only", path,
                            h.magic + 6, MAGIC + 6);
    }
    if (fread((char *)&h + sizeof h.magic, sizeof h - sizeof h.magic, 1, f) != 1) {
        fclose(f);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: truncated snapshot header", path);
    }
    if (memcmp(h.dims, want.dims, 12 * sizeof h.dims[0]) == 0 && h.dims[12] != want.dims[12]) {
        fclose(f);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: snapshots of a %s KV cache; this engine's is %s", path,
                            fc_kv_type_name((enum fc_kv_type)h.dims[12]), fc_kv_type_name(e->st.kv.type));
    }
    if (memcmp(h.dims, want.dims, sizeof h.dims) != 0 || h.count < 0) {
        fclose(f);
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: snapshots of a different model", path);
    }
    const size_t rf = recurrent_floats(e), kvp = fc_engine_kv_bytes_per_pos(e), V = (size_t)e->model.cfg.vocab_size;
    enum fc_status st = FC_STATUS_OK;
    for (int32_t i = 0; i < h.count; i++) {
        struct fc_snapshot x = { 0 };
        if (fread(&x.n_tokens, 4, 1, f) != 1 || x.n_tokens <= 0 || x.n_tokens > e->context) {
            st = fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: snapshot %d is damaged or longer than the context", path, i);
            break;
        }
        x.tokens = malloc((size_t)x.n_tokens * 4);
        x.recurrent = malloc(rf * sizeof(float) + 4);
        x.logits = malloc(V * sizeof(float));
        x.kv = malloc((size_t)x.n_tokens * kvp + 4);
        int ok = x.tokens && x.recurrent && x.logits && x.kv &&
                 fread(x.tokens, 4, (size_t)x.n_tokens, f) == (size_t)x.n_tokens && fread(x.recurrent, sizeof(float), rf, f) == rf &&
                 fread(x.logits, sizeof(float), V, f) == V &&
                 fread(x.kv, 1, (size_t)x.n_tokens * kvp, f) == (size_t)x.n_tokens * kvp;
        for (int32_t t = 0; ok && t < x.n_tokens; t++) ok = x.tokens[t] >= 0 && x.tokens[t] < (int32_t)V;
        x.bytes = snap_bytes(e, x.n_tokens, 1);
        if (!ok) {
            free(x.tokens); free(x.recurrent); free(x.logits); free(x.kv);
            st = fc_error_set(err, FC_STATUS_BAD_REQUEST, "%s: snapshot %d is truncated or damaged", path, i);
            break;
        }
        int32_t dup = find_exact(s, x.tokens, x.n_tokens);
        if (dup >= 0 || x.bytes > s->budget_bytes || !make_room(s, x.bytes, -1)) {
            free(x.tokens); free(x.recurrent); free(x.logits); free(x.kv);
            continue;
        }
        x.last_used = ++s->clock;
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->items = realloc(s->items, (size_t)s->cap * sizeof *s->items);
            FC_ASSERT(s->items != NULL);
        }
        s->items[s->n++] = x;
        s->used_bytes += x.bytes;
    }
    fclose(f);
    return st;
}
