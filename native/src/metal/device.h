/*
 * The thin GPU device interface the Metal backend is written against: plain C, opaque handles, the
 * shape of Metal's own objects (device, buffer, compute pipeline, command buffer with one compute
 * encoder, dispatch of threadgroups, commit, wait). Two implementations: device-objc.c (Metal through
 * the Objective-C runtime, macOS) and device-emu.cpp (the same .metal kernels compiled as C++ and run
 * on the CPU with real barriers, any platform; what the tests use). Both are created from the kernel
 * source text (kernel-args.h followed by the .metal files, embedded in the binary at build time).
 */
#ifndef FC_METAL_DEVICE_H
#define FC_METAL_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../util.h"

struct fc_gpu;          /* a device with its compiled kernel library */
struct fc_gpu_buffer;   /* memory the GPU and the CPU both see (unified memory: no copies) */
struct fc_gpu_pipeline; /* one kernel, by name */
struct fc_gpu_cmd;      /* a command buffer with its compute encoder, recorded then committed */

struct fc_gpu_size { uint32_t x, y, z; };

struct fc_gpu_ops {
    const char * name; /* "metal" or "metal-emu" */
    void (*destroy)(struct fc_gpu * gpu);
    /* Wrap existing memory without copying (newBufferWithBytesNoCopy): ptr page-aligned, n_bytes a
       multiple of the page size; the memory stays the caller's and must outlive the buffer. */
    struct fc_gpu_buffer * (*buffer_wrap)(struct fc_gpu * gpu, void * ptr, size_t n_bytes, struct fc_error * err);
    /* A new zeroed buffer in shared storage (CPU-visible). */
    struct fc_gpu_buffer * (*buffer_new)(struct fc_gpu * gpu, size_t n_bytes, struct fc_error * err);
    void * (*buffer_contents)(struct fc_gpu_buffer * buf);
    size_t (*buffer_bytes)(struct fc_gpu_buffer * buf);
    void (*buffer_free)(struct fc_gpu_buffer * buf);
    /* The compute pipeline of kernel `name` (cached by the device: the same pointer each time). */
    struct fc_gpu_pipeline * (*pipeline)(struct fc_gpu * gpu, const char * name, struct fc_error * err);
    /* maxTotalThreadsPerThreadgroup of a pipeline */
    uint32_t (*pipeline_max_threads)(struct fc_gpu_pipeline * p);
    /* Begin a command buffer and its compute encoder. Dispatches run in order (a serial encoder: each
       sees the memory writes of the ones before it). */
    struct fc_gpu_cmd * (*cmd_begin)(struct fc_gpu * gpu);
    void (*set_pipeline)(struct fc_gpu_cmd * cmd, struct fc_gpu_pipeline * p);
    /* Bind buffer `index` of the kernel to buf + offset bytes. Bindings persist across dispatches. */
    void (*set_buffer)(struct fc_gpu_cmd * cmd, uint32_t index, struct fc_gpu_buffer * buf, size_t offset);
    /* Bind a small constant (an argument struct, at most 4 KiB) copied at the call. */
    void (*set_bytes)(struct fc_gpu_cmd * cmd, uint32_t index, const void * bytes, size_t n_bytes);
    void (*dispatch)(struct fc_gpu_cmd * cmd, struct fc_gpu_size groups, struct fc_gpu_size threads_per_group);
    /* End encoding and submit; the CPU may do other work until wait. */
    void (*commit)(struct fc_gpu_cmd * cmd);
    /* Wait for a committed command buffer and free it; the error of a failed one (a GPU fault). */
    enum fc_status (*wait)(struct fc_gpu_cmd * cmd, struct fc_error * err);
};

struct fc_gpu {
    const struct fc_gpu_ops * ops;
};

/* The emulator: `source` is the kernel text (for the kernels' parameter attributes); n_workers OS threads
   run threadgroups in parallel (<= 0: 1). NULL + err when a kernel of the source is not compiled in. */
struct fc_gpu * fc_gpu_emu_create(const char * source, int n_workers, struct fc_error * err);

/* Metal (macOS builds with FC_HAVE_METAL): the system default device, kernels compiled from `source`.
   NULL + err when there is no GPU or the source does not compile (the compiler's message in err). */
struct fc_gpu * fc_gpu_metal_create(const char * source, struct fc_error * err);

/* The kernel source embedded at build time: kernel-args.h and the .metal files, concatenated. */
extern const char fc_metal_source[];

/* Short forms. */
static inline struct fc_gpu_size fc_gpu_size1(uint32_t x) { struct fc_gpu_size s = { x, 1, 1 }; return s; }
static inline struct fc_gpu_size fc_gpu_size2(uint32_t x, uint32_t y) { struct fc_gpu_size s = { x, y, 1 }; return s; }

#ifdef __cplusplus
}
#endif

#endif
