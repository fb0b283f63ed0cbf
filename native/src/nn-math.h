/* The math the layer kinds share: RMS norm, SiLU, sigmoid (plain C, per row). */
#ifndef FC_NN_MATH_H
#define FC_NN_MATH_H

#include <math.h>
#include <stdint.h>

/* out[i] = x[i] / rms(x) * w[i]; out may be x. */
void fc_rmsnorm(float * out, const float * x, const float * w, int32_t n, float eps);
static inline float fc_silu(float x) { return x / (1.0f + expf(-x)); }
static inline float fc_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
