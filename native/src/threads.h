/*
 * A fixed pool of compute threads running one job at a time (fork-join). A job is split into chunks that
 * threads claim dynamically, so a thread the OS has descheduled (a busy machine) does not hold the others up:
 * whoever runs takes the remaining chunks, and the caller waits for chunks, not for threads.
 */
#ifndef FC_THREADS_H
#define FC_THREADS_H

#include <stdint.h>

struct fc_pool;

/* fn(ctx, chunk, n_chunks, thread): do chunk `chunk` of n_chunks; `thread` < fc_pool_size() indexes per-thread scratch. */
typedef void (*fc_pool_fn)(void * ctx, int32_t chunk, int32_t n_chunks, int32_t thread);

/* n_threads in [1, 1024] (the calling thread counts as one). NULL if threads cannot be created. */
struct fc_pool * fc_pool_init(int32_t n_threads);
void fc_pool_free(struct fc_pool * pool);
int32_t fc_pool_size(const struct fc_pool * pool);

/* Most chunks one job may have (a programmer invariant: callers split work into a few chunks per thread). */
#define FC_POOL_MAX_CHUNKS 32768

/*
 * Run chunks 0..n_chunks-1 of fn on the pool (the caller works too) and return when all are done. Each chunk runs
 * exactly once; at most one thread uses a given `thread` index at a time. One caller at a time (not reentrant).
 */
void fc_pool_run(struct fc_pool * pool, fc_pool_fn fn, void * ctx, int32_t n_chunks);

/* Chunks for n items of which at least `grain` are worth a chunk: 2 per thread at most, 1 (run it on the caller)
   when n < 2 * grain. */
int32_t fc_pool_chunks(const struct fc_pool * pool, int64_t n, int64_t grain);

/* Split [0, n) into nth near-equal chunks aligned to `align`; returns [*begin, *end) of chunk ith. */
void fc_split_range(int64_t n, int32_t ith, int32_t nth, int64_t align, int64_t * begin, int64_t * end);

/* Default compute thread count (at least 1): online CPUs; performance cores on macOS (platform.h). */
int32_t fc_cpu_count(void);

#endif
