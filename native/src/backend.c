/* Backend selection by name. */
#include <string.h>

#include "backend.h"

enum fc_status fc_backend_init(struct fc_backend * be, const char * name, struct fc_pool * pool, struct fc_error * err) {
    memset(be, 0, sizeof *be);
    if (strcmp(name, "cpu") == 0) return fc_backend_cpu_init(be, pool, NULL, err);
    if (strncmp(name, "cpu:", 4) == 0) return fc_backend_cpu_init(be, pool, name + 4, err);
    if (strcmp(name, "metal") == 0) {
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "the metal backend is not part of this build (cpu only)");
    }
    return fc_error_set(err, FC_STATUS_BAD_REQUEST, "unknown backend '%s' (expected cpu or metal)", name);
}

void fc_matmul_batch(struct fc_backend * be, const struct fc_matmul_item * items, int32_t n_items, int32_t n_tokens) {
    if (be->ops->matmul_batch && n_items > 1) {
        be->ops->matmul_batch(be, items, n_items, n_tokens);
        return;
    }
    for (int32_t i = 0; i < n_items; i++) be->ops->matmul(be, items[i].w, items[i].x, items[i].out, n_tokens);
}

void fc_matmul_n(struct fc_backend * be, const struct fc_matrix * const * ws, float * const * outs, int32_t n_w, const float * x,
                 int32_t n_tokens) {
    struct fc_matmul_item items[FC_MATMUL_BATCH_MAX];
    FC_ASSERT(n_w <= FC_MATMUL_BATCH_MAX);
    for (int32_t i = 0; i < n_w; i++) items[i] = (struct fc_matmul_item){ ws[i], x, outs[i] };
    fc_matmul_batch(be, items, n_w, n_tokens);
}

void fc_backend_free(struct fc_backend * be) {
    if (be->ops && be->ops->free) be->ops->free(be);
    memset(be, 0, sizeof *be);
}
