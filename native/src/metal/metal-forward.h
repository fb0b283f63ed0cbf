/*
 * The model's forward pass one token at a time over the GPU device interface (the Metal backend's host
 * side, on Metal or the emulator). Reads the model and the experts the caller loaded (experts by pread);
 * owns its activations, KV cache (f32 or f16) and recurrent state. Not yet behind the backend seam.
 */
#ifndef FC_METAL_FORWARD_H
#define FC_METAL_FORWARD_H

#include "../experts.h"
#include "../model.h"
#include "device.h"

struct fc_metal_forward;

enum fc_status fc_metal_forward_init(struct fc_metal_forward ** out, struct fc_gpu * gpu, const struct fc_model * m,
                                     struct fc_experts * x, int32_t context, int32_t n_active, int kv_f16, struct fc_error * err);
void fc_metal_forward_free(struct fc_metal_forward * f);
/* Evaluate `token` at the next position: logits (NULL or [vocab]) and their argmax (NULL or one id). */
enum fc_status fc_metal_forward_token(struct fc_metal_forward * f, int32_t token, float * logits, int32_t * argmax,
                                      struct fc_error * err);
/* Forget the sequence. */
void fc_metal_forward_reset(struct fc_metal_forward * f);

#endif
