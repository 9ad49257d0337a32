/* The kernels for x86-64 with AVX-512 F, BW, DQ and VL: sixteen float
 * lanes, masks in k registers. Compiled with those flags and -mfma;
 * dispatch.c calls them only on a CPU that has them all. */
#include "kernels.h"

#if defined(__x86_64__) && !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__FMA__))
#error "on x86-64, kernels_avx512.c is compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma (CMakeLists.txt)"
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__FMA__)
#include <immintrin.h>
#include <sleef.h>

typedef __m512 vf;
typedef __mmask16 vm;
typedef __m512d vd;
#define VN 16

static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline void vf_stream(float *p, vf v) { _mm512_stream_ps(p, v); }
static inline void vf_stream_fence(void) { _mm_sfence(); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline vf vf_neg(vf a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
static inline vf vf_abs(vf a) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), a); }
/* max(a, c) for a constant c: a NaN a gives c, as fmaxf does. */
static inline vf vf_max_c(vf a, vf c) { return _mm512_max_ps(a, c); }
/* fmaxf and fminf lane by lane: a NaN operand yields the other one. */
static inline vf vf_max_num(vf a, vf b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), _mm512_max_ps(a, b), a);
}
static inline vf vf_min_num(vf a, vf b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), _mm512_min_ps(a, b), a);
}
static inline vf vf_exp(vf a) { return Sleef_expf16_u10avx512f(a); }
static inline vf vf_log(vf a) { return Sleef_logf16_u10avx512f(a); }
static inline vf vf_log1p(vf a) { return Sleef_log1pf16_u10avx512f(a); }
static inline vf vf_gather(const float *base, const int32_t *idx) {
    return _mm512_i32gather_ps(_mm512_loadu_si512((const void *)idx), base, 4);
}
static inline vm vm_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline vm vm_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline vm vm_ne(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
static inline int vm_none(vm m) { return m == 0; }
static inline vm vm_not_le(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLE_UQ); }
static inline vm vm_not_ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NGE_UQ); }
/* Index of the lowest set lane, VN if none. */
static inline int vm_first(vm m) { return m ? __builtin_ctz((unsigned)m) : VN; }
static inline vm vm_and(vm a, vm b) { return (vm)(a & b); }
static inline vf vf_select(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }
static inline vm vm_matched(const int32_t *m) {
    return _mm512_cmpgt_epi32_mask(_mm512_loadu_si512((const void *)m), _mm512_set1_epi32(-1));
}
static inline vd vd_zero(void) { return _mm512_setzero_pd(); }
static inline vd vd_load(const double *p) { return _mm512_loadu_pd(p); }
static inline void vd_store(double *p, vd v) { _mm512_storeu_pd(p, v); }
static inline vd vd_add(vd a, vd b) { return _mm512_add_pd(a, b); }
static inline vd vd_sub(vd a, vd b) { return _mm512_sub_pd(a, b); }
static inline vd vd_lo(vf v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline vd vd_hi(vf v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
static inline vf vf_from_vd(vd lo, vd hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}

#define YL_ISA_NAME avx512
#define YL_ISA_ENUM YOLOXLOSS_ISA_AVX512
#include "kernels_simd.inc"

#else
/* Another architecture: a table without kernels, which dispatch reads as
 * "this build has no avx512" (kernels.h). */
const yl_kernels yl_kernels_avx512 = {.isa = YOLOXLOSS_ISA_AVX512};
#endif
