/*
 * The CPU backend: quantized matmul over the compute pool, rows split between threads. One token: the
 * float matvec kernels (prepared x), or on a level with dot_xv (x86 avx512vnni, 4-bit) x in the integer
 * path's two int8 levels; a batch of one-token products (matmul_batch: decode's experts) shares one round
 * of the threads. Several tokens on a level with the integer path (4- and 2-bit
 * weights): activations quantized to int8 in two levels (x, then its residual), integer dot products
 * for each, the two added (kernels.h); else (and for 8-bit weights: the routers, whose decisions are
 * discontinuous) 4 rows dequantized at a time and dotted with every token in float. The arm64 int8
 * levels (matmul_qx) instead quantize x to two int8 planes for every quantized product, one token or many
 * (fc_cpu_prepare_xq in kernels.h).
 */
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../threads.h"
#include "kernels.h"

struct cpu_ctx {
    const struct fc_cpu_kernels * k;
    float * xp;    /* prepared x [n_tokens * cols] */
    float * xsum;  /* [n_tokens * cols / 64] */
    size_t xp_cap, xsum_cap;
    int8_t * qx;   /* int8 x in two planes [n_tokens * cols / 64 * FC_QX_BYTES] (levels with matmul_qx) */
    float * xd, * xqs; /* [n_tokens * cols / 64] */
    size_t qx_cap, xd_cap, xqs_cap;
    float * deq;   /* per thread: 4 rows dequantized [n_threads][4 * cols] */
    size_t deq_cap_per_thread;
    void * xq;     /* int8 activations of the integer path (the level's layout): x, then its residual */
    size_t xq_cap;
    float * res;   /* the residual of x after its first quantization [n_tokens * cols] */
    size_t res_cap;
    uint8_t * xv;  /* int8 x of one-token products (levels with dot_xv), several x one after the other */
    size_t xv_cap;
    int32_t n_threads;
};

/* Fewer tokens than this take the float kernels (the integer path has one token per vector lane). */
#define INT8_MIN_TOKENS 2

struct mm_job {
    const struct fc_matrix * w;
    int int8; /* x prepared by fc_cpu_prepare_xq: matmul_qx */
    const float * x; /* prepared (quantized) or natural (float types) */
    const float * xsum;
    float * out;
    int32_t n_tokens;
    struct cpu_ctx * c;
};

static int fast_path(const struct fc_matrix * w) {
    if (fc_dtype_is_quantized(w->type)) return w->group_size == FC_QK && w->cols % FC_QK == 0;
    return w->cols % 16 == 0;
}

/* Convert row r of an unquantized matrix to floats. */
static void float_row(const struct fc_matrix * w, int32_t r, float * out) {
    const uint8_t * row = w->data + (size_t)r * w->row_bytes;
    if (w->type == FC_DTYPE_F32) {
        memcpy(out, row, (size_t)w->cols * 4);
    } else {
        for (int32_t i = 0; i < w->cols; i++) {
            uint16_t h;
            memcpy(&h, row + (size_t)i * 2, 2);
            out[i] = w->type == FC_DTYPE_BF16 ? fc_bf16_to_f32(h) : fc_f16_to_f32(h);
        }
    }
}

static void load_row(const struct fc_cpu_kernels * k, const struct fc_matrix * w, int32_t r, float * out) {
    if (fc_dtype_is_quantized(w->type)) {
        int32_t ng = w->cols / FC_QK;
        k->dequant_q[fc_bits_index(fc_dtype_bits(w->type))](w->data + (size_t)r * w->row_bytes, w->scales + (size_t)r * ng,
                                                            w->biases + (size_t)r * ng, ng, out);
    } else {
        float_row(w, r, out);
    }
}

static void mm_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct mm_job * job = p;
    const struct fc_matrix * w = job->w;
    const struct fc_cpu_kernels * k = job->c->k;
    const int32_t cols = w->cols;
    int64_t r0, r1;
    fc_split_range(w->rows, chunk, n_chunks, job->n_tokens == 1 ? 16 : 4, &r0, &r1);
    if (r0 >= r1) return;
    if (job->int8) {
        const int32_t ng = cols / FC_QK;
        k->matmul_qx[fc_bits_index(fc_dtype_bits(w->type))](w->data + (size_t)r0 * w->row_bytes, w->row_bytes,
                                                             w->scales + (size_t)r0 * ng, w->biases + (size_t)r0 * ng,
                                                             (int32_t)(r1 - r0), ng, job->c->qx, job->c->xd, job->xsum,
                                                             job->c->xqs, job->n_tokens, job->out + r0, (size_t)w->rows);
        return;
    }
    if (job->n_tokens == 1 && fc_dtype_is_quantized(w->type)) {
        const int32_t ng = cols / FC_QK;
        const int bi = fc_bits_index(fc_dtype_bits(w->type));
        for (int64_t r = r0; r < r1; r++) {
            job->out[r] = k->dot_q[bi](w->data + (size_t)r * w->row_bytes, w->scales + (size_t)r * ng, w->biases + (size_t)r * ng,
                                       job->x, job->xsum, ng);
        }
        return;
    }
    /* Several tokens (or a float matrix): dequantize 4 rows once, dot them with every token. */
    float * deq = job->c->deq + (size_t)thread * job->c->deq_cap_per_thread;
    for (int64_t r = r0; r < r1; r += 4) {
        int32_t nr = (int32_t)(r1 - r < 4 ? r1 - r : 4);
        for (int32_t i = 0; i < nr; i++) load_row(k, w, (int32_t)(r + i), deq + (size_t)i * cols);
        int32_t t = 0;
        if (nr == 4) {
            for (; t + 4 <= job->n_tokens; t += 4) {
                float res[16];
                k->dot4x4(deq, (size_t)cols, job->x + (size_t)t * cols, (size_t)cols, cols, res);
                for (int32_t u = 0; u < 4; u++) {
                    for (int32_t i = 0; i < 4; i++) job->out[(size_t)(t + u) * w->rows + r + i] = res[4 * u + i];
                }
            }
        }
        for (; t < job->n_tokens; t++) {
            float res[4];
            const float * xt = job->x + (size_t)t * cols;
            if (nr == 4) {
                k->dot4(deq, (size_t)cols, xt, cols, res);
            } else {
                for (int32_t i = 0; i < nr; i++) {
                    float r4[4];
                    k->dot4(deq + (size_t)i * cols, 0, xt, cols, r4);
                    res[i] = r4[0];
                }
            }
            for (int32_t i = 0; i < nr; i++) job->out[(size_t)t * w->rows + r + i] = res[i];
        }
    }
}

static int ensure(float ** buf, size_t * cap, size_t n) {
    if (*cap >= n) return 1;
    free(*buf);
    *buf = fc_alloc_aligned(n * sizeof(float));
    *cap = *buf ? n : 0;
    return *buf != NULL;
}

/*
 * The integer path for one x and up to FC_MATMUL_BATCH_MAX matrices of the same bits: x quantized once (both
 * levels, in chunks of token blocks x group ranges: a few tokens still split between the threads), then the
 * rows of every matrix in chunks over the pool, each matrix's rows in a share of the chunks by its size.
 */
struct q8_job {
    const struct fc_matrix * ws[FC_MATMUL_BATCH_MAX];
    float * outs[FC_MATMUL_BATCH_MAX];
    int32_t n_w;
    int32_t chunk0[FC_MATMUL_BATCH_MAX + 1]; /* gemm: matrix i has chunks [chunk0[i], chunk0[i + 1]) */
    const float * x;
    int32_t n_tokens, cols, bits;
    int32_t g_split; /* quantize: group ranges per token range */
    const struct fc_cpu_kernels * k;
    void * xq[2]; /* x quantized, its residual quantized */
    float * res;
};

/* Both levels of a token range x group range: x -> xq[0] (+ residual), residual -> xq[1]. */
static void q8_quantize_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct q8_job * job = p;
    int64_t t0, t1, g0, g1;
    fc_split_range(job->n_tokens, chunk / job->g_split, n_chunks / job->g_split, job->k->xq_tokens, &t0, &t1);
    fc_split_range(job->cols / FC_QK, chunk % job->g_split, job->g_split, 1, &g0, &g1);
    if (t0 >= t1 || g0 >= g1) return;
    const struct fc_cpu_kernels * k = job->k;
    k->quantize_x(job->bits, job->x, job->n_tokens, job->cols, (int32_t)t0, (int32_t)t1, (int32_t)g0, (int32_t)g1, job->xq[0], job->res);
    k->quantize_x(job->bits, job->res, job->n_tokens, job->cols, (int32_t)t0, (int32_t)t1, (int32_t)g0, (int32_t)g1, job->xq[1], NULL);
}

static void q8_gemm_rows(const struct q8_job * job, const struct fc_matrix * w, float * out, int32_t r0, int32_t r1) {
    void (*both)(const struct fc_matrix *, int32_t, int32_t, const void *, const void *, int32_t, float *, size_t) =
        job->k->gemm2_q[fc_bits_index(job->bits)];
    if (both) {
        both(w, r0, r1, job->xq[0], job->xq[1], job->n_tokens, out, (size_t)w->rows);
        return;
    }
    job->k->gemm_q(w, r0, r1, job->xq[0], job->n_tokens, out, (size_t)w->rows, 0);
    job->k->gemm_q(w, r0, r1, job->xq[1], job->n_tokens, out, (size_t)w->rows, 1);
}

static void q8_gemm_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct q8_job * job = p;
    int32_t i = 0;
    while (i + 1 < job->n_w && chunk >= job->chunk0[i + 1]) i++;
    int64_t r0, r1;
    fc_split_range(job->ws[i]->rows, chunk - job->chunk0[i], job->chunk0[i + 1] - job->chunk0[i], 4, &r0, &r1);
    if (r0 < r1) q8_gemm_rows(job, job->ws[i], job->outs[i], (int32_t)r0, (int32_t)r1);
}

static int use_int8(const struct fc_cpu_kernels * k, const struct fc_matrix * w, int32_t n_tokens) {
    return k->gemm_q && fast_path(w) && fc_dtype_is_quantized(w->type) && n_tokens >= INT8_MIN_TOKENS &&
           w->cols / FC_QK <= 512;
}

/* ws[0..n_w) all pass use_int8 with the same bits and cols. */
static void cpu_matmul_int8(struct fc_backend * be, const struct fc_matrix * const * ws, float * const * outs, int32_t n_w, const float * x,
                            int32_t n_tokens) {
    struct cpu_ctx * c = be->ctx;
    const int32_t cols = ws[0]->cols, ng = cols / FC_QK;
    const size_t one = (c->k->xq_bytes(n_tokens, cols) + 63) / 64 * 64;
    if (c->xq_cap < 2 * one) {
        free(c->xq);
        c->xq = fc_alloc_aligned(2 * one);
        FC_ASSERT(c->xq != NULL);
        c->xq_cap = 2 * one;
    }
    FC_ASSERT(ensure(&c->res, &c->res_cap, (size_t)n_tokens * cols));
    struct q8_job job = { .n_w = n_w, .x = x, .n_tokens = n_tokens, .cols = cols, .bits = fc_dtype_bits(ws[0]->type), .g_split = 1,
                          .k = c->k, .xq = { c->xq, (uint8_t *)c->xq + one }, .res = c->res };
    int64_t rows = 0;
    for (int32_t i = 0; i < n_w; i++) {
        job.ws[i] = ws[i];
        job.outs[i] = outs[i];
        rows += ws[i]->rows;
    }
    /* quantize: 2 chunks per thread, over token blocks first, then over groups (a few tokens, one block) */
    const int32_t n_blocks = (n_tokens + c->k->xq_tokens - 1) / c->k->xq_tokens, want = c->n_threads * 2;
    if (c->n_threads == 1 || (int64_t)n_tokens * cols < 8192) {
        q8_quantize_worker(&job, 0, 1, 0);
    } else {
        const int32_t tb = n_blocks < want ? n_blocks : want;
        job.g_split = tb >= want ? 1 : (want + tb - 1) / tb < ng ? (want + tb - 1) / tb : ng;
        fc_pool_run(be->pool, q8_quantize_worker, &job, tb * job.g_split);
    }
    /* the products: several chunks per thread (a thread that gets descheduled leaves its share to the others),
       each matrix its share by rows, at least one chunk and at most one per 16 rows */
    if (rows * cols * n_tokens < 262144 || c->n_threads == 1) {
        for (int32_t i = 0; i < n_w; i++) q8_gemm_rows(&job, ws[i], outs[i], 0, ws[i]->rows);
        return;
    }
    const int64_t total = c->n_threads * 4;
    job.chunk0[0] = 0;
    for (int32_t i = 0; i < n_w; i++) {
        int64_t n = (ws[i]->rows * total + rows / 2) / rows;
        const int64_t most = (ws[i]->rows + 15) / 16;
        n = n < 1 ? 1 : n > most ? most : n;
        job.chunk0[i + 1] = job.chunk0[i] + (int32_t)n;
    }
    fc_pool_run(be->pool, q8_gemm_worker, &job, job.chunk0[n_w]);
}

static int use_float_mv(const struct fc_cpu_kernels * k, const struct fc_matrix * w, int32_t n_tokens);
static void cpu_matvec_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n);

static void cpu_matmul(struct fc_backend * be, const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens) {
    struct cpu_ctx * c = be->ctx;
    if (n_tokens <= 0) return;
    if (!fast_path(w)) {
        fc_matmul_reference(w, x, out, n_tokens);
        return;
    }
    if (use_int8(c->k, w, n_tokens)) {
        cpu_matmul_int8(be, &w, &out, 1, x, n_tokens);
        return;
    }
    if (use_float_mv(c->k, w, n_tokens) && c->k->dot_xv[fc_bits_index(fc_dtype_bits(w->type))]) {
        const struct fc_matmul_item item = { w, x, out };
        cpu_matvec_batch(be, &item, 1);
        return;
    }
    const int32_t cols = w->cols;
    struct mm_job job = { .w = w, .x = x, .xsum = NULL, .out = out, .n_tokens = n_tokens, .c = c };
    const int bits = fc_dtype_is_quantized(w->type) ? fc_dtype_bits(w->type) : 0;
    if (bits && c->k->matmul_qx[fc_bits_index(bits)]) {
        const size_t ng = (size_t)n_tokens * (cols / FC_QK), n = ng * FC_QX_BYTES;
        if (c->qx_cap < n) {
            free(c->qx);
            c->qx = fc_alloc_aligned(n);
            FC_ASSERT(c->qx != NULL);
            c->qx_cap = n;
        }
        FC_ASSERT(ensure(&c->xd, &c->xd_cap, ng) && ensure(&c->xqs, &c->xqs_cap, ng) && ensure(&c->xsum, &c->xsum_cap, ng));
        for (int32_t t = 0; t < n_tokens; t++) {
            const size_t o = (size_t)t * (cols / FC_QK);
            fc_cpu_prepare_xq(bits, x + (size_t)t * cols, cols, c->qx + o * FC_QX_BYTES, c->xd + o, c->xsum + o, c->xqs + o);
        }
        job.int8 = 1;
        job.xsum = c->xsum;
    } else if (bits) {
        FC_ASSERT(ensure(&c->xp, &c->xp_cap, (size_t)n_tokens * cols));
        FC_ASSERT(ensure(&c->xsum, &c->xsum_cap, (size_t)n_tokens * (cols / FC_QK)));
        for (int32_t t = 0; t < n_tokens; t++) {
            fc_cpu_prepare_x(bits, x + (size_t)t * cols, cols, c->xp + (size_t)t * cols, c->xsum + (size_t)t * (cols / FC_QK));
        }
        job.x = c->xp;
        job.xsum = c->xsum;
    }
    if (!job.int8 && (n_tokens > 1 || !bits)) {
        size_t per = (size_t)4 * cols;
        if (c->deq_cap_per_thread < per) {
            free(c->deq);
            c->deq = fc_alloc_aligned(per * (size_t)c->n_threads * sizeof(float));
            FC_ASSERT(c->deq != NULL);
            c->deq_cap_per_thread = per;
        }
    }
    /* Small products are not worth waking the other threads for. */
    if ((int64_t)w->rows * cols * n_tokens < 32768 || c->n_threads == 1) {
        mm_worker(&job, 0, 1, 0);
    } else {
        /* several chunks per thread: a thread that gets descheduled leaves its share to the others */
        int32_t n_chunks = c->n_threads * 4;
        int32_t max_chunks = (w->rows + 15) / 16;
        fc_pool_run(be->pool, mm_worker, &job, n_chunks < max_chunks ? n_chunks : max_chunks);
    }
}

/*
 * Decode's batch of matrix-vector products (one token; x86 and the float levels): each distinct x prepared once,
 * then the rows of every product in one round of the pool, each product its share of the chunks by rows.
 */
struct mv_job {
    struct fc_matmul_item items[FC_MATMUL_BATCH_MAX];
    const float * xp[FC_MATMUL_BATCH_MAX], * xsum[FC_MATMUL_BATCH_MAX];
    const void * xv[FC_MATMUL_BATCH_MAX]; /* int8 x (dot_xv) or NULL (dot_q on xp) */
    int32_t chunk0[FC_MATMUL_BATCH_MAX + 1];
    int32_t n;
    const struct fc_cpu_kernels * k;
};

static void mv_rows(const struct mv_job * job, int32_t i, int64_t r0, int64_t r1) {
    const struct fc_matrix * w = job->items[i].w;
    const int32_t ng = w->cols / FC_QK;
    const int bi = fc_bits_index(fc_dtype_bits(w->type));
    if (job->xv[i] && job->k->dot_xv_rows[bi]) {
        job->k->dot_xv_rows[bi](w, r0, r1, job->xv[i], job->xsum[i], job->items[i].out);
        return;
    }
    if (job->xv[i]) {
        for (int64_t r = r0; r < r1; r++) {
            job->items[i].out[r] = job->k->dot_xv[bi](w->data + (size_t)r * w->row_bytes, w->scales + (size_t)r * ng,
                                                      w->biases + (size_t)r * ng, job->xv[i], job->xsum[i], ng);
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        job->items[i].out[r] = job->k->dot_q[bi](w->data + (size_t)r * w->row_bytes, w->scales + (size_t)r * ng,
                                                 w->biases + (size_t)r * ng, job->xp[i], job->xsum[i], ng);
    }
}

static void mv_worker(void * p, int32_t chunk, int32_t n_chunks, int32_t thread) {
    const struct mv_job * job = p;
    int32_t i = 0;
    while (i + 1 < job->n && chunk >= job->chunk0[i + 1]) i++;
    int64_t r0, r1;
    fc_split_range(job->items[i].w->rows, chunk - job->chunk0[i], job->chunk0[i + 1] - job->chunk0[i], 16, &r0, &r1);
    if (r0 < r1) mv_rows(job, i, r0, r1);
}

static int use_float_mv(const struct fc_cpu_kernels * k, const struct fc_matrix * w, int32_t n_tokens) {
    return n_tokens == 1 && fast_path(w) && fc_dtype_is_quantized(w->type) && !k->matmul_qx[fc_bits_index(fc_dtype_bits(w->type))];
}

static void cpu_matvec_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n) {
    struct cpu_ctx * c = be->ctx;
    struct mv_job job;
    job.n = n;
    job.k = c->k;
    size_t floats = 0, groups = 0, xv_bytes = 0;
    for (int32_t i = 0; i < n; i++) {
        floats += (size_t)items[i].w->cols, groups += (size_t)items[i].w->cols / FC_QK;
        if (c->k->dot_xv[fc_bits_index(fc_dtype_bits(items[i].w->type))]) xv_bytes += (c->k->xv_bytes(items[i].w->cols) + 63) / 64 * 64;
    }
    FC_ASSERT(ensure(&c->xp, &c->xp_cap, floats) && ensure(&c->xsum, &c->xsum_cap, groups));
    if (c->xv_cap < xv_bytes) {
        free(c->xv);
        c->xv = fc_alloc_aligned(xv_bytes);
        FC_ASSERT(c->xv != NULL);
        c->xv_cap = xv_bytes;
    }
    size_t fo = 0, go = 0, vo = 0;
    int64_t work = 0, rows = 0;
    for (int32_t i = 0; i < n; i++) {
        const struct fc_matrix * w = items[i].w;
        job.items[i] = items[i];
        int32_t same = -1; /* an earlier product of the same x, prepared the same way */
        for (int32_t j = 0; j < i && same < 0; j++) {
            if (items[j].x == items[i].x && items[j].w->cols == w->cols && fc_dtype_bits(items[j].w->type) == fc_dtype_bits(w->type)) same = j;
        }
        const int int8 = c->k->dot_xv[fc_bits_index(fc_dtype_bits(w->type))] != NULL;
        job.xv[i] = NULL;
        if (same >= 0) {
            job.xp[i] = job.xp[same];
            job.xsum[i] = job.xsum[same];
            job.xv[i] = job.xv[same];
        } else if (int8) {
            float * xs = c->xsum + go;
            c->k->prepare_xv(items[i].x, w->cols, c->xv + vo, xs);
            job.xv[i] = c->xv + vo;
            job.xp[i] = NULL;
            job.xsum[i] = xs;
            vo += (c->k->xv_bytes(w->cols) + 63) / 64 * 64;
            go += (size_t)w->cols / FC_QK;
        } else {
            float * xp = c->xp + fo, * xs = c->xsum + go;
            fc_cpu_prepare_x(fc_dtype_bits(w->type), items[i].x, w->cols, xp, xs);
            job.xp[i] = xp;
            job.xsum[i] = xs;
            fo += (size_t)w->cols;
            go += (size_t)w->cols / FC_QK;
        }
        work += (int64_t)w->rows * w->cols;
        rows += w->rows;
    }
    if (work < 32768 || c->n_threads == 1) {
        for (int32_t i = 0; i < n; i++) mv_rows(&job, i, 0, items[i].w->rows);
        return;
    }
    const int64_t total = c->n_threads * 4 > n ? c->n_threads * 4 : n;
    job.chunk0[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t k = (items[i].w->rows * total + rows / 2) / rows;
        const int64_t most = (items[i].w->rows + 15) / 16;
        k = k < 1 ? 1 : k > most ? most : k;
        job.chunk0[i + 1] = job.chunk0[i] + (int32_t)k;
    }
    fc_pool_run(be->pool, mv_worker, &job, job.chunk0[n]);
}

/* A batch of products: the integer path's products of one x (the same bits) share one quantized x and one round
   of the pool; decode's matrix-vector products share one round; the rest go one by one. */
static void cpu_matmul_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n_items, int32_t n_tokens) {
    struct cpu_ctx * c = be->ctx;
    const struct fc_matrix * group[FC_MATMUL_BATCH_MAX];
    float * gout[FC_MATMUL_BATCH_MAX];
    struct fc_matmul_item mv[FC_MATMUL_BATCH_MAX];
    int32_t n_mv = 0;
    int done[FC_MATMUL_BATCH_MAX] = { 0 };
    FC_ASSERT(n_items <= FC_MATMUL_BATCH_MAX);
    for (int32_t i = 0; i < n_items; i++) {
        if (done[i]) continue;
        const struct fc_matrix * w = items[i].w;
        if (use_float_mv(c->k, w, n_tokens)) {
            mv[n_mv++] = items[i];
            continue;
        }
        if (!use_int8(c->k, w, n_tokens)) {
            cpu_matmul(be, w, items[i].x, items[i].out, n_tokens);
            continue;
        }
        int32_t n = 0;
        for (int32_t j = i; j < n_items; j++) {
            const struct fc_matrix * v = items[j].w;
            if (!done[j] && items[j].x == items[i].x && use_int8(c->k, v, n_tokens) && v->type == w->type && v->cols == w->cols) {
                group[n] = v;
                gout[n++] = items[j].out;
                done[j] = 1;
            }
        }
        cpu_matmul_int8(be, group, gout, n, items[i].x, n_tokens);
    }
    if (n_mv == 1) cpu_matmul(be, mv[0].w, mv[0].x, mv[0].out, 1);
    else if (n_mv > 1) cpu_matvec_batch(be, mv, n_mv);
}

static void cpu_free(struct fc_backend * be) {
    struct cpu_ctx * c = be->ctx;
    if (!c) return;
    free(c->xp);
    free(c->xsum);
    free(c->deq);
    free(c->xq);
    free(c->qx);
    free(c->xd);
    free(c->xqs);
    free(c->res);
    free(c->xv);
    free(c);
    be->ctx = NULL;
}

static const char * cpu_describe(struct fc_backend * be) {
    struct cpu_ctx * c = be->ctx;
    return c->k->name;
}

static void cpu_delta_rule(struct fc_backend * be, float * S, int32_t dk, int32_t dv, int32_t n, const float * q, const float * k,
                           size_t qk_stride, const float * v, size_t v_stride, const float * beta, const float * decay, float * o,
                           size_t o_stride) {
    struct cpu_ctx * c = be->ctx;
    fc_cpu_delta_rule(c->k, S, dk, dv, n, q, k, qk_stride, v, v_stride, beta, decay, o, o_stride);
}

static const struct fc_backend_ops cpu_ops = {
    .name = "cpu",
    .matmul = cpu_matmul,
    .matmul_batch = cpu_matmul_batch,
    .delta_rule = cpu_delta_rule,
    .free = cpu_free,
    .describe = cpu_describe,
};

/* kernels NULL = the default level; "cpu:N" forces level N, "cpu:NAME" a kernel set by name (benchmarks, verify). */
enum fc_status fc_backend_cpu_init(struct fc_backend * be, struct fc_pool * pool, const char * kernels, struct fc_error * err) {
    const struct fc_cpu_kernels * k = kernels ? fc_cpu_kernels_by_name(kernels) : fc_cpu_kernels_best();
    if (!k) {
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "CPU kernels '%s' are not supported on this CPU (this one has: %s)", kernels,
                            fc_cpu_kernels_list());
    }
    struct cpu_ctx * c = fc_xcalloc(1, sizeof *c);
    c->k = k;
    c->n_threads = fc_pool_size(pool);
    be->ops = &cpu_ops;
    be->ctx = c;
    be->pool = pool;
    return FC_STATUS_OK;
}
