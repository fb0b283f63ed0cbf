/* A fixed pool of compute threads: run one function on every thread and wait (fork-join). */
#ifndef FC_THREADS_H
#define FC_THREADS_H

#include <stdint.h>

struct fc_pool;

/* fn(ctx, ith, nth): thread ith of nth does its share. */
typedef void (*fc_pool_fn)(void * ctx, int32_t ith, int32_t nth);

/* n_threads >= 1 (the calling thread counts as one). NULL if threads cannot be created. */
struct fc_pool * fc_pool_init(int32_t n_threads);
void fc_pool_free(struct fc_pool * pool);
int32_t fc_pool_size(const struct fc_pool * pool);

/* Run fn on all threads (the caller is thread 0) and return when every one has finished. */
void fc_pool_run(struct fc_pool * pool, fc_pool_fn fn, void * ctx);

/* Split [0, n) into nth near-equal chunks aligned to `align`; returns [*begin, *end) of chunk ith. */
void fc_split_range(int64_t n, int32_t ith, int32_t nth, int64_t align, int64_t * begin, int64_t * end);

/* Number of online CPUs (at least 1). */
int32_t fc_cpu_count(void);

#endif
