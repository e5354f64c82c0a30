#include <math.h>
#include "portable_math.h"

#define LN2 0.69314718055994530942

/* exp(x) = 2^k exp(r), r = x - k ln2 in [-ln2/2, ln2/2]; exp(r) by its Taylor series to degree 13 (the
 * remainder is below 1e-17 relative), all in double. */
float bundle_expf(float x)
{
    if (x != x) return x + x;
    if (x > 89.0f) return (float)HUGE_VAL;
    if (x < -104.0f) return 0.0f;
    const double t = (double)x / LN2;
    const int k = (int)(t + (t >= 0.0 ? 0.5 : -0.5));
    const double r = (double)x - (double)k * LN2;
    double term = 1.0, sum = 1.0;
    for (int i = 1; i <= 13; i++) {
        term = term * r / (double)i;
        sum += term;
    }
    return (float)ldexp(sum, k);
}

/* log(x) = e ln2 + log(m), m = x / 2^e in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1),
 * |s| < 0.172, by its series to s^25 (the remainder is below 1e-20), all in double. */
float bundle_logf(float x)
{
    if (x != x) return x + x;
    if (x < 0.0f) return (float)(HUGE_VAL - HUGE_VAL); /* NaN */
    if (x == 0.0f) return (float)-HUGE_VAL;
    if (x == (float)HUGE_VAL) return x;
    int e;
    double m = frexp((double)x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double power = s, sum = 0.0;
    for (int i = 1; i <= 25; i += 2) {
        sum += power / (double)i;
        power *= s2;
    }
    return (float)((double)e * LN2 + 2.0 * sum);
}
