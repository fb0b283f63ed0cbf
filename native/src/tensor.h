/* Weight matrices as the kernels see them: dtype, shape, and pointers into mapped or streamed bytes. */
#ifndef FC_TENSOR_H
#define FC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum fc_dtype {
    FC_DTYPE_F32,
    FC_DTYPE_F16,
    FC_DTYPE_BF16,
    FC_DTYPE_Q2, /* MLX affine, 2-bit codes, bf16 scale + bias per group */
    FC_DTYPE_Q4,
    FC_DTYPE_Q8,
};

/*
 * A linear layer's weight, logically [rows (out), cols (in)].
 * Quantized (Q2/Q4/Q8): row r's codes are `row_bytes` bytes at data + r * row_bytes, codes along
 * the input dimension, least significant bits first; scales/biases are bf16 [rows, cols / group_size];
 * w[r][i] = q * scale + bias. Unquantized: data holds rows * cols values of `type`.
 */
struct fc_matrix {
    enum fc_dtype type;
    int32_t rows;
    int32_t cols;
    int32_t group_size;      /* quantized only */
    size_t row_bytes;
    const uint8_t * data;
    const uint16_t * scales; /* bf16 [rows, cols / group_size] */
    const uint16_t * biases; /* bf16 [rows, cols / group_size] */
};

static inline int fc_dtype_bits(enum fc_dtype t) {
    switch (t) {
    case FC_DTYPE_Q2: return 2;
    case FC_DTYPE_Q4: return 4;
    case FC_DTYPE_Q8: return 8;
    case FC_DTYPE_F32: return 32;
    default: return 16;
    }
}

static inline int fc_dtype_is_quantized(enum fc_dtype t) {
    return t == FC_DTYPE_Q2 || t == FC_DTYPE_Q4 || t == FC_DTYPE_Q8;
}

/* Bytes of weight data the matrix holds (codes + scales + biases). */
/* The unsigned code of element i of a packed row of `bits`-bit codes (little-endian bit order). */
static inline float fc_code_at(const uint8_t * row, int bits, int32_t i) {
    size_t bit = (size_t)i * (size_t)bits;
    return (float)((row[bit / 8] >> (bit % 8)) & ((1u << bits) - 1u));
}

static inline size_t fc_matrix_bytes(const struct fc_matrix * m) {
    size_t b = (size_t)m->rows * m->row_bytes;
    if (fc_dtype_is_quantized(m->type)) b += 2 * (size_t)m->rows * (size_t)(m->cols / m->group_size) * 2;
    return b;
}

#endif
