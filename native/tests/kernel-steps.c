/*
 * One CPU kernel call on synthetic data, for counting the instructions it executes (qemu-aarch64 -d exec; see
 * `make cross-insns`): kernel-steps SET MODE BITS GROUPS, where SET is a kernel set (0..3 or a name), MODE is
 * decode (one row x one token: dot_q, or matmul_qx in the int8 sets) or prefill (4 rows x 4 tokens: dequant_q +
 * dot4x4, or matmul_qx), GROUPS the 64-weight groups per row. The difference between two GROUPS values, divided by
 * the groups (x rows x tokens) between them, is the cost per group without the fixed costs. A 5th argument "skip"
 * does everything but the call (the baseline to subtract: the synthetic data and x preparation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "util.h"

int main(int argc, char ** argv) {
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "skip") == 0)) {
        fprintf(stderr, "usage: kernel-steps SET decode|prefill BITS GROUPS [skip]\n");
        return 2;
    }
    const struct fc_cpu_kernels * k = fc_cpu_kernels_by_name(argv[1]);
    const int prefill = strcmp(argv[2], "prefill") == 0, bits = atoi(argv[3]), ng = atoi(argv[4]);
    if (!k || (bits != 2 && bits != 4 && bits != 8) || ng < 1) {
        fprintf(stderr, "kernel-steps: unknown set, bits or groups\n");
        return 2;
    }
    const int rows = prefill ? 4 : 1, tokens = prefill ? 4 : 1, cols = ng * FC_QK, bi = fc_bits_index(bits);
    const size_t row_bytes = (size_t)cols * bits / 8;
    uint8_t * codes = fc_alloc_aligned(rows * row_bytes);
    uint16_t * sc = fc_alloc_aligned((size_t)rows * ng * 2), * bs = fc_alloc_aligned((size_t)rows * ng * 2);
    float * x = fc_alloc_aligned((size_t)tokens * cols * 4), * xp = fc_alloc_aligned((size_t)tokens * cols * 4);
    float * xsum = fc_alloc_aligned((size_t)tokens * ng * 4), * xd = fc_alloc_aligned((size_t)tokens * ng * 4);
    float * xqs = fc_alloc_aligned((size_t)tokens * ng * 4), * deq = fc_alloc_aligned((size_t)rows * cols * 4);
    int8_t * xq = fc_alloc_aligned((size_t)tokens * ng * FC_QX_BYTES);
    float out[16];
    for (size_t i = 0; i < rows * row_bytes; i++) codes[i] = (uint8_t)(i * 37 + 11);
    for (size_t i = 0; i < (size_t)rows * ng; i++) sc[i] = bs[i] = 0x3c00; /* bf16 1/128 */
    for (size_t i = 0; i < (size_t)tokens * cols; i++) x[i] = (float)((int)(i % 13) - 6) * 0.1f;
    for (int t = 0; t < tokens; t++) {
        fc_cpu_prepare_x(bits, x + (size_t)t * cols, cols, xp + (size_t)t * cols, xsum + (size_t)t * ng);
        fc_cpu_prepare_xq(bits, x + (size_t)t * cols, cols, xq + (size_t)t * ng * FC_QX_BYTES, xd + t * ng, xsum + t * ng, xqs + t * ng);
    }
    /* the measured call (the preparation above runs whatever the kernel, so it cancels in the difference) */
    memset(out, 0, sizeof out);
    if (argc == 6) {
        /* baseline: no call */
    } else if (k->matmul_qx[bi]) {
        k->matmul_qx[bi](codes, row_bytes, sc, bs, rows, ng, xq, xd, xsum, xqs, tokens, out, (size_t)rows);
    } else if (!prefill) {
        out[0] = k->dot_q[bi](codes, sc, bs, xp, xsum, ng);
    } else {
        for (int r = 0; r < rows; r++) k->dequant_q[bi](codes + r * row_bytes, sc + (size_t)r * ng, bs + (size_t)r * ng, ng, deq + (size_t)r * cols);
        k->dot4x4(deq, (size_t)cols, xp, (size_t)cols, cols, out);
    }
    printf("%s %s %d-bit %d groups: %g\n", k->name, argv[2], bits, ng, (double)out[0]);
    return 0;
}
