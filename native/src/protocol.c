/*
 * The protocol loop: reads one JSON request per line from stdin, answers with JSON lines on stdout.
 * Bad input is answered with an error and never ends the loop. While generating, stdin is polled
 * between tokens so `cancel` (and `stats`) are handled within one token.
 */
#define _GNU_SOURCE
#include "protocol.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "json.h"
#include "platform.h"
#include "sampler.h"
#include "snapshot.h"

#define MAX_LINE_BYTES ((size_t)256 << 20)
#define MAX_TOP_LOGPROBS 20
#define MAX_SAFE_INTEGER 9007199254740991.0 /* 2^53 - 1: the largest integer every JSON reader holds exactly */

struct totals {
    int64_t requests, prompt_tokens, cached_tokens, prefill_tokens, completion_tokens;
    int64_t decode_passes; /* forward passes in decode_ms: the first token of a request comes from the prefill */
    double prefill_ms, decode_ms;
};

struct server {
    struct fc_engine * e;
    struct fc_snapshots snaps;
    struct fc_sampler sampler;
    float * logits;       /* [vocab] logits at the live position */
    float * work;         /* [vocab] copy the sampler may modify */
    int logits_valid;     /* logits belong to st.n_past */
    int in_fd;
    char * buf;
    size_t len, cap;
    int eof;
    int shutdown;
    struct totals tot;
    char running_id[256]; /* id of the generate in progress ("" if none or no id) */
    char shutdown_id[256];
    int ack_shutdown;     /* a shutdown request (not EOF): answer ok before exiting */
    int generating;
    int cancel;
    float * bias;         /* [vocab] logit_bias of the running request (0 elsewhere) */
    int32_t * bias_ids;   /* [vocab] the ids set in `bias` (to clear them after the request) */
    uint8_t * bias_listed; /* [vocab] id is in bias_ids */
    int32_t n_bias;
    double progress_ms;   /* least time between two progress lines */
    double progress_last_ms;
    const char * progress_id;
    int32_t progress_total;
    uint8_t * mask;       /* [ceil(vocab/8)] allowed-token bits of a constrained generate (bit i&7 of byte i>>3) */
    int32_t mask_step;    /* the step `mask` is for; -1: none yet */
    int constrained;      /* the running generate waits for a mask before each sampled token */
};

/* ===== output ===== */

static void put_id(const char * id) {
    if (id && *id) {
        fputs(",\"id\":", stdout);
        fc_json_write_string(stdout, id);
    }
}

static void reply_error(const char * id, enum fc_status st, const char * msg) {
    fputs("{\"type\":\"error\"", stdout);
    put_id(id);
    printf(",\"code\":\"%s\",\"message\":", fc_status_name(st == FC_STATUS_NO_MEMORY ? FC_STATUS_INTERNAL : st));
    fc_json_write_string(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
}

static void reply_ok(const char * id) {
    fputs("{\"type\":\"ok\"", stdout);
    put_id(id);
    fputs("}\n", stdout);
    fflush(stdout);
}

/* A progress line while a prompt is evaluated, at most once per progress_ms (checked after every layer). */
static void on_layer(void * ctx, int32_t layer) {
    struct server * sv = ctx;
    (void)layer;
    double now = fc_time_ms();
    if (now - sv->progress_last_ms < sv->progress_ms) return;
    sv->progress_last_ms = now;
    fputs("{\"type\":\"progress\"", stdout);
    put_id(sv->progress_id);
    printf(",\"prompt_tokens_done\":%d,\"prompt_tokens\":%d}\n", sv->e->st.n_past, sv->progress_total);
    fflush(stdout);
}

static void progress_begin(struct server * sv, const char * id, int32_t n_tokens, double t0) {
    sv->progress_id = id;
    sv->progress_total = n_tokens;
    sv->progress_last_ms = t0;
    sv->e->on_layer = on_layer;
    sv->e->on_layer_ctx = sv;
}

static void progress_end(struct server * sv) {
    sv->e->on_layer = NULL;
    sv->e->on_layer_ctx = NULL;
    sv->progress_id = NULL;
}

/* ===== input ===== */

/* Take the next complete line out of the buffer (NUL-terminated, newline stripped); NULL if none. */
static char * take_line(struct server * sv, size_t * consumed) {
    if (sv->len == 0) return NULL;
    char * nl = memchr(sv->buf, '\n', sv->len);
    if (!nl) {
        if (sv->eof && sv->len > 0) { /* last line without newline */
            sv->buf[sv->len] = '\0';
            *consumed = sv->len;
            return sv->buf;
        }
        return NULL;
    }
    *nl = '\0';
    *consumed = (size_t)(nl - sv->buf) + 1;
    return sv->buf;
}

static void drop_line(struct server * sv, size_t consumed) {
    memmove(sv->buf, sv->buf + consumed, sv->len - consumed);
    sv->len -= consumed;
}

/* Read what is available (blocking if `block`). Returns 0 on EOF/error with nothing read. */
static int fill(struct server * sv, int block) {
    if (sv->eof) return 0;
    if (!block) {
        struct pollfd p = { .fd = sv->in_fd, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0) return 1;
    }
    if (sv->cap - sv->len < 65536 + 1) {
        size_t nc = sv->cap ? sv->cap * 2 : 1 << 20;
        char * nb = realloc(sv->buf, nc);
        if (!nb) { sv->eof = 1; return 0; }
        sv->buf = nb;
        sv->cap = nc;
    }
    for (;;) {
        ssize_t got = read(sv->in_fd, sv->buf + sv->len, sv->cap - sv->len - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { sv->eof = 1; return 0; }
        sv->len += (size_t)got;
        return 1;
    }
}

/* An over-long line without a newline: discard it up to the next newline and complain once. */
static void discard_long_line(struct server * sv) {
    reply_error(NULL, FC_STATUS_BAD_REQUEST, "request line too long");
    for (;;) {
        char * nl = sv->len ? memchr(sv->buf, '\n', sv->len) : NULL;
        if (nl) { drop_line(sv, (size_t)(nl - sv->buf) + 1); return; }
        sv->len = 0;
        if (!fill(sv, 1)) return;
    }
}

/* ===== request helpers ===== */

static int get_id(const struct fc_json * req, char * id, size_t size) {
    const struct fc_json * v = fc_json_get(req, "id");
    id[0] = '\0';
    if (!v || v->type == FC_JSON_NULL) return 1;
    if (v->type == FC_JSON_STRING) { snprintf(id, size, "%s", v->string); return 1; }
    if (v->type == FC_JSON_NUMBER) { snprintf(id, size, "%.17g", v->number); return 1; }
    return 0;
}

/* Integer array field: 1 ok (absent -> *n = -1), 0 malformed. */
static int get_int_array(const struct fc_json * req, const char * key, int32_t ** out, int32_t * n) {
    const struct fc_json * v = fc_json_get(req, key);
    *out = NULL;
    *n = -1;
    if (!v || v->type == FC_JSON_NULL) return 1;
    if (v->type != FC_JSON_ARRAY) return 0;
    *out = fc_xmalloc((size_t)v->n_items * sizeof **out + 4);
    for (int32_t i = 0; i < v->n_items; i++) {
        int64_t x;
        if (!fc_json_as_int64(&v->items[i], INT32_MIN, INT32_MAX, &x)) { free(*out); *out = NULL; return 0; }
        (*out)[i] = (int32_t)x;
    }
    *n = v->n_items;
    return 1;
}

/*
 * Number field `key` of obj (absent or null: *out unchanged) in [min, max] - (min, max] if min_open - and integral
 * if `integer`. 0 with a message naming `what` and the range otherwise (NaN and infinities are out of every range).
 */
static int get_ranged(const struct fc_json * obj, const char * key, const char * what, double min, double max, int min_open,
                      int integer, double * out, char * msg, size_t size) {
    const struct fc_json * v = fc_json_get(obj, key);
    if (!v || v->type == FC_JSON_NULL) return 1;
    double x = v->type == FC_JSON_NUMBER ? v->number : NAN;
    int ok = isfinite(x) && (min_open ? x > min : x >= min) && x <= max && (!integer || x == floor(x));
    if (!ok) {
        snprintf(msg, size, "%s must be %s in %c%.17g, %.17g]", what, integer ? "an integer" : "a number", min_open ? '(' : '[', min, max);
        return 0;
    }
    *out = x;
    return 1;
}

/*
 * logit_bias: an object {"token id": bias in [-100, 100]} into sv->bias (later keys win). Returns OK, or
 * BAD_REQUEST / BAD_TOKEN with a message naming the key.
 */
static enum fc_status get_logit_bias(struct server * sv, const struct fc_json * req, char * msg, size_t size) {
    const struct fc_json * lb = fc_json_get(req, "logit_bias");
    const int32_t V = sv->e->model.cfg.vocab_size;
    if (!lb || lb->type == FC_JSON_NULL) return FC_STATUS_OK;
    if (lb->type != FC_JSON_OBJECT) {
        snprintf(msg, size, "logit_bias must be an object mapping token ids to numbers in [-100, 100]");
        return FC_STATUS_BAD_REQUEST;
    }
    for (int32_t i = 0; i < lb->n_items; i++) {
        const char * key = lb->keys[i];
        const char * p = key + (key[0] == '-');
        size_t n_digits = strspn(p, "0123456789");
        if (n_digits == 0 || p[n_digits] != '\0' || n_digits > 10) {
            snprintf(msg, size, "logit_bias key \"%.40s\" is not a token id (a decimal integer)", key);
            return FC_STATUS_BAD_REQUEST;
        }
        long long id = strtoll(key, NULL, 10);
        if (id < 0 || id >= V) {
            snprintf(msg, size, "logit_bias key \"%s\" is outside the vocabulary [0, %d)", key, V);
            return FC_STATUS_BAD_TOKEN;
        }
        const struct fc_json * v = &lb->items[i];
        if (v->type != FC_JSON_NUMBER || !isfinite(v->number) || v->number < -100 || v->number > 100) {
            snprintf(msg, size, "logit_bias[\"%s\"] must be a number in [-100, 100]", key);
            return FC_STATUS_BAD_REQUEST;
        }
        if (!sv->bias_listed[id]) {
            sv->bias_listed[id] = 1;
            sv->bias_ids[sv->n_bias++] = (int32_t)id;
        }
        sv->bias[id] = (float)v->number;
    }
    return FC_STATUS_OK;
}

static void clear_logit_bias(struct server * sv) {
    for (int32_t i = 0; i < sv->n_bias; i++) {
        sv->bias[sv->bias_ids[i]] = 0.0f;
        sv->bias_listed[sv->bias_ids[i]] = 0;
    }
    sv->n_bias = 0;
}

static enum fc_status check_tokens(const struct server * sv, const int32_t * t, int32_t n, const char * what, char * msg, size_t size) {
    for (int32_t i = 0; i < n; i++) {
        if (t[i] < 0 || t[i] >= sv->e->model.cfg.vocab_size) {
            snprintf(msg, size, "%s[%d] = %d is outside the vocabulary [0, %d)", what, i, t[i], sv->e->model.cfg.vocab_size);
            return FC_STATUS_BAD_TOKEN;
        }
    }
    return FC_STATUS_OK;
}

/* ===== requests that may arrive while generating ===== */

static void handle_stats(struct server * sv, const char * id);

/* Poll stdin between tokens: cancel / stats / shutdown are served, anything else is `busy`. */
/* A `mask` line: base64 of the allowed-token bits for step `step` of the running constrained generate.
   Masks for another id or an older step are dropped (they arrive late after a stop or a cancel). */
static void take_mask(struct server * sv, const struct fc_json * req, const char * id) {
    const struct fc_json * step = fc_json_get(req, "step");
    const struct fc_json * bits = fc_json_get(req, "bits");
    if (!sv->constrained || strcmp(id, sv->running_id) != 0) return;
    if (!step || step->type != FC_JSON_NUMBER || !bits || bits->type != FC_JSON_STRING) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "a mask needs \"step\" (integer) and \"bits\" (base64 string)");
        sv->cancel = 1;
        return;
    }
    const size_t nbytes = ((size_t)sv->e->model.cfg.vocab_size + 7) / 8;
    if (fc_base64_decode(bits->string, sv->mask, nbytes) < 0) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "mask \"bits\" is not base64");
        sv->cancel = 1;
        return;
    }
    sv->mask_step = (int32_t)step->number;
}

static void poll_input(struct server * sv) {
    for (;;) {
        size_t consumed;
        char * line = take_line(sv, &consumed);
        if (!line) {
            if (sv->eof) { sv->cancel = 1; sv->shutdown = 1; return; }
            if (sv->len > MAX_LINE_BYTES) { discard_long_line(sv); continue; }
            size_t before = sv->len;
            if (!fill(sv, 0) || sv->len == before) {
                if (sv->eof) { sv->cancel = 1; sv->shutdown = 1; }
                return;
            }
            continue;
        }
        char err[128] = "";
        struct fc_json * req = fc_json_parse(line, strlen(line), err, sizeof err);
        drop_line(sv, consumed);
        if (!req) {
            char msg[200];
            snprintf(msg, sizeof msg, "malformed JSON: %s", err);
            reply_error(NULL, FC_STATUS_BAD_REQUEST, msg);
            continue;
        }
        char id[256] = "";
        const struct fc_json * op = fc_json_get(req, "op");
        if (!get_id(req, id, sizeof id) || !op || op->type != FC_JSON_STRING) {
            reply_error(id, FC_STATUS_BAD_REQUEST, "a request needs an \"op\" string and an optional string \"id\"");
        } else if (strcmp(op->string, "cancel") == 0) {
            /* cancel names the running request by id (no id: whatever is running) */
            if (!id[0] || strcmp(id, sv->running_id) == 0) sv->cancel = 1;
        } else if (strcmp(op->string, "stats") == 0) {
            handle_stats(sv, id);
        } else if (strcmp(op->string, "mask") == 0) {
            take_mask(sv, req, id);
        } else if (strcmp(op->string, "shutdown") == 0) {
            sv->cancel = 1;
            sv->shutdown = 1;
            sv->ack_shutdown = 1;
            snprintf(sv->shutdown_id, sizeof sv->shutdown_id, "%s", id);
        } else {
            reply_error(id, FC_STATUS_BUSY, "a generation is running: only cancel, stats and shutdown are served until it ends");
        }
        fc_json_free(req);
    }
}

/* ===== evaluation with prefix reuse ===== */

static int cmp_int(const void * a, const void * b) {
    return *(const int32_t *)a - *(const int32_t *)b;
}

/*
 * Bring the live state to tokens[0..n) with logits at position n, reusing the live sequence or the
 * longest snapshot, taking snapshots at `snap_at` positions and at n. *cached = tokens reused.
 */
static enum fc_status prefill(struct server * sv, const int32_t * tokens, int32_t n, int32_t * snap_at, int32_t n_snap_at,
                              int32_t * cached, int32_t * evaluated, struct fc_error * err) {
    struct fc_engine * e = sv->e;
    int32_t live = 0;
    if (sv->logits_valid && e->st.n_past > 0 && e->st.n_past <= n && memcmp(e->st.tokens, tokens, (size_t)e->st.n_past * 4) == 0) {
        live = e->st.n_past;
    }
    int32_t si = fc_snapshots_find(&sv->snaps, tokens, n, n);
    if (si >= 0 && sv->snaps.items[si].n_tokens > live) {
        fc_snapshots_restore(&sv->snaps, si, e, sv->logits);
        sv->logits_valid = 1;
    } else if (live == 0) {
        fc_engine_reset(e);
        sv->logits_valid = 0;
    }
    *cached = e->st.n_past;
    *evaluated = 0;
    if (n_snap_at > 0) qsort(snap_at, (size_t)n_snap_at, sizeof *snap_at, cmp_int);
    int32_t k = 0;
    while (e->st.n_past < n) {
        while (k < n_snap_at && snap_at[k] <= e->st.n_past) k++;
        int32_t end = k < n_snap_at && snap_at[k] < n ? snap_at[k] : n;
        if (end - e->st.n_past > e->max_batch) end = e->st.n_past + e->max_batch; /* poll for cancel between chunks */
        fc_snapshots_detach(&sv->snaps, e, e->st.n_past);
        int32_t start = e->st.n_past;
        sv->logits_valid = 0;
        enum fc_status st = fc_engine_eval(e, tokens + start, end - start, NULL, sv->logits, err);
        if (st != FC_STATUS_OK) {
            fc_engine_reset(e);
            return st;
        }
        sv->logits_valid = 1;
        *evaluated += end - start;
        if ((end == n || (k < n_snap_at && snap_at[k] == end))) fc_snapshots_take(&sv->snaps, e, sv->logits);
        if (sv->generating && end < n) {
            poll_input(sv);
            if (sv->cancel) return FC_STATUS_CANCELLED;
        }
    }
    if (*evaluated == 0) fc_snapshots_take(&sv->snaps, e, sv->logits); /* refresh its LRU position */
    return FC_STATUS_OK;
}

/* ===== generate / evaluate ===== */

static void handle_generate(struct server * sv, const struct fc_json * req, const char * id, int evaluate_only) {
    struct fc_engine * e = sv->e;
    const struct fc_config * c = &e->model.cfg;
    int32_t *tokens = NULL, *stop = NULL, *snap_at = NULL, *force = NULL;
    int32_t n = 0, n_stop = 0, n_snap = 0, n_force = 0;
    char msg[512];
    enum fc_status st = FC_STATUS_OK;
    struct fc_error err = { 0 };
    if (!get_int_array(req, "tokens", &tokens, &n) || n <= 0) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "\"tokens\" must be a non-empty array of integers");
        goto out;
    }
    if (!get_int_array(req, "stop_tokens", &stop, &n_stop) || !get_int_array(req, "snapshot_at", &snap_at, &n_snap) ||
        !get_int_array(req, "force_tokens", &force, &n_force)) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "stop_tokens, snapshot_at and force_tokens must be arrays of integers");
        goto out;
    }
    if ((st = check_tokens(sv, tokens, n, "tokens", msg, sizeof msg)) != FC_STATUS_OK ||
        (n_force > 0 && (st = check_tokens(sv, force, n_force, "force_tokens", msg, sizeof msg)) != FC_STATUS_OK)) {
        reply_error(id, st, msg);
        goto out;
    }
    if (n > e->context) {
        snprintf(msg, sizeof msg, "the prompt has %d tokens; the context holds %d", n, e->context);
        reply_error(id, FC_STATUS_CONTEXT_OVERFLOW, msg);
        goto out;
    }
    double max_tokens_d = 256;
    struct fc_sampling sp = { .temperature = 0.0f, .top_p = 1.0f, .top_k = 0, .min_p = 0.0f, .presence_penalty = 0.0f,
                              .frequency_penalty = 0.0f, .repetition_penalty = 1.0f, .seed = 0 };
    const struct fc_json * sj = fc_json_get(req, "sampling");
    /* every sampling field: its range (min_open: min itself excluded), so no cast below can overflow */
    static const struct { const char * key, * what; double min, max; int min_open, integer; } fields[8] = {
        { "temperature", "sampling.temperature", 0, 100, 0, 0 },
        { "top_p", "sampling.top_p", 0, 1, 0, 0 },
        { "top_k", "sampling.top_k", 0, 2147483647.0, 0, 1 },
        { "min_p", "sampling.min_p", 0, 1, 0, 0 },
        { "presence_penalty", "sampling.presence_penalty", -100, 100, 0, 0 },
        { "frequency_penalty", "sampling.frequency_penalty", -100, 100, 0, 0 },
        { "repetition_penalty", "sampling.repetition_penalty", 0, 100, 1, 0 },
        { "seed", "sampling.seed", 0, MAX_SAFE_INTEGER, 0, 1 },
    };
    double v[8] = { sp.temperature, sp.top_p, (double)sp.top_k, sp.min_p, sp.presence_penalty, sp.frequency_penalty,
                    sp.repetition_penalty, 0 };
    double top_logprobs_d = 0;
    int ok = get_ranged(req, "max_tokens", "max_tokens", 0, 1e9, 0, 1, &max_tokens_d, msg, sizeof msg) &&
             get_ranged(req, "top_logprobs", "top_logprobs", 0, MAX_TOP_LOGPROBS, 0, 1, &top_logprobs_d, msg, sizeof msg);
    if (ok && sj && sj->type != FC_JSON_OBJECT && sj->type != FC_JSON_NULL) {
        snprintf(msg, sizeof msg, "sampling must be an object");
        ok = 0;
    }
    for (int i = 0; ok && i < 8 && sj && sj->type == FC_JSON_OBJECT; i++) {
        ok = get_ranged(sj, fields[i].key, fields[i].what, fields[i].min, fields[i].max, fields[i].min_open, fields[i].integer, &v[i],
                        msg, sizeof msg);
    }
    const struct fc_json * cj = fc_json_get(req, "constrained");
    if (ok && cj && cj->type != FC_JSON_BOOL && cj->type != FC_JSON_NULL) {
        snprintf(msg, sizeof msg, "constrained must be true or false");
        ok = 0;
    }
    const struct fc_json * lp = fc_json_get(req, "logprobs");
    if (ok && lp && lp->type != FC_JSON_BOOL && lp->type != FC_JSON_NULL) {
        snprintf(msg, sizeof msg, "logprobs must be true or false");
        ok = 0;
    }
    if (!ok) {
        reply_error(id, FC_STATUS_BAD_REQUEST, msg);
        goto out;
    }
    if ((st = get_logit_bias(sv, req, msg, sizeof msg)) != FC_STATUS_OK) {
        reply_error(id, st, msg);
        goto out;
    }
    sp.temperature = (float)v[0];
    sp.top_p = (float)v[1];
    sp.top_k = (int32_t)v[2];
    sp.min_p = (float)v[3];
    sp.presence_penalty = (float)v[4];
    sp.frequency_penalty = (float)v[5];
    sp.repetition_penalty = (float)v[6];
    sp.seed = (uint64_t)v[7];
    const int32_t n_top = (int32_t)top_logprobs_d;
    const int want_logprobs = (lp && lp->type == FC_JSON_BOOL && lp->boolean) || n_top > 0;
    int32_t max_tokens = (int32_t)max_tokens_d;
    if (n_force >= 0 && n_force < max_tokens) max_tokens = n_force;
    if (n_stop < 0) { /* absent: the model's end-of-sequence tokens */
        free(stop);
        stop = fc_xmalloc(sizeof *stop * FC_MAX_EOS);
        n_stop = c->n_eos;
        memcpy(stop, c->eos, (size_t)n_stop * sizeof *stop);
    }
    for (int32_t i = 0; i < n_snap; i++) {
        if (snap_at[i] <= 0 || snap_at[i] > n) snap_at[i] = n; /* outside the prompt: the end is kept anyway */
    }

    snprintf(sv->running_id, sizeof sv->running_id, "%s", id);
    sv->constrained = cj && cj->type == FC_JSON_BOOL && cj->boolean && !evaluate_only;
    sv->mask_step = -1;
    sv->generating = 1;
    sv->cancel = 0;
    const uint64_t bytes0 = e->experts.bytes_read;
    const double io0 = e->experts.io_wait_ms;
    double t0 = fc_time_ms();
    int32_t cached = 0, evaluated = 0, completion = 0, passes = 0;
    const char * reason = evaluate_only ? "evaluated" : "length";
    progress_begin(sv, id, n, t0);
    st = prefill(sv, tokens, n, snap_at, n_snap > 0 ? n_snap : 0, &cached, &evaluated, &err);
    progress_end(sv);
    double t1 = fc_time_ms();
    sv->tot.requests++;
    sv->tot.prompt_tokens += n;
    sv->tot.cached_tokens += cached;
    sv->tot.prefill_tokens += evaluated;
    sv->tot.prefill_ms += t1 - t0;
    if (st == FC_STATUS_CANCELLED) {
        reason = "cancelled";
        sv->logits_valid = 0;
    } else if (st != FC_STATUS_OK) {
        sv->logits_valid = 0;
        reply_error(id, st, err.message);
        goto done_nolog;
    } else if (!evaluate_only) {
        fputs("{\"type\":\"prompt\"", stdout);
        put_id(id);
        printf(",\"prompt_tokens\":%d,\"cached_tokens\":%d}\n", n, cached);
        fflush(stdout);
        fc_sampler_begin(&sv->sampler, &sp, tokens, n);
        while (completion < max_tokens) {
            poll_input(sv);
            if (sv->cancel) { reason = "cancelled"; break; }
            int32_t tok;
            /* logit_bias is added to the raw logits; logprobs are the log-softmax of those (before penalties,
               temperature and truncation) */
            memcpy(sv->work, sv->logits, (size_t)c->vocab_size * sizeof(float));
            for (int32_t i = 0; i < sv->n_bias; i++) sv->work[sv->bias_ids[i]] += sv->bias[sv->bias_ids[i]];
            double lse = 0;
            int32_t top[MAX_TOP_LOGPROBS];
            if (want_logprobs) lse = fc_logsumexp(sv->work, c->vocab_size);
            if (n_top > 0) fc_top_ids(sv->work, c->vocab_size, n_top, top);
            if (n_force >= 0) {
                tok = force[completion];
            } else {
                if (sv->constrained) {
                    /* wait for this step's mask; cancel, stats and shutdown are still served meanwhile */
                    while (sv->mask_step != completion && !sv->cancel) {
                        if (!fill(sv, 1)) { sv->cancel = 1; sv->shutdown = 1; break; }
                        poll_input(sv);
                    }
                    if (sv->cancel) { reason = "cancelled"; break; }
                    int any = 0;
                    for (int32_t i = 0; i < c->vocab_size; i++) {
                        if (sv->mask[i >> 3] >> (i & 7) & 1) any = 1;
                        else sv->work[i] = -INFINITY;
                    }
                    if (!any) {
                        reply_error(id, FC_STATUS_BAD_REQUEST, "the mask allows no token");
                        goto done_nolog;
                    }
                }
                tok = fc_sampler_sample(&sv->sampler, sv->work); /* modifies work */
            }
            fputs("{\"type\":\"token\"", stdout);
            put_id(id);
            printf(",\"token\":%d", tok);
            if (want_logprobs) printf(",\"logprob\":%.9g", (double)sv->logits[tok] + (double)sv->bias[tok] - lse);
            if (n_top > 0) {
                fputs(",\"top_logprobs\":[", stdout);
                for (int32_t i = 0; i < n_top && i < c->vocab_size; i++) {
                    printf("%s{\"token\":%d,\"logprob\":%.9g}", i ? "," : "", top[i],
                           (double)sv->logits[top[i]] + (double)sv->bias[top[i]] - lse);
                }
                fputc(']', stdout);
            }
            fputs("}\n", stdout);
            fflush(stdout);
            completion++;
            fc_sampler_accept(&sv->sampler, tok);
            int is_stop = 0;
            for (int32_t i = 0; i < n_stop; i++) is_stop |= stop[i] == tok;
            if (is_stop) { reason = "stop"; break; }
            if (completion >= max_tokens) break;
            if (e->st.n_past >= e->context) break; /* context full: length */
            fc_snapshots_detach(&sv->snaps, e, e->st.n_past);
            sv->logits_valid = 0;
            passes++;
            st = fc_engine_eval(e, &tok, 1, NULL, sv->logits, &err);
            if (st != FC_STATUS_OK) {
                fc_engine_reset(e);
                reply_error(id, st, err.message);
                goto done_nolog;
            }
            sv->logits_valid = 1;
        }
    }
    {
        double t2 = fc_time_ms();
        sv->tot.completion_tokens += completion;
        sv->tot.decode_passes += passes;
        sv->tot.decode_ms += t2 - t1;
        fputs("{\"type\":\"done\"", stdout);
        put_id(id);
        printf(",\"reason\":\"%s\",\"prompt_tokens\":%d,\"cached_tokens\":%d,\"completion_tokens\":%d,"
               "\"decode_passes\":%d,\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"expert_bytes\":%llu,\"io_wait_ms\":%.3f}\n",
               reason, n, cached, completion, passes, t1 - t0, t2 - t1, (unsigned long long)(e->experts.bytes_read - bytes0),
               e->experts.io_wait_ms - io0);
        fflush(stdout);
    }
done_nolog:
    sv->generating = 0;
    sv->constrained = 0;
    sv->running_id[0] = '\0';
out:
    clear_logit_bias(sv);
    free(tokens);
    free(stop);
    free(snap_at);
    free(force);
}

/* ===== logits ===== */

static void handle_logits(struct server * sv, const struct fc_json * req, const char * id) {
    struct fc_engine * e = sv->e;
    const int32_t V = e->model.cfg.vocab_size;
    int32_t * tokens = NULL;
    int32_t n = 0;
    char msg[512];
    struct fc_error err = { 0 };
    const struct fc_json * out = fc_json_get(req, "out");
    enum fc_status st;
    if (!get_int_array(req, "tokens", &tokens, &n) || n <= 0 || !out || out->type != FC_JSON_STRING || !out->string[0]) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "logits needs \"tokens\" (non-empty integer array) and \"out\" (file path)");
        goto done;
    }
    if ((st = check_tokens(sv, tokens, n, "tokens", msg, sizeof msg)) != FC_STATUS_OK) { reply_error(id, st, msg); goto done; }
    if (n > e->context) {
        snprintf(msg, sizeof msg, "%d tokens exceed the context of %d", n, e->context);
        reply_error(id, FC_STATUS_CONTEXT_OVERFLOW, msg);
        goto done;
    }
    if ((double)n * V * 4 > 4e9) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "the logits would exceed 4 GB; ask for fewer tokens");
        goto done;
    }
    float * all = malloc((size_t)n * V * sizeof(float));
    if (!all) { reply_error(id, FC_STATUS_INTERNAL, "out of memory for the logits"); goto done; }
    fc_snapshots_detach(&sv->snaps, e, 0);
    fc_engine_reset(e);
    sv->logits_valid = 0;
    progress_begin(sv, id, n, fc_time_ms());
    st = fc_engine_eval(e, tokens, n, all, sv->logits, &err);
    progress_end(sv);
    if (st != FC_STATUS_OK) {
        fc_engine_reset(e);
        reply_error(id, st, err.message);
        free(all);
        goto done;
    }
    sv->logits_valid = 1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out->string);
    FILE * f = fopen(tmp, "wb");
    int ok = f && fwrite(all, sizeof(float), (size_t)n * V, f) == (size_t)n * V;
    if (f && fclose(f) != 0) ok = 0;
    free(all);
    if (!ok || rename(tmp, out->string) != 0) {
        remove(tmp);
        snprintf(msg, sizeof msg, "%s: cannot write the logits (%s)", out->string, strerror(errno));
        reply_error(id, FC_STATUS_IO_ERROR, msg);
        goto done;
    }
    fputs("{\"type\":\"logits\"", stdout);
    put_id(id);
    fputs(",\"path\":", stdout);
    fc_json_write_string(stdout, out->string);
    printf(",\"shape\":[%d,%d]}\n", n, V);
    fflush(stdout);
done:
    free(tokens);
}

/* ===== stats ===== */

static void handle_stats(struct server * sv, const char * id) {
    struct fc_engine * e = sv->e;
    const struct totals * t = &sv->tot;
    fputs("{\"type\":\"stats\"", stdout);
    put_id(id);
    printf(",\"requests\":%lld,\"prompt_tokens\":%lld,\"cached_tokens\":%lld,\"prefill_tokens\":%lld,"
           "\"completion_tokens\":%lld,\"decode_passes\":%lld,\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"prefill_tokens_per_s\":%.3f,"
           "\"tokens_per_s\":%.3f,\"expert_bytes\":%llu,\"expert_reads\":%llu,\"expert_bytes_cached\":%llu,\"io_wait_ms\":%.3f,\"snapshots\":%d,\"snapshot_bytes\":%zu,"
           "\"snapshot_budget_bytes\":%zu,\"n_past\":%d,\"context\":%d,\"kv_bytes\":%zu,\"rss_bytes\":%lld,\"max_rss_bytes\":%lld}\n",
           (long long)t->requests, (long long)t->prompt_tokens, (long long)t->cached_tokens, (long long)t->prefill_tokens,
           (long long)t->completion_tokens, (long long)t->decode_passes, t->prefill_ms, t->decode_ms,
           t->prefill_ms > 0 ? t->prefill_tokens / (t->prefill_ms / 1e3) : 0.0,
           t->decode_ms > 0 ? t->decode_passes / (t->decode_ms / 1e3) : 0.0, (unsigned long long)e->experts.bytes_read,
           (unsigned long long)e->experts.reads, (unsigned long long)e->experts.bytes_cached, e->experts.io_wait_ms, sv->snaps.n, sv->snaps.used_bytes, sv->snaps.budget_bytes, e->st.n_past, e->context, fc_kv_committed_bytes(&e->st.kv),
           (long long)fc_platform_rss_bytes(), (long long)fc_platform_max_rss_bytes());
    fflush(stdout);
}

/* ===== the loop ===== */

static void handle_line(struct server * sv, char * line) {
    char err[128] = "";
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = '\0';
    if (len == 0) return;
    struct fc_json * req = fc_json_parse(line, len, err, sizeof err);
    if (!req) {
        char msg[200];
        snprintf(msg, sizeof msg, "malformed JSON: %s", err);
        reply_error(NULL, FC_STATUS_BAD_REQUEST, msg);
        return;
    }
    char id[256] = "";
    const struct fc_json * op = fc_json_get(req, "op");
    if (req->type != FC_JSON_OBJECT || !get_id(req, id, sizeof id) || !op || op->type != FC_JSON_STRING) {
        reply_error(id, FC_STATUS_BAD_REQUEST, "a request is an object with an \"op\" string and an optional string \"id\"");
        fc_json_free(req);
        return;
    }
    const char * o = op->string;
    struct fc_error ferr = { 0 };
    if (strcmp(o, "generate") == 0) {
        handle_generate(sv, req, id, 0);
    } else if (strcmp(o, "evaluate") == 0) {
        handle_generate(sv, req, id, 1);
    } else if (strcmp(o, "logits") == 0) {
        handle_logits(sv, req, id);
    } else if (strcmp(o, "cancel") == 0) {
        reply_ok(id); /* nothing running: nothing to cancel */
    } else if (strcmp(o, "mask") == 0) {
        /* a mask for a generate that has ended (stopped, cancelled, max_tokens): nothing to do */
    } else if (strcmp(o, "reset") == 0) {
        fc_engine_reset(sv->e);
        sv->logits_valid = 0;
        reply_ok(id);
    } else if (strcmp(o, "snapshots_clear") == 0) {
        fc_snapshots_clear(&sv->snaps);
        reply_ok(id);
    } else if (strcmp(o, "snapshot_save") == 0 || strcmp(o, "snapshot_load") == 0) {
        const struct fc_json * path = fc_json_get(req, "path");
        if (!path || path->type != FC_JSON_STRING || !path->string[0]) {
            reply_error(id, FC_STATUS_BAD_REQUEST, "\"path\" (string) is required");
        } else {
            enum fc_status st = o[9] == 's' ? fc_snapshots_save(&sv->snaps, sv->e, path->string, &ferr)
                                            : fc_snapshots_load(&sv->snaps, sv->e, path->string, &ferr);
            if (st == FC_STATUS_OK) reply_ok(id);
            else reply_error(id, st, ferr.message);
        }
    } else if (strcmp(o, "stats") == 0) {
        handle_stats(sv, id);
    } else if (strcmp(o, "shutdown") == 0) {
        sv->shutdown = 1;
        sv->ack_shutdown = 1;
        snprintf(sv->shutdown_id, sizeof sv->shutdown_id, "%s", id);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown op \"%.100s\"", o);
        reply_error(id, FC_STATUS_BAD_REQUEST, msg);
    }
    fc_json_free(req);
}

int fc_protocol_run(struct fc_engine * e, size_t snapshot_budget_bytes, int in_fd, double progress_ms) {
    struct server sv = { 0 };
    const struct fc_config * c = &e->model.cfg;
    sv.e = e;
    sv.in_fd = in_fd;
    sv.progress_ms = progress_ms;
    sv.bias = fc_xcalloc((size_t)c->vocab_size, sizeof *sv.bias);
    sv.bias_ids = fc_xcalloc((size_t)c->vocab_size, sizeof *sv.bias_ids);
    sv.bias_listed = fc_xcalloc((size_t)c->vocab_size, 1);
    fc_snapshots_init(&sv.snaps, snapshot_budget_bytes);
    fc_sampler_init(&sv.sampler, c->vocab_size);
    sv.mask = fc_xcalloc(((size_t)c->vocab_size + 7) / 8, 1);
    sv.mask_step = -1;
    sv.logits = fc_xcalloc((size_t)c->vocab_size, sizeof(float));
    sv.work = fc_xcalloc((size_t)c->vocab_size, sizeof(float));

    printf("{\"type\":\"ready\",\"protocol\":%d,\"backend\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"context\":%d,"
           "\"model\":{\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_experts\":%d,\"active_experts\":%d,"
           "\"eos_token_id\":[",
           FC_PROTOCOL_VERSION, e->backend_name,
           e->gpu ? e->backend_name : e->be.ops->describe ? e->be.ops->describe(&e->be) : e->be.ops->name,
           e->n_threads, e->context, c->vocab_size, c->hidden_size, c->n_layers, c->n_experts, e->n_active);
    for (int32_t i = 0; i < c->n_eos; i++) printf("%s%d", i ? "," : "", c->eos[i]);
    printf("]},\"dense_bytes\":%zu,\"expert_bytes_per_token\":%llu,\"expert_bits\":%d,\"expert_io\":\"%s\","
           "\"snapshot_budget_bytes\":%zu,\"max_context\":%d,\"kv_type\":\"%s\",\"kv_bytes_per_token\":%zu}\n",
           e->model.dense_bytes, (unsigned long long)e->experts.expert_bytes * (unsigned long long)e->n_active * (unsigned long long)c->n_layers,
           e->experts.bits, fc_expert_io_name(fc_engine_expert_io(e)), snapshot_budget_bytes, e->max_context,
           fc_kv_type_name(e->st.kv.type), fc_engine_kv_bytes_per_pos(e));
    fflush(stdout);

    while (!sv.shutdown) {
        size_t consumed;
        char * line = take_line(&sv, &consumed);
        if (!line) {
            if (sv.eof) break;
            if (sv.len > MAX_LINE_BYTES) { discard_long_line(&sv); continue; }
            fill(&sv, 1);
            continue;
        }
        /* handle_line may read more input (polling during generate): work on a private copy */
        char * copy = fc_xmalloc(consumed + 1);
        memcpy(copy, line, consumed);
        copy[consumed] = '\0';
        drop_line(&sv, consumed);
        handle_line(&sv, copy);
        free(copy);
    }
    if (sv.ack_shutdown) reply_ok(sv.shutdown_id);
    fc_snapshots_free(&sv.snaps);
    fc_sampler_free(&sv.sampler);
    free(sv.mask);
    free(sv.logits);
    free(sv.work);
    free(sv.bias);
    free(sv.bias_ids);
    free(sv.bias_listed);
    free(sv.buf);
    return 0;
}
