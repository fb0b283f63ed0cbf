/* A small JSON reader (manifests, protocol requests) and string-escaping helper for replies. */
#ifndef FC_JSON_H
#define FC_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum fc_json_type {
    FC_JSON_NULL,
    FC_JSON_BOOL,
    FC_JSON_NUMBER,
    FC_JSON_STRING,
    FC_JSON_ARRAY,
    FC_JSON_OBJECT,
};

struct fc_json {
    enum fc_json_type type;
    int boolean;
    double number;
    char * string;          /* NUL-terminated, decoded (STRING) */
    size_t string_len;      /* bytes, not counting the NUL (strings may hold \u0000) */
    struct fc_json * items; /* ARRAY elements or OBJECT values */
    char ** keys;           /* OBJECT keys, parallel to items */
    int32_t n_items;
};

/*
 * Parse `len` bytes of `text` into a tree. Returns NULL on malformed input (with a
 * message in `err`), on nesting deeper than 64, or on trailing garbage.
 */
struct fc_json * fc_json_parse(const char * text, size_t len, char * err, size_t err_size);
void fc_json_free(struct fc_json * v);

/* Member `key` of an object, or NULL (also when `obj` is not an object). */
const struct fc_json * fc_json_get(const struct fc_json * obj, const char * key);

/* 1 if `v` is a number with an integral value in [min, max]; the value goes to `out`. */
int fc_json_as_int64(const struct fc_json * v, int64_t min, int64_t max, int64_t * out);

/* Write `s` as a JSON string literal (with quotes) to `f`. */
void fc_json_write_string(FILE * f, const char * s);

#endif
