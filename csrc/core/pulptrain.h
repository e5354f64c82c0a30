/* pulptrain: portable C training kernels (the whole public C API). */
#ifndef PULPTRAIN_H
#define PULPTRAIN_H

#include "pt_status.h"
#include "parallel.h"
#include "matmul.h"
#include "conv_geometry.h"
#include "conv2d.h"
#include "depthwise_conv2d.h"
#include "pointwise_conv2d.h"
#include "linear.h"
#include "bias.h"
#include "activation.h"
#include "pooling.h"
#include "batchnorm.h"
#include "loss.h"
#include "optim.h"
#include "quant.h"
#include "int8.h"
#include "pt_cl.h"

#endif
