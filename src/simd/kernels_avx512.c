/* The kernels for x86-64 with AVX-512 F, BW, DQ and VL: sixteen float
 * lanes, masks in k registers. Compiled with those flags and -mfma;
 * dispatch.c calls them only on a CPU that has them all.
 *
 * kernels_avx512_bf16.c compiles this file once more with YL_AVX512_BF16
 * defined (and -mavx512bf16): the table yl_kernels_avx512_bf16, whose
 * bfloat16 rounding uses that extension's instruction. */
#include "kernels.h"

#if defined(__x86_64__) && !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__FMA__))
#error "on x86-64, kernels_avx512.c is compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma (CMakeLists.txt)"
#endif
#if defined(__x86_64__) && defined(YL_AVX512_BF16) && !defined(__AVX512BF16__)
#error "on x86-64, kernels_avx512_bf16.c is compiled with -mavx512bf16 as well (CMakeLists.txt)"
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
static inline vm vm_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
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
/* The 16-bit formats (half.h's rules): AVX-512's own float16 conversions,
 * shifts for bfloat16. */
static inline vf vf_load_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
static inline void vf_store_f16(uint16_t *p, vf v) {
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
static inline vf vf_load_bf16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
/* base[idx[i]] of 16-bit elements, every idx[i] >= 1, each in the high half
 * of a 32-bit lane: a 32-bit gather of the element and the one before it,
 * so it reads nothing outside [base, base + max idx]. */
static inline __m512i vi_gather16_high(const uint16_t *base, const int32_t *idx) {
    __m512i i = _mm512_sub_epi32(_mm512_loadu_si512((const void *)idx), _mm512_set1_epi32(1));
    return _mm512_i32gather_epi32(i, (const void *)base, 2);
}
static inline vf vf_gather_f16(const uint16_t *base, const int32_t *idx) {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(vi_gather16_high(base, idx), 16)));
}
static inline vf vf_gather_bf16(const uint16_t *base, const int32_t *idx) {
    return _mm512_castsi512_ps(_mm512_and_si512(vi_gather16_high(base, idx), _mm512_set1_epi32((int)0xffff0000u)));
}
/* To nearest, ties to even, by adding 0x7fff plus the kept part's lowest
 * bit; a NaN keeps its top bits and is made quiet. */
static inline void store_bf16_by_bits(uint16_t *p, vf v) {
    __m512i b = _mm512_castps_si512(v), top = _mm512_srli_epi32(b, 16);
    __m512i lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb), 16);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), top, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtepi32_epi16(r));
}
#if defined(YL_AVX512_BF16)
/* vcvtneps2bf16 rounds as half.h does, NaN included, but reads subnormal
 * inputs as zero: a vector holding one (a gradient below 2^-126, rare)
 * takes the bit arithmetic instead, so both tables give the same bits. */
static inline void vf_store_bf16(uint16_t *p, vf v) {
    __m512i mag = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff));
    /* mag - 1 < 0x7fffff: a non-zero magnitude below the smallest normal */
    if (_mm512_cmplt_epu32_mask(_mm512_sub_epi32(mag, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fffff))) {
        store_bf16_by_bits(p, v);
        return;
    }
    _mm256_storeu_si256((__m256i *)(void *)p, (__m256i)_mm512_cvtneps_pbh(v));
}
#define YL_ISA_NAME avx512_bf16
#else
static inline void vf_store_bf16(uint16_t *p, vf v) { store_bf16_by_bits(p, v); }
#define YL_ISA_NAME avx512
#endif

#define YL_ISA_ENUM YOLOXLOSS_ISA_AVX512
#include "kernels_simd.inc"

#else
/* Another architecture: a table without kernels, which dispatch reads as
 * "this build has no avx512" (kernels.h). */
#if defined(YL_AVX512_BF16)
const yl_kernels yl_kernels_avx512_bf16 = {.isa = YOLOXLOSS_ISA_AVX512};
#else
const yl_kernels yl_kernels_avx512 = {.isa = YOLOXLOSS_ISA_AVX512};
#endif
#endif
