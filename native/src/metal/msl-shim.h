/*
 * Enough of the Metal Shading Language for the engine's .metal sources to compile as C++20 (g++ or
 * clang++) and run in the emulator (device-emu.cpp): address-space qualifiers vanish, [[attribute]]
 * arguments are ignored by the compiler and bound by the emulator from the source text, threadgroup
 * arrays become thread_local statics (the threads of one threadgroup are fibers of one OS thread),
 * barriers and simdgroup functions switch between those fibers. Vector types, half, and the math the
 * kernels use. Included before the kernel sources (never by host code).
 */
#ifndef FC_MSL_SHIM_H
#define FC_MSL_SHIM_H

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define FC_MSL_EMU 1

#include "emu-kernel.h" /* the emulator's barrier and simdgroup entry points */

/* ===== scalar and vector types ===== */

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
typedef _Float16 half;

template <class T, int N> struct fc_vec;

#define FC_VEC_COMMON(N)                                                                          \
    T & operator[](int i) { return (&x)[i]; }                                                     \
    const T & operator[](int i) const { return (&x)[i]; }                                         \
    template <class U> explicit fc_vec(const fc_vec<U, N> & o) {                                  \
        for (int i = 0; i < N; i++) (*this)[i] = T(o[i]);                                         \
    }

template <class T> struct fc_vec<T, 2> {
    T x, y;
    fc_vec() = default;
    fc_vec(T s) : x(s), y(s) {}
    fc_vec(T a, T b) : x(a), y(b) {}
    FC_VEC_COMMON(2)
};
template <class T> struct fc_vec<T, 3> {
    T x, y, z;
    fc_vec() = default;
    fc_vec(T s) : x(s), y(s), z(s) {}
    fc_vec(T a, T b, T c) : x(a), y(b), z(c) {}
    FC_VEC_COMMON(3)
};
template <class T> struct fc_vec<T, 4> {
    T x, y, z, w;
    fc_vec() = default;
    fc_vec(T s) : x(s), y(s), z(s), w(s) {}
    fc_vec(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {}
    FC_VEC_COMMON(4)
};

#define FC_VEC_OP(op)                                                                               \
    template <class T, int N> fc_vec<T, N> operator op(fc_vec<T, N> a, const fc_vec<T, N> & b) {   \
        for (int i = 0; i < N; i++) a[i] = a[i] op b[i];                                            \
        return a;                                                                                   \
    }                                                                                               \
    template <class T, int N> fc_vec<T, N> operator op(fc_vec<T, N> a, T b) {                       \
        for (int i = 0; i < N; i++) a[i] = a[i] op b;                                               \
        return a;                                                                                   \
    }                                                                                               \
    template <class T, int N> fc_vec<T, N> operator op(T a, fc_vec<T, N> b) {                       \
        for (int i = 0; i < N; i++) b[i] = a op b[i];                                               \
        return b;                                                                                   \
    }                                                                                               \
    template <class T, int N> fc_vec<T, N> & operator op##=(fc_vec<T, N> & a, const fc_vec<T, N> & b) { \
        return a = a op b;                                                                          \
    }
FC_VEC_OP(+)
FC_VEC_OP(-)
FC_VEC_OP(*)
FC_VEC_OP(/)
#undef FC_VEC_OP

#define FC_VEC_TYPES(T, name) \
    typedef fc_vec<T, 2> name##2; \
    typedef fc_vec<T, 3> name##3; \
    typedef fc_vec<T, 4> name##4;
FC_VEC_TYPES(float, float)
FC_VEC_TYPES(half, half)
FC_VEC_TYPES(int, int)
FC_VEC_TYPES(uint, uint)
FC_VEC_TYPES(short, short)
FC_VEC_TYPES(ushort, ushort)
FC_VEC_TYPES(uchar, uchar)
#undef FC_VEC_TYPES

/* ===== the metal namespace: math, bit casts, barriers, simdgroup functions ===== */

namespace metal {

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(int(a) | int(b)); }

inline void threadgroup_barrier(mem_flags) { fc_emu_threadgroup_barrier(); }
inline void simdgroup_barrier(mem_flags) { fc_emu_simdgroup_barrier(); }

template <class To, class From> inline To as_type(From v) {
    static_assert(sizeof(To) == sizeof(From), "as_type needs types of one size");
    To t;
    std::memcpy(&t, &v, sizeof t);
    return t;
}

/* float math (half arguments convert to float); the emulator computes in IEEE float, like precise:: */
#define FC_MATH1(name, fn) inline float name(float x) { return fn(x); }
FC_MATH1(exp, std::exp)
FC_MATH1(exp2, std::exp2)
FC_MATH1(log, std::log)
FC_MATH1(log2, std::log2)
FC_MATH1(sqrt, std::sqrt)
FC_MATH1(cos, std::cos)
FC_MATH1(sin, std::sin)
FC_MATH1(tanh, std::tanh)
FC_MATH1(fabs, std::fabs)
FC_MATH1(floor, std::floor)
FC_MATH1(ceil, std::ceil)
FC_MATH1(rint, std::rint)
#undef FC_MATH1
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float pow(float a, float b) { return std::pow(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float fmax(float a, float b) { return std::fmax(a, b); }
inline float fmin(float a, float b) { return std::fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline uint max(uint a, uint b) { return a > b ? a : b; }
inline uint min(uint a, uint b) { return a < b ? a : b; }
inline float clamp(float x, float lo, float hi) { return min(max(x, lo), hi); }
inline int clamp(int x, int lo, int hi) { return min(max(x, lo), hi); }
inline float mix(float a, float b, float t) { return a + (b - a) * t; }
template <class T> inline T select(T a, T b, bool c) { return c ? b : a; }
template <class T, int N> inline T dot(const fc_vec<T, N> & a, const fc_vec<T, N> & b) {
    T s = T(0);
    for (int i = 0; i < N; i++) s += a[i] * b[i];
    return s;
}

namespace precise {
using metal::cos;
using metal::exp;
using metal::log;
using metal::rsqrt;
using metal::sin;
using metal::sqrt;
using metal::tanh;
} // namespace precise
namespace fast {
using metal::cos;
using metal::exp;
using metal::log;
using metal::rsqrt;
using metal::sin;
using metal::sqrt;
using metal::tanh;
} // namespace fast

/* ----- simdgroup functions: every taking lane deposits its value, the last to arrive combines ----- */

template <class T, class Op> void fc_simd_combine(void * const * values, const uint32_t * args, uint32_t) {
    T in[32];
    bool on[32];
    for (int i = 0; i < 32; i++) {
        on[i] = values[i] != nullptr;
        if (on[i]) std::memcpy(&in[i], values[i], sizeof(T));
    }
    for (int i = 0; i < 32; i++) {
        if (!on[i]) continue;
        T r = Op::apply(in, on, i, args[i]);
        std::memcpy(values[i], &r, sizeof(T));
    }
}

template <class Op, class T> inline T fc_simd(T v, uint32_t arg = 0) {
    fc_emu_simd_collective(&v, sizeof v, arg, &fc_simd_combine<T, Op>);
    return v;
}

struct fc_op_sum {
    template <class T> static T apply(const T * in, const bool * on, int, uint32_t) {
        T s = T(0);
        for (int i = 0; i < 32; i++)
            if (on[i]) s = s + in[i];
        return s;
    }
};
struct fc_op_max {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t) {
        T m = in[self];
        for (int i = 0; i < 32; i++)
            if (on[i]) m = max(m, in[i]);
        return m;
    }
};
struct fc_op_min {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t) {
        T m = in[self];
        for (int i = 0; i < 32; i++)
            if (on[i]) m = min(m, in[i]);
        return m;
    }
};
/* lanes outside the simdgroup or not taking part read their own value (undefined in MSL) */
struct fc_op_shuffle {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t lane) {
        return lane < 32 && on[lane] ? in[lane] : in[self];
    }
};
struct fc_op_shuffle_xor {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t mask) {
        return fc_op_shuffle::apply(in, on, self, (uint32_t)self ^ mask);
    }
};
struct fc_op_shuffle_down {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t d) {
        return fc_op_shuffle::apply(in, on, self, (uint32_t)self + d);
    }
};
struct fc_op_shuffle_up {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t d) {
        return (uint32_t)self >= d ? fc_op_shuffle::apply(in, on, self, (uint32_t)self - d) : in[self];
    }
};
struct fc_op_prefix_exclusive_sum {
    template <class T> static T apply(const T * in, const bool * on, int self, uint32_t) {
        T s = T(0);
        for (int i = 0; i < self; i++)
            if (on[i]) s = s + in[i];
        return s;
    }
};
struct fc_op_all {
    static bool apply(const bool * in, const bool * on, int, uint32_t) {
        for (int i = 0; i < 32; i++)
            if (on[i] && !in[i]) return false;
        return true;
    }
};
struct fc_op_any {
    static bool apply(const bool * in, const bool * on, int, uint32_t) {
        for (int i = 0; i < 32; i++)
            if (on[i] && in[i]) return true;
        return false;
    }
};

template <class T> inline T simd_sum(T v) { return fc_simd<fc_op_sum>(v); }
template <class T> inline T simd_max(T v) { return fc_simd<fc_op_max>(v); }
template <class T> inline T simd_min(T v) { return fc_simd<fc_op_min>(v); }
template <class T> inline T simd_shuffle(T v, ushort lane) { return fc_simd<fc_op_shuffle>(v, lane); }
template <class T> inline T simd_broadcast(T v, ushort lane) { return fc_simd<fc_op_shuffle>(v, lane); }
template <class T> inline T simd_shuffle_xor(T v, ushort mask) { return fc_simd<fc_op_shuffle_xor>(v, mask); }
template <class T> inline T simd_shuffle_down(T v, ushort d) { return fc_simd<fc_op_shuffle_down>(v, d); }
template <class T> inline T simd_shuffle_up(T v, ushort d) { return fc_simd<fc_op_shuffle_up>(v, d); }
template <class T> inline T simd_prefix_exclusive_sum(T v) { return fc_simd<fc_op_prefix_exclusive_sum>(v); }
inline bool simd_all(bool v) { return fc_simd<fc_op_all>(v); }
inline bool simd_any(bool v) { return fc_simd<fc_op_any>(v); }

} // namespace metal

/* ===== MSL keywords (after every standard header: these names must not reach them) ===== */

#define kernel
#define device
#define constant
#define thread
#define threadgroup
#define FC_TG_LOCAL static thread_local

#endif
