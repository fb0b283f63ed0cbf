/* A small recursive-descent JSON reader with a depth limit; numbers are doubles. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct parser {
    const char * p;
    const char * end;
    char * err;
    size_t err_size;
    int failed;
};

static void fail(struct parser * ps, const char * what) {
    if (!ps->failed && ps->err && ps->err_size) {
        snprintf(ps->err, ps->err_size, "%s", what);
    }
    ps->failed = 1;
}

static void skip_ws(struct parser * ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static void free_value(struct fc_json * v) {
    if (v->type == FC_JSON_STRING) free(v->string);
    if (v->type == FC_JSON_ARRAY || v->type == FC_JSON_OBJECT) {
        for (int32_t i = 0; i < v->n_items; i++) {
            free_value(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
}

static int hex4(struct parser * ps, uint32_t * out) {
    if (ps->end - ps->p < 4) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    ps->p += 4;
    *out = v;
    return 1;
}

/* Parse a string literal at ps->p (on the opening quote) into a malloc'd buffer. */
static char * parse_string(struct parser * ps, size_t * len_out) {
    ps->p++; /* opening quote */
    size_t cap = 16, n = 0;
    char * buf = malloc(cap);
    if (!buf) { fail(ps, "out of memory"); return NULL; }
    for (;;) {
        if (ps->p >= ps->end) { fail(ps, "unterminated string"); free(buf); return NULL; }
        unsigned char c = (unsigned char)*ps->p++;
        char tmp[4];
        size_t tn = 0;
        if (c == '"') break;
        if (c < 0x20) { fail(ps, "control character in string"); free(buf); return NULL; }
        if (c == '\\') {
            if (ps->p >= ps->end) { fail(ps, "unterminated string"); free(buf); return NULL; }
            char e = *ps->p++;
            switch (e) {
            case '"': tmp[tn++] = '"'; break;
            case '\\': tmp[tn++] = '\\'; break;
            case '/': tmp[tn++] = '/'; break;
            case 'b': tmp[tn++] = '\b'; break;
            case 'f': tmp[tn++] = '\f'; break;
            case 'n': tmp[tn++] = '\n'; break;
            case 'r': tmp[tn++] = '\r'; break;
            case 't': tmp[tn++] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(ps, &cp)) { fail(ps, "bad \\u escape"); free(buf); return NULL; }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                        ps->p += 2;
                        if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) { fail(ps, "bad surrogate pair"); free(buf); return NULL; }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        cp = 0xFFFD;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                if (cp < 0x80) tmp[tn++] = (char)cp;
                else if (cp < 0x800) { tmp[tn++] = (char)(0xC0 | (cp >> 6)); tmp[tn++] = (char)(0x80 | (cp & 0x3F)); }
                else if (cp < 0x10000) {
                    tmp[tn++] = (char)(0xE0 | (cp >> 12)); tmp[tn++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    tmp[tn++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    tmp[tn++] = (char)(0xF0 | (cp >> 18)); tmp[tn++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    tmp[tn++] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[tn++] = (char)(0x80 | (cp & 0x3F));
                }
                break;
            }
            default: fail(ps, "bad escape in string"); free(buf); return NULL;
            }
        } else {
            tmp[tn++] = (char)c;
        }
        if (n + tn + 1 > cap) {
            while (n + tn + 1 > cap) cap *= 2;
            char * nb = realloc(buf, cap);
            if (!nb) { fail(ps, "out of memory"); free(buf); return NULL; }
            buf = nb;
        }
        memcpy(buf + n, tmp, tn);
        n += tn;
    }
    buf[n] = '\0';
    *len_out = n;
    return buf;
}

static int parse_value(struct parser * ps, struct fc_json * out, int depth);

static int parse_number(struct parser * ps, struct fc_json * out) {
    const char * s = ps->p;
    const char * q = s;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || !(*q >= '0' && *q <= '9')) { fail(ps, "bad number"); return 0; }
    while (q < ps->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) q++;
    size_t n = (size_t)(q - s);
    char tmp[64];
    if (n >= sizeof tmp) { fail(ps, "number too long"); return 0; }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char * endp = NULL;
    double d = strtod(tmp, &endp);
    if (endp != tmp + n || !isfinite(d)) { fail(ps, "bad number"); return 0; }
    out->type = FC_JSON_NUMBER;
    out->number = d;
    ps->p = q;
    return 1;
}

static int literal(struct parser * ps, const char * word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) { fail(ps, "unexpected token"); return 0; }
    ps->p += n;
    return 1;
}

static int push_item(struct parser * ps, struct fc_json * arr, int32_t * cap, int with_keys) {
    if (arr->n_items == *cap) {
        int32_t nc = *cap ? *cap * 2 : 4;
        struct fc_json * ni = realloc(arr->items, (size_t)nc * sizeof *ni);
        if (!ni) { fail(ps, "out of memory"); return 0; }
        arr->items = ni;
        if (with_keys) {
            char ** nk = realloc(arr->keys, (size_t)nc * sizeof *nk);
            if (!nk) { fail(ps, "out of memory"); return 0; }
            arr->keys = nk;
        }
        *cap = nc;
    }
    memset(&arr->items[arr->n_items], 0, sizeof arr->items[0]);
    if (with_keys) arr->keys[arr->n_items] = NULL;
    arr->n_items++;
    return 1;
}

static int parse_value(struct parser * ps, struct fc_json * out, int depth) {
    memset(out, 0, sizeof *out);
    if (depth > MAX_DEPTH) { fail(ps, "nesting too deep"); return 0; }
    skip_ws(ps);
    if (ps->p >= ps->end) { fail(ps, "unexpected end of input"); return 0; }
    char c = *ps->p;
    if (c == '{') {
        ps->p++;
        out->type = FC_JSON_OBJECT;
        int32_t cap = 0;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 1; }
        for (;;) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected object key"); return 0; }
            size_t klen;
            char * key = parse_string(ps, &klen);
            if (!key) return 0;
            if (!push_item(ps, out, &cap, 1)) { free(key); return 0; }
            out->keys[out->n_items - 1] = key;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); return 0; }
            ps->p++;
            if (!parse_value(ps, &out->items[out->n_items - 1], depth + 1)) return 0;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 1; }
            fail(ps, "expected ',' or '}'");
            return 0;
        }
    }
    if (c == '[') {
        ps->p++;
        out->type = FC_JSON_ARRAY;
        int32_t cap = 0;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 1; }
        for (;;) {
            if (!push_item(ps, out, &cap, 0)) return 0;
            if (!parse_value(ps, &out->items[out->n_items - 1], depth + 1)) return 0;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 1; }
            fail(ps, "expected ',' or ']'");
            return 0;
        }
    }
    if (c == '"') {
        out->string = parse_string(ps, &out->string_len);
        if (!out->string) return 0;
        out->type = FC_JSON_STRING;
        return 1;
    }
    if (c == 't') { out->type = FC_JSON_BOOL; out->boolean = 1; return literal(ps, "true"); }
    if (c == 'f') { out->type = FC_JSON_BOOL; out->boolean = 0; return literal(ps, "false"); }
    if (c == 'n') { out->type = FC_JSON_NULL; return literal(ps, "null"); }
    return parse_number(ps, out);
}

struct fc_json * fc_json_parse(const char * text, size_t len, char * err, size_t err_size) {
    struct parser ps = { text, text + len, err, err_size, 0 };
    struct fc_json * root = calloc(1, sizeof *root);
    if (!root) return NULL;
    if (!parse_value(&ps, root, 0)) {
        free_value(root);
        free(root);
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail(&ps, "trailing characters after JSON value");
        free_value(root);
        free(root);
        return NULL;
    }
    return root;
}

void fc_json_free(struct fc_json * v) {
    if (!v) return;
    free_value(v);
    free(v);
}

const struct fc_json * fc_json_get(const struct fc_json * obj, const char * key) {
    if (!obj || obj->type != FC_JSON_OBJECT) return NULL;
    for (int32_t i = obj->n_items - 1; i >= 0; i--) { /* last duplicate wins */
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    }
    return NULL;
}

int fc_json_as_int64(const struct fc_json * v, int64_t min, int64_t max, int64_t * out) {
    if (!v || v->type != FC_JSON_NUMBER) return 0;
    double d = v->number;
    if (d != floor(d) || d < (double)min || d > (double)max) return 0;
    *out = (int64_t)d;
    return 1;
}

void fc_json_write_string(FILE * f, const char * s) {
    fputc('"', f);
    for (const unsigned char * p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}
