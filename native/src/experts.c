/* Expert streaming: layout.json, one fd per layer file, and a small pool of pread threads. */
#define _GNU_SOURCE
#include "experts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "platform.h"

#define IO_CHUNK_BYTES ((size_t)2 << 20) /* split big experts so several threads keep the SSD queue full */

/* ===== pread pool ===== */

struct io_job {
    int fd;
    const uint8_t * probe; /* the chunk in an unfaulted mapping of the file (mincore), or NULL */
    int32_t layer;
    int32_t slot; /* which expert of the batch (for waiting on one) */
    uint8_t * buf;
    size_t size;
    uint64_t offset;
};

struct fc_io_pool {
    pthread_t * threads;
    int32_t n_threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    struct io_job * jobs;
    int32_t n_jobs, cap_jobs, next_job, n_pending;
    int32_t * slot_pending; /* [cap_slots] chunks still to read per expert slot */
    int32_t cap_slots;
    int stop;
    int failed;
    char fail_msg[256];
    uint64_t cached_bytes; /* resident in the page cache before the read (mincore in the worker) */
};

uint64_t fc_resident_bytes(const void * p, size_t bytes) {
    static long page = 0;
    if (!page) page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    const uintptr_t a = (uintptr_t)p, lo = a & ~(uintptr_t)(page - 1), hi = a + bytes;
    const size_t n = (size_t)((hi - lo + (uintptr_t)page - 1) / (uintptr_t)page);
    unsigned char stackv[1024];
    unsigned char * v = n <= sizeof stackv ? stackv : malloc(n);
    if (!v) return bytes;
#if defined(__APPLE__)
    int rc = mincore((void *)lo, hi - lo, (char *)v);
#else
    int rc = mincore((void *)lo, hi - lo, v);
#endif
    uint64_t got = 0;
    if (rc != 0) got = bytes;
    else {
        for (size_t i = 0; i < n; i++) {
            if (!(v[i] & 1)) continue;
            /* the part of page i inside [a, hi) */
            uintptr_t s = lo + i * (uintptr_t)page, e = s + (uintptr_t)page;
            if (s < a) s = a;
            if (e > hi) e = hi;
            got += e - s;
        }
    }
    if (v != stackv) free(v);
    return got;
}

static void * io_main(void * p) {
    struct fc_io_pool * io = p;
    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (!io->stop && io->next_job >= io->n_jobs) pthread_cond_wait(&io->work_cv, &io->mu);
        if (io->stop) break;
        struct io_job job = io->jobs[io->next_job++];
        pthread_mutex_unlock(&io->mu);
        const uint64_t cached = job.probe ? fc_resident_bytes(job.probe, job.size) : 0;
        size_t done = 0;
        int err = 0;
        while (done < job.size) {
            ssize_t got = pread(job.fd, job.buf + done, job.size - done, (off_t)(job.offset + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) { err = got < 0 ? errno : -1; break; }
            done += (size_t)got;
        }
        pthread_mutex_lock(&io->mu);
        if (err && !io->failed) {
            io->failed = 1;
            snprintf(io->fail_msg, sizeof io->fail_msg, "layer %d: read of %zu bytes at offset %llu failed (%s)", job.layer, job.size,
                     (unsigned long long)job.offset, err > 0 ? strerror(err) : "unexpected end of file");
        }
        io->cached_bytes += cached;
        io->slot_pending[job.slot]--;
        io->n_pending--;
        pthread_cond_broadcast(&io->done_cv);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

static struct fc_io_pool * io_init(int32_t n) {
    struct fc_io_pool * io = fc_xcalloc(1, sizeof *io);
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->work_cv, NULL);
    pthread_cond_init(&io->done_cv, NULL);
    io->threads = fc_xcalloc((size_t)n, sizeof *io->threads);
    for (int32_t i = 0; i < n; i++) {
        if (pthread_create(&io->threads[i], NULL, io_main, io) != 0) break;
        io->n_threads++;
    }
    return io;
}

static void io_free(struct fc_io_pool * io) {
    if (!io) return;
    pthread_mutex_lock(&io->mu);
    io->stop = 1;
    pthread_cond_broadcast(&io->work_cv);
    pthread_mutex_unlock(&io->mu);
    for (int32_t i = 0; i < io->n_threads; i++) pthread_join(io->threads[i], NULL);
    pthread_mutex_destroy(&io->mu);
    pthread_cond_destroy(&io->work_cv);
    pthread_cond_destroy(&io->done_cv);
    free(io->jobs);
    free(io->slot_pending);
    free(io->threads);
    free(io);
}

/* ===== layout ===== */

static const char * const COMPONENTS[9] = {
    "gate_proj.weight", "gate_proj.scales", "gate_proj.biases", "up_proj.weight", "up_proj.scales",
    "up_proj.biases",   "down_proj.weight", "down_proj.scales", "down_proj.biases",
};

const char * fc_expert_io_name(enum fc_expert_io mode) {
    switch (mode) {
    case FC_EXPERT_IO_PREAD: return "pread";
    case FC_EXPERT_IO_MMAP: return "mmap";
    case FC_EXPERT_IO_POPULATE: return "populate";
    default: return "auto";
    }
}

uint64_t fc_available_memory(void) {
    return fc_platform_available_memory();
}

/* Fault in (reading from disk what is not cached) every page of a read-only mapping. */
static void populate(const uint8_t * m, size_t n) {
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14+; older kernels answer EINVAL and we touch the pages instead */
#endif
#ifdef __linux__
    if (madvise((void *)m, n, MADV_POPULATE_READ) == 0) return;
#endif
    madvise((void *)m, n, MADV_WILLNEED);
    long page = sysconf(_SC_PAGESIZE);
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < n; off += (size_t)(page > 0 ? page : 4096)) sink ^= m[off];
    (void)sink;
}

#ifdef __linux__
/* kB of the mapping that starts at `addr` mapped with 2 MiB page-table entries (FilePmdMapped); -1 if unknown. */
static long long file_pmd_kb(const void * addr) {
    FILE * f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0;
    long long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ' ') > strchr(line, '-')) {
            inside = lo == (unsigned long)addr;
        } else if (inside && sscanf(line, "FilePmdMapped: %lld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}
#endif

/*
 * Map a layer file for use in place and fault every page in. The kernel maps a file page cache held in
 * 2 MiB folios with 2 MiB entries; one held in small folios (e.g. read back by small readahead) costs a
 * TLB entry per 4 KiB, which here made the experts' matvec markedly slower than on pread copies in
 * huge-page buffers. So when only part of the file came out 2 MiB-mapped (the kernel can, but the cache
 * holds small folios), its cached pages are dropped and read again in 2 MiB folios, once.
 */
static void populate_layer(const uint8_t * m, size_t n, int fd) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise((void *)m, n, MADV_HUGEPAGE); /* faults on uncached ranges read 2 MiB folios */
#endif
    populate(m, n);
#ifdef __linux__
    const size_t huge = (size_t)2 << 20;
    long long kb = n >= 4 * huge ? file_pmd_kb(m) : -1;
    if (kb > 0 && (size_t)kb * 1024 < n / 10 * 9) {
        madvise((void *)m, n, MADV_DONTNEED);           /* unmap our pages so the cache can drop them */
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* only clean pages nobody else maps are dropped */
        populate(m, n);
    }
#else
    (void)fd;
#endif
}

enum fc_status fc_experts_load(struct fc_experts * x, const char * dir, const struct fc_config * cfg, int32_t n_io_threads,
                               enum fc_expert_io mode, struct fc_error * err) {
    memset(x, 0, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "%s", dir);
    x->n_layers = cfg->n_layers;
    x->fds = fc_xmalloc((size_t)cfg->n_layers * sizeof *x->fds);
    for (int32_t i = 0; i < cfg->n_layers; i++) x->fds[i] = -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/layout.json", dir);
    size_t len;
    enum fc_status st = FC_STATUS_OK;
    char * text = fc_read_file(path, &len, err);
    if (!text) { fc_experts_free(x); return FC_STATUS_LOAD_FAILED; }
    char jerr[128] = "";
    struct fc_json * root = fc_json_parse(text, len, jerr, sizeof jerr);
    free(text);
    if (!root) { fc_experts_free(x); return fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: not valid JSON (%s)", path, jerr); }
    int64_t v;
    const struct fc_json * fmt = fc_json_get(root, "format");
    if (!fmt || fmt->type != FC_JSON_STRING || strcmp(fmt->string, "flashchat-experts") != 0 ||
        !fc_json_as_int64(fc_json_get(root, "version"), 1, 1, &v)) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: not a version 1 flashchat-experts layout", path);
        goto done;
    }
#define GETI(key, field, lo, hi)                                                                                        \
    if (!fc_json_as_int64(fc_json_get(root, key), lo, hi, &v)) {                                                        \
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: %s is missing or out of range", path, key);                  \
        goto done;                                                                                                      \
    }                                                                                                                   \
    x->field = v
    GETI("bits", bits, 2, 8);
    GETI("group_size", group_size, 1, 1 << 20);
    GETI("num_experts", n_experts, 1, 1 << 20);
    GETI("hidden_size", hidden, 1, 1 << 24);
    GETI("moe_intermediate_size", inter, 1, 1 << 24);
    GETI("expert_size", expert_bytes, 1, INT64_MAX);
#undef GETI
    if (x->bits != 2 && x->bits != 4 && x->bits != 8) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: %d-bit experts are not supported", path, x->bits);
        goto done;
    }
    if (x->n_experts != cfg->n_experts || x->hidden != cfg->hidden_size || x->inter != cfg->moe_inter) {
        st = fc_error_set(err, FC_STATUS_LOAD_FAILED,
                          "%s: experts are %d x [%d hidden, %d intermediate] but the model has %d x [%d, %d]: wrong model?", path,
                          x->n_experts, x->hidden, x->inter, cfg->n_experts, cfg->hidden_size, cfg->moe_inter);
        goto done;
    }
    const struct fc_json * comps = fc_json_get(root, "components");
    for (int c = 0; c < 9; c++) {
        const struct fc_json * found = NULL;
        for (int32_t i = 0; comps && comps->type == FC_JSON_ARRAY && i < comps->n_items; i++) {
            const struct fc_json * nm = fc_json_get(&comps->items[i], "name");
            if (nm && nm->type == FC_JSON_STRING && strcmp(nm->string, COMPONENTS[c]) == 0) found = &comps->items[i];
        }
        int64_t off, size;
        if (!found || !fc_json_as_int64(fc_json_get(found, "offset"), 0, INT64_MAX, &off) ||
            !fc_json_as_int64(fc_json_get(found, "size"), 0, INT64_MAX, &size)) {
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: component %s is missing", path, COMPONENTS[c]);
            goto done;
        }
        int is_down = c >= 6, is_codes = c % 3 == 0;
        int64_t rows = is_down ? x->hidden : x->inter, cols = is_down ? x->inter : x->hidden;
        int64_t want = is_codes ? rows * cols * x->bits / 8 : rows * (cols / x->group_size) * 2;
        if (size != want || (uint64_t)(off + size) > x->expert_bytes || cols % x->group_size != 0) {
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: component %s has %lld bytes at %lld, expected %lld within %zu", path,
                              COMPONENTS[c], (long long)size, (long long)off, (long long)want, x->expert_bytes);
            goto done;
        }
        x->comp_off[c] = (size_t)off;
    }
    if (mode == FC_EXPERT_IO_AUTO) {
        /* in place and loaded up front when every layer file fits in half the available memory (a warm page
           cache then costs no copy per token); otherwise stream with pread (models far larger than RAM) */
        uint64_t total = (uint64_t)cfg->n_layers * (uint64_t)x->n_experts * x->expert_bytes;
        uint64_t avail = fc_available_memory();
        mode = avail > 0 && total <= avail / 2 ? FC_EXPERT_IO_POPULATE : FC_EXPERT_IO_PREAD;
    }
    const int use_mmap = mode == FC_EXPERT_IO_MMAP || mode == FC_EXPERT_IO_POPULATE;
    x->use_mmap = use_mmap;
    x->populated = mode == FC_EXPERT_IO_POPULATE;
    const struct fc_json * layers = fc_json_get(root, "layers");
    for (int32_t i = 0; layers && layers->type == FC_JSON_ARRAY && i < layers->n_items; i++) {
        const struct fc_json * ly = &layers->items[i];
        const struct fc_json * file = fc_json_get(ly, "file");
        int64_t li;
        if (!fc_json_as_int64(fc_json_get(ly, "layer"), 0, cfg->n_layers - 1, &li) || !file || file->type != FC_JSON_STRING ||
            strchr(file->string, '/')) {
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: layers[%d] needs a layer index < %d and a file name", path, i, cfg->n_layers);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s", dir, file->string);
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: cannot open (%s)", path, strerror(errno));
            goto done;
        }
        fc_platform_expert_file(fd);
        struct stat sb;
        uint64_t want = (uint64_t)x->n_experts * x->expert_bytes;
        if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != want) {
            close(fd);
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: %lld bytes, expected %llu (%d experts x %zu): truncated or wrong layout",
                              path, (long long)sb.st_size, (unsigned long long)want, x->n_experts, x->expert_bytes);
            goto done;
        }
        if (x->fds[li] >= 0) close(x->fds[li]);
        x->fds[li] = fd;
        if (use_mmap) {
            if (!x->maps) x->maps = fc_xcalloc((size_t)cfg->n_layers, sizeof *x->maps);
            if (x->maps[li]) munmap((void *)x->maps[li], want);
            void * m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) {
                st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: mmap failed (%s)", path, strerror(errno));
                goto done;
            }
            x->maps[li] = m;
            if (x->populated) populate_layer(m, want, fd);
        } else {
            /* never touched: only for asking mincore what of an expert is in the page cache before it is read */
            if (!x->probe_maps) x->probe_maps = fc_xcalloc((size_t)cfg->n_layers, sizeof *x->probe_maps);
            if (x->probe_maps[li]) munmap((void *)x->probe_maps[li], want);
            void * m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
            x->probe_maps[li] = m == MAP_FAILED ? NULL : m;
        }
        snprintf(path, sizeof path, "%s/layout.json", dir);
    }
    for (int32_t i = 0; i < cfg->n_layers; i++) {
        if (x->fds[i] < 0) {
            st = fc_error_set(err, FC_STATUS_LOAD_FAILED, "%s: no expert file for layer %d", path, i);
            goto done;
        }
    }
    x->io = io_init(n_io_threads < 1 ? 1 : n_io_threads);
done:
    fc_json_free(root);
    if (st != FC_STATUS_OK) fc_experts_free(x);
    return st;
}

void fc_experts_free(struct fc_experts * x) {
    io_free(x->io);
    if (x->maps) {
        for (int32_t i = 0; i < x->n_layers; i++) {
            if (x->maps[i]) munmap((void *)x->maps[i], (size_t)x->n_experts * x->expert_bytes);
        }
        free(x->maps);
        x->maps = NULL;
    }
    if (x->probe_maps) {
        for (int32_t i = 0; i < x->n_layers; i++) {
            if (x->probe_maps[i]) munmap((void *)x->probe_maps[i], (size_t)x->n_experts * x->expert_bytes);
        }
        free(x->probe_maps);
        x->probe_maps = NULL;
    }
    free(x->lru_stamp);
    free(x->lru_ring);
    x->lru_stamp = NULL;
    x->lru_ring = NULL;
    if (x->fds) {
        for (int32_t i = 0; i < x->n_layers; i++) {
            if (x->fds[i] >= 0) close(x->fds[i]);
        }
        free(x->fds);
    }
    x->fds = NULL;
    x->io = NULL;
}

void fc_experts_view(const struct fc_experts * x, const uint8_t * buf, struct fc_matrix * gate, struct fc_matrix * up,
                     struct fc_matrix * down) {
    enum fc_dtype t = x->bits == 2 ? FC_DTYPE_Q2 : x->bits == 4 ? FC_DTYPE_Q4 : FC_DTYPE_Q8;
    struct fc_matrix * ms[3] = { gate, up, down };
    for (int i = 0; i < 3; i++) {
        int32_t rows = i == 2 ? x->hidden : x->inter, cols = i == 2 ? x->inter : x->hidden;
        enum fc_status st = fc_matrix_init(ms[i], "expert", t, rows, cols, x->group_size, buf + x->comp_off[3 * i],
                                           buf + x->comp_off[3 * i + 1], buf + x->comp_off[3 * i + 2], NULL);
        FC_ASSERT(st == FC_STATUS_OK); /* validated at load */
    }
}

/* ===== page cache limit (--expert-cache-mb) ===== */

enum fc_status fc_experts_set_cache_limit(struct fc_experts * x, uint64_t bytes, struct fc_error * err) {
#if defined(POSIX_FADV_DONTNEED)
    if (x->use_mmap && bytes) {
        return fc_error_set(err, FC_STATUS_BAD_REQUEST, "a page cache limit needs the experts read with pread (--expert-io pread)");
    }
    x->cache_limit = bytes;
    if (!bytes) return FC_STATUS_OK;
    const size_t n = (size_t)x->n_layers * (size_t)x->n_experts;
    if (!x->lru_stamp) x->lru_stamp = fc_xcalloc(n, sizeof *x->lru_stamp);
    if (!x->lru_ring) {
        x->lru_cap = 4 * n + 256;
        x->lru_ring = fc_xcalloc(x->lru_cap, sizeof *x->lru_ring);
    }
    for (int32_t l = 0; l < x->n_layers; l++) {
        /* no read-ahead past an expert: what reaches the cache is what was asked for */
        posix_fadvise(x->fds[l], 0, 0, POSIX_FADV_RANDOM);
        posix_fadvise(x->fds[l], 0, 0, POSIX_FADV_DONTNEED); /* start from nothing cached, so the limit holds */
    }
    return FC_STATUS_OK;
#else
    (void)x;
    if (!bytes) return FC_STATUS_OK;
    return fc_error_set(err, FC_STATUS_BAD_REQUEST, "a page cache limit needs posix_fadvise, which this OS does not have");
#endif
}

#if defined(POSIX_FADV_DONTNEED)
/* Take the oldest entry off the ring; if it stands for a live expert (not read again since), drop that from the cache. */
static void cache_drop_oldest(struct fc_experts * x) {
    const uint64_t v = (uint64_t)x->lru_ring[x->lru_head];
    x->lru_head = (x->lru_head + 1) % x->lru_cap;
    x->lru_len--;
    const size_t key = (size_t)(v >> 32);
    if (x->lru_stamp[key] != (uint32_t)v) return; /* read again since: a newer entry stands for it */
    x->lru_stamp[key] = 0;
    const int32_t l = (int32_t)(key / (size_t)x->n_experts), id = (int32_t)(key % (size_t)x->n_experts);
    posix_fadvise(x->fds[l], (off_t)((uint64_t)id * x->expert_bytes), (off_t)x->expert_bytes, POSIX_FADV_DONTNEED);
    x->cache_live -= x->expert_bytes;
    x->cache_dropped += x->expert_bytes;
}
#endif

/* Note experts ids[0..n) of `layer` as just read; drop the least recently read ones beyond the limit. */
static void cache_limit_note(struct fc_experts * x, int32_t layer, const int32_t * ids, int32_t n) {
#if defined(POSIX_FADV_DONTNEED)
    for (int32_t i = 0; i < n; i++) {
        const size_t key = (size_t)layer * (size_t)x->n_experts + (size_t)ids[i];
        if (!x->lru_stamp[key]) x->cache_live += x->expert_bytes;
        if (++x->lru_seq == 0) x->lru_seq = 1;
        x->lru_stamp[key] = x->lru_seq;
        if (x->lru_len == x->lru_cap) cache_drop_oldest(x); /* full of re-reads (or a limit near the whole model) */
        x->lru_ring[(x->lru_head + x->lru_len++) % x->lru_cap] = (int64_t)((uint64_t)key << 32 | x->lru_seq);
    }
    while (x->cache_live > x->cache_limit && x->lru_len > 0) cache_drop_oldest(x);
#else
    (void)x; (void)layer; (void)ids; (void)n;
#endif
}

void fc_experts_read_start(struct fc_experts * x, int32_t layer, const int32_t * ids, int32_t n, uint8_t ** bufs,
                           int32_t first_slot) {
    struct fc_io_pool * io = x->io;
    FC_ASSERT(first_slot >= 0 && first_slot + n <= 256);
    if (x->use_mmap) {
        /* in place: ask the kernel to read ahead what is not cached (unless all was faulted in at load);
           the matvec touches it next */
        for (int32_t e = 0; e < n; e++) {
            x->slot_data[first_slot + e] = x->maps[layer] + (size_t)ids[e] * x->expert_bytes;
            x->bytes_cached += x->populated ? x->expert_bytes : fc_resident_bytes(x->slot_data[first_slot + e], x->expert_bytes);
            if (!x->populated) madvise((void *)x->slot_data[first_slot + e], x->expert_bytes, MADV_WILLNEED);
        }
        x->bytes_read += (uint64_t)n * x->expert_bytes;
        x->reads += (uint64_t)n;
        return;
    }
    for (int32_t e = 0; e < n; e++) x->slot_data[first_slot + e] = bufs[first_slot + e];
    size_t chunks_per = (x->expert_bytes + IO_CHUNK_BYTES - 1) / IO_CHUNK_BYTES;
    pthread_mutex_lock(&io->mu);
    if (io->next_job == io->n_jobs) io->n_jobs = io->next_job = 0; /* queue drained: reuse it from the start */
    if (io->n_pending == 0) io->failed = 0;
    int32_t need = io->n_jobs + (int32_t)(chunks_per * (size_t)n);
    if (need > io->cap_jobs) {
        /* workers copy a job out under the mutex, so growing the array here is safe */
        struct io_job * nj = realloc(io->jobs, (size_t)need * sizeof *nj);
        FC_ASSERT(nj != NULL);
        io->jobs = nj;
        io->cap_jobs = need;
    }
    if (io->cap_slots < 256) {
        int32_t * ns = realloc(io->slot_pending, 256 * sizeof *ns);
        FC_ASSERT(ns != NULL);
        for (int32_t i = io->cap_slots; i < 256; i++) ns[i] = 0;
        io->slot_pending = ns;
        io->cap_slots = 256;
    }
    for (int32_t e = 0; e < n; e++) {
        const int32_t slot = first_slot + e;
        FC_ASSERT(io->slot_pending[slot] == 0); /* never refill a slot still being read */
        io->slot_pending[slot] = (int32_t)chunks_per;
        for (size_t c = 0; c < chunks_per; c++) {
            size_t off = c * IO_CHUNK_BYTES;
            size_t sz = x->expert_bytes - off < IO_CHUNK_BYTES ? x->expert_bytes - off : IO_CHUNK_BYTES;
            const uint64_t at = (uint64_t)ids[e] * x->expert_bytes + off;
            const uint8_t * probe = x->probe_maps && x->probe_maps[layer] ? x->probe_maps[layer] + at : NULL;
            io->jobs[io->n_jobs++] = (struct io_job){ x->fds[layer], probe, layer, slot, bufs[slot] + off, sz, at };
        }
    }
    io->n_pending += (int32_t)(chunks_per * (size_t)n);
    x->bytes_read += (uint64_t)n * x->expert_bytes;
    x->reads += (uint64_t)n;
    pthread_cond_broadcast(&io->work_cv);
    pthread_mutex_unlock(&io->mu);
    if (x->cache_limit) cache_limit_note(x, layer, ids, n);
}

enum fc_status fc_experts_read_wait_one(struct fc_experts * x, int32_t slot, struct fc_error * err) {
    struct fc_io_pool * io = x->io;
    if (x->use_mmap) return FC_STATUS_OK;
    double t0 = fc_time_ms();
    pthread_mutex_lock(&io->mu);
    while (io->slot_pending[slot] > 0 && !io->failed) pthread_cond_wait(&io->done_cv, &io->mu);
    x->bytes_cached += io->cached_bytes;
    io->cached_bytes = 0;
    int failed = io->failed;
    char msg[256];
    memcpy(msg, io->fail_msg, sizeof msg);
    pthread_mutex_unlock(&io->mu);
    x->io_wait_ms += fc_time_ms() - t0;
    if (failed) {
        fc_experts_read_wait(x, NULL); /* let the batch drain before the buffers are reused */
        return fc_error_set(err, FC_STATUS_IO_ERROR, "%s: %s", x->dir, msg);
    }
    return FC_STATUS_OK;
}

enum fc_status fc_experts_read_wait(struct fc_experts * x, struct fc_error * err) {
    struct fc_io_pool * io = x->io;
    if (x->use_mmap) return FC_STATUS_OK;
    double t0 = fc_time_ms();
    pthread_mutex_lock(&io->mu);
    while (io->n_pending > 0) pthread_cond_wait(&io->done_cv, &io->mu);
    x->bytes_cached += io->cached_bytes;
    io->cached_bytes = 0;
    int failed = io->failed;
    char msg[256];
    memcpy(msg, io->fail_msg, sizeof msg);
    pthread_mutex_unlock(&io->mu);
    x->io_wait_ms += fc_time_ms() - t0;
    if (failed) return fc_error_set(err, FC_STATUS_IO_ERROR, "%s: %s", x->dir, msg);
    return FC_STATUS_OK;
}
