// GatedDeltaNet linear attention: the causal depthwise conv1d (rolling state) + SiLU, and the gated delta
// rule with its persistent per-head state followed by the gated RMSNorm.
#ifndef FC_METAL_COMMON
#include "common.metal"
#endif

// One thread per channel, tokens in order: tap K-1 multiplies the current input, the state holds the K-1
// previous inputs oldest first.
kernel void fc_conv1d_silu(constant fc_conv1d_args & a [[buffer(0)]], device float * x [[buffer(1)]],
                           device const float * w [[buffer(2)]], device float * state [[buffer(3)]],
                           uint ch [[thread_position_in_grid]]) {
    if (int(ch) >= a.channels) return;
    const int K = a.taps, C = a.channels;
    device const float * wc = w + (ulong)ch * K;
    for (int t = 0; t < a.n_tokens; t++) {
        device float * xt = x + (ulong)t * a.x_stride + ch;
        const float in = *xt;
        float acc = wc[K - 1] * in;
        for (int j = 0; j < K - 1; j++) acc += wc[j] * state[(ulong)j * C + ch];
        for (int j = 0; j + 1 < K - 1; j++) state[(ulong)j * C + ch] = state[(ulong)(j + 1) * C + ch];
        if (K > 1) state[(ulong)(K - 2) * C + ch] = in;
        *xt = fc_silu(acc);
    }
}

inline float fc_softplus(float x) {
    return x > 20.0f ? x : log(1.0f + exp(x));
}

// One threadgroup per value head; thread j owns column j of the head's [dk][dv] state, so the state is read
// and written once per token with no communication but the RMSNorm's sum.
kernel void fc_delta_step(constant fc_delta_args & a [[buffer(0)]], device const float * qkv [[buffer(1)]],
                          device const float * z [[buffer(2)]], device const float * b [[buffer(3)]],
                          device const float * av [[buffer(4)]], device const float * a_neg [[buffer(5)]],
                          device const float * dt_bias [[buffer(6)]], device const float * norm_w [[buffer(7)]],
                          device float * state [[buffer(8)]], device float * out [[buffer(9)]],
                          uint h [[threadgroup_position_in_grid]], ushort j [[thread_index_in_threadgroup]],
                          ushort sg [[simdgroup_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]],
                          ushort nsg [[simdgroups_per_threadgroup]]) {
    FC_TG_LOCAL float partial[FC_TG_MAX / FC_SIMD_WIDTH];
    const int dk = a.dk, dv = a.dv, kh = int(h) / (a.nv / a.nk);
    const bool active = int(j) < dv;
    device float * S = state + (ulong)h * dk * dv + j;
    for (int t = 0; t < a.n_tokens; t++) {
        device const float * row = qkv + (ulong)t * a.qkv_stride;
        device const float * q = row + kh * dk;
        device const float * k = row + a.nk * dk + kh * dk;
        const float beta = fc_sigmoid(b[(ulong)t * a.nv + h]);
        const float decay = exp(a_neg[h] * fc_softplus(av[(ulong)t * a.nv + h] + dt_bias[h]));
        float o = 0.0f;
        if (active) {
            const float v = row[2 * a.nk * dk + int(h) * dv + j];
            float kv = 0.0f;
            for (int i = 0; i < dk; i++) kv += S[(ulong)i * dv] * k[i];
            const float delta = beta * (v - decay * kv);
            for (int i = 0; i < dk; i++) {
                const float sv = decay * S[(ulong)i * dv] + k[i] * delta;
                S[(ulong)i * dv] = sv;
                o += sv * q[i];
            }
        }
        const float ss = fc_tg_sum(o * o, partial, sg, lane, nsg);
        if (active) {
            const float r = rsqrt(ss / float(dv) + a.eps);
            const float zj = z[(ulong)t * a.z_stride + int(h) * dv + j];
            out[(ulong)t * a.out_stride + int(h) * dv + j] = o * r * norm_w[j] * fc_silu(zj);
        }
    }
}
