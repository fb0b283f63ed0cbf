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

/*
 * The whole state of the current job is one 64-bit word, so it is published, claimed from and completed
 * atomically, and a thread can never mix the fields of two jobs:
 *   bits 48..63  seq      job sequence number (wraps; workers wait for it to change)
 *   bits 32..47  n        chunks in the job
 *   bits 16..31  claimed  chunks handed out; every fetch_add returns a distinct (job, chunk) pair
 *   bits  0..15  done     chunks finished
 * A claim is a fetch_add on `claimed`: a result below n is chunk `claimed` of exactly the job in that word (a
 * thread still leaving the previous job that claims here gets a real chunk of this one and runs it with this
 * job's fn, which is valid: the job cannot finish while it runs); a result >= n means nothing is left and the
 * thread stops. Each thread fails at most one claim per job, so `claimed` stays below n + n_threads and never
 * carries into `n`. The caller waits for done == n of its own word; the next job replaces the word whole.
 * Progress never depends on a worker noticing a job: the caller claims chunks too.
 */
#define DONE_ONE    ((uint64_t)1)
#define CLAIM_ONE   ((uint64_t)1 << 16)
#define JOB_DONE(w)    ((uint32_t)((w) & 0xffff))
#define JOB_CLAIMED(w) ((uint32_t)(((w) >> 16) & 0xffff))
#define JOB_N(w)       ((uint32_t)(((w) >> 32) & 0xffff))
#define JOB_SEQ(w)     ((uint32_t)((w) >> 48))
#define JOB_WORD(seq, n) (((uint64_t)((seq) & 0xffff) << 48) | ((uint64_t)(n) << 32))
#define MAX_THREADS 1024

struct fc_pool {
    int32_t n_threads;
    pthread_t * threads;
    _Atomic uint64_t job;      /* the current job (above) */
    fc_pool_fn fn;             /* of the current job: written before its word is published, read after a claim */
    void * ctx;
    pthread_mutex_t mu;        /* sleeping workers wait on cv under mu */
    pthread_cond_t cv;
    atomic_int n_sleeping;     /* workers in (or about to enter) cv wait: the caller only signals when > 0 */
    atomic_int stop;
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

/* Claim and run chunks until a claim finds none left; returns the seq of the job that claim saw. */
static uint32_t work(struct fc_pool * pool, int32_t thread) {
    for (;;) {
        /* a plain load first: when nothing is left, stop without writing the word the caller is polling */
        uint64_t w = atomic_load_explicit(&pool->job, memory_order_acquire);
        if (JOB_CLAIMED(w) >= JOB_N(w)) return JOB_SEQ(w);
        w = atomic_fetch_add_explicit(&pool->job, CLAIM_ONE, memory_order_acq_rel);
        uint32_t chunk = JOB_CLAIMED(w), n = JOB_N(w);
        if (chunk >= n) return JOB_SEQ(w);
        /* fn/ctx are this job's: they were written before its word was published, and the job cannot end (so the
           caller cannot start another) before this chunk is counted done */
        pool->fn(pool->ctx, (int32_t)chunk, (int32_t)n, thread);
        atomic_fetch_add_explicit(&pool->job, DONE_ONE, memory_order_acq_rel);
    }
}

static void * worker_main(void * p) {
    struct worker_arg * wa = p;
    struct fc_pool * pool = wa->pool;
    int32_t ith = wa->ith;
    free(wa);
    fc_platform_compute_thread_start(); /* ith >= 1: a worker */
    uint32_t seen = JOB_SEQ(atomic_load(&pool->job));
    for (;;) {
        int spins = 0;
        while (JOB_SEQ(atomic_load_explicit(&pool->job, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            /* n_sleeping before the re-check, and the caller's publish before its n_sleeping check (both seq_cst):
               either the caller sees a sleeper and broadcasts under mu, or this re-check sees the new job */
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (JOB_SEQ(atomic_load(&pool->job)) == seen && !atomic_load(&pool->stop)) pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = work(pool, ith);
    }
}

struct fc_pool * fc_pool_init(int32_t n_threads) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    struct fc_pool * pool = fc_xcalloc(1, sizeof *pool);
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    atomic_init(&pool->job, JOB_WORD(0, 0));
    atomic_init(&pool->n_sleeping, 0);
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
    FC_ASSERT(n_chunks <= FC_POOL_MAX_CHUNKS);
    /* the previous job is complete (its caller waited for it), so no thread reads fn/ctx now */
    pool->fn = fn;
    pool->ctx = ctx;
    uint32_t seq = JOB_SEQ(atomic_load_explicit(&pool->job, memory_order_relaxed)) + 1;
    atomic_store(&pool->job, JOB_WORD(seq, (uint32_t)n_chunks));
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    work(pool, 0);
    int spins = 0;
    while (JOB_DONE(atomic_load_explicit(&pool->job, memory_order_acquire)) != (uint32_t)n_chunks) {
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

int32_t fc_pool_chunks(const struct fc_pool * pool, int64_t n, int64_t grain) {
    const int64_t most = 2 * (int64_t)fc_pool_size(pool), by_size = grain > 0 ? n / grain : n;
    return by_size < 2 ? 1 : (int32_t)(by_size < most ? by_size : most);
}
