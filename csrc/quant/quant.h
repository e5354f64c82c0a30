/* Latent-replay codes: uniform unsigned quantization (zero point 0) and sub-byte bit packing.
 *
 *   quantize:   q[i] = clip(round_half_even(x[i] / scale), 0, 2^bits - 1)   (float32 division, as numpy's
 *               np.rint(x / np.float32(scale)); NaN is an error, +-inf clip to the ends)
 *   dequantize: x[i] = scale * q[i]                                         (float32 product)
 *   pack:       code i occupies bits [i*bits, (i+1)*bits) of a little-endian bit stream: stream bit b is
 *               bit (b % 8) of byte b / 8, and a code's least significant bit comes first. The stream is
 *               exactly pt_packed_bytes(count, bits) = ceil(count * bits / 8) bytes; unused high bits of
 *               the last byte are written as 0 and ignored on unpack.
 *
 * Every 8 codes fill exactly `bits` whole bytes, so cores split the work in whole groups of 8 codes and
 * never share a byte. bits must be 1..8 (PT_ERR_BAD_ARGUMENT); a code above 2^bits - 1 given to pack is
 * PT_ERR_VALUE_OUT_OF_RANGE (the packed output is then unspecified).
 */
#ifndef PT_QUANT_H
#define PT_QUANT_H

#include <stdint.h>
#include "pt_status.h"
#include "parallel.h"

/* ceil(count * bits / 8), or -1 when count < 0 or bits is not 1..8. */
int64_t pt_packed_bytes(int64_t count, int bits);

/* scale must be finite and > 0. A NaN in x gives PT_ERR_VALUE_OUT_OF_RANGE. */
pt_status pt_quantize(const pt_team *team, int64_t count, const float *x, float scale, int bits, uint8_t *codes);
pt_status pt_dequantize(const pt_team *team, int64_t count, const uint8_t *codes, float scale, float *x);

pt_status pt_pack_bits(const pt_team *team, int64_t count, const uint8_t *codes, int bits, uint8_t *packed);
pt_status pt_unpack_bits(const pt_team *team, int64_t count, const uint8_t *packed, int bits, uint8_t *codes);

#endif
