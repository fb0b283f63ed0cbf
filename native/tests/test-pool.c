/*
 * The compute pool under stress: thousands of back-to-back jobs of random chunk counts (1..16) on 2..8 threads
 * (more threads than cores too), with random work per chunk and random pauses that let workers fall asleep.
 * Every chunk of every job must run exactly once, with its own job's n_chunks, and no thread index may be used
 * by two threads at once. A pool that loses count of a job hangs here (the bun test runs this with a timeout).
 *   test-pool [--jobs N] [--seed S] [--threads 2,3,4,8]      stress (default 4000 jobs per thread count)
 *   test-pool bench [--threads N] [--jobs N] [--chunks C]    time per job of empty chunks (ns), for comparisons
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads.h"
#include "util.h"

#define MAX_CHUNKS 16
#define RING 4
#define MAX_THREADS 64

struct job {
    int64_t number;             /* which job of the run this record holds */
    int32_t n_chunks;
    atomic_int runs[MAX_CHUNKS]; /* times each chunk ran */
    int32_t spin;               /* busy work per chunk (iterations) */
};

static atomic_int g_in_use[MAX_THREADS]; /* thread index currently inside a chunk */
static atomic_int g_errors;
static atomic_llong g_sink;

static void report(const char * what, const struct job * j, int32_t chunk, int32_t n_chunks, int32_t thread) {
    if (atomic_fetch_add(&g_errors, 1) < 10) {
        fprintf(stderr, "FAIL: %s (job %lld, chunk %d, n_chunks %d of %d, thread %d)\n", what, (long long)j->number, chunk,
                n_chunks, j->n_chunks, thread);
    }
}

static void run_chunk(void * ctx, int32_t chunk, int32_t n_chunks, int32_t thread) {
    struct job * j = ctx;
    if (thread < 0 || thread >= MAX_THREADS) { report("thread index out of range", j, chunk, n_chunks, thread); return; }
    if (atomic_exchange(&g_in_use[thread], 1) != 0) report("thread index used by two threads at once", j, chunk, n_chunks, thread);
    if (n_chunks != j->n_chunks) report("chunk called with another job's n_chunks", j, chunk, n_chunks, thread);
    if (chunk < 0 || chunk >= j->n_chunks) report("chunk index out of range", j, chunk, n_chunks, thread);
    else atomic_fetch_add(&j->runs[chunk], 1);
    long long acc = 0;
    for (int32_t i = 0; i < j->spin; i++) acc += i ^ chunk;
    atomic_fetch_add_explicit(&g_sink, acc, memory_order_relaxed);
    atomic_store(&g_in_use[thread], 0);
}

static uint64_t rng_next(uint64_t * s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Each chunk of `j` ran exactly once (also checked again later: a stale worker must not touch a finished job). */
static int check_job(const struct job * j, const char * when) {
    int ok = 1;
    for (int32_t c = 0; c < j->n_chunks; c++) {
        int runs = atomic_load(&j->runs[c]);
        if (runs != 1) {
            fprintf(stderr, "FAIL: job %lld chunk %d of %d ran %d times (%s)\n", (long long)j->number, c, j->n_chunks, runs, when);
            ok = 0;
        }
    }
    for (int32_t c = j->n_chunks; c < MAX_CHUNKS; c++) {
        if (atomic_load(&j->runs[c]) != 0) {
            fprintf(stderr, "FAIL: job %lld has no chunk %d but it ran (%s)\n", (long long)j->number, c, when);
            ok = 0;
        }
    }
    return ok;
}

static void sleep_us(long us) {
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

static int stress(int32_t n_threads, int64_t n_jobs, uint64_t seed) {
    struct fc_pool * pool = fc_pool_init(n_threads);
    if (!pool) { fprintf(stderr, "FAIL: cannot create %d threads\n", n_threads); return 0; }
    static struct job ring[RING];
    memset(ring, 0, sizeof ring);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + (uint64_t)n_threads;
    if (!rng) rng = 1;
    int ok = 1;
    for (int64_t k = 0; k < n_jobs && ok; k++) {
        struct job * j = &ring[k % RING];
        if (k >= RING && !check_job(j, "checked again later")) ok = 0;
        j->number = k;
        j->n_chunks = 1 + (int32_t)(rng_next(&rng) % MAX_CHUNKS);
        uint64_t r = rng_next(&rng);
        j->spin = (r & 3) == 0 ? (int32_t)(r >> 8) % 20000 : 0; /* mostly empty chunks: the tightest back-to-back jobs */
        for (int32_t c = 0; c < MAX_CHUNKS; c++) atomic_store(&j->runs[c], 0);
        fc_pool_run(pool, run_chunk, j, j->n_chunks);
        if (!check_job(j, "when fc_pool_run returned")) ok = 0;
        if ((r >> 40) % 500 == 0) sleep_us(2000); /* long enough for the workers to go to sleep */
    }
    for (int32_t i = 0; i < RING && ok; i++) {
        if (ring[i].n_chunks && !check_job(&ring[i], "at the end")) ok = 0;
    }
    fc_pool_free(pool);
    if (atomic_load(&g_errors) > 0) ok = 0;
    printf("pool: %d threads, %lld jobs: %s\n", n_threads, (long long)n_jobs, ok ? "ok" : "FAILED");
    fflush(stdout);
    return ok;
}

static void empty_chunk(void * ctx, int32_t chunk, int32_t n_chunks, int32_t thread) {
    (void)ctx; (void)chunk; (void)n_chunks; (void)thread;
}

static int bench(int32_t n_threads, int64_t n_jobs, int32_t n_chunks) {
    struct fc_pool * pool = fc_pool_init(n_threads);
    if (!pool) return 0;
    for (int64_t k = 0; k < n_jobs / 10; k++) fc_pool_run(pool, empty_chunk, NULL, n_chunks); /* warm up */
    double t0 = fc_time_ms();
    for (int64_t k = 0; k < n_jobs; k++) fc_pool_run(pool, empty_chunk, NULL, n_chunks);
    double t1 = fc_time_ms();
    fc_pool_free(pool);
    printf("pool bench: %d threads, %d chunks, %lld jobs: %.0f ns per job\n", n_threads, n_chunks, (long long)n_jobs,
           (t1 - t0) * 1e6 / (double)n_jobs);
    return 1;
}

int main(int argc, char ** argv) {
    int64_t n_jobs = -1;
    uint64_t seed = (uint64_t)time(NULL);
    int32_t threads[16] = { 2, 3, 4, 8 };
    int32_t n_thread_counts = 4;
    int32_t n_chunks = 8;
    int is_bench = argc > 1 && strcmp(argv[1], "bench") == 0;
    for (int i = is_bench ? 2 : 1; i < argc; i += 2) { /* flag, value */
        const char * v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "test-pool: %s needs a value\n", argv[i]); return 2; }
        if (strcmp(argv[i], "--jobs") == 0) n_jobs = atoll(v);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--chunks") == 0) n_chunks = atoi(v);
        else if (strcmp(argv[i], "--threads") == 0) {
            n_thread_counts = 0;
            for (char * p = (char *)v; *p && n_thread_counts < 16;) {
                threads[n_thread_counts++] = (int32_t)strtol(p, &p, 10);
                if (*p == ',') p++;
            }
        } else { fprintf(stderr, "test-pool: unknown flag %s\n", argv[i]); return 2; }
    }
    for (int32_t i = 0; i < n_thread_counts; i++) {
        if (threads[i] < 1 || threads[i] > MAX_THREADS) { fprintf(stderr, "test-pool: threads must be 1..%d\n", MAX_THREADS); return 2; }
    }
    if (is_bench) return bench(threads[0], n_jobs > 0 ? n_jobs : 200000, n_chunks) ? 0 : 1;
    if (n_jobs <= 0) n_jobs = 4000;
    printf("pool: seed %llu\n", (unsigned long long)seed);
    int ok = 1;
    for (int32_t i = 0; i < n_thread_counts; i++) ok &= stress(threads[i], n_jobs, seed);
    printf("pool: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
