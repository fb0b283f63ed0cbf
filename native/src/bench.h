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
};

/* Returns the process exit code (0 ok, 1 verification failed). `e` may be NULL for "kernels". */
int fc_bench_run(struct fc_engine * e, const struct fc_bench_options * opt);

#endif
