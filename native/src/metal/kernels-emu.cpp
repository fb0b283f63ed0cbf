// The .metal kernels compiled as C++ for the emulator: the shim, then the sources, then the table that
// binds each kernel's parameters (by the kinds device-emu.cpp parsed from the source's attributes).
#include <utility>

#include "msl-shim.h"
#include "emu-kernel.h"

#include "kernel-args.h"
#include "common.metal"
#include "matmul.metal"
#include "norm.metal"
#include "attention.metal"
#include "deltanet.metal"
#include "moe.metal"

namespace {

template <class T> struct fc_emu_position {
    static T get(const uint32_t * v) {
        static_assert(std::is_arithmetic_v<T>, "a thread-position parameter is a scalar or a 2/3-vector");
        return T(v[0]);
    }
};
template <class U> struct fc_emu_position<fc_vec<U, 2>> {
    static fc_vec<U, 2> get(const uint32_t * v) { return fc_vec<U, 2>(U(v[0]), U(v[1])); }
};
template <class U> struct fc_emu_position<fc_vec<U, 3>> {
    static fc_vec<U, 3> get(const uint32_t * v) { return fc_vec<U, 3>(U(v[0]), U(v[1]), U(v[2])); }
};

template <class T> constexpr char fc_emu_category() {
    return std::is_pointer_v<T> ? 'p' : std::is_reference_v<T> ? 'r' : 'v';
}

template <class T> T fc_emu_arg(const fc_emu_param & p, const fc_emu_env * env) {
    if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(env->buffers[p.index]);
    } else if constexpr (std::is_reference_v<T>) {
        using V = std::remove_reference_t<T>;
        if (env->buffer_bytes[p.index] < sizeof(V)) {
            fc_emu_fatal("buffer(%d) holds %zu bytes, the kernel reads a %zu-byte struct", p.index, env->buffer_bytes[p.index],
                         sizeof(V));
        }
        return *reinterpret_cast<V *>(env->buffers[p.index]);
    } else {
        return fc_emu_position<T>::get(env->pos[p.kind]);
    }
}

template <class F> struct fc_emu_bind;
template <class... A> struct fc_emu_bind<void(A...)> {
    static constexpr char categories[] = { fc_emu_category<A>()..., 0 };
    template <void (*F)(A...), size_t... I>
    static void call(const fc_emu_param * p, const fc_emu_env * env, std::index_sequence<I...>) {
        F(fc_emu_arg<A>(p[I], env)...);
    }
    template <void (*F)(A...)> static void entry(const fc_emu_param * p, const fc_emu_env * env) {
        call<F>(p, env, std::index_sequence_for<A...>{});
    }
};

} // namespace

#define FC_EMU_KERNEL(fn) { #fn, &fc_emu_bind<decltype(fn)>::entry<&fn>, fc_emu_bind<decltype(fn)>::categories }

extern "C" const fc_emu_kernel fc_emu_kernels[] = {
    FC_EMU_KERNEL(fc_matvec_q2),   FC_EMU_KERNEL(fc_matvec_q4),    FC_EMU_KERNEL(fc_matvec_q8),
    FC_EMU_KERNEL(fc_matmul_q2),   FC_EMU_KERNEL(fc_matmul_q4),    FC_EMU_KERNEL(fc_matmul_q8),
    FC_EMU_KERNEL(fc_matvec_f32),  FC_EMU_KERNEL(fc_matvec_f16),   FC_EMU_KERNEL(fc_matvec_bf16),
    FC_EMU_KERNEL(fc_matmul_f32),  FC_EMU_KERNEL(fc_matmul_f16),   FC_EMU_KERNEL(fc_matmul_bf16),
    FC_EMU_KERNEL(fc_rms_norm),    FC_EMU_KERNEL(fc_l2norm_heads), FC_EMU_KERNEL(fc_rope),
    FC_EMU_KERNEL(fc_kv_store_f32), FC_EMU_KERNEL(fc_kv_store_f16), FC_EMU_KERNEL(fc_kv_store_bf16),
    FC_EMU_KERNEL(fc_kv_store_q8), FC_EMU_KERNEL(fc_attn_f32),     FC_EMU_KERNEL(fc_attn_f16),
    FC_EMU_KERNEL(fc_attn_bf16),   FC_EMU_KERNEL(fc_attn_q8),    FC_EMU_KERNEL(fc_conv1d_silu),  FC_EMU_KERNEL(fc_delta_step),
    FC_EMU_KERNEL(fc_router_topk), FC_EMU_KERNEL(fc_swiglu),       FC_EMU_KERNEL(fc_moe_combine),
    FC_EMU_KERNEL(fc_add),         FC_EMU_KERNEL(fc_argmax),       FC_EMU_KERNEL(fc_embed),
    FC_EMU_KERNEL(fc_copy_rows),
};
extern "C" const int fc_emu_n_kernels = sizeof fc_emu_kernels / sizeof fc_emu_kernels[0];
