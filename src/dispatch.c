/* Chooses, for this CPU, the kernel table and the float32 exp/log. The only
 * file that may ask what the CPU can do; today only the scalar table exists. */
#include <sleef.h>

#include "mathf.h"
#include "simd/kernels.h"

const yl_kernels *yl_kernels_select(void) { return &yl_kernels_scalar; }

/* sleef.h declares the FMA variants only when compiling for FMA. */
float Sleef_expf1_u10purecfma(float);
float Sleef_logf1_u10purecfma(float);

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
/* Resolved once by the dynamic loader (GNU indirect functions), so the
 * choice holds no state of ours and costs nothing per call beyond the call. */
typedef float (*unary_fn)(float);

static unary_fn pick_expf(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") ? Sleef_expf1_u10purecfma : Sleef_expf1_u10purec;
}
static unary_fn pick_logf(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") ? Sleef_logf1_u10purecfma : Sleef_logf1_u10purec;
}
float yl_expf(float x) __attribute__((ifunc("pick_expf")));
float yl_logf(float x) __attribute__((ifunc("pick_logf")));
#else
/* Elsewhere SLEEF's portable scalar entry points. */
float yl_expf(float x) { return Sleef_expf_u10(x); }
float yl_logf(float x) { return Sleef_logf_u10(x); }
#endif
