/* Shared basics of the engine: status codes, error detail, assertions, bf16/f16 conversion, clocks. */
#ifndef FC_UTIL_H
#define FC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum fc_status {
    FC_STATUS_OK = 0,
    FC_STATUS_BAD_REQUEST,      /* malformed input from the caller */
    FC_STATUS_BAD_TOKEN,        /* a token id outside [0, vocab) */
    FC_STATUS_CONTEXT_OVERFLOW, /* the sequence would not fit the context */
    FC_STATUS_IO_ERROR,         /* a file could not be read or written */
    FC_STATUS_LOAD_FAILED,      /* an artifact is missing, truncated or inconsistent */
    FC_STATUS_NO_MEMORY,
    FC_STATUS_CANCELLED,
    FC_STATUS_BUSY,             /* a request that cannot run while a generation is in progress */
    FC_STATUS_INTERNAL,
};

/* Error detail kept where the protocol loop can report it: a code plus one human line. */
struct fc_error {
    enum fc_status status;
    char message[512];
};

/* Set `err` (may be NULL) and return its status, printf-style. */
enum fc_status fc_error_set(struct fc_error * err, enum fc_status status, const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Protocol name of a status ("bad_request", ...). */
const char * fc_status_name(enum fc_status status);

/* Programmer invariants only (never bad input): abort with file:line. */
void fc_abort(const char * file, int line, const char * what);
#define FC_ASSERT(x) do { if (!(x)) fc_abort(__FILE__, __LINE__, #x); } while (0)

/* Allocation that aborts on failure (for small, fixed-size engine structures). */
void * fc_xmalloc(size_t n_bytes);
void * fc_xcalloc(size_t n, size_t size);
/* 64-byte aligned, zeroed; NULL on failure (for large buffers whose failure is reportable). */
void * fc_alloc_aligned(size_t n_bytes);
/*
 * 2 MB aligned and advised for transparent huge pages, NOT zeroed; free() releases it. For weights
 * read on every token: with 4 KB pages (e.g. a file mapping) TLB misses and the prefetcher stopping at
 * every page boundary cost several times the matvec's own time.
 */
void * fc_alloc_huge(size_t n_bytes);

static inline float fc_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float fc_f16_to_f32(uint16_t h);

/* Monotonic time in milliseconds. */
double fc_time_ms(void);
/* Decode base64 (standard alphabet, optional = padding) into out[cap]; bytes past the decoded length are
   zeroed, decoded bytes past cap dropped. Returns the decoded length, or -1 on a character outside base64. */
int64_t fc_base64_decode(const char * s, uint8_t * out, size_t cap);

#endif
