/* The math shared by the layer kinds (nn-math.h). */
#include "nn-math.h"

#include <math.h>

void fc_rmsnorm(float * out, const float * x, const float * w, int32_t n, float eps) {
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int32_t i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}
