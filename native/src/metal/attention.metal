// Gated full attention over the KV cache: storing a step's K/V rows (float, half, bf16 or 8-bit cache), then causal
// grouped-query attention of each (token, head), times the sigmoid of its output gate.
#ifndef FC_METAL_COMMON
#include "common.metal"
#endif

// A cache element type: its storage, the conversions (bf16 rounds to nearest even, as the CPU's cache), and
// how the attention reads a row (`row` = kv head kvh at position j; value d = get(row, d) * scale(row)).
struct fc_kv_f32 {
    typedef float T;
    static T put(float x) { return x; }
    static device const T * row(device const T * c, ulong r, int hd) { return c + r * hd; }
    static float scale(device const T *) { return 1.0f; }
    static float get(device const T * p, int d) { return p[d]; }
};
struct fc_kv_f16 {
    typedef half T;
    static T put(float x) { return half(x); }
    static device const T * row(device const T * c, ulong r, int hd) { return c + r * hd; }
    static float scale(device const T *) { return 1.0f; }
    static float get(device const T * p, int d) { return float(p[d]); }
};
struct fc_kv_bf16 {
    typedef ushort T;
    static T put(float x) {
        const uint u = as_type<uint>(x);
        if ((u & 0x7fffffffu) > 0x7f800000u) return ushort((u >> 16) | 0x40u); // nan stays nan
        return ushort((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    static device const T * row(device const T * c, ulong r, int hd) { return c + r * hd; }
    static float scale(device const T *) { return 1.0f; }
    static float get(device const T * p, int d) { return fc_bf16(p[d]); }
};
// 8-bit rows: [float scale][head_dim signed bytes] (head_dim a multiple of 4)
struct fc_kv_q8 {
    typedef uchar T;
    static device const T * row(device const T * c, ulong r, int hd) { return c + r * (ulong)(4 + hd); }
    static float scale(device const T * p) { return *(device const float *)p; }
    static float get(device const T * p, int d) {
        const int u = int(p[4 + d]);
        return float(u > 127 ? u - 256 : u);
    }
};

template <typename C>
inline void fc_kv_store(constant fc_kv_store_args & a, device const float * k, device const float * v,
                        device typename C::T * kc, device typename C::T * vc, uint gid) {
    if (int(gid) >= a.n_tokens * a.kv_dim) return;
    const int t = int(gid) / a.kv_dim, i = int(gid) % a.kv_dim;
    const ulong dst = (ulong)(a.pos0 + t) * a.kv_dim + i;
    kc[dst] = C::put(k[(ulong)t * a.src_stride + i]);
    vc[dst] = C::put(v[(ulong)t * a.src_stride + i]);
}

kernel void fc_kv_store_f32(constant fc_kv_store_args & a [[buffer(0)]], device const float * k [[buffer(1)]],
                            device const float * v [[buffer(2)]], device float * kc [[buffer(3)]],
                            device float * vc [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
    fc_kv_store<fc_kv_f32>(a, k, v, kc, vc, gid);
}

kernel void fc_kv_store_f16(constant fc_kv_store_args & a [[buffer(0)]], device const float * k [[buffer(1)]],
                            device const float * v [[buffer(2)]], device half * kc [[buffer(3)]],
                            device half * vc [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
    fc_kv_store<fc_kv_f16>(a, k, v, kc, vc, gid);
}

// 8-bit: each lane takes dims lane, lane + 32, ...; the row's max |x| by simd_max.
inline void fc_kv_store_q8_row(device const float * x, device uchar * dst, int hd, ushort lane) {
    float mx = 0.0f;
    for (int d = lane; d < hd; d += FC_SIMD_WIDTH) mx = max(mx, fabs(x[d]));
    mx = simd_max(mx);
    const float scale = mx / 127.0f, inv = mx > 0.0f ? 127.0f / mx : 0.0f;
    if (lane == 0) *(device float *)dst = scale;
    for (int d = lane; d < hd; d += FC_SIMD_WIDTH) {
        const float q = clamp(rint(x[d] * inv), -127.0f, 127.0f);
        dst[4 + d] = uchar(uint(int(q)) & 0xffu);
    }
}

kernel void fc_kv_store_q8(constant fc_kv_store_q8_args & a [[buffer(0)]], device const float * k [[buffer(1)]],
                           device const float * v [[buffer(2)]], device uchar * kc [[buffer(3)]],
                           device uchar * vc [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
                           ushort lane [[thread_index_in_simdgroup]]) {
    const int h = int(tg.x), t = int(tg.y), hd = a.head_dim;
    const ulong src = (ulong)t * a.src_stride + (ulong)h * hd;
    const ulong dst = ((ulong)(a.pos0 + t) * a.n_kv + h) * (ulong)(4 + hd);
    fc_kv_store_q8_row(k + src, kc + dst, hd, lane);
    fc_kv_store_q8_row(v + src, vc + dst, hd, lane);
}

kernel void fc_kv_store_bf16(constant fc_kv_store_args & a [[buffer(0)]], device const float * k [[buffer(1)]],
                             device const float * v [[buffer(2)]], device ushort * kc [[buffer(3)]],
                             device ushort * vc [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
    fc_kv_store<fc_kv_bf16>(a, k, v, kc, vc, gid);
}

// Each simdgroup takes every FC_ATTN_SIMDGROUPS-th position with an online softmax (running max, sum and
// weighted V per lane: lane owns dims lane, lane + 32, ...); the simdgroups' partial results are merged
// through threadgroup memory at the end. Works for any context length and head_dim <= 256.
template <typename C>
inline void fc_attn(constant fc_attn_args & a, device const float * q, device const typename C::T * kc, device const typename C::T * vc,
                    device float * out, uint2 tg, ushort sg, ushort lane) {
    constexpr int DPL = FC_ATTN_MAX_HEAD_DIM / FC_SIMD_WIDTH; // dims per lane, at most
    FC_TG_LOCAL float part_m[FC_ATTN_SIMDGROUPS];
    FC_TG_LOCAL float part_l[FC_ATTN_SIMDGROUPS];
    FC_TG_LOCAL float part_o[FC_ATTN_SIMDGROUPS * FC_ATTN_MAX_HEAD_DIM];
    const int h = int(tg.x), t = int(tg.y);
    const int hd = a.head_dim, kvh = h / (a.n_heads / a.n_kv_heads);
    const int pos = a.pos0 + t;
    device const float * qh = q + (ulong)t * a.q_tok_stride + (ulong)h * a.q_head_stride;
    float qv[DPL], o[DPL];
    for (int u = 0; u < DPL; u++) {
        const int d = lane + u * FC_SIMD_WIDTH;
        qv[u] = d < hd ? qh[d] : 0.0f;
        o[u] = 0.0f;
    }
    float m = -FLT_MAX, l = 0.0f;
    for (int j = sg; j <= pos; j += FC_ATTN_SIMDGROUPS) {
        const ulong r = (ulong)j * a.n_kv_heads + kvh;
        device const typename C::T * kj = C::row(kc, r, hd);
        float s = 0.0f;
        for (int u = 0; u < DPL; u++) {
            const int d = lane + u * FC_SIMD_WIDTH;
            if (d < hd) s += qv[u] * C::get(kj, d);
        }
        s = simd_sum(s) * C::scale(kj) * a.scale;
        const float m_new = max(m, s);
        const float corr = exp(m - m_new), p = exp(s - m_new);
        l = l * corr + p;
        device const typename C::T * vj = C::row(vc, r, hd);
        const float pv = p * C::scale(vj);
        for (int u = 0; u < DPL; u++) {
            const int d = lane + u * FC_SIMD_WIDTH;
            o[u] = o[u] * corr + (d < hd ? pv * C::get(vj, d) : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) {
        part_m[sg] = m;
        part_l[sg] = l;
    }
    for (int u = 0; u < DPL; u++) {
        const int d = lane + u * FC_SIMD_WIDTH;
        if (d < hd) part_o[sg * FC_ATTN_MAX_HEAD_DIM + d] = o[u];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg != 0) return;
    float mx = part_m[0];
    for (int g = 1; g < FC_ATTN_SIMDGROUPS; g++) mx = max(mx, part_m[g]);
    float wsum = 0.0f, wg[FC_ATTN_SIMDGROUPS];
    for (int g = 0; g < FC_ATTN_SIMDGROUPS; g++) {
        wg[g] = part_l[g] > 0.0f ? exp(part_m[g] - mx) : 0.0f;
        wsum += wg[g] * part_l[g];
    }
    const float inv = 1.0f / wsum;
    device const float * gate = qh + a.gate_offset;
    device float * oh = out + (ulong)t * a.out_tok_stride + (ulong)h * hd;
    for (int u = 0; u < DPL; u++) {
        const int d = lane + u * FC_SIMD_WIDTH;
        if (d >= hd) break;
        float acc = 0.0f;
        for (int g = 0; g < FC_ATTN_SIMDGROUPS; g++) acc += wg[g] * part_o[g * FC_ATTN_MAX_HEAD_DIM + d];
        oh[d] = acc * inv * fc_sigmoid(gate[d]);
    }
}

kernel void fc_attn_f32(constant fc_attn_args & a [[buffer(0)]], device const float * q [[buffer(1)]],
                        device const float * kc [[buffer(2)]], device const float * vc [[buffer(3)]],
                        device float * out [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
                        ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]]) {
    fc_attn<fc_kv_f32>(a, q, kc, vc, out, tg, sg, lane);
}

kernel void fc_attn_f16(constant fc_attn_args & a [[buffer(0)]], device const float * q [[buffer(1)]],
                        device const half * kc [[buffer(2)]], device const half * vc [[buffer(3)]],
                        device float * out [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
                        ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]]) {
    fc_attn<fc_kv_f16>(a, q, kc, vc, out, tg, sg, lane);
}

kernel void fc_attn_bf16(constant fc_attn_args & a [[buffer(0)]], device const float * q [[buffer(1)]],
                         device const ushort * kc [[buffer(2)]], device const ushort * vc [[buffer(3)]],
                         device float * out [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
                         ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]]) {
    fc_attn<fc_kv_bf16>(a, q, kc, vc, out, tg, sg, lane);
}

kernel void fc_attn_q8(constant fc_attn_args & a [[buffer(0)]], device const float * q [[buffer(1)]],
                       device const uchar * kc [[buffer(2)]], device const uchar * vc [[buffer(3)]],
                       device float * out [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
                       ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]]) {
    fc_attn<fc_kv_q8>(a, q, kc, vc, out, tg, sg, lane);
}
