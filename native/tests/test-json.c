/* The JSON reader: valid documents, escapes, numbers, and malformed input that must be rejected. */
#include <stdio.h>
#include <string.h>

#include "json.h"

static int failures = 0;

static void expect(int cond, const char * what) {
    if (!cond) {
        failures++;
        printf("FAIL %s\n", what);
    }
}

int main(void) {
    char err[128];
    const char * doc = "{\"op\":\"generate\",\"tokens\":[1,2,3],\"x\":{\"a\":-1.5e2,\"b\":true,\"c\":null},"
                       "\"s\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\"}";
    struct fc_json * v = fc_json_parse(doc, strlen(doc), err, sizeof err);
    expect(v != NULL, "valid document parses");
    if (v) {
        const struct fc_json * t = fc_json_get(v, "tokens");
        int64_t x;
        expect(t && t->type == FC_JSON_ARRAY && t->n_items == 3, "array of 3");
        expect(t && fc_json_as_int64(&t->items[2], 0, 10, &x) && x == 3, "integer item");
        expect(fc_json_get(fc_json_get(v, "x"), "a")->number == -150.0, "exponent number");
        expect(fc_json_get(fc_json_get(v, "x"), "b")->boolean == 1, "true");
        expect(fc_json_get(fc_json_get(v, "x"), "c")->type == FC_JSON_NULL, "null");
        const struct fc_json * s = fc_json_get(v, "s");
        expect(s && strcmp(s->string, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80") == 0, "escapes and surrogate pairs");
        expect(!fc_json_as_int64(fc_json_get(fc_json_get(v, "x"), "a"), 0, 10, &x), "range check");
        fc_json_free(v);
    }
    const char * bad[] = { "", "{", "{\"a\"}", "[1,]", "{\"a\":1,}", "nul", "\"abc", "[1 2]", "{\"a\":01x}", "1 2",
                           "{\"a\":\"\\x\"}", "[\"\x01\"]", "-", "[1e999]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fc_json * b = fc_json_parse(bad[i], strlen(bad[i]), err, sizeof err);
        char what[64];
        snprintf(what, sizeof what, "malformed #%zu rejected", i);
        expect(b == NULL, what);
        fc_json_free(b);
    }
    /* nesting deeper than the limit is an error, not a stack overflow */
    char deep[2001];
    memset(deep, '[', 2000);
    deep[2000] = '\0';
    expect(fc_json_parse(deep, 2000, err, sizeof err) == NULL, "deep nesting rejected");
    printf("%s\n", failures ? "json: FAILED" : "json: ok");
    return failures ? 1 : 0;
}
