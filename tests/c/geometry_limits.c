/* pt_conv_geometry_init must refuse every size, stride or padding whose arithmetic would overflow, before
 * doing that arithmetic (built with -fsanitize=undefined by tests/test_audit_defects.py). Prints the
 * number of out-of-range calls that were accepted (0 expected), then the accepted edge cases' outputs. */
#include <stdint.h>
#include <stdio.h>
#include "conv_geometry.h"

int main(void)
{
    const int64_t bad[] = {INT64_C(1) << 31, INT64_C(1) << 32, INT64_C(1) << 62, INT64_MAX, -1, INT64_MIN};
    pt_conv_geometry g;
    int accepted = 0;
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const int64_t v = bad[i];
        accepted += pt_conv_geometry_init(&g, v, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, v, 5, 5, 1, 3, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, v, 5, 1, 3, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, v, 1, 3, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, v, 3, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, v, 3, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, v, 1, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, 3, v, 1, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, 3, 1, v, 0, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, 3, 1, 1, v, 0) == PT_OK;
        accepted += pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, 3, 1, 1, 0, v) == PT_OK;
    }
    /* each extent in range, but element counts beyond PT_CONV_MAX_ELEMENTS */
    const int64_t m = PT_CONV_MAX_EXTENT;
    accepted += pt_conv_geometry_init(&g, m, m, m, m, 1, 1, 1, 1, 1, 0, 0) == PT_OK;
    accepted += pt_conv_geometry_init(&g, 1, 1, 1, 1, 1, 1, 1, 1, 1, m, m) == PT_OK;
    accepted += pt_conv_geometry_init(&g, 1, m, 1, 1, m, m, 1, 1, 1, 0, m) == PT_OK;
    printf("%d\n", accepted);
    /* the largest stride and padding are fine on a small tensor */
    if (pt_conv_geometry_init(&g, 1, 1, 5, 5, 1, 3, 3, m, m, 0, 0) != PT_OK) return 1;
    printf("%lld %lld\n", (long long)g.h_out, (long long)g.w_out);
    if (pt_conv_geometry_init(&g, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 << 20, 1 << 20) != PT_OK) return 1;
    printf("%lld %lld\n", (long long)g.h_out, (long long)g.w_out);
    return 0;
}
