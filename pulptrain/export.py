"""``pulptrain export``: a continual learner as a self-contained C bundle that learns on the device.

:func:`export_bundle` takes a :class:`pulptrain.cl.LatentReplayLearner` whose frozen stage is the INT8 stage of
:func:`pulptrain.frozen_int8.quantize_frozen` (a fresh learner, or one restored from a ``pulptrain cl``
checkpoint) and a short stream of images, and writes a folder that builds on its own:

* ``bundle.c`` / ``bundle.h``: the constant tables: the INT8 frozen stage as the layer table of
  csrc/int8/int8_stage.h (int8 weights, int32 bias, multiplier and shift per channel), the adaptive stage as
  the pt_cl_layer table of csrc/cl/pt_cl.h (FP32 weights, BatchNorm statistics, SGD momentum), the replay
  buffer (packed codes, labels, counters, generator state), the CWR* state, the learner settings and state,
  and the static arena, its size computed here by the same C query the learner uses (one size for builds
  with 8-float SIMD, one for the scalar ones: the matmul tile they pick sizes the kernels' workspace);
* ``stream.c``: the embedded stream: the training batches and the test images as the frozen stage's uint8
  input codes (the input quantization is done at export), with their labels;
* ``main.c``: the application (frozen INT8 forward -> latent codes -> training steps -> buffer update per
  batch, then test predictions), printing ``KEY field=value`` lines (:func:`parse_log`);
* ``Makefile``: ``run-host``, ``run-rv32`` (tools/riscv's toolchain variables), ``run-m4f`` (tools/arm's), and
  ``PORTABLE=1``, the mode in which host and rv32 give the same bits (with ``portable_math.c``: deterministic
  ``expf`` / ``logf``);
* ``csrc/``: a copy of the pulptrain C sources;
* ``manifest.json``: the settings, sizes, and the layout of the final state the application writes
  (:func:`read_state`).

The application and the Python learner run the same C: the frozen stage through
:func:`pulptrain._C.int8_stage_forward`, the learning step through csrc/cl. Built with the Python extension's
flags (``make run-host``), the application's final state equals the Python learner's bit for bit.
"""

import json
import os
import pathlib
import shutil
from contextlib import contextmanager

import numpy as np

from pulptrain._C import int8_stage_workspace_bytes
from pulptrain.frozen_int8 import QuantizedFrozenStage

__all__ = [
    "export_bundle",
    "export_experiment",
    "experiment_learner",
    "learner_arena_bytes",
    "learner_state_arrays",
    "learner_rng_states",
    "parse_log",
    "read_state",
    "fnv1a64",
    "csrc_root",
    "TEMPLATE_DIR",
]

TEMPLATE_DIR = pathlib.Path(__file__).resolve().parent / "export_template"
MANIFEST_FORMAT = "pulptrain.export/1"
CSRC_FAMILIES = ("core", "gemm", "fp32", "int8", "quant", "cl", "arch")


def csrc_root():
    """The csrc/ folder of this pulptrain checkout (the bundle copies it); FileNotFoundError without one."""
    root = pathlib.Path(__file__).resolve().parent.parent / "csrc"
    if not (root / "core" / "pulptrain.h").is_file():
        raise FileNotFoundError(
            f"pulptrain export needs the C sources (csrc/) next to the package, not found at {root}: "
            "run it from a source checkout (pip install -e .)"
        )
    return root


def fnv1a64(data):
    """FNV-1a 64 of the bytes of ``data`` (an array or bytes), as the application's STATE lines print it."""
    buf = np.frombuffer(memoryview(np.ascontiguousarray(data)).cast("B"), np.uint8)
    h = 0xCBF29CE484222325
    prime, mask = 0x100000001B3, (1 << 64) - 1
    for byte in buf.tobytes():
        h = ((h ^ byte) * prime) & mask
    return h


# --------------------------------------------------------------------------------------------- C text


def _c_values(values, kind):
    """The C initializer text of a flat array: integers in decimal, floats as exact hexadecimal literals."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if kind == "float":
        items = [float(v).hex() + "f" for v in flat.astype(np.float32).tolist()]
        items = [s.replace("inff", "INFINITY").replace("nanf", "NAN") for s in items]
    elif kind == "uint64":
        items = [f"UINT64_C({int(v)})" for v in flat.tolist()]
    else:
        items = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(items[i : i + 16]) for i in range(0, len(items), 16)]
    return "{\n    " + ",\n    ".join(lines) + "\n}" if items else "{0}"


_C_TYPES = {
    np.dtype(np.float32): ("float", "float"),
    np.dtype(np.int8): ("int8_t", "int"),
    np.dtype(np.uint8): ("uint8_t", "int"),
    np.dtype(np.int16): ("int16_t", "int"),
    np.dtype(np.int32): ("int32_t", "int"),
    np.dtype(np.int64): ("int64_t", "int"),
}


class _CFile:
    """Collects C definitions: arrays (const or not), and raw text."""

    def __init__(self):
        self.parts = []

    def array(self, name, values, *, const=True, dtype=None, align=False, zero=False, length=None):
        values = np.asarray(values) if values is not None else None
        dtype = np.dtype(dtype) if dtype is not None else values.dtype
        ctype, kind = _C_TYPES[dtype]
        n = length if length is not None else values.size
        attributes = " __attribute__((aligned(16)))" if align else ""
        qualifier = "static const " if const else "static "
        if zero or values is None or not np.any(values):
            # all zero: .bss, no initializer (a const table of zeros still has one, to stay in flash)
            init = " = {0}" if const else ""
        else:
            init = " = " + _c_values(values.astype(dtype), kind)
        self.parts.append(f"{qualifier}{ctype} {name}[{max(n, 1)}]{attributes}{init};\n")
        return name

    def text(self, s):
        self.parts.append(s)

    def write(self, path, header):
        with open(path, "w") as f:
            f.write(header)
            f.writelines(self.parts)


# ------------------------------------------------------------------------------------------ the bundle


def _check_learner(learner):
    from pulptrain.cl.learner import LatentReplayLearner

    if not isinstance(learner, LatentReplayLearner):
        raise TypeError(f"learner must be a pulptrain.cl.LatentReplayLearner, got {type(learner).__name__}")
    if not isinstance(learner.frozen, QuantizedFrozenStage):
        raise TypeError(
            "learner.frozen must be the INT8 stage of pulptrain.frozen_int8.quantize_frozen (a bundle runs the "
            f"frozen stage as INT8 kernels), got {type(learner.frozen).__name__}"
        )
    if learner.buffer.bits != learner.frozen.lr_bits or learner.buffer.scale != learner.frozen.scale:
        raise ValueError(
            "the buffer must store the frozen stage's codes as they are (the same bits and scale): "
            f"buffer {learner.buffer.bits} bits / scale {learner.buffer.scale}, frozen stage "
            f"{learner.frozen.lr_bits} bits / scale {learner.frozen.scale}"
        )
    if learner.settings["quantize_new"]:
        raise ValueError("quantize_new is not supported by a bundle: the frozen stage already emits the buffer's codes")


def _check_stream(stream, test, num_classes):
    """(batches, test batch or None, image shape) with float32 images and int64 labels, every batch checked."""
    batches, input_shape = [], None
    if not isinstance(stream, (list, tuple)) or len(stream) == 0:
        raise ValueError("stream must be a non-empty list of (images, labels) batches")
    for i, item in enumerate(list(stream) + ([test] if test is not None else [])):
        name = f"stream[{i}]" if i < len(stream) else "test"
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"{name} must be an (images, labels) pair")
        x, y = np.asarray(item[0], np.float32), np.asarray(item[1])
        if x.ndim != 4 or len(x) == 0 or (input_shape is not None and x.shape[1:] != input_shape):
            raise ValueError(f"{name} images must be a non-empty float32 array (N, C, H, W), got shape {x.shape}")
        input_shape = x.shape[1:]
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} labels must be {len(x)} integers in [0, {num_classes}), got {y.dtype} {y.shape}")
        batches.append((x, y.astype(np.int64)))
    return batches[: len(stream)], (batches[-1] if test is not None else None), input_shape


def _frozen_tables(c, table):
    """The INT8 layer table as C: weights and requantization arrays, then the pt_int8_layer entries."""
    from pulptrain._C import INT8_STAGE_COLUMNS

    col = {name: i for i, name in enumerate(INT8_STAGE_COLUMNS)}
    entries = []
    for i, row in enumerate(table.table):
        r = {k: int(row[j]) for k, j in col.items()}
        weight, requant = "NULL", "{NULL, NULL, NULL, 0, 255}"
        if table.weights[i] is not None:
            weight = c.array(f"frozen_w{i}", table.weights[i])
            bias, multiplier, shift = table.requant[i]
            names = [c.array(f"frozen_{what}{i}", a) for what, a in zip(("b", "m", "s"), (bias, multiplier, shift))]
            requant = f"{{{names[0]}, {names[1]}, {names[2]}, {r['clip_min']}, {r['clip_max']}}}"
        geometry = ", ".join(str(r[k]) for k in INT8_STAGE_COLUMNS[:12])
        entries.append(f"    {{{geometry}, {weight}, {requant}}},\n")
    c.text("static const pt_int8_layer frozen_layers[] = {\n" + "".join(entries) + "};\n")
    lr_in, lr_out, lr_bits = table.lr_step if table.lr_step is not None else (0.0, 0.0, 0)
    c.text(
        f"const pt_int8_stage bundle_frozen = {{{len(entries)}, frozen_layers, {float(lr_in).hex()}f, "
        f"{float(lr_out).hex()}f, {int(lr_bits)}}};\n\n"
    )


def export_bundle(
    learner, out_dir, *, stream, test=None, cores=8, synthetic_buffer=False, frozen_images_run=0, steps_run=0
):
    """Write the C bundle of ``learner`` (its current state) and an embedded stream into ``out_dir``.

    learner: a LatentReplayLearner with an INT8 frozen stage (quantize_frozen) whose buffer stores the
    stage's codes (same bits and scale). stream: a list of (images float32 (N, C, H, W), labels) batches the
    application learns in order; test: (images, labels) it classifies at the end, or None. cores: the largest
    team the application may run (sizes the per-core workspaces of the arena). Returns the manifest (also
    written to ``out_dir/manifest.json``): settings, arena and workspace bytes, and the state layout.
    synthetic_buffer (measurement only): the application starts with the buffer full of random codes and
    labels, as after a batch 0 (the learner must be at batch 0 with an empty buffer); frozen_images_run = k
    (measurement only): the bundle holds the first k images of each batch, the frozen stage runs for them and
    the other new samples reuse their latents; steps_run = k (measurement only): the first k training steps
    of each batch run, then the batch ends.
    """
    _check_learner(learner)
    num_classes = learner.num_classes
    batches, test_batch, input_shape = _check_stream(stream, test, num_classes)
    if not isinstance(cores, (int, np.integer)) or isinstance(cores, bool) or not 1 <= cores <= 256:
        raise ValueError(f"cores must be an int in 1..256, got {cores!r}")
    for name, value in (("frozen_images_run", frozen_images_run), ("steps_run", steps_run)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    frozen = learner.frozen
    table = frozen.layer_table(input_shape)
    latent_elements = int(np.prod(table.output_shape))
    if table.output_shape != tuple(learner.buffer.latent_shape):
        raise ValueError(
            f"the frozen stage gives latents {table.output_shape}, the buffer holds {learner.buffer.latent_shape}"
        )
    # the arena serves batches of the sizes the stream holds
    sizes = dict(min_new=min(len(x) for x, _ in batches), max_new=max(len(x) for x, _ in batches))
    frozen_ws = _frozen_workspace_bytes(table, cores)
    arena = learner_arena_bytes(learner, cores=cores, **sizes)
    arena_scalar = learner_arena_bytes(learner, cores=cores, scalar=True, **sizes)

    c = _CFile()
    _frozen_tables(c, table)
    state_layout = _emit_learner(c, learner, sizes, synthetic_buffer)
    c.write(out / "bundle.c", '/* Written by pulptrain export: the tables of this bundle. */\n#include "bundle.h"\n\n')

    _write_stream(out / "stream.c", frozen, batches, test_batch, frozen_images_run)
    _write_header(
        out / "bundle.h",
        (arena, arena_scalar),
        dict(
            BUNDLE_CORES=cores,
            BUNDLE_INPUT_CODES=int(np.prod(input_shape)),
            BUNDLE_LATENT_ELEMENTS=latent_elements,
            BUNDLE_NUM_LAYERS=len(_layer_table(learner)),
            BUNDLE_MAX_NEW=sizes["max_new"],
            BUNDLE_FROZEN_WORKSPACE_BYTES=frozen_ws,
            BUNDLE_STREAM_BATCHES=len(batches),
            BUNDLE_TEST_IMAGES=len(test_batch[0]) if test_batch is not None else 0,
            BUNDLE_MAX_STATE_ARRAYS=len(state_layout),
            BUNDLE_FROZEN_IMAGES_RUN=frozen_images_run,
            BUNDLE_STEPS_RUN=steps_run,
        ),
    )
    for name in ("main.c", "Makefile", "portable_math.c", "portable_math.h"):
        shutil.copyfile(TEMPLATE_DIR / name, out / name)
    _copy_csrc(out / "csrc")
    manifest = dict(
        format=MANIFEST_FORMAT,
        input_shape=list(input_shape),
        latent_shape=list(table.output_shape),
        cores=cores,
        **sizes,
        batch_sizes=[len(x) for x, _ in batches],
        test_images=len(test_batch[0]) if test_batch is not None else 0,
        arena_bytes=arena,
        arena_bytes_scalar=arena_scalar,
        frozen_workspace_bytes=frozen_ws,
        settings=dict(learner.settings, **sizes),
        state=state_layout,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ------------------------------------------------------------------------------ the adaptive stage

# the matmul variant the scalar builds (rv32imfc, Cortex-M4F, PORTABLE=1) pick by default (csrc/gemm/matmul.c)
_SCALAR_MATMUL_VARIANT = "4x4"
_PORTABLE_INT8_MICROKERNEL = "portable-4x2"


def _layer_table(learner):
    """The learner's C layer table: (path, spec) per layer (pulptrain.cl.stage.layer_table, the same table the
    Python learner hands to the C step)."""
    from pulptrain.cl.stage import layer_table, leaves

    specs, _ = layer_table(learner.adaptive, learner.buffer.latent_shape, learner.momentum_buffers or None)
    paths = [path for path, _ in leaves(learner.adaptive, "adaptive")]
    return list(zip(paths, specs))


def learner_state_arrays(learner):
    """{name: array} of everything learning changes, in the order of the bundle's state file: per adaptive
    layer its parameters, their SGD momentum and its BatchNorm statistics (``adaptive.<path>.<what>``); the
    buffer's packed storage, labels and samples seen per class (num_classes of them); the CWR* arrays (cw_set
    as uint8). The arrays are the learner's own (no copies)."""
    arrays = {}
    for path, spec in _layer_table(learner):
        for key in ("weight", "bias"):
            if spec.get(key) is not None:
                arrays[f"{path}.{key}"] = spec[key]
            if spec.get(f"{key}_momentum") is not None:
                arrays[f"{path}.{key}.momentum"] = spec[f"{key}_momentum"]
        if spec.get("running_mean") is not None:  # BatchNorm
            arrays[f"{path}.running_mean"] = spec["running_mean"]
            arrays[f"{path}.running_var"] = spec["running_var"]
            arrays[f"{path}.num_batches_tracked"] = spec["num_batches_tracked"]
    buffer = learner.buffer
    arrays["buffer/storage"], arrays["buffer/labels"] = buffer._storage, buffer._labels
    # the C buffer counts up to buffer.num_classes classes (32768 unless given); labels are < num_classes
    arrays["buffer/class_seen"] = buffer._core.class_seen[: learner.num_classes]
    if learner.settings["cwr"]:
        arrays["cwr/cw"], arrays["cwr/cb"] = learner.cw, learner.cb
        arrays["cwr/cw_set"], arrays["cwr/past"] = learner.cw_set.view(np.uint8), learner.past
    return arrays


def learner_rng_states(learner):
    """The learner's and the buffer's PCG32 states as the application's BATCH lines print them
    ("state:inc", 16 hex digits each)."""
    return tuple(f"{state:016x}:{inc:016x}" for state, inc in (learner.rng.state, learner.buffer.rng.state))


@contextmanager
def _team_defaults(num_threads, matmul_variant=None, int8_microkernel=None):
    """The process-wide kernel defaults set for the body (the team size and the variant choices that
    pt_team_default reports), restored afterwards."""
    import pulptrain
    from pulptrain import kernels, quant

    saved = pulptrain.get_num_threads(), kernels.get_matmul_variant(), quant.get_int8_microkernel()
    try:
        pulptrain.set_num_threads(num_threads)
        kernels.set_matmul_variant(matmul_variant)
        quant.set_int8_microkernel(int8_microkernel or "auto")
        yield
    finally:
        pulptrain.set_num_threads(saved[0])
        kernels.set_matmul_variant(saved[1])
        quant.set_int8_microkernel(saved[2])


def learner_arena_bytes(learner, *, min_new, max_new, cores, scalar=False):
    """Bytes of the C learner's arena for this learner's table and settings, batches of min_new to max_new
    new samples and a team of `cores`: for the build that runs it here (the Python extension's kernel choices;
    the value ``pulptrain memory`` reports), or with scalar=True for the scalar builds (rv32imfc, Cortex-M4F,
    PORTABLE=1), whose matmul default is the 4x4 tile."""
    from pulptrain._C import cl_learner_arena_bytes

    specs = [spec for _, spec in _layer_table(learner)]
    args = (specs, learner.settings, learner.buffer.capacity, max_new)
    if not scalar:
        return cl_learner_arena_bytes(*args, num_threads=cores, min_new=min_new)
    with _team_defaults(cores, _SCALAR_MATMUL_VARIANT):
        return cl_learner_arena_bytes(*args, min_new=min_new)


def _frozen_workspace_bytes(table, cores):
    """Workspace of the INT8 stage for one image on a team of `cores`: the largest over the INT8
    microkernels a build may pick (the host's vector one, the portable one)."""
    args = (table.table, table.weights, table.requant, 1)
    sizes = []
    for microkernel in (None, _PORTABLE_INT8_MICROKERNEL):
        with _team_defaults(cores, None, microkernel):
            sizes.append(int8_stage_workspace_bytes(*args, lr_step=table.lr_step, num_threads=cores))
    return max(sizes)


def _float_lit(v):
    return float(np.float32(v)).hex() + "f"


def _emit_learner(c, learner, sizes, synthetic_buffer):
    """The adaptive layer table, buffer, CWR* state, settings and bundle_start / bundle_state_arrays as C.
    Returns the state layout: a list of {name, dtype, shape} in the order bundle_state_arrays lists them."""
    from pulptrain.cl.buffer import POLICIES  # pt_cl_policy numbers them in this order

    state = learner_state_arrays(learner)
    cnames = {}

    def array(name, cname, values=None):
        values = state[name] if values is None else values
        cnames[name] = c.array(cname, values, const=False, align=True)
        return cnames[name]

    entries = []
    for i, (path, spec) in enumerate(_layer_table(learner)):
        fields = dict(kind=spec["kind"])  # an index in pt_cl_layer_kind's order (pulptrain.cl.stage.LAYER_KINDS)
        for prefix, shape in (("in", spec["in_shape"]), ("out", spec["out_shape"])):
            fields.update({f"c_{prefix}": shape[0], f"h_{prefix}": shape[1], f"w_{prefix}": shape[2]})
        (fields["kh"], fields["kw"]), (fields["stride_h"], fields["stride_w"]) = (
            spec.get("kernel", (1, 1)),
            spec.get("stride", (1, 1)),
        )
        fields["pad_h"], fields["pad_w"] = spec.get("padding", (0, 0))
        fields["upper"] = _float_lit(spec.get("upper", -1.0))
        for key in ("eps", "bn_momentum", "r_max", "d_max"):
            fields[key] = _float_lit(spec.get(key, 0.0))
        for key in ("weight", "bias"):
            if spec.get(key) is None:
                continue
            fields[f"{key}_trainable"] = int(bool(spec.get(f"{key}_trainable")))
            fields[key] = array(f"{path}.{key}", f"L{i}_{key}")
            if spec.get(f"{key}_grad") is not None:
                fields[f"{key}_grad"] = c.array(
                    f"L{i}_{key}_grad", None, const=False, dtype=np.float32, align=True, length=spec[key].size
                )
            if spec.get(f"{key}_momentum") is not None:
                fields[f"{key}_momentum"] = array(f"{path}.{key}.momentum", f"L{i}_{key}_momentum")
        if spec.get("running_mean") is not None:  # BatchNorm
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                fields[key] = array(f"{path}.{key}", f"L{i}_{key}")
        initializer = ", ".join(f".{k} = {v}" for k, v in fields.items())
        entries.append(f"    /* {spec['name']} */\n    {{{initializer}}},\n")
    c.text("static pt_cl_layer bundle_layers[] = {\n" + "".join(entries) + "};\n\n")

    # the replay buffer: its arrays hold the exported contents; bundle_start restores the counters
    buf, num_classes = learner.buffer, learner.num_classes
    storage = array("buffer/storage", "buffer_storage")
    labels = array("buffer/labels", "buffer_labels")
    c.array("buffer_class_seen_exported", state["buffer/class_seen"])
    seen = array("buffer/class_seen", "buffer_class_seen", np.zeros(num_classes, np.int64))
    c.array("buffer_class_count", None, const=False, dtype=np.int32, align=True, length=num_classes)
    c.array("buffer_order", None, const=False, dtype=np.int32, align=True, length=buf.capacity)
    c.array("buffer_row_codes", None, const=False, dtype=np.uint8, align=True, length=buf.elements)
    c.text(
        "pt_cl_buffer bundle_buffer = {"
        f".capacity = {buf.capacity}, .elements = {buf.elements}, .bits = {buf.bits}, "
        f".policy = {POLICIES.index(buf.policy)}, .num_classes = {num_classes}, .storage = {storage}, "
        f".labels = {labels}, .class_seen = {seen}, .class_count = buffer_class_count, "
        ".order = buffer_order, .row_codes = buffer_row_codes};\n\n"
    )
    cwr = "NULL"
    if learner.settings["cwr"]:
        names = [array(f"cwr/{k}", f"cwr_{k}") for k in ("cw", "cb", "cw_set", "past")]
        c.text(f"static const pt_cl_cwr bundle_cwr = {{{', '.join(names)}}};\n")
        cwr = "&bundle_cwr"
    settings = dict(learner.settings, **sizes)
    floats = ("lr", "first_lr", "momentum", "weight_decay")
    ints = ("epochs", "first_epochs", "minibatch", "cwr", "freeze_bn", "num_classes", "max_new", "min_new")
    fields = ", ".join(f".{k} = {_float_lit(settings[k]) if k in floats else int(settings[k])}" for k in floats + ints)
    c.text(f"static const pt_cl_settings bundle_settings = {{{fields}}};\n")
    c.text("static uint8_t bundle_arena[BUNDLE_ARENA_BYTES] __attribute__((aligned(PT_CL_ALIGN)));\n\n")

    core = learner._core
    (l_state, l_inc), (b_state, b_inc) = learner.rng.state, buf.rng.state
    restore_buffer = f"""    bundle_buffer.size = {buf.size};
    bundle_buffer.batches_seen = {buf.batches_seen};
    bundle_buffer.samples_seen = {buf.samples_seen};
    for (int32_t c = 0; c < {num_classes}; c++) {seen}[c] = buffer_class_seen_exported[c];"""
    batches_seen, phase, started = learner.batches_seen, core.optimizer_phase, int(core.optimizer_started)
    if synthetic_buffer:
        if buf.size or batches_seen or buf.bits == 32:
            raise ValueError("synthetic_buffer needs a learner at batch 0 with an empty quantized buffer")
        # measurement only: a full buffer of random codes and labels, as after a batch 0
        restore_buffer = f"""    pt_rng fill;
    pt_rng_seed(&fill, 12345, 1);
    for (int32_t k = 0; k < {buf.capacity}; k++) {{
        for (int64_t e = 0; e < {buf.elements}; e++)
            buffer_row_codes[e] = (uint8_t)(pt_rng_next(&fill) & {(1 << buf.bits) - 1}u);
        st = pt_pack_bits(team, {buf.elements}, buffer_row_codes, {buf.bits}, {storage} + (int64_t)k * {buf.row_bytes});
        if (st != PT_OK) return st;
        {labels}[k] = (int16_t)pt_rng_below(&fill, {num_classes});
        {seen}[{labels}[k]]++;
    }}
    bundle_buffer.size = {buf.capacity};
    bundle_buffer.batches_seen = 1;
    bundle_buffer.samples_seen = {buf.capacity};"""
        batches_seen, phase, started = 1, 0, 1
    c.text(
        f"""pt_status bundle_start(pt_cl_learner *learner, const pt_team *team)
{{
    pt_status st = pt_cl_buffer_init(&bundle_buffer, {_float_lit(buf.scale or 0.0)}, 0, 0);
    if (st != PT_OK) return st;
    /* the exported state (init starts an empty buffer and a learner at batch 0) */
{restore_buffer}
    bundle_buffer.rng.state = UINT64_C({b_state});
    bundle_buffer.rng.inc = UINT64_C({b_inc});
    st = pt_cl_buffer_check(&bundle_buffer);
    if (st != PT_OK) return st;
    st = pt_cl_learner_init(learner, team, &bundle_settings, bundle_layers, BUNDLE_NUM_LAYERS, &bundle_buffer, {cwr},
                            bundle_arena, BUNDLE_ARENA_BYTES, 0, 0);
    if (st != PT_OK) return st;
    learner->rng.state = UINT64_C({l_state});
    learner->rng.inc = UINT64_C({l_inc});
    learner->batches_seen = {batches_seen};
    learner->optimizer_phase = {-1 if phase is None else phase};
    learner->optimizer_started = {started};
    return PT_OK;
}}

int64_t bundle_arena_needed(const pt_team *team)
{{
    return pt_cl_learner_arena_bytes(team, &bundle_settings, bundle_layers, BUNDLE_NUM_LAYERS, {buf.capacity});
}}

"""
    )
    rows = "".join(f'        {{"{name}", {cnames[name]}, {a.nbytes}}},\n' for name, a in state.items())
    c.text(
        f"""int bundle_state_arrays(bundle_array *out, int max)
{{
    static const bundle_array arrays[] = {{
{rows}    }};
    const int n = (int)(sizeof(arrays) / sizeof(arrays[0]));
    for (int i = 0; i < n && i < max; i++) out[i] = arrays[i];
    return n < max ? n : max;
}}
"""
    )
    return [dict(name=k, dtype=np.dtype(a.dtype).str, shape=list(np.shape(a))) for k, a in state.items()]


def _write_stream(path, frozen, batches, test_batch, frozen_images_run):
    c = _CFile()
    codes = [frozen.quantize_input(x[: frozen_images_run or len(x)]) for x, _ in batches]
    c.text(f"const int32_t bundle_batch_sizes[] = {_c_values(np.array([len(x) for x, _ in batches]), 'int')};\n")
    c.text(f"const uint8_t bundle_stream_codes[] = {_c_values(np.concatenate(codes), 'int')};\n")
    labels = np.concatenate([y for _, y in batches]).astype(np.int16)
    c.text(f"const int16_t bundle_stream_labels[] = {_c_values(labels, 'int')};\n")
    if test_batch is not None:
        x, y = test_batch
        c.text(f"const uint8_t bundle_test_codes[] = {_c_values(frozen.quantize_input(x), 'int')};\n")
        c.text(f"const int16_t bundle_test_labels[] = {_c_values(y.astype(np.int16), 'int')};\n")
    else:
        c.text("const uint8_t bundle_test_codes[1] = {0};\nconst int16_t bundle_test_labels[1] = {0};\n")
    c.write(
        path,
        '/* Written by pulptrain export: the embedded stream (input codes and labels). */\n#include "bundle.h"\n\n',
    )


def _write_header(path, arenas, defines):
    """bundle.h: the sizes (defines), the arena per kind of build, and what bundle.c / stream.c define."""
    includes = ["<math.h>", "<stdint.h>", '"arch.h"', '"pulptrain.h"', '"int8_stage.h"', '"pt_cl.h"']
    lines = ["/* Written by pulptrain export: what main.c needs from the tables. */", "#ifndef BUNDLE_H"]
    lines += ["#define BUNDLE_H", ""] + [f"#include {h}" for h in includes] + [""]
    lines += [f"#define {k} {int(v)}" for k, v in defines.items()]
    lines += [
        "/* The learner's arena (pt_cl_learner_arena_bytes for a team of BUNDLE_CORES): the kernels' workspace",
        " * depends on the matmul tile a build picks by default (the vector one with 8-float SIMD, else 4x4). */",
        "#if PT_ARCH_SIMD8",
        f"#define BUNDLE_ARENA_BYTES {int(arenas[0])}",
        "#else",
        f"#define BUNDLE_ARENA_BYTES {int(arenas[1])}",
        "#endif",
        "",
        "extern const pt_int8_stage bundle_frozen;",
        "extern pt_cl_buffer bundle_buffer;",
        "extern const int32_t bundle_batch_sizes[];",
        "extern const uint8_t bundle_stream_codes[];",
        "extern const int16_t bundle_stream_labels[];",
        "extern const uint8_t bundle_test_codes[];",
        "extern const int16_t bundle_test_labels[];",
        "",
        "/* Initializes the buffer and the learner over the static tables and restores the exported state. */",
        "pt_status bundle_start(pt_cl_learner *learner, const pt_team *team);",
        "/* pt_cl_learner_arena_bytes of this bundle's learner for `team`. */",
        "int64_t bundle_arena_needed(const pt_team *team);",
        "",
        "typedef struct {",
        "    const char *name;",
        "    const void *data;",
        "    int64_t bytes;",
        "} bundle_array;",
        '/* The arrays of the learner\'s state (manifest.json: "state"), at most max; returns their number. */',
        "int bundle_state_arrays(bundle_array *out, int max);",
        "",
        "#endif",
        "",
    ]
    pathlib.Path(path).write_text("\n".join(lines))


def _copy_csrc(dest):
    root = csrc_root()
    if dest.exists():
        shutil.rmtree(dest)
    for family in CSRC_FAMILIES:
        src = root / family
        if src.is_dir():
            shutil.copytree(src, dest / family, ignore=shutil.ignore_patterns("*.o", "__pycache__"))


def experiment_learner(cfg, progress=False):
    """(learner, stream) of a ``pulptrain cl`` experiment (an :class:`pulptrain.cl.experiment.ExperimentConfig`)
    as its run of ``cfg.bits`` is after the last batch saved in ``cfg.checkpoint`` (``pretrained.npz`` and
    ``learner-<bits>-bit.npz``), or before batch 0 when there is no checkpoint (the weights pretrained
    afresh, as ``pulptrain cl`` does)."""
    from pulptrain.cl import experiment

    cfg = cfg.resolved()
    if cfg.bits == 32:
        raise ValueError("--bits must be 1..8: a bundle runs the frozen stage as INT8 kernels")
    stream = experiment.load_stream(cfg)
    saved = os.path.join(cfg.checkpoint, experiment.PRETRAINED_FILE) if cfg.checkpoint else None
    pretrained = experiment.pretrain(cfg, stream, progress, saved=saved if saved and os.path.isfile(saved) else None)
    frozen, adaptive = experiment.build_frozen(cfg, pretrained)
    x0, _ = stream.batch(0)
    latent_shape = frozen.layer_table(x0.shape[1:]).output_shape
    learner = experiment._learner(cfg, frozen, adaptive, stream.num_classes, latent_shape)
    state_file = os.path.join(cfg.checkpoint, experiment.learner_file(cfg)) if cfg.checkpoint else None
    if state_file and os.path.isfile(state_file):
        learner.load_checkpoint(state_file)
    return learner, stream


def export_experiment(cfg, bundle_dir, *, stream_batches=3, test_images=1000, cores=8, progress=False):
    """The bundle of a ``pulptrain cl`` experiment's learner (:func:`experiment_learner`: from the state saved in
    ``cfg.checkpoint``, or pretrained afresh), embedding the stream's next ``stream_batches`` batches and the
    first ``test_images`` images of the test set. Returns the manifest of :func:`export_bundle`."""
    learner, stream = experiment_learner(cfg, progress)
    first = learner.batches_seen
    if first + stream_batches > len(stream):
        raise ValueError(
            f"--stream-batches: the stream has {len(stream) - first} batches left after the {first} learnt, "
            f"got {stream_batches}"
        )
    batches = [stream.batch(i) for i in range(first, first + stream_batches)]
    x_test, y_test = stream.test()
    test = (x_test[:test_images], y_test[:test_images]) if test_images else None
    return export_bundle(learner, bundle_dir, stream=batches, test=test, cores=cores)


# ------------------------------------------------------------------------------------ reading results


def parse_log(text):
    """The application's output as {key: [dict of fields, ...]} (one dict per line of that key; values are
    ints where they parse as ints, PRED's classes a list of ints)."""
    out = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if not parts or not parts[0].isupper():
            continue
        fields = {}
        for item in _split_fields(line[len(parts[0]) + 1 :]):
            key, _, value = item.partition("=")
            value = value.strip('"')
            if key == "classes":
                fields[key] = [int(v) for v in value.split(",")] if value else []
                continue
            try:
                fields[key] = int(value)
            except ValueError:
                fields[key] = value
        out.setdefault(parts[0], []).append(fields)
    return out


def _split_fields(text):
    """Space-separated key=value items; a double-quoted value may hold spaces."""
    items, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            if current:
                items.append(current)
            current = ""
        else:
            current += ch
    if current:
        items.append(current)
    return items


def read_state(path, manifest):
    """The arrays of a state file the application wrote, {name: array}, by the manifest's layout."""
    data = pathlib.Path(path).read_bytes()
    sizes = [(int(np.prod(e["shape"])), np.dtype(e["dtype"])) for e in manifest["state"]]
    expected = sum(n * dtype.itemsize for n, dtype in sizes)
    if expected != len(data):
        raise ValueError(f"{path}: {len(data)} bytes, the manifest describes {expected}")
    arrays, offset = {}, 0
    for entry, (n, dtype) in zip(manifest["state"], sizes):
        arrays[entry["name"]] = np.frombuffer(data, dtype, n, offset).reshape(entry["shape"])
        offset += n * dtype.itemsize
    return arrays
