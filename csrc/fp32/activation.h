/* ReLU and ReLU6 (clipped ReLU) on any float32 tensor, seen as `count` elements.
 *   forward:    y = min(max(x, 0), upper)        (upper = PT_RELU_NO_CLIP for a plain ReLU, 6 for ReLU6)
 *   grad_input: dx = dy where 0 < y < upper, else 0
 * The backward reads the forward *output* y (0 < y < upper exactly when 0 < x < upper), so the forward
 * may run in place (y == x). Cores split the elements.
 */
#ifndef PT_ACTIVATION_H
#define PT_ACTIVATION_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

#define PT_RELU_NO_CLIP (-1.0f) /* `upper` value meaning "no upper clip" */

pt_status pt_relu_forward(const pt_team *team, int64_t count, const float *x, float *y, float upper);
pt_status pt_relu_grad_input(const pt_team *team, int64_t count, const float *y, const float *dy, float *dx,
                             float upper, int accumulate);

#endif
