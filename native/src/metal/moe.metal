// The MoE block around the expert matmuls: router softmax + top-K, SwiGLU, and the combine of the routed
// experts with the shared expert behind its sigmoid gate (into the residual stream); plus the residual
// add and the argmax of the logits.
#ifndef FC_METAL_COMMON
#include "common.metal"
#endif

kernel void fc_router_topk(constant fc_router_args & a [[buffer(0)]], device float * logits [[buffer(1)]],
                           device int * ids [[buffer(2)]], device float * weights [[buffer(3)]],
                           uint t [[threadgroup_position_in_grid]], ushort tid [[thread_index_in_threadgroup]],
                           ushort ntg [[threads_per_threadgroup]], ushort sg [[simdgroup_index_in_threadgroup]],
                           ushort lane [[thread_index_in_simdgroup]], ushort nsg [[simdgroups_per_threadgroup]]) {
    FC_TG_LOCAL float probs[FC_ROUTER_MAX_EXPERTS];
    FC_TG_LOCAL float red[FC_TG_MAX / FC_SIMD_WIDTH];
    FC_TG_LOCAL int redi[FC_TG_MAX / FC_SIMD_WIDTH];
    const int E = a.n_experts, K = a.k;
    device float * p = logits + (ulong)t * E;
    float mx = -FLT_MAX;
    for (int x = tid; x < E; x += ntg) mx = max(mx, p[x]);
    mx = fc_tg_max(mx, red, sg, lane, nsg);
    float sum = 0.0f;
    for (int x = tid; x < E; x += ntg) {
        probs[x] = exp(p[x] - mx);
        sum += probs[x];
    }
    sum = fc_tg_sum(sum, red, sg, lane, nsg);
    const float inv = 1.0f / sum;
    for (int x = tid; x < E; x += ntg) {
        probs[x] *= inv;
        p[x] = probs[x];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // K rounds of argmax; a chosen expert is marked -1 (probabilities are >= 0)
    for (int j = 0; j < K; j++) {
        float bv = -FLT_MAX;
        int bi = 0x7fffffff;
        for (int x = tid; x < E; x += ntg) {
            if (probs[x] > bv) {
                bv = probs[x];
                bi = x;
            }
        }
        const int best = fc_tg_argmax(bv, bi, red, redi, sg, lane, nsg);
        if (tid == 0) {
            ids[(ulong)t * K + j] = best;
            weights[(ulong)t * K + j] = probs[best];
            probs[best] = -1.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0 && a.norm_topk) {
        float tot = 0.0f;
        for (int j = 0; j < K; j++) tot += weights[(ulong)t * K + j];
        for (int j = 0; j < K; j++) weights[(ulong)t * K + j] /= tot;
    }
}

kernel void fc_swiglu(constant fc_swiglu_args & a [[buffer(0)]], device float * gate [[buffer(1)]],
                      device const float * up [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= a.n) return;
    gate[gid] = fc_silu(gate[gid]) * up[gid];
}

kernel void fc_moe_combine(constant fc_combine_args & a [[buffer(0)]], device float * x [[buffer(1)]],
                           device const float * shared [[buffer(2)]], device const float * sh_logit [[buffer(3)]],
                           device const float * experts [[buffer(4)]], device const float * weights [[buffer(5)]],
                           uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= a.n_tokens * a.hidden) return;
    const int t = int(gid) / a.hidden, i = int(gid) % a.hidden;
    float y = a.has_shared ? fc_sigmoid(sh_logit[t]) * shared[gid] : 0.0f;
    for (int j = 0; j < a.k; j++) {
        const ulong slot = (ulong)t * a.k + j;
        y += weights[slot] * experts[slot * a.hidden + i];
    }
    x[gid] = a.add_residual ? x[gid] + y : y;
}

kernel void fc_copy_rows(constant fc_copy_rows_args & a [[buffer(0)]], device const float * src [[buffer(1)]],
                         device float * dst [[buffer(2)]], device const int * src_idx [[buffer(3)]],
                         device const int * dst_idx [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= a.n_rows * a.n_cols) return;
    const int r = int(gid) / a.n_cols, c = int(gid) % a.n_cols;
    const int rs = a.use_src_idx ? src_idx[r] : r, rd = a.use_dst_idx ? dst_idx[r] : r;
    dst[(ulong)rd * a.dst_stride + c] = src[(ulong)rs * a.src_stride + c];
}

kernel void fc_add(constant fc_add_args & a [[buffer(0)]], device float * x [[buffer(1)]],
                   device const float * y [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= a.n) return;
    x[gid] += y[gid];
}

kernel void fc_argmax(constant fc_argmax_args & a [[buffer(0)]], device const float * values [[buffer(1)]],
                      device int * ids [[buffer(2)]], uint row [[threadgroup_position_in_grid]],
                      ushort tid [[thread_index_in_threadgroup]], ushort ntg [[threads_per_threadgroup]],
                      ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]],
                      ushort nsg [[simdgroups_per_threadgroup]]) {
    FC_TG_LOCAL float red[FC_TG_MAX / FC_SIMD_WIDTH];
    FC_TG_LOCAL int redi[FC_TG_MAX / FC_SIMD_WIDTH];
    device const float * v = values + (ulong)row * a.n;
    float bv = -FLT_MAX;
    int bi = 0x7fffffff;
    for (int i = tid; i < a.n; i += ntg) {
        if (v[i] > bv) {
            bv = v[i];
            bi = i;
        }
    }
    const int best = fc_tg_argmax(bv, bi, red, redi, sg, lane, nsg);
    if (tid == 0) ids[row] = best < a.n ? best : 0;
}
