// Matrix times activations: MLX affine 2/4/8-bit (groups of 64, bf16 scale and bias, codes uint32-packed
// along the input dimension, least significant bits first) and f32/f16/bf16 weights.
//   fc_matvec_*: each threadgroup row block reads its weights once per token (decode).
//   fc_matmul_*: each weight chunk is dequantized once and applied to FC_MM_TOKENS tokens (prefill).
// A simdgroup owns FC_MM_ROWS rows; its 32 lanes stride over chunks of 16 input values.
#ifndef FC_METAL_COMMON
#include "common.metal"
#endif

// The 16 codes of chunk c of a row (bits/2 words), as floats q (w = q * scale + bias).
template <int BITS>
inline void fc_codes16(device const uint * w, thread float * q) {
    constexpr uint MASK = (1u << BITS) - 1u;
    uint words[BITS / 2];
    for (int k = 0; k < BITS / 2; k++) words[k] = w[k];
    for (int j = 0; j < 16; j++) q[j] = float((words[(j * BITS) / 32] >> ((j * BITS) % 32)) & MASK);
}

// Decode: x loaded once per chunk for the simdgroup's rows; sum q*x * scale + bias * sum x.
template <int BITS>
inline void fc_matvec_q(constant fc_matmul_args & a, device const uchar * codes, device const ushort * scales,
                        device const ushort * biases, device const float * x, device float * out, uint2 tg, ushort sg,
                        ushort lane) {
    const int r0 = (int(tg.x) * FC_MM_SIMDGROUPS + sg) * FC_MM_ROWS;
    const int n_chunks = a.cols / 16, ng = a.cols / FC_QGROUP;
    x += (ulong)tg.y * a.x_stride;
    out += (ulong)tg.y * a.out_stride;
    float acc[FC_MM_ROWS];
    for (int r = 0; r < FC_MM_ROWS; r++) acc[r] = 0.0f;
    for (int c = lane; c < n_chunks; c += FC_SIMD_WIDTH) {
        float xv[16];
        float xs = 0.0f;
        for (int j = 0; j < 16; j++) {
            xv[j] = x[c * 16 + j];
            xs += xv[j];
        }
        const int g = c / (FC_QGROUP / 16);
        for (int r = 0; r < FC_MM_ROWS; r++) {
            const int row = r0 + r;
            if (row >= a.rows) break;
            float q[16];
            fc_codes16<BITS>((device const uint *)(codes + (ulong)row * a.row_bytes) + c * (BITS / 2), q);
            float d = 0.0f;
            for (int j = 0; j < 16; j++) d = fma(q[j], xv[j], d);
            acc[r] += fc_bf16(scales[row * ng + g]) * d + fc_bf16(biases[row * ng + g]) * xs;
        }
    }
    for (int r = 0; r < FC_MM_ROWS; r++) {
        const float s = simd_sum(acc[r]);
        if (lane == 0 && r0 + r < a.rows) out[r0 + r] = s;
    }
}

// Prefill: each chunk of each row is dequantized once and dotted with up to FC_MM_TOKENS tokens.
template <int BITS>
inline void fc_matmul_q(constant fc_matmul_args & a, device const uchar * codes, device const ushort * scales,
                        device const ushort * biases, device const float * x, device float * out, uint2 tg, ushort sg,
                        ushort lane) {
    const int r0 = (int(tg.x) * FC_MM_SIMDGROUPS + sg) * FC_MM_ROWS;
    const int t0 = int(tg.y) * FC_MM_TOKENS;
    const int nt = min(FC_MM_TOKENS, a.n_tokens - t0);
    const int n_chunks = a.cols / 16, ng = a.cols / FC_QGROUP;
    float acc[FC_MM_ROWS][FC_MM_TOKENS];
    for (int r = 0; r < FC_MM_ROWS; r++)
        for (int t = 0; t < FC_MM_TOKENS; t++) acc[r][t] = 0.0f;
    for (int c = lane; c < n_chunks; c += FC_SIMD_WIDTH) {
        const int g = c / (FC_QGROUP / 16);
        for (int r = 0; r < FC_MM_ROWS; r++) {
            const int row = r0 + r;
            if (row >= a.rows) break;
            float w[16];
            fc_codes16<BITS>((device const uint *)(codes + (ulong)row * a.row_bytes) + c * (BITS / 2), w);
            const float s = fc_bf16(scales[row * ng + g]), b = fc_bf16(biases[row * ng + g]);
            for (int j = 0; j < 16; j++) w[j] = fma(w[j], s, b);
            for (int t = 0; t < FC_MM_TOKENS; t++) {
                if (t >= nt) break;
                device const float * xc = x + (ulong)(t0 + t) * a.x_stride + c * 16;
                float d = 0.0f;
                for (int j = 0; j < 16; j++) d = fma(w[j], xc[j], d);
                acc[r][t] += d;
            }
        }
    }
    for (int r = 0; r < FC_MM_ROWS; r++) {
        for (int t = 0; t < FC_MM_TOKENS; t++) {
            const float s = simd_sum(acc[r][t]);
            if (lane == 0 && r0 + r < a.rows && t < nt) out[(ulong)(t0 + t) * a.out_stride + r0 + r] = s;
        }
    }
}

inline float fc_value(device const float * p, int i) { return p[i]; }
inline float fc_value(device const half * p, int i) { return float(p[i]); }
inline float fc_value(device const ushort * p, int i) { return fc_bf16(p[i]); }

// Float weights (any cols): NT tokens per threadgroup, tokens tg.y * NT ...
template <typename T, int NT>
inline void fc_matmul_f(constant fc_matmul_args & a, device const uchar * data, device const float * x,
                        device float * out, uint2 tg, ushort sg, ushort lane) {
    const int r0 = (int(tg.x) * FC_MM_SIMDGROUPS + sg) * FC_MM_ROWS;
    const int t0 = int(tg.y) * NT;
    const int nt = min(NT, a.n_tokens - t0);
    const int n_chunks = (a.cols + 15) / 16;
    float acc[FC_MM_ROWS][NT];
    for (int r = 0; r < FC_MM_ROWS; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    for (int c = lane; c < n_chunks; c += FC_SIMD_WIDTH) {
        const int n16 = min(16, a.cols - c * 16);
        for (int r = 0; r < FC_MM_ROWS; r++) {
            const int row = r0 + r;
            if (row >= a.rows) break;
            device const T * wr = (device const T *)(data + (ulong)row * a.row_bytes) + c * 16;
            float w[16];
            for (int j = 0; j < 16; j++) w[j] = j < n16 ? fc_value(wr, j) : 0.0f;
            for (int t = 0; t < NT; t++) {
                if (t >= nt) break;
                device const float * xc = x + (ulong)(t0 + t) * a.x_stride + c * 16;
                float d = 0.0f;
                for (int j = 0; j < n16; j++) d = fma(w[j], xc[j], d);
                acc[r][t] += d;
            }
        }
    }
    for (int r = 0; r < FC_MM_ROWS; r++) {
        for (int t = 0; t < NT; t++) {
            const float s = simd_sum(acc[r][t]);
            if (lane == 0 && r0 + r < a.rows && t < nt) out[(ulong)(t0 + t) * a.out_stride + r0 + r] = s;
        }
    }
}

kernel void fc_matvec_q2(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matvec_q<2>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matvec_q4(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matvec_q<4>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matvec_q8(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matvec_q<8>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matmul_q2(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_q<2>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matmul_q4(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_q<4>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matmul_q8(constant fc_matmul_args & a [[buffer(0)]], device const uchar * codes [[buffer(1)]],
                         device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                         device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                         uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                         ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_q<8>(a, codes, scales, biases, x, out, tg, sg, lane);
}

kernel void fc_matvec_f32(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                          device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                          uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                          ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<float, 1>(a, data, x, out, tg, sg, lane);
}

kernel void fc_matvec_f16(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                          device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                          uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                          ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<half, 1>(a, data, x, out, tg, sg, lane);
}

kernel void fc_matvec_bf16(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                           device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                           uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                           ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<ushort, 1>(a, data, x, out, tg, sg, lane);
}

kernel void fc_matmul_f32(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                          device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                          uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                          ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<float, FC_MM_TOKENS>(a, data, x, out, tg, sg, lane);
}

kernel void fc_matmul_f16(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                          device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                          uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                          ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<half, FC_MM_TOKENS>(a, data, x, out, tg, sg, lane);
}

kernel void fc_matmul_bf16(constant fc_matmul_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                           device const float * x [[buffer(4)]], device float * out [[buffer(5)]],
                           uint2 tg [[threadgroup_position_in_grid]], ushort sg [[simdgroup_index_in_threadgroup]],
                           ushort lane [[thread_index_in_simdgroup]]) {
    fc_matmul_f<ushort, FC_MM_TOKENS>(a, data, x, out, tg, sg, lane);
}

// Token embeddings: one thread per output value, any dtype (the type is uniform over the dispatch).
kernel void fc_embed(constant fc_embed_args & a [[buffer(0)]], device const uchar * data [[buffer(1)]],
                     device const ushort * scales [[buffer(2)]], device const ushort * biases [[buffer(3)]],
                     device const int * ids [[buffer(4)]], device float * out [[buffer(5)]],
                     uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= a.n_tokens * a.cols) return;
    const int t = int(gid) / a.cols, i = int(gid) % a.cols;
    const ulong row = (ulong)ids[t];
    device const uchar * r = data + row * a.row_bytes;
    float v;
    if (a.type == 0) {
        v = ((device const float *)r)[i];
    } else if (a.type == 1) {
        v = float(((device const half *)r)[i]);
    } else if (a.type == 2) {
        v = fc_bf16(((device const ushort *)r)[i]);
    } else {
        const int bits = a.type == 3 ? 2 : a.type == 4 ? 4 : 8;
        const uint bit = uint(i) * uint(bits);
        const uint q = (uint(r[bit / 8]) >> (bit % 8)) & ((1u << bits) - 1u);
        const ulong g = row * (ulong)(a.cols / a.group_size) + (ulong)(i / a.group_size);
        v = float(q) * fc_bf16(scales[g]) + fc_bf16(biases[g]);
    }
    out[gid] = v;
}
