# The continual-learning runtime of csrc/cl (pt_cl.h): PCG32, the replay buffer and the learner step over numpy
# arrays that the Python objects own (zero-copy: the C structs point into them). Included by _C.pyx.
# The classes are private here (their public faces: pulptrain.cl.Pcg32, LatentReplayBuffer, LatentReplayLearner).
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memset

_CL_NUM_POLICIES = 3  # pt_cl_policy: pulptrain.cl.buffer.POLICIES in enum order
_CL_NUM_KINDS = 8  # pt_cl_layer_kind: pulptrain.cl.stage.LAYER_KINDS in enum order
_CL_MAX_CLASSES = 32768


cdef void *_cl_data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef object _cl_array(object a, str name, object dtype, int64_t size):
    """a itself when it is a C-contiguous, writeable numpy array of `dtype` with `size` elements."""
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must be a numpy.ndarray of {np.dtype(dtype)}, got "
                        f"{a.dtype if isinstance(a, np.ndarray) else type(a).__name__}")
    if not a.flags.c_contiguous or not a.flags.writeable or not a.dtype.isnative:
        raise ValueError(f"{name} must be a C-contiguous, writeable, native-endian array")
    if a.size != size:
        raise ValueError(f"{name} must have {size} elements, got {a.size}")
    return a


cdef int _cl_check(pt_status st, str what) except -1:
    if st != PT_OK:
        raise RuntimeError(f"{what} failed in C: {pt_status_str(st).decode()}")
    return 0


cdef uint64_t _u64(object v, str name) except? 0:
    if not _is_int(v) or v < 0 or v >= 2 ** 64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {v!r}")
    return <uint64_t>int(v)


cdef class _Pcg32:
    """PCG32 (XSH-RR, 64-bit state, odd increment): the generator of every random decision of the
    continual-learning loop (csrc/cl/rng.c). ``_Pcg32(seed, stream)`` seeds as pcg32_srandom; a generator
    returned by a buffer or learner (``.rng``) is a view of the one inside that C struct.
    ``state`` is ``(state, inc)``, two ints in [0, 2**64)."""
    cdef pt_rng own
    cdef pt_rng *p
    cdef object owner

    def __init__(self, seed=0, stream=0):
        pt_rng_seed(&self.own, _u64(seed, "seed"), _u64(stream, "stream"))
        self.p = &self.own
        self.owner = None

    @staticmethod
    cdef _Pcg32 view(object owner, pt_rng *p):
        cdef _Pcg32 g = _Pcg32.__new__(_Pcg32)
        g.p, g.owner = p, owner
        return g

    @property
    def state(self):
        return int(self.p.state), int(self.p.inc)

    @state.setter
    def state(self, value):
        try:
            state, inc = value
        except (TypeError, ValueError):
            raise ValueError(f"state must be a pair (state, inc) of ints, got {value!r}") from None
        cdef uint64_t s = _u64(state, "state"), i = _u64(inc, "inc")
        if i % 2 == 0:
            raise ValueError(f"inc must be odd, got {inc}")
        self.p.state, self.p.inc = s, i

    def next_u32(self):
        """The next 32-bit output."""
        return int(pt_rng_next(self.p))

    def below(self, bound):
        """Uniform int in [0, bound), 1 <= bound < 2**32, unbiased."""
        cdef uint32_t b = <uint32_t>_int_arg(bound, "bound", 1, 2 ** 32 - 1)
        return int(pt_rng_below(self.p, b))

    def permutation(self, n):
        """A uniform permutation of 0..n-1 (int32 array; Fisher-Yates from the top)."""
        cdef int32_t count = <int32_t>_int_arg(n, "n", 0, 2 ** 31 - 1)
        out = np.empty(count, np.int32)
        _cl_check(pt_rng_permutation(self.p, count, <int32_t *>_cl_data(out)), "permutation")
        return out

    def sample(self, n, k):
        """k distinct values of 0..n-1 in random order (int32 array; partial Fisher-Yates)."""
        cdef int32_t count = <int32_t>_int_arg(n, "n", 0, 2 ** 31 - 1)
        cdef int32_t take = <int32_t>_int_arg(k, "k", 0, count)
        scratch = np.empty(count, np.int32)
        _cl_check(pt_rng_sample(self.p, count, take, <int32_t *>_cl_data(scratch)), "sample")
        return scratch[:take].copy()


cdef class _ReplayBufferCore:
    """The C replay buffer (pt_cl_buffer; policy: a pt_cl_policy index) over `storage` ((capacity, row_bytes) uint8, or (capacity, elements)
    float32 at bits=32) and `labels` ((capacity,) int16), both owned by the caller; the scratch and class arrays
    are allocated here. pulptrain.cl.LatentReplayBuffer is the documented interface."""
    cdef pt_cl_buffer buf
    cdef readonly object storage, labels, class_seen
    cdef object class_count, order, row_codes

    def __init__(self, capacity, elements, bits, policy, num_classes, storage, labels, scale, seed, stream):
        cdef int32_t cap = <int32_t>_int_arg(capacity, "capacity", 1, 2 ** 31 - 1)
        cdef int64_t e = _int_arg(elements, "elements", 1, 2 ** 40)
        if not _is_int(bits) or not (1 <= bits <= 8 or bits == PT_CL_FP32_BITS):
            raise ValueError(f"bits must be 1..8 or 32, got {bits!r}")
        policy = _int_arg(policy, "policy", 0, _CL_NUM_POLICIES - 1)
        cdef int32_t classes = <int32_t>_int_arg(num_classes, "num_classes", 1, _CL_MAX_CLASSES)
        cdef int64_t row = pt_cl_buffer_row_bytes(e, bits)
        if bits == PT_CL_FP32_BITS:
            self.storage = _cl_array(storage, "storage", np.float32, cap * e)
        else:
            self.storage = _cl_array(storage, "storage", np.uint8, cap * row)
        self.labels = _cl_array(labels, "labels", np.int16, cap)
        self.class_seen = np.zeros(classes, np.int64)
        self.class_count = np.zeros(classes, np.int32)
        self.order = np.zeros(cap, np.int32)
        self.row_codes = np.zeros(e if bits != PT_CL_FP32_BITS else 1, np.uint8)
        self.buf.capacity, self.buf.elements, self.buf.bits = cap, e, bits
        self.buf.policy, self.buf.num_classes = policy, classes
        self.buf.storage = <uint8_t *>_cl_data(self.storage)
        self.buf.labels = <int16_t *>_cl_data(self.labels)
        self.buf.class_seen = <int64_t *>_cl_data(self.class_seen)
        self.buf.class_count = <int32_t *>_cl_data(self.class_count)
        self.buf.order = <int32_t *>_cl_data(self.order)
        self.buf.row_codes = <uint8_t *>_cl_data(self.row_codes)
        _cl_check(pt_cl_buffer_init(&self.buf, 0.0 if scale is None else scale, _u64(seed, "seed"),
                                    _u64(stream, "stream")), "replay buffer init")

    @property
    def rng(self):
        return _Pcg32.view(self, &self.buf.rng)

    @property
    def size(self):
        return self.buf.size

    @property
    def batches_seen(self):
        return self.buf.batches_seen

    @property
    def samples_seen(self):
        return self.buf.samples_seen

    @property
    def scale(self):
        """The float32 scale the C buffer uses (0.0: not set)."""
        return self.buf.scale

    def set_scale(self, scale):
        self.buf.scale = 0.0 if scale is None else scale

    def set_counters(self, size, batches_seen, samples_seen):
        """Restores the counters of a saved state (checked with the rest by check())."""
        self.buf.size = <int32_t>_int_arg(size, "size", 0, self.buf.capacity)
        self.buf.batches_seen = _int_arg(batches_seen, "batches_seen", 0, 2 ** 62)
        self.buf.samples_seen = _int_arg(samples_seen, "samples_seen", 0, 2 ** 62)
        self.buf.order_len = self.buf.order_pos = 0

    def check(self):
        """ValueError when the state is inconsistent (pt_cl_buffer_check)."""
        cdef pt_status st = pt_cl_buffer_check(&self.buf)
        if st != PT_OK:
            raise ValueError(f"replay-buffer state is inconsistent ({pt_status_str(st).decode()})")

    def update(self, latents, codes, labels):
        """Offers a batch: float32 latents (n, elements) or uint8 codes (n, elements) at the buffer's bits and
        scale, int16 labels (n,). Returns the slots written, in order (int32)."""
        L = _cl_array(labels, "labels", np.int16, labels.size if isinstance(labels, np.ndarray) else 0)
        cdef int32_t n = <int32_t>_int_arg(L.size, "n", 0, 2 ** 31 - 1)
        cdef int64_t e = self.buf.elements
        cdef const float *px = NULL
        cdef const uint8_t *pc = NULL
        if (latents is None) == (codes is None):
            raise ValueError("exactly one of latents and codes must be given")
        if latents is not None:
            X = _cl_array(latents, "latents", np.float32, n * e)
            px = <const float *>_cl_data(X)
        else:
            C = _cl_array(codes, "codes", np.uint8, n * e)
            pc = <const uint8_t *>_cl_data(C)
        pick = np.empty(max(n, 1), np.int32)
        slots = np.empty(max(n, 1), np.int32)
        cdef int32_t written = 0
        cdef const int16_t *pl = <const int16_t *>_cl_data(L)
        cdef int32_t *pp = <int32_t *>_cl_data(pick)
        cdef int32_t *ps = <int32_t *>_cl_data(slots)
        cdef pt_team team = pt_team_default()
        cdef pt_status st
        with nogil:
            st = pt_cl_buffer_update(&team, &self.buf, px, pc, pl, n, pp, ps, &written)
        _cl_check(st, "replay buffer update")
        return slots[:written]

    def read(self, slots, out, labels_out):
        """Rows of `slots` (int32, each < size) decoded into out (float32, n * elements) and labels_out (int64)."""
        S = _cl_array(slots, "slots", np.int32, slots.size)
        cdef int32_t n = <int32_t>S.size
        _cl_array(out, "out", np.float32, n * self.buf.elements)
        _cl_array(labels_out, "labels_out", np.int64, n)
        cdef const int32_t *ps = <const int32_t *>_cl_data(S)
        cdef float *po = <float *>_cl_data(out)
        cdef int64_t *pl = <int64_t *>_cl_data(labels_out)
        cdef pt_team team = pt_team_default()
        cdef pt_status st
        with nogil:
            st = pt_cl_buffer_read(&team, &self.buf, ps, n, po, pl)
        _cl_check(st, "replay buffer read")

    def read_codes(self, slots, out):
        S = _cl_array(slots, "slots", np.int32, slots.size)
        cdef int32_t n = <int32_t>S.size
        _cl_array(out, "out", np.uint8, n * self.buf.elements)
        cdef const int32_t *ps = <const int32_t *>_cl_data(S)
        cdef uint8_t *po = <uint8_t *>_cl_data(out)
        cdef pt_team team = pt_team_default()
        cdef pt_status st
        with nogil:
            st = pt_cl_buffer_read_codes(&team, &self.buf, ps, n, po)
        _cl_check(st, "replay buffer read_codes")

    def epoch_begin(self):
        _cl_check(pt_cl_buffer_epoch_begin(&self.buf), "replay epoch")

    def replay(self, per_step, out, labels_out):
        """The next min(per_step, size) replays of the epoch into out / labels_out (at least that many rows);
        returns the rows written."""
        cdef int32_t per = <int32_t>_int_arg(per_step, "per_step", 0, 2 ** 31 - 1)
        cdef int32_t rows = min(per, self.buf.size)
        if out.size < rows * self.buf.elements or labels_out.size < rows:
            raise ValueError(f"out must hold at least {rows} rows")
        _cl_array(out, "out", np.float32, out.size)
        _cl_array(labels_out, "labels_out", np.int64, labels_out.size)
        cdef int32_t taken = 0
        cdef float *po = <float *>_cl_data(out)
        cdef int64_t *pl = <int64_t *>_cl_data(labels_out)
        cdef pt_team team = pt_team_default()
        cdef pt_status st
        with nogil:
            st = pt_cl_buffer_replay(&team, &self.buf, per, po, pl, &taken)
        _cl_check(st, "replay")
        return taken


cdef int _cl_fill_settings(pt_cl_settings *s, dict settings, int32_t max_new, int32_t min_new=1) except -1:
    s.lr = settings["lr"]
    s.first_lr = settings["first_lr"]
    s.momentum = settings["momentum"]
    s.weight_decay = settings["weight_decay"]
    s.epochs = settings["epochs"]
    s.first_epochs = settings["first_epochs"]
    s.minibatch = settings["minibatch"]
    s.cwr = 1 if settings["cwr"] else 0
    s.freeze_bn = 1 if settings["freeze_bn"] else 0
    s.num_classes = settings["num_classes"]
    s.max_new = max_new
    s.min_new = min_new
    return 0


cdef float *_cl_param(object spec, str key, int64_t count, list keep) except? NULL:
    a = spec.get(key)
    if a is None:
        return NULL
    keep.append(_cl_array(a, f"{spec['name']} {key}", np.float32, count))
    return <float *>_cl_data(a)


cdef int _cl_fill_layers(pt_cl_layer *layers, list specs, list keep) except -1:
    """The layer table from specs (dicts: see pulptrain.cl.learner); every array's size is checked against the
    shapes, so C never reads past one."""
    cdef pt_cl_layer *L
    for i, spec in enumerate(specs):
        L = &layers[i]
        memset(L, 0, sizeof(pt_cl_layer))
        L.kind = <int32_t>_int_arg(spec["kind"], f"{spec['name']} kind", 0, _CL_NUM_KINDS - 1)
        L.c_in, L.h_in, L.w_in = spec["in_shape"]
        L.c_out, L.h_out, L.w_out = spec["out_shape"]
        L.kh, L.kw = spec.get("kernel", (1, 1))
        L.stride_h, L.stride_w = spec.get("stride", (1, 1))
        L.pad_h, L.pad_w = spec.get("padding", (0, 0))
        L.upper = spec.get("upper", -1.0)
        L.eps, L.bn_momentum = spec.get("eps", 0.0), spec.get("bn_momentum", 0.0)
        L.r_max, L.d_max = spec.get("r_max", 0.0), spec.get("d_max", 0.0)
        L.weight_trainable = 1 if spec.get("weight_trainable") else 0
        L.bias_trainable = 1 if spec.get("bias_trainable") else 0
        # the element counts C derives from the shapes (pt_cl_layer), not the spec's word for them
        c_out, c_in, kh, kw, h_in, w_in = (int(v) for v in (L.c_out, L.c_in, L.kh, L.kw, L.h_in, L.w_in))
        w = {0: c_out * c_in * kh * kw, 1: c_out * kh * kw, 2: c_out * c_in, 3: c_out,
             7: c_out * c_in * h_in * w_in}.get(L.kind, 0)
        b = c_out
        L.weight = _cl_param(spec, "weight", w, keep)
        L.weight_grad = _cl_param(spec, "weight_grad", w, keep)
        L.weight_momentum = _cl_param(spec, "weight_momentum", w, keep)
        L.bias = _cl_param(spec, "bias", b, keep)
        L.bias_grad = _cl_param(spec, "bias_grad", b, keep)
        L.bias_momentum = _cl_param(spec, "bias_momentum", b, keep)
        L.running_mean = _cl_param(spec, "running_mean", L.c_out, keep)
        L.running_var = _cl_param(spec, "running_var", L.c_out, keep)
        if spec.get("num_batches_tracked") is not None:
            keep.append(_cl_array(spec["num_batches_tracked"], f"{spec['name']} num_batches_tracked", np.int64, 1))
            L.num_batches_tracked = <int64_t *>_cl_data(spec["num_batches_tracked"])
    return 0


def cl_learner_arena_bytes(specs, settings, capacity, max_new, num_threads=None, min_new=1):
    """Bytes of the learner arena (pt_cl_learner_arena_bytes) for layer specs (with their arrays), settings
    (the learner's dict), a buffer of `capacity` rows, batches of `min_new` to `max_new` samples and a team of
    `num_threads` cores (default: the current team)."""
    cdef pt_team team = pt_team_default()
    if num_threads is not None:
        team = pt_team_of(<int>_int_arg(num_threads, "num_threads", 1, PT_MAX_THREADS))
    cdef pt_cl_settings s
    cdef int32_t most = <int32_t>_int_arg(max_new, "max_new", 1, 2 ** 31 - 1)
    _cl_fill_settings(&s, settings, most, <int32_t>_int_arg(min_new, "min_new", 1, most))
    cdef int32_t cap = <int32_t>_int_arg(capacity, "capacity", 1, 2 ** 31 - 1)
    cdef int32_t count = len(specs)
    cdef pt_cl_layer *layers = <pt_cl_layer *>PyMem_Malloc(max(count, 1) * sizeof(pt_cl_layer))
    if layers == NULL:
        raise MemoryError()
    try:
        _cl_fill_layers(layers, list(specs), [])
        size = pt_cl_learner_arena_bytes(&team, &s, layers, count, cap)
    finally:
        PyMem_Free(layers)
    if size < 0:
        raise ValueError("the layer table or the settings are not a valid adaptive stage (pt_cl_learner_arena_bytes)")
    return size


def cl_buffer_memory_bytes(capacity, elements, bits, num_classes):
    """Bytes of every array of a replay buffer (pt_cl_buffer_memory_bytes)."""
    size = pt_cl_buffer_memory_bytes(<int32_t>_int_arg(capacity, "capacity", 1, 2 ** 31 - 1),
                                     _int_arg(elements, "elements", 1, 2 ** 40), <int>_int_arg(bits, "bits", 1, 32),
                                     <int32_t>_int_arg(num_classes, "num_classes", 1, _CL_MAX_CLASSES))
    if size < 0:
        raise ValueError(f"bits must be 1..8 or 32, got {bits}")
    return size


cdef class _LearnerCore:
    """The C learner (pt_cl_learner) over a layer table whose arrays are the pulptrain.nn modules' own, a
    _ReplayBufferCore and the CWR* arrays; owns the arena (a numpy array, regrown when a batch has more samples
    or the team needs more workspace). pulptrain.cl.LatentReplayLearner is the documented interface."""
    cdef pt_cl_learner L
    cdef pt_cl_layer *layers
    cdef pt_cl_settings settings
    cdef pt_team team
    cdef readonly _ReplayBufferCore buffer
    cdef list keep
    cdef object arena_array

    def __cinit__(self):
        self.layers = NULL

    def __dealloc__(self):
        PyMem_Free(self.layers)

    def __init__(self, specs, dict settings, _ReplayBufferCore buffer, cwr, seed, stream, max_new=1,
                 arena_bytes=None):
        cdef int32_t count = len(specs)
        if count < 1:
            raise ValueError("the adaptive stage must have at least one layer")
        self.layers = <pt_cl_layer *>PyMem_Malloc(count * sizeof(pt_cl_layer))
        if self.layers == NULL:
            raise MemoryError()
        self.keep = []
        _cl_fill_layers(self.layers, list(specs), self.keep)
        _cl_fill_settings(&self.settings, settings, <int32_t>_int_arg(max_new, "max_new", 1, 2 ** 31 - 1))
        self.buffer = buffer
        cdef pt_cl_cwr c
        memset(&c, 0, sizeof(c))
        if cwr is not None:
            cw, cb, cw_set, past = cwr
            k = settings["num_classes"]
            self.keep += [_cl_array(cw, "cw", np.float32, cw.size), _cl_array(cb, "cb", np.float32, k),
                          _cl_array(cw_set, "cw_set", np.bool_, k), _cl_array(past, "past", np.int64, k)]
            c.cw, c.cb = <float *>_cl_data(cw), <float *>_cl_data(cb)
            c.cw_set, c.past = <uint8_t *>_cl_data(cw_set), <int64_t *>_cl_data(past)
        self.team = pt_team_default()
        cdef int64_t need = pt_cl_learner_arena_bytes(&self.team, &self.settings, self.layers, count,
                                                      buffer.buf.capacity)
        cdef pt_status st
        if need < 0:  # init checks in the same order and says what is wrong
            st = pt_cl_learner_init(&self.L, &self.team, &self.settings, self.layers, count, &buffer.buf,
                                    &c if cwr is not None else NULL, NULL, 0, 0, 0)
            raise ValueError(f"the adaptive stage's layer table, the buffer or the settings are invalid: "
                             f"{pt_status_str(st).decode()}")
        size = need if arena_bytes is None else _int_arg(arena_bytes, "arena_bytes", 0, 2 ** 62)
        if size < need:
            raise ValueError(f"arena_bytes must be at least {need} (pt_cl_learner_arena_bytes), got {size}")
        cdef uint8_t *base = self._new_arena(size)
        st = pt_cl_learner_init(&self.L, &self.team, &self.settings, self.layers, count, &buffer.buf,
                                               &c if cwr is not None else NULL, base, size, _u64(seed, "seed"),
                                               _u64(stream, "stream"))
        _cl_check(st, "learner init")

    cdef uint8_t *_new_arena(self, int64_t size) except NULL:
        raw = np.zeros(size + PT_CL_ALIGN, np.uint8)
        cdef size_t address = <size_t>_cl_data(raw)
        cdef int64_t skip = (PT_CL_ALIGN - address % PT_CL_ALIGN) % PT_CL_ALIGN
        self.arena_array = raw[skip:skip + size]
        return <uint8_t *>_cl_data(self.arena_array)

    cdef int _fit_arena(self, int32_t max_new) except -1:
        """Snapshots the team; a larger arena when this team or max_new needs one."""
        self.team = pt_team_default()
        cdef pt_cl_settings s = self.L.settings
        s.max_new = max(max_new, self.L.settings.max_new)
        cdef int64_t need = pt_cl_learner_arena_bytes(&self.team, &s, self.layers, self.L.num_layers,
                                                      self.buffer.buf.capacity)
        if need < 0:
            raise ValueError("the adaptive stage's layer table is invalid")
        cdef pt_status st
        if need > self.L.arena_bytes or s.max_new != self.L.settings.max_new:
            previous = self.arena_array
            base = self._new_arena(max(need, self.L.arena_bytes))
            st = pt_cl_learner_set_arena(&self.L, &self.team, s.max_new, base, self.arena_array.size)
            if st != PT_OK:
                self.arena_array = previous  # the learner still uses it
                _cl_check(st, "learner arena")
        return 0

    @property
    def rng(self):
        return _Pcg32.view(self, &self.L.rng)

    @property
    def arena_bytes(self):
        return self.L.arena_bytes

    @property
    def rows_max(self):
        return self.L.rows_max

    @property
    def first_trained(self):
        """Index of the first layer with a trainable parameter: the backward pass stops there."""
        return self.L.first_trained

    @property
    def batches_seen(self):
        return self.L.batches_seen

    @property
    def optimizer_phase(self):
        return None if self.L.optimizer_phase < 0 else self.L.optimizer_phase

    @property
    def optimizer_started(self):
        return bool(self.L.optimizer_started)

    def set_state(self, batches_seen, optimizer_phase, optimizer_started):
        """Restores the counters of a checkpoint (not during a batch)."""
        if self.L.in_batch:
            raise RuntimeError("a batch is in progress")
        self.L.batches_seen = _int_arg(batches_seen, "batches_seen", 0, 2 ** 62)
        self.L.optimizer_phase = -1 if optimizer_phase is None else <int32_t>_int_arg(optimizer_phase,
                                                                                     "optimizer_phase", 0, 1)
        self.L.optimizer_started = 1 if optimizer_started else 0

    def plan(self, n):
        """(new_per_step, replays_per_step, steps_per_epoch, epochs) for n new samples at the next batch."""
        cdef pt_cl_plan p = pt_cl_learner_plan(&self.L, <int32_t>_int_arg(n, "n", 1, 2 ** 31 - 1))
        return p.new_per_step, p.replays_per_step, p.steps_per_epoch, p.epochs

    def begin_batch(self, latents, codes, labels):
        """Starts a batch: float32 latents or uint8 codes (n, elements), int16 labels (n,). The arrays must stay
        unchanged until end_batch (this object keeps them)."""
        L = _cl_array(labels, "labels", np.int16, labels.size)
        cdef int32_t n = <int32_t>_int_arg(L.size, "n", 1, 2 ** 31 - 1)
        cdef const float *px = NULL
        cdef const uint8_t *pc = NULL
        if (latents is None) == (codes is None):
            raise ValueError("exactly one of latents and codes must be given")
        if latents is not None:
            X = _cl_array(latents, "latents", np.float32, n * self.L.elements)
            px = <const float *>_cl_data(X)
        else:
            X = _cl_array(codes, "codes", np.uint8, n * self.L.elements)
            pc = <const uint8_t *>_cl_data(X)
        self._fit_arena(n)
        cdef const int16_t *pl = <const int16_t *>_cl_data(L)
        cdef pt_status st
        with nogil:
            st = pt_cl_learner_begin_batch(&self.team, &self.L, px, pc, pl, n)
        _cl_check(st, "begin_batch")
        self.keep.append((X, L))  # read until end_batch

    @property
    def batch_plan(self):
        """(new_per_step, replays_per_step, steps_per_epoch, epochs) of the batch in progress."""
        cdef pt_cl_plan p = self.L.plan
        return p.new_per_step, p.replays_per_step, p.steps_per_epoch, p.epochs

    def train_step(self):
        """One mini-batch; returns (loss, correct, rows)."""
        cdef pt_cl_step_result r
        cdef pt_status st
        with nogil:
            st = pt_cl_learner_train_step(&self.team, &self.L, &r)
        _cl_check(st, "train_step")
        return float(r.loss), int(r.correct), int(r.rows)

    def end_batch(self):
        cdef pt_status st
        with nogil:
            st = pt_cl_learner_end_batch(&self.team, &self.L)
        _cl_check(st, "end_batch")
        self.keep.pop()

    def abort_batch(self):
        """Drops the batch in progress (after a failed step)."""
        if self.L.in_batch:
            pt_cl_learner_abort_batch(&self.L)
            self.keep.pop()

    def minibatch(self, rows):
        """Views of the arena's mini-batch rows: (latents (rows, elements) float32, labels (rows,) int64)."""
        cdef int32_t r = <int32_t>_int_arg(rows, "rows", 0, self.L.rows_max)
        cdef int64_t x_at = <int64_t>(<uint8_t *>self.L.batch_x - self.L.arena)
        cdef int64_t y_at = <int64_t>(<uint8_t *>self.L.batch_labels - self.L.arena)
        e = self.L.elements
        x = self.arena_array[x_at:x_at + 4 * r * e].view(np.float32).reshape(r, e)
        y = self.arena_array[y_at:y_at + 8 * r].view(np.int64)
        return x, y

    def predict(self, latents):
        """Classes (int64) of float32 latents (n, elements), forward in evaluation mode."""
        X = _cl_array(latents, "latents", np.float32, latents.size)
        cdef int64_t n = X.size // self.L.elements
        if n * self.L.elements != X.size:
            raise ValueError(f"latents must hold whole latents of {self.L.elements} values")
        self._fit_arena(1)
        out = np.empty(max(n, 1), np.int32)
        cdef const float *px = <const float *>_cl_data(X)
        cdef int32_t *po = <int32_t *>_cl_data(out)
        cdef pt_status st
        with nogil:
            st = pt_cl_learner_predict(&self.team, &self.L, px, n, po)
        _cl_check(st, "predict")
        return out[:n].astype(np.int64)

    def cwr_reset(self, counts):
        C = _cl_array(np.ascontiguousarray(counts, np.int64), "counts", np.int64, self.L.settings.num_classes)
        _cl_check(pt_cl_cwr_reset(&self.L, <const int64_t *>_cl_data(C)), "cwr_reset")

    def cwr_consolidate(self, counts):
        C = _cl_array(np.ascontiguousarray(counts, np.int64), "counts", np.int64, self.L.settings.num_classes)
        _cl_check(pt_cl_cwr_consolidate(&self.L, <const int64_t *>_cl_data(C)), "cwr_consolidate")

    def cwr_load_all(self):
        _cl_check(pt_cl_cwr_load_all(&self.L), "cwr_load_all")
