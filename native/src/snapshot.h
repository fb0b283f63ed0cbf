/*
 * Prefix-reuse snapshots: the recurrent state (conv + delta-rule states) and last logits at a token
 * position, plus the K/V rows of the full-attention layers - either still in the live cache (no copy)
 * or copied out when the live cache is about to be overwritten. LRU under a byte budget; save/load.
 */
#ifndef FC_SNAPSHOT_H
#define FC_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct fc_snapshot {
    int32_t n_tokens;
    int32_t * tokens;   /* [n_tokens] */
    float * recurrent;  /* conv + ssm of every linear layer */
    float * logits;     /* [vocab] after the last token */
    uint8_t * kv;       /* NULL: rows live in the engine cache; else [n_full][2][n_tokens * kv.pos_bytes], as the cache stores them */
    size_t bytes;
    uint64_t last_used;
};

struct fc_snapshots {
    struct fc_snapshot * items;
    int32_t n;
    int32_t cap;
    size_t budget_bytes;
    size_t used_bytes;
    uint64_t clock;
};

void fc_snapshots_init(struct fc_snapshots * s, size_t budget_bytes);
void fc_snapshots_free(struct fc_snapshots * s);
void fc_snapshots_clear(struct fc_snapshots * s);

/* Snapshot the engine's current sequence (n_past tokens) with `logits` of its last position. */
void fc_snapshots_take(struct fc_snapshots * s, const struct fc_engine * e, const float * logits);

/* Index of the longest snapshot whose tokens are a prefix of tokens[0..n) and no longer than max_len; -1 if none. */
int32_t fc_snapshots_find(struct fc_snapshots * s, const int32_t * tokens, int32_t n, int32_t max_len);

/* Restore snapshot i into the engine (state, KV rows, n_past); copies its logits to logits_out[vocab]. */
void fc_snapshots_restore(struct fc_snapshots * s, int32_t i, struct fc_engine * e, float * logits_out);

/*
 * The engine is about to overwrite KV rows from position `keep` on: snapshots that rely on those rows
 * get their own copy (budget permitting) or are dropped. Call before every evaluation at n_past = keep.
 */
void fc_snapshots_detach(struct fc_snapshots * s, const struct fc_engine * e, int32_t keep);

/* Write all snapshots (with their K/V rows) to `path` (via path.tmp + rename) / read them back. */
enum fc_status fc_snapshots_save(struct fc_snapshots * s, const struct fc_engine * e, const char * path, struct fc_error * err);
enum fc_status fc_snapshots_load(struct fc_snapshots * s, const struct fc_engine * e, const char * path, struct fc_error * err);

#endif
