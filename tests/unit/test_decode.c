/* yoloxloss_decode through the public API: every box and score against the
 * reference of decode_ref.h (bitwise in float32, and close to the double
 * values) for float32, float16, bfloat16 and mixed levels, fused and split,
 * both arithmetics; either output alone; every refusal with its status and
 * message (those of forward for the same levels) and nothing written; and
 * a held forward that decode leaves as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "decode_ref.h"

static const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                             BF16 = YOLOXLOSS_DTYPE_BFLOAT16;

static size_t anchors_of(const ts_scene *s) {
    size_t A = 0;
    for (int l = 0; l < s->L; l++) A += ts_hw(s, l);
    return A;
}

/* boxes [B, A, 4] and scores [B, A, C] of a scene against the reference. */
static void expect_reference(const ts_scene *s, int mmdet, const float *boxes, const float *scores) {
    const size_t A = anchors_of(s);
    for (int b = 0; b < s->B; b++)
        for (size_t a = 0; a < A; a++) {
            int l, i, j;
            ts_anchor_pos(s, (int)a, &l, &i, &j);
            const size_t at = (size_t)b * A + a;
            if (boxes) {
                float want[4];
                double exact[4];
                dr_box(s, mmdet, b, l, i, j, want);
                dr_box_d(s, mmdet, b, l, i, j, exact);
                for (int k = 0; k < 4; k++) {
                    TU_ASSERT_BITS_EQ(boxes[4 * at + (size_t)k], want[k]);
                    TU_ASSERT_NEAR_CTX(boxes[4 * at + (size_t)k], exact[k], 4e-7 * fabs(exact[k]) + 1e-6,
                                       "image %d anchor %zu coordinate %d", b, a, k);
                }
            }
            if (scores)
                for (int k = 0; k < s->C; k++) {
                    const float got = scores[at * (size_t)s->C + (size_t)k];
                    TU_ASSERT_BITS_EQ(got, dr_score(s, b, l, i, j, k));
                    const double exact = tu_sigmoid(*ts_at(s, l, b, 4, i, j)) * tu_sigmoid(*ts_at(s, l, b, 5 + k, i, j));
                    TU_ASSERT_NEAR_CTX(got, exact, 5e-7 * exact + 1e-38, "image %d anchor %zu class %d", b, a, k);
                }
        }
}

static void test_decode_values(void **state) {
    (void)state;
    tu_rng r = {201};
    const yoloxloss_dtype mixes[5][3] = {{F32, F32, F32}, {F16, F16, F16}, {BF16, BF16, BF16}, {F16, BF16, F32},
                                         {BF16, F32, F16}};
    for (int rep = 0; rep < 10; rep++) {
        ts_scene s;
        ts_scene_make(&s, tu_int(&r, 1, 3), rep == 3 ? 80 : tu_int(&r, 1, 20), 3, 12 + 4 * tu_int(&r, 0, 3), 0,
                      tu_next(&r));
        ts_typed_scene t;
        ts_typed_make(&t, &s, mixes[rep % 5], rep % 2); /* s now holds the up-converted values */
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1 + rep % 3);
        const int mmdet = rep % 4 >= 2;
        cfg.arithmetic = mmdet ? YOLOXLOSS_ARITHMETIC_MMDET : YOLOXLOSS_ARITHMETIC_YOLOX;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        const size_t A = anchors_of(&s), nb = (size_t)s.B * A * 4, ns = (size_t)s.B * A * (size_t)s.C;
        float *boxes = ts_filled(nb, NAN), *scores = ts_filled(ns, NAN);
        assert_int_equal(yoloxloss_decode(ctx, s.B, t.lv, boxes, scores), YOLOXLOSS_OK);
        assert_string_equal(yoloxloss_last_error(ctx), "");
        expect_reference(&s, mmdet, boxes, scores);

        /* either output alone: the same values */
        float *b2 = ts_filled(nb, -1.0f), *s2 = ts_filled(ns, -1.0f);
        assert_int_equal(yoloxloss_decode(ctx, s.B, t.lv, b2, NULL), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_decode(ctx, s.B, t.lv, NULL, s2), YOLOXLOSS_OK);
        assert_memory_equal(b2, boxes, nb * sizeof(float));
        assert_memory_equal(s2, scores, ns * sizeof(float));
        assert_int_equal(yoloxloss_decode(ctx, s.B, t.lv, NULL, NULL), YOLOXLOSS_OK);
        free(b2);
        free(s2);
        free(boxes);
        free(scores);
        yoloxloss_destroy(ctx);
        ts_typed_free(&t);
        ts_scene_free(&s);
    }
}

/* A forward, decode, then backward: the same gradients as without
 * the decode in between (decode reads the levels, keeps the forward). */
static void test_decode_keeps_forward(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 4, 2, 8, 3, 202);
    yoloxloss_context *ctx = ts_context(&s, 1);
    assert_non_null(ctx);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    float *ref[TS_MAX_LEVELS];
    ts_grads_copy(&s, ref);
    const size_t A = anchors_of(&s);
    float *boxes = malloc((size_t)s.B * A * 4 * sizeof(float));
    assert_non_null(boxes);
    assert_int_equal(yoloxloss_decode(ctx, s.B, s.lv, boxes, NULL), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_num_anchors(ctx), (int64_t)A);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    assert_true(ts_grads_equal(&s, ref));
    /* a failed decode leaves it held too */
    assert_int_equal(yoloxloss_decode(ctx, 0, s.lv, boxes, NULL), YOLOXLOSS_ERR_INVALID_SHAPE);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    free(boxes);
    ts_grads_release(&s, ref);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* decode of levels lv must fail with `want`, write nothing and leave the
 * message forward leaves for the same levels (with one gt-free image per
 * image), which holds `needle`. */
static void expect_decode_error(yoloxloss_context *ctx, int B, const yoloxloss_level *lv, yoloxloss_status want,
                                const char *needle, const char *what) {
    enum { N = 64 };
    float boxes[N], scores[N];
    for (int i = 0; i < N; i++) boxes[i] = scores[i] = 7.0f;
    const yoloxloss_status st = yoloxloss_decode(ctx, B, lv, boxes, scores);
    if (st != want) fail_msg("%s: status %d (%s), expected %d", what, (int)st, yoloxloss_last_error(ctx), (int)want);
    for (int i = 0; i < N; i++)
        if (boxes[i] != 7.0f || scores[i] != 7.0f) fail_msg("%s: decode wrote into its outputs", what);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", yoloxloss_last_error(ctx));
    if (!strstr(msg, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", what, msg, needle);
    if (B >= 1 && lv) {
        int32_t num_gt[8] = {0};
        const yoloxloss_batch batch = {B, lv, num_gt, NULL, NULL, NULL};
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &batch, &l), want);
        if (strcmp(msg, yoloxloss_last_error(ctx)) != 0)
            fail_msg("%s: decode says \"%s\", forward \"%s\"", what, msg, yoloxloss_last_error(ctx));
    }
}

static void test_decode_errors(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 2, 203);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1); /* check_finite on */
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    float out[4];
    assert_int_equal(yoloxloss_decode(NULL, s.B, s.lv, out, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_string_equal(yoloxloss_last_error(NULL), "ctx is NULL");
    expect_decode_error(ctx, s.B, NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "levels is NULL", "NULL levels");
    expect_decode_error(ctx, 0, s.lv, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is 0", "0 images");
    expect_decode_error(ctx, -3, s.lv, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is -3", "-3 images");

    yoloxloss_level lv[TS_SMALL_LEVELS];
    memcpy(lv, s.lv, sizeof lv);
    lv[1].height = 0;
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_INVALID_SHAPE, "level 1", "zero height");
    memcpy(lv, s.lv, sizeof lv);
    lv[0].dtype = (yoloxloss_dtype)7;
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_INVALID_ARGUMENT, "level 0: dtype is 7", "bad dtype");
    memcpy(lv, s.lv, sizeof lv);
    lv[1].obj = s.obj[1];
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_INVALID_ARGUMENT, "level 1: fused and 1", "fused and split");
    memcpy(lv, s.lv_split, sizeof lv);
    lv[0].cls = NULL;
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_NULL_ARGUMENT, "level 0", "incomplete split");
    memcpy(lv, s.lv, sizeof lv);
    lv[1].width = 4; /* 4 x 16 px at level 1 against 4 x 8 at level 0 */
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_INVALID_SHAPE, "levels of one image must agree", "geometry");

    /* check_finite: the first NaN named by level, image, channel, position */
    memcpy(lv, s.lv, sizeof lv);
    const float keep = *ts_at(&s, 1, 1, 6, 1, 0);
    *ts_at(&s, 1, 1, 6, 1, 0) = NAN;
    expect_decode_error(ctx, s.B, lv, YOLOXLOSS_ERR_NONFINITE_INPUT, "level 1, image 1, channel 6 (cls logit)",
                        "NaN class logit");
    *ts_at(&s, 1, 1, 6, 1, 0) = keep;
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* Outputs whose sizes do not fit in size_t while the head outputs' do:
 * refused before anything is read (the buffers are never touched). */
static void test_decode_size_overflow(void **state) {
    (void)state;
    if (sizeof(size_t) < 8) skip();
    static uint16_t fake[8]; /* never read: validation fails first */
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.check_finite = 0;
    cfg.num_threads = 1;

    /* scores: 2^14 images x (2^24 + 2^22) anchors x 2^24 classes x 4 bytes > 2^64, while the
     * bfloat16 inputs (half the bytes per value) still fit */
    static const float two[2] = {8.0f, 16.0f};
    cfg.num_classes = YOLOXLOSS_MAX_CLASSES;
    cfg.num_levels = 2;
    cfg.strides = two;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    const yoloxloss_level big[2] = {{4096, 4096, fake, NULL, NULL, NULL, YOLOXLOSS_DTYPE_BFLOAT16},
                                    {2048, 2048, fake, NULL, NULL, NULL, YOLOXLOSS_DTYPE_BFLOAT16}};
    float boxes[4] = {0}, scores[4] = {0};
    assert_int_equal(yoloxloss_decode(ctx, 1 << 14, big, NULL, scores), YOLOXLOSS_ERR_SIZE_OVERFLOW);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "scores"));
    yoloxloss_destroy(ctx);

    /* boxes: INT32_MAX images x 24000^2 anchors x 16 bytes > 2^64 */
    static const float one[1] = {8.0f};
    cfg.num_classes = 1;
    cfg.num_levels = 1;
    cfg.strides = one;
    ctx = ts_create_ok(&cfg);
    const yoloxloss_level wide = {24000, 24000, fake, NULL, NULL, NULL, YOLOXLOSS_DTYPE_BFLOAT16};
    assert_int_equal(yoloxloss_decode(ctx, INT32_MAX, &wide, boxes, NULL), YOLOXLOSS_ERR_SIZE_OVERFLOW);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "boxes"));
    for (int k = 0; k < 4; k++) assert_true(boxes[k] == 0.0f && scores[k] == 0.0f);
    yoloxloss_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_values),
        cmocka_unit_test(test_decode_keeps_forward),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_size_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
