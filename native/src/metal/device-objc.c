/*
 * The GPU device interface (device.h) on Apple Metal, in C over the Objective-C runtime: every Metal
 * call is objc_msgSend with a registered selector, cast to the method's exact C type (what metal-cpp
 * does), so this file builds with any C compiler for macOS and needs no framework headers. Metal.framework
 * is opened at run time (dlopen) and the kernels are compiled from their source text
 * (newLibraryWithSource, fast math off: the kernels are checked against IEEE references). Buffers are
 * shared storage; wrapped memory becomes a buffer without a copy (newBufferWithBytesNoCopy).
 * Objects are retained on creation and released explicitly (no ARC in C); calls that return autoreleased
 * objects run inside an autorelease pool. The runtime's own entry points (objc_msgSend, sel_registerName,
 * objc_getClass, the autorelease pool) are looked up in libobjc at run time too, so linking needs only
 * libSystem (what zig ships for cross links) and no -lobjc.
 */
#if defined(__APPLE__)

#include <dlfcn.h>
#include <objc/message.h>
#include <objc/runtime.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"

/* libobjc's entry points, resolved by load_objc() */
static void * objc_send;
static SEL (*objc_sel)(const char * name);
static id (*objc_class)(const char * name);
static void * (*pool_push)(void);
static void (*pool_pop)(void * pool);

static int load_objc(struct fc_error * err) {
    if (objc_send) return 1;
    void * lib = dlopen("/usr/lib/libobjc.A.dylib", RTLD_LAZY | RTLD_GLOBAL);
    if (!lib) {
        fc_error_set(err, FC_STATUS_BAD_REQUEST, "the Objective-C runtime is not available: %s", dlerror());
        return 0;
    }
    objc_sel = (SEL(*)(const char *))dlsym(lib, "sel_registerName");
    objc_class = (id(*)(const char *))dlsym(lib, "objc_getClass");
    pool_push = (void * (*)(void))dlsym(lib, "objc_autoreleasePoolPush");
    pool_pop = (void (*)(void *))dlsym(lib, "objc_autoreleasePoolPop");
    void * send = dlsym(lib, "objc_msgSend");
    if (!objc_sel || !objc_class || !pool_push || !pool_pop || !send) {
        fc_error_set(err, FC_STATUS_BAD_REQUEST, "libobjc lacks an entry point the Metal device needs");
        return 0;
    }
    objc_send = send;
    return 1;
}

typedef unsigned long NSUInteger;
typedef struct { NSUInteger width, height, depth; } MTLSize;

#define MSG(ret, ...) ((ret(*)(id, SEL, ##__VA_ARGS__))objc_send)
#define SELECTOR(name) objc_sel(name)

enum { MTL_RESOURCE_STORAGE_SHARED = 0, MTL_COMMAND_BUFFER_STATUS_ERROR = 5 };

struct fc_gpu_buffer {
    id buf;
    void * ptr;
    size_t n_bytes;
};

struct fc_gpu_pipeline {
    char name[64];
    id state;
    uint32_t max_threads;
};

struct fc_gpu_cmd {
    id cmd;
    id enc;
};

struct metal_gpu {
    struct fc_gpu base;
    id device;
    id queue;
    id library;
    struct fc_gpu_pipeline * pipelines;
    int n_pipelines, cap_pipelines;
};

static void release(id obj) {
    if (obj) MSG(void)(obj, SELECTOR("release"));
}

static id retain(id obj) {
    return obj ? MSG(id)(obj, SELECTOR("retain")) : obj;
}

static id ns_string(const char * s) {
    return MSG(id, const char *)((id)objc_class("NSString"), SELECTOR("stringWithUTF8String:"), s);
}

/* The localized description of an NSError, into err. */
static enum fc_status set_ns_error(struct fc_error * err, const char * what, id ns_err) {
    const char * msg = "unknown error";
    if (ns_err) {
        id desc = MSG(id)(ns_err, SELECTOR("localizedDescription"));
        if (desc) msg = MSG(const char *)(desc, SELECTOR("UTF8String"));
    }
    return fc_error_set(err, FC_STATUS_INTERNAL, "%s: %s", what, msg);
}

static void metal_destroy(struct fc_gpu * g) {
    struct metal_gpu * gpu = (struct metal_gpu *)g;
    for (int i = 0; i < gpu->n_pipelines; i++) release(gpu->pipelines[i].state);
    free(gpu->pipelines);
    release(gpu->library);
    release(gpu->queue);
    release(gpu->device);
    free(gpu);
}

static struct fc_gpu_buffer * metal_buffer_wrap(struct fc_gpu * g, void * ptr, size_t n_bytes, struct fc_error * err) {
    struct metal_gpu * gpu = (struct metal_gpu *)g;
    const size_t page = (size_t)getpagesize();
    if (!ptr || (uintptr_t)ptr % page != 0 || n_bytes == 0 || n_bytes % page != 0) {
        fc_error_set(err, FC_STATUS_INTERNAL, "buffer_wrap: memory must be page-aligned and a whole number of pages (%p, %zu bytes)",
                     ptr, n_bytes);
        return NULL;
    }
    id buf = MSG(id, void *, NSUInteger, NSUInteger, id)(gpu->device, SELECTOR("newBufferWithBytesNoCopy:length:options:deallocator:"),
                                                         ptr, (NSUInteger)n_bytes, (NSUInteger)MTL_RESOURCE_STORAGE_SHARED, (id)NULL);
    if (!buf) {
        fc_error_set(err, FC_STATUS_NO_MEMORY, "newBufferWithBytesNoCopy failed for %zu bytes", n_bytes);
        return NULL;
    }
    struct fc_gpu_buffer * b = fc_xcalloc(1, sizeof *b);
    b->buf = buf;
    b->ptr = ptr;
    b->n_bytes = n_bytes;
    return b;
}

static struct fc_gpu_buffer * metal_buffer_new(struct fc_gpu * g, size_t n_bytes, struct fc_error * err) {
    struct metal_gpu * gpu = (struct metal_gpu *)g;
    id buf = MSG(id, NSUInteger, NSUInteger)(gpu->device, SELECTOR("newBufferWithLength:options:"), (NSUInteger)(n_bytes ? n_bytes : 4),
                                             (NSUInteger)MTL_RESOURCE_STORAGE_SHARED);
    if (!buf) {
        fc_error_set(err, FC_STATUS_NO_MEMORY, "newBufferWithLength failed for %zu bytes", n_bytes);
        return NULL;
    }
    struct fc_gpu_buffer * b = fc_xcalloc(1, sizeof *b);
    b->buf = buf;
    b->ptr = MSG(void *)(buf, SELECTOR("contents"));
    b->n_bytes = n_bytes;
    memset(b->ptr, 0, n_bytes);
    return b;
}

static void * metal_buffer_contents(struct fc_gpu_buffer * b) { return b->ptr; }
static size_t metal_buffer_bytes(struct fc_gpu_buffer * b) { return b->n_bytes; }

static void metal_buffer_free(struct fc_gpu_buffer * b) {
    if (!b) return;
    release(b->buf);
    free(b);
}

static struct fc_gpu_pipeline * metal_pipeline(struct fc_gpu * g, const char * name, struct fc_error * err) {
    struct metal_gpu * gpu = (struct metal_gpu *)g;
    for (int i = 0; i < gpu->n_pipelines; i++) {
        if (strcmp(gpu->pipelines[i].name, name) == 0) return &gpu->pipelines[i];
    }
    if (strlen(name) >= sizeof gpu->pipelines[0].name) {
        fc_error_set(err, FC_STATUS_INTERNAL, "kernel name %s is too long", name);
        return NULL;
    }
    if (gpu->n_pipelines == gpu->cap_pipelines) {
        /* pointers handed out stay valid: the table is allocated once for every kernel there can be */
        fc_error_set(err, FC_STATUS_INTERNAL, "more than %d pipelines", gpu->cap_pipelines);
        return NULL;
    }
    void * pool = pool_push();
    struct fc_gpu_pipeline * p = NULL;
    id fn = MSG(id, id)(gpu->library, SELECTOR("newFunctionWithName:"), ns_string(name));
    if (!fn) {
        fc_error_set(err, FC_STATUS_INTERNAL, "no kernel named %s", name);
    } else {
        id ns_err = NULL;
        id state = MSG(id, id, id *)(gpu->device, SELECTOR("newComputePipelineStateWithFunction:error:"), fn, &ns_err);
        if (!state) {
            set_ns_error(err, name, ns_err);
        } else {
            p = &gpu->pipelines[gpu->n_pipelines++];
            strcpy(p->name, name);
            p->state = state;
            p->max_threads = (uint32_t)MSG(NSUInteger)(state, SELECTOR("maxTotalThreadsPerThreadgroup"));
        }
        release(fn);
    }
    pool_pop(pool);
    return p;
}

static uint32_t metal_pipeline_max_threads(struct fc_gpu_pipeline * p) { return p->max_threads; }

static struct fc_gpu_cmd * metal_cmd_begin(struct fc_gpu * g) {
    struct metal_gpu * gpu = (struct metal_gpu *)g;
    void * pool = pool_push();
    struct fc_gpu_cmd * c = fc_xcalloc(1, sizeof *c);
    c->cmd = retain(MSG(id)(gpu->queue, SELECTOR("commandBuffer")));
    c->enc = retain(MSG(id)(c->cmd, SELECTOR("computeCommandEncoder")));
    pool_pop(pool);
    return c;
}

static void metal_set_pipeline(struct fc_gpu_cmd * c, struct fc_gpu_pipeline * p) {
    MSG(void, id)(c->enc, SELECTOR("setComputePipelineState:"), p->state);
}

static void metal_set_buffer(struct fc_gpu_cmd * c, uint32_t index, struct fc_gpu_buffer * b, size_t offset) {
    MSG(void, id, NSUInteger, NSUInteger)(c->enc, SELECTOR("setBuffer:offset:atIndex:"), b ? b->buf : (id)NULL, (NSUInteger)offset,
                                          (NSUInteger)index);
}

static void metal_set_bytes(struct fc_gpu_cmd * c, uint32_t index, const void * bytes, size_t n_bytes) {
    MSG(void, const void *, NSUInteger, NSUInteger)(c->enc, SELECTOR("setBytes:length:atIndex:"), bytes, (NSUInteger)n_bytes,
                                                    (NSUInteger)index);
}

static void metal_dispatch(struct fc_gpu_cmd * c, struct fc_gpu_size groups, struct fc_gpu_size threads) {
    MTLSize g = { groups.x, groups.y, groups.z }, t = { threads.x, threads.y, threads.z };
    MSG(void, MTLSize, MTLSize)(c->enc, SELECTOR("dispatchThreadgroups:threadsPerThreadgroup:"), g, t);
}

static void metal_commit(struct fc_gpu_cmd * c) {
    MSG(void)(c->enc, SELECTOR("endEncoding"));
    MSG(void)(c->cmd, SELECTOR("commit"));
}

static enum fc_status metal_wait(struct fc_gpu_cmd * c, struct fc_error * err) {
    void * pool = pool_push();
    MSG(void)(c->cmd, SELECTOR("waitUntilCompleted"));
    enum fc_status st = FC_STATUS_OK;
    if (MSG(NSUInteger)(c->cmd, SELECTOR("status")) == MTL_COMMAND_BUFFER_STATUS_ERROR) {
        st = set_ns_error(err, "command buffer failed", MSG(id)(c->cmd, SELECTOR("error")));
    }
    release(c->enc);
    release(c->cmd);
    free(c);
    pool_pop(pool);
    return st;
}

static const struct fc_gpu_ops metal_ops = {
    .name = "metal",
    .destroy = metal_destroy,
    .buffer_wrap = metal_buffer_wrap,
    .buffer_new = metal_buffer_new,
    .buffer_contents = metal_buffer_contents,
    .buffer_bytes = metal_buffer_bytes,
    .buffer_free = metal_buffer_free,
    .pipeline = metal_pipeline,
    .pipeline_max_threads = metal_pipeline_max_threads,
    .cmd_begin = metal_cmd_begin,
    .set_pipeline = metal_set_pipeline,
    .set_buffer = metal_set_buffer,
    .set_bytes = metal_set_bytes,
    .dispatch = metal_dispatch,
    .commit = metal_commit,
    .wait = metal_wait,
};

struct fc_gpu * fc_gpu_metal_create(const char * source, struct fc_error * err) {
    if (!load_objc(err)) return NULL;
    void * metal = dlopen("/System/Library/Frameworks/Metal.framework/Metal", RTLD_LAZY | RTLD_GLOBAL);
    if (!metal) {
        fc_error_set(err, FC_STATUS_BAD_REQUEST, "Metal.framework is not available: %s", dlerror());
        return NULL;
    }
    id (*create_device)(void) = (id(*)(void))dlsym(metal, "MTLCreateSystemDefaultDevice");
    id device = create_device ? create_device() : NULL;
    if (!device) {
        fc_error_set(err, FC_STATUS_BAD_REQUEST, "no Metal GPU on this machine");
        return NULL;
    }
    void * pool = pool_push();
    struct metal_gpu * gpu = fc_xcalloc(1, sizeof *gpu);
    gpu->base.ops = &metal_ops;
    gpu->device = device;
    gpu->queue = MSG(id)(device, SELECTOR("newCommandQueue"));
    gpu->cap_pipelines = 128;
    gpu->pipelines = fc_xcalloc((size_t)gpu->cap_pipelines, sizeof *gpu->pipelines);
    id opts = MSG(id)(MSG(id)((id)objc_class("MTLCompileOptions"), SELECTOR("alloc")), SELECTOR("init"));
    MSG(void, BOOL)(opts, SELECTOR("setFastMathEnabled:"), NO);
    id ns_err = NULL;
    gpu->library = MSG(id, id, id, id *)(device, SELECTOR("newLibraryWithSource:options:error:"), ns_string(source), opts, &ns_err);
    release(opts);
    if (!gpu->library) set_ns_error(err, "compiling the Metal kernels", ns_err);
    pool_pop(pool);
    if (!gpu->queue || !gpu->library) {
        if (!gpu->queue) fc_error_set(err, FC_STATUS_INTERNAL, "cannot create a Metal command queue");
        metal_destroy(&gpu->base);
        return NULL;
    }
    return &gpu->base;
}

#endif
