/* PCG32 (O'Neill's pcg32_random_r / pcg32_srandom_r / pcg32_boundedrand_r) and the index samplers built on it. */
#include "pt_cl.h"

#define PT_PCG_MULTIPLIER UINT64_C(6364136223846793005)

void pt_rng_seed(pt_rng *rng, uint64_t seed, uint64_t stream) {
    rng->state = 0;
    rng->inc = (stream << 1) | 1u;
    (void)pt_rng_next(rng);
    rng->state += seed;
    (void)pt_rng_next(rng);
}

uint32_t pt_rng_next(pt_rng *rng) {
    const uint64_t old = rng->state;
    rng->state = old * PT_PCG_MULTIPLIER + rng->inc;
    const uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    const uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((0u - rot) & 31u));
}

uint32_t pt_rng_below(pt_rng *rng, uint32_t bound) {
    if (bound == 0) return 0;
    /* (2^32 - bound) % bound: the outputs below it are the partial last copy of [0, bound) */
    const uint32_t threshold = (0u - bound) % bound;
    for (;;) {
        const uint32_t r = pt_rng_next(rng);
        if (r >= threshold) return r % bound;
    }
}

pt_status pt_rng_permutation(pt_rng *rng, int32_t n, int32_t *out) {
    if (rng == NULL || (out == NULL && n > 0)) return PT_ERR_NULL_POINTER;
    if (n < 0) return PT_ERR_BAD_SHAPE;
    for (int32_t i = 0; i < n; i++) out[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        const int32_t j = (int32_t)pt_rng_below(rng, (uint32_t)i + 1u);
        const int32_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return PT_OK;
}

pt_status pt_rng_sample(pt_rng *rng, int32_t n, int32_t k, int32_t *scratch) {
    if (rng == NULL || (scratch == NULL && n > 0)) return PT_ERR_NULL_POINTER;
    if (n < 0 || k < 0 || k > n) return PT_ERR_BAD_SHAPE;
    for (int32_t i = 0; i < n; i++) scratch[i] = i;
    for (int32_t i = 0; i < k; i++) {
        const int32_t j = i + (int32_t)pt_rng_below(rng, (uint32_t)(n - i));
        const int32_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
    }
    return PT_OK;
}
