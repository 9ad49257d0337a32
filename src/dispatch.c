/* Chooses the kernel table for a context and the float32 exp/log of the
 * scalar formulas. The only file that asks what the CPU can do. */
#include <sleef.h>
#include <stdlib.h>
#include <string.h>

#include "mathf.h"
#include "simd/kernels.h"

/* Does the CPU (and the OS, which must save the wide registers) run isa?
 * libgcc's CPU-feature query covers both on x86-64. */
static int cpu_runs(yoloxloss_isa isa) {
    switch (isa) {
    case YOLOXLOSS_ISA_SCALAR: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case YOLOXLOSS_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case YOLOXLOSS_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    case YOLOXLOSS_ISA_NEON: return 1; /* Advanced SIMD is part of the aarch64 baseline */
#endif
    default: return 0;
    }
}

/* The table of isa compiled into this build, or NULL. */
static const yl_kernels *built_table(yoloxloss_isa isa) {
    switch (isa) {
    case YOLOXLOSS_ISA_SCALAR: return &yl_kernels_scalar;
#ifdef YL_HAVE_AVX2
    case YOLOXLOSS_ISA_AVX2: return &yl_kernels_avx2;
#endif
#ifdef YL_HAVE_AVX512
    case YOLOXLOSS_ISA_AVX512: return &yl_kernels_avx512;
#endif
#ifdef YL_HAVE_NEON
    case YOLOXLOSS_ISA_NEON: return &yl_kernels_neon;
#endif
    default: return NULL;
    }
}

int yoloxloss_isa_supported(yoloxloss_isa isa) {
    if (isa == YOLOXLOSS_ISA_AUTO) return 1;
    return built_table(isa) != NULL && cpu_runs(isa);
}

const char *yoloxloss_isa_name(yoloxloss_isa isa) {
    switch (isa) {
    case YOLOXLOSS_ISA_AUTO: return "auto";
    case YOLOXLOSS_ISA_SCALAR: return "scalar";
    case YOLOXLOSS_ISA_AVX2: return "avx2";
    case YOLOXLOSS_ISA_AVX512: return "avx512";
    case YOLOXLOSS_ISA_NEON: return "neon";
    }
    return "unknown";
}

int yl_isa_from_env(yoloxloss_isa *isa) {
    const char *name = getenv("YOLOXLOSS_ISA");
    *isa = YOLOXLOSS_ISA_AUTO;
    if (!name || !*name) return 1;
    for (int i = YOLOXLOSS_ISA_AUTO; i <= YOLOXLOSS_ISA_NEON; i++)
        if (strcmp(name, yoloxloss_isa_name((yoloxloss_isa)i)) == 0) {
            *isa = (yoloxloss_isa)i;
            return 1;
        }
    return 0;
}

const yl_kernels *yl_kernels_select(yoloxloss_isa isa) {
    if (isa != YOLOXLOSS_ISA_AUTO) return yoloxloss_isa_supported(isa) ? built_table(isa) : NULL;
    static const yoloxloss_isa best_first[] = {YOLOXLOSS_ISA_AVX512, YOLOXLOSS_ISA_AVX2,
                                               YOLOXLOSS_ISA_NEON, YOLOXLOSS_ISA_SCALAR};
    for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++)
        if (yoloxloss_isa_supported(best_first[i])) return built_table(best_first[i]);
    return &yl_kernels_scalar;
}

/* sleef.h declares the FMA variants only when compiling for FMA. */
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);
float Sleef_log1pf1_u10purecfma(float);

#if defined(__x86_64__) && defined(__GNUC__)
/* __builtin_cpu_supports reads what libgcc detected when the library was
 * loaded: a load and a bit test per call, no state of ours. The FMA
 * variant gives the same bits as SLEEF's AVX2 and AVX-512 functions. */
float yl_expf(float x) {
    return __builtin_cpu_supports("fma") ? Sleef_expf1_u10purecfma(x) : Sleef_expf1_u10purec(x);
}
float yl_logf(float x) {
    return __builtin_cpu_supports("fma") ? Sleef_logf1_u10purecfma(x) : Sleef_logf1_u10purec(x);
}
float yl_log1pf(float x) {
    return __builtin_cpu_supports("fma") ? Sleef_log1pf1_u10purecfma(x) : Sleef_log1pf1_u10purec(x);
}
#elif defined(__aarch64__)
/* FMA is part of aarch64, so always SLEEF's scalar FMA variant. */
float yl_expf(float x) { return Sleef_expf1_u10purecfma(x); }
float yl_logf(float x) { return Sleef_logf1_u10purecfma(x); }
float yl_log1pf(float x) { return Sleef_log1pf1_u10purecfma(x); }
#else
/* Elsewhere SLEEF's portable scalar entry points. */
float yl_expf(float x) { return Sleef_expf_u10(x); }
float yl_logf(float x) { return Sleef_logf_u10(x); }
float yl_log1pf(float x) { return Sleef_log1pf_u10(x); }
#endif
