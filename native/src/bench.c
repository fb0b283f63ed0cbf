/*
 * Benchmarks: one expert (run, bench), kernels against the reference (verify), one MoE layer (moe,
 * moebench), the whole model for one token (full, fullbench), and synthetic single-core kernel
 * throughput (kernels). Each prints time per op and GB/s of weights consumed; model-level figures are
 * printed beside both ceilings: the kernel one (n_threads x single-core kernel GB/s) and memory bandwidth.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "nn-math.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "sampler.h"
#include "snapshot.h"

static uint64_t rng_state = 0x1234567ull;

static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static float rndf(void) {
    return (float)rnd() / 2147483648.0f - 1.0f;
}

static void fill_random(float * x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = rndf();
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* A random quantized matrix in one allocation (codes, scales, biases). */
struct synth {
    struct fc_matrix m;
    uint8_t * mem;
};

static int synth_init(struct synth * s, int bits, int32_t rows, int32_t cols) {
    const int32_t ng = cols / 64;
    const size_t code_bytes = (size_t)rows * cols * bits / 8, sb = (size_t)rows * ng * 2;
    s->mem = fc_alloc_aligned(code_bytes + 2 * sb + 64);
    if (!s->mem) return 0;
    for (size_t i = 0; i < code_bytes; i++) s->mem[i] = (uint8_t)rnd();
    uint16_t * sc = (uint16_t *)(void *)(s->mem + code_bytes);
    uint16_t * bi = sc + (size_t)rows * ng;
    for (size_t i = 0; i < (size_t)rows * ng; i++) {
        sc[i] = f32_to_bf16(rndf() * 0.05f);
        bi[i] = f32_to_bf16(rndf() * 0.2f);
    }
    enum fc_dtype t = bits == 2 ? FC_DTYPE_Q2 : bits == 4 ? FC_DTYPE_Q4 : FC_DTYPE_Q8;
    fc_matrix_init(&s->m, "synthetic", t, rows, cols, 64, s->mem, (uint8_t *)sc, (uint8_t *)bi, NULL);
    return 1;
}

/* Single-core GB/s of kernel level k on a bits-wide [rows, cols] matrix (bytes = codes + scales + biases). */
static double kernel_gbps(const struct fc_cpu_kernels * k, int bits, int32_t rows, int32_t cols, double min_ms) {
    struct synth s;
    if (!synth_init(&s, bits, rows, cols)) return 0.0;
    float * x = fc_alloc_aligned((size_t)cols * 4), * xp = fc_alloc_aligned((size_t)cols * 4);
    float * xs = fc_alloc_aligned((size_t)cols / 64 * 4 + 4);
    const int32_t ng = cols / 64;
    /* int8-activation sets: x prepared once per matvec (as the backend does), then matmul_qx over all rows */
    int8_t * xq = fc_alloc_aligned((size_t)ng * FC_QX_BYTES);
    float * xd = fc_alloc_aligned((size_t)ng * 4 + 4), * xqs = fc_alloc_aligned((size_t)ng * 4 + 4);
    float * out = fc_alloc_aligned((size_t)rows * 4);
    void * xv = k->xv_bytes ? fc_alloc_aligned(k->xv_bytes(cols) + 64) : NULL;
    fill_random(x, (size_t)cols);
    fc_cpu_prepare_x(bits, x, cols, xp, xs);
    const int bi = fc_bits_index(bits);
    volatile float sink = 0.0f;
    double best = 1e30;
    int reps = 0;
    double t_start = fc_time_ms();
    do {
        double t0 = fc_time_ms();
        float acc = 0.0f;
        if (k->dot_xv[bi]) { /* decode on int8 x: prepared once per matvec, as the backend does */
            k->prepare_xv(x, cols, xv, xs);
            if (k->dot_xv_rows[bi]) {
                k->dot_xv_rows[bi](&s.m, 0, rows, xv, xs, out);
                acc = out[rows - 1];
            } else for (int32_t r = 0; r < rows; r++) {
                acc += k->dot_xv[bi](s.m.data + (size_t)r * s.m.row_bytes, s.m.scales + (size_t)r * ng, s.m.biases + (size_t)r * ng, xv, xs, ng);
            }
        } else if (k->matmul_qx[bi]) {
            fc_cpu_prepare_xq(bits, x, cols, xq, xd, xs, xqs);
            k->matmul_qx[bi](s.m.data, s.m.row_bytes, s.m.scales, s.m.biases, rows, ng, xq, xd, xs, xqs, 1, out, (size_t)rows);
            acc = out[rows - 1];
        } else {
            for (int32_t r = 0; r < rows; r++) {
                acc += k->dot_q[bi](s.m.data + (size_t)r * s.m.row_bytes, s.m.scales + (size_t)r * ng, s.m.biases + (size_t)r * ng, xp, xs, ng);
            }
        }
        sink += acc;
        double dt = fc_time_ms() - t0;
        if (dt < best) best = dt;
        reps++;
    } while (fc_time_ms() - t_start < min_ms || reps < 3);
    (void)sink;
    double bytes = (double)fc_matrix_bytes(&s.m);
    free(s.mem); free(x); free(xp); free(xs); free(xq); free(xd); free(xqs); free(out); free(xv);
    return bytes / (best / 1e3) / 1e9;
}

/*
 * Single-core integer path of level k as the backend runs it (two levels: x and its residual): GMAC/s
 * (weights x tokens multiply-adds of the product per second) of a bits-wide [rows, cols] matrix times
 * n_tokens tokens, quantization of the activations included; 0 when k has none.
 */
static double kernel_int8_gmacs(const struct fc_cpu_kernels * k, int bits, int32_t rows, int32_t cols, int32_t n_tokens, double min_ms) {
    if (!k->gemm_q) return 0.0;
    struct synth s;
    if (!synth_init(&s, bits, rows, cols)) return 0.0;
    float * x = fc_alloc_aligned((size_t)n_tokens * cols * 4), * out = fc_alloc_aligned((size_t)n_tokens * rows * 4);
    void * xq = fc_alloc_aligned(k->xq_bytes(n_tokens, cols)), * xq2 = fc_alloc_aligned(k->xq_bytes(n_tokens, cols));
    float * res = fc_alloc_aligned((size_t)n_tokens * cols * 4);
    fill_random(x, (size_t)n_tokens * cols);
    double best = 1e30;
    int reps = 0;
    double t_start = fc_time_ms();
    do {
        double t0 = fc_time_ms();
        k->quantize_x(bits, x, n_tokens, cols, 0, n_tokens, 0, cols / FC_QK, xq, res);
        k->quantize_x(bits, res, n_tokens, cols, 0, n_tokens, 0, cols / FC_QK, xq2, NULL);
        if (k->gemm2_q[fc_bits_index(bits)]) { /* both levels in one pass, as the backend runs them */
            k->gemm2_q[fc_bits_index(bits)](&s.m, 0, rows, xq, xq2, n_tokens, out, (size_t)rows);
        } else {
            k->gemm_q(&s.m, 0, rows, xq, n_tokens, out, (size_t)rows, 0);
            k->gemm_q(&s.m, 0, rows, xq2, n_tokens, out, (size_t)rows, 1);
        }
        double dt = fc_time_ms() - t0;
        if (dt < best) best = dt;
        reps++;
    } while (fc_time_ms() - t_start < min_ms || reps < 3);
    free(s.mem); free(x); free(out); free(xq); free(xq2); free(res);
    return (double)rows * cols * n_tokens / (best / 1e3) / 1e9;
}

/* memcpy bandwidth over 256 MB buffers (GB/s of bytes copied), best of 3. */
static double memcpy_gbps(void) {
    const size_t n = (size_t)256 << 20;
    char * a = fc_alloc_aligned(n), * b = fc_alloc_aligned(n);
    if (!a || !b) { free(a); free(b); return 0.0; }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int i = 0; i < 4; i++) {
        double t0 = fc_time_ms();
        memcpy(b, a, n);
        double dt = fc_time_ms() - t0;
        if (i > 0 && dt < best) best = dt;
    }
    volatile char sink = b[n / 2];
    (void)sink;
    free(a); free(b);
    return (double)n / (best / 1e3) / 1e9;
}

/* ===== memory read bandwidth (the decode ceiling) and the clock ===== */

typedef uint64_t fc_v4u64 __attribute__((vector_size(32)));

struct rbw_thread {
    const fc_v4u64 * p;
    size_t n;               /* vectors */
    int passes;
    atomic_int * go;        /* 0 wait, 1 run, -1 exit */
    atomic_int * done;
    int gen;                /* the run this thread is at */
    uint64_t sum;
    double t_end;
};

/* Sum the buffer `passes` times per run (a read-only stream, as a matvec over weights is), four independent sums. */
static void * rbw_main(void * arg) {
    struct rbw_thread * t = arg;
    for (;;) {
        int g;
        while ((g = atomic_load(t->go)) == t->gen) sched_yield();
        if (g < 0) break;
        t->gen = g;
        fc_v4u64 a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
        for (int r = 0; r < t->passes; r++) {
            for (size_t i = 0; i + 4 <= t->n; i += 4) {
                a += t->p[i];
                b += t->p[i + 1];
                c += t->p[i + 2];
                d += t->p[i + 3];
            }
        }
        fc_v4u64 s = a + b + c + d;
        t->sum += s[0] + s[1] + s[2] + s[3];
        t->t_end = fc_time_ms();
        atomic_fetch_add(t->done, 1);
    }
    return NULL;
}

/*
 * Read bandwidth (GB/s of bytes read) of `threads` threads each streaming its own 64 MiB buffer at once (far
 * beyond the last-level cache): `runs` timed runs after one warm-up, median / min / max. 0 if threads cannot start.
 */
int fc_bench_read_bandwidth(int threads, int runs, double * median, double * lo, double * hi) {
    const size_t bytes = (size_t)64 << 20;
    const int passes = 3;
    struct rbw_thread * ts = fc_xcalloc((size_t)threads, sizeof *ts);
    pthread_t * th = fc_xcalloc((size_t)threads, sizeof *th);
    atomic_int go = 0, done = 0;
    double * rates = fc_xcalloc((size_t)runs, sizeof *rates);
    int started = 0, ok = 1;
    for (int i = 0; i < threads && ok; i++) {
        uint8_t * buf = fc_alloc_aligned(bytes);
        if (!buf) { ok = 0; break; }
        memset(buf, (int)(i + 1), bytes); /* first touch before any timing */
        ts[i] = (struct rbw_thread){ (const fc_v4u64 *)(void *)buf, bytes / sizeof(fc_v4u64), passes, &go, &done, 0, 0, 0.0 };
        if (pthread_create(&th[i], NULL, rbw_main, &ts[i]) != 0) { free(buf); ok = 0; break; }
        started++;
    }
    for (int r = -1; ok && r < runs; r++) {
        atomic_store(&done, 0);
        const double t0 = fc_time_ms();
        atomic_store(&go, r + 2);
        while (atomic_load(&done) < started) sched_yield();
        double t1 = 0.0;
        for (int i = 0; i < started; i++) t1 = ts[i].t_end > t1 ? ts[i].t_end : t1;
        if (r >= 0) rates[r] = (double)bytes * passes * started / ((t1 - t0) / 1e3) / 1e9;
    }
    atomic_store(&go, -1);
    volatile uint64_t sink = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        sink += ts[i].sum;
        free((void *)ts[i].p);
    }
    (void)sink;
    if (ok) {
        for (int i = 1; i < runs; i++) /* insertion sort: a handful of runs */
            for (int j = i; j > 0 && rates[j] < rates[j - 1]; j--) { double x = rates[j]; rates[j] = rates[j - 1]; rates[j - 1] = x; }
        *median = runs % 2 ? rates[runs / 2] : (rates[runs / 2 - 1] + rates[runs / 2]) / 2;
        *lo = rates[0];
        *hi = rates[runs - 1];
    }
    free(ts); free(th); free(rates);
    return ok;
}

/* The read bandwidth with `threads` threads, measured once per process (the ceilings of every model figure). */
static double read_gbps_cached(int threads) {
    static int for_threads = 0;
    static double gbps = 0.0;
    if (for_threads != threads) {
        double lo, hi;
        if (!fc_bench_read_bandwidth(threads, 5, &gbps, &lo, &hi)) gbps = 0.0;
        for_threads = threads;
    }
    return gbps;
}

/*
 * The core clock in GHz, measured: a chain of dependent integer adds runs one per cycle on every x86-64 and arm64
 * core, so adds per nanosecond is the clock (turbo included). Best of 23 runs of ~3 ms (a busy machine
 * preempts some); 0 on other CPUs.
 */
double fc_bench_clock_ghz(void) {
#if defined(__x86_64__) || defined(__aarch64__)
    double best = 0.0;
    for (int r = 0; r < 24; r++) {
        uint64_t x = (uint64_t)r;
        const long iters = 500000; /* ~3 ms: short runs, so one of them runs without being preempted */
        double t0 = fc_time_ms();
        for (long i = 0; i < iters; i++) {
#if defined(__x86_64__)
#define FC_ADD1 "add $1, %0\n\t"
#else
#define FC_ADD1 "add %0, %0, #1\n\t"
#endif
            __asm__ volatile(FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1
                             FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 FC_ADD1 : "+r"(x));
#undef FC_ADD1
        }
        double dt = fc_time_ms() - t0;
        double ghz = (double)iters * 16 / (dt * 1e6);
        if (r > 0 && ghz > best) best = ghz; /* run 0 ramps the clock up */
    }
    return best;
#else
    return 0.0;
#endif
}

/* membw: read bandwidth with 1..N threads (N = --threads, default all CPUs), and the clock. */
static int bench_membw(const struct fc_bench_options * opt) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = opt->threads > 0 ? opt->threads : (ncpu > 0 ? (int)ncpu : 1);
    int runs = opt->iters > 0 ? opt->iters : 7;
    if (runs < 2) runs = 2;
    if (opt->json) printf("{\"mode\":\"membw\",\"buffer_mib_per_thread\":64,\"runs\":%d,\"results\":[", runs);
    for (int t = 1; t <= n; t++) {
        double med = 0, lo = 0, hi = 0;
        if (!fc_bench_read_bandwidth(t, runs, &med, &lo, &hi)) { fprintf(stderr, "flashchat-engine: membw: cannot start %d threads\n", t); return 1; }
        if (opt->json) printf("%s{\"threads\":%d,\"read_gbps\":%.3f,\"min\":%.3f,\"max\":%.3f}", t > 1 ? "," : "", t, med, lo, hi);
        else printf("membw: %d thread(s) reading 64 MiB each: %.2f GB/s median (%.2f-%.2f over %d runs)\n", t, med, lo, hi, runs);
    }
    double ghz = fc_bench_clock_ghz();
    if (opt->json) printf("],\"clock_ghz\":%.3f}\n", ghz);
    else if (ghz > 0) printf("clock: %.2f GHz (a chain of dependent adds, one per cycle)\n", ghz);
    return 0;
}

/* User + system CPU time of the whole process (all threads), ms. */
static double cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double g_cpu_ms_per_op = 0.0; /* set by the timed loops, printed beside the wall time */

/* ===== verify ===== */

static int verify_matrix(struct fc_engine * e, const char * name, const struct fc_matrix * m, int json, int * first) {
    const int32_t ns[2] = { 1, 5 };
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        int32_t n = ns[i];
        float * x = fc_alloc_aligned((size_t)n * m->cols * 4);
        float * ref = fc_alloc_aligned((size_t)n * m->rows * 4);
        float * got = fc_alloc_aligned((size_t)n * m->rows * 4);
        fill_random(x, (size_t)n * m->cols);
        fc_matmul_reference(m, x, ref, n);
        e->be.ops->matmul(&e->be, m, x, got, n);
        const struct fc_cpu_kernels * k = e->be.ops->describe ? fc_cpu_kernels_by_name(e->be.ops->describe(&e->be)) : NULL;
        double err = fc_cpu_product_error(k, m, x, got, ref, n), tol = fc_cpu_product_tolerance(k, m);
        int pass = err < tol;
        ok &= pass;
        if (json) {
            printf("%s{\"name\":\"%s\",\"rows\":%d,\"cols\":%d,\"bits\":%d,\"tokens\":%d,\"max_rel_err\":%.3g,\"tolerance\":%.0e,\"ok\":%s}",
                   *first ? "" : ",", name, m->rows, m->cols, fc_dtype_bits(m->type), n, err, tol, pass ? "true" : "false");
            *first = 0;
        } else {
            printf("verify %-28s [%5d x %5d] %2d-bit tokens=%d  error %.3g (< %.0e)  %s\n", name, m->rows, m->cols,
                   fc_dtype_bits(m->type), n, err, tol, pass ? "ok" : "FAILED");
        }
        free(x); free(ref); free(got);
    }
    return ok;
}

static int bench_verify(struct fc_engine * e, const struct fc_bench_options * opt) {
    const struct fc_model * m = &e->model;
    const struct fc_layer * ly = &m->layers[opt->layer];
    int ok = 1, first = 1;
    if (opt->json) printf("{\"mode\":\"verify\",\"backend\":\"%s\",\"kernels\":\"%s\",\"results\":[", e->backend_name,
                          e->be.ops->describe ? e->be.ops->describe(&e->be) : "");
    else printf("verify: backend %s (%s) against the scalar reference, layer %d\n", e->backend_name,
                e->be.ops->describe ? e->be.ops->describe(&e->be) : "", opt->layer);
    ok &= verify_matrix(e, "lm_head", &m->lm_head, opt->json, &first);
    ok &= verify_matrix(e, "router", &ly->router, opt->json, &first);
    if (ly->has_shared) ok &= verify_matrix(e, "shared_expert.gate_proj", &ly->sh_gate, opt->json, &first);
    if (ly->is_full) ok &= verify_matrix(e, "self_attn.q_proj", &ly->q_proj, opt->json, &first);
    else ok &= verify_matrix(e, "linear_attn.in_proj_qkv", &ly->in_qkv, opt->json, &first);
    int32_t id = 0;
    fc_experts_read_start(&e->experts, opt->layer, &id, 1, e->expert_bufs, 0);
    struct fc_error err;
    if (fc_experts_read_wait(&e->experts, &err) != FC_STATUS_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    struct fc_matrix g, u, d;
    fc_experts_view(&e->experts, e->experts.slot_data[0], &g, &u, &d);
    ok &= verify_matrix(e, "expert0.gate_proj", &g, opt->json, &first);
    ok &= verify_matrix(e, "expert0.down_proj", &d, opt->json, &first);
    /* every kernel level this CPU has (and the portable int8 set), on synthetic odd-sized matrices of every bit width */
    for (int level = 0; level <= FC_CPU_MAX_LEVEL + 1; level++) {
        const struct fc_cpu_kernels * k = level <= FC_CPU_MAX_LEVEL ? fc_cpu_kernels_get(level) : &fc_cpu_kernels_generic_int8;
        if (!k) continue;
        struct fc_backend be;
        char name[40];
        snprintf(name, sizeof name, "cpu:%s", k->name);
        if (fc_backend_init(&be, name, e->pool, NULL) != FC_STATUS_OK) continue;
        struct fc_backend saved = e->be;
        e->be = be;
        for (int bits = 2; bits <= 8; bits *= 2) {
            struct synth s;
            if (!synth_init(&s, bits, 37, 320)) continue;
            char nm[64];
            snprintf(nm, sizeof nm, "synthetic/%s", k->name);
            ok &= verify_matrix(e, nm, &s.m, opt->json, &first);
            free(s.mem);
        }
        e->be = saved;
        fc_backend_free(&be);
    }
    /* a GPU backend: op by op against the CPU layer backend (forward.c) */
    ok &= fc_forward_verify(e, opt->json, &first);
    if (opt->json) printf("],\"ok\":%s}\n", ok ? "true" : "false");
    else printf("verify: %s\n", ok ? "all ok" : "FAILED");
    return ok ? 0 : 1;
}

/* ===== one expert ===== */

static int bench_expert(struct fc_engine * e, const struct fc_bench_options * opt, int iters) {
    const int32_t H = e->model.cfg.hidden_size;
    float * x = fc_alloc_aligned((size_t)H * 4), * y = fc_alloc_aligned((size_t)H * 4);
    float * g = fc_alloc_aligned((size_t)e->experts.inter * 4), * u = fc_alloc_aligned((size_t)e->experts.inter * 4);
    fill_random(x, (size_t)H);
    struct fc_error err;
    struct fc_matrix mg, mu, md;
    double read_ms = 0.0, compute_best = 1e30, compute_total = 0.0;
    for (int it = 0; it < iters + 1; it++) {
        int32_t id = it % e->model.cfg.n_experts;
        double t0 = fc_time_ms();
        fc_experts_read_start(&e->experts, opt->layer, &id, 1, e->expert_bufs, 0);
        if (fc_experts_read_wait(&e->experts, &err) != FC_STATUS_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        double t1 = fc_time_ms();
        fc_experts_view(&e->experts, e->experts.slot_data[0], &mg, &mu, &md);
        e->be.ops->matmul(&e->be, &mg, x, g, 1);
        e->be.ops->matmul(&e->be, &mu, x, u, 1);
        for (int32_t i = 0; i < mg.rows; i++) g[i] = fc_silu(g[i]) * u[i];
        e->be.ops->matmul(&e->be, &md, g, y, 1);
        double t2 = fc_time_ms();
        if (it == 0 && iters > 1) continue; /* warm-up */
        read_ms += t1 - t0;
        compute_total += t2 - t1;
        if (t2 - t1 < compute_best) compute_best = t2 - t1;
    }
    int n = iters > 1 ? iters : 1;
    double bytes = (double)(fc_matrix_bytes(&mg) + fc_matrix_bytes(&mu) + fc_matrix_bytes(&md));
    double ms = compute_total / n;
    if (opt->json) {
        printf("{\"mode\":\"%s\",\"layer\":%d,\"iters\":%d,\"expert_bytes\":%.0f,\"bits\":%d,\"read_ms\":%.4f,\"compute_ms\":%.4f,"
               "\"best_compute_ms\":%.4f,\"gbps\":%.3f,\"read_gbps\":%.3f,\"threads\":%d}\n",
               opt->mode, opt->layer, n, bytes, e->experts.bits, read_ms / n, ms, compute_best, bytes / (ms / 1e3) / 1e9,
               bytes / (read_ms / n / 1e3) / 1e9, e->n_threads);
    } else {
        printf("%s: one expert of layer %d (%d-bit, %.2f MB), %d iteration(s), %d thread(s)\n", opt->mode, opt->layer,
               e->experts.bits, bytes / 1e6, n, e->n_threads);
        printf("  read    %.4f ms/op  %.2f GB/s (pread)\n", read_ms / n, bytes / (read_ms / n / 1e3) / 1e9);
        printf("  compute %.4f ms/op  %.2f GB/s (best %.4f ms)\n", ms, bytes / (ms / 1e3) / 1e9, compute_best);
    }
    free(x); free(y); free(g); free(u);
    return 0;
}

/* ===== MoE layer / whole model ===== */

/*
 * Print a model-level figure beside its ceilings. The kernel ceiling: the single-core matvec throughput
 * (measured here, from memory) for the dense bytes at the dense bit width and the expert bytes at the
 * experts' width, times the number of threads. The memory ceiling: the read bandwidth of as many threads as
 * the engine computes with (a read-only stream, like decode). `extra_json` (may be NULL) is appended to the JSON.
 */
static void print_ceilings(struct fc_engine * e, const struct fc_bench_options * opt, double dense_bytes, double expert_bytes,
                           double ms_per_op, const char * what, const char * extra_json) {
    /* the kernels the engine runs (a forced --backend cpu:N too); the default set for other backends */
    const struct fc_cpu_kernels * k = e->be.ops->describe ? fc_cpu_kernels_by_name(e->be.ops->describe(&e->be)) : NULL;
    if (!k) k = fc_cpu_kernels_best();
    const double bytes_per_op = dense_bytes + expert_bytes;
    const int dense_bits = fc_dtype_is_quantized(e->model.lm_head.type) ? fc_dtype_bits(e->model.lm_head.type) : 4;
    const int bits = e->experts.bits;
    const double dense_gbps = kernel_gbps(k, dense_bits, 8192, 8192, 300.0); /* from memory: 32 MB+ at 4 bits, beyond the caches */
    const double expert_gbps = bits == dense_bits ? dense_gbps : kernel_gbps(k, bits, 8192, 8192, 300.0);
    const double single_core_ms = (dense_bytes / dense_gbps + expert_bytes / expert_gbps) / 1e6;
    const double core_gbps = bytes_per_op / (single_core_ms / 1e3) / 1e9; /* effective, over the mix of widths */
    const double mem_gbps = read_gbps_cached(e->n_threads);
    double gbps = bytes_per_op / (ms_per_op / 1e3) / 1e9;
    double kernel_ceiling = core_gbps * e->n_threads;
    if (opt->json) {
        printf("{\"mode\":\"%s\",\"what\":\"%s\",\"threads\":%d,\"kernels\":\"%s\",\"bytes_per_op\":%.0f,\"ms_per_op\":%.4f,"
               "\"ops_per_s\":%.4f,\"gbps\":%.3f,\"kernel_gbps_per_core\":%.3f,\"kernel_ceiling_gbps\":%.3f,\"memory_read_gbps\":%.3f,"
               "\"fraction_of_kernel_ceiling\":%.3f,\"fraction_of_memory_ceiling\":%.3f,\"cpu_ms_per_op\":%.4f,"
               "\"single_core_kernel_ms_per_op\":%.4f%s%s}\n",
               opt->mode, what, e->n_threads, k->name, bytes_per_op, ms_per_op, 1e3 / ms_per_op, gbps, core_gbps, kernel_ceiling,
               mem_gbps, gbps / kernel_ceiling, mem_gbps > 0 ? gbps / mem_gbps : 0.0, g_cpu_ms_per_op, bytes_per_op / (core_gbps * 1e9) * 1e3,
               extra_json ? "," : "", extra_json ? extra_json : "");
    } else {
        printf("%s: %s\n", opt->mode, what);
        printf("  %.3f ms/op (%.2f op/s), %.2f MB/op, %.2f GB/s, %d thread(s), kernels %s\n", ms_per_op, 1e3 / ms_per_op,
               bytes_per_op / 1e6, gbps, e->n_threads, k->name);
        printf("  kernel ceiling: %.2f GB/s (%d x %.2f GB/s single-core matvec: %d-bit dense %.2f, %d-bit experts %.2f) -> %.2f op/s; "
               "achieved %.0f%%\n",
               kernel_ceiling, e->n_threads, core_gbps, dense_bits, dense_gbps, bits, expert_gbps, kernel_ceiling * 1e9 / bytes_per_op,
               100.0 * gbps / kernel_ceiling);
        if (mem_gbps > 0) {
            printf("  memory ceiling: %.2f GB/s (read by %d thread(s)) -> %.2f op/s; achieved %.0f%%\n", mem_gbps, e->n_threads,
                   mem_gbps * 1e9 / bytes_per_op, 100.0 * gbps / mem_gbps);
        }
        printf("  CPU time: %.3f ms/op over all threads (the single-core kernel alone would need %.3f ms)\n", g_cpu_ms_per_op,
               bytes_per_op / (core_gbps * 1e9) * 1e3);
    }
}

static double layer_dense_bytes(const struct fc_layer * ly) {
    double b = (double)(fc_matrix_bytes(&ly->router));
    if (ly->has_shared) {
        b += (double)(fc_matrix_bytes(&ly->sh_gate) + fc_matrix_bytes(&ly->sh_up) + fc_matrix_bytes(&ly->sh_down) +
                      fc_matrix_bytes(&ly->sh_expert_gate));
    }
    return b;
}

static double attn_bytes(const struct fc_layer * ly) {
    if (ly->is_full) {
        return (double)(fc_matrix_bytes(&ly->q_proj) + fc_matrix_bytes(&ly->k_proj) + fc_matrix_bytes(&ly->v_proj) +
                        fc_matrix_bytes(&ly->o_proj));
    }
    return (double)(fc_matrix_bytes(&ly->in_qkv) + fc_matrix_bytes(&ly->in_z) + fc_matrix_bytes(&ly->in_b) +
                    fc_matrix_bytes(&ly->in_a) + fc_matrix_bytes(&ly->out_proj));
}

static int bench_moe(struct fc_engine * e, const struct fc_bench_options * opt, int iters) {
    const int32_t H = e->model.cfg.hidden_size;
    struct fc_error err;
    double total = 0.0, cpu = 0.0;
    const double io0 = e->experts.io_wait_ms;
    const int warm = iters > 1 ? 1 : 0; /* one warm-up pass unless a single run was asked for */
    for (int it = 0; it < warm + iters; it++) {
        fill_random(e->s.xn, (size_t)H); /* a new input each time: new experts */
        double t0 = fc_time_ms(), c0 = cpu_ms();
        if (fc_moe_forward(e, opt->layer, 1, &err) != FC_STATUS_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        if (it >= warm) { total += fc_time_ms() - t0; cpu += cpu_ms() - c0; }
    }
    g_cpu_ms_per_op = cpu / iters;
    int n = iters;
    const struct fc_layer * ly = &e->model.layers[opt->layer];
    double dense = layer_dense_bytes(ly), experts = (double)e->n_active * (double)e->experts.expert_bytes;
    char what[160];
    snprintf(what, sizeof what, "one MoE layer (layer %d, K=%d of %d experts, %d-bit), %d iteration(s), io wait %.3f ms/op",
             opt->layer, e->n_active, e->model.cfg.n_experts, e->experts.bits, n, (e->experts.io_wait_ms - io0) / (n + warm));
    print_ceilings(e, opt, dense, experts, total / n, what, NULL);
    return 0;
}

/* Per-layer timestamps of one forward pass (the engine's on_layer hook). */
static struct {
    double * t;   /* [n_layers] time at the end of each layer */
} g_layers;

static void note_layer(void * ctx, int32_t layer) {
    (void)ctx;
    g_layers.t[layer] = fc_time_ms();
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n values (sorted in place), linear between neighbours. */
static double quantile(double * v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/*
 * Decode: `iters` forward passes of one token each (after two warm-up passes unless iters == 1), each timed,
 * so tok/s = 1000 / median ms per pass; per-layer time (on_layer) and bytes, so the figures extrapolate to
 * the full model; the experts' I/O (reads, bytes, what the page cache held before each read).
 */
/*
 * Where prefill and decode time goes: the backend's matmul is wrapped by a timer that files each product under
 * the kind of matrix it is (recognised by address: the model's own matrices; anything else is a routed expert),
 * with its multiply-adds and the bytes of weights it reads.
 */
enum { PK_ATTN, PK_ROUTER, PK_SHARED, PK_EXPERT, PK_HEAD, PK_N };
static const char * const pk_names[PK_N] = { "attn_proj", "router", "shared_expert", "routed_experts", "lm_head" };
static struct {
    const struct fc_backend_ops * inner;
    const struct fc_model * m;
    double ms[PK_N];
    double macs[PK_N];
    double bytes[PK_N];
} g_prof;

static int pk_of(const struct fc_matrix * w) {
    const struct fc_model * m = g_prof.m;
    if (w == &m->lm_head) return PK_HEAD;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        const struct fc_layer * ly = &m->layers[l];
        if (w == &ly->router) return PK_ROUTER;
        if (w == &ly->sh_gate || w == &ly->sh_up || w == &ly->sh_down || w == &ly->sh_expert_gate) return PK_SHARED;
        if (w == &ly->in_qkv || w == &ly->in_z || w == &ly->in_b || w == &ly->in_a || w == &ly->out_proj || w == &ly->q_proj ||
            w == &ly->k_proj || w == &ly->v_proj || w == &ly->o_proj) {
            return PK_ATTN;
        }
    }
    return PK_EXPERT;
}

static void timed_matmul(struct fc_backend * be, const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens) {
    double t0 = fc_time_ms();
    g_prof.inner->matmul(be, w, x, out, n_tokens);
    int k = pk_of(w);
    g_prof.ms[k] += fc_time_ms() - t0;
    g_prof.macs[k] += (double)w->rows * w->cols * n_tokens;
    g_prof.bytes[k] += (double)fc_matrix_bytes(w);
}

/* Products run as one batch: its time is filed by each product's share of the multiply-adds. */
static void timed_matmul_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n_items, int32_t n_tokens) {
    double t0 = fc_time_ms(), all = 0.0;
    g_prof.inner->matmul_batch(be, items, n_items, n_tokens);
    const double dt = fc_time_ms() - t0;
    for (int32_t i = 0; i < n_items; i++) all += (double)items[i].w->rows * items[i].w->cols * n_tokens;
    for (int32_t i = 0; i < n_items; i++) {
        const double macs = (double)items[i].w->rows * items[i].w->cols * n_tokens;
        const int k = pk_of(items[i].w);
        g_prof.ms[k] += all > 0 ? dt * macs / all : 0.0;
        g_prof.macs[k] += macs;
        g_prof.bytes[k] += (double)fc_matrix_bytes(items[i].w);
    }
}

static void prof_reset(void) {
    memset(g_prof.ms, 0, sizeof g_prof.ms);
    memset(g_prof.macs, 0, sizeof g_prof.macs);
    memset(g_prof.bytes, 0, sizeof g_prof.bytes);
}

/* The routed experts of a batch, run in parallel on per-thread backends (moe.c): timed there, filed here. */
static void timed_par_experts(double ms, double macs, double bytes) {
    g_prof.ms[PK_EXPERT] += ms;
    g_prof.macs[PK_EXPERT] += macs;
    g_prof.bytes[PK_EXPERT] += bytes;
}

/* Wrap e's backend ops with the timers above (ops: the caller's copy, kept alive while they are in use). */
static void prof_begin(struct fc_engine * e, struct fc_backend_ops * ops) {
    *ops = *e->be.ops;
    g_prof.inner = e->be.ops;
    g_prof.m = &e->model;
    ops->matmul = timed_matmul;
    if (ops->matmul_batch) ops->matmul_batch = timed_matmul_batch;
    e->be.ops = ops;
    e->on_par_experts = timed_par_experts;
    prof_reset();
}

static void prof_end(struct fc_engine * e) {
    e->be.ops = g_prof.inner;
    e->on_par_experts = NULL;
}

static int bench_full(struct fc_engine * e, const struct fc_bench_options * opt, int iters) {
    struct fc_error err;
    const struct fc_model * m = &e->model;
    const int32_t L = m->cfg.n_layers;
    float * logits = fc_alloc_aligned((size_t)m->cfg.vocab_size * 4);
    double * tok_ms = fc_xcalloc((size_t)iters, sizeof *tok_ms);
    double * layer_ms = fc_xcalloc((size_t)iters * (size_t)L, sizeof *layer_ms); /* [iter][layer] */
    double * head_ms = fc_xcalloc((size_t)iters, sizeof *head_ms);
    g_layers.t = fc_xcalloc((size_t)L, sizeof *g_layers.t);
    void (*saved_hook)(void *, int32_t) = e->on_layer;
    void * saved_ctx = e->on_layer_ctx;
    e->on_layer = note_layer;
    e->on_layer_ctx = NULL;
    fc_engine_reset(e);
    /* time per kind of product (CPU backends: a GPU's products are queued, their time is the GPU wait) */
    struct fc_backend_ops ops;
    const int split = !e->gpu;
    if (split) prof_begin(e, &ops);
    int32_t tok = 1 % m->cfg.vocab_size;
    const int warm = iters > 1 ? 2 : 0;
    double io_meas = 0.0, gpu_meas = 0.0, cb_meas = 0.0;
    uint64_t reads0 = 0, read0 = 0, cached0 = 0;
    for (int it = 0; it < warm + iters; it++) {
        if (e->st.n_past >= e->context) fc_engine_reset(e);
        if (it == warm) {
            reads0 = e->experts.reads; read0 = e->experts.bytes_read; cached0 = e->experts.bytes_cached;
            prof_reset();
        }
        double io_before = e->experts.io_wait_ms, gpu_before = e->gpu_wait_ms;
        const uint64_t cb_before = e->gpu_commits;
        double t0 = fc_time_ms(), c0 = cpu_ms();
        if (fc_engine_eval(e, &tok, 1, NULL, logits, &err) != FC_STATUS_OK) {
            fprintf(stderr, "%s\n", err.message);
            e->on_layer = saved_hook;
            e->on_layer_ctx = saved_ctx;
            if (split) prof_end(e);
            return 1;
        }
        double t1 = fc_time_ms();
        if (it >= warm) {
            const int i = it - warm;
            tok_ms[i] = t1 - t0;
            g_cpu_ms_per_op += cpu_ms() - c0;
            io_meas += e->experts.io_wait_ms - io_before;
            for (int32_t l = 0; l < L; l++) layer_ms[(size_t)i * L + l] = g_layers.t[l] - (l ? g_layers.t[l - 1] : t0);
            head_ms[i] = t1 - g_layers.t[L - 1];
            gpu_meas += e->gpu_wait_ms - gpu_before;
            cb_meas += (double)(e->gpu_commits - cb_before);
        }
        tok = fc_argmax(logits, m->cfg.vocab_size);
    }
    e->on_layer = saved_hook;
    e->on_layer_ctx = saved_ctx;
    if (split) prof_end(e);
    const int n = iters;
    g_cpu_ms_per_op /= n;
    const uint64_t reads = e->experts.reads - reads0, bread = e->experts.bytes_read - read0, bcached = e->experts.bytes_cached - cached0;
    const double head_bytes = (double)fc_matrix_bytes(&m->lm_head);
    double dense = head_bytes;
    for (int32_t l = 0; l < L; l++) dense += attn_bytes(&m->layers[l]) + layer_dense_bytes(&m->layers[l]);
    const double expert_layer = (double)e->n_active * (double)e->experts.expert_bytes;
    double bytes = dense + (double)L * expert_layer;
    double * tmp = fc_xcalloc((size_t)n, sizeof *tmp);
    memcpy(tmp, tok_ms, (size_t)n * sizeof *tmp);
    const double ms_med = quantile(tmp, n, 0.5), ms_p10 = quantile(tmp, n, 0.1), ms_p90 = quantile(tmp, n, 0.9);
    const double ms_min = tmp[0], ms_max = tmp[n - 1];
    size_t cap = 1536 + (size_t)L * 160 + (size_t)n * 16;
    char * extra = fc_xmalloc(cap);
    size_t at = (size_t)snprintf(extra, cap,
        "\"iters\":%d,\"warmup\":%d,\"tok_s_p10\":%.4f,\"tok_s_p90\":%.4f,\"tok_s_min\":%.4f,\"tok_s_max\":%.4f,"
        "\"expert_io\":\"%s\",\"expert_reads\":%llu,\"expert_bytes_read\":%llu,\"expert_bytes_cached\":%llu,"
        "\"expert_bytes_from_disk\":%llu,\"expert_cache_limit\":%llu,\"io_wait_ms_per_op\":%.4f,\"head_bytes\":%.0f,",
        n, warm, 1e3 / ms_p90, 1e3 / ms_p10, 1e3 / ms_max, 1e3 / ms_min, fc_expert_io_name(fc_engine_expert_io(e)),
        (unsigned long long)reads, (unsigned long long)bread, (unsigned long long)bcached,
        (unsigned long long)(bread - (bcached < bread ? bcached : bread)), (unsigned long long)e->experts.cache_limit, io_meas / n, head_bytes);
    for (int i = 0; i < n; i++) tmp[i] = head_ms[i];
    at += (size_t)snprintf(extra + at, cap - at, "\"head_ms\":%.4f,\"layers\":[", quantile(tmp, n, 0.5));
    for (int32_t l = 0; l < L; l++) {
        for (int i = 0; i < n; i++) tmp[i] = layer_ms[(size_t)i * L + l];
        const struct fc_layer * ly = &m->layers[l];
        at += (size_t)snprintf(extra + at, cap - at, "%s{\"kind\":\"%s\",\"ms\":%.4f,\"dense_bytes\":%.0f,\"expert_bytes\":%.0f}", l ? "," : "",
                               ly->is_full ? "full" : "linear", quantile(tmp, n, 0.5), attn_bytes(ly) + layer_dense_bytes(ly), expert_layer);
    }
    at += (size_t)snprintf(extra + at, cap - at, "]");
    if (split) { /* mean per token (the sums over the timed tokens / n) */
        at += (size_t)snprintf(extra + at, cap - at, ",\"split_ms\":{");
        for (int k = 0; k < PK_N; k++) at += (size_t)snprintf(extra + at, cap - at, "%s\"%s\":%.4f", k ? "," : "", pk_names[k], g_prof.ms[k] / n);
        at += (size_t)snprintf(extra + at, cap - at, "},\"split_bytes\":{");
        for (int k = 0; k < PK_N; k++) at += (size_t)snprintf(extra + at, cap - at, "%s\"%s\":%.0f", k ? "," : "", pk_names[k], g_prof.bytes[k] / n);
        at += (size_t)snprintf(extra + at, cap - at, "}");
    }
    at += (size_t)snprintf(extra + at, cap - at, ",\"token_ms\":[");
    for (int i = 0; i < n; i++) at += (size_t)snprintf(extra + at, cap - at, "%s%.4f", i ? "," : "", tok_ms[i]);
    snprintf(extra + at, cap - at, "]");
    char what[448];
    snprintf(what, sizeof what, "whole model, one token (%d layers, K=%d, %d-bit experts, %.1f MB dense + %.1f MB experts/token), "
             "%d token(s) after %d warm-up, io wait %.3f ms/token",
             L, e->n_active, e->experts.bits, dense / 1e6, (bytes - dense) / 1e6, n, warm, io_meas / n);
    if (e->gpu) { /* per layer: the host waiting for the GPU, for the expert reads, and the rest (CPU) */
        const double gpu_ms = gpu_meas / n, io_ms = io_meas / n;
        snprintf(what + strlen(what), sizeof what - strlen(what), ", per layer %.3f ms = gpu wait %.3f + expert io %.3f + cpu %.3f, %.1f command buffers/token",
                 ms_med / L, gpu_ms / L, io_ms / L, (ms_med - gpu_ms - io_ms) / L, cb_meas / n);
    }
    print_ceilings(e, opt, dense, bytes - dense, ms_med, what, extra);
    if (!opt->json) {
        printf("  per token: median %.3f ms, p10-p90 %.3f-%.3f ms, min-max %.3f-%.3f ms\n", ms_med, ms_p10, ms_p90, ms_min, ms_max);
        printf("  experts by %s: %llu reads, %.1f MB, %.1f MB of it in the page cache before the read, %.1f MB from disk\n",
               fc_expert_io_name(fc_engine_expert_io(e)), (unsigned long long)reads, bread / 1e6, bcached / 1e6,
               (bread - (bcached < bread ? bcached : bread)) / 1e6);
        for (int i = 0; i < n; i++) tmp[i] = head_ms[i];
        printf("  lm_head + final norm: %.3f ms, %.1f MB\n", quantile(tmp, n, 0.5), head_bytes / 1e6);
        for (int32_t l = 0; l < L; l++) {
            for (int i = 0; i < n; i++) tmp[i] = layer_ms[(size_t)i * L + l];
            const struct fc_layer * ly = &m->layers[l];
            printf("  layer %2d (%s attention): %.3f ms, %.1f MB dense + %.1f MB experts\n", l, ly->is_full ? "full" : "linear",
                   quantile(tmp, n, 0.5), (attn_bytes(ly) + layer_dense_bytes(ly)) / 1e6, expert_layer / 1e6);
        }
        if (split) {
            double mm = 0.0, mean = 0.0;
            for (int i = 0; i < n; i++) mean += tok_ms[i] / n;
            printf("  per kind of product (mean per token, all layers; GB/s = weight bytes read / time):\n");
            for (int k = 0; k < PK_N; k++) {
                const double ms = g_prof.ms[k] / n, mb = g_prof.bytes[k] / n / 1e6;
                mm += ms;
                printf("    %-15s %8.3f ms %5.1f%%  %7.1f MB  %6.2f GB/s\n", pk_names[k], ms, 100.0 * ms / mean, mb, ms > 0 ? mb / ms : 0.0);
            }
            printf("    %-15s %8.3f ms %5.1f%%  (attention, recurrence, norms, routing, sampling, I/O waits)\n", "other", mean - mm,
                   100.0 * (mean - mm) / mean);
        }
    }
    free(tmp); free(extra); free(tok_ms); free(layer_ms); free(head_ms); free(g_layers.t);
    g_layers.t = NULL;
    free(logits);
    return 0;
}

/* ===== prefill ===== */

/*
 * Prefill of opt->prompt tokens from an empty sequence (only the last position's logits, as a chat turn
 * does), opt->iters times after one warm-up pass: tok/s as a median with its range, and the median
 * pass's time split by kind of product (the rest is attention, recurrence, norms, routing, I/O waits).
 */
static int bench_prefill(struct fc_engine * e, const struct fc_bench_options * opt, int iters) {
    const struct fc_model * m = &e->model;
    const int32_t n = opt->prompt > 0 ? opt->prompt : 512;
    if (n > e->context) {
        fprintf(stderr, "flashchat-engine: bench prefill: %d tokens exceed the context of %d (pass --context)\n", n, e->context);
        return 2;
    }
    int32_t * toks = fc_xmalloc((size_t)n * sizeof *toks);
    for (int32_t i = 0; i < n; i++) toks[i] = (int32_t)(rnd() % (uint32_t)m->cfg.vocab_size);
    float * logits = fc_alloc_aligned((size_t)m->cfg.vocab_size * 4);
    struct fc_backend_ops ops;
    prof_begin(e, &ops);
    double * tok_s = fc_xcalloc((size_t)iters, sizeof *tok_s);
    double best_split[PK_N] = { 0 }, macs[PK_N] = { 0 }, ms_median = 0.0, cpu = 0.0;
    double * ms_runs = fc_xcalloc((size_t)iters, sizeof *ms_runs);
    double (*splits)[PK_N] = fc_xcalloc((size_t)iters, sizeof *splits);
    struct fc_error err;
    int rc = 0;
    /* one warm-up pass (first touch of scratch and caches) unless a single run was asked for (long prompts) */
    for (int it = iters > 1 ? -1 : 0; it < iters; it++) {
        fc_engine_reset(e);
        prof_reset();
        double t0 = fc_time_ms(), c0 = cpu_ms();
        if (fc_engine_eval(e, toks, n, NULL, logits, &err) != FC_STATUS_OK) { fprintf(stderr, "%s\n", err.message); rc = 1; break; }
        double dt = fc_time_ms() - t0;
        if (it < 0) continue; /* warm-up: first touch of scratch, page cache, caches */
        cpu += cpu_ms() - c0;
        ms_runs[it] = dt;
        tok_s[it] = n / (dt / 1e3);
        memcpy(splits[it], g_prof.ms, sizeof g_prof.ms);
        memcpy(macs, g_prof.macs, sizeof macs);
    }
    prof_end(e);
    if (rc == 0) {
        /* the median run by time, and its split */
        int med = 0;
        for (int i = 0; i < iters; i++) {
            int below = 0;
            for (int j = 0; j < iters; j++) below += ms_runs[j] < ms_runs[i] || (ms_runs[j] == ms_runs[i] && j < i);
            if (below == iters / 2) med = i;
        }
        ms_median = ms_runs[med];
        memcpy(best_split, splits[med], sizeof best_split);
        double lo = 1e30, hi = 0.0, total_macs = 0.0, mm_ms = 0.0;
        for (int i = 0; i < iters; i++) { lo = tok_s[i] < lo ? tok_s[i] : lo; hi = tok_s[i] > hi ? tok_s[i] : hi; }
        for (int k = 0; k < PK_N; k++) { total_macs += macs[k]; mm_ms += best_split[k]; }
        /* compute ceiling: threads x the single-core vpdpbusd peak, over the products' multiply-adds per token (the
           integer path runs two levels, so its own ceiling is half this; the float path is far below) */
        double peak = 0.0;
#ifdef FC_HAVE_X86_KERNELS
        if (fc_cpu_kernels_get(3)) peak = fc_cpu_int8_peak_gmacs(200.0);
#endif
        const double ceil_tok_s = peak > 0 ? peak * 1e9 * e->n_threads / (total_macs / n) : 0.0;
        /* the same ceiling as int8 multiply-adds per cycle x measured clock x threads */
        const double ghz = peak > 0 ? fc_bench_clock_ghz() : 0.0;
        if (opt->json) {
            printf("{\"mode\":\"prefill\",\"tokens\":%d,\"iters\":%d,\"threads\":%d,\"batch\":%d,\"kernels\":\"%s\",\"tok_s\":%.3f,"
                   "\"tok_s_min\":%.3f,\"tok_s_max\":%.3f,\"ms\":%.3f,\"cpu_ms\":%.3f,\"macs_per_token\":%.0f,"
                   "\"int8_peak_gmacs_per_core\":%.3f,\"clock_ghz\":%.3f,\"int8_macs_per_cycle\":%.2f,\"compute_ceiling_tok_s\":%.3f,"
                   "\"fraction_of_compute_ceiling\":%.4f,\"split_ms\":{",
                   n, iters, e->n_threads, e->max_batch, e->be.ops->describe ? e->be.ops->describe(&e->be) : "", n / (ms_median / 1e3), lo,
                   hi, ms_median, cpu / iters, total_macs / n, peak, ghz, ghz > 0 ? peak / ghz : 0.0, ceil_tok_s, ceil_tok_s > 0 ? n / (ms_median / 1e3) / ceil_tok_s : 0.0);
            for (int k = 0; k < PK_N; k++) printf("%s\"%s\":%.3f", k ? "," : "", pk_names[k], best_split[k]);
            printf(",\"other\":%.3f}}\n", ms_median - mm_ms);
        } else {
            printf("prefill: %d tokens from an empty context, %d run(s) after a warm-up, %d thread(s), batch %d, kernels %s\n", n, iters,
                   e->n_threads, e->max_batch, e->be.ops->describe ? e->be.ops->describe(&e->be) : "");
            printf("  %.1f tok/s median (%.1f-%.1f), %.1f ms per prefill, %.1f M multiply-adds per token in products\n", n / (ms_median / 1e3),
                   lo, hi, ms_median, total_macs / n / 1e6);
            if (ceil_tok_s > 0) {
                printf("  compute ceiling %.0f tok/s (%d x %.0f GMAC/s vpdpbusd peak per core = %.1f int8 MAC/cycle x %.2f GHz measured); "
                       "achieved %.1f%%\n", ceil_tok_s, e->n_threads, peak, ghz > 0 ? peak / ghz : 0.0, ghz, 100.0 * n / (ms_median / 1e3) / ceil_tok_s);
            }
            for (int k = 0; k < PK_N; k++) {
                printf("  %-15s %9.1f ms %5.1f%%  %7.1f GMAC/s\n", pk_names[k], best_split[k], 100.0 * best_split[k] / ms_median,
                       best_split[k] > 0 ? macs[k] / (best_split[k] / 1e3) / 1e9 : 0.0);
            }
            printf("  %-15s %9.1f ms %5.1f%%  (attention, recurrence, norms, routing, I/O waits)\n", "other", ms_median - mm_ms,
                   100.0 * (ms_median - mm_ms) / ms_median);
        }
    }
    free(toks); free(logits); free(tok_s); free(ms_runs); free(splits);
    return rc;
}

/* ===== synthetic kernels ===== */

static int bench_kernels(const struct fc_bench_options * opt) {
    /* cache: 256 x 2048 (128 KB at 4 bits: L2); memory: 8192 x 8192 (32 MB+ at 4 bits, beyond L2/most L3) */
    if (opt->json) printf("{\"mode\":\"kernels\",\"results\":[");
    int first = 1;
    for (int level = 0; level <= FC_CPU_MAX_LEVEL; level++) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (!k) continue;
        for (int bits = 2; bits <= 8; bits *= 2) {
            double cache = kernel_gbps(k, bits, 256, 2048, 200.0);
            double mem = kernel_gbps(k, bits, 8192, 8192, 600.0);
            if (opt->json) {
                printf("%s{\"kernels\":\"%s\",\"bits\":%d,\"cache_gbps\":%.3f,\"memory_gbps\":%.3f}", first ? "" : ",", k->name, bits,
                       cache, mem);
                first = 0;
            } else {
                printf("kernels %-8s %d-bit matvec, one thread: %6.2f GB/s from cache, %6.2f GB/s from memory\n", k->name, bits, cache,
                       mem);
            }
        }
    }
    /* the integer path (prefill): a 2048 x 2048 matrix (L2-resident codes at 4 bits) times 256 and 8 tokens */
    if (opt->json) printf("],\"int8\":[");
    first = 1;
    for (int level = 0; level <= FC_CPU_MAX_LEVEL; level++) {
        const struct fc_cpu_kernels * k = fc_cpu_kernels_get(level);
        if (!k || !k->gemm_q) continue;
        for (int bits = 2; bits <= 8; bits *= 2) {
            double many = kernel_int8_gmacs(k, bits, 2048, 2048, 256, 300.0);
            double few = kernel_int8_gmacs(k, bits, 2048, 2048, 8, 200.0);
            if (opt->json) {
                printf("%s{\"kernels\":\"%s\",\"bits\":%d,\"gmacs_256_tokens\":%.3f,\"gmacs_8_tokens\":%.3f}", first ? "" : ",", k->name,
                       bits, many, few);
                first = 0;
            } else {
                printf("kernels %-10s %d-bit int8 x2 product, one thread: %7.1f GMAC/s with 256 tokens, %7.1f with 8\n", k->name, bits, many,
                       few);
            }
        }
    }
    double peak = 0.0;
#ifdef FC_HAVE_X86_KERNELS
    if (fc_cpu_kernels_get(3)) peak = fc_cpu_int8_peak_gmacs(200.0);
#endif
    double mem = memcpy_gbps();
    if (opt->json) printf("],\"int8_peak_gmacs\":%.3f,\"memcpy_gbps\":%.3f}\n", peak, mem);
    else {
        if (peak > 0) printf("vpdpbusd peak, one thread: %.1f GMAC/s (the compute ceiling per core)\n", peak);
        printf("memcpy: %.2f GB/s (256 MB buffers)\n", mem);
    }
    return 0;
}

/* ===== evict: drop files from the page cache ===== */

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Bytes of the file at fd (size bytes) in the page cache, by mincore on an unfaulted mapping; -1 if unknown. */
static long long file_resident(int fd, size_t size) {
    if (size == 0) return 0;
    void * m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return -1;
    long long r = (long long)fc_resident_bytes(m, size);
    munmap(m, size);
    return r;
}

int fc_bench_evict(int n, char ** paths) {
    long long total = 0, before = 0, after = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            fprintf(stderr, "flashchat-engine: evict: %s: %s\n", paths[i], strerror(errno));
            if (fd >= 0) close(fd);
            bad = 1;
            continue;
        }
        const size_t size = (size_t)sb.st_size;
        total += (long long)size;
        before += file_resident(fd, size);
#if defined(POSIX_FADV_DONTNEED)
        /* dirty pages cannot be dropped: write them first */
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#else
        close(fd);
        fprintf(stderr, "flashchat-engine: evict: this OS has no posix_fadvise\n");
        return 2;
#endif
        after += file_resident(fd, size);
        close(fd);
    }
    printf("{\"mode\":\"evict\",\"files\":%d,\"bytes\":%lld,\"resident_before\":%lld,\"resident_after\":%lld}\n", n, total, before, after);
    return bad ? 1 : 0;
}

int fc_bench_run(struct fc_engine * e, const struct fc_bench_options * opt) {
    const char * m = opt->mode;
    if (strcmp(m, "kernels") == 0) return bench_kernels(opt);
    if (strcmp(m, "membw") == 0) return bench_membw(opt);
    if (!e) return 2;
    if (strcmp(m, "run") == 0) return bench_expert(e, opt, opt->iters > 0 ? opt->iters : 1);
    if (strcmp(m, "bench") == 0) return bench_expert(e, opt, opt->iters > 0 ? opt->iters : 10);
    if (strcmp(m, "verify") == 0) return bench_verify(e, opt);
    if (strcmp(m, "moe") == 0) return bench_moe(e, opt, opt->iters > 0 ? opt->iters : 1);
    if (strcmp(m, "moebench") == 0) return bench_moe(e, opt, opt->iters > 0 ? opt->iters : 10);
    if (strcmp(m, "full") == 0) return bench_full(e, opt, opt->iters > 0 ? opt->iters : 1);
    if (strcmp(m, "fullbench") == 0) return bench_full(e, opt, opt->iters > 0 ? opt->iters : 32);
    if (strcmp(m, "prefill") == 0) return bench_prefill(e, opt, opt->iters > 0 ? opt->iters : 3);
    return 2;
}
