/* Compute thread pool: workers spin briefly for the next job (decode issues many small ones), then sleep. */
#define _GNU_SOURCE
#include "threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "platform.h"
#include "util.h"

#define SPIN_ITERS 4000

struct fc_pool {
    int32_t n_threads;
    pthread_t * threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int generation;           /* bumped for every job; workers wait for a change */
    _Atomic uint64_t claim;          /* (generation << 32) | next chunk to hand out */
    atomic_int n_done;               /* chunks finished in the current job */
    atomic_int stop;
    fc_pool_fn fn;
    void * ctx;
    int32_t n_chunks;
};

struct worker_arg {
    struct fc_pool * pool;
    int32_t ith;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claim and run chunks of job `gen` until none are left (or another job has started). */
static void work(struct fc_pool * pool, uint32_t gen, int32_t thread) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
        if ((uint32_t)(c >> 32) != gen) return;
        uint32_t idx = (uint32_t)c;
        if ((int32_t)idx >= pool->n_chunks) return; /* a stale n_chunks only matters if gen changed: the CAS fails */
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        /* the job cannot finish (nor change) while this claimed chunk is outstanding */
        pool->fn(pool->ctx, (int32_t)idx, pool->n_chunks, thread);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
    }
}

static void * worker_main(void * p) {
    struct worker_arg * wa = p;
    struct fc_pool * pool = wa->pool;
    int32_t ith = wa->ith;
    free(wa);
    fc_platform_compute_thread_start();
    int seen = 0;
    for (;;) {
        int gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop)) {
                pthread_cond_wait(&pool->cv, &pool->mu);
            }
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        work(pool, (uint32_t)gen, ith);
    }
}

struct fc_pool * fc_pool_init(int32_t n_threads) {
    if (n_threads < 1) n_threads = 1;
    struct fc_pool * pool = fc_xcalloc(1, sizeof *pool);
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->n_done, 0);
    atomic_init(&pool->stop, 0);
    pool->threads = fc_xcalloc((size_t)n_threads, sizeof *pool->threads);
    fc_platform_compute_thread_start(); /* the creator computes too (chunks of every job) */
    for (int32_t i = 1; i < n_threads; i++) {
        struct worker_arg * wa = fc_xmalloc(sizeof *wa);
        wa->pool = pool;
        wa->ith = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->n_threads = i;
            fc_pool_free(pool);
            return NULL;
        }
    }
    return pool;
}

void fc_pool_free(struct fc_pool * pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int32_t i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int32_t fc_pool_size(const struct fc_pool * pool) {
    return pool ? pool->n_threads : 1;
}

void fc_pool_run(struct fc_pool * pool, fc_pool_fn fn, void * ctx, int32_t n_chunks) {
    if (n_chunks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_chunks == 1) {
        for (int32_t i = 0; i < n_chunks; i++) fn(ctx, i, n_chunks, 0);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_chunks = n_chunks;
    atomic_store_explicit(&pool->n_done, 0, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    uint32_t gen = (uint32_t)atomic_load(&pool->generation) + 1;
    atomic_store_explicit(&pool->claim, (uint64_t)gen << 32, memory_order_release);
    atomic_store_explicit(&pool->generation, (int)gen, memory_order_release);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    work(pool, gen, 0);
    int spins = 0;
    while (atomic_load_explicit(&pool->n_done, memory_order_acquire) != n_chunks) {
        if (++spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

void fc_split_range(int64_t n, int32_t ith, int32_t nth, int64_t align, int64_t * begin, int64_t * end) {
    if (align < 1) align = 1;
    int64_t n_units = (n + align - 1) / align;
    int64_t per = n_units / nth, rem = n_units % nth;
    int64_t b = ith * per + (ith < rem ? ith : rem);
    int64_t e = b + per + (ith < rem ? 1 : 0);
    b *= align;
    e *= align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

int32_t fc_cpu_count(void) {
    return fc_platform_compute_threads();
}
