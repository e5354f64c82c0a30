/* Deterministic expf / logf for the PORTABLE=1 build mode (forced into every file with -include).
 *
 * The C libraries round expf / logf differently in the last bit (glibc on the host, picolibc on rv32), and the
 * cross-entropy loss calls them, so two builds would drift apart through training. These versions use only
 * IEEE-754 basic operations in double precision (add, multiply, divide, exact scaling by powers of two), which
 * every conforming implementation rounds the same way (hardware or soft-float), then round once to float:
 * the host and the rv32 builds get the same bits. Accuracy: within one float ulp of the exact value.
 */
#ifndef BUNDLE_PORTABLE_MATH_H
#define BUNDLE_PORTABLE_MATH_H

#include <math.h> /* its declarations first: the macros below must not rename what it declares */

float bundle_expf(float x);
float bundle_logf(float x);

#define expf bundle_expf
#define logf bundle_logf

#endif
