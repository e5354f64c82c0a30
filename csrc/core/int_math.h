/* Small integer helpers shared by the kernels' planners. */
#ifndef PT_INT_MATH_H
#define PT_INT_MATH_H

#include <stdint.h>

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif
