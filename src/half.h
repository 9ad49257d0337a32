/* The element types of head outputs and gradients (yoloxloss_dtype): the
 * 16-bit formats' exact conversion to float32, their rounding from float32,
 * and access to element i of a buffer of any dtype.
 *
 * Plain integer arithmetic on the bits (no compiler half type, no libgcc
 * helper), so the same code runs everywhere. The SIMD kernels convert with
 * the hardware (F16C, AVX-512, NEON's FCVT, AVX512_BF16) and give the same
 * bits; tests/unit/test_half.c checks these functions against a reference
 * of the rounding written from the formats' definitions, and test_kernels.c
 * each instruction set's conversions against these.
 *
 * Rules, the hardware's and PyTorch's `Tensor.to()` alike:
 *   - float16 and bfloat16 to float32 is exact, subnormals included;
 *   - float32 to float16 or bfloat16 rounds to nearest, ties to even;
 *     subnormal results are kept (no flush to zero), and a value that
 *     rounds past the largest finite one becomes infinity;
 *   - a NaN stays NaN: quiet, with its sign and the top bits of its payload
 *     (the hardware's rule; PyTorch writes one canonical NaN instead).
 *     float16 to float32 quiets a signalling NaN as F16C and FCVT do;
 *     bfloat16 to float32 is a plain shift and keeps it as it is.
 */
#ifndef YL_HALF_H
#define YL_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "yoloxloss.h"

static inline uint32_t yl_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float yl_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float16 (IEEE binary16: 1 sign, 5 exponent, 10 fraction bits) -> float32, exactly. */
static inline float yl_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) /* infinity, or NaN made quiet */
        return yl_f32_from_bits(sign | 0x7f800000u | (mant ? 0x00400000u | (mant << 13) : 0u));
    if (exp == 0) {
        if (mant == 0) return yl_f32_from_bits(sign);
        /* subnormal: normalise, float32 has the exponent range for it */
        exp = 1;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            exp--;
        }
        mant &= 0x3ffu;
    }
    return yl_f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* float32 -> float16, to nearest, ties to even. */
static inline uint16_t yl_f32_to_f16(float f) {
    const uint32_t x = yl_f32_bits(f), a = x & 0x7fffffffu;
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to infinity */
    if (a >= 0x38800000u) {                                   /* >= 2^-14: a normal float16 */
        /* round at bit 13; a carry into the exponent is the right result */
        uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13)); /* exponent bias 127 -> 15 */
    }
    if (a <= 0x33000000u) return sign; /* <= 2^-25, half the smallest subnormal: 0 (a tie goes to even 0) */
    /* A float16 subnormal: the value in units of 2^-24, rounded. a is a
     * normal float32 here, exponent e in [103, 112]. */
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q); /* q = 0x400 is the smallest normal, correctly encoded */
}

/* bfloat16 (the top half of a float32) -> float32, exactly. */
static inline float yl_bf16_to_f32(uint16_t h) { return yl_f32_from_bits((uint32_t)h << 16); }

/* float32 -> bfloat16, to nearest, ties to even. */
static inline uint16_t yl_f32_to_bf16(float f) {
    const uint32_t x = yl_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* NaN, made quiet */
    /* cannot wrap: only NaNs lie above 0xffff8000 */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Bytes of one element of dt, a valid yoloxloss_dtype. */
static inline size_t yl_dtype_size(yoloxloss_dtype dt) {
    return dt == YOLOXLOSS_DTYPE_FLOAT32 ? sizeof(float) : sizeof(uint16_t);
}

/* The lower-case name of dt ("float32", "float16", "bfloat16"). */
static inline const char *yl_dtype_name(yoloxloss_dtype dt) {
    switch (dt) {
    case YOLOXLOSS_DTYPE_FLOAT32: return "float32";
    case YOLOXLOSS_DTYPE_FLOAT16: return "float16";
    case YOLOXLOSS_DTYPE_BFLOAT16: return "bfloat16";
    }
    return "unknown";
}

/* Address of element i of a buffer of dt. */
static inline const void *yl_elem_at(const void *base, yoloxloss_dtype dt, size_t i) {
    return (const char *)base + i * yl_dtype_size(dt);
}

static inline void *yl_elem_at_mut(void *base, yoloxloss_dtype dt, size_t i) {
    return (char *)base + i * yl_dtype_size(dt);
}

/* Element i of a buffer of dt, as float32 (exact). */
static inline float yl_elem_get(const void *base, yoloxloss_dtype dt, size_t i) {
    switch (dt) {
    case YOLOXLOSS_DTYPE_FLOAT16: return yl_f16_to_f32(((const uint16_t *)base)[i]);
    case YOLOXLOSS_DTYPE_BFLOAT16: return yl_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return ((const float *)base)[i];
    }
}

/* Element i of a buffer of dt = v, rounded to dt. */
static inline void yl_elem_set(void *base, yoloxloss_dtype dt, size_t i, float v) {
    switch (dt) {
    case YOLOXLOSS_DTYPE_FLOAT16: ((uint16_t *)base)[i] = yl_f32_to_f16(v); break;
    case YOLOXLOSS_DTYPE_BFLOAT16: ((uint16_t *)base)[i] = yl_f32_to_bf16(v); break;
    default: ((float *)base)[i] = v; break;
    }
}

/* Element i of a buffer of dt += v: the sum taken in float32, then rounded.
 * A zero v (+0 or -0) writes nothing, so the element keeps its bits (a -0
 * or a 16-bit NaN's payload would not survive old + 0 and its rounding):
 * accumulate mode's promise (yoloxloss_backward). */
static inline void yl_elem_add(void *base, yoloxloss_dtype dt, size_t i, float v) {
    if (v != 0.0f) yl_elem_set(base, dt, i, yl_elem_get(base, dt, i) + v);
}

#endif
