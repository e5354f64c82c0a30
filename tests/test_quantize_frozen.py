"""Post-training quantization of a frozen stage (INT8 kernels) on a MobileNetV1 trained on Fashion-MNIST."""

import numpy as np
import pytest

from pulptrain import models, nn, quant
from pulptrain.data import fashion_mnist
from pulptrain.examples.train_fashion_mnist import IMAGE, to_canvas
from pulptrain.quant import quantize_frozen

LR_LAYER = 13


def _images(x, size):
    centre = (size - IMAGE) // 2
    return to_canvas(x, size, np.full((len(x), 2), centre))


@pytest.fixture(scope="module")
def trained(fashion_mnist_run):
    _, weights, args = fashion_mnist_run
    model = models.mobilenet_v1(
        args.width, num_classes=10, input_size=args.input_size, in_channels=1, first_stride=args.first_stride
    )
    model.load(str(weights))
    model.eval()
    x_train, _, x_test, y_test = fashion_mnist()
    return model, _images(x_train[:512], args.input_size), _images(x_test[:2000], args.input_size), y_test[:2000]


def _accuracy(logits, y):
    return float((logits.argmax(axis=1) == y).mean())


@pytest.mark.parametrize("calibration", ["max", "percentile"])
def test_int8_frozen_stage_keeps_latents_and_accuracy(trained, calibration):
    model, x_cal, x_test, y_test = trained
    frozen, adaptive = models.split(model, LR_LAYER)
    qf = quantize_frozen(frozen, x_cal, lr_bits=8, calibration=calibration)

    float_latent = frozen.forward(x_test).copy()
    latent_codes = qf.forward(x_test)
    codes, scale = latent_codes.codes, latent_codes.scale
    assert codes.dtype == np.uint8 and codes.shape == float_latent.shape and scale == qf.scale
    assert latent_codes.bits == 8 and np.array_equal(latent_codes.values(), quant.dequantize(codes, scale))
    latent = quant.dequantize(codes, scale)
    a, b = float_latent.reshape(-1).astype(np.float64), latent.reshape(-1).astype(np.float64)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine >= 0.99, cosine

    float_acc = _accuracy(adaptive.forward(float_latent), y_test)
    int8_acc = _accuracy(adaptive.forward(latent), y_test)
    assert float_acc > 0.5
    assert float_acc - int8_acc <= 0.01, (float_acc, int8_acc)

    errors = qf.layer_errors(x_test[:200])
    assert [e["block"] for e in errors] == list(range(LR_LAYER + 1))
    assert all(e["cosine"] > 0.98 for e in errors), errors


@pytest.mark.parametrize("bits", [1, 4, 7])
def test_lower_lr_bits_give_codes_in_range_and_coarser_latents(trained, bits):
    model, x_cal, x_test, _ = trained
    frozen, _ = models.split(model, LR_LAYER)
    q8 = quantize_frozen(frozen, x_cal, lr_bits=8)
    qb = quantize_frozen(frozen, x_cal, lr_bits=bits)
    latent_codes = qb.forward(x_test[:200])
    codes, scale = latent_codes.codes, latent_codes.scale
    assert latent_codes.bits == bits and codes.max() <= (1 << bits) - 1
    ref = frozen.forward(x_test[:200]).astype(np.float64)
    err8 = np.linalg.norm(q8.dequantize(q8.forward(x_test[:200]).codes) - ref)
    errb = np.linalg.norm(quant.dequantize(codes, scale) - ref)
    assert errb > err8


def test_pool_as_last_block_and_float_stage_left_unchanged(trained):
    model, x_cal, x_test, _ = trained
    frozen, _ = models.split(model, models.POOL_INDEX)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    qf = quantize_frozen(frozen, x_cal[:128], lr_bits=6)
    latent_codes = qf.forward(x_test[:100])
    codes, scale = latent_codes.codes, latent_codes.scale
    ref = frozen.forward(x_test[:100])
    assert codes.shape == ref.shape and codes.max() <= 63
    a, b = ref.reshape(-1).astype(np.float64), quant.dequantize(codes, scale).reshape(-1).astype(np.float64)
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.98
    for k, v in model.state_dict().items():
        assert np.array_equal(v, state[k]), k
    assert not model.training


def test_negative_inputs_use_an_exact_zero_point():
    """Unnormalised signed inputs: zero point > 0, handled by padding with z and folding z*sum(w) in the bias."""
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=True, rng=rng)
    frozen = nn.Sequential(nn.Sequential(conv, nn.ReLU()))
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    qf = quantize_frozen(frozen, x)
    assert qf.input_zero_point > 0
    latent_codes = qf.forward(x)
    codes, scale = latent_codes.codes, latent_codes.scale
    ref = frozen.forward(x)
    assert np.max(np.abs(quant.dequantize(codes, scale) - ref)) <= 3 * (
        scale + qf.input_scale * np.abs(conv.weight.data).sum(axis=(1, 2, 3)).max()
    )


def test_bad_arguments_are_rejected():
    rng = np.random.default_rng(0)
    frozen = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.ReLU()))
    x = np.zeros((2, 1, 5, 5), np.float32)
    with pytest.raises(ValueError, match="lr_bits must be an int in 1..8"):
        quantize_frozen(frozen, x, lr_bits=9)
    with pytest.raises(ValueError, match="calibration must be"):
        quantize_frozen(frozen, x, calibration="mean")
    with pytest.raises(ValueError, match="calibration_x must be a non-empty float32"):
        quantize_frozen(frozen, x.astype(np.float64))
    with pytest.raises(TypeError, match="frozen must be a non-empty"):
        quantize_frozen([], x)
    no_relu = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.BatchNorm2d(2)))
    with pytest.raises(ValueError, match="must be Sequential\\(conv, \\[BatchNorm2d\\], ReLU"):
        quantize_frozen(no_relu, x)


@pytest.mark.parametrize(
    "lr_layer, bits, signed_input",
    [(LR_LAYER, 8, False), (19, 8, True), (models.POOL_INDEX, 6, True), (models.POOL_INDEX, 8, False)],
)
def test_c_layer_table_equals_the_per_unit_kernels(trained, lr_layer, bits, signed_input):
    """forward runs the whole stage as one C call (csrc/int8/int8_stage.c, the path an exported bundle runs);
    its codes equal, bit for bit, the kernels called unit by unit from Python (zero-point padding and the
    sub-byte pool step included)."""
    model, x_cal, x_test, _ = trained
    frozen, _ = models.split(model, lr_layer)
    # the normalised images go below zero (an input zero point > 0); clipped at 0 they need none
    inputs = (lambda v: v) if signed_input else (lambda v: np.maximum(v, np.float32(0)))
    qf = quantize_frozen(frozen, inputs(x_cal[:128]), lr_bits=bits)
    assert (qf.input_zero_point > 0) == signed_input
    x = inputs(x_test[:64])
    per_unit = qf.unit_outputs(x)[-1]
    codes = qf.forward(x).codes
    assert codes.dtype == np.uint8 and codes.shape == per_unit.shape
    assert np.array_equal(codes, per_unit)
    table = qf.layer_table(x.shape[1:])
    assert table.output_shape == codes.shape[1:] and (table.lr_step is not None) == (bits < 8)


def test_c_layer_table_rejects_a_broken_chain(trained):
    from pulptrain._C import int8_stage_forward

    model, x_cal, _, _ = trained
    frozen, _ = models.split(model, 3)
    table = quantize_frozen(frozen, x_cal[:32]).layer_table(x_cal.shape[1:])
    broken = table.table.copy()
    broken[1, 1] += 1  # the second layer's input channels no longer match the first one's output
    with pytest.raises(ValueError, match="table does not describe a valid chain"):
        int8_stage_forward(broken, table.weights, table.requant, np.zeros((1,) + table.input_shape, np.uint8))
    with pytest.raises(ValueError, match=r"weights\[0\] must hold"):
        int8_stage_forward(
            table.table,
            [table.weights[0][:1]] + table.weights[1:],
            table.requant,
            np.zeros((1,) + table.input_shape, np.uint8),
        )
    with pytest.raises(ValueError, match="x must have shape"):
        table.forward(np.zeros((1, 2, 3, 3), np.uint8))
