/* Shared basics: error detail, aborts, allocation, half-float conversion, clocks. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

enum fc_status fc_error_set(struct fc_error * err, enum fc_status status, const char * fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char * fc_status_name(enum fc_status status) {
    switch (status) {
    case FC_STATUS_OK: return "ok";
    case FC_STATUS_BAD_REQUEST: return "bad_request";
    case FC_STATUS_BAD_TOKEN: return "bad_token";
    case FC_STATUS_CONTEXT_OVERFLOW: return "context_overflow";
    case FC_STATUS_IO_ERROR: return "io_error";
    case FC_STATUS_LOAD_FAILED: return "load_failed";
    case FC_STATUS_NO_MEMORY: return "no_memory";
    case FC_STATUS_CANCELLED: return "cancelled";
    case FC_STATUS_BUSY: return "busy";
    case FC_STATUS_INTERNAL: return "internal";
    }
    return "internal";
}

void fc_abort(const char * file, int line, const char * what) {
    fprintf(stderr, "flashchat-engine: assertion failed at %s:%d: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

void * fc_xmalloc(size_t n_bytes) {
    void * p = malloc(n_bytes ? n_bytes : 1);
    if (!p) fc_abort(__FILE__, __LINE__, "out of memory");
    return p;
}

void * fc_xcalloc(size_t n, size_t size) {
    void * p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fc_abort(__FILE__, __LINE__, "out of memory");
    return p;
}

void * fc_alloc_aligned(size_t n_bytes) {
    void * p = NULL;
    size_t n = (n_bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    memset(p, 0, n ? n : 64);
    return p;
}

void * fc_alloc_huge(size_t n_bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t n = (n_bytes + huge - 1) / huge * huge;
    void * p = NULL;
    if (posix_memalign(&p, huge, n ? n : huge) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n ? n : huge, MADV_HUGEPAGE);
#endif
    return p;
}

float fc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

double fc_time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t fc_base64_decode(const char * s, uint8_t * out, size_t cap) {
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        const char ch = *s;
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+') v = 62;
        else if (ch == '/') v = 63;
        else return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) out[n] = (uint8_t)(acc >> bits);
            n++;
        }
    }
    for (const char * t = s; *t; t++) if (*t != '=') return -1;
    if (n < cap) memset(out + n, 0, cap - n);
    return (int64_t)n;
}
