/* The float32 exp, log and log1p of every scalar formula (decoding,
 * sigmoids, BCE, the matching cost's logs, L1 targets).
 *
 * They are SLEEF's 1-ulp functions, the ones PyTorch's CPU kernels call.
 * On a CPU with FMA the library takes SLEEF's scalar FMA variant, which
 * gives the same bits as SLEEF's AVX2 and AVX-512 functions and so as
 * PyTorch's vectorised exp and log; libm's functions differ from those in
 * about 9% of exp inputs by one ulp, which decides the gradient wherever a
 * decoded box edge lands exactly on the gt's edge.
 *
 * Which set a context uses is decided once, when its kernel table is chosen
 * (dispatch.c): every table carries its yl_mathf, and the scalar code
 * outside the kernels (box.c, loss.c, backward.c) calls through it.
 *
 * The two sets are defined here, static, so that a file which names one
 * directly (the scalar kernels) gets direct calls the compiler can see
 * through, not calls through a pointer it must load. */
#ifndef YL_MATHF_H
#define YL_MATHF_H

#include <sleef.h>

typedef struct {
    float (*exp)(float);
    float (*log)(float);
    float (*log1p)(float);
} yl_mathf;

#if defined(__x86_64__) || defined(__aarch64__)
/* sleef.h declares the FMA variants only when compiling for FMA. */
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);
float Sleef_log1pf1_u10purecfma(float);

/* SLEEF's scalar functions that use fused multiply-add: for CPUs with FMA
 * (every aarch64 CPU). */
static const yl_mathf yl_mathf_fma = {Sleef_expf1_u10purecfma, Sleef_logf1_u10purecfma,
                                      Sleef_log1pf1_u10purecfma};
/* SLEEF's portable scalar functions: for CPUs without FMA. */
static const yl_mathf yl_mathf_portable = {Sleef_expf1_u10purec, Sleef_logf1_u10purec,
                                           Sleef_log1pf1_u10purec};
#else
/* No FMA variant in SLEEF's build for this architecture: both sets are its
 * portable entry points. */
static const yl_mathf yl_mathf_fma = {Sleef_expf_u10, Sleef_logf_u10, Sleef_log1pf_u10};
static const yl_mathf yl_mathf_portable = {Sleef_expf_u10, Sleef_logf_u10, Sleef_log1pf_u10};
#endif

#endif
