/* A reference of the 16-bit float formats for the tests, written from
 * their definitions (sign, exponent, fraction; IEEE 754 rounding) in
 * double precision, never from the library's bit tricks (src/half.h):
 *
 *   href_value(h, fmt)    the value a 16-bit pattern stands for;
 *   href_round(x, fmt)    the pattern nearest to float x, ties to the even
 *                         pattern, past the largest finite: infinity
 *                         (by double arithmetic and nearbyint);
 *   href_nan_of(x, fmt)   the NaN a NaN float x must give (the hardware's
 *                         rule the library documents: sign and top payload
 *                         bits kept, made quiet).
 *
 * fmt is HREF_F16 (binary16: 5 exponent, 10 fraction bits) or HREF_BF16
 * (8 exponent, 7 fraction bits). Also: the edge values the tests feed to
 * every conversion. */
#ifndef YL_HALF_REF_H
#define YL_HALF_REF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef enum { HREF_F16 = 0, HREF_BF16 = 1 } href_fmt;

static inline int href_frac_bits(href_fmt f) { return f == HREF_F16 ? 10 : 7; }
static inline int href_exp_bits(href_fmt f) { return f == HREF_F16 ? 5 : 8; }
static inline const char *href_name(href_fmt f) { return f == HREF_F16 ? "float16" : "bfloat16"; }

static inline uint32_t href_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float href_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The largest finite positive pattern: exponent all ones but one, fraction all ones. */
static inline uint16_t href_max_finite(href_fmt f) {
    return (uint16_t)((((1u << href_exp_bits(f)) - 2u) << href_frac_bits(f)) | ((1u << href_frac_bits(f)) - 1u));
}

static inline uint16_t href_inf(href_fmt f) {
    return (uint16_t)(((1u << href_exp_bits(f)) - 1u) << href_frac_bits(f));
}

/* Is pattern h a NaN (exponent all ones, fraction not zero)? */
static inline int href_is_nan(uint16_t h, href_fmt f) {
    const int fb = href_frac_bits(f);
    return (((unsigned)h & 0x7fffu) >> fb) == (1u << href_exp_bits(f)) - 1u && (h & ((1u << fb) - 1u)) != 0;
}

/* The value of pattern h: (-1)^s 2^(e - bias) (1 + frac / 2^p), or for
 * e = 0, (-1)^s 2^(1 - bias) frac / 2^p; infinity and NaN for e all ones. */
static inline double href_value(uint16_t h, href_fmt f) {
    const int fb = href_frac_bits(f), eb = href_exp_bits(f), bias = (1 << (eb - 1)) - 1;
    const unsigned e = ((unsigned)h & 0x7fffu) >> fb, frac = h & ((1u << fb) - 1u);
    const double sign = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == (1u << eb) - 1u) return frac ? NAN : sign * INFINITY;
    if (e == 0) return sign * ldexp((double)frac, 1 - bias - fb);
    return sign * ldexp((double)frac + ldexp(1.0, fb), (int)e - bias - fb);
}

/* The NaN pattern a NaN float x rounds to. */
static inline uint16_t href_nan_of(float x, href_fmt f) {
    const uint32_t b = href_bits(x);
    const int fb = href_frac_bits(f);
    const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    const uint16_t quiet = (uint16_t)(1u << (fb - 1));
    const uint16_t payload = (uint16_t)((b & 0x7fffffu) >> (23 - fb)); /* the top fb fraction bits */
    return (uint16_t)(sign | href_inf(f) | quiet | payload);
}

/* The pattern of a representable non-negative finite value v. */
static inline uint16_t href_encode(double v, href_fmt f) {
    const int fb = href_frac_bits(f), bias = (1 << (href_exp_bits(f) - 1)) - 1;
    if (v < ldexp(1.0, 1 - bias)) return (uint16_t)(v / ldexp(1.0, 1 - bias - fb)); /* subnormal or 0 */
    int e;
    frexp(v, &e); /* v = m 2^e, m in [0.5, 1): the leading bit has weight 2^(e - 1) */
    const double frac = v / ldexp(1.0, e - 1 - fb) - ldexp(1.0, fb);
    return (uint16_t)(((unsigned)(e - 1 + bias) << fb) | (unsigned)frac);
}

/* The pattern nearest to x, ties to the even one: |x| divided by the
 * format's spacing at |x| (a power of two, so exactly), rounded to an
 * integer by nearbyint in the default mode (to nearest, ties to even),
 * multiplied back; past the largest finite value, infinity. */
static inline uint16_t href_round(float x, href_fmt f) {
    if (isnan(x)) return href_nan_of(x, f);
    const uint16_t sign = signbit(x) ? 0x8000u : 0u;
    if (isinf(x)) return (uint16_t)(sign | href_inf(f));
    const int fb = href_frac_bits(f), emin = 2 - (1 << (href_exp_bits(f) - 1)); /* 1 - bias */
    const double a = fabs((double)x);
    int e = emin + 1;
    if (a > 0) frexp(a, &e);
    const double spacing = ldexp(1.0, (e - 1 > emin ? e - 1 : emin) - fb);
    const double r = nearbyint(a / spacing) * spacing;
    if (r > href_value(href_max_finite(f), f)) return (uint16_t)(sign | href_inf(f));
    return (uint16_t)(sign | href_encode(r, f));
}

/* Float values at the edges of both formats: zeros, float32 subnormals
 * (which DAZ-style hardware would read as 0), each format's smallest
 * subnormal, halfway points below it, ties that round to even, the largest
 * finite values and what rounds past them, infinities and NaNs (quiet,
 * signalling, negative, with payloads). */
static const uint32_t HREF_EDGE_BITS[] = {
    0x00000000u, 0x80000000u,                          /* +-0 */
    0x00000001u, 0x80000001u, 0x00007fffu, 0x00008000u, /* float32 subnormals: below bfloat16's half ulp, */
    0x00008001u, 0x00018000u, 0x80018000u, 0x00028000u, /* above it, ties to even (odd, then even kept part) */
    0x007fffffu, 0x807fffffu, 0x007f8000u, 0x007f7fffu, /* the largest float32 subnormals; rounds up to 2^-126 */
    0x00800000u, 0x80800000u,                          /* the smallest normal float32 */
    0x33000000u, 0x33000001u, 0xb3000000u, 0x32ffffffu, /* float16: 2^-25 (tie to 0), just above and below */
    0x33800000u, 0x33c00000u, 0x34200000u, 0x34400000u, /* 2^-24 (smallest subnormal), 1.5 and 2.5 x it (ties), 3x */
    0x387fc000u, 0x387fe000u, 0x387ff000u, 0x38800000u, /* the largest float16 subnormal, a tie to 2^-14, 2^-14 */
    0x3f800000u, 0x3f801000u, 0x3f803000u, 0x3f801001u, /* 1, 1 + 2^-11 and 1 + 3 x 2^-11 (ties), just above */
    0x3f808000u, 0x3f818000u, 0x3f808001u, 0xbf818000u, /* bfloat16 ties at 1 + 2^-8, 1 + 3 x 2^-8, just above */
    0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u, /* 65504 (largest float16), below / at / above 65520 */
    0x47800000u, 0xc77ff000u, 0x7f7f0000u, 0x7f7f7fffu, /* 65536; -65520; the largest bfloat16; just below its tie */
    0x7f7f8000u, 0x7f7fffffu, 0xff7fffffu,             /* the bfloat16 overflow tie, FLT_MAX, -FLT_MAX */
    0x7f800000u, 0xff800000u,                          /* +-inf */
    0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, /* quiet and signalling NaNs */
    0x7fa55555u, 0x7fffffffu, 0x7f802000u, 0x7fbfe000u, /* NaN payloads in and below the kept bits */
    0x40490fdbu, 0xc2c80000u, 0x3dcccccdu, 0x4b000001u, /* pi, -100, 0.1, 2^23 + 1 */
};
#define HREF_NUM_EDGES (sizeof HREF_EDGE_BITS / sizeof HREF_EDGE_BITS[0])

#endif
