/* yoloxloss_detect through the public API: hand-made images for each rule
 * of YOLOX's postprocess (overlap within a class and across classes,
 * class-agnostic NMS, both thresholds at exactly their boundary, ties of
 * score and of class probability, the cap and `found`, empty images,
 * non-finite logits), random scenes in every dtype and layout against the
 * plain reference of decode_ref.h, and every refusal with nothing written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "decode_ref.h"

enum { C3 = 3, GRID = 4, CAP = 16 };

/* B images of one 4 x 4 level at stride 8, 3 classes, every anchor far
 * below any threshold (obj and class logits -30). */
static void hand_scene(ts_scene *s, int B) {
    ts_scene_alloc(s, B, C3, 1, GRID, 0);
    for (size_t i = 0; i < s->elems[0]; i++) s->out[0][i] = 0.0f;
    for (int b = 0; b < B; b++)
        for (int q = 0; q < GRID * GRID; q++)
            for (int ch = 4; ch < 5 + C3; ch++) *ts_at(s, 0, b, ch, q / GRID, q % GRID) = -30.0f;
}

/* Anchor a of image b decodes to the box (cx, cy, w, h), exactly (cx/8 and
 * cy/8 dyadic, w and h reachable by exp(t) * 8), with objectness logit obj
 * and class logit p for class cls. */
static void put(ts_scene *s, int b, int a, float cx, float cy, float w, float h, float obj, int cls, float p) {
    const int i = a / GRID, j = a % GRID;
    *ts_at(s, 0, b, 0, i, j) = cx / 8.0f - (float)j;
    *ts_at(s, 0, b, 1, i, j) = cy / 8.0f - (float)i;
    *ts_at(s, 0, b, 2, i, j) = tu_exact_log(w, 8.0f);
    *ts_at(s, 0, b, 3, i, j) = tu_exact_log(h, 8.0f);
    assert_false(isnan(*ts_at(s, 0, b, 2, i, j)) || isnan(*ts_at(s, 0, b, 3, i, j)));
    *ts_at(s, 0, b, 4, i, j) = obj;
    *ts_at(s, 0, b, 5 + cls, i, j) = p;
}

static yoloxloss_detect_params params(float score, double nms, int agnostic, int cap) {
    yoloxloss_detect_params p;
    yoloxloss_detect_params_defaults(&p);
    p.score_threshold = score;
    p.nms_threshold = nms;
    p.class_agnostic = agnostic;
    p.max_detections = cap;
    return p;
}

typedef struct {
    yoloxloss_detection det[4 * CAP];
    int32_t counts[4], found[4];
} result;

/* detect on the scene's fused levels (one thread), which must succeed. */
static void run(const ts_scene *s, const yoloxloss_detect_params *p, result *r) {
    yoloxloss_config cfg;
    ts_config(s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    memset(r, 0xff, sizeof *r);
    assert_int_equal(yoloxloss_detect(ctx, s->B, s->lv, p, r->det, r->counts, r->found), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
}

/* Image b's detections are exactly the boxes with these left corners x1
 * (the hand scenes give each box its own), in this order. */
static void expect_x1(const result *r, int b, int cap, const float *x1, int n) {
    assert_int_equal(r->counts[b], n);
    for (int k = 0; k < n; k++)
        if (r->det[b * cap + k].x1 != x1[k])
            fail_msg("image %d, detection %d: x1 %g, expected %g", b, k, (double)r->det[b * cap + k].x1, (double)x1[k]);
}

/* A box 16 x 16 at (16, 16); one 4 px to the right overlaps it with IoU
 * 192 / 320 = 0.6, one 12 px to the right with 64 / 448 = 0.14. */
static void test_overlap_one_class(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    put(&s, 0, 9, 16, 16, 16, 16, 10, 1, 3.0f); /* highest score */
    put(&s, 0, 2, 20, 16, 16, 16, 10, 1, 2.0f); /* IoU 0.6 with it */
    put(&s, 0, 6, 28, 16, 16, 16, 10, 1, 1.0f); /* IoU 0.14 with the first, 0.33 with the second */
    result r;
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, CAP);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8, 20}, 2);
    assert_int_equal(r.found[0], 2);
    const yoloxloss_detection *d = &r.det[0];
    assert_int_equal(d->cls, 1);
    TU_ASSERT_BITS_EQ(d->obj, dr_sigmoid(10.0f));
    TU_ASSERT_BITS_EQ(d->cls_conf, dr_sigmoid(3.0f));
    TU_ASSERT_BITS_EQ(d->score, dr_sigmoid(10.0f) * dr_sigmoid(3.0f));
    assert_true(d->x1 == 8 && d->y1 == 8 && d->x2 == 24 && d->y2 == 24);
    /* above 0.6 nothing is suppressed */
    p.nms_threshold = 0.65;
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8, 12, 20}, 3);
    ts_scene_free(&s);
}

/* The same overlap across two classes: both kept per class, the lower
 * score suppressed across classes. */
static void test_overlap_two_classes(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    put(&s, 0, 0, 16, 16, 16, 16, 10, 0, 3.0f);
    put(&s, 0, 1, 20, 16, 16, 16, 10, 2, 2.0f);
    result r;
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, CAP);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8, 12}, 2);
    assert_int_equal(r.det[0].cls, 0);
    assert_int_equal(r.det[1].cls, 2);
    p.class_agnostic = 1;
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8}, 1);
    assert_int_equal(r.found[0], 1);
    ts_scene_free(&s);
}

/* score >= threshold keeps, the next float above drops; IoU == threshold
 * keeps (only > suppresses), the next double below suppresses. */
static void test_thresholds_at_boundary(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    put(&s, 0, 3, 16, 16, 16, 16, 4, 0, 2.5f);
    put(&s, 0, 12, 21, 17, 12, 20, 3, 0, 1.5f);
    const float low = dr_sigmoid(3.0f) * dr_sigmoid(1.5f);
    const dr_det a = {8, 8, 24, 24, 0, 0, 0, 0, 0}, b = {15, 7, 27, 27, 0, 0, 0, 0, 0};
    const double iou = dr_iou(&a, &b);
    assert_true(iou > 0.3 && iou < 0.7);
    result r;
    yoloxloss_detect_params p = params(low, 0.99, 0, CAP);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8, 15}, 2);
    TU_ASSERT_BITS_EQ(r.det[1].score, low);
    p.score_threshold = nextafterf(low, INFINITY);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8}, 1);
    p = params(0.1f, iou, 0, CAP);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8, 15}, 2);
    p.nms_threshold = nextafter(iou, 0.0);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){8}, 1);
    ts_scene_free(&s);
}

/* Equal scores rank by anchor index: of two overlapping boxes the lower
 * anchor's is kept, and apart they come out in anchor order. Equal class
 * probabilities give the lower class, even where the logits differ but
 * their sigmoids round to the same float (35 and 40 both give 1). */
static void test_ties(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 2);
    put(&s, 0, 5, 16, 16, 16, 16, 6, 1, 2.0f);
    put(&s, 0, 11, 20, 16, 16, 16, 6, 1, 2.0f);  /* overlaps, same score, higher anchor */
    put(&s, 0, 13, 100, 16, 16, 16, 6, 1, 2.0f); /* apart, same score */
    put(&s, 0, 2, 200, 16, 16, 16, 6, 1, 2.0f);  /* apart, same score, lowest anchor */
    put(&s, 1, 4, 16, 16, 16, 16, 6, 2, 35.0f);
    put(&s, 1, 4, 16, 16, 16, 16, 6, 1, 40.0f);  /* sigmoid(40) == sigmoid(35) == 1: class 1 */
    put(&s, 1, 7, 80, 16, 16, 16, 6, 0, 1.0f);
    put(&s, 1, 7, 80, 16, 16, 16, 6, 2, 1.0f);   /* an exact tie: class 0 */
    TU_ASSERT_BITS_EQ(dr_sigmoid(35.0f), dr_sigmoid(40.0f));
    result r;
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, CAP);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){192, 8, 92}, 3);
    assert_int_equal(r.found[0], 3);
    assert_int_equal(r.counts[1], 2);
    assert_int_equal(r.det[CAP].cls, 1);
    assert_int_equal(r.det[CAP + 1].cls, 0);
    /* the same two overlapping boxes with their anchors swapped: the other one stays */
    ts_scene_free(&s);
    hand_scene(&s, 1);
    put(&s, 0, 11, 16, 16, 16, 16, 6, 1, 2.0f);
    put(&s, 0, 5, 20, 16, 16, 16, 6, 1, 2.0f);
    run(&s, &p, &r);
    expect_x1(&r, 0, CAP, (const float[]){12}, 1);
    ts_scene_free(&s);
}

/* Five boxes apart, at most three written: the three best, and found = 5. */
static void test_cap_and_found(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    for (int k = 0; k < 5; k++) put(&s, 0, 3 * k, 16 + 40 * (float)k, 16, 16, 16, 8, k % C3, 0.5f + (float)k);
    result r;
    yoloxloss_detect_params p = params(0.3f, 0.45, 0, 3);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    memset(&r, 0xff, sizeof r);
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &p, r.det, r.counts, r.found), YOLOXLOSS_OK);
    expect_x1(&r, 0, 3, (const float[]){168, 128, 88}, 3);
    assert_int_equal(r.found[0], 5);
    /* found may be NULL; the slots after the count are not written */
    memset(&r, 0xff, sizeof r);
    p.max_detections = 8;
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &p, r.det, r.counts, NULL), YOLOXLOSS_OK);
    expect_x1(&r, 0, 8, (const float[]){168, 128, 88, 48, 8}, 5);
    const unsigned char *rest = (const unsigned char *)&r.det[5];
    for (size_t k = 0; k < 3 * sizeof(yoloxloss_detection); k++) assert_int_equal(rest[k], 0xff);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* Images without a detection among images with some. */
static void test_empty_images(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 3);
    put(&s, 1, 7, 16, 16, 16, 16, 8, 2, 3.0f);
    result r;
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, CAP);
    run(&s, &p, &r);
    assert_int_equal(r.counts[0], 0);
    assert_int_equal(r.counts[1], 1);
    assert_int_equal(r.counts[2], 0);
    assert_int_equal(r.found[0], 0);
    assert_int_equal(r.found[2], 0);
    assert_int_equal(r.det[CAP].cls, 2);
    ts_scene_free(&s);
}

/* With check_finite off: a NaN class logit or objectness drops its anchor
 * (its score is NaN, as in YOLOX); an infinite box is kept and suppresses
 * nothing (its IoUs are NaN). */
static void test_nonfinite_logits(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    put(&s, 0, 0, 16, 16, 16, 16, 8, 0, 3.0f);
    *ts_at(&s, 0, 0, 5 + 2, 0, 0) = NAN;       /* a NaN beside a high class */
    put(&s, 0, 1, 48, 16, 16, 16, 8, 1, 3.0f);
    *ts_at(&s, 0, 0, 4, 0, 1) = NAN;           /* NaN objectness */
    put(&s, 0, 2, 80, 16, 16, 16, 8, 1, 3.0f);
    *ts_at(&s, 0, 0, 2, 0, 2) = 100.0f;        /* w = inf */
    put(&s, 0, 3, 84, 16, 16, 16, 8, 1, 2.5f); /* overlaps that box */
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    cfg.check_finite = 0;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, CAP);
    result r;
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &p, r.det, r.counts, r.found), YOLOXLOSS_OK);
    assert_int_equal(r.counts[0], 2);
    assert_true(isinf(r.det[0].x2) && r.det[0].cls == 1);
    assert_true(r.det[1].x1 == 76);
    dr_det ref[CAP];
    assert_int_equal(dr_postprocess(&s, 0, 0, 0.5f, 0.45, 0, ref, CAP, NULL), 2);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* Random scenes: every dtype mix, fused and split, both arithmetics, class
 * aware and agnostic, several thresholds and caps: the reference's
 * detections, bitwise, and its counts. */
static void test_random_against_reference(void **state) {
    (void)state;
    tu_rng r = {301};
    const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                          BF16 = YOLOXLOSS_DTYPE_BFLOAT16;
    const yoloxloss_dtype mixes[4][3] = {{F32, F32, F32}, {F16, F16, F16}, {BF16, BF16, BF16}, {F16, BF16, F32}};
    const float conf[4] = {0.05f, 0.3f, 0.7f, 0.0f};
    const double nms[4] = {0.45, 0.65, 0.2, 0.0};
    int total_kept = 0, total_suppressed = 0, capped = 0;
    for (int rep = 0; rep < 16; rep++) {
        ts_scene s;
        ts_scene_make(&s, tu_int(&r, 1, 3), tu_int(&r, 1, 9), 3, 12 + 4 * tu_int(&r, 0, 2), 0, tu_next(&r));
        /* boxes of 8 to 60 px around their anchors, many overlapping */
        for (int l = 0; l < s.L; l++)
            for (int b = 0; b < s.B; b++)
                for (int i = 0; i < s.lv[l].height; i++)
                    for (int j = 0; j < s.lv[l].width; j++)
                        for (int c = 0; c < 4; c++)
                            *ts_at(&s, l, b, c, i, j) = c < 2 ? tu_rangef(&r, -1, 2) : tu_rangef(&r, 0, 2);
        ts_typed_scene t;
        ts_typed_make(&t, &s, mixes[rep % 4], rep % 2);
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1 + rep % 2);
        const int mmdet = rep % 3 == 2;
        cfg.arithmetic = mmdet ? YOLOXLOSS_ARITHMETIC_MMDET : YOLOXLOSS_ARITHMETIC_YOLOX;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        const int cap = rep % 5 == 4 ? 3 : 2000;
        const yoloxloss_detect_params p = params(conf[rep % 4], nms[(rep / 4) % 4], rep % 3 == 1, cap);
        yoloxloss_detection *det = malloc((size_t)s.B * (size_t)cap * sizeof *det);
        dr_det *want = malloc((size_t)cap * sizeof *want);
        int32_t counts[3], found[3];
        assert_true(det && want);
        assert_int_equal(yoloxloss_detect(ctx, s.B, t.lv, &p, det, counts, found), YOLOXLOSS_OK);
        for (int b = 0; b < s.B; b++) {
            int candidates;
            const int kept = dr_postprocess(&s, mmdet, b, p.score_threshold, p.nms_threshold, p.class_agnostic,
                                            want, cap, &candidates);
            total_kept += kept;
            total_suppressed += candidates - kept;
            capped += kept > cap;
            assert_int_equal(found[b], kept);
            assert_int_equal(counts[b], kept < cap ? kept : cap);
            for (int k = 0; k < counts[b]; k++) {
                const yoloxloss_detection *d = &det[(size_t)b * (size_t)cap + (size_t)k];
                const dr_det *w = &want[k];
                const float got[7] = {d->x1, d->y1, d->x2, d->y2, d->obj, d->cls_conf, d->score};
                const float exp[7] = {w->x1, w->y1, w->x2, w->y2, w->obj, w->conf, w->score};
                if (memcmp(got, exp, sizeof got) != 0 || d->cls != w->cls)
                    fail_msg("rep %d, image %d, detection %d (anchor %d): differs from the reference", rep, b, k,
                             w->anchor);
            }
        }
        free(det);
        free(want);
        yoloxloss_destroy(ctx);
        ts_typed_free(&t);
        ts_scene_free(&s);
    }
    /* the scenes exercise every rule: detections kept, suppressed, and capped */
    printf("random scenes: %d detections kept, %d suppressed, %d images capped\n", total_kept, total_suppressed,
           capped);
    assert_true(total_kept >= 100 && total_suppressed >= 100 && capped >= 2);
}

static void test_params_defaults(void **state) {
    (void)state;
    yoloxloss_detect_params p;
    memset(&p, 0x5a, sizeof p);
    yoloxloss_detect_params_defaults(&p);
    assert_true(p.score_threshold == 0.7f && p.nms_threshold == 0.45);
    assert_int_equal(p.class_agnostic, 0);
    assert_int_equal(p.max_detections, 100);
    yoloxloss_detect_params_defaults(NULL); /* accepted, does nothing */
}

/* detect must fail with `want` and a message holding `needle`, writing
 * nothing into detections, counts or found. */
static void expect_detect_error(yoloxloss_context *ctx, int B, const yoloxloss_level *lv,
                                const yoloxloss_detect_params *p, int null_out, yoloxloss_status want,
                                const char *needle) {
    result r;
    memset(&r, 0x5a, sizeof r);
    const result before = r;
    const yoloxloss_status st = yoloxloss_detect(ctx, B, lv, p, null_out == 1 ? NULL : r.det,
                                                 null_out == 2 ? NULL : r.counts, r.found);
    if (st != want) fail_msg("%s: status %d (%s), expected %d", needle, (int)st, yoloxloss_last_error(ctx), (int)want);
    if (!strstr(yoloxloss_last_error(ctx), needle))
        fail_msg("message \"%s\" lacks \"%s\"", yoloxloss_last_error(ctx), needle);
    assert_memory_equal(&r, &before, sizeof r);
}

static void test_detect_errors(void **state) {
    (void)state;
    ts_scene s;
    hand_scene(&s, 1);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_detect_params p = params(0.5f, 0.45, 0, 4);
    result r;
    assert_int_equal(yoloxloss_detect(NULL, 1, s.lv, &p, r.det, r.counts, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_string_equal(yoloxloss_last_error(NULL), "ctx is NULL");
    expect_detect_error(ctx, 1, s.lv, NULL, 0, YOLOXLOSS_ERR_NULL_ARGUMENT, "params is NULL");
    expect_detect_error(ctx, 1, s.lv, &p, 1, YOLOXLOSS_ERR_NULL_ARGUMENT, "detections is NULL");
    expect_detect_error(ctx, 1, s.lv, &p, 2, YOLOXLOSS_ERR_NULL_ARGUMENT, "counts is NULL");
    const float bad_f[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        yoloxloss_detect_params q = p;
        q.score_threshold = bad_f[k];
        expect_detect_error(ctx, 1, s.lv, &q, 0, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.score_threshold is");
        q = p;
        q.nms_threshold = (double)bad_f[k];
        expect_detect_error(ctx, 1, s.lv, &q, 0, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.nms_threshold is");
    }
    const int bad_cap[2] = {0, -5};
    for (int k = 0; k < 2; k++) {
        yoloxloss_detect_params q = p;
        q.max_detections = bad_cap[k];
        expect_detect_error(ctx, 1, s.lv, &q, 0, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.max_detections is");
    }
    /* the level checks of decode and forward */
    expect_detect_error(ctx, 0, s.lv, &p, 0, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is 0");
    expect_detect_error(ctx, 1, NULL, &p, 0, YOLOXLOSS_ERR_NULL_ARGUMENT, "levels is NULL");
    yoloxloss_level lv = s.lv[0];
    lv.width = 0;
    expect_detect_error(ctx, 1, &lv, &p, 0, YOLOXLOSS_ERR_INVALID_SHAPE, "level 0: grid is 4 x 0");
    *ts_at(&s, 0, 0, 4, 2, 3) = INFINITY;
    expect_detect_error(ctx, 1, s.lv, &p, 0, YOLOXLOSS_ERR_NONFINITE_INPUT, "level 0, image 0, channel 4 (obj)");
    yoloxloss_destroy(ctx);

    /* INT32_MAX images x INT32_MAX detections do not fit in size_t (the
     * one-anchor level is never read: validation fails first) */
    if (sizeof(size_t) >= 8) {
        static float fake[8];
        static const float one[1] = {8.0f};
        cfg.num_levels = 1;
        cfg.strides = one;
        cfg.check_finite = 0;
        ctx = ts_create_ok(&cfg);
        const yoloxloss_level tiny = {1, 1, fake, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32};
        p.max_detections = INT32_MAX;
        expect_detect_error(ctx, INT32_MAX, &tiny, &p, 0, YOLOXLOSS_ERR_SIZE_OVERFLOW, "params.max_detections");
        yoloxloss_destroy(ctx);
    }
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlap_one_class),
        cmocka_unit_test(test_overlap_two_classes),
        cmocka_unit_test(test_thresholds_at_boundary),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_cap_and_found),
        cmocka_unit_test(test_empty_images),
        cmocka_unit_test(test_nonfinite_logits),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_params_defaults),
        cmocka_unit_test(test_detect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
