/* The reference matmul every backend is verified against: natural order, element by element, double accumulation. */
#include <string.h>

#include "backend.h"

static float value_at(const struct fc_matrix * w, int32_t r, int32_t i) {
    const uint8_t * row = w->data + (size_t)r * w->row_bytes;
    switch (w->type) {
    case FC_DTYPE_F32: { float f; memcpy(&f, row + (size_t)i * 4, 4); return f; }
    case FC_DTYPE_F16: { uint16_t h; memcpy(&h, row + (size_t)i * 2, 2); return fc_f16_to_f32(h); }
    case FC_DTYPE_BF16: { uint16_t h; memcpy(&h, row + (size_t)i * 2, 2); return fc_bf16_to_f32(h); }
    default: {
        int32_t ng = w->cols / w->group_size;
        size_t gi = (size_t)r * (size_t)ng + (size_t)(i / w->group_size);
        float s = fc_bf16_to_f32(w->scales[gi]), b = fc_bf16_to_f32(w->biases[gi]);
        return fc_code_at(row, fc_dtype_bits(w->type), i) * s + b;
    }
    }
}

void fc_matmul_reference(const struct fc_matrix * w, const float * x, float * out, int32_t n_tokens) {
    for (int32_t t = 0; t < n_tokens; t++) {
        for (int32_t r = 0; r < w->rows; r++) {
            double acc = 0.0;
            for (int32_t i = 0; i < w->cols; i++) acc += (double)value_at(w, r, i) * (double)x[(size_t)t * w->cols + i];
            out[(size_t)t * w->rows + r] = (float)acc;
        }
    }
}
