/* The scalar conversions of src/half.h against the reference of
 * half_ref.h: every float16 and bfloat16 pattern to float32, and float32
 * to both formats at every rounding boundary (each pattern's value, the
 * midpoint to the next and the floats either side of it), at the edges
 * (subnormals, largest finite, overflow, infinities, NaNs) and on random
 * bit patterns; and the element access of a buffer of each dtype. The
 * SIMD conversions are checked against these in test_kernels.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "half.h"
#include "half_ref.h"
#include "test_util.h"

static float lib_to_f32(uint16_t h, href_fmt f) { return f == HREF_F16 ? yl_f16_to_f32(h) : yl_bf16_to_f32(h); }
static uint16_t lib_round(float x, href_fmt f) { return f == HREF_F16 ? yl_f32_to_f16(x) : yl_f32_to_bf16(x); }

/* x rounds to the reference's pattern, bit for bit. */
static void expect_round(float x, href_fmt f) {
    uint16_t got = lib_round(x, f), want = href_round(x, f);
    if (got != want)
        fail_msg("%s of float %08x (%.9g): library 0x%04x, reference 0x%04x", href_name(f), href_bits(x), (double)x,
                 got, want);
}

static void test_widen_every_pattern(void **state) {
    (void)state;
    for (int fi = 0; fi < 2; fi++) {
        const href_fmt f = (href_fmt)fi;
        for (uint32_t h = 0; h <= 0xffffu; h++) {
            float got = lib_to_f32((uint16_t)h, f);
            if (href_is_nan((uint16_t)h, f)) {
                /* NaN: sign and payload kept; float16 -> float32 also sets the
                 * quiet bit, bfloat16 is the bits shifted up unchanged */
                uint32_t b = href_bits(got);
                uint32_t want = f == HREF_BF16 ? h << 16
                                               : ((h & 0x8000u) << 16) | 0x7fc00000u | ((h & 0x3ffu) << 13);
                if (!isnan(got) || b != want)
                    fail_msg("%s NaN 0x%04x widened to %08x, expected %08x", href_name(f), h, b, want);
                continue;
            }
            double want = href_value((uint16_t)h, f);
            if ((double)got != want || !signbit(got) != !signbit(want))
                fail_msg("%s 0x%04x widened to %.9g, expected %.17g", href_name(f), h, (double)got, want);
            /* and back: every pattern is exactly a float, so it rounds to itself */
            assert_int_equal(lib_round(got, f), h);
        }
    }
}

/* Around each boundary between consecutive patterns: the midpoint (a tie,
 * exactly representable in float32 for both formats) and the floats just
 * below and above it, on both signs; and each pattern's own value. */
static void test_round_at_every_boundary(void **state) {
    (void)state;
    for (int fi = 0; fi < 2; fi++) {
        const href_fmt f = (href_fmt)fi;
        const uint16_t top = href_max_finite(f);
        for (uint32_t h = 0; h <= top; h++) {
            double lo = href_value((uint16_t)h, f);
            double hi = h < top ? href_value((uint16_t)(h + 1), f) : ldexp(1.0, 1 << (href_exp_bits(f) - 1));
            float mid = (float)((lo + hi) / 2); /* exact: one more bit than the format has */
            assert_true((double)mid == (lo + hi) / 2);
            const float xs[4] = {(float)lo, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
            for (int k = 0; k < 4; k++) {
                if (isinf(xs[k])) continue; /* bfloat16's top midpoint is past FLT_MAX */
                expect_round(xs[k], f);
                expect_round(-xs[k], f);
            }
        }
    }
}

static void test_round_edges_and_random_bits(void **state) {
    (void)state;
    for (int fi = 0; fi < 2; fi++) {
        const href_fmt f = (href_fmt)fi;
        for (size_t i = 0; i < HREF_NUM_EDGES; i++) expect_round(href_float(HREF_EDGE_BITS[i]), f);
        tu_rng r = {0x4a1f + (uint64_t)fi};
        for (int i = 0; i < 400000; i++) expect_round(href_float((uint32_t)tu_next(&r)), f);
    }
    /* a few values written out, as a reader would check them by hand */
    assert_int_equal(yl_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(yl_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(yl_f32_to_f16(65520.0f), 0x7c00);         /* the tie above the largest: infinity */
    assert_int_equal(yl_f32_to_f16(0x1p-24f), 0x0001);         /* the smallest subnormal */
    assert_int_equal(yl_f32_to_f16(0x1p-25f), 0x0000);         /* half of it: a tie, to even 0 */
    assert_int_equal(yl_f32_to_f16(0x1.8p-24f), 0x0002);       /* 1.5 x it: a tie, to even 2 */
    assert_int_equal(yl_f32_to_bf16(0x1.01p0f), 0x3f80);       /* 1 + 2^-8: a tie, to even */
    assert_int_equal(yl_f32_to_bf16(0x1.03p0f), 0x3f82);       /* 1 + 3 x 2^-8: a tie, to even */
    assert_int_equal(yl_f32_to_bf16(href_float(0x00008001u)), 0x0001); /* subnormals kept, not flushed */
    assert_int_equal(yl_f32_to_bf16(-0.0f), 0x8000);
    assert_true(isnan(yl_f16_to_f32(yl_f32_to_f16(NAN))));
    assert_true(isnan(yl_bf16_to_f32(yl_f32_to_bf16(-NAN))));
}

static void test_element_access(void **state) {
    (void)state;
    assert_int_equal(yl_dtype_size(YOLOXLOSS_DTYPE_FLOAT32), 4);
    assert_int_equal(yl_dtype_size(YOLOXLOSS_DTYPE_FLOAT16), 2);
    assert_int_equal(yl_dtype_size(YOLOXLOSS_DTYPE_BFLOAT16), 2);
    assert_string_equal(yl_dtype_name(YOLOXLOSS_DTYPE_BFLOAT16), "bfloat16");
    assert_string_equal(yl_dtype_name((yoloxloss_dtype)7), "unknown");
    float f32[3] = {1.0f, 2.0f, 3.0f};
    uint16_t h[3] = {0x3c00, 0x4000, 0x4200}, b[3] = {0x3f80, 0x4000, 0x4040}; /* 1, 2, 3 */
    void *bufs[3] = {f32, h, b};
    const yoloxloss_dtype dts[3] = {YOLOXLOSS_DTYPE_FLOAT32, YOLOXLOSS_DTYPE_FLOAT16, YOLOXLOSS_DTYPE_BFLOAT16};
    for (int d = 0; d < 3; d++) {
        assert_true(yl_elem_at(bufs[d], dts[d], 2) == (char *)bufs[d] + 2 * yl_dtype_size(dts[d]));
        assert_true(yl_elem_get(bufs[d], dts[d], 1) == 2.0f);
        yl_elem_set(bufs[d], dts[d], 0, 0.1f);
        assert_true(yl_elem_get(bufs[d], dts[d], 0) ==
                    (d == 0 ? 0.1f : (float)href_value(href_round(0.1f, d == 1 ? HREF_F16 : HREF_BF16),
                                                        d == 1 ? HREF_F16 : HREF_BF16)));
        /* add: the float32 sum, then rounded: 3 + 2^-12 is below float16's and
         * bfloat16's resolution at 3, so the element stays 3; float32 keeps it */
        yl_elem_add(bufs[d], dts[d], 2, 0x1p-12f);
        assert_true(yl_elem_get(bufs[d], dts[d], 2) == (d == 0 ? 3.0f + 0x1p-12f : 3.0f));
        yl_elem_add(bufs[d], dts[d], 2, 1.0f);
        assert_true(yl_elem_get(bufs[d], dts[d], 2) == (d == 0 ? 4.0f + 0x1p-12f : 4.0f));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widen_every_pattern),
        cmocka_unit_test(test_round_at_every_boundary),
        cmocka_unit_test(test_round_edges_and_random_bits),
        cmocka_unit_test(test_element_access),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
