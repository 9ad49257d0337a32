/* Chooses, for this CPU, the kernel table and the float32 exp/log. The only
 * file that may ask what the CPU can do; today only the scalar table exists. */
#include <sleef.h>

#include "mathf.h"
#include "simd/kernels.h"

const yl_kernels *yl_kernels_select(void) { return &yl_kernels_scalar; }

/* sleef.h declares the FMA variants only when compiling for FMA. */
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);

#if defined(__x86_64__) && defined(__GNUC__)
/* __builtin_cpu_supports reads what libgcc detected when the library was
 * loaded: a load and a bit test per call, no state of ours. */
float yl_expf(float x) {
    return __builtin_cpu_supports("fma") ? Sleef_expf1_u10purecfma(x) : Sleef_expf1_u10purec(x);
}
float yl_logf(float x) {
    return __builtin_cpu_supports("fma") ? Sleef_logf1_u10purecfma(x) : Sleef_logf1_u10purec(x);
}
#else
/* Elsewhere SLEEF's portable scalar entry points. */
float yl_expf(float x) { return Sleef_expf_u10(x); }
float yl_logf(float x) { return Sleef_logf_u10(x); }
#endif
