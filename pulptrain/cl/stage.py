"""The adaptive stage as the C learner step's layer table (``pt_cl_layer`` entries of csrc/cl/pt_cl.h).

:func:`layer_table` walks a :class:`pulptrain.nn.Sequential` (nested ones allowed) in forward order and gives
one entry per layer, with its per-sample input / output shapes and the module's own parameter, gradient,
momentum and statistics arrays (the C step updates them in place). Used by
:class:`pulptrain.cl.LatentReplayLearner` and by :func:`pulptrain.cl.memory.learner_arena_bytes`.

A spec is a dict whose keys are the ``pt_cl_layer`` fields: ``kind`` (an index into :data:`LAYER_KINDS`),
``in_shape`` = (c_in, h_in, w_in) and ``out_shape`` = (c_out, h_out, w_out) of one sample, ``kernel`` /
``stride`` / ``padding`` = (kh, kw) / (stride_h, stride_w) / (pad_h, pad_w) of convolutions and pools,
``upper`` (ReLU), ``eps``, ``bn_momentum``, ``r_max``, ``d_max`` (BatchNorm), the arrays ``weight``,
``weight_grad``, ``weight_momentum``, ``bias``, ``bias_grad``, ``bias_momentum``, ``running_mean``,
``running_var``, ``num_batches_tracked`` (shape (1,)), the flags ``weight_trainable`` / ``bias_trainable``,
and ``name`` (the module's path, for messages). Missing keys are 0 / NULL in C.
"""

from pulptrain import nn

__all__ = ["layer_table", "leaves", "classifier_of", "LAYER_KINDS"]

#: The layer kinds of a table entry (``spec["kind"]`` is an index into this), in the order of pt_cl_layer_kind.
LAYER_KINDS = ("conv2d", "depthwise", "pointwise", "batchnorm", "relu", "avg_pool", "flatten", "linear")


def _supported_layers():
    return {
        nn.Conv2d: "conv2d",
        nn.DepthwiseConv2d: "depthwise",
        nn.PointwiseConv2d: "pointwise",
        nn.BatchNorm2d: "batchnorm",
        nn.BatchRenorm2d: "batchnorm",
        nn.ReLU: "relu",
        nn.ReLU6: "relu",
        nn.AvgPool2d: "avg_pool",
        nn.GlobalAvgPool2d: "avg_pool",
        nn.Flatten: "flatten",
        nn.Linear: "linear",
    }


def leaves(module, path):
    """(path, module) of every layer of nested Sequentials, in forward order."""
    if type(module) is nn.Sequential:
        for name, child in module._modules.items():
            yield from leaves(child, f"{path}.{name}")
    else:
        yield path, module


def layer_table(adaptive, latent_shape, momentum=None):
    """The C layer table (specs for pulptrain._C.LearnerCore) of an adaptive stage over latents of
    ``latent_shape`` ((C, H, W) or (features,)), and the trainable Parameters in forward order (the order of
    the optimizer's parameters). ``momentum``: a list of momentum arrays, one per trainable parameter in that
    order, or None (no momentum). Every array is the module's own. A module the C step does not run, or shapes
    that do not chain, raise TypeError / ValueError naming the module."""
    kinds = _supported_layers()
    if len(latent_shape) == 3:
        shape, flat = tuple(latent_shape), False
    elif len(latent_shape) == 1:
        shape, flat = (latent_shape[0], 1, 1), True
    else:
        raise ValueError(f"the C learner step takes (C, H, W) or (features,) latents, got shape {latent_shape}")
    specs, params = [], []

    def param(spec, key, p):
        if p is None:
            return
        spec[key], spec[f"{key}_trainable"] = p.data, p.requires_grad
        if p.requires_grad:
            spec[f"{key}_grad"] = p.grad
            if momentum is not None:
                spec[f"{key}_momentum"] = momentum[len(params)]
            params.append(p)

    for path, m in leaves(adaptive, "adaptive"):
        kind = kinds.get(type(m))
        if kind is None:
            supported = ", ".join(sorted({t.__name__ for t in kinds}))
            raise TypeError(
                f"{path} ({type(m).__name__}) is not a layer the C learner step runs; the adaptive stage must be a "
                f"pulptrain.nn.Sequential of {supported}"
            )
        c, h, w = shape
        spec = {"name": f"{path} ({type(m).__name__})", "kind": LAYER_KINDS.index(kind), "in_shape": shape}
        if kind in ("conv2d", "depthwise", "avg_pool"):
            if kind == "avg_pool":
                window = (h, w) if isinstance(m, nn.GlobalAvgPool2d) else m.kernel_size
                stride = window if isinstance(m, nn.GlobalAvgPool2d) else m.stride
                padding = (0, 0) if isinstance(m, nn.GlobalAvgPool2d) else m.padding
                out_c = c
            else:
                window, stride, padding = m.kernel_size, m.stride, m.padding
                out_c = m.weight.data.shape[0]
                if (kind == "conv2d" and m.weight.data.shape[1] != c) or (kind == "depthwise" and out_c != c):
                    raise ValueError(f"{spec['name']}: weight {m.weight.data.shape} does not take {c} channels")
            oh = (h + 2 * padding[0] - window[0]) // stride[0] + 1
            ow = (w + 2 * padding[1] - window[1]) // stride[1] + 1
            if flat or oh < 1 or ow < 1:
                raise ValueError(f"{spec['name']}: the window does not fit the input {shape}")
            spec.update(kernel=tuple(window), stride=tuple(stride), padding=tuple(padding))
            shape = (out_c, oh, ow)
        elif kind == "pointwise":
            if m.weight.data.shape[1] != c or flat:
                raise ValueError(f"{spec['name']}: weight {m.weight.data.shape} does not take the input {shape}")
            shape = (m.weight.data.shape[0], h, w)
        elif kind == "batchnorm":
            if m.weight.data.shape[0] != c or flat:
                raise ValueError(f"{spec['name']}: {m.weight.data.shape[0]} channels for the input {shape}")
            spec.update(
                eps=m.eps,
                bn_momentum=m.momentum,
                r_max=m.r_max or 0.0,
                d_max=m.d_max or 0.0,
                running_mean=m.running_mean,
                running_var=m.running_var,
                num_batches_tracked=m.num_batches_tracked.reshape(1),
            )
        elif kind == "relu":
            spec["upper"] = -1.0 if m.upper is None else m.upper
        elif kind == "flatten":
            shape, flat = (c * h * w, 1, 1), True
        else:  # linear
            if not flat or m.weight.data.shape[1] != c:
                raise ValueError(f"{spec['name']}: weight {m.weight.data.shape} does not take the input {shape}")
            shape = (m.weight.data.shape[0], 1, 1)
        if kind in ("conv2d", "depthwise", "pointwise", "batchnorm", "linear"):
            param(spec, "weight", m.weight)
            param(spec, "bias", m.bias)
        spec["out_shape"] = shape
        specs.append(spec)
    if not specs:
        raise ValueError("the adaptive stage has no layers")
    return specs, params


def classifier_of(adaptive, num_classes):
    """The last Linear layer with num_classes outputs (the one the C step consolidates with CWR*)."""
    found = None
    for _, m in leaves(adaptive, "adaptive"):
        if type(m) is nn.Linear and m.weight.data.shape[0] == num_classes:
            found = m
    return found
