/* The smallest gt boxes: one whose float32 area w*h underflows to 0 is
 * refused (ERR_INVALID_BOX), in both arithmetics; the smallest ones
 * accepted (areas of 2^-149, subnormal areas, subnormal sides, odd
 * multiples of the smallest subnormal whose half rounds) give a finite
 * loss and a finite gradient under every box loss, both arithmetics, both
 * assigners, L1 on and off, against predictions of size 0, of the gt's
 * size and huge. docs/reliability.md, section 1 and "sane labels". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

#define GRID 2
#define CLASSES 2
#define CHANNELS (5 + CLASSES)
#define ELEMS (CHANNELS * GRID * GRID)

static const float STRIDE[1] = {8.0f};

/* One image, one 2 x 2 level of stride 8, fused float32, the given boxes
 * (class 1 each). */
typedef struct {
    float out[ELEMS], grad[ELEMS];
    int32_t num_gt[1], classes[4];
    float boxes[16];
    yoloxloss_level lv;
    yoloxloss_level_grad g;
    yoloxloss_batch batch;
} tiny_step;

static void step_init(tiny_step *s, int n_boxes, const float (*boxes)[4]) {
    memset(s, 0, sizeof *s);
    s->num_gt[0] = n_boxes;
    for (int r = 0; r < n_boxes; r++) {
        s->classes[r] = 1;
        memcpy(s->boxes + 4 * r, boxes[r], sizeof boxes[r]);
    }
    s->lv = (yoloxloss_level){GRID, GRID, s->out, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32};
    s->g.fused = s->grad;
    s->batch = (yoloxloss_batch){1, &s->lv, s->num_gt, s->classes, s->boxes, NULL};
}

/* Every anchor predicts a box centred on its cell's corner (tx = ty = 0:
 * anchor (0, 0) on the origin, where the tiny gts lie) of side
 * exp(tw) * 8, exp(th) * 8; objectness and class logits 0.5. */
static void step_predict(tiny_step *s, float tw, float th) {
    const size_t hw = GRID * GRID;
    for (size_t q = 0; q < hw; q++) {
        s->out[q] = s->out[hw + q] = 0.0f;
        s->out[2 * hw + q] = tw;
        s->out[3 * hw + q] = th;
        for (int c = 4; c < CHANNELS; c++) s->out[(size_t)c * hw + q] = 0.5f;
    }
}

static yoloxloss_context *tiny_context(yoloxloss_iou_loss loss, yoloxloss_arithmetic arith,
                                       yoloxloss_assigner assigner, int use_l1) {
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = CLASSES;
    cfg.num_levels = 1;
    cfg.strides = STRIDE;
    cfg.num_threads = 1;
    cfg.check_finite = 1;
    cfg.iou_loss = loss;
    cfg.arithmetic = arith;
    cfg.assigner = assigner;
    cfg.use_l1 = use_l1;
    return ts_create_ok(&cfg);
}

/* The box and others whose exact area is at most 2^-150 (which
 * rounds to 0, a tie going to even): image 0, label 1 of two. */
static void test_underflowing_area_refused(void **state) {
    (void)state;
    const float bad[5][4] = {
        {0.0f, 0.0f, 1e-25f, 1e-25f},               /* the issue's: 1e-50 */
        {0.0f, 0.0f, 0x1p-75f, 0x1p-75f},           /* exactly 2^-150: a tie, to 0 */
        {3.0f, 4.0f, 0x1p-149f, 0.5f},              /* the smallest subnormal side times 1/2 */
        {0.0f, 0.0f, 1e-30f, 1e-20f},
        {-1e-40f, 2e-40f, 0x1.fffffep-76f, 0x1p-75f}, /* just below 2^-150 */
    };
    for (int arith = 0; arith < 2; arith++) {
        yoloxloss_context *ctx = tiny_context(YOLOXLOSS_IOU_LOSS_IOU, (yoloxloss_arithmetic)arith,
                                              YOLOXLOSS_ASSIGNER_YOLOX, 0);
        for (int k = 0; k < 5; k++) {
            const float boxes[2][4] = {{8.0f, 8.0f, 6.0f, 6.0f}, {bad[k][0], bad[k][1], bad[k][2], bad[k][3]}};
            tiny_step s;
            step_init(&s, 2, boxes);
            step_predict(&s, -100.0f, -100.0f);
            ts_expect_refused(ctx, &s.batch, YOLOXLOSS_ERR_INVALID_BOX, "image 0, label 1", "underflows");
        }
        yoloxloss_destroy(ctx);
    }
}

/* Every loss of the last forward and every gradient element of a backward
 * finite; `what` names the case. */
static void expect_finite_step(yoloxloss_context *ctx, tiny_step *s, const char *what) {
    yoloxloss_losses l;
    const yoloxloss_status st = yoloxloss_forward(ctx, &s->batch, &l);
    if (st != YOLOXLOSS_OK) fail_msg("%s: status %d (%s)", what, (int)st, yoloxloss_last_error(ctx));
    const float terms[6] = {l.total, l.iou, l.obj, l.cls, l.l1, l.normalizer};
    for (int i = 0; i < 6; i++)
        if (!isfinite(terms[i])) fail_msg("%s: loss term %d is %g", what, i, (double)terms[i]);
    if (l.num_fg < 1) fail_msg("%s: no foreground anchor, the box terms were not reached", what);
    const yoloxloss_upstream up = {1.0f, 0.5f, 0.0f, 0.25f, 1.0f};
    for (int q = 0; q < ELEMS; q++) s->grad[q] = NAN;
    assert_int_equal(yoloxloss_backward(ctx, &s->g, &up, 0), YOLOXLOSS_OK);
    for (int q = 0; q < ELEMS; q++)
        if (!isfinite(s->grad[q])) fail_msg("%s: gradient element %d is %g", what, q, (double)s->grad[q]);
}

/* The smallest boxes accepted, at the origin, where float32 draws their
 * corners exactly (up to the rounding of half an odd subnormal side). */
static const float SMALLEST[8][4] = {
    {0.0f, 0.0f, 0x1.000002p-75f, 0x1p-75f}, /* area 2^-150 (1 + 2^-23): rounds up to 2^-149 */
    {0.0f, 0.0f, 0x1p-149f, 1.0f},          /* a side of the smallest subnormal, area 2^-149 */
    {0.0f, 0.0f, 0x3p-149f, 0.5f},          /* half the side rounds: corners 4 x 2^-150 apart */
    {0.0f, 0.0f, 1e-20f, 1e-20f},           /* a subnormal area */
    {0.0f, 0.0f, 0x1p-63f, 0x1p-63f},       /* the smallest normal area */
    {0.0f, 0.0f, 1e-30f, 1e6f},             /* a tiny side next to a huge one */
    {0x1p-100f, -0x1p-100f, 0x1p-100f, 0x1p-40f},
    {12.0f, 12.0f, 10.0f, 10.0f},           /* an ordinary box, for comparison */
};

static void test_smallest_accepted_boxes_finite(void **state) {
    (void)state;
    static const char *loss_names[7] = {"iou", "giou", "iou_linear", "diou", "ciou", "eiou", "siou"};
    int cases = 0;
    for (int loss = 0; loss <= (int)YOLOXLOSS_IOU_LOSS_SIOU; loss++)
        for (int arith = 0; arith < 2; arith++)
            for (int assigner = 0; assigner < 2; assigner++)
                for (int l1 = 0; l1 < 2; l1++) {
                    yoloxloss_context *ctx =
                        tiny_context((yoloxloss_iou_loss)loss, (yoloxloss_arithmetic)arith,
                                     (yoloxloss_assigner)assigner, l1);
                    for (int k = 0; k < 8; k++) {
                        const float *gt = SMALLEST[k];
                        /* size 0 (exp underflows), subnormal, the gt's own
                         * size (up to exp's rounding), 8 px, 3.9e9 px */
                        const float tw_match = fmaxf(logf(gt[2] / STRIDE[0]), -103.0f);
                        const float th_match = fmaxf(logf(gt[3] / STRIDE[0]), -103.0f);
                        const float preds[5][2] = {
                            {-200.0f, -200.0f}, {-100.0f, -95.0f}, {tw_match, th_match}, {0.0f, 0.0f}, {20.0f, 20.0f}};
                        for (int p = 0; p < 5; p++) {
                            tiny_step s;
                            step_init(&s, 1, &SMALLEST[k]);
                            step_predict(&s, preds[p][0], preds[p][1]);
                            char what[200];
                            snprintf(what, sizeof what, "%s, arithmetic %d, assigner %d, l1 %d, gt (%a, %a, %a, %a), "
                                     "tw %g th %g", loss_names[loss], arith, assigner, l1, (double)gt[0],
                                     (double)gt[1], (double)gt[2], (double)gt[3], (double)preds[p][0],
                                     (double)preds[p][1]);
                            expect_finite_step(ctx, &s, what);
                            cases++;
                        }
                    }
                    yoloxloss_destroy(ctx);
                }
    assert_int_equal(cases, 7 * 2 * 2 * 2 * 8 * 5);
}

/* The refusal is the float32 product's: a box whose product underflows is
 * refused with its sides in either order, and the same box with one side
 * an ulp longer (a product just above 2^-150) is accepted. */
static void test_boundary_is_the_float32_product(void **state) {
    (void)state;
    yoloxloss_context *ctx = tiny_context(YOLOXLOSS_IOU_LOSS_SIOU, YOLOXLOSS_ARITHMETIC_YOLOX,
                                          YOLOXLOSS_ASSIGNER_YOLOX, 1);
    const float pairs[3][2] = {{0x1p-75f, 0x1p-75f}, {0x1p-149f, 0.5f}, {0x1p-100f, 0x1p-50f}};
    for (int k = 0; k < 3; k++) {
        const float w = pairs[k][0], h = pairs[k][1];
        assert_true(w * h == 0.0f && h * w == 0.0f);
        const float refused[1][4] = {{0.0f, 0.0f, h, w}};
        tiny_step s;
        step_init(&s, 1, refused);
        step_predict(&s, -100.0f, -100.0f);
        ts_expect_refused(ctx, &s.batch, YOLOXLOSS_ERR_INVALID_BOX, "image 0, label 0", "area");
        const float up = nextafterf(h, INFINITY);
        assert_true(w * up > 0.0f);
        const float accepted[1][4] = {{0.0f, 0.0f, w, up}};
        step_init(&s, 1, accepted);
        step_predict(&s, -100.0f, -100.0f);
        expect_finite_step(ctx, &s, "just above the boundary");
    }
    yoloxloss_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_underflowing_area_refused),
        cmocka_unit_test(test_smallest_accepted_boxes_finite),
        cmocka_unit_test(test_boundary_is_the_float32_product),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
