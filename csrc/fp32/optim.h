/* Optimizer updates of one parameter tensor of `count` floats, in place (PyTorch semantics).
 *
 * SGD (torch.optim.SGD):  g = grad + weight_decay * param
 *   momentum > 0: buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
 *                 g = g + momentum * buf (nesterov) or g = buf
 *   param -= lr * g
 * Adam (torch.optim.Adam; AdamW when decoupled): t = step >= 1
 *   decoupled: param *= 1 - lr * weight_decay, else g = grad + weight_decay * param
 *   m = beta1 * m + (1 - beta1) * g,  v = beta2 * v + (1 - beta2) * g^2
 *   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * Cores split the elements.
 */
#ifndef PT_OPTIM_H
#define PT_OPTIM_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

typedef struct {
    float lr, momentum, dampening, weight_decay;
    int nesterov; /* needs momentum > 0 and dampening == 0 */
} pt_sgd_config;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 1: AdamW-style decoupled weight decay */
} pt_adam_config;

/* momentum_buffer may be NULL when momentum == 0; first_step = 1 initialises it with the gradient. */
pt_status pt_sgd_step(const pt_team *team, int64_t count, float *param, const float *grad, float *momentum_buffer,
                      const pt_sgd_config *cfg, int first_step);

/* exp_avg (m) and exp_avg_sq (v) start at zero; step counts updates from 1. */
pt_status pt_adam_step(const pt_team *team, int64_t count, float *param, const float *grad, float *exp_avg,
                       float *exp_avg_sq, const pt_adam_config *cfg, int64_t step);

#endif
