// Helpers every kernel file uses: bf16 reads, activations, and threadgroup-wide reductions.
// The kernel sources are concatenated after kernel-args.h and compiled at run time (newLibraryWithSource
// on a Mac; as C++ through msl-shim.h in the emulator), so each file guards its includes.
#ifndef FC_METAL_COMMON
#define FC_METAL_COMMON

#ifndef FC_KERNEL_ARGS_H
#include "kernel-args.h"
#endif
#ifndef FC_MSL_EMU
#include <metal_stdlib>
#endif
using namespace metal;

// A threadgroup array declared in a kernel's scope ("threadgroup" in MSL; shared by the threads of one
// threadgroup in the emulator too, which defines it itself).
#ifndef FC_TG_LOCAL
#define FC_TG_LOCAL threadgroup
#endif

inline float fc_bf16(ushort h) {
    return as_type<float>(uint(h) << 16);
}

inline float fc_silu(float x) {
    return x / (1.0f + exp(-x));
}

inline float fc_sigmoid(float x) {
    return 1.0f / (1.0f + exp(-x));
}

// Sum of v over the threadgroup, the same value in every thread (buf: one float per simdgroup).
// Every thread adds the partial sums in the same order, so all see the identical total.
inline float fc_tg_sum(float v, threadgroup float * buf, ushort sg, ushort lane, ushort n_sg) {
    v = simd_sum(v);
    if (lane == 0) buf[sg] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float total = 0.0f;
    for (ushort i = 0; i < n_sg; i++) total += buf[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return total;
}

inline float fc_tg_max(float v, threadgroup float * buf, ushort sg, ushort lane, ushort n_sg) {
    v = simd_max(v);
    if (lane == 0) buf[sg] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float m = buf[0];
    for (ushort i = 1; i < n_sg; i++) m = max(m, buf[i]);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return m;
}

// The largest v over the threadgroup and its index (ties: the lower index; idx must be unique per thread).
inline int fc_tg_argmax(float v, int idx, threadgroup float * vbuf, threadgroup int * ibuf, ushort sg, ushort lane,
                        ushort n_sg) {
    const float m = simd_max(v);
    const int mi = simd_min(v == m ? idx : 0x7fffffff);
    if (lane == 0) {
        vbuf[sg] = m;
        ibuf[sg] = mi;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float bv = vbuf[0];
    int bi = ibuf[0];
    for (ushort i = 1; i < n_sg; i++) {
        if (vbuf[i] > bv || (vbuf[i] == bv && ibuf[i] < bi)) {
            bv = vbuf[i];
            bi = ibuf[i];
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return bi;
}

#endif
