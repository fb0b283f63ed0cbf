/*
 * The emulated GPU device (device.h) on the CPU: kernels compiled as C++ (kernels-emu.cpp), their
 * parameters bound from the source's [[...]] attributes, each threadgroup's threads run as fibers of
 * one OS thread with real barriers and simdgroup exchanges. A fiber runs until it finishes or reaches
 * a barrier / simdgroup function; once every thread of the threadgroup (or of the simdgroup) is there,
 * they are released together. A barrier that cannot complete (threads that returned early, divergent
 * simdgroup calls) is a kernel bug on a GPU too: it is reported with the kernel's name and aborts.
 * Metal's rules are checked where host code could break them: wrapped memory page-aligned, every
 * buffer a kernel declares bound, argument structs no larger than their binding, <= 1024 threads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "device.h"
#include "emu-kernel.h"

#if !defined(__x86_64__) || defined(FC_EMU_UCONTEXT)
#include <ucontext.h>
#ifndef FC_EMU_UCONTEXT
#define FC_EMU_UCONTEXT 1
#endif
#endif

extern "C" {
void fc_emu_fatal(const char * fmt, ...);
}

namespace {

const size_t k_stack_bytes = 64 * 1024;
const int k_simd = 32;

/* ===== fibers: a context switch that saves only the callee-saved registers =====
   (x86-64; elsewhere ucontext's swapcontext, measured about 30x slower here: it saves and restores the
   signal mask with a system call on every switch) */

#ifndef FC_EMU_UCONTEXT
extern "C" void fc_emu_switch(void ** save_sp, void * load_sp);
asm(R"(
    .text
    .p2align 4
    .globl fc_emu_switch
    .hidden fc_emu_switch
    .type fc_emu_switch,@function
fc_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fc_emu_switch,.-fc_emu_switch
)");
#endif

enum fiber_state { READY, AT_BARRIER, AT_SIMD, DONE };

struct worker;

struct fiber {
    char * stack = nullptr;
#ifdef FC_EMU_UCONTEXT
    ucontext_t ctx;
#else
    void * sp = nullptr;
#endif
    fiber_state state = DONE;
    uint32_t linear = 0, tpitg[3] = { 0, 0, 0 };
    /* a simdgroup function in progress (combine == NULL: simdgroup_barrier) */
    void * simd_value = nullptr;
    uint32_t simd_bytes = 0, simd_arg = 0;
    fc_emu_combine_fn simd_combine = nullptr;
};

struct pipeline_info;

/* One dispatch as recorded. */
struct dispatch {
    const pipeline_info * p;
    fc_emu_env env; /* buffers bound at record time; positions filled per thread */
    std::vector<std::vector<uint8_t>> bytes;
    uint32_t groups[3], threads[3];
};

struct worker {
    std::vector<fiber *> fibers;
#ifdef FC_EMU_UCONTEXT
    ucontext_t sched;
#else
    void * sched_sp = nullptr;
#endif
    fiber * current = nullptr;
    const dispatch * d = nullptr;
    uint32_t tgpig[3] = { 0, 0, 0 };
    ~worker();
};

thread_local worker * tl_worker = nullptr;

/* A parked fiber may be resumed for the next threadgroup on another OS thread (a later dispatch's worker
   thread): its code must not keep a thread-local address across a switch, so it asks afresh each time. */
__attribute__((noinline)) worker * current_worker() {
    worker * w = tl_worker;
    asm volatile("" ::: "memory");
    return w;
}

void fiber_main();

#ifdef FC_EMU_UCONTEXT
void fiber_trampoline() { fiber_main(); }
#endif

fiber * new_fiber() {
    fiber * f = new fiber;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void * mem = mmap(nullptr, k_stack_bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fc_emu_fatal("cannot map a %zu-byte fiber stack", k_stack_bytes);
    mprotect(mem, page, PROT_NONE); /* guard page below the stack */
    f->stack = (char *)mem;
    char * lo = f->stack + page;
#ifdef FC_EMU_UCONTEXT
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = lo;
    f->ctx.uc_stack.ss_size = k_stack_bytes;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, fiber_trampoline, 0);
#else
    /* the frame fc_emu_switch pops: six registers, then fiber_main as the return address */
    void ** sp = (void **)(((uintptr_t)(lo + k_stack_bytes)) & ~(uintptr_t)15);
    *--sp = nullptr;
    *--sp = (void *)&fiber_main;
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    f->sp = sp;
#endif
    return f;
}

worker::~worker() {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (fiber * f : fibers) {
        munmap(f->stack, k_stack_bytes + page);
        delete f;
    }
}

/* From the scheduler into fiber f, until it blocks or finishes. */
void resume(worker * w, fiber * f) {
    w->current = f;
#ifdef FC_EMU_UCONTEXT
    swapcontext(&w->sched, &f->ctx);
#else
    fc_emu_switch(&w->sched_sp, f->sp);
#endif
}

/* From the running fiber back to the scheduler. */
void yield_to_scheduler(worker * w, fiber * f) {
#ifdef FC_EMU_UCONTEXT
    swapcontext(&f->ctx, &w->sched);
#else
    fc_emu_switch(&f->sp, w->sched_sp);
#endif
}

struct pipeline_info {
    std::string name;
    const fc_emu_kernel * k;
    std::vector<fc_emu_param> params;
};

void run_thread(worker * w, fiber * f) {
    const dispatch * d = w->d;
    fc_emu_env env = d->env;
    const uint32_t * ntg = d->threads;
    for (int a = 0; a < 3; a++) {
        env.pos[FC_EMU_THREAD_POSITION_IN_THREADGROUP][a] = f->tpitg[a];
        env.pos[FC_EMU_THREADGROUP_POSITION_IN_GRID][a] = w->tgpig[a];
        env.pos[FC_EMU_THREAD_POSITION_IN_GRID][a] = w->tgpig[a] * ntg[a] + f->tpitg[a];
    }
    env.pos[FC_EMU_THREAD_INDEX_IN_THREADGROUP][0] = f->linear;
    env.pos[FC_EMU_THREAD_INDEX_IN_SIMDGROUP][0] = f->linear % k_simd;
    env.pos[FC_EMU_SIMDGROUP_INDEX_IN_THREADGROUP][0] = f->linear / k_simd;
    d->p->k->entry(d->p->params.data(), &env);
}

void fiber_main() {
    for (;;) {
        worker * w = current_worker();
        fiber * f = w->current;
        run_thread(w, f);
        f->state = DONE;
        yield_to_scheduler(w, f);
    }
}

/* Release simdgroup s if every lane still running is at a simdgroup function. */
bool try_release_simdgroup(worker * w, uint32_t s, uint32_t n) {
    const uint32_t lo = s * k_simd, hi = lo + k_simd < n ? lo + k_simd : n;
    uint32_t waiting = 0, running = 0;
    fc_emu_combine_fn fn = nullptr;
    bool mixed = false;
    for (uint32_t i = lo; i < hi; i++) {
        fiber * f = w->fibers[i];
        if (f->state == DONE) continue;
        running++;
        if (f->state != AT_SIMD) continue;
        if (waiting == 0) fn = f->simd_combine;
        else if (f->simd_combine != fn) mixed = true;
        waiting++;
    }
    if (waiting == 0 || waiting != running) return false;
    if (mixed) {
        fc_emu_fatal("kernel %s: lanes of simdgroup %u are in different simdgroup functions", w->d->p->name.c_str(), s);
    }
    if (fn) {
        void * values[k_simd] = { nullptr };
        uint32_t args[k_simd] = { 0 };
        for (uint32_t i = lo; i < hi; i++) {
            fiber * f = w->fibers[i];
            if (f->state != AT_SIMD) continue;
            values[i - lo] = f->simd_value;
            args[i - lo] = f->simd_arg;
        }
        fn(values, args, w->fibers[lo]->simd_bytes);
    }
    for (uint32_t i = lo; i < hi; i++) {
        if (w->fibers[i]->state == AT_SIMD) w->fibers[i]->state = READY;
    }
    return true;
}

void run_threadgroup(worker * w, uint32_t n) {
    const uint32_t * ntg = w->d->threads;
    while (w->fibers.size() < n) w->fibers.push_back(new_fiber());
    for (uint32_t i = 0; i < n; i++) {
        fiber * f = w->fibers[i];
        f->state = READY;
        f->linear = i;
        f->tpitg[0] = i % ntg[0];
        f->tpitg[1] = (i / ntg[0]) % ntg[1];
        f->tpitg[2] = i / (ntg[0] * ntg[1]);
    }
    for (;;) {
        for (uint32_t i = 0; i < n; i++) {
            if (w->fibers[i]->state == READY) resume(w, w->fibers[i]);
        }
        uint32_t done = 0, at_barrier = 0;
        for (uint32_t i = 0; i < n; i++) {
            done += w->fibers[i]->state == DONE;
            at_barrier += w->fibers[i]->state == AT_BARRIER;
        }
        if (done == n) return;
        if (at_barrier + done == n) {
            if (done > 0) {
                fc_emu_fatal("kernel %s: threadgroup_barrier reached by %u of %u threads (the others returned)",
                             w->d->p->name.c_str(), at_barrier, n);
            }
            for (uint32_t i = 0; i < n; i++) w->fibers[i]->state = READY;
            continue;
        }
        bool released = false;
        for (uint32_t s = 0; s * k_simd < n; s++) released |= try_release_simdgroup(w, s, n);
        if (!released) {
            fc_emu_fatal("kernel %s: threads wait at different barriers (%u at threadgroup_barrier, %u done, of %u)",
                         w->d->p->name.c_str(), at_barrier, done, n);
        }
    }
}

/* Threadgroups first..last (linear order) of dispatch d on worker w (this OS thread). */
void run_groups(worker * w, const dispatch * d, uint64_t first, uint64_t last) {
    tl_worker = w;
    w->d = d;
    const uint32_t n = d->threads[0] * d->threads[1] * d->threads[2];
    for (uint64_t g = first; g < last; g++) {
        w->tgpig[0] = (uint32_t)(g % d->groups[0]);
        w->tgpig[1] = (uint32_t)((g / d->groups[0]) % d->groups[1]);
        w->tgpig[2] = (uint32_t)(g / ((uint64_t)d->groups[0] * d->groups[1]));
        run_threadgroup(w, n);
    }
    tl_worker = nullptr;
}

} // namespace

/* ===== called from the kernels (msl-shim.h) ===== */

extern "C" void fc_emu_fatal(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "metal-emu: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

extern "C" void fc_emu_threadgroup_barrier(void) {
    worker * w = current_worker();
    fiber * f = w->current;
    f->state = AT_BARRIER;
    yield_to_scheduler(w, f);
}

extern "C" void fc_emu_simdgroup_barrier(void) {
    worker * w = current_worker();
    fiber * f = w->current;
    f->state = AT_SIMD;
    f->simd_combine = nullptr;
    yield_to_scheduler(w, f);
}

extern "C" void fc_emu_simd_collective(void * value, uint32_t value_bytes, uint32_t arg, fc_emu_combine_fn combine) {
    worker * w = current_worker();
    fiber * f = w->current;
    f->state = AT_SIMD;
    f->simd_value = value;
    f->simd_bytes = value_bytes;
    f->simd_arg = arg;
    f->simd_combine = combine;
    yield_to_scheduler(w, f);
}

/* ===== the device ===== */

struct fc_gpu_buffer {
    void * ptr;
    size_t n_bytes;
    bool owned;
};

struct fc_gpu_pipeline {
    pipeline_info info;
};

struct emu_gpu {
    fc_gpu base;
    std::string source;
    std::vector<fc_gpu_pipeline *> pipelines;
    std::vector<worker *> workers;
};

struct fc_gpu_cmd {
    emu_gpu * gpu;
    const fc_gpu_pipeline * p = nullptr;
    void * buffers[FC_EMU_MAX_BUFFERS] = { nullptr };
    size_t buffer_bytes[FC_EMU_MAX_BUFFERS] = { 0 };
    std::vector<uint8_t> bytes[FC_EMU_MAX_BUFFERS];
    bool has_bytes[FC_EMU_MAX_BUFFERS] = { false };
    std::vector<dispatch> dispatches;
};

namespace {

const struct {
    const char * attr;
    int kind;
} k_attrs[] = {
    { "thread_position_in_grid", FC_EMU_THREAD_POSITION_IN_GRID },
    { "thread_position_in_threadgroup", FC_EMU_THREAD_POSITION_IN_THREADGROUP },
    { "threadgroup_position_in_grid", FC_EMU_THREADGROUP_POSITION_IN_GRID },
    { "threads_per_threadgroup", FC_EMU_THREADS_PER_THREADGROUP },
    { "threadgroups_per_grid", FC_EMU_THREADGROUPS_PER_GRID },
    { "threads_per_grid", FC_EMU_THREADS_PER_GRID },
    { "thread_index_in_threadgroup", FC_EMU_THREAD_INDEX_IN_THREADGROUP },
    { "thread_index_in_simdgroup", FC_EMU_THREAD_INDEX_IN_SIMDGROUP },
    { "simdgroup_index_in_threadgroup", FC_EMU_SIMDGROUP_INDEX_IN_THREADGROUP },
    { "threads_per_simdgroup", FC_EMU_THREADS_PER_SIMDGROUP },
    { "simdgroups_per_threadgroup", FC_EMU_SIMDGROUPS_PER_THREADGROUP },
};

std::string trim(const std::string & s) {
    size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

/* Offsets of "kernel void NAME(" at the start of a line (after indentation), with their names. */
std::vector<std::pair<std::string, size_t>> find_kernels(const std::string & src) {
    std::vector<std::pair<std::string, size_t>> out;
    const std::string key = "kernel void ";
    for (size_t at = src.find(key); at != std::string::npos; at = src.find(key, at + 1)) {
        size_t ls = at;
        while (ls > 0 && (src[ls - 1] == ' ' || src[ls - 1] == '\t')) ls--;
        if (ls > 0 && src[ls - 1] != '\n') continue;
        size_t n0 = at + key.size(), n1 = n0;
        while (n1 < src.size() && (isalnum((unsigned char)src[n1]) || src[n1] == '_')) n1++;
        if (n1 < src.size() && src[n1] == '(') out.push_back({ src.substr(n0, n1 - n0), n1 });
    }
    return out;
}

bool parse_params(const std::string & src, size_t open, const char * name, const char * cats, std::vector<fc_emu_param> & out,
                  fc_error * err) {
    int depth = 0;
    size_t start = open + 1, i = open;
    std::vector<std::string> params;
    for (; i < src.size(); i++) {
        char c = src[i];
        if (c == '(' || c == '[' || c == '<') depth++;
        else if (c == ')' || c == ']' || c == '>') {
            if (--depth == 0) break;
        } else if (c == ',' && depth == 1) {
            params.push_back(src.substr(start, i - start));
            start = i + 1;
        }
    }
    if (i >= src.size()) {
        fc_error_set(err, FC_STATUS_INTERNAL, "kernel %s: unterminated parameter list", name);
        return false;
    }
    params.push_back(src.substr(start, i - start));
    if (params.size() != strlen(cats)) {
        fc_error_set(err, FC_STATUS_INTERNAL, "kernel %s: %zu parameters in the source, %zu compiled", name, params.size(), strlen(cats));
        return false;
    }
    for (size_t k = 0; k < params.size(); k++) {
        const std::string & p = params[k];
        size_t a0 = p.find("[["), a1 = p.find("]]");
        if (a0 == std::string::npos || a1 == std::string::npos) {
            fc_error_set(err, FC_STATUS_INTERNAL, "kernel %s: parameter '%s' has no [[attribute]]", name, trim(p).c_str());
            return false;
        }
        std::string attr = trim(p.substr(a0 + 2, a1 - a0 - 2));
        fc_emu_param q = { -1, 0 };
        if (attr.rfind("buffer(", 0) == 0) {
            q.kind = FC_EMU_BUFFER;
            q.index = atoi(attr.c_str() + 7);
            if (q.index < 0 || q.index >= FC_EMU_MAX_BUFFERS || (cats[k] != 'p' && cats[k] != 'r')) q.kind = -1;
        } else {
            for (const auto & m : k_attrs) {
                if (attr == m.attr && cats[k] == 'v') q.kind = m.kind;
            }
        }
        if (q.kind < 0) {
            fc_error_set(err, FC_STATUS_INTERNAL, "kernel %s: parameter '%s': unsupported attribute [[%s]] for its type", name,
                         trim(p.substr(0, a0)).c_str(), attr.c_str());
            return false;
        }
        out.push_back(q);
    }
    return true;
}

const fc_emu_kernel * find_compiled(const char * name) {
    for (int i = 0; i < fc_emu_n_kernels; i++) {
        if (strcmp(fc_emu_kernels[i].name, name) == 0) return &fc_emu_kernels[i];
    }
    return nullptr;
}

emu_gpu * as_emu(fc_gpu * g) { return (emu_gpu *)g; }

void emu_destroy(fc_gpu * g) {
    emu_gpu * gpu = as_emu(g);
    for (fc_gpu_pipeline * p : gpu->pipelines) delete p;
    for (worker * w : gpu->workers) delete w;
    delete gpu;
}

fc_gpu_buffer * emu_buffer_wrap(fc_gpu * g, void * ptr, size_t n_bytes, fc_error * err) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!ptr || (uintptr_t)ptr % page != 0 || n_bytes == 0 || n_bytes % page != 0) {
        fc_error_set(err, FC_STATUS_INTERNAL, "buffer_wrap: memory must be page-aligned and a whole number of pages (%p, %zu bytes)",
                     ptr, n_bytes);
        return nullptr;
    }
    return new fc_gpu_buffer{ ptr, n_bytes, false };
}

fc_gpu_buffer * emu_buffer_new(fc_gpu * g, size_t n_bytes, fc_error * err) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (n_bytes + page - 1) / page * page;
    void * p = nullptr;
    if (rounded == 0 || posix_memalign(&p, page, rounded) != 0) {
        fc_error_set(err, FC_STATUS_NO_MEMORY, "buffer_new: cannot allocate %zu bytes", n_bytes);
        return nullptr;
    }
    memset(p, 0, rounded);
    return new fc_gpu_buffer{ p, n_bytes, true };
}

void * emu_buffer_contents(fc_gpu_buffer * b) { return b->ptr; }
size_t emu_buffer_bytes(fc_gpu_buffer * b) { return b->n_bytes; }

void emu_buffer_free(fc_gpu_buffer * b) {
    if (!b) return;
    if (b->owned) free(b->ptr);
    delete b;
}

fc_gpu_pipeline * emu_pipeline(fc_gpu * g, const char * name, fc_error * err) {
    emu_gpu * gpu = as_emu(g);
    for (fc_gpu_pipeline * p : gpu->pipelines) {
        if (p->info.name == name) return p;
    }
    const fc_emu_kernel * k = find_compiled(name);
    size_t open = std::string::npos;
    for (const auto & kv : find_kernels(gpu->source)) {
        if (kv.first == name) open = kv.second;
    }
    if (!k || open == std::string::npos) {
        fc_error_set(err, FC_STATUS_INTERNAL, "no kernel named %s", name);
        return nullptr;
    }
    fc_gpu_pipeline * p = new fc_gpu_pipeline;
    p->info.name = name;
    p->info.k = k;
    if (!parse_params(gpu->source, open, name, k->categories, p->info.params, err)) {
        delete p;
        return nullptr;
    }
    gpu->pipelines.push_back(p);
    return p;
}

uint32_t emu_pipeline_max_threads(fc_gpu_pipeline *) { return 1024; }

fc_gpu_cmd * emu_cmd_begin(fc_gpu * g) {
    fc_gpu_cmd * c = new fc_gpu_cmd;
    c->gpu = as_emu(g);
    return c;
}

void emu_set_pipeline(fc_gpu_cmd * c, fc_gpu_pipeline * p) { c->p = p; }

void emu_set_buffer(fc_gpu_cmd * c, uint32_t index, fc_gpu_buffer * b, size_t offset) {
    if (index >= FC_EMU_MAX_BUFFERS) fc_emu_fatal("set_buffer: index %u out of range", index);
    if (b && offset > b->n_bytes) fc_emu_fatal("set_buffer(%u): offset %zu beyond the buffer's %zu bytes", index, offset, b->n_bytes);
    c->buffers[index] = b ? (uint8_t *)b->ptr + offset : nullptr;
    c->buffer_bytes[index] = b ? b->n_bytes - offset : 0;
    c->has_bytes[index] = false;
}

void emu_set_bytes(fc_gpu_cmd * c, uint32_t index, const void * bytes, size_t n_bytes) {
    if (index >= FC_EMU_MAX_BUFFERS) fc_emu_fatal("set_bytes: index %u out of range", index);
    if (n_bytes > 4096) fc_emu_fatal("set_bytes(%u): %zu bytes (Metal allows 4 KiB)", index, n_bytes);
    c->bytes[index].assign((const uint8_t *)bytes, (const uint8_t *)bytes + n_bytes);
    c->has_bytes[index] = true;
}

void emu_dispatch(fc_gpu_cmd * c, fc_gpu_size groups, fc_gpu_size threads) {
    if (!c->p) fc_emu_fatal("dispatch without a pipeline");
    const uint64_t n = (uint64_t)threads.x * threads.y * threads.z;
    if (n == 0 || n > 1024) fc_emu_fatal("kernel %s: %llu threads per threadgroup (1..1024)", c->p->info.name.c_str(), (unsigned long long)n);
    dispatch d;
    d.p = &c->p->info;
    memset(&d.env, 0, sizeof d.env);
    d.bytes.resize(FC_EMU_MAX_BUFFERS);
    for (int i = 0; i < FC_EMU_MAX_BUFFERS; i++) {
        if (c->has_bytes[i]) {
            d.bytes[i] = c->bytes[i];
            d.env.buffer_bytes[i] = c->bytes[i].size();
        } else {
            d.env.buffers[i] = c->buffers[i];
            d.env.buffer_bytes[i] = c->buffer_bytes[i];
        }
    }
    for (const fc_emu_param & q : c->p->info.params) {
        if (q.kind == FC_EMU_BUFFER && !c->has_bytes[q.index] && !c->buffers[q.index]) {
            fc_emu_fatal("kernel %s: buffer(%d) is not bound", c->p->info.name.c_str(), q.index);
        }
    }
    d.groups[0] = groups.x;
    d.groups[1] = groups.y;
    d.groups[2] = groups.z;
    d.threads[0] = threads.x;
    d.threads[1] = threads.y;
    d.threads[2] = threads.z;
    for (int a = 0; a < 3; a++) {
        d.env.pos[FC_EMU_THREADS_PER_THREADGROUP][a] = d.threads[a];
        d.env.pos[FC_EMU_THREADGROUPS_PER_GRID][a] = d.groups[a];
        d.env.pos[FC_EMU_THREADS_PER_GRID][a] = d.groups[a] * d.threads[a];
    }
    d.env.pos[FC_EMU_THREADS_PER_SIMDGROUP][0] = k_simd;
    d.env.pos[FC_EMU_SIMDGROUPS_PER_THREADGROUP][0] = (uint32_t)((n + k_simd - 1) / k_simd);
    c->dispatches.push_back(std::move(d));
}

/* Runs everything recorded, in order (each dispatch sees the writes of the ones before). */
void emu_commit(fc_gpu_cmd * c) {
    emu_gpu * gpu = c->gpu;
    for (dispatch & d : c->dispatches) {
        for (int i = 0; i < FC_EMU_MAX_BUFFERS; i++) {
            if (!d.bytes[i].empty()) d.env.buffers[i] = d.bytes[i].data();
        }
        const uint64_t n_groups = (uint64_t)d.groups[0] * d.groups[1] * d.groups[2];
        const size_t n_workers = gpu->workers.size();
        if (n_workers == 1 || n_groups < 2) {
            run_groups(gpu->workers[0], &d, 0, n_groups);
            continue;
        }
        std::vector<std::thread> threads;
        for (size_t wi = 1; wi < n_workers; wi++) {
            uint64_t a = n_groups * wi / n_workers, b = n_groups * (wi + 1) / n_workers;
            threads.emplace_back(run_groups, gpu->workers[wi], &d, a, b);
        }
        run_groups(gpu->workers[0], &d, 0, n_groups / n_workers);
        for (std::thread & t : threads) t.join();
    }
    c->dispatches.clear();
}

fc_status emu_wait(fc_gpu_cmd * c, fc_error *) {
    delete c;
    return FC_STATUS_OK;
}

const fc_gpu_ops k_emu_ops = {
    "metal-emu",
    emu_destroy,
    emu_buffer_wrap,
    emu_buffer_new,
    emu_buffer_contents,
    emu_buffer_bytes,
    emu_buffer_free,
    emu_pipeline,
    emu_pipeline_max_threads,
    emu_cmd_begin,
    emu_set_pipeline,
    emu_set_buffer,
    emu_set_bytes,
    emu_dispatch,
    emu_commit,
    emu_wait,
};

} // namespace

extern "C" fc_gpu * fc_gpu_emu_create(const char * source, int n_workers, fc_error * err) {
    emu_gpu * gpu = new emu_gpu;
    gpu->base.ops = &k_emu_ops;
    gpu->source = source;
    /* every kernel of the source must be compiled in, and threadgroup arrays declared the shared way */
    for (const auto & kv : find_kernels(gpu->source)) {
        if (!find_compiled(kv.first.c_str())) {
            fc_error_set(err, FC_STATUS_INTERNAL, "kernel %s is in the source but not in the emulator's table (kernels-emu.cpp)",
                         kv.first.c_str());
            delete gpu;
            return nullptr;
        }
    }
    for (size_t at = gpu->source.find("\n"); at != std::string::npos; at = gpu->source.find("\n", at + 1)) {
        size_t s = gpu->source.find_first_not_of(" \t", at + 1);
        if (s != std::string::npos && gpu->source.compare(s, 12, "threadgroup ") == 0) {
            size_t e = gpu->source.find('\n', s);
            std::string line = gpu->source.substr(s, e - s);
            if (line.find('[') != std::string::npos && line.find('*') == std::string::npos) {
                fc_error_set(err, FC_STATUS_INTERNAL,
                             "'%s': declare threadgroup arrays with FC_TG_LOCAL (shared by the emulated threads)", line.c_str());
                delete gpu;
                return nullptr;
            }
        }
    }
    if (n_workers < 1) n_workers = 1;
    for (int i = 0; i < n_workers; i++) gpu->workers.push_back(new worker);
    return &gpu->base;
}
