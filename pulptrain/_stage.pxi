# The INT8 frozen stage as one C call (csrc/int8/int8_stage.h): the layer table that
# pulptrain.frozen_int8.QuantizedFrozenStage builds, run by the same sequencer an exported bundle runs.

from libc.stdlib cimport calloc, free

INT8_STAGE_COLUMNS = ("kind", "c_in", "h_in", "w_in", "c_out", "kh", "kw", "stride_h", "stride_w", "pad_h",
                      "pad_w", "pad_value", "clip_min", "clip_max")
INT8_LAYER_KINDS = ("conv2d", "depthwise", "pointwise", "avg_pool")


def int8_stage_forward(table, weights, requant, x, *, lr_step=None, out=None):
    """Run an INT8 layer table over uint8 input codes x (N, C, H, W); returns the latent codes (N, C', H', W').

    table: int32 (L, 14), one row per layer with the columns of INT8_STAGE_COLUMNS (kind: an index of
    INT8_LAYER_KINDS; sizes are the layer's input). weights: L int8 arrays in the kernels' layouts (None for
    a pool); requant: L (bias, multiplier, shift) int32 triples (None for a pool). lr_step: None or
    (in_scale, out_scale, bits), the sub-byte requantization after a trailing pool (csrc/int8/int8_stage.h).
    """
    T = _typed_input(table, "table", np.int32, 2, "(L, 14)")
    if T.shape[1] != len(INT8_STAGE_COLUMNS):
        raise ValueError(f"table must have shape (L, {len(INT8_STAGE_COLUMNS)}), got {T.shape}")
    cdef int64_t L = T.shape[0]
    if not isinstance(weights, (list, tuple)) or len(weights) != L:
        raise ValueError(f"weights must be a list of {L} arrays (None for a pool)")
    if not isinstance(requant, (list, tuple)) or len(requant) != L:
        raise ValueError(f"requant must be a list of {L} (bias, multiplier, shift) triples (None for a pool)")
    X = _typed_input(x, "x", np.uint8, 4, "(N, C, H, W)")
    first = T[0]
    if X.shape[1:] != (first[1], first[2], first[3]):
        raise ValueError(f"x must have shape (N, {first[1]}, {first[2]}, {first[3]}), got {X.shape}")
    keep = []
    cdef pt_int8_stage stage
    cdef pt_int8_layer *layers = <pt_int8_layer *>calloc(L, sizeof(pt_int8_layer))
    if layers == NULL:
        raise MemoryError()
    try:
        for i in range(L):
            row = [int(v) for v in T[i]]
            layers[i].kind, layers[i].c_in, layers[i].h_in, layers[i].w_in = row[0], row[1], row[2], row[3]
            layers[i].c_out, layers[i].kh, layers[i].kw = row[4], row[5], row[6]
            layers[i].stride_h, layers[i].stride_w, layers[i].pad_h, layers[i].pad_w = row[7], row[8], row[9], row[10]
            layers[i].pad_value = row[11]
            if row[0] == 3:  # a pool
                continue
            per_out = row[1] * row[5] * row[6] if row[0] == 0 else row[5] * row[6] if row[0] == 1 else row[1]
            W = _typed_input(weights[i], f"weights[{i}]", np.int8, -1, "(C_out, ...)")
            if W.size != row[4] * per_out:
                raise ValueError(f"weights[{i}] must hold {row[4] * per_out} values, got shape {W.shape}")
            if not isinstance(requant[i], (list, tuple)) or len(requant[i]) != 3:
                raise ValueError(f"requant[{i}] must be a (bias, multiplier, shift) triple")
            bias, multiplier, shift = requant[i]
            B, M, S = _requant_arrays(bias, multiplier, shift, row[4])
            layers[i].rq = _requant(B, M, S, row[12], row[13])
            layers[i].weight = <const int8_t *>_vptr(W)
            keep += [W, B, M, S]
        stage.num_layers = L
        stage.layers = layers
        stage.lr_in_scale, stage.lr_out_scale, stage.lr_bits = 0.0, 0.0, 0
        if lr_step is not None:
            stage.lr_in_scale, stage.lr_out_scale, stage.lr_bits = float(lr_step[0]), float(lr_step[1]), int(lr_step[2])
        if pt_int8_stage_check(&stage) != PT_OK:
            raise ValueError(f"table does not describe a valid chain of INT8 layers: "
                             f"{pt_status_str(pt_int8_stage_check(&stage)).decode()}")
        last = T[L - 1]
        # the output shape: the last layer's geometry
        h_out = (last[2] + 2 * last[9] - last[5]) // last[7] + 1
        w_out = (last[3] + 2 * last[10] - last[6]) // last[8] + 1
        Y = _typed_output(out, (X.shape[0], int(last[4]), int(h_out), int(w_out)), np.uint8, (X,))
        team = pt_team_default()
        wsb = pt_int8_stage_workspace_bytes(&team, &stage, X.shape[0])
        _forward_stage(&team, &stage, X, Y, wsb)
    finally:
        free(layers)
    return Y


cdef int _forward_stage(const pt_team *team, const pt_int8_stage *stage, object X, object Y, int64_t wsb) except -1:
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef int64_t n = X.shape[0]
    cdef pt_status st
    with nogil:
        st = pt_int8_stage_forward(team, stage, n, pX, pY, ws, wsb)
    _check(st, "int8_stage_forward")
    return 0
