/* Benchmark and verification modes of the engine binary (flashchat-engine bench MODE ...). */
#ifndef FC_BENCH_H
#define FC_BENCH_H

#include "engine.h"

struct fc_bench_options {
    const char * mode;  /* run verify bench moe moebench full fullbench prefill kernels */
    int32_t iters;      /* <= 0: mode default */
    int32_t layer;
    int json;           /* one JSON line instead of text */
    int32_t prompt;     /* prefill: prompt tokens (<= 0: 512) */
    int32_t threads;    /* membw: the most threads to measure (<= 0: all CPUs) */
};

/* Returns the process exit code (0 ok, 1 verification failed). `e` may be NULL for "kernels" and "membw". */
int fc_bench_run(struct fc_engine * e, const struct fc_bench_options * opt);

/* Read bandwidth of `threads` threads streaming 64 MiB each at once: median / min / max GB/s of `runs`; 0 on failure. */
int fc_bench_read_bandwidth(int threads, int runs, double * median, double * lo, double * hi);
/*
 * `flashchat-engine evict FILE...`: drop each file's pages from the page cache (posix_fadvise DONTNEED after
 * writing dirty pages); prints one JSON line with the bytes resident before and after (mincore). Exit 0 ok, 1 a
 * file could not be opened, 2 the OS has no posix_fadvise.
 */
int fc_bench_evict(int n, char ** paths);
/* The core clock in GHz from a chain of dependent adds (one per cycle); 0 where not measured. */
double fc_bench_clock_ghz(void);

#endif
