/* The kernels for aarch64 Advanced SIMD: four float lanes. NEON has no
 * gather, so gathers are four scalar loads. */
#include "kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#include <sleef.h>

typedef float32x4_t vf;
typedef uint32x4_t vm;
typedef float64x2_t vd;
#define VN 4

static inline vf vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, vf v) { vst1q_f32(p, v); }
/* A plain store: STNP's non-temporal hint gains little on common cores. */
static inline void vf_stream(float *p, vf v) { vst1q_f32(p, v); }
static inline void vf_stream_fence(void) {}
static inline vf vf_set1(float x) { return vdupq_n_f32(x); }
static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vf_sqrt(vf a) { return vsqrtq_f32(a); }
static inline vf vf_neg(vf a) { return vnegq_f32(a); }
static inline vf vf_abs(vf a) { return vabsq_f32(a); }
/* FMAXNM/FMINNM are IEEE maxNum/minNum: fmaxf and fminf exactly. */
static inline vf vf_max_c(vf a, vf c) { return vmaxnmq_f32(a, c); }
static inline vf vf_max_num(vf a, vf b) { return vmaxnmq_f32(a, b); }
static inline vf vf_min_num(vf a, vf b) { return vminnmq_f32(a, b); }
static inline vf vf_exp(vf a) { return Sleef_expf4_u10advsimd(a); }
static inline vf vf_log(vf a) { return Sleef_logf4_u10advsimd(a); }
static inline vf vf_log1p(vf a) { return Sleef_log1pf4_u10advsimd(a); }
static inline vf vf_gather(const float *base, const int32_t *idx) {
    float t[4] = {base[idx[0]], base[idx[1]], base[idx[2]], base[idx[3]]};
    return vld1q_f32(t);
}
static inline vm vm_lt(vf a, vf b) { return vcltq_f32(a, b); }
static inline vm vm_gt(vf a, vf b) { return vcgtq_f32(a, b); }
static inline vm vm_ne(vf a, vf b) { return vmvnq_u32(vceqq_f32(a, b)); }
static inline vm vm_eq(vf a, vf b) { return vceqq_f32(a, b); }
static inline int vm_none(vm m) { return vmaxvq_u32(m) == 0; }
static inline vm vm_not_le(vf a, vf b) { return vmvnq_u32(vcleq_f32(a, b)); }
static inline vm vm_not_ge(vf a, vf b) { return vmvnq_u32(vcgeq_f32(a, b)); }
/* Index of the lowest set lane, VN if none. */
static inline int vm_first(vm m) {
    uint32_t t[4];
    vst1q_u32(t, m);
    for (int i = 0; i < 4; i++)
        if (t[i]) return i;
    return VN;
}
static inline vm vm_and(vm a, vm b) { return vandq_u32(a, b); }
static inline vf vf_select(vm m, vf a, vf b) { return vbslq_f32(m, a, b); }
static inline vm vm_matched(const int32_t *m) { return vcgeq_s32(vld1q_s32(m), vdupq_n_s32(0)); }
static inline vd vd_zero(void) { return vdupq_n_f64(0.0); }
static inline vd vd_load(const double *p) { return vld1q_f64(p); }
static inline void vd_store(double *p, vd v) { vst1q_f64(p, v); }
static inline vd vd_add(vd a, vd b) { return vaddq_f64(a, b); }
static inline vd vd_sub(vd a, vd b) { return vsubq_f64(a, b); }
static inline vd vd_lo(vf v) { return vcvt_f64_f32(vget_low_f32(v)); }
static inline vd vd_hi(vf v) { return vcvt_high_f64_f32(v); }
static inline vf vf_from_vd(vd lo, vd hi) { return vcvt_high_f32_f64(vcvt_f32_f64(lo), hi); }
/* The 16-bit formats (half.h's rules): FCVT for float16 (part of the
 * aarch64 baseline; FPCR's defaults round to nearest even and keep
 * subnormals), shifts for bfloat16. */
static inline vf vf_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline void vf_store_f16(uint16_t *p, vf v) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
static inline vf vf_load_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
/* No gather on NEON: four loads, converted together. */
static inline vf vf_gather_f16(const uint16_t *base, const int32_t *idx) {
    uint16_t t[4] = {base[idx[0]], base[idx[1]], base[idx[2]], base[idx[3]]};
    return vf_load_f16(t);
}
static inline vf vf_gather_bf16(const uint16_t *base, const int32_t *idx) {
    uint16_t t[4] = {base[idx[0]], base[idx[1]], base[idx[2]], base[idx[3]]};
    return vf_load_bf16(t);
}
/* To nearest, ties to even, by adding 0x7fff plus the kept part's lowest
 * bit; a NaN keeps its top bits and is made quiet. */
static inline void vf_store_bf16(uint16_t *p, vf v) {
    uint32x4_t b = vreinterpretq_u32_f32(v), top = vshrq_n_u32(b, 16);
    uint32x4_t lsb = vandq_u32(top, vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(vaddq_u32(b, vdupq_n_u32(0x7fff)), lsb), 16);
    uint32x4_t nan = vmvnq_u32(vceqq_f32(v, v));
    r = vbslq_u32(nan, vorrq_u32(top, vdupq_n_u32(0x40)), r);
    vst1_u16(p, vmovn_u32(r));
}

#define YL_ISA_NAME neon
#define YL_ISA_ENUM YOLOXLOSS_ISA_NEON
#include "kernels_simd.inc"

#else
/* Another architecture: a table without kernels, which dispatch reads as
 * "this build has no neon" (kernels.h). */
const yl_kernels yl_kernels_neon = {.isa = YOLOXLOSS_ISA_NEON};
#endif
