"""The functional kernel API (NCHW float32, PyTorch weight layouts and argument meanings).

Every function validates its arguments (TypeError / ValueError naming the argument), releases the GIL and
calls one C kernel. ``out=`` takes a preallocated result array and returns it; gradient functions also take
``accumulate=True`` to add into ``out`` instead of overwriting it. Non-contiguous inputs, and float32
inputs in the other byte order ('>f4' on x86), are accepted and copied to native C order first; ``out`` and
the arrays updated in place (optimizer state, BatchNorm running statistics) must be C-contiguous and
native-endian. Sizes, strides and paddings are at most 2**31 - 1 and no tensor may exceed 2**60 elements.
The typed signatures are in pulptrain/_C.pyi.
"""

from pulptrain._C import (
    bias_grad,
    conv2d_forward,
    conv2d_grad_input,
    conv2d_grad_weight,
    depthwise_conv2d_forward,
    depthwise_conv2d_grad_input,
    depthwise_conv2d_grad_weight,
    depthwise_tiers,
    get_depthwise_tier,
    get_matmul_variant,
    linear_forward,
    linear_grad_input,
    linear_grad_weight,
    matmul,
    matmul_variant_for,
    matmul_variant_tile,
    matmul_variants,
    pointwise_conv2d_forward,
    pointwise_conv2d_grad_input,
    pointwise_conv2d_grad_weight,
    set_depthwise_tier,
    set_matmul_variant,
)

__all__ = [
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_grad_input",
    "depthwise_conv2d_grad_weight",
    "pointwise_conv2d_forward",
    "pointwise_conv2d_grad_input",
    "pointwise_conv2d_grad_weight",
    "linear_forward",
    "linear_grad_input",
    "linear_grad_weight",
    "bias_grad",
    "matmul",
    "matmul_variants",
    "matmul_variant_tile",
    "matmul_variant_for",
    "set_matmul_variant",
    "get_matmul_variant",
    "depthwise_tiers",
    "set_depthwise_tier",
    "get_depthwise_tier",
]

# Activation, pooling, BatchNorm, loss and optimizer kernels (csrc/fp32/activation.c, pooling.c, batchnorm.c,
# loss.c, optim.c).
from pulptrain._C import (  # noqa: E402
    adam_step,
    avg_pool2d_forward,
    avg_pool2d_grad_input,
    batchnorm2d_backward,
    batchnorm2d_forward_eval,
    batchnorm2d_forward_train,
    cross_entropy,
    global_avg_pool2d_forward,
    global_avg_pool2d_grad_input,
    max_pool2d_forward,
    max_pool2d_grad_input,
    mse_loss,
    relu_forward,
    relu_grad_input,
    sgd_step,
)

__all__ += [
    "relu_forward",
    "relu_grad_input",
    "avg_pool2d_forward",
    "avg_pool2d_grad_input",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_grad_input",
    "max_pool2d_forward",
    "max_pool2d_grad_input",
    "batchnorm2d_forward_train",
    "batchnorm2d_forward_eval",
    "batchnorm2d_backward",
    "cross_entropy",
    "mse_loss",
    "sgd_step",
    "adam_step",
]
