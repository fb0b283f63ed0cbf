/*
 * Between the emulator (device-emu.cpp) and the kernels compiled as C++ (kernels-emu.cpp): how one
 * kernel parameter is bound (a buffer index or a thread-position attribute, parsed from the source's
 * [[...]] attributes), the values a thread sees, and the table of compiled kernels.
 */
#ifndef FC_METAL_EMU_KERNEL_H
#define FC_METAL_EMU_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define FC_EMU_MAX_BUFFERS 31

enum fc_emu_param_kind {
    /* thread-position attributes first: they index fc_emu_env.pos */
    FC_EMU_THREAD_POSITION_IN_GRID,
    FC_EMU_THREAD_POSITION_IN_THREADGROUP,
    FC_EMU_THREADGROUP_POSITION_IN_GRID,
    FC_EMU_THREADS_PER_THREADGROUP,
    FC_EMU_THREADGROUPS_PER_GRID,
    FC_EMU_THREADS_PER_GRID,
    FC_EMU_THREAD_INDEX_IN_THREADGROUP,
    FC_EMU_THREAD_INDEX_IN_SIMDGROUP,
    FC_EMU_SIMDGROUP_INDEX_IN_THREADGROUP,
    FC_EMU_THREADS_PER_SIMDGROUP,
    FC_EMU_SIMDGROUPS_PER_THREADGROUP,
    FC_EMU_N_POSITIONS,
    FC_EMU_BUFFER = FC_EMU_N_POSITIONS, /* [[buffer(index)]] */
};

struct fc_emu_param {
    int kind;
    int index; /* buffer index */
};

/* What one thread's parameters are made from. */
struct fc_emu_env {
    void * buffers[FC_EMU_MAX_BUFFERS];
    size_t buffer_bytes[FC_EMU_MAX_BUFFERS]; /* bytes from the binding's offset to the buffer's end */
    uint32_t pos[FC_EMU_N_POSITIONS][3];
};

/* Parameter categories as the compiled function declares them: 'p' pointer, 'r' reference, 'v' value. */
typedef void (*fc_emu_entry)(const struct fc_emu_param * params, const struct fc_emu_env * env);

struct fc_emu_kernel {
    const char * name;
    fc_emu_entry entry;
    const char * categories; /* one letter per parameter */
};

#ifdef __cplusplus
extern "C" {
#endif
/* Combine the values of one simdgroup's lanes: values[i] points at lane i's value (NULL for lanes not taking
   part), args[i] is its argument (source lane, mask, delta). Reads every input before writing any output. */
typedef void (*fc_emu_combine_fn)(void * const * values, const uint32_t * args, uint32_t value_bytes);
/* Called by the kernels (msl-shim.h): block the calling thread until its threadgroup / simdgroup is there. */
void fc_emu_threadgroup_barrier(void);
void fc_emu_simdgroup_barrier(void);
void fc_emu_simd_collective(void * value, uint32_t value_bytes, uint32_t arg, fc_emu_combine_fn combine);

extern const struct fc_emu_kernel fc_emu_kernels[];
extern const int fc_emu_n_kernels;
/* A kernel bug the emulator caught (an argument struct larger than its binding, a barrier not reached by
   every thread): the kernel's name and what happened, then abort. */
void fc_emu_fatal(const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;
#ifdef __cplusplus
}
#endif

#endif
