/* Mixed precision through the public API: float16 and bfloat16 levels, alone
 * and mixed with float32 ones in one batch, fused and split, give the
 * assignment and losses of the float32 batch of the up-converted values and
 * that batch's gradients rounded into each level's dtype; loss scaling
 * through upstream.total, and what underflows without it; an unknown dtype
 * is refused naming the level; non-finite 16-bit inputs behave as
 * non-finite float32 ones, check_finite included. (Per instruction set, the
 * same is in test_kernels.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                             BF16 = YOLOXLOSS_DTYPE_BFLOAT16;

/* forward and backward of both the float32 scene and its typed copy on
 * fresh contexts of cfg; the same assignment and losses, the gradients
 * rounded. */
static void expect_typed_equals_float32(ts_scene *s, ts_typed_scene *t, const yoloxloss_config *cfg,
                                        const yoloxloss_upstream *up, int accumulate) {
    yoloxloss_context *c32 = ts_create_ok(cfg), *c16 = ts_create_ok(cfg);
    yoloxloss_losses l32, l16;
    assert_int_equal(yoloxloss_forward(c32, &s->batch, &l32), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(c16, &t->batch, &l16), YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&l16, &l32));
    size_t n = (size_t)s->B * (size_t)yoloxloss_num_anchors(c32);
    int32_t *m32 = malloc(n * sizeof *m32), *m16 = malloc(n * sizeof *m16);
    const size_t nk = (size_t)s->total_gt + 1;
    int32_t *k32 = malloc(nk * sizeof *k32), *k16 = malloc(nk * sizeof *k16);
    assert_true(m32 && m16 && k32 && k16);
    assert_int_equal(yoloxloss_get_assignment(c32, m32, NULL, k32), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_get_assignment(c16, m16, NULL, k16), YOLOXLOSS_OK);
    assert_memory_equal(m32, m16, n * sizeof *m32);
    assert_memory_equal(k32, k16, (size_t)s->total_gt * sizeof *k32);
    if (accumulate) ts_typed_fill_grads(t, s, 77);
    assert_int_equal(yoloxloss_backward(c32, s->g, up, accumulate), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(c16, t->g, up, accumulate), YOLOXLOSS_OK);
    ts_typed_expect_rounded(t, s, accumulate ? "accumulate" : "overwrite");
    free(m32);
    free(m16);
    free(k32);
    free(k16);
    yoloxloss_destroy(c32);
    yoloxloss_destroy(c16);
}

static void test_each_dtype_and_mixed_levels(void **state) {
    (void)state;
    const yoloxloss_dtype mixes[5][2] = {{F16, F16}, {BF16, BF16}, {F16, BF16}, {BF16, F32}, {F32, F16}};
    for (int mix = 0; mix < 5; mix++)
        for (int split = 0; split <= 1; split++)
            for (int accumulate = 0; accumulate <= 1; accumulate++) {
                ts_scene s;
                ts_scene_make_small(&s, 3, 40 + (uint64_t)mix);
                ts_typed_scene t;
                ts_typed_make(&t, &s, mixes[mix], split);
                yoloxloss_config cfg;
                ts_config(&s, &cfg, 2);
                cfg.assigner = mix % 2 ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
                cfg.iou_loss = split ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
                const yoloxloss_upstream up = {1.0f, 0.5f, 2.0f, -1.0f, 0.25f};
                expect_typed_equals_float32(&s, &t, &cfg, accumulate ? &up : NULL, accumulate);
                ts_typed_free(&t);
                ts_scene_free(&s);
            }
}

/* Gradients scale with upstream.total, so 65536 writes round(65536 x g).
 * Without it, float16 loses the background anchors' objectness gradients
 * of low logits (sigmoid(-20) / N is below 2^-25, under half float16's
 * smallest subnormal): 0 where float32 has a value. bfloat16, with
 * float32's range, keeps them. */
static void test_loss_scaling_and_underflow(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 4, 3, 16, 5, 91);
    for (int l = 0; l < s.L; l++) /* confident background: obj logits near -20 */
        for (int b = 0; b < s.B; b++)
            for (int i = 0; i < s.lv[l].height; i++)
                for (int j = 0; j < s.lv[l].width; j++) *ts_at(&s, l, b, 4, i, j) = -20.0f + 0.01f * (float)j;
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    const yoloxloss_upstream one = {1.0f, 0, 0, 0, 0}, scaled = {65536.0f, 0, 0, 0, 0};
    for (int d = 0; d < 2; d++) {
        const yoloxloss_dtype dts[3] = {d ? BF16 : F16, d ? BF16 : F16, d ? BF16 : F16};
        ts_typed_scene t;
        ts_typed_make(&t, &s, dts, 0);
        expect_typed_equals_float32(&s, &t, &cfg, &scaled, 0);
        /* 65536 x the unscaled float32 gradient is the scaled float32 one
         * (a power of two, no float32 subnormals here) */
        float *g_scaled[TS_MAX_LEVELS];
        ts_grads_copy(&s, g_scaled);
        expect_typed_equals_float32(&s, &t, &cfg, &one, 0);
        long lost = 0, kept = 0;
        for (int l = 0; l < s.L; l++)
            for (size_t i = 0; i < s.elems[l]; i++) {
                const float g = s.grad[l][i];
                if (fabsf(g) >= 0x1p-126f || g == 0.0f) assert_true(g_scaled[l][i] == 65536.0f * g);
                uint32_t bits = ts_typed_grad_bits(&t, &s, l, i);
                if (g != 0.0f && fabsf(g) < 0x1p-25f) { /* float32 has it; float16 must round it to 0 */
                    if (d == 0) assert_true((bits & 0x7fffu) == 0);
                    if (d == 0) lost++;
                    if (d == 1) assert_true((bits & 0x7fffu) != 0);
                    if (d == 1) kept++;
                }
            }
        if (d == 0) assert_true(lost > 100); /* the scene has such gradients, and float16 loses them */
        if (d == 1) assert_true(kept > 100);
        ts_grads_release(&s, g_scaled);
        ts_typed_free(&t);
    }
    ts_scene_free(&s);
}

static void test_unknown_dtype_refused(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 2, 5);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    const int bad[3] = {3, -1, 1000};
    for (int k = 0; k < 3; k++) {
        s.lv[1].dtype = (yoloxloss_dtype)bad[k];
        char value[32];
        snprintf(value, sizeof value, "dtype is %d", bad[k]);
        const char *needles[3] = {"level 1", value, "YOLOXLOSS_DTYPE_BFLOAT16"};
        ts_expect_refused_n(ctx, &s.batch, YOLOXLOSS_ERR_INVALID_ARGUMENT, needles, 3, "unknown dtype");
    }
    s.lv[1].dtype = F32;
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* A NaN or infinity in a float16 or bfloat16 output: check_finite names it
 * as it names a float32 one (with the float32 value and the dtype); without
 * check_finite the step runs and its results are those of the float32
 * batch holding the same non-finite values. */
static void test_nonfinite_16_bit_inputs(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++) {
        ts_scene s;
        ts_scene_make_small(&s, 2, 6);
        const yoloxloss_dtype dts[2] = {d ? BF16 : F16, d ? BF16 : F16};
        ts_typed_scene t;
        ts_typed_make(&t, &s, dts, 0);
        /* image 1, level 0: class logit 1 (channel 6) at row 2, col 3 */
        const size_t at = ts_index(&s, 0, 1, 6, 2, 3);
        const uint16_t inf = d ? 0x7f80 : 0x7c00, nan = d ? 0xffc1 : 0xfe01;
        const char *name = d ? "bfloat16" : "float16";
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1);
        cfg.check_finite = 1;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        for (int k = 0; k < 2; k++) {
            ((uint16_t *)t.in[0][0])[at] = k ? nan : inf;
            char value[48];
            snprintf(value, sizeof value, "value is %s in %s", k ? "-nan" : "inf", name);
            const char *needles[3] = {"level 0, image 1, channel 6 (cls logit), position (row 2, col 3)", value, ""};
            ts_expect_refused_n(ctx, &t.batch, YOLOXLOSS_ERR_NONFINITE_INPUT, needles, 2, "non-finite 16-bit input");
        }
        yoloxloss_destroy(ctx);

        /* check_finite off: NaN in a class logit of an anchor, as in float32 */
        cfg.check_finite = 0;
        s.out[0][at] = NAN;
        yoloxloss_context *c32 = ts_create_ok(&cfg), *c16 = ts_create_ok(&cfg);
        yoloxloss_losses l32, l16;
        assert_int_equal(yoloxloss_forward(c32, &s.batch, &l32), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(c16, &t.batch, &l16), YOLOXLOSS_OK);
        assert_int_equal(l16.num_fg, l32.num_fg);
        assert_true(isnan(l16.total) == isnan(l32.total));
        TU_ASSERT_BITS_EQ(l16.obj, l32.obj);
        yoloxloss_destroy(c32);
        yoloxloss_destroy(c16);
        ts_typed_free(&t);
        ts_scene_free(&s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_dtype_and_mixed_levels),
        cmocka_unit_test(test_loss_scaling_and_underflow),
        cmocka_unit_test(test_unknown_dtype_refused),
        cmocka_unit_test(test_nonfinite_16_bit_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
