/* Loading the model: manifest JSON, mmap of model_weights.bin, validation of every tensor we use. */
#define _GNU_SOURCE
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

/* ===== small files ===== */

char * fc_read_file(const char * path, size_t * len_out, struct fc_error * err) {
    FILE * f = fopen(path, "rb");
    if (!f) {
        fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char * buf = malloc(cap);
    for (;;) {
        if (!buf) { fclose(f); fc_error_set(err, FC_STATUS_NO_MEMORY, "%s: out of memory", path); return NULL; }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 >= cap) {
            cap *= 2;
            char * nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len_out) *len_out = n;
    return buf;
}

/* ===== tensor index ===== */

struct tensor_entry {
    const char * name;
    enum { DT_U32, DT_BF16, DT_F16, DT_F32, DT_OTHER } dtype;
    int64_t shape[4];
    int32_t n_dims;
    uint64_t offset, size;
    int32_t bits, group_size; /* 0 when absent */
};

struct loader {
    const char * manifest_path;
    const char * bin_path;
    struct tensor_entry * entries;
    int32_t n_entries;
    int32_t * table; /* open addressing, -1 = empty */
    uint32_t table_size;
    const uint8_t * base;
    size_t file_bytes;
    int32_t default_group_size, default_bits;
    size_t used_bytes;
    struct fc_error * err;
};

static uint32_t hash_str(const char * s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static const struct tensor_entry * find(struct loader * L, const char * name) {
    uint32_t i = hash_str(name) & (L->table_size - 1);
    for (;;) {
        int32_t e = L->table[i];
        if (e < 0) return NULL;
        if (strcmp(L->entries[e].name, name) == 0) return &L->entries[e];
        i = (i + 1) & (L->table_size - 1);
    }
}

static size_t dtype_size(int dt) {
    return dt == DT_F32 || dt == DT_U32 ? 4 : 2;
}

static int64_t numel(const struct tensor_entry * t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

static enum fc_status index_tensors(struct loader * L, const struct fc_json * tensors) {
    if (!tensors || tensors->type != FC_JSON_ARRAY) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: missing \"tensors\" array", L->manifest_path);
    }
    L->n_entries = tensors->n_items;
    L->entries = fc_xcalloc((size_t)L->n_entries + 1, sizeof *L->entries);
    L->table_size = 16;
    while (L->table_size < (uint32_t)L->n_entries * 2 + 2) L->table_size *= 2;
    L->table = fc_xmalloc(L->table_size * sizeof *L->table);
    for (uint32_t i = 0; i < L->table_size; i++) L->table[i] = -1;
    for (int32_t i = 0; i < L->n_entries; i++) {
        const struct fc_json * t = &tensors->items[i];
        struct tensor_entry * e = &L->entries[i];
        const struct fc_json * name = fc_json_get(t, "name");
        const struct fc_json * dtype = fc_json_get(t, "dtype");
        const struct fc_json * shape = fc_json_get(t, "shape");
        int64_t off, size, v;
        if (!name || name->type != FC_JSON_STRING || !dtype || dtype->type != FC_JSON_STRING || !shape ||
            shape->type != FC_JSON_ARRAY || shape->n_items > 4 || !fc_json_as_int64(fc_json_get(t, "offset"), 0, INT64_MAX, &off) ||
            !fc_json_as_int64(fc_json_get(t, "size"), 0, INT64_MAX, &size)) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor entry %d lacks name/dtype/shape/offset/size",
                                L->manifest_path, i);
        }
        e->name = name->string;
        e->dtype = strcmp(dtype->string, "U32") == 0 ? DT_U32 : strcmp(dtype->string, "BF16") == 0 ? DT_BF16
                 : strcmp(dtype->string, "F16") == 0 ? DT_F16 : strcmp(dtype->string, "F32") == 0 ? DT_F32 : DT_OTHER;
        e->n_dims = shape->n_items;
        for (int32_t d = 0; d < e->n_dims; d++) {
            if (!fc_json_as_int64(&shape->items[d], 0, INT32_MAX, &e->shape[d])) {
                return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor %s has a bad shape", L->manifest_path, e->name);
            }
        }
        e->offset = (uint64_t)off;
        e->size = (uint64_t)size;
        if (fc_json_as_int64(fc_json_get(t, "bits"), 1, 32, &v)) e->bits = (int32_t)v;
        if (fc_json_as_int64(fc_json_get(t, "group_size"), 1, 1 << 20, &v)) e->group_size = (int32_t)v;
        if (e->dtype == DT_OTHER) continue; /* never used by us; not validated */
        if (e->offset + e->size > L->file_bytes || e->offset + e->size < e->offset) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED,
                                "%s: tensor %s (offset %llu, %llu bytes) lies beyond the end of the file (%zu bytes): truncated?",
                                L->bin_path, e->name, (unsigned long long)e->offset, (unsigned long long)e->size, L->file_bytes);
        }
        if ((uint64_t)numel(e) * dtype_size(e->dtype) != e->size) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor %s: size %llu does not match its shape and dtype",
                                L->manifest_path, e->name, (unsigned long long)e->size);
        }
        uint32_t h = hash_str(e->name) & (L->table_size - 1);
        while (L->table[h] >= 0) {
            if (strcmp(L->entries[L->table[h]].name, e->name) == 0) {
                return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor %s listed twice", L->manifest_path, e->name);
            }
            h = (h + 1) & (L->table_size - 1);
        }
        L->table[h] = i;
    }
    return FC_STATUS_OK;
}

/* ===== matrices and vectors ===== */

enum fc_status fc_matrix_init(struct fc_matrix * m, const char * what, enum fc_dtype type, int32_t rows, int32_t cols,
                              int32_t group_size, const uint8_t * data, const uint8_t * scales, const uint8_t * biases,
                              struct fc_error * err) {
    memset(m, 0, sizeof *m);
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->data = data;
    if (fc_dtype_is_quantized(type)) {
        int bits = fc_dtype_bits(type);
        if (group_size <= 0 || cols % group_size != 0 || ((size_t)cols * bits) % 32 != 0 || (group_size * bits) % 8 != 0) {
            return fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: %d columns do not fit %d-bit groups of %d", what, cols, bits, group_size);
        }
        m->group_size = group_size;
        m->row_bytes = (size_t)cols * bits / 8;
        m->scales = (const uint16_t *)(const void *)scales;
        m->biases = (const uint16_t *)(const void *)biases;
    } else {
        m->row_bytes = (size_t)cols * (type == FC_DTYPE_F32 ? 4 : 2);
    }
    return FC_STATUS_OK;
}

static int bits_type(int32_t bits, enum fc_dtype * out) {
    if (bits == 2) *out = FC_DTYPE_Q2;
    else if (bits == 4) *out = FC_DTYPE_Q4;
    else if (bits == 8) *out = FC_DTYPE_Q8;
    else return 0;
    return 1;
}

/* Linear `prefix` ("model.layers.0.mlp.gate"): quantized triple or a plain float matrix. rows/cols -1 = any. */
static enum fc_status load_linear(struct loader * L, struct fc_matrix * m, const char * prefix, int32_t rows, int32_t cols) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const struct tensor_entry * w = find(L, name);
    if (!w) return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor %s is missing", L->manifest_path, name);
    if (w->n_dims != 2) return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s must be 2-D", L->manifest_path, name);
    int32_t r = (int32_t)w->shape[0];
    enum fc_status st;
    if (w->dtype == DT_U32) {
        char sname[256], bname[256];
        snprintf(sname, sizeof sname, "%s.scales", prefix);
        snprintf(bname, sizeof bname, "%s.biases", prefix);
        const struct tensor_entry * s = find(L, sname);
        const struct tensor_entry * b = find(L, bname);
        if (!s || !b) return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s has no %s", L->manifest_path, name, !s ? "scales" : "biases");
        if (s->dtype != DT_BF16 || b->dtype != DT_BF16 || s->n_dims != 2 || b->n_dims != 2 || s->shape[0] != r ||
            b->shape[0] != r || s->shape[1] != b->shape[1] || s->shape[1] == 0) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: scales/biases of %s must be BF16 [%d, groups]", L->manifest_path, prefix, r);
        }
        int32_t gs = w->group_size ? w->group_size : L->default_group_size;
        int32_t bits = w->bits;
        if (!bits) bits = (int32_t)(32 * w->shape[1] / (s->shape[1] * gs)); /* infer from shapes */
        enum fc_dtype type;
        if (!bits_type(bits, &type)) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s has %d bits (supported: 2, 4, 8)", L->manifest_path, name, bits);
        }
        int32_t c = (int32_t)(w->shape[1] * 32 / bits);
        if ((int64_t)c / gs != s->shape[1]) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s: %d groups of %d do not cover %d columns",
                                L->manifest_path, prefix, (int)s->shape[1], gs, c);
        }
        st = fc_matrix_init(m, name, type, r, c, gs, L->base + w->offset, L->base + s->offset, L->base + b->offset, L->err);
        L->used_bytes += w->size + s->size + b->size;
    } else {
        enum fc_dtype type = w->dtype == DT_BF16 ? FC_DTYPE_BF16 : w->dtype == DT_F16 ? FC_DTYPE_F16 : FC_DTYPE_F32;
        st = fc_matrix_init(m, name, type, r, (int32_t)w->shape[1], 0, L->base + w->offset, NULL, NULL, L->err);
        L->used_bytes += w->size;
    }
    if (st != FC_STATUS_OK) return st;
    if ((rows >= 0 && m->rows != rows) || (cols >= 0 && m->cols != cols)) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s is [%d, %d], expected [%d, %d] from the config",
                            L->manifest_path, prefix, m->rows, m->cols, rows, cols);
    }
    return FC_STATUS_OK;
}

/* A float tensor of exactly n elements (any float dtype), converted to a new f32 array. */
static enum fc_status load_vector(struct loader * L, float ** out, const char * name, int64_t n) {
    const struct tensor_entry * t = find(L, name);
    if (!t) return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: tensor %s is missing", L->manifest_path, name);
    if (t->dtype == DT_U32 || t->dtype == DT_OTHER || numel(t) != n) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s must be a float tensor of %lld elements",
                            L->manifest_path, name, (long long)n);
    }
    float * v = fc_xmalloc((size_t)n * sizeof *v);
    const uint8_t * p = L->base + t->offset;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == DT_F32) memcpy(&v[i], p + i * 4, 4);
        else {
            uint16_t h;
            memcpy(&h, p + i * 2, 2);
            v[i] = t->dtype == DT_BF16 ? fc_bf16_to_f32(h) : fc_f16_to_f32(h);
        }
    }
    L->used_bytes += t->size;
    *out = v;
    return FC_STATUS_OK;
}

/* ===== config ===== */

static enum fc_status cfg_int(struct loader * L, const struct fc_json * cfg, const char * key, int32_t * out, int32_t min) {
    int64_t v;
    if (!fc_json_as_int64(fc_json_get(cfg, key), min, INT32_MAX, &v)) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: config.%s is missing or not an integer >= %d", L->manifest_path, key, min);
    }
    *out = (int32_t)v;
    return FC_STATUS_OK;
}

static double cfg_num(const struct fc_json * cfg, const char * key, double dflt) {
    const struct fc_json * v = fc_json_get(cfg, key);
    return v && v->type == FC_JSON_NUMBER ? v->number : dflt;
}

static enum fc_status parse_config(struct loader * L, const struct fc_json * cfg, struct fc_config * c) {
    if (!cfg || cfg->type != FC_JSON_OBJECT) return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: missing \"config\"", L->manifest_path);
    const struct fc_json * mt = fc_json_get(cfg, "model_type");
    if (mt && mt->type == FC_JSON_STRING && strstr(mt->string, "qwen3_5_moe") == NULL && strstr(mt->string, "qwen3_next") == NULL) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: model_type %s is not a Qwen3.5-MoE / Qwen3-Next model",
                            L->manifest_path, mt->string);
    }
    enum fc_status st;
#define INT(key, field, min) if ((st = cfg_int(L, cfg, key, &c->field, min)) != FC_STATUS_OK) return st
    INT("vocab_size", vocab_size, 1);
    INT("hidden_size", hidden_size, 1);
    INT("num_hidden_layers", n_layers, 1);
    INT("num_attention_heads", n_heads, 1);
    INT("num_key_value_heads", n_kv_heads, 1);
    INT("head_dim", head_dim, 2);
    INT("linear_num_key_heads", la_n_k_heads, 1);
    INT("linear_num_value_heads", la_n_v_heads, 1);
    INT("linear_key_head_dim", la_k_dim, 1);
    INT("linear_value_head_dim", la_v_dim, 1);
    INT("linear_conv_kernel_dim", la_conv_kernel, 1);
    INT("num_experts", n_experts, 1);
    INT("num_experts_per_tok", n_experts_used, 1);
    INT("moe_intermediate_size", moe_inter, 1);
#undef INT
    c->shared_inter = c->moe_inter;
    cfg_int(L, cfg, "shared_expert_intermediate_size", &c->shared_inter, 0);
    if (c->n_heads % c->n_kv_heads != 0 || c->la_n_v_heads % c->la_n_k_heads != 0 || c->n_experts_used > c->n_experts ||
        c->n_experts > 4096) {
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: inconsistent head or expert counts in config (at most 4096 experts)", L->manifest_path);
    }
    if (c->la_conv_kernel > 8) { /* linear-attn.c keeps a block's window in registers (Qwen3.5: 4) */
        return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: linear_conv_kernel_dim %d is not supported (at most 8)", L->manifest_path,
                            c->la_conv_kernel);
    }
    const struct fc_json * ntp = fc_json_get(cfg, "norm_topk_prob");
    c->norm_topk_prob = ntp && ntp->type == FC_JSON_BOOL ? ntp->boolean : 1;
    c->rms_eps = (float)cfg_num(cfg, "rms_norm_eps", 1e-6);
    c->rope_theta = (float)cfg_num(cfg, "rope_theta", 10000.0);
    double prf = cfg_num(cfg, "partial_rotary_factor", 1.0);
    c->rotary_dim = (int32_t)(c->head_dim * prf);
    c->rotary_dim -= c->rotary_dim % 2;
    c->max_position = (int32_t)cfg_num(cfg, "max_position_embeddings", 262144);
    const struct fc_json * tie = fc_json_get(cfg, "tie_word_embeddings");
    c->tie_embeddings = tie && tie->type == FC_JSON_BOOL ? tie->boolean : 0;
    const struct fc_json * eos = fc_json_get(cfg, "eos_token_id");
    c->n_eos = 0;
    if (eos && eos->type == FC_JSON_ARRAY) {
        for (int32_t i = 0; i < eos->n_items && c->n_eos < FC_MAX_EOS; i++) {
            int64_t v;
            if (fc_json_as_int64(&eos->items[i], 0, c->vocab_size - 1, &v)) c->eos[c->n_eos++] = (int32_t)v;
        }
    } else if (eos) {
        int64_t v;
        if (fc_json_as_int64(eos, 0, c->vocab_size - 1, &v)) c->eos[c->n_eos++] = (int32_t)v;
    }
    c->is_full_attn = fc_xcalloc((size_t)c->n_layers, 1);
    const struct fc_json * lt = fc_json_get(cfg, "layer_types");
    if (lt && lt->type == FC_JSON_ARRAY) {
        if (lt->n_items != c->n_layers) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: layer_types has %d entries for %d layers", L->manifest_path,
                                lt->n_items, c->n_layers);
        }
        for (int32_t i = 0; i < c->n_layers; i++) {
            const struct fc_json * t = &lt->items[i];
            if (t->type != FC_JSON_STRING || (strcmp(t->string, "full_attention") && strcmp(t->string, "linear_attention"))) {
                return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: layer_types[%d] is not full_attention or linear_attention",
                                    L->manifest_path, i);
            }
            c->is_full_attn[i] = strcmp(t->string, "full_attention") == 0;
        }
    } else {
        int32_t interval = 4;
        cfg_int(L, cfg, "full_attention_interval", &interval, 1);
        for (int32_t i = 0; i < c->n_layers; i++) c->is_full_attn[i] = (i + 1) % interval == 0;
    }
    return FC_STATUS_OK;
}

/* ===== layers ===== */

static enum fc_status load_layer(struct loader * L, struct fc_model * m, int32_t i) {
    const struct fc_config * c = &m->cfg;
    struct fc_layer * ly = &m->layers[i];
    char p[160], n[224];
    enum fc_status st;
    const int32_t H = c->hidden_size;
#define CHECK(x) if ((st = (x)) != FC_STATUS_OK) return st
#define NAME(fmt) (snprintf(n, sizeof n, "%s." fmt, p), n)
    snprintf(p, sizeof p, "model.layers.%d", i);
    ly->is_full = c->is_full_attn[i];
    CHECK(load_vector(L, &ly->input_norm, NAME("input_layernorm.weight"), H));
    CHECK(load_vector(L, &ly->post_norm, NAME("post_attention_layernorm.weight"), H));
    if (ly->is_full) {
        const int32_t hd = c->head_dim;
        CHECK(load_linear(L, &ly->q_proj, NAME("self_attn.q_proj"), c->n_heads * hd * 2, H));
        CHECK(load_linear(L, &ly->k_proj, NAME("self_attn.k_proj"), c->n_kv_heads * hd, H));
        CHECK(load_linear(L, &ly->v_proj, NAME("self_attn.v_proj"), c->n_kv_heads * hd, H));
        CHECK(load_linear(L, &ly->o_proj, NAME("self_attn.o_proj"), H, c->n_heads * hd));
        CHECK(load_vector(L, &ly->q_norm, NAME("self_attn.q_norm.weight"), hd));
        CHECK(load_vector(L, &ly->k_norm, NAME("self_attn.k_norm.weight"), hd));
    } else {
        const int32_t nv = c->la_n_v_heads, kdim = c->la_n_k_heads * c->la_k_dim, vdim = nv * c->la_v_dim;
        const int32_t conv = fc_la_conv_dim(c);
        snprintf(n, sizeof n, "%s.linear_attn.in_proj_qkvz.weight", p);
        if (find(L, n)) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED,
                                "%s: %s: fused in_proj_qkvz (Qwen3-Next layout) is not supported; expected in_proj_qkv/z/b/a",
                                L->manifest_path, n);
        }
        CHECK(load_linear(L, &ly->in_qkv, NAME("linear_attn.in_proj_qkv"), 2 * kdim + vdim, H));
        CHECK(load_linear(L, &ly->in_z, NAME("linear_attn.in_proj_z"), vdim, H));
        CHECK(load_linear(L, &ly->in_b, NAME("linear_attn.in_proj_b"), nv, H));
        CHECK(load_linear(L, &ly->in_a, NAME("linear_attn.in_proj_a"), nv, H));
        CHECK(load_linear(L, &ly->out_proj, NAME("linear_attn.out_proj"), H, vdim));
        CHECK(load_vector(L, &ly->conv_w, NAME("linear_attn.conv1d.weight"), (int64_t)conv * c->la_conv_kernel));
        const struct tensor_entry * cw = find(L, n);
        if (cw->n_dims == 3 && (cw->shape[0] != conv || cw->shape[1] != c->la_conv_kernel)) {
            return fc_error_set(L->err, FC_STATUS_LOAD_FAILED, "%s: %s must be [%d, %d, 1] (MLX layout)", L->manifest_path, n, conv,
                                c->la_conv_kernel);
        }
        CHECK(load_vector(L, &ly->dt_bias, NAME("linear_attn.dt_bias"), nv));
        CHECK(load_vector(L, &ly->a_neg, NAME("linear_attn.A_log"), nv));
        for (int32_t h = 0; h < nv; h++) ly->a_neg[h] = -expf(ly->a_neg[h]);
        CHECK(load_vector(L, &ly->la_norm, NAME("linear_attn.norm.weight"), c->la_v_dim));
    }
    CHECK(load_linear(L, &ly->router, NAME("mlp.gate"), c->n_experts, H));
    snprintf(n, sizeof n, "%s.mlp.shared_expert.gate_proj.weight", p);
    ly->has_shared = find(L, n) != NULL && c->shared_inter > 0;
    if (ly->has_shared) {
        CHECK(load_linear(L, &ly->sh_gate, NAME("mlp.shared_expert.gate_proj"), c->shared_inter, H));
        CHECK(load_linear(L, &ly->sh_up, NAME("mlp.shared_expert.up_proj"), c->shared_inter, H));
        CHECK(load_linear(L, &ly->sh_down, NAME("mlp.shared_expert.down_proj"), H, c->shared_inter));
        CHECK(load_linear(L, &ly->sh_expert_gate, NAME("mlp.shared_expert_gate"), 1, H));
    }
#undef NAME
#undef CHECK
    return FC_STATUS_OK;
}

enum fc_status fc_model_load(struct fc_model * m, const char * dir, struct fc_error * err) {
    memset(m, 0, sizeof *m);
    char manifest_path[4096], bin_path[4096];
    snprintf(manifest_path, sizeof manifest_path, "%s/model_weights.json", dir);
    snprintf(bin_path, sizeof bin_path, "%s/model_weights.bin", dir);
    struct loader L = { .manifest_path = manifest_path, .bin_path = bin_path, .err = err };
    enum fc_status st = FC_STATUS_OK;
    struct fc_json * root = NULL;
    size_t len;
    char * text = fc_read_file(manifest_path, &len, err);
    if (!text) return FC_STATUS_LOAD_FAILED;
    char jerr[128] = "";
    root = fc_json_parse(text, len, jerr, sizeof jerr);
    free(text);
    if (!root) return fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: not valid JSON (%s)", manifest_path, jerr);
    const struct fc_json * fmt = fc_json_get(root, "format");
    int64_t version;
    if (!fmt || fmt->type != FC_JSON_STRING || strcmp(fmt->string, "flashchat-weights") != 0 ||
        !fc_json_as_int64(fc_json_get(root, "version"), 0, 1000, &version)) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: not a flashchat-weights manifest", manifest_path);
        goto done;
    }
    if (version != 1) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: manifest version %lld (this engine reads version 1)", manifest_path, (long long)version);
        goto done;
    }
    const struct fc_json * src = fc_json_get(root, "source");
    int64_t v;
    L.default_group_size = fc_json_as_int64(fc_json_get(src, "group_size"), 1, 1 << 20, &v) ? (int32_t)v : 64;
    L.default_bits = fc_json_as_int64(fc_json_get(src, "bits"), 1, 32, &v) ? (int32_t)v : 4;
    const struct fc_json * sf = fc_json_get(src, "format");
    snprintf(m->source_format, sizeof m->source_format, "%s", sf && sf->type == FC_JSON_STRING ? sf->string : "unknown");
    if ((st = parse_config(&L, fc_json_get(root, "config"), &m->cfg)) != FC_STATUS_OK) goto done;

    int fd = open(bin_path, O_RDONLY);
    if (fd < 0) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: cannot open (%s)", bin_path, strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0) {
        close(fd);
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: empty or unreadable", bin_path);
        goto done;
    }
    /* read the dense weights into anonymous (huge-page) memory: see fc_alloc_huge */
    m->map_bytes = (size_t)sb.st_size;
    m->map = fc_alloc_huge(m->map_bytes);
    if (!m->map) {
        close(fd);
        st = fc_error_set(err, FC_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes for the dense weights", bin_path, m->map_bytes);
        goto done;
    }
    for (size_t done_bytes = 0; done_bytes < m->map_bytes;) {
        ssize_t got = pread(fd, (uint8_t *)m->map + done_bytes, m->map_bytes - done_bytes, (off_t)done_bytes);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            close(fd);
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: read failed at byte %zu (%s)", bin_path, done_bytes,
                              got < 0 ? strerror(errno) : "unexpected end of file");
            goto done;
        }
        done_bytes += (size_t)got;
    }
    close(fd);
    L.base = m->map;
    L.file_bytes = m->map_bytes;
    if ((st = index_tensors(&L, fc_json_get(root, "tensors"))) != FC_STATUS_OK) goto done;

    const struct fc_config * c = &m->cfg;
    if ((st = load_linear(&L, &m->embed, "model.embed_tokens", c->vocab_size, c->hidden_size)) != FC_STATUS_OK) goto done;
    if (find(&L, "lm_head.weight") || !c->tie_embeddings) {
        if ((st = load_linear(&L, &m->lm_head, "lm_head", c->vocab_size, c->hidden_size)) != FC_STATUS_OK) goto done;
    } else {
        m->lm_head = m->embed;
    }
    if ((st = load_vector(&L, &m->final_norm, "model.norm.weight", c->hidden_size)) != FC_STATUS_OK) goto done;
    m->layers = fc_xcalloc((size_t)c->n_layers, sizeof *m->layers);
    for (int32_t i = 0; i < c->n_layers; i++) {
        m->layers[i].index_in_kind = c->is_full_attn[i] ? m->n_full_layers++ : m->n_linear_layers++;
        if ((st = load_layer(&L, m, i)) != FC_STATUS_OK) goto done;
    }
    m->dense_bytes = L.used_bytes;
done:
    free(L.entries);
    free(L.table);
    fc_json_free(root);
    if (st != FC_STATUS_OK) fc_model_free(m);
    return st;
}

void fc_model_free(struct fc_model * m) {
    if (m->layers) {
        for (int32_t i = 0; i < m->cfg.n_layers; i++) {
            struct fc_layer * ly = &m->layers[i];
            free(ly->input_norm);
            free(ly->post_norm);
            free(ly->conv_w);
            free(ly->dt_bias);
            free(ly->a_neg);
            free(ly->la_norm);
            free(ly->q_norm);
            free(ly->k_norm);
        }
        free(m->layers);
    }
    free(m->final_norm);
    free(m->cfg.is_full_attn);
    free(m->map);
    memset(m, 0, sizeof *m);
}
