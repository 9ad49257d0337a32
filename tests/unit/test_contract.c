/* The input contract cases the test_api_* programs do not reach: sizes whose
 * products overflow size_t, gt boxes beyond float32's range, more boxes than
 * anchors, strides that do not divide the image, a config that would read
 * past the default strides, levels that disagree. docs/reliability.md lists
 * them all. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

/* forward must fail with `want`, name every needle, and write nothing. */
static void expect_failure(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_status want,
                           const char *needle1, const char *needle2) {
    const yoloxloss_losses before = {-3.0f, -3.0f, -3.0f, -3.0f, -3.0f, -3.0f, -3.0f, -3, -3};
    yoloxloss_losses l = before;
    yoloxloss_status st = yoloxloss_forward(ctx, batch, &l);
    if (st != want) fail_msg("status %d (%s), expected %d", (int)st, yoloxloss_last_error(ctx), (int)want);
    assert_true(ts_losses_equal(&l, &before));
    const char *msg = yoloxloss_last_error(ctx);
    if (needle1 && !strstr(msg, needle1)) fail_msg("\"%s\" lacks \"%s\"", msg, needle1);
    if (needle2 && !strstr(msg, needle2)) fail_msg("\"%s\" lacks \"%s\"", msg, needle2);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
}

/* Shapes only: the buffers are never read because validation stops first. */
static void test_size_t_overflow(void **state) {
    (void)state;
    static float dummy[1];
    static const float one_stride[1] = {8.0f};
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_levels = 1;
    cfg.strides = one_stride;
    cfg.num_threads = 1;
    cfg.num_classes = YOLOXLOSS_MAX_CLASSES; /* B x (5+C) x H x W x 4 bytes > 2^64 */
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    yoloxloss_level lv = {2000000, 2000000, dummy, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32};
    int32_t num_gt[2] = {0, 0};
    yoloxloss_batch batch = {2, &lv, num_gt, NULL, NULL, NULL};
    expect_failure(ctx, &batch, YOLOXLOSS_ERR_SIZE_OVERFLOW, "level 0", "size_t");
    yoloxloss_destroy(ctx);

    /* per image: num_gt x anchors x 2 float matrices > 2^64 */
    cfg.num_classes = 1;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    lv.height = lv.width = 46000;
    num_gt[1] = INT32_MAX;
    expect_failure(ctx, &batch, YOLOXLOSS_ERR_SIZE_OVERFLOW, "image 1", "size_t");
    yoloxloss_destroy(ctx);
}

static void test_gt_beyond_float_range(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 3, 2, 8, 3, 5);
    s.num_gt[0] = 1;
    s.num_gt[1] = 2;
    for (int r = 0; r < 3; r++) {
        const float ok[4] = {20.0f, 24.0f, 10.0f, 12.0f};
        memcpy(s.boxes + 4 * r, ok, sizeof ok);
        s.classes[r] = r % 3;
    }
    yoloxloss_context *ctx = ts_context(&s, 1);
    assert_non_null(ctx);
    /* image 1, label 1 = row 2: each field alone finite, the area or a corner not */
    const float bad[3][4] = {{20.0f, 24.0f, 1e20f, 1e20f}, {3e38f, 24.0f, 1e38f, 12.0f}, {20.0f, -3e38f, 5.0f, 1e38f}};
    for (int k = 0; k < 3; k++) {
        memcpy(s.boxes + 8, bad[k], sizeof bad[k]);
        expect_failure(ctx, &s.batch, YOLOXLOSS_ERR_INVALID_BOX, "image 1, label 1", "float32");
    }
    /* huge but representable boxes are accepted, wholly outside the image too */
    const float far[4] = {1e15f, -1e15f, 1e10f, 1e10f};
    memcpy(s.boxes + 8, far, sizeof far);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    assert_true(isfinite(l.total));
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* 1 anchor per image, 5 boxes: every box is a candidate of it, each gets
 * k = 1, the anchor goes to the cheapest; the rest get no anchor. */
static void test_more_boxes_than_anchors(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 1, 2, 1, 1, 5, 9);
    s.num_gt[0] = 5;
    for (int r = 0; r < 5; r++) {
        const float b[4] = {4.0f + 0.1f * (float)r, 4.0f, 6.0f + (float)r, 7.0f};
        memcpy(s.boxes + 4 * r, b, sizeof b);
        s.classes[r] = r % 2;
    }
    yoloxloss_context *ctx = ts_context(&s, 2);
    assert_non_null(ctx);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_num_anchors(ctx), 1);
    int32_t matched = -7, dk[5];
    assert_int_equal(yoloxloss_get_assignment(ctx, &matched, NULL, dk), YOLOXLOSS_OK);
    assert_true(matched >= 0 && matched < 5);
    for (int g = 0; g < 5; g++) assert_int_equal(dk[g], 1);
    assert_int_equal(l.num_fg, 1);
    assert_int_equal(l.num_gt, 5);
    assert_true(isfinite(l.total));
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    for (size_t q = 0; q < s.elems[0]; q++) assert_true(isfinite(s.grad[0][q]));
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* The library takes each level's grid as given: a stride that does not
 * divide the image only means the last anchor centres lie past its edge.
 * A 100 x 60 px image at strides 8 and 13.5 gives grids 13 x 8 and 8 x 5
 * (rounded up), the last cells partly outside; all is accepted and exact
 * gt boxes at those cells are matched like any other. */
static void test_strides_not_dividing_the_image(void **state) {
    (void)state;
    static const float strides[2] = {8.0f, 13.5f};
    const int H[2] = {8, 5}, W[2] = {13, 8};
    float *buf[2], *grad[2];
    yoloxloss_level lv[2];
    yoloxloss_level_grad g[2];
    tu_rng r = {77};
    for (int l = 0; l < 2; l++) {
        size_t n = (size_t)(5 + 2) * (size_t)(H[l] * W[l]);
        buf[l] = malloc(n * sizeof(float));
        grad[l] = malloc(n * sizeof(float));
        for (size_t q = 0; q < n; q++) buf[l][q] = tu_rangef(&r, -1.0, 1.0);
        memset(&lv[l], 0, sizeof lv[l]);
        lv[l].height = H[l];
        lv[l].width = W[l];
        lv[l].fused = buf[l];
        memset(&g[l], 0, sizeof g[l]);
        g[l].fused = grad[l];
    }
    int32_t num_gt = 2, classes[2] = {0, 1};
    /* one box at the bottom-right corner, half past the image's edge */
    const float boxes[8] = {98.0f, 58.0f, 12.0f, 10.0f, 40.0f, 30.0f, 30.0f, 20.0f};
    yoloxloss_batch batch = {1, lv, &num_gt, classes, boxes, NULL};
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = 2;
    cfg.num_levels = 2;
    cfg.strides = strides;
    cfg.num_threads = 1;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
    int32_t matched[13 * 8 + 8 * 5], dk[2];
    assert_int_equal(yoloxloss_get_assignment(ctx, matched, NULL, dk), YOLOXLOSS_OK);
    assert_true(dk[0] >= 1 && dk[1] >= 1);
    int fg_corner = 0;
    for (int a = 0; a < 13 * 8 + 8 * 5; a++) fg_corner += matched[a] == 0;
    assert_true(fg_corner >= 1);
    assert_true(isfinite(l.total) && l.num_fg >= 2);
    assert_int_equal(yoloxloss_backward(ctx, g, NULL, 0), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    for (int k = 0; k < 2; k++) {
        free(buf[k]);
        free(grad[k]);
    }
}


/* yoloxloss_config_defaults points strides to a constant array of 3; a
 * caller who asks for more levels without an array of their own must get a
 * message, not a read past that array (AddressSanitizer reported the read,
 * a global-buffer-overflow, before the check existed). */
static void test_default_strides_with_more_levels(void **state) {
    (void)state;
    for (int levels = 4; levels <= 6; levels++) {
        yoloxloss_config cfg;
        yoloxloss_config_defaults(&cfg);
        cfg.num_levels = levels;
        char msg[256];
        assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
        if (!strstr(msg, "strides") || !strstr(msg, "default"))
            fail_msg("message \"%s\" names neither strides nor the default", msg);
        yoloxloss_context *ctx = (yoloxloss_context *)&cfg; /* must be set to NULL */
        assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
        assert_null(ctx);
        assert_string_equal(yoloxloss_last_error(NULL), msg);
    }
    /* three levels or fewer on the defaults' array are fine */
    for (int levels = 1; levels <= 3; levels++) {
        yoloxloss_config cfg;
        yoloxloss_config_defaults(&cfg);
        cfg.num_levels = levels;
        assert_int_equal(yoloxloss_config_validate(&cfg, NULL, 0), YOLOXLOSS_OK);
    }
}

/* Strides must increase: levels in the config are finest first. */
static void test_strides_must_increase(void **state) {
    (void)state;
    static const float bad[3][3] = {{8, 32, 16}, {16, 16, 32}, {32, 16, 8}};
    for (int k = 0; k < 3; k++) {
        yoloxloss_config cfg;
        yoloxloss_config_defaults(&cfg);
        cfg.strides = bad[k];
        char msg[256];
        assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
        if (!strstr(msg, "increase") || !strstr(msg, "strides["))
            fail_msg("case %d: message \"%s\" does not say the strides must increase", k, msg);
    }
}

/* A batch whose levels contradict each other: the config says strides 8,
 * 16, 32 over a 64 x 96 px image (grids 8 x 12, 4 x 6, 2 x 3). */
static void test_levels_that_disagree(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 1, 2, 3, 8, 2, 11);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    static float buf[9 * 13 * 7]; /* the largest grid below (9 x 13), 5 + C = 7 channels */
    yoloxloss_level lv[3] = {{8, 12, buf, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32},
                             {4, 6, buf, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32},
                             {2, 3, buf, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32}};
    int32_t num_gt[1] = {0};
    yoloxloss_batch batch = {1, lv, num_gt, NULL, NULL, NULL};
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);

    /* a level with the grid of the next one */
    lv[1].height = 2, lv[1].width = 3;
    expect_failure(ctx, &batch, YOLOXLOSS_ERR_INVALID_SHAPE, "level 0 (grid 8 x 12, stride 8)",
                   "level 1 (grid 2 x 3, stride 16)");
    /* height and width swapped at one level */
    lv[1].height = 6, lv[1].width = 4;
    expect_failure(ctx, &batch, YOLOXLOSS_ERR_INVALID_SHAPE, "covers 96 x 64 px", "right way round");
    /* levels given coarsest first */
    lv[0].height = 2, lv[0].width = 3, lv[1].height = 4, lv[1].width = 6, lv[2].height = 8, lv[2].width = 12;
    expect_failure(ctx, &batch, YOLOXLOSS_ERR_INVALID_SHAPE, "stride order", "level 0 (grid 2 x 3, stride 8)");
    /* an image of 70 x 100 px, whose grids a network rounds up (strided
     * convolutions) or down (pooling) at every level, agrees */
    const int grids[2][3][2] = {{{9, 13}, {5, 7}, {3, 4}}, {{8, 12}, {4, 6}, {2, 3}}};
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 3; k++) lv[k].height = grids[round][k][0], lv[k].width = grids[round][k][1];
        if (yoloxloss_forward(ctx, &batch, &l) != YOLOXLOSS_OK)
            fail_msg("grids rounded %s refused: %s", round ? "down" : "up", yoloxloss_last_error(ctx));
    }
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_t_overflow),
        cmocka_unit_test(test_gt_beyond_float_range),
        cmocka_unit_test(test_more_boxes_than_anchors),
        cmocka_unit_test(test_strides_not_dividing_the_image),
        cmocka_unit_test(test_default_strides_with_more_levels),
        cmocka_unit_test(test_strides_must_increase),
        cmocka_unit_test(test_levels_that_disagree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
