# The INT8 frozen stage as one C call (csrc/int8/int8_stage.h): the layer table that
# pulptrain.frozen_int8.QuantizedFrozenStage builds, run by the same sequencer an exported bundle runs.

from libc.stdlib cimport calloc, free

INT8_STAGE_COLUMNS = ("kind", "c_in", "h_in", "w_in", "c_out", "kh", "kw", "stride_h", "stride_w", "pad_h",
                      "pad_w", "pad_value", "clip_min", "clip_max")
INT8_LAYER_KINDS = ("conv2d", "depthwise", "pointwise", "avg_pool")


cdef class _Int8StageTable:
    """The C view (pt_int8_stage) of a layer table given as Python arrays, checked; keeps the arrays alive."""
    cdef pt_int8_stage stage
    cdef pt_int8_layer *layers
    cdef list keep
    cdef readonly tuple input_shape, output_shape

    def __cinit__(self, table, weights, requant, lr_step):
        self.layers = NULL
        T = _typed_input(table, "table", np.int32, 2, "(L, 14)")
        if T.shape[1] != len(INT8_STAGE_COLUMNS):
            raise ValueError(f"table must have shape (L, {len(INT8_STAGE_COLUMNS)}), got {T.shape}")
        L = T.shape[0]
        if not isinstance(weights, (list, tuple)) or len(weights) != L:
            raise ValueError(f"weights must be a list of {L} arrays (None for a pool)")
        if not isinstance(requant, (list, tuple)) or len(requant) != L:
            raise ValueError(f"requant must be a list of {L} (bias, multiplier, shift) triples (None for a pool)")
        self.layers = <pt_int8_layer *>calloc(L, sizeof(pt_int8_layer))
        if self.layers == NULL:
            raise MemoryError()
        self.keep = [T]
        for i in range(L):
            row = [int(v) for v in T[i]]
            self.layers[i].kind, self.layers[i].c_in, self.layers[i].h_in, self.layers[i].w_in = row[:4]
            self.layers[i].c_out, self.layers[i].kh, self.layers[i].kw = row[4:7]
            self.layers[i].stride_h, self.layers[i].stride_w, self.layers[i].pad_h, self.layers[i].pad_w = row[7:11]
            self.layers[i].pad_value = row[11]
            if row[0] == INT8_LAYER_KINDS.index("avg_pool"):
                continue
            per_out = row[1] * row[5] * row[6] if row[0] == 0 else row[5] * row[6] if row[0] == 1 else row[1]
            W = _typed_input(weights[i], f"weights[{i}]", np.int8, -1, "(C_out, ...)")
            if W.size != row[4] * per_out:
                raise ValueError(f"weights[{i}] must hold {row[4] * per_out} values, got shape {W.shape}")
            if not isinstance(requant[i], (list, tuple)) or len(requant[i]) != 3:
                raise ValueError(f"requant[{i}] must be a (bias, multiplier, shift) triple")
            bias, multiplier, shift = requant[i]
            B, M, S = _requant_arrays(bias, multiplier, shift, row[4])
            self.layers[i].rq = _requant(B, M, S, row[12], row[13])
            self.layers[i].weight = <const int8_t *>_vptr(W)
            self.keep += [W, B, M, S]
        self.stage.num_layers = L
        self.stage.layers = self.layers
        self.stage.lr_in_scale, self.stage.lr_out_scale, self.stage.lr_bits = 0.0, 0.0, 0
        if lr_step is not None:
            in_scale, out_scale, bits = lr_step
            self.stage.lr_in_scale, self.stage.lr_out_scale, self.stage.lr_bits = in_scale, out_scale, bits
        cdef pt_status st = pt_int8_stage_check(&self.stage)
        if st != PT_OK:
            raise ValueError(f"table does not describe a valid chain of INT8 layers: {pt_status_str(st).decode()}")
        first, last = T[0], T[L - 1]
        self.input_shape = (int(first[1]), int(first[2]), int(first[3]))
        self.output_shape = (int(last[4]), int((last[2] + 2 * last[9] - last[5]) // last[7] + 1),
                             int((last[3] + 2 * last[10] - last[6]) // last[8] + 1))

    def __dealloc__(self):
        free(self.layers)


def int8_stage_forward(table, weights, requant, x, *, lr_step=None, out=None):
    """Run an INT8 layer table over uint8 input codes x (N, C, H, W); returns the latent codes (N, C', H', W').

    table: int32 (L, 14), one row per layer with the columns of INT8_STAGE_COLUMNS (kind: an index of
    INT8_LAYER_KINDS; sizes are the layer's input). weights: L int8 arrays in the kernels' layouts (None for
    a pool); requant: L (bias, multiplier, shift) int32 triples (None for a pool). lr_step: None or
    (in_scale, out_scale, bits), the sub-byte requantization after a trailing pool (csrc/int8/int8_stage.h).
    """
    cdef _Int8StageTable t = _Int8StageTable(table, weights, requant, lr_step)
    X = _typed_input(x, "x", np.uint8, 4, "(N, C, H, W)")
    if X.shape[1:] != t.input_shape:
        raise ValueError(f"x must have shape (N,) + {t.input_shape}, got {X.shape}")
    Y = _typed_output(out, (X.shape[0],) + t.output_shape, np.uint8, (X,))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsb = pt_int8_stage_workspace_bytes(&team, &t.stage, X.shape[0])
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef int64_t n = X.shape[0]
    cdef pt_status st
    with nogil:
        st = pt_int8_stage_forward(&team, &t.stage, n, pX, pY, ws, wsb)
    _check(st, "int8_stage_forward")
    return Y


def int8_stage_workspace_bytes(table, weights, requant, n, *, lr_step=None, num_threads=1):
    """Workspace bytes of int8_stage_forward for n images on a team of num_threads cores (arguments as
    int8_stage_forward): what a bundle reserves for its frozen stage."""
    cdef _Int8StageTable t = _Int8StageTable(table, weights, requant, lr_step)
    cdef pt_team team = pt_team_default()
    team.num_threads = _int_arg(num_threads, "num_threads", 1, PT_MAX_THREADS)
    return pt_int8_stage_workspace_bytes(&team, &t.stage, _int_arg(n, "n", 1, 2 ** 31 - 1))
