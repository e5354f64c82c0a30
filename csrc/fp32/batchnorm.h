/* BatchNorm2d over NCHW float32 (x viewed as (N, C, HW)), PyTorch semantics, with an optional Batch
 * Renormalization (Ioffe 2017) as used above the latent-replay layer in the reference CL code.
 *
 * Training mode, per channel c over the M = N*HW values:
 *   mean = sum x / M,  var = sum (x - mean)^2 / M (biased),  sigma = sqrt(var + eps),  xhat = (x - mean) / sigma
 *   plain BN:  y = gamma * xhat + beta
 *   renorm:    y = gamma * (xhat * r + d) + beta, with r = clip(sigma / sigma_run, 1/r_max, r_max),
 *              d = clip((mean - running_mean) / sigma_run, -d_max, d_max), sigma_run = sqrt(running_var + eps),
 *              r and d taken from the running statistics *before* this batch's update and held constant in
 *              the backward pass
 *   then the running statistics move towards the batch ones (unbiased variance, as PyTorch):
 *   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
 * Evaluation mode: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
 *
 * `saved` (4 x C floats, rows: mean, invstd = 1/sigma, r, d) is written by both forwards and read by the
 * backward. The backward with batch_stats = 1 is the gradient of the training forward (the batch mean and
 * variance depend on x); with batch_stats = 0 it is the gradient of the evaluation forward (fixed
 * statistics: dx = gamma * invstd * dy), which is what "frozen BN statistics" training needs.
 *   dbeta = sum dy,  dgamma = sum dy * (r * xhat + d),
 *   dx    = gamma * r * invstd * (dy - sum dy / M - xhat * sum (dy * xhat) / M)   (batch_stats = 1)
 * Cores split channels; each channel is reduced by one core in a fixed order (image by image), so results
 * do not depend on the team size.
 */
#ifndef PT_BATCHNORM_H
#define PT_BATCHNORM_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

typedef struct {
    float eps;      /* > 0, added to the variance */
    float momentum; /* in [0, 1]; weight of the batch statistic in the running-statistic update */
    float r_max;    /* Batch Renormalization clip for r (>= 1); 0 turns renormalization off */
    float d_max;    /* Batch Renormalization clip for d (>= 0); ignored when r_max == 0 */
} pt_batchnorm_config;

/* Rows of the `saved` statistics array (each C floats). */
enum { PT_BN_SAVED_MEAN = 0, PT_BN_SAVED_INVSTD = 1, PT_BN_SAVED_R = 2, PT_BN_SAVED_D = 3, PT_BN_SAVED_ROWS = 4 };

pt_status pt_batchnorm2d_forward_train(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                       const float *gamma, const float *beta, const pt_batchnorm_config *cfg,
                                       float *running_mean, float *running_var, float *saved, float *y);

/* `saved` may be NULL when no backward will follow. */
pt_status pt_batchnorm2d_forward_eval(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                      const float *gamma, const float *beta, float eps, const float *running_mean,
                                      const float *running_var, float *saved, float *y);

/* dx, dgamma, dbeta may each be NULL (not computed). dx is overwritten; dgamma and dbeta are overwritten,
 * or added to when accumulate_params. */
pt_status pt_batchnorm2d_backward(const pt_team *team, int64_t n, int64_t c, int64_t hw, const float *x,
                                  const float *dy, const float *gamma, const float *saved, int batch_stats, float *dx,
                                  float *dgamma, float *dbeta, int accumulate_params);

#endif
