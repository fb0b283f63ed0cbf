/*
 * The model's forward pass over the GPU device interface, a batch of up to max_batch tokens at a time (the
 * Metal backend's host side, on Metal or the emulator). Reads the model and the experts the caller loaded
 * (experts by pread); owns its activations, KV cache (f32 or f16) and recurrent state. Not yet behind the
 * backend seam.
 */
#ifndef FC_METAL_FORWARD_H
#define FC_METAL_FORWARD_H

#include "../experts.h"
#include "../model.h"
#include "device.h"

struct fc_metal_forward;

enum fc_status fc_metal_forward_init(struct fc_metal_forward ** out, struct fc_gpu * gpu, const struct fc_model * m,
                                     struct fc_experts * x, int32_t context, int32_t n_active, int32_t max_batch, int32_t n_slots,
                                     int kv_f16, struct fc_error * err);
void fc_metal_forward_free(struct fc_metal_forward * f);
/* Evaluate tokens[0..n) at the next positions: logits of all (NULL or [n][vocab]) or of the last (NULL or
   [vocab]), and the last one's argmax (NULL or one id). */
enum fc_status fc_metal_forward_eval(struct fc_metal_forward * f, const int32_t * tokens, int32_t n, float * logits_all,
                                     float * logits_last, int32_t * argmax_last, struct fc_error * err);
/* (init: n_slots = expert slots, K..256, 0 = automatic; a batch needing more distinct experts reads them
   in waves of n_slots) */
/* Forget the sequence. */
void fc_metal_forward_reset(struct fc_metal_forward * f);

#endif
