/* Losses with their gradients (mean reduction, PyTorch semantics).
 *
 * Softmax cross-entropy (torch.nn.functional.cross_entropy): logits (N, K), labels (N) int64 in [0, K).
 *   loss   = mean_i (logsumexp(logits[i]) - logits[i, labels[i]])
 *   dlogits[i, k] = (softmax(logits[i])[k] - [k == labels[i]]) / N
 * Mean squared error (torch.nn.functional.mse_loss): pred and target of `count` elements.
 *   loss  = mean (pred - target)^2,   dpred = 2 (pred - target) / count
 * Cores split samples (cross-entropy) or fixed blocks of PT_MSE_BLOCK elements (MSE) and write one partial
 * per sample / block to the workspace; the caller's thread then adds the partials in order, so the loss
 * does not depend on the team size. `dlogits` / `dpred` may be NULL (loss only).
 */
#ifndef PT_LOSS_H
#define PT_LOSS_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

#define PT_MSE_BLOCK 1024

int64_t pt_cross_entropy_workspace_floats(int64_t n);
/* PT_ERR_VALUE_OUT_OF_RANGE when a label is outside [0, K). */
pt_status pt_cross_entropy(const pt_team *team, int64_t n, int64_t classes, const float *logits, const int64_t *labels,
                           float *loss, float *dlogits, float *workspace, int64_t workspace_floats);

int64_t pt_mse_loss_workspace_floats(int64_t count);
pt_status pt_mse_loss(const pt_team *team, int64_t count, const float *pred, const float *target, float *loss,
                      float *dpred, float *workspace, int64_t workspace_floats);

#endif
