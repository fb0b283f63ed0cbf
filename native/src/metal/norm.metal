// Normalisations and positions: RMSNorm (the checkpoints' norm weights are plain multipliers, 1 + w
// already added), per-head L2 norm (GatedDeltaNet q/k), and partial rotate-half RoPE.
#ifndef FC_METAL_COMMON
#include "common.metal"
#endif

kernel void fc_rms_norm(constant fc_rms_norm_args & a [[buffer(0)]], device const float * x [[buffer(1)]],
                        device const float * w [[buffer(2)]], device float * out [[buffer(3)]],
                        uint row [[threadgroup_position_in_grid]], ushort tid [[thread_index_in_threadgroup]],
                        ushort ntg [[threads_per_threadgroup]], ushort sg [[simdgroup_index_in_threadgroup]],
                        ushort lane [[thread_index_in_simdgroup]], ushort nsg [[simdgroups_per_threadgroup]]) {
    FC_TG_LOCAL float partial[FC_TG_MAX / FC_SIMD_WIDTH];
    device const float * xr = x + (ulong)row * a.x_stride;
    device float * outr = out + (ulong)row * a.out_stride;
    float ss = 0.0f;
    for (int i = tid; i < a.n; i += ntg) ss += xr[i] * xr[i];
    ss = fc_tg_sum(ss, partial, sg, lane, nsg);
    const float r = rsqrt(ss / float(a.n) + a.eps);
    for (int i = tid; i < a.n; i += ntg) outr[i] = xr[i] * r * w[i];
}

kernel void fc_l2norm_heads(constant fc_l2norm_args & a [[buffer(0)]], device float * x [[buffer(1)]],
                            uint2 tg [[threadgroup_position_in_grid]], ushort lane [[thread_index_in_simdgroup]]) {
    device float * v = x + (ulong)tg.y * a.tok_stride + (ulong)tg.x * a.dim;
    float ss = 0.0f;
    for (int i = lane; i < a.dim; i += FC_SIMD_WIDTH) ss += v[i] * v[i];
    ss = simd_sum(ss);
    const float r = rsqrt(ss + a.eps) * (int(tg.x) < a.n_scaled ? a.scale : 1.0f);
    for (int i = lane; i < a.dim; i += FC_SIMD_WIDTH) v[i] *= r;
}

// One thread per (token, head, rotated pair). The angle is computed in float like the CPU path and its
// cosine and sine precisely (fast-math cos/sin lose accuracy at large angles, i.e. late positions).
kernel void fc_rope(constant fc_rope_args & a [[buffer(0)]], device float * x [[buffer(1)]],
                    device const float * inv_freq [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
    const int half_rot = a.rot / 2;
    const int n = a.n_tokens * a.n_heads * half_rot;
    if (int(gid) >= n) return;
    const int i = int(gid) % half_rot;
    const int h = (int(gid) / half_rot) % a.n_heads;
    const int t = int(gid) / (half_rot * a.n_heads);
    const float angle = float(a.pos0 + t) * inv_freq[i];
    const float cs = precise::cos(angle), sn = precise::sin(angle);
    device float * v = x + (ulong)t * a.tok_stride + (ulong)h * a.head_stride;
    const float x1 = v[i], x2 = v[i + half_rot];
    v[i] = x1 * cs - x2 * sn;
    v[i + half_rot] = x2 * cs + x1 * sn;
}
