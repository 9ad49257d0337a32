/* The float32 exp and log of every scalar formula, in one place.
 *
 * libm's (glibc's are correctly rounded in nearly every case). PyTorch's CPU
 * kernels use SLEEF's 1-ulp vector functions instead, which differ from the
 * correctly rounded value for about 9% of exp inputs; the two therefore
 * disagree by one ulp there, which matters only at exact kinks (a decoded
 * edge equal to the gt's edge, a raw output equal to its L1 target).
 * SLEEF's scalar FMA variant is bitwise equal to PyTorch's AVX2 exp and log,
 * but needs an FMA CPU, so it belongs behind the kernel dispatcher. */
#ifndef YL_MATHF_H
#define YL_MATHF_H

#include <math.h>

static inline float yl_expf(float x) { return expf(x); }
static inline float yl_logf(float x) { return logf(x); }

#endif
