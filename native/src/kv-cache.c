/* The growing K/V cache: reserve, commit in chunks, store rows (f16, bf16, q8, f32), read them back as floats. */
#define _GNU_SOURCE
#include "kv-cache.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

/* positions made usable at a time: small enough that memory follows the sequence, big enough to be rare */
#define KV_CHUNK 1024

const char * fc_kv_type_name(enum fc_kv_type t) {
    switch (t) {
    case FC_KV_F16: return "f16";
    case FC_KV_BF16: return "bf16";
    case FC_KV_Q8: return "q8";
    case FC_KV_F32: return "f32";
    }
    return "f16";
}

int fc_kv_type_parse(const char * s, enum fc_kv_type * out) {
    static const enum fc_kv_type all[] = { FC_KV_F16, FC_KV_BF16, FC_KV_Q8, FC_KV_F32 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, fc_kv_type_name(all[i])) == 0) { *out = all[i]; return 1; }
    }
    return 0;
}

size_t fc_kv_row_bytes(enum fc_kv_type t, int32_t head_dim) {
    switch (t) {
    case FC_KV_F16:
    case FC_KV_BF16: return (size_t)head_dim * 2;
    case FC_KV_Q8: return sizeof(float) + (size_t)head_dim; /* scale, then one signed byte per value */
    case FC_KV_F32: return (size_t)head_dim * 4;
    }
    return (size_t)head_dim * 4;
}

uint16_t fc_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0); /* inf, nan */
    if (ax >= 0x477ff000u) return sign | 0x7c00;                                  /* rounds past 65504 */
    if (ax < 0x38800000u) {                                                       /* below 2^-14: subnormal */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 0x1p24f); /* exact scaling, then round to nearest even */
    }
    uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | ((ax & 0x7fffffu) >> 13);
    const uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++; /* a carry into the exponent is right too */
    return sign | (uint16_t)h;
}

uint16_t fc_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* nan stays nan */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* Branch-free f16 -> f32 (vectorizes): the 15 low bits as f32 bits, rescaled by 2^(127-15); inf/nan by a mask. */
static inline float f16_to_f32(uint16_t h) {
    const uint32_t em = h & 0x7fffu;
    uint32_t bits = em << 13;
    float f;
    memcpy(&f, &bits, 4);
    f *= 0x1p112f;
    memcpy(&bits, &f, 4);
    const uint32_t special = 0u - (uint32_t)(em >= 0x7c00u);
    bits = (bits & ~special) | ((0x7f800000u | (em << 13)) & special);
    bits |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &bits, 4);
    return f;
}

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

enum fc_status fc_kv_init(struct fc_kv_cache * kv, enum fc_kv_type type, int32_t n_layers, int32_t n_kv, int32_t head_dim,
                          int32_t capacity, struct fc_error * err) {
    memset(kv, 0, sizeof *kv);
    kv->type = type;
    kv->n_layers = n_layers;
    kv->n_kv = n_kv;
    kv->head_dim = head_dim;
    kv->row_bytes = fc_kv_row_bytes(type, head_dim);
    kv->pos_bytes = (size_t)n_kv * kv->row_bytes;
    kv->capacity = capacity;
    const size_t page = page_size();
    kv->region_bytes = ((size_t)capacity * kv->pos_bytes + page - 1) / page * page;
    if (n_layers == 0 || kv->region_bytes == 0) return FC_STATUS_OK;
    void * p = mmap(NULL, kv->region_bytes * 2 * (size_t)n_layers, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return fc_error_set(err, FC_STATUS_NO_MEMORY, "cannot reserve %.1f GB of address space for the KV cache (%s)",
                            (double)kv->region_bytes * 2 * n_layers / 1e9, strerror(errno));
    }
    kv->base = p;
    return FC_STATUS_OK;
}

void fc_kv_free(struct fc_kv_cache * kv) {
    if (kv->base) munmap(kv->base, kv->region_bytes * 2 * (size_t)kv->n_layers);
    memset(kv, 0, sizeof *kv);
}

enum fc_status fc_kv_reserve(struct fc_kv_cache * kv, int32_t n, struct fc_error * err) {
    if (n <= kv->committed || !kv->base) return FC_STATUS_OK;
    FC_ASSERT(n <= kv->capacity);
    int64_t want = ((int64_t)n + KV_CHUNK - 1) / KV_CHUNK * KV_CHUNK;
    if (want > kv->capacity) want = kv->capacity;
    const size_t page = page_size();
    const size_t bytes = ((size_t)want * kv->pos_bytes + page - 1) / page * page;
    for (int32_t r = 0; r < 2 * kv->n_layers; r++) {
        if (mprotect(kv->base + (size_t)r * kv->region_bytes, bytes, PROT_READ | PROT_WRITE) != 0) {
            return fc_error_set(err, FC_STATUS_NO_MEMORY, "out of memory growing the KV cache to %lld positions (%s)",
                                (long long)want, strerror(errno));
        }
    }
    kv->committed = (int32_t)want;
    return FC_STATUS_OK;
}

size_t fc_kv_committed_bytes(const struct fc_kv_cache * kv) {
    return (size_t)kv->committed * kv->pos_bytes * 2 * (size_t)kv->n_layers;
}

void fc_kv_store(struct fc_kv_cache * kv, int32_t layer, int which, int32_t pos, const float * x) {
    FC_ASSERT(pos < kv->committed);
    uint8_t * dst = fc_kv_region(kv, layer, which) + (size_t)pos * kv->pos_bytes;
    const int32_t hd = kv->head_dim;
    for (int32_t h = 0; h < kv->n_kv; h++, dst += kv->row_bytes, x += hd) {
        switch (kv->type) {
        case FC_KV_F32: memcpy(dst, x, (size_t)hd * 4); break;
        case FC_KV_F16:
            for (int32_t i = 0; i < hd; i++) { uint16_t v = fc_f32_to_f16(x[i]); memcpy(dst + 2 * i, &v, 2); }
            break;
        case FC_KV_BF16:
            for (int32_t i = 0; i < hd; i++) { uint16_t v = fc_f32_to_bf16(x[i]); memcpy(dst + 2 * i, &v, 2); }
            break;
        case FC_KV_Q8: {
            float mx = 0.0f;
            for (int32_t i = 0; i < hd; i++) mx = fabsf(x[i]) > mx ? fabsf(x[i]) : mx;
            const float scale = mx / 127.0f, inv = mx > 0.0f ? 127.0f / mx : 0.0f;
            memcpy(dst, &scale, sizeof scale);
            int8_t * q = (int8_t *)(dst + sizeof scale);
            for (int32_t i = 0; i < hd; i++) {
                long v = lrintf(x[i] * inv);
                q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            break;
        }
        }
    }
}

FC_SIMD_CLONES const float * fc_kv_rows(const struct fc_kv_cache * kv, int32_t layer, int which, int32_t h, int32_t j0, int32_t j1, float * buf,
                         size_t * stride) {
    const uint8_t * src = fc_kv_region(kv, layer, which) + (size_t)j0 * kv->pos_bytes + (size_t)h * kv->row_bytes;
    const int32_t hd = kv->head_dim;
    if (kv->type == FC_KV_F32) {
        *stride = (size_t)kv->n_kv * hd;
        return (const float *)(const void *)src;
    }
    *stride = (size_t)hd;
    for (int32_t j = j0; j < j1; j++, src += kv->pos_bytes, buf += hd) {
        switch (kv->type) {
        case FC_KV_F16: {
            const uint16_t * p = (const uint16_t *)(const void *)src;
            for (int32_t i = 0; i < hd; i++) buf[i] = f16_to_f32(p[i]);
            break;
        }
        case FC_KV_BF16: {
            const uint16_t * p = (const uint16_t *)(const void *)src;
            for (int32_t i = 0; i < hd; i++) buf[i] = fc_bf16_to_f32(p[i]);
            break;
        }
        case FC_KV_Q8: {
            float scale;
            memcpy(&scale, src, sizeof scale);
            const int8_t * q = (const int8_t *)(src + sizeof scale);
            for (int32_t i = 0; i < hd; i++) buf[i] = (float)q[i] * scale;
            break;
        }
        case FC_KV_F32: break;
        }
    }
    return buf - (size_t)(j1 - j0) * hd;
}
