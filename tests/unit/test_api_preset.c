/* The public API's presets (yoloxloss_config_preset) and the config fields
 * they set: what each preset writes, its errors, and that a context made
 * from a preset runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static void test_preset_yolox_is_the_defaults(void **state) {
    (void)state;
    yoloxloss_config d, p;
    memset(&d, 0x11, sizeof d);
    memset(&p, 0x77, sizeof p);
    yoloxloss_config_defaults(&d);
    assert_int_equal(yoloxloss_config_preset(&p, "yolox"), YOLOXLOSS_OK);
    assert_memory_equal(&d, &p, sizeof d);
    assert_string_equal(yoloxloss_last_error(NULL), "");
}

/* MMDetection 3.x's YOLOXHead and SimOTAAssigner (docs/differences.md). */
static void test_preset_mmdet_fields(void **state) {
    (void)state;
    yoloxloss_config c;
    memset(&c, 0x5A, sizeof c);
    assert_int_equal(yoloxloss_config_preset(&c, "mmdet"), YOLOXLOSS_OK);
    assert_int_equal(c.assigner, YOLOXLOSS_ASSIGNER_YOLOX_LEGACY);
    assert_true(c.center_radius == 2.5f);
    assert_int_equal(c.candidate_topk, 10);
    assert_true(c.iou_cost_weight == 3.0f && c.cls_cost_weight == 1.0f);
    assert_true(c.cost_iou_eps == 1e-7f);
    assert_true(c.cost_penalty == 100000.0f);
    assert_int_equal(c.arithmetic, YOLOXLOSS_ARITHMETIC_MMDET);
    assert_int_equal(c.iou_loss, YOLOXLOSS_IOU_LOSS_IOU);
    assert_true(c.reg_weight == 5.0f && c.obj_weight == 1.0f && c.cls_weight == 1.0f && c.l1_weight == 1.0f);
    /* the rest are the defaults */
    yoloxloss_config d;
    yoloxloss_config_defaults(&d);
    assert_int_equal(c.num_classes, d.num_classes);
    assert_int_equal(c.num_levels, d.num_levels);
    assert_ptr_equal(c.strides, d.strides);
    assert_int_equal(c.use_l1, d.use_l1);
    assert_int_equal(c.num_threads, d.num_threads);
    assert_int_equal(c.check_finite, d.check_finite);
    assert_int_equal(c.isa, d.isa);
    assert_null(c.alloc_fn);
    assert_int_equal(yoloxloss_config_validate(&c, NULL, 0), YOLOXLOSS_OK);
}

static void test_preset_errors(void **state) {
    (void)state;
    yoloxloss_config c, before;
    yoloxloss_config_defaults(&c);
    c.num_classes = 7;
    before = c;
    const char *bad[] = {"", "MMDet", "mmdetection", "yolox ", "detectron"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(yoloxloss_config_preset(&c, bad[i]), YOLOXLOSS_ERR_INVALID_ARGUMENT);
        assert_memory_equal(&c, &before, sizeof c); /* unchanged */
        const char *why = yoloxloss_last_error(NULL);
        assert_non_null(strstr(why, "preset"));
        assert_non_null(strstr(why, "mmdet"));
    }
    assert_int_equal(yoloxloss_config_preset(NULL, "mmdet"), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "config"));
    assert_int_equal(yoloxloss_config_preset(&c, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "name"));
    assert_memory_equal(&c, &before, sizeof c);
    /* a good call clears the thread's message */
    assert_int_equal(yoloxloss_config_preset(&c, "mmdet"), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(NULL), "");
}

/* A context from the mmdet preset runs forward and backward, keeps the
 * preset's fields, and differs from the yolox preset on the same step (its
 * rule, eps, penalty and IoU are not YOLOX's). */
static void test_preset_mmdet_runs(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 91);
    yoloxloss_losses lm, ly;
    for (int which = 0; which < 2; which++) {
        yoloxloss_config cfg;
        assert_int_equal(yoloxloss_config_preset(&cfg, which ? "mmdet" : "yolox"), YOLOXLOSS_OK);
        cfg.num_classes = sc.C;
        cfg.num_levels = sc.L;
        cfg.strides = sc.strides;
        cfg.num_threads = 1;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        const yoloxloss_config *got = yoloxloss_get_config(ctx);
        assert_int_equal(got->arithmetic, which ? YOLOXLOSS_ARITHMETIC_MMDET : YOLOXLOSS_ARITHMETIC_YOLOX);
        assert_true(got->cost_iou_eps == (which ? 1e-7f : 1e-8f));
        assert_true(got->cost_penalty == (which ? 1e5f : 0.0f));
        yoloxloss_losses *l = which ? &lm : &ly;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, l), YOLOXLOSS_OK);
        assert_true(l->num_fg > 0 && isfinite(l->total));
        ts_grad_buffers g;
        ts_grad_buffers_make(&g, &sc, NAN);
        ts_backward_fused(ctx, &g, NULL, 0);
        for (int lv = 0; lv < sc.L; lv++)
            for (size_t q = 0; q < sc.elems[lv]; q++) assert_true(isfinite(g.fused[lv][q]));
        ts_grad_buffers_free(&g);
        yoloxloss_destroy(ctx);
    }
    assert_true(lm.total != ly.total);
    ts_scene_free(&sc);
}

/* The two cost constants at their defaults' values, written out, give the
 * same bits as the defaults (0 = the assigner's own penalty), under both
 * rules. */
static void test_cost_constants_written_out(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 3, 92);
    for (int legacy = 0; legacy < 2; legacy++) {
        yoloxloss_losses l[2];
        ts_small_assignment as[2];
        for (int explicit_values = 0; explicit_values < 2; explicit_values++) {
            yoloxloss_config cfg;
            ts_config(&sc, &cfg, 1);
            cfg.assigner = legacy ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
            if (explicit_values) {
                cfg.cost_iou_eps = 1e-8f;
                cfg.cost_penalty = legacy ? 1e5f : 1e6f;
            }
            yoloxloss_context *ctx = ts_create_ok(&cfg);
            assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l[explicit_values]), YOLOXLOSS_OK);
            ts_get_assignment(ctx, &as[explicit_values]);
            yoloxloss_destroy(ctx);
        }
        assert_true(ts_losses_equal(&l[0], &l[1]));
        assert_memory_equal(as[0].matched, as[1].matched, sizeof as[0].matched);
        assert_memory_equal(as[0].dk, as[1].dk, sizeof as[0].dk);
    }
    ts_scene_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preset_yolox_is_the_defaults),
        cmocka_unit_test(test_preset_mmdet_fields),
        cmocka_unit_test(test_preset_errors),
        cmocka_unit_test(test_preset_mmdet_runs),
        cmocka_unit_test(test_cost_constants_written_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
