/*
 * The Metal layer backend: the layer-level seam (backend.h) over the GPU device interface (device.h), on Metal
 * or its emulator. It wraps the engine's memory (weights' mapping, expert arena or mapped layer files, KV cache,
 * recurrent states) without copies and owns its activations; the engine loop (forward.c) drives it.
 */
#ifndef FC_METAL_FORWARD_H
#define FC_METAL_FORWARD_H

#include "../engine.h"
#include "device.h"

/* Over the engine's model, experts, expert arena and sequence state (f16 or f32 KV cache; the whole context's
   KV rows are made usable at once). lb->ops is the Metal seam on success, NULL on failure. */
enum fc_status fc_metal_layers_init(struct fc_layer_backend * lb, struct fc_gpu * gpu, struct fc_engine * e, struct fc_error * err);
/* Command buffers committed since init (bench). */
uint64_t fc_metal_layers_commits(const struct fc_layer_backend * lb);

#endif
