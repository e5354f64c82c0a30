/* Bias gradient: db[c] = sum over n and the inner axis of dy (N, C, inner); inner = H*W for a conv,
 * 1 for a linear layer. Cores split channels; each channel is summed by one core in a fixed order. */
#ifndef PT_BIAS_H
#define PT_BIAS_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

pt_status pt_bias_grad(const pt_team *team, int64_t n, int64_t c, int64_t inner, const float *dy, float *db,
                       int accumulate);

#endif
