/* The latent-replay memory over caller arrays: bit-packed rows, replacement policies, replay sampling. */
#include <math.h>
#include <string.h>

#include "pt_cl.h"
#include "quant.h"

#define PT_CL_MAX_CLASSES 32768 /* labels are int16 */

static int64_t align_up(int64_t bytes) { return (bytes + PT_CL_ALIGN - 1) / PT_CL_ALIGN * PT_CL_ALIGN; }

int64_t pt_cl_buffer_row_bytes(int64_t elements, int bits) {
    if (elements < 1 || elements > (INT64_C(1) << 58)) return -1;
    if (bits == PT_CL_FP32_BITS) return 4 * elements;
    return pt_packed_bytes(elements, bits);
}

int64_t pt_cl_buffer_memory_bytes(int32_t capacity, int64_t elements, int bits, int32_t num_classes) {
    const int64_t row = pt_cl_buffer_row_bytes(elements, bits);
    if (row < 0 || capacity < 1 || num_classes < 1 || num_classes > PT_CL_MAX_CLASSES) return -1;
    return align_up(capacity * row) + align_up(2 * (int64_t)capacity) + align_up(8 * (int64_t)num_classes) +
           align_up(4 * (int64_t)num_classes) + align_up(4 * (int64_t)capacity) +
           (bits == PT_CL_FP32_BITS ? 0 : align_up(elements));
}

static pt_status check_config(const pt_cl_buffer *buf) {
    if (buf == NULL) return PT_ERR_NULL_POINTER;
    if (buf->capacity < 1 || pt_cl_buffer_row_bytes(buf->elements, buf->bits) < 0) {
        return buf->bits == PT_CL_FP32_BITS || (buf->bits >= 1 && buf->bits <= 8) ? PT_ERR_BAD_SHAPE
                                                                                  : PT_ERR_BAD_ARGUMENT;
    }
    if (buf->policy < PT_CL_POLICY_REFERENCE || buf->policy > PT_CL_POLICY_CLASS_BALANCED) return PT_ERR_BAD_ARGUMENT;
    if (buf->num_classes < 1 || buf->num_classes > PT_CL_MAX_CLASSES) return PT_ERR_BAD_ARGUMENT;
    if (buf->storage == NULL || buf->labels == NULL || buf->class_seen == NULL || buf->class_count == NULL ||
        buf->order == NULL || (buf->bits != PT_CL_FP32_BITS && buf->row_codes == NULL)) {
        return PT_ERR_NULL_POINTER;
    }
    return PT_OK;
}

static int scale_ok(float scale) { return isfinite(scale) && scale > 0.0f; }

pt_status pt_cl_buffer_init(pt_cl_buffer *buf, float scale, uint64_t seed, uint64_t stream) {
    const pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if (!(scale == 0.0f || scale_ok(scale))) return PT_ERR_BAD_ARGUMENT;
    buf->scale = buf->bits == PT_CL_FP32_BITS ? 0.0f : scale;
    buf->size = 0;
    buf->batches_seen = buf->samples_seen = 0;
    for (int32_t c = 0; c < buf->num_classes; c++) buf->class_seen[c] = 0;
    buf->order_len = buf->order_pos = 0;
    pt_rng_seed(&buf->rng, seed, stream);
    return PT_OK;
}

pt_status pt_cl_buffer_check(const pt_cl_buffer *buf) {
    const pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if (buf->size < 0 || buf->size > buf->capacity || buf->batches_seen < 0 || buf->samples_seen < buf->size ||
        (buf->batches_seen == 0) != (buf->samples_seen == 0)) {
        return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    if (buf->bits != PT_CL_FP32_BITS && !(scale_ok(buf->scale) || (buf->scale == 0.0f && buf->size == 0))) {
        return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    for (int32_t k = 0; k < buf->size; k++) {
        if (buf->labels[k] < 0 || buf->labels[k] >= buf->num_classes) return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    int64_t seen = 0;
    for (int32_t c = 0; c < buf->num_classes; c++) {
        if (buf->class_seen[c] < 0) return PT_ERR_VALUE_OUT_OF_RANGE;
        seen += buf->class_seen[c];
    }
    if (seen != buf->samples_seen) return PT_ERR_VALUE_OUT_OF_RANGE;
    if (buf->order_pos < 0 || buf->order_pos > buf->order_len || buf->order_len > buf->size) {
        return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------------------------------ rows */

static uint8_t *row_of(const pt_cl_buffer *buf, int32_t slot) {
    return buf->storage + (int64_t)slot * pt_cl_buffer_row_bytes(buf->elements, buf->bits);
}

/* Stores sample k of the batch (latents or codes) with its label in `slot`. */
static pt_status write_row(const pt_team *team, pt_cl_buffer *buf, int32_t slot, const float *latents,
                           const uint8_t *codes, int32_t k, int16_t label) {
    const int64_t e = buf->elements;
    uint8_t *row = row_of(buf, slot);
    pt_status st = PT_OK;
    buf->labels[slot] = label;
    if (buf->bits == PT_CL_FP32_BITS) {
        memcpy(row, latents + (int64_t)k * e, (size_t)e * sizeof(float));
        return PT_OK;
    }
    const uint8_t *row_codes = codes != NULL ? codes + (int64_t)k * e : NULL;
    if (row_codes == NULL) {
        uint8_t *target = buf->bits == 8 ? row : buf->row_codes;
        st = pt_quantize(team, e, latents + (int64_t)k * e, buf->scale, buf->bits, target);
        if (st != PT_OK || buf->bits == 8) return st;
        row_codes = buf->row_codes;
    } else if (buf->bits == 8) {
        memcpy(row, row_codes, (size_t)e);
        return PT_OK;
    }
    return pt_pack_bits(team, e, row_codes, buf->bits, row);
}

static pt_status read_row(const pt_team *team, pt_cl_buffer *buf, int32_t slot, float *out) {
    const int64_t e = buf->elements;
    const uint8_t *row = row_of(buf, slot);
    if (buf->bits == PT_CL_FP32_BITS) {
        memcpy(out, row, (size_t)e * sizeof(float));
        return PT_OK;
    }
    if (buf->bits != 8) {
        const pt_status st = pt_unpack_bits(team, e, row, buf->bits, buf->row_codes);
        if (st != PT_OK) return st;
        row = buf->row_codes;
    }
    return pt_dequantize(team, e, row, buf->scale, out);
}

static pt_status check_slots(const pt_cl_buffer *buf, const int32_t *slots, int32_t n) {
    if (n < 0) return PT_ERR_BAD_SHAPE;
    if (n > 0 && slots == NULL) return PT_ERR_NULL_POINTER;
    for (int32_t k = 0; k < n; k++) {
        if (slots[k] < 0 || slots[k] >= buf->size) return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    return PT_OK;
}

pt_status pt_cl_buffer_read(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n, float *out,
                            int64_t *labels_out) {
    PT_RETURN_IF_BAD_TEAM(team);
    pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if ((st = check_slots(buf, slots, n)) != PT_OK) return st;
    if (n > 0 && out == NULL) return PT_ERR_NULL_POINTER;
    for (int32_t k = 0; k < n; k++) {
        if (labels_out != NULL) labels_out[k] = buf->labels[slots[k]];
        if ((st = read_row(team, buf, slots[k], out + (int64_t)k * buf->elements)) != PT_OK) return st;
    }
    return PT_OK;
}

pt_status pt_cl_buffer_read_codes(const pt_team *team, pt_cl_buffer *buf, const int32_t *slots, int32_t n,
                                  uint8_t *out) {
    PT_RETURN_IF_BAD_TEAM(team);
    pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if (buf->bits == PT_CL_FP32_BITS) return PT_ERR_BAD_ARGUMENT;
    if ((st = check_slots(buf, slots, n)) != PT_OK) return st;
    if (n > 0 && out == NULL) return PT_ERR_NULL_POINTER;
    const int64_t e = buf->elements;
    for (int32_t k = 0; k < n; k++) {
        if (buf->bits == 8) {
            memcpy(out + (int64_t)k * e, row_of(buf, slots[k]), (size_t)e);
        } else if ((st = pt_unpack_bits(team, e, row_of(buf, slots[k]), buf->bits, out + (int64_t)k * e)) != PT_OK) {
            return st;
        }
    }
    return PT_OK;
}

/* -------------------------------------------------------------------------------------------- sampling */

pt_status pt_cl_buffer_epoch_begin(pt_cl_buffer *buf) {
    const pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    buf->order_len = buf->size;
    buf->order_pos = 0;
    return pt_rng_permutation(&buf->rng, buf->size, buf->order);
}

pt_status pt_cl_buffer_replay(const pt_team *team, pt_cl_buffer *buf, int32_t per_step, float *out,
                              int64_t *labels_out, int32_t *taken) {
    PT_RETURN_IF_BAD_TEAM(team);
    pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if (per_step < 0) return PT_ERR_BAD_ARGUMENT;
    const int32_t rows = per_step < buf->size ? per_step : buf->size;
    if (taken != NULL) *taken = rows;
    if (rows == 0) return PT_OK;
    if (buf->order_len != buf->size || buf->order_pos + rows > buf->order_len) {
        if ((st = pt_cl_buffer_epoch_begin(buf)) != PT_OK) return st;
    }
    st = pt_cl_buffer_read(team, buf, buf->order + buf->order_pos, rows, out, labels_out);
    buf->order_pos += rows;
    return st;
}

/* ---------------------------------------------------------------------------------------------- update */

/* The r-th occupied slot (in slot order) holding `label`. */
static int32_t nth_slot_of(const pt_cl_buffer *buf, int16_t label, uint32_t r) {
    for (int32_t s = 0; s < buf->size; s++) {
        if (buf->labels[s] == label && r-- == 0) return s;
    }
    return -1; /* unreachable: r < the class count */
}

static pt_status check_batch(const pt_cl_buffer *buf, const float *latents, const uint8_t *codes,
                             const int16_t *labels, int32_t n) {
    if (n < 0) return PT_ERR_BAD_SHAPE;
    if (n == 0) return PT_OK;
    if ((latents == NULL) == (codes == NULL) || labels == NULL) return PT_ERR_NULL_POINTER;
    if (codes != NULL && buf->bits == PT_CL_FP32_BITS) return PT_ERR_BAD_ARGUMENT;
    if (buf->bits != PT_CL_FP32_BITS && !scale_ok(buf->scale)) return PT_ERR_BAD_ARGUMENT;
    if (buf->samples_seen > (int64_t)UINT32_MAX - n) return PT_ERR_VALUE_OUT_OF_RANGE; /* below() bounds */
    const int64_t values = (int64_t)n * buf->elements;
    for (int32_t k = 0; k < n; k++) {
        if (labels[k] < 0 || labels[k] >= buf->num_classes) return PT_ERR_VALUE_OUT_OF_RANGE;
    }
    if (latents != NULL) {
        for (int64_t i = 0; i < values; i++) {
            if (!isfinite(latents[i])) return PT_ERR_VALUE_OUT_OF_RANGE;
        }
    } else {
        const int top = (1 << buf->bits) - 1;
        for (int64_t i = 0; i < values; i++) {
            if (codes[i] > top) return PT_ERR_VALUE_OUT_OF_RANGE;
        }
    }
    return PT_OK;
}

pt_status pt_cl_buffer_update(const pt_team *team, pt_cl_buffer *buf, const float *latents, const uint8_t *codes,
                              const int16_t *labels, int32_t n, int32_t *pick_scratch, int32_t *slots_written,
                              int32_t *num_written) {
    PT_RETURN_IF_BAD_TEAM(team);
    pt_status st = check_config(buf);
    if (st != PT_OK) return st;
    if ((st = check_batch(buf, latents, codes, labels, n)) != PT_OK) return st;
    if (buf->policy == PT_CL_POLICY_REFERENCE && n > 0 && pick_scratch == NULL) return PT_ERR_NULL_POINTER;
    int32_t written = 0;
#define PT_CL_WRITE(slot_expr, k)                                                              \
    do {                                                                                       \
        const int32_t slot_ = (slot_expr);                                                     \
        if (slots_written != NULL) slots_written[written] = slot_;                             \
        written++;                                                                             \
        st = write_row(team, buf, slot_, latents, codes, (k), labels[k]);                      \
        if (st != PT_OK) return st;                                                            \
    } while (0)

    buf->order_len = buf->order_pos = 0; /* the sampler's permutation is scratch from here */
    if (buf->policy == PT_CL_POLICY_REFERENCE) {
        const int64_t share = buf->capacity / (buf->batches_seen + 1);
        const int32_t h = (int32_t)(share < n ? share : n);
        if ((st = pt_rng_sample(&buf->rng, n, h, pick_scratch)) != PT_OK) return st;
        const int32_t room = buf->capacity - buf->size;
        const int32_t fill = room < h ? room : h;
        const int32_t old_size = buf->size;
        if ((st = pt_rng_sample(&buf->rng, old_size, h - fill, buf->order)) != PT_OK) return st;
        buf->size += fill;
        for (int32_t k = 0; k < h; k++) PT_CL_WRITE(k < fill ? old_size + k : buf->order[k - fill], pick_scratch[k]);
    } else if (buf->policy == PT_CL_POLICY_RESERVOIR) {
        for (int32_t k = 0; k < n; k++) {
            const uint32_t seen = (uint32_t)(buf->samples_seen + k + 1);
            if (buf->size < buf->capacity) {
                PT_CL_WRITE(buf->size++, k);
            } else {
                const uint32_t j = pt_rng_below(&buf->rng, seen);
                if (j < (uint32_t)buf->capacity) PT_CL_WRITE((int32_t)j, k);
            }
        }
    } else {
        int32_t *count = buf->class_count;
        for (int32_t c = 0; c < buf->num_classes; c++) count[c] = 0;
        for (int32_t s = 0; s < buf->size; s++) count[buf->labels[s]]++;
        for (int32_t k = 0; k < n; k++) {
            const int16_t c = labels[k];
            int32_t slot = -1;
            buf->class_seen[c]++;
            if (buf->size < buf->capacity) {
                slot = buf->size++;
            } else {
                int32_t largest = 0, ties = 0;
                for (int32_t d = 0; d < buf->num_classes; d++) {
                    if (count[d] > largest) largest = count[d], ties = 0;
                    if (count[d] == largest) ties++;
                }
                if (count[c] < largest) {
                    uint32_t pick = pt_rng_below(&buf->rng, (uint32_t)ties);
                    int16_t victim = 0;
                    for (int32_t d = 0; d < buf->num_classes; d++) {
                        if (count[d] == largest && pick-- == 0) {
                            victim = (int16_t)d;
                            break;
                        }
                    }
                    slot = nth_slot_of(buf, victim, pt_rng_below(&buf->rng, (uint32_t)count[victim]));
                    count[victim]--;
                } else if (pt_rng_below(&buf->rng, (uint32_t)buf->class_seen[c]) < (uint32_t)count[c]) {
                    slot = nth_slot_of(buf, c, pt_rng_below(&buf->rng, (uint32_t)count[c]));
                    count[c]--;
                }
            }
            if (slot >= 0) {
                count[c]++;
                PT_CL_WRITE(slot, k);
            }
        }
    }
#undef PT_CL_WRITE
    if (buf->policy != PT_CL_POLICY_CLASS_BALANCED) {
        for (int32_t k = 0; k < n; k++) buf->class_seen[labels[k]]++;
    }
    buf->batches_seen++;
    buf->samples_seen += n;
    if (num_written != NULL) *num_written = written;
    return PT_OK;
}
