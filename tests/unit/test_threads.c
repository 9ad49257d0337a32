/* Results do not depend on the thread count: the same bits for 1 to 4
 * threads, with more images than threads (threads take images) and fewer
 * (threads share each image's candidates, classes and gts), for both
 * assigners, and across repeated calls on one context; and the same for
 * decode and detect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

typedef struct {
    yoloxloss_losses losses;
    int32_t *matched, *dynamic_k;
    float *pred_iou;
    float *grad[TS_MAX_LEVELS];
} run_result;

static void run(ts_scene *s, const yoloxloss_config *base, int threads, int repeat, run_result *out) {
    yoloxloss_config cfg = *base;
    cfg.num_threads = threads;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    for (int i = 0; i < repeat; i++) {
        assert_int_equal(yoloxloss_forward(ctx, &s->batch, &out->losses), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_backward(ctx, s->g, NULL, 0), YOLOXLOSS_OK);
    }
    size_t n = (size_t)s->B * (size_t)yoloxloss_num_anchors(ctx);
    out->matched = malloc(n * sizeof *out->matched);
    out->pred_iou = malloc(n * sizeof *out->pred_iou);
    out->dynamic_k = calloc((size_t)s->total_gt + 1, sizeof *out->dynamic_k);
    assert_true(out->matched && out->pred_iou && out->dynamic_k);
    assert_int_equal(yoloxloss_get_assignment(ctx, out->matched, out->pred_iou, out->dynamic_k), YOLOXLOSS_OK);
    ts_grads_copy(s, out->grad);
    yoloxloss_destroy(ctx);
}

static void result_free(const ts_scene *s, run_result *r) {
    free(r->matched);
    free(r->pred_iou);
    free(r->dynamic_k);
    ts_grads_release(s, r->grad);
}

static void expect_same(const ts_scene *s, const run_result *a, const run_result *b) {
    assert_true(ts_losses_equal(&a->losses, &b->losses));
    size_t n = 0;
    for (int l = 0; l < s->L; l++) n += (size_t)s->lv[l].height * (size_t)s->lv[l].width;
    n *= (size_t)s->B;
    assert_memory_equal(a->matched, b->matched, n * sizeof *a->matched);
    assert_memory_equal(a->pred_iou, b->pred_iou, n * sizeof *a->pred_iou);
    assert_memory_equal(a->dynamic_k, b->dynamic_k, (size_t)s->total_gt * sizeof *a->dynamic_k);
    for (int l = 0; l < s->L; l++) assert_memory_equal(a->grad[l], b->grad[l], s->elems[l] * sizeof(float));
}

static void test_thread_counts_bitwise(void **state) {
    (void)state;
    /* ts_threads: 4, or fewer under YOLOXLOSS_TEST_MAX_THREADS (qemu-user) */
    const int most = ts_threads(4);
    if (most < 2)
        print_message("test_threads: YOLOXLOSS_TEST_MAX_THREADS=%d, so only repeated 1-thread runs are "
                      "compared\n", most);
    const int images[] = {1, 2, 3, 5};
    for (size_t bi = 0; bi < sizeof images / sizeof images[0]; bi++)
        for (int legacy = 0; legacy <= 1; legacy++) {
            ts_scene s;
            ts_scene_make(&s, images[bi], 1 + (int)bi * 13, 3, 28, 40, 201 + 2 * bi + (size_t)legacy);
            yoloxloss_config cfg;
            ts_config(&s, &cfg, 1);
            cfg.assigner = legacy ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
            cfg.use_l1 = legacy;
            run_result one;
            run(&s, &cfg, 1, 1, &one);
            assert_true(one.losses.num_fg > 0);
            for (int threads = most < 2 ? 1 : 2; threads <= most; threads++) {
                run_result many;
                run(&s, &cfg, threads, 2, &many);
                expect_same(&s, &one, &many);
                result_free(&s, &many);
            }
            result_free(&s, &one);
            ts_scene_free(&s);
        }
}

/* decode and detect: the same bits for 1 to 4 threads, with fewer images
 * than threads (threads share an image's runs of anchors) and more, class
 * aware and agnostic, twice on one context. */
static void test_decode_detect_thread_counts_bitwise(void **state) {
    (void)state;
    const int most = ts_threads(4);
    const int images[] = {1, 5};
    for (size_t bi = 0; bi < sizeof images / sizeof images[0]; bi++) {
        ts_scene s;
        ts_scene_make(&s, images[bi], 5, 3, 48, 0, 301 + bi); /* 2304 + 576 + 144 anchors: 4 runs per image */
        const size_t A = 48 * 48 + 24 * 24 + 12 * 12, nb = (size_t)s.B * A * 4, ns = (size_t)s.B * A * 5;
        yoloxloss_detect_params p;
        yoloxloss_detect_params_defaults(&p);
        p.score_threshold = 0.5f; /* a few hundred candidates per image: agnostic NMS compares every pair */
        p.max_detections = 500;
        p.class_agnostic = (int)bi % 2;
        float *boxes[2], *scores[2];
        yoloxloss_detection *det[2];
        int32_t counts[2][5], found[2][5];
        for (int k = 0; k < 2; k++) {
            boxes[k] = malloc(nb * sizeof(float));
            scores[k] = malloc(ns * sizeof(float));
            det[k] = calloc((size_t)s.B * 500, sizeof(yoloxloss_detection));
            assert_true(boxes[k] && scores[k] && det[k]);
        }
        for (int threads = 1; threads <= most; threads++) {
            yoloxloss_context *ctx = ts_context(&s, threads);
            assert_non_null(ctx);
            for (int again = 0; again < 2; again++) {
                const int k = threads > 1 || again; /* [0]: the first 1-thread run */
                assert_int_equal(yoloxloss_decode(ctx, s.B, s.lv, boxes[k], scores[k]), YOLOXLOSS_OK);
                assert_int_equal(yoloxloss_detect(ctx, s.B, s.lv, &p, det[k], counts[k], found[k]), YOLOXLOSS_OK);
                if (!k) continue;
                assert_memory_equal(boxes[1], boxes[0], nb * sizeof(float));
                assert_memory_equal(scores[1], scores[0], ns * sizeof(float));
                assert_memory_equal(counts[1], counts[0], (size_t)s.B * sizeof(int32_t));
                assert_memory_equal(found[1], found[0], (size_t)s.B * sizeof(int32_t));
                for (int b = 0; b < s.B; b++)
                    assert_memory_equal(det[1] + (size_t)b * 500, det[0] + (size_t)b * 500,
                                        (size_t)counts[0][b] * sizeof(yoloxloss_detection));
            }
            yoloxloss_destroy(ctx);
        }
        print_message("%d images: %d detections kept in the first\n", s.B, found[0][0]);
        assert_true(found[0][0] > 20);
        for (int k = 0; k < 2; k++) {
            free(boxes[k]);
            free(scores[k]);
            free(det[k]);
        }
        ts_scene_free(&s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_counts_bitwise),
        cmocka_unit_test(test_decode_detect_thread_counts_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
