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

/* Wrapped, because sleef.h declares some of its functions
 * __attribute__((const)), which clang takes as part of their type. */
#if defined(__x86_64__) || defined(__aarch64__)
/* sleef.h declares the FMA variants only where it defines FP_FAST_FMA
 * (compiling for FMA); elsewhere the library still calls them, on CPUs
 * that dispatch found to have FMA. */
#ifndef FP_FAST_FMA
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);
float Sleef_log1pf1_u10purecfma(float);
#endif

static inline float yl_expf_fma(float x) { return Sleef_expf1_u10purecfma(x); }
static inline float yl_logf_fma(float x) { return Sleef_logf1_u10purecfma(x); }
static inline float yl_log1pf_fma(float x) { return Sleef_log1pf1_u10purecfma(x); }
static inline float yl_expf_portable(float x) { return Sleef_expf1_u10purec(x); }
static inline float yl_logf_portable(float x) { return Sleef_logf1_u10purec(x); }
static inline float yl_log1pf_portable(float x) { return Sleef_log1pf1_u10purec(x); }
#else
/* No FMA variant in SLEEF's build for this architecture: both sets are its
 * portable entry points. */
static inline float yl_expf_fma(float x) { return Sleef_expf_u10(x); }
static inline float yl_logf_fma(float x) { return Sleef_logf_u10(x); }
static inline float yl_log1pf_fma(float x) { return Sleef_log1pf_u10(x); }
static inline float yl_expf_portable(float x) { return Sleef_expf_u10(x); }
static inline float yl_logf_portable(float x) { return Sleef_logf_u10(x); }
static inline float yl_log1pf_portable(float x) { return Sleef_log1pf_u10(x); }
#endif

/* SLEEF's scalar functions that use fused multiply-add: for CPUs with FMA
 * (every aarch64 CPU). */
static const yl_mathf yl_mathf_fma = {yl_expf_fma, yl_logf_fma, yl_log1pf_fma};
/* SLEEF's portable scalar functions: for CPUs without FMA. */
static const yl_mathf yl_mathf_portable = {yl_expf_portable, yl_logf_portable, yl_log1pf_portable};

#endif
