/* Routed experts streamed from packed_experts/layer_NN.bin with parallel pread into caller buffers. */
#ifndef FC_EXPERTS_H
#define FC_EXPERTS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "tensor.h"
#include "util.h"

struct fc_io_pool;

struct fc_experts {
    char dir[4096];
    int32_t bits;
    int32_t group_size;
    int32_t n_experts;
    int32_t hidden;
    int32_t inter;
    size_t expert_bytes;     /* stride between experts in a layer file */
    size_t comp_off[9];      /* gate.{weight,scales,biases}, up.{...}, down.{...} within an expert */
    int * fds;               /* [n_layers] */
    int32_t n_layers;
    struct fc_io_pool * io;
    int use_mmap;            /* experts used in place from mapped layer files (no copy) instead of pread */
    int populated;           /* with use_mmap: every page was faulted in at load (FC_EXPERT_IO_POPULATE) */
    const uint8_t ** maps;   /* [n_layers] when use_mmap */
    const uint8_t * slot_data[256]; /* where slot i's bytes are after read_start (buffer or mapping) */
    /* totals since load */
    uint64_t bytes_read;
    double io_wait_ms;
    uint64_t reads;          /* experts read (one per expert per layer per wave) */
    uint64_t bytes_cached;   /* of bytes_read, what was in the page cache just before it was read (mincore) */
    /* --expert-cache-mb: with pread, keep at most this many bytes of the expert files in the page cache by
       dropping the least recently read experts (posix_fadvise DONTNEED); 0 = no limit (the OS decides) */
    uint64_t cache_limit;
    uint64_t cache_live;     /* bytes of experts read and not dropped since the limit was set */
    uint64_t cache_dropped;  /* bytes dropped by the limit */
    const uint8_t ** probe_maps; /* [n_layers] unfaulted mappings of the layer files, for mincore (pread) */
    uint32_t * lru_stamp;    /* [n_layers * n_experts] last read of each expert (0 = not live) */
    uint32_t lru_seq;
    int64_t * lru_ring;      /* (layer * n_experts + id) << 32 | stamp, oldest first */
    size_t lru_cap, lru_head, lru_len;
};

/* How the routed experts reach the kernels. */
enum fc_expert_io {
    FC_EXPERT_IO_AUTO = 0,  /* POPULATE when the layer files fit in half the available memory, else PREAD */
    FC_EXPERT_IO_PREAD,     /* pread copies into reusable buffers (the OS page cache is the cache) */
    FC_EXPERT_IO_MMAP,      /* in place from mapped layer files, pages faulted in as first touched */
    FC_EXPERT_IO_POPULATE,  /* in place from mapped layer files, every page faulted in (read) at load */
};
const char * fc_expert_io_name(enum fc_expert_io mode);

/*
 * Read `dir`/layout.json, check it against the model config, open every layer file and check its size;
 * map them for MMAP / POPULATE (AUTO decides here: x->use_mmap, x->populated say what was chosen).
 */
enum fc_status fc_experts_load(struct fc_experts * x, const char * dir, const struct fc_config * cfg, int32_t n_io_threads,
                               enum fc_expert_io mode, struct fc_error * err);
/*
 * Keep at most `bytes` of the expert files in the page cache (pread only; 0 = no limit): experts read longest ago
 * are dropped with posix_fadvise(DONTNEED), so a model that fits in memory is streamed as one that does not.
 * UNSUPPORTED where the OS has no posix_fadvise or the experts are mapped.
 */
enum fc_status fc_experts_set_cache_limit(struct fc_experts * x, uint64_t bytes, struct fc_error * err);
/* Bytes of `bytes` at `p` (page-aligned down) that are resident in the page cache; the whole length when unknown. */
uint64_t fc_resident_bytes(const void * p, size_t bytes);
/* Memory the system can give without swapping (Linux MemAvailable), in bytes; 0 when unknown. */
uint64_t fc_available_memory(void);
void fc_experts_free(struct fc_experts * x);

/* The gate, up and down matrices of the expert whose bytes are in `buf`. */
void fc_experts_view(const struct fc_experts * x, const uint8_t * buf, struct fc_matrix * gate, struct fc_matrix * up,
                     struct fc_matrix * down);

/*
 * Start reading experts ids[0..n) of `layer` into slots first_slot.. (buffers bufs[first_slot + i], each
 * expert_bytes); returns at once. Reads already in flight for other slots continue (so the next wave can
 * load while this one is computed). Afterwards slot_data[slot] points at the expert's bytes (its buffer,
 * or the mapping with use_mmap). Slots < 256.
 */
void fc_experts_read_start(struct fc_experts * x, int32_t layer, const int32_t * ids, int32_t n, uint8_t ** bufs,
                           int32_t first_slot);
/* Wait for expert `slot` (index into ids/bufs) of the reads started last; IO_ERROR names the file. */
enum fc_status fc_experts_read_wait_one(struct fc_experts * x, int32_t slot, struct fc_error * err);
/* Wait for the reads started last; adds to bytes_read / io_wait_ms. IO_ERROR names the file. */
enum fc_status fc_experts_read_wait(struct fc_experts * x, struct fc_error * err);

#endif
