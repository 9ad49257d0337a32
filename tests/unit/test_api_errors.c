/* The public API's refusals: every bad argument of forward and backward
 * gives its status and a message that names it, writes nothing, and a failed
 * forward leaves no forward held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

/* ---- forward errors ------------------------------------------------------ */

/* runs forward expecting `want`, checks the losses are untouched, the
 * message is non-empty and holds every `needles` string */
static void expect_forward_error(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_status want,
                                 const char *const *needles, int n_needles, const char *what) {
    yoloxloss_losses l = ts_sentinel_losses();
    yoloxloss_status st = yoloxloss_forward(ctx, batch, &l);
    if (st != want) fail_msg("%s: status %d (%s), expected %d", what, (int)st, yoloxloss_last_error(ctx), (int)want);
    ts_assert_losses_untouched(&l);
    const char *msg = yoloxloss_last_error(ctx);
    assert_non_null(msg);
    if (strlen(msg) == 0) fail_msg("%s: empty error message", what);
    for (int i = 0; i < n_needles; i++)
        if (!strstr(msg, needles[i])) fail_msg("%s: message \"%s\" lacks \"%s\"", what, msg, needles[i]);
    /* and no forward is held */
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
}

static void test_forward_pointer_and_shape_errors(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 1);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l = ts_sentinel_losses();

    assert_int_equal(yoloxloss_forward(NULL, &sc.batch, &l), YOLOXLOSS_ERR_NULL_ARGUMENT);
    ts_assert_losses_untouched(&l);
    expect_forward_error(ctx, NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"batch"}, 1, "NULL batch");
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "losses"));

    yoloxloss_batch b = sc.batch;
    b.levels = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"levels"}, 1, "NULL levels");
    b = sc.batch;
    b.num_gt = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"num_gt"}, 1, "NULL num_gt");
    b = sc.batch;
    b.gt_classes = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"gt_classes"}, 1,
                         "NULL classes");
    b = sc.batch;
    b.gt_boxes = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"gt_boxes"}, 1, "NULL boxes");

    b = sc.batch;
    b.num_images = 0;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_INVALID_SHAPE, (const char *const[]){"num_images"}, 1, "0 images");
    b.num_images = -2;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_INVALID_SHAPE, (const char *const[]){"num_images"}, 1, "-2 images");

    yoloxloss_level lv[TS_SMALL_LEVELS];
    memcpy(lv, sc.lv, sizeof lv);
    b = sc.batch;
    b.levels = lv;
    lv[1].height = 0;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_INVALID_SHAPE, (const char *const[]){"level 1"}, 1, "zero height");
    lv[1].height = 2;
    lv[0].width = -4;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_INVALID_SHAPE, (const char *const[]){"level 0"}, 1, "neg width");
    lv[0].width = 4;

    /* fused and split both set, or an incomplete split */
    lv[1].reg = sc.reg[1];
    lv[1].obj = sc.obj[1];
    lv[1].cls = sc.cls[1];
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_INVALID_ARGUMENT, (const char *const[]){"level 1", "fused"}, 2,
                         "fused + split");
    lv[1].fused = NULL;
    lv[1].obj = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"level 1"}, 1,
                         "split without obj");
    lv[1].reg = lv[1].obj = lv[1].cls = NULL;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_NULL_ARGUMENT, (const char *const[]){"level 1"}, 1, "nothing set");

    /* a grid whose anchor count does not fit */
    memcpy(lv, sc.lv, sizeof lv);
    lv[0].height = 50000;
    lv[0].width = 50000;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_SIZE_OVERFLOW, NULL, 0, "huge grid");

    /* the context still works afterwards */
    l = ts_sentinel_losses();
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_forward_label_and_box_errors(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 2);
    sc.num_gt[0] = 2;
    sc.num_gt[1] = 3; /* rows 0,1 | 2,3,4 */
    for (int g = 0; g < 5; g++) {
        sc.classes[g] = g % TS_SMALL_CLASSES;
        sc.boxes[4 * g] = 10.0f + (float)g;
        sc.boxes[4 * g + 1] = 12.0f;
        sc.boxes[4 * g + 2] = 10.0f;
        sc.boxes[4 * g + 3] = 9.0f;
    }
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);

    /* image 1, label 2 = row 4 */
    sc.classes[4] = TS_SMALL_CLASSES;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_LABEL, (const char *const[]){"image 1", "label 2"}, 2,
                         "class == num_classes");
    sc.classes[4] = -1;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_LABEL, (const char *const[]){"image 1", "label 2"}, 2,
                         "class -1");
    sc.classes[4] = 0;
    sc.classes[0] = 1000;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_LABEL, (const char *const[]){"image 0", "label 0"}, 2,
                         "class 1000");
    sc.classes[0] = 0;

    sc.num_gt[1] = -1;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_LABEL, (const char *const[]){"image 1"}, 1,
                         "negative num_gt");
    sc.num_gt[1] = 3;

    /* image 0, label 1 = row 1 */
    struct {
        int field;
        float value;
        const char *name;
    } bad[] = {{0, NAN, "cx is"}, {1, INFINITY, "cy is"}, {2, 0.0f, "w is"}, {3, -2.0f, "h is"},
               {2, -INFINITY, "w is"}, {3, NAN, "h is"}, {0, -INFINITY, "cx is"}, {2, -0.0f, "w is"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        float saved = sc.boxes[4 + bad[k].field];
        sc.boxes[4 + bad[k].field] = bad[k].value;
        char what[64];
        snprintf(what, sizeof what, "box field %s = %g", bad[k].name, (double)bad[k].value);
        expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_BOX,
                             (const char *const[]){"image 0", "label 1", bad[k].name}, 3, what);
        sc.boxes[4 + bad[k].field] = saved;
    }
    /* boxes partly or wholly outside the image are valid */
    sc.boxes[0] = -500.0f;
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_check_finite(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 3);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    /* NaN in level 1, image 1, channel 6 (class 1), row 1, col 0 */
    *ts_at(&sc, 1, 1, 6, 1, 0) = NAN;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 1", "image 1", "channel 6"}, 3, "NaN cls");
    *ts_at(&sc, 1, 1, 6, 1, 0) = 0.5f;
    /* +Inf in level 0, image 0, reg channel 2 (tw) */
    *ts_at(&sc, 0, 0, 2, 3, 1) = INFINITY;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 0", "image 0", "channel 2"}, 3, "Inf reg");
    *ts_at(&sc, 0, 0, 2, 3, 1) = 0.5f;
    /* -Inf objectness in the split layout */
    ts_scene_sync_split(&sc);
    sc.obj[0][1 * ts_hw(&sc, 0) + 5] = -INFINITY; /* image 1, level 0, position 5 */
    expect_forward_error(ctx, &sc.batch_split, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 0", "image 1", "channel 4"}, 3, "-Inf obj split");
    yoloxloss_destroy(ctx);

    /* with the check off, the same inputs are accepted */
    cfg.check_finite = 0;
    ctx = ts_create_ok(&cfg);
    *ts_at(&sc, 1, 1, 6, 1, 0) = NAN;
    yoloxloss_losses l = ts_sentinel_losses();
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &l), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

/* ---- backward errors ----------------------------------------------------- */

static int all_equal(const float *x, size_t n, float v) {
    for (size_t q = 0; q < n; q++)
        if (memcmp(&x[q], &v, sizeof v) != 0) return 0;
    return 1;
}

/* every gradient element, in both layouts, still holds v bit for bit */
static void assert_grads_all(const ts_grad_buffers *g, const ts_scene *sc, float v) {
    for (int l = 0; l < sc->L; l++) {
        size_t hw = ts_hw(sc, l);
        assert_true(all_equal(g->fused[l], sc->elems[l], v));
        assert_true(all_equal(g->reg[l], (size_t)sc->B * 4 * hw, v));
        assert_true(all_equal(g->obj[l], (size_t)sc->B * hw, v));
        assert_true(all_equal(g->cls[l], (size_t)sc->B * (size_t)sc->C * hw, v));
    }
}

static void test_backward_errors(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 4);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    ts_grad_buffers g;
    const float S = -31.5f;
    ts_grad_buffers_make(&g, &sc, S);

    assert_int_equal(yoloxloss_backward(NULL, g.as_fused, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    assert_true(strlen(yoloxloss_last_error(ctx)) > 0);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_get_assignment(NULL, NULL, NULL, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    yoloxloss_losses l = ts_sentinel_losses();
    assert_int_equal(yoloxloss_renormalize(ctx, 2.0f, &l), YOLOXLOSS_ERR_NO_FORWARD);
    ts_assert_losses_untouched(&l);
    assert_grads_all(&g, &sc, S);

    /* fused inputs: split-only grads and NULL grads are refused */
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, NULL, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.as_split, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_true(strlen(yoloxloss_last_error(ctx)) > 0);
    assert_grads_all(&g, &sc, S);
    /* non-finite upstream is refused */
    yoloxloss_upstream up = {1.0f, NAN, 0.0f, 0.0f, 0.0f};
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, &up, 0), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    up.iou = 0.0f;
    up.total = INFINITY;
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, &up, 1), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_grads_all(&g, &sc, S);
    /* the forward is still held: a good call works */
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);

    /* split inputs: fused-only grads, or a missing cls buffer, are refused */
    ts_grad_buffers g2;
    ts_grad_buffers_make(&g2, &sc, S);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, g2.as_fused, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    yoloxloss_level_grad partial[TS_SMALL_LEVELS];
    memcpy(partial, g2.as_split, sizeof partial);
    partial[1].cls = NULL;
    assert_int_equal(yoloxloss_backward(ctx, partial, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "level 1"));
    assert_grads_all(&g2, &sc, S);
    assert_int_equal(yoloxloss_backward(ctx, g2.as_split, NULL, 0), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");

    ts_grad_buffers_free(&g);
    ts_grad_buffers_free(&g2);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_forward_failure_clears_state(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 5);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    ts_grad_buffers g;
    ts_grad_buffers_make(&g, &sc, 7.0f);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(yoloxloss_num_anchors(ctx) == TS_SMALL_ANCHORS);
    sc.classes[0] = -5;
    l = ts_sentinel_losses();
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_ERR_INVALID_LABEL);
    ts_assert_losses_untouched(&l);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_renormalize(ctx, 3.0f, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_true(yoloxloss_num_anchors(ctx) == 0);
    assert_grads_all(&g, &sc, 7.0f);
    /* a NULL losses pointer also clears it */
    sc.classes[0] = 0;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    ts_grad_buffers_free(&g);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

/* Every call that fails leaves its own message: a context's calls in the
 * context, a failed create and calls given no context in the calling
 * thread's (yoloxloss_last_error(NULL)); a call that succeeds clears it. A
 * failed backward or renormalize keeps the forward (the header says so). */
static void test_every_failure_leaves_its_message(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 9);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);

    /* a failed create says why, as config_validate does */
    yoloxloss_config bad = cfg;
    bad.candidate_topk = 0;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&bad, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_null(ctx);
    char want[256];
    assert_int_equal(yoloxloss_config_validate(&bad, want, sizeof want), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_non_null(strstr(want, "candidate_topk"));
    assert_string_equal(yoloxloss_last_error(NULL), want);
    assert_int_equal(yoloxloss_create(NULL, &ctx), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "config"));
    assert_int_equal(yoloxloss_create(&cfg, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "out"));
    ctx = ts_create_ok(&cfg);
    assert_string_equal(yoloxloss_last_error(NULL), "");

    /* calls given no context */
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(NULL, &sc.batch, &l), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "ctx"));
    yoloxloss_context *other = ts_create_ok(&cfg); /* a successful call without a context clears it */
    assert_string_equal(yoloxloss_last_error(NULL), "");
    yoloxloss_destroy(other);
    assert_int_equal(yoloxloss_get_assignment(NULL, NULL, NULL, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "ctx"));
    assert_int_equal(yoloxloss_backward(NULL, NULL, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_renormalize(NULL, 1.0f, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "ctx"));

    /* get_assignment before any forward, and after a failed one: its own
     * message, not the previous call's */
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "get_assignment"));
    sc.classes[0] = 99;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_ERR_INVALID_LABEL);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "class id 99"));
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_null(strstr(yoloxloss_last_error(ctx), "class id"));
    assert_non_null(strstr(yoloxloss_last_error(ctx), "get_assignment"));
    sc.classes[0] = 0;

    /* success clears; a failed renormalize or backward keeps the forward */
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    assert_int_equal(yoloxloss_renormalize(ctx, -1.0f, NULL), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "normalizer"));
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    assert_int_equal(yoloxloss_backward(ctx, NULL, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "grads"));
    assert_int_equal(yoloxloss_renormalize(ctx, 2.0f, NULL), YOLOXLOSS_OK);
    ts_grad_buffers g;
    ts_grad_buffers_make(&g, &sc, 0.0f);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    ts_grad_buffers_free(&g);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_pointer_and_shape_errors),
        cmocka_unit_test(test_forward_label_and_box_errors),
        cmocka_unit_test(test_check_finite),
        cmocka_unit_test(test_backward_errors),
        cmocka_unit_test(test_forward_failure_clears_state),
        cmocka_unit_test(test_every_failure_leaves_its_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
