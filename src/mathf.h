/* The float32 exp, log and log1p of every scalar formula (decoding,
 * sigmoids, BCE, the matching cost's logs, L1 targets), in one place.
 *
 * They are SLEEF's 1-ulp functions, the ones PyTorch's CPU kernels call.
 * On a CPU with FMA the library takes SLEEF's scalar FMA variant, which
 * gives the same bits as SLEEF's AVX2 and AVX-512 functions and so as
 * PyTorch's vectorised exp and log; libm's functions differ from those in
 * about 9% of exp inputs by one ulp, which decides the gradient wherever a
 * decoded box edge lands exactly on the gt's edge. dispatch.c picks the
 * variant. */
#ifndef YL_MATHF_H
#define YL_MATHF_H

float yl_expf(float x);
float yl_logf(float x);
float yl_log1pf(float x);

#endif
