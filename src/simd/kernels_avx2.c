/* The kernels for x86-64 with AVX2, FMA and F16C: eight float lanes.
 * Compiled with -mavx2 -mfma -mf16c; dispatch.c calls them only on a CPU
 * that has all three (every CPU with AVX2 has F16C, which came first). */
#include "kernels.h"

#if defined(__x86_64__) && !(defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
#error "on x86-64, kernels_avx2.c is compiled with -mavx2 -mfma -mf16c (CMakeLists.txt)"
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <sleef.h>

typedef __m256 vf;
typedef __m256 vm; /* all-ones or all-zeros lanes */
typedef __m256d vd;
#define VN 8

static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline void vf_stream(float *p, vf v) { _mm256_stream_ps(p, v); }
static inline void vf_stream_fence(void) { _mm_sfence(); }
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf vf_neg(vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* max(a, c) for a constant c: a NaN a gives c, as fmaxf does. */
static inline vf vf_max_c(vf a, vf c) { return _mm256_max_ps(a, c); }
/* fmaxf and fminf lane by lane: a NaN operand yields the other one. */
static inline vf vf_max_num(vf a, vf b) {
    return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}
static inline vf vf_min_num(vf a, vf b) {
    return _mm256_blendv_ps(_mm256_min_ps(a, b), a, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}
static inline vf vf_exp(vf a) { return Sleef_expf8_u10avx2(a); }
static inline vf vf_log(vf a) { return Sleef_logf8_u10avx2(a); }
static inline vf vf_log1p(vf a) { return Sleef_log1pf8_u10avx2(a); }
static inline vf vf_gather(const float *base, const int32_t *idx) {
    return _mm256_i32gather_ps(base, _mm256_loadu_si256((const __m256i *)(const void *)idx), 4);
}
static inline vm vm_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline vm vm_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline vm vm_ne(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
static inline vm vm_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline int vm_none(vm m) { return _mm256_movemask_ps(m) == 0; }
static inline vm vm_not_le(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NLE_UQ); }
static inline vm vm_not_ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NGE_UQ); }
/* Index of the lowest set lane, VN if none. */
static inline int vm_first(vm m) {
    unsigned bits = (unsigned)_mm256_movemask_ps(m);
    return bits ? __builtin_ctz(bits) : VN;
}
static inline vm vm_and(vm a, vm b) { return _mm256_and_ps(a, b); }
static inline vf vf_select(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
static inline vm vm_matched(const int32_t *m) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)m);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(v, _mm256_set1_epi32(-1)));
}
static inline vd vd_zero(void) { return _mm256_setzero_pd(); }
static inline vd vd_load(const double *p) { return _mm256_loadu_pd(p); }
static inline void vd_store(double *p, vd v) { _mm256_storeu_pd(p, v); }
static inline vd vd_add(vd a, vd b) { return _mm256_add_pd(a, b); }
static inline vd vd_sub(vd a, vd b) { return _mm256_sub_pd(a, b); }
static inline vd vd_lo(vf v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
static inline vd vd_hi(vf v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
static inline vf vf_from_vd(vd lo, vd hi) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}
/* The 16-bit formats (half.h's rules): F16C for float16, shifts for bfloat16. */
static inline vf vf_load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
static inline void vf_store_f16(uint16_t *p, vf v) {
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
static inline vf vf_load_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
/* base[idx[i]] of 16-bit elements, every idx[i] >= 1, each in the high half
 * of a 32-bit lane: a 32-bit gather of the element and the one before it,
 * so it reads nothing outside [base, base + max idx]. */
static inline __m256i vi_gather16_high(const uint16_t *base, const int32_t *idx) {
    __m256i i = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)idx), _mm256_set1_epi32(1));
    return _mm256_i32gather_epi32((const int *)(const void *)base, i, 2);
}
static inline vf vf_gather_f16(const uint16_t *base, const int32_t *idx) {
    __m256i w = _mm256_srli_epi32(vi_gather16_high(base, idx), 16);
    /* 8 values of 16 bits in the low halves: packed (per 128-bit lane),
     * then the two lanes' low quadwords side by side */
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(w, w), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
}
static inline vf vf_gather_bf16(const uint16_t *base, const int32_t *idx) {
    return _mm256_castsi256_ps(_mm256_and_si256(vi_gather16_high(base, idx), _mm256_set1_epi32((int)0xffff0000u)));
}
/* To nearest, ties to even, by adding 0x7fff plus the kept part's lowest
 * bit; a NaN keeps its top bits and is made quiet. */
static inline void vf_store_bf16(uint16_t *p, vf v) {
    __m256i b = _mm256_castps_si256(v), top = _mm256_srli_epi32(b, 16);
    __m256i lsb = _mm256_and_si256(top, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i nan = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128((__m128i *)(void *)p, packed);
}

#define YL_ISA_NAME avx2
#define YL_ISA_ENUM YOLOXLOSS_ISA_AVX2
#include "kernels_simd.inc"

#else
/* Another architecture: a table without kernels, which dispatch reads as
 * "this build has no avx2" (kernels.h). */
const yl_kernels yl_kernels_avx2 = {.isa = YOLOXLOSS_ISA_AVX2};
#endif
