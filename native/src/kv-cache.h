/*
 * The K/V cache of the full-attention layers: one row per (position, kv head) in f16, bf16, 8-bit
 * (one f32 scale per row + int8) or f32. Address space for the whole context is reserved at start
 * (PROT_NONE, no memory); it is made usable in chunks as the sequence grows, so memory follows the
 * tokens held, not the context.
 */
#ifndef FC_KV_CACHE_H
#define FC_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * The attention's loops are plain C the compiler vectorizes; on x86-64 Linux with gcc they are also built
 * for AVX2 and picked at load time (target_clones), as the default build targets the baseline CPU. Not under
 * ThreadSanitizer: the ifunc resolver runs (instrumented) before the TSan runtime is up and crashes the program.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && defined(__GLIBC__) && \
    !defined(__SANITIZE_THREAD__) /* ifunc */
#define FC_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FC_SIMD_CLONES
#endif

enum fc_kv_type { FC_KV_F16 = 0, FC_KV_BF16, FC_KV_Q8, FC_KV_F32 };

const char * fc_kv_type_name(enum fc_kv_type t);
/* 1 and *out set for "f16", "bf16", "q8", "f32"; 0 otherwise. */
int fc_kv_type_parse(const char * s, enum fc_kv_type * out);
/* Bytes of one row (head_dim values of one kv head at one position). */
size_t fc_kv_row_bytes(enum fc_kv_type t, int32_t head_dim);

struct fc_kv_cache {
    enum fc_kv_type type;
    int32_t n_layers, n_kv, head_dim;
    size_t row_bytes;     /* one kv head at one position */
    size_t pos_bytes;     /* n_kv rows: one position of one layer's K (or V) */
    size_t region_bytes;  /* page-rounded capacity * pos_bytes: the stride between regions */
    int32_t capacity;     /* positions reserved (the context) */
    int32_t committed;    /* positions usable now */
    uint8_t * base;       /* [n_layers][2 (K, V)] regions */
};

/* Reserve address space for `capacity` positions; nothing is committed yet. */
enum fc_status fc_kv_init(struct fc_kv_cache * kv, enum fc_kv_type type, int32_t n_layers, int32_t n_kv, int32_t head_dim,
                          int32_t capacity, struct fc_error * err);
void fc_kv_free(struct fc_kv_cache * kv);
/* Make positions [0, n) usable (n <= capacity): grows in chunks, never shrinks. */
enum fc_status fc_kv_reserve(struct fc_kv_cache * kv, int32_t n, struct fc_error * err);
/* Bytes committed so far (all layers, K and V). */
size_t fc_kv_committed_bytes(const struct fc_kv_cache * kv);

/* The raw rows of layer `layer`'s K (which 0) or V (which 1), position 0 first. */
static inline uint8_t * fc_kv_region(const struct fc_kv_cache * kv, int32_t layer, int which) {
    return kv->base + (size_t)(2 * layer + which) * kv->region_bytes;
}

/* Store n_kv * head_dim floats as position `pos` of layer `layer`'s K or V. */
void fc_kv_store(struct fc_kv_cache * kv, int32_t layer, int which, int32_t pos, const float * x);
/*
 * Rows [j0, j1) of kv head `h` as floats: returns either a pointer into the cache (f32) or `buf`
 * ([(j1 - j0) * head_dim], filled); *stride gets the floats between consecutive rows.
 */
const float * fc_kv_rows(const struct fc_kv_cache * kv, int32_t layer, int which, int32_t h, int32_t j0, int32_t j1, float * buf,
                         size_t * stride);

/* f32 <-> f16 (round to nearest even), exposed for tests. */
uint16_t fc_f32_to_f16(float f);
uint16_t fc_f32_to_bf16(float f);

#endif
