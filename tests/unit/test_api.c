/* The public API only: config, errors, loss values, gradients, options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"
#include "yoloxloss.h"

#define C 3
#define NL 2
#define MAXB 4
#define MAXG 16
#define CH (5 + C)

/* ---- a tiny batch: level 0 4x4 stride 8, level 1 2x2 stride 16 ---------- */

typedef struct {
    int B;
    int H[NL], W[NL];
    float s[NL];
    float *fused[NL];                  /* [B, 5+C, H, W] */
    float *reg[NL], *obj[NL], *cls[NL]; /* split copies */
    yoloxloss_level lv_fused[NL], lv_split[NL];
    int32_t num_gt[MAXB];
    int32_t classes[MAXG];
    float boxes[MAXG * 4];
    yoloxloss_batch batch; /* fused layout */
    yoloxloss_batch batch_split;
} scene;

static size_t hw_of(const scene *sc, int l) { return (size_t)(sc->H[l] * sc->W[l]); }

static size_t level_elems(const scene *sc, int l) { return (size_t)sc->B * CH * hw_of(sc, l); }

/* element (b, channel ch, row i, col j) of level l, fused layout */
static float *at(const scene *sc, int l, int b, int ch, int i, int j) {
    return sc->fused[l] + (((size_t)b * CH + (size_t)ch) * hw_of(sc, l) + (size_t)(i * sc->W[l] + j));
}

static int total_gt(const scene *sc) {
    int t = 0;
    for (int b = 0; b < sc->B; b++) t += sc->num_gt[b];
    return t;
}

/* copies the fused buffers into the split ones */
static void scene_sync_split(scene *sc) {
    for (int l = 0; l < NL; l++) {
        size_t hw = hw_of(sc, l);
        for (int b = 0; b < sc->B; b++) {
            const float *base = sc->fused[l] + (size_t)b * CH * hw;
            memcpy(sc->reg[l] + (size_t)b * 4 * hw, base, 4 * hw * sizeof(float));
            memcpy(sc->obj[l] + (size_t)b * hw, base + 4 * hw, hw * sizeof(float));
            memcpy(sc->cls[l] + (size_t)b * C * hw, base + 5 * hw, C * hw * sizeof(float));
        }
    }
}

static void scene_make(scene *sc, int B, uint64_t seed) {
    memset(sc, 0, sizeof *sc);
    tu_rng r = {seed};
    sc->B = B;
    const int H[NL] = {4, 2};
    const float s[NL] = {8.0f, 16.0f};
    for (int l = 0; l < NL; l++) {
        sc->H[l] = sc->W[l] = H[l];
        sc->s[l] = s[l];
        size_t hw = hw_of(sc, l);
        sc->fused[l] = malloc(level_elems(sc, l) * sizeof(float));
        sc->reg[l] = malloc((size_t)B * 4 * hw * sizeof(float));
        sc->obj[l] = malloc((size_t)B * hw * sizeof(float));
        sc->cls[l] = malloc((size_t)B * C * hw * sizeof(float));
        assert_non_null(sc->fused[l]);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < H[l]; i++)
                for (int j = 0; j < H[l]; j++) {
                    *at(sc, l, b, 0, i, j) = tu_rangef(&r, 0.1, 0.9);
                    *at(sc, l, b, 1, i, j) = tu_rangef(&r, 0.1, 0.9);
                    *at(sc, l, b, 2, i, j) = tu_rangef(&r, l == 0 ? 0.3 : -0.4, l == 0 ? 1.3 : 0.6);
                    *at(sc, l, b, 3, i, j) = tu_rangef(&r, l == 0 ? 0.3 : -0.4, l == 0 ? 1.3 : 0.6);
                    *at(sc, l, b, 4, i, j) = tu_rangef(&r, -3, 3);
                    for (int k = 0; k < C; k++) *at(sc, l, b, 5 + k, i, j) = tu_rangef(&r, -3, 3);
                }
        sc->lv_fused[l].height = sc->lv_split[l].height = H[l];
        sc->lv_fused[l].width = sc->lv_split[l].width = H[l];
        sc->lv_fused[l].fused = sc->fused[l];
        sc->lv_split[l].reg = sc->reg[l];
        sc->lv_split[l].obj = sc->obj[l];
        sc->lv_split[l].cls = sc->cls[l];
    }
    scene_sync_split(sc);
    int row = 0;
    for (int b = 0; b < B; b++) {
        sc->num_gt[b] = tu_int(&r, 1, 3);
        for (int g = 0; g < sc->num_gt[b]; g++, row++) {
            sc->classes[row] = tu_int(&r, 0, C - 1);
            sc->boxes[4 * row] = tu_rangef(&r, 4, 28);
            sc->boxes[4 * row + 1] = tu_rangef(&r, 4, 28);
            sc->boxes[4 * row + 2] = tu_rangef(&r, 6, 28);
            sc->boxes[4 * row + 3] = tu_rangef(&r, 6, 28);
        }
    }
    sc->batch.num_images = B;
    sc->batch.levels = sc->lv_fused;
    sc->batch.num_gt = sc->num_gt;
    sc->batch.gt_classes = sc->classes;
    sc->batch.gt_boxes = sc->boxes;
    sc->batch_split = sc->batch;
    sc->batch_split.levels = sc->lv_split;
}

static void scene_free(scene *sc) {
    for (int l = 0; l < NL; l++) {
        free(sc->fused[l]);
        free(sc->reg[l]);
        free(sc->obj[l]);
        free(sc->cls[l]);
    }
}

/* gradient buffers in fused and split layout */
typedef struct {
    float *fused[NL];
    float *reg[NL], *obj[NL], *cls[NL];
    yoloxloss_level_grad g_fused[NL], g_split[NL];
} grads;

static void grads_make(grads *g, const scene *sc, float fill) {
    memset(g, 0, sizeof *g);
    for (int l = 0; l < NL; l++) {
        size_t hw = hw_of(sc, l), n = level_elems(sc, l);
        g->fused[l] = malloc(n * sizeof(float));
        g->reg[l] = malloc((size_t)sc->B * 4 * hw * sizeof(float));
        g->obj[l] = malloc((size_t)sc->B * hw * sizeof(float));
        g->cls[l] = malloc((size_t)sc->B * C * hw * sizeof(float));
        for (size_t q = 0; q < n; q++) g->fused[l][q] = fill;
        for (size_t q = 0; q < (size_t)sc->B * 4 * hw; q++) g->reg[l][q] = fill;
        for (size_t q = 0; q < (size_t)sc->B * hw; q++) g->obj[l][q] = fill;
        for (size_t q = 0; q < (size_t)sc->B * C * hw; q++) g->cls[l][q] = fill;
        g->g_fused[l].fused = g->fused[l];
        g->g_split[l].reg = g->reg[l];
        g->g_split[l].obj = g->obj[l];
        g->g_split[l].cls = g->cls[l];
    }
}

static void grads_free(grads *g) {
    for (int l = 0; l < NL; l++) {
        free(g->fused[l]);
        free(g->reg[l]);
        free(g->obj[l]);
        free(g->cls[l]);
    }
}

static int all_equal(const float *x, size_t n, float v) {
    for (size_t q = 0; q < n; q++)
        if (memcmp(&x[q], &v, sizeof v) != 0) return 0;
    return 1;
}

static const float SMALL_STRIDES[2] = {8.0f, 16.0f};

static void cfg_small(yoloxloss_config *cfg) {
    yoloxloss_config_defaults(cfg);
    cfg->num_classes = C;
    cfg->num_levels = NL;
    cfg->strides = SMALL_STRIDES;
    cfg->num_threads = 1;
    cfg->check_finite = 1;
}

static yoloxloss_context *make_ctx(const yoloxloss_config *cfg) {
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(cfg, &ctx), YOLOXLOSS_OK);
    assert_non_null(ctx);
    return ctx;
}

static const yoloxloss_losses SENTINEL_LOSSES = {-1.25f, -2.5f, -3.75f, -4.5f, -5.25f, -6.5f, -7.75f, -99, -98};

static void assert_losses_untouched(const yoloxloss_losses *l) {
    assert_true(l->total == SENTINEL_LOSSES.total && l->iou == SENTINEL_LOSSES.iou && l->obj == SENTINEL_LOSSES.obj &&
                l->cls == SENTINEL_LOSSES.cls && l->l1 == SENTINEL_LOSSES.l1 &&
                l->normalizer == SENTINEL_LOSSES.normalizer && l->fg_ratio == SENTINEL_LOSSES.fg_ratio &&
                l->num_fg == SENTINEL_LOSSES.num_fg && l->num_gt == SENTINEL_LOSSES.num_gt);
}

/* ---- config ------------------------------------------------------------ */

static void test_config_defaults(void **state) {
    (void)state;
    yoloxloss_config c;
    memset(&c, 0x5A, sizeof c);
    yoloxloss_config_defaults(&c);
    assert_int_equal(c.num_classes, 80);
    assert_int_equal(c.num_levels, 3);
    assert_true(c.strides[0] == 8.0f && c.strides[1] == 16.0f && c.strides[2] == 32.0f);
    assert_int_equal(c.assigner, YOLOXLOSS_ASSIGNER_YOLOX);
    assert_true(c.center_radius == 0.0f);
    assert_int_equal(c.candidate_topk, 10);
    assert_true(c.iou_cost_weight == 3.0f);
    assert_true(c.cls_cost_weight == 1.0f);
    assert_int_equal(c.iou_loss, YOLOXLOSS_IOU_LOSS_IOU);
    assert_int_equal(c.use_l1, 0);
    assert_true(c.reg_weight == 5.0f && c.obj_weight == 1.0f && c.cls_weight == 1.0f && c.l1_weight == 1.0f);
    assert_int_equal(c.num_threads, 0);
#ifdef NDEBUG
    assert_int_equal(c.check_finite, 0);
#else
    assert_int_equal(c.check_finite, 1);
#endif
    char msg[256] = "x";
    assert_int_equal(yoloxloss_config_validate(&c, msg, sizeof msg), YOLOXLOSS_OK);
    assert_string_equal(msg, "");
    yoloxloss_config_defaults(NULL); /* accepted, no crash */
}

typedef struct {
    const char *field;
    void (*mutate)(yoloxloss_config *c, int variant);
    int variants;
} bad_field;

static void m_num_classes(yoloxloss_config *c, int v) { c->num_classes = v ? -3 : 0; }
static void m_num_levels(yoloxloss_config *c, int v) { c->num_levels = v == 0 ? 0 : -1; }
static float bad_strides[4][3] = {
    {8.0f, 0.0f, 32.0f}, {8.0f, -8.0f, 32.0f}, {8.0f, NAN, 32.0f}, {8.0f, INFINITY, 32.0f}};
static void m_strides(yoloxloss_config *c, int v) { c->strides = bad_strides[v]; }
static void m_assigner(yoloxloss_config *c, int v) { c->assigner = (yoloxloss_assigner)(v ? -1 : 2); }
static void m_center_radius(yoloxloss_config *c, int v) {
    const float bad[3] = {-1.0f, NAN, INFINITY};
    c->center_radius = bad[v];
}
static void m_topk(yoloxloss_config *c, int v) { c->candidate_topk = v ? -5 : 0; }
static void m_iou_cost(yoloxloss_config *c, int v) { c->iou_cost_weight = v ? NAN : -0.5f; }
static void m_cls_cost(yoloxloss_config *c, int v) { c->cls_cost_weight = v ? INFINITY : -1.0f; }
static void m_iou_loss(yoloxloss_config *c, int v) { c->iou_loss = (yoloxloss_iou_loss)(v ? -1 : 2); }
static void m_reg_weight(yoloxloss_config *c, int v) { c->reg_weight = v ? INFINITY : NAN; }
static void m_obj_weight(yoloxloss_config *c, int v) { c->obj_weight = v ? -INFINITY : NAN; }
static void m_cls_weight(yoloxloss_config *c, int v) { c->cls_weight = v ? INFINITY : NAN; }
static void m_l1_weight(yoloxloss_config *c, int v) { c->l1_weight = v ? INFINITY : NAN; }
static void m_num_threads(yoloxloss_config *c, int v) { c->num_threads = v ? -100 : -1; }

static const bad_field BAD_FIELDS[] = {
    {"num_classes", m_num_classes, 2},     {"num_levels", m_num_levels, 2},
    {"strides", m_strides, 4},             {"assigner", m_assigner, 2},
    {"center_radius", m_center_radius, 3}, {"candidate_topk", m_topk, 2},
    {"iou_cost_weight", m_iou_cost, 2},    {"cls_cost_weight", m_cls_cost, 2},
    {"iou_loss", m_iou_loss, 2},           {"reg_weight", m_reg_weight, 2},
    {"obj_weight", m_obj_weight, 2},       {"cls_weight", m_cls_weight, 2},
    {"l1_weight", m_l1_weight, 2},         {"num_threads", m_num_threads, 2},
};

static void test_config_validate_rejects_each_field(void **state) {
    (void)state;
    for (size_t f = 0; f < sizeof BAD_FIELDS / sizeof BAD_FIELDS[0]; f++)
        for (int v = 0; v < BAD_FIELDS[f].variants; v++) {
            yoloxloss_config c;
            yoloxloss_config_defaults(&c);
            BAD_FIELDS[f].mutate(&c, v);
            char msg[256];
            memset(msg, 'Z', sizeof msg);
            yoloxloss_status st = yoloxloss_config_validate(&c, msg, sizeof msg);
            if (st != YOLOXLOSS_ERR_INVALID_CONFIG)
                fail_msg("field %s variant %d: status %d", BAD_FIELDS[f].field, v, (int)st);
            assert_non_null(memchr(msg, '\0', sizeof msg));
            assert_true(strlen(msg) > 0);
            if (!strstr(msg, BAD_FIELDS[f].field))
                fail_msg("field %s variant %d: message \"%s\" does not name it", BAD_FIELDS[f].field, v, msg);
            /* create refuses it too and leaves *out NULL */
            yoloxloss_context *ctx = (yoloxloss_context *)&c;
            assert_int_equal(yoloxloss_create(&c, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
            assert_null(ctx);
            /* a message buffer of NULL / capacity 0 is fine */
            assert_int_equal(yoloxloss_config_validate(&c, NULL, 0), YOLOXLOSS_ERR_INVALID_CONFIG);
            char tiny[8];
            memset(tiny, 'Z', sizeof tiny);
            assert_int_equal(yoloxloss_config_validate(&c, tiny, sizeof tiny), YOLOXLOSS_ERR_INVALID_CONFIG);
            assert_true(strlen(tiny) < sizeof tiny);
        }
    /* strides beyond num_levels are not looked at */
    yoloxloss_config c;
    yoloxloss_config_defaults(&c);
    const float longer[4] = {8.0f, 16.0f, 32.0f, -1.0f};
    c.strides = longer;
    assert_int_equal(yoloxloss_config_validate(&c, NULL, 0), YOLOXLOSS_OK);
    /* NULL strides */
    c.strides = NULL;
    char why[64] = "";
    assert_int_equal(yoloxloss_config_validate(&c, why, sizeof why), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(why, "strides"));
    assert_int_equal(yoloxloss_create(&c, &(yoloxloss_context *){NULL}), YOLOXLOSS_ERR_NULL_ARGUMENT);
    /* the context keeps its own copy of the strides */
    float mine[2] = {8.0f, 16.0f};
    c.strides = mine;
    c.num_levels = 2;
    yoloxloss_context *own;
    assert_int_equal(yoloxloss_create(&c, &own), YOLOXLOSS_OK);
    mine[0] = -5.0f;
    assert_true(yoloxloss_get_config(own)->strides[0] == 8.0f);
    assert_true(yoloxloss_get_config(own)->strides != mine);
    yoloxloss_destroy(own);
    c.strides = longer;
    c.num_levels = 3;
    /* NULL config */
    char msg[64] = "";
    assert_int_equal(yoloxloss_config_validate(NULL, msg, sizeof msg), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_true(strlen(msg) > 0);
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(NULL, &ctx), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_null(ctx);
    assert_int_equal(yoloxloss_create(&c, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
}

static void test_create_get_config(void **state) {
    (void)state;
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.iou_loss = YOLOXLOSS_IOU_LOSS_GIOU;
    cfg.l1_weight = 2.5f;
    yoloxloss_context *ctx = make_ctx(&cfg);
    const yoloxloss_config *got = yoloxloss_get_config(ctx);
    assert_non_null(got);
    assert_true(got != &cfg);
    assert_int_equal(got->num_classes, C);
    assert_int_equal(got->iou_loss, YOLOXLOSS_IOU_LOSS_GIOU);
    assert_true(got->l1_weight == 2.5f);
    assert_null(yoloxloss_get_config(NULL));
    assert_string_equal(yoloxloss_last_error(ctx), "");
    assert_non_null(yoloxloss_last_error(NULL));
    assert_true(yoloxloss_num_anchors(ctx) == 0);
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(NULL);
}

static void test_status_strings(void **state) {
    (void)state;
    const yoloxloss_status all[] = {YOLOXLOSS_OK,
                                    YOLOXLOSS_ERR_NULL_ARGUMENT,
                                    YOLOXLOSS_ERR_INVALID_CONFIG,
                                    YOLOXLOSS_ERR_INVALID_SHAPE,
                                    YOLOXLOSS_ERR_SIZE_OVERFLOW,
                                    YOLOXLOSS_ERR_INVALID_LABEL,
                                    YOLOXLOSS_ERR_INVALID_BOX,
                                    YOLOXLOSS_ERR_NONFINITE_INPUT,
                                    YOLOXLOSS_ERR_OUT_OF_MEMORY,
                                    YOLOXLOSS_ERR_INVALID_ARGUMENT,
                                    YOLOXLOSS_ERR_NO_FORWARD};
    const size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = yoloxloss_status_string(all[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, yoloxloss_status_string(all[j])) == 0)
                fail_msg("statuses %d and %d share the string \"%s\"", (int)all[i], (int)all[j], s);
    }
    const char *u = yoloxloss_status_string((yoloxloss_status)1234);
    assert_non_null(u);
    assert_true(strlen(u) > 0);
}

/* ---- forward errors ------------------------------------------------------ */

/* runs forward expecting `want`, checks the losses are untouched, the
 * message is non-empty and holds every `needles` string */
static void expect_forward_error(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_status want,
                                 const char *const *needles, int n_needles, const char *what) {
    yoloxloss_losses l = SENTINEL_LOSSES;
    yoloxloss_status st = yoloxloss_forward(ctx, batch, &l);
    if (st != want) fail_msg("%s: status %d (%s), expected %d", what, (int)st, yoloxloss_last_error(ctx), (int)want);
    assert_losses_untouched(&l);
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
    scene sc;
    scene_make(&sc, 2, 1);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l = SENTINEL_LOSSES;

    assert_int_equal(yoloxloss_forward(NULL, &sc.batch, &l), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_losses_untouched(&l);
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

    yoloxloss_level lv[NL];
    memcpy(lv, sc.lv_fused, sizeof lv);
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
    memcpy(lv, sc.lv_fused, sizeof lv);
    lv[0].height = 50000;
    lv[0].width = 50000;
    expect_forward_error(ctx, &b, YOLOXLOSS_ERR_SIZE_OVERFLOW, NULL, 0, "huge grid");

    /* the context still works afterwards */
    l = SENTINEL_LOSSES;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_forward_label_and_box_errors(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 2);
    sc.num_gt[0] = 2;
    sc.num_gt[1] = 3; /* rows 0,1 | 2,3,4 */
    for (int g = 0; g < 5; g++) {
        sc.classes[g] = g % C;
        sc.boxes[4 * g] = 10.0f + (float)g;
        sc.boxes[4 * g + 1] = 12.0f;
        sc.boxes[4 * g + 2] = 10.0f;
        sc.boxes[4 * g + 3] = 9.0f;
    }
    yoloxloss_config cfg;
    cfg_small(&cfg);
    yoloxloss_context *ctx = make_ctx(&cfg);

    /* image 1, label 2 = row 4 */
    sc.classes[4] = C;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_INVALID_LABEL, (const char *const[]){"image 1", "label 2"}, 2,
                         "class == C");
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
    scene_free(&sc);
}

static void test_check_finite(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 3);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    yoloxloss_context *ctx = make_ctx(&cfg);
    /* NaN in level 1, image 1, channel 6 (class 1), row 1, col 0 */
    *at(&sc, 1, 1, 6, 1, 0) = NAN;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 1", "image 1", "channel 6"}, 3, "NaN cls");
    *at(&sc, 1, 1, 6, 1, 0) = 0.5f;
    /* +Inf in level 0, image 0, reg channel 2 (tw) */
    *at(&sc, 0, 0, 2, 3, 1) = INFINITY;
    expect_forward_error(ctx, &sc.batch, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 0", "image 0", "channel 2"}, 3, "Inf reg");
    *at(&sc, 0, 0, 2, 3, 1) = 0.5f;
    /* -Inf objectness in the split layout */
    scene_sync_split(&sc);
    sc.obj[0][1 * 16 + 5] = -INFINITY; /* image 1, level 0, position 5 */
    expect_forward_error(ctx, &sc.batch_split, YOLOXLOSS_ERR_NONFINITE_INPUT,
                         (const char *const[]){"level 0", "image 1", "channel 4"}, 3, "-Inf obj split");
    yoloxloss_destroy(ctx);

    /* with the check off, the same inputs are accepted */
    cfg.check_finite = 0;
    ctx = make_ctx(&cfg);
    *at(&sc, 1, 1, 6, 1, 0) = NAN;
    yoloxloss_losses l = SENTINEL_LOSSES;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &l), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

/* ---- backward errors ----------------------------------------------------- */

static void assert_grads_all(const grads *g, const scene *sc, float v) {
    for (int l = 0; l < NL; l++) {
        size_t hw = hw_of(sc, l);
        assert_true(all_equal(g->fused[l], level_elems(sc, l), v));
        assert_true(all_equal(g->reg[l], (size_t)sc->B * 4 * hw, v));
        assert_true(all_equal(g->obj[l], (size_t)sc->B * hw, v));
        assert_true(all_equal(g->cls[l], (size_t)sc->B * C * hw, v));
    }
}

static void test_backward_errors(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 4);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    yoloxloss_context *ctx = make_ctx(&cfg);
    grads g;
    const float S = -31.5f;
    grads_make(&g, &sc, S);

    assert_int_equal(yoloxloss_backward(NULL, g.g_fused, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    assert_true(strlen(yoloxloss_last_error(ctx)) > 0);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_get_assignment(NULL, NULL, NULL, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    yoloxloss_losses l = SENTINEL_LOSSES;
    assert_int_equal(yoloxloss_renormalize(ctx, 2.0f, &l), YOLOXLOSS_ERR_NO_FORWARD);
    assert_losses_untouched(&l);
    assert_grads_all(&g, &sc, S);

    /* fused inputs: split-only grads and NULL grads are refused */
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, NULL, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.g_split, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_true(strlen(yoloxloss_last_error(ctx)) > 0);
    assert_grads_all(&g, &sc, S);
    /* non-finite upstream is refused */
    yoloxloss_upstream up = {1.0f, NAN, 0.0f, 0.0f, 0.0f};
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, &up, 0), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    up.iou = 0.0f;
    up.total = INFINITY;
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, &up, 1), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_grads_all(&g, &sc, S);
    /* the forward is still held: a good call works */
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_OK);

    /* split inputs: fused-only grads, or a missing cls buffer, are refused */
    grads g2;
    grads_make(&g2, &sc, S);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, g2.g_fused, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    yoloxloss_level_grad partial[NL];
    memcpy(partial, g2.g_split, sizeof partial);
    partial[1].cls = NULL;
    assert_int_equal(yoloxloss_backward(ctx, partial, NULL, 0), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "level 1"));
    assert_grads_all(&g2, &sc, S);
    assert_int_equal(yoloxloss_backward(ctx, g2.g_split, NULL, 0), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");

    grads_free(&g);
    grads_free(&g2);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_forward_failure_clears_state(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 5);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    yoloxloss_context *ctx = make_ctx(&cfg);
    grads g;
    grads_make(&g, &sc, 7.0f);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(yoloxloss_num_anchors(ctx) == 20);
    sc.classes[0] = -5;
    l = SENTINEL_LOSSES;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_ERR_INVALID_LABEL);
    assert_losses_untouched(&l);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_renormalize(ctx, 3.0f, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_true(yoloxloss_num_anchors(ctx) == 0);
    assert_grads_all(&g, &sc, 7.0f);
    /* a NULL losses pointer also clears it */
    sc.classes[0] = 0;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    grads_free(&g);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

/* ---- values ---------------------------------------------------------------- */

/* level, row, col of anchor a (YOLOX order) */
static void anchor_pos(const scene *sc, int a, int *l, int *i, int *j) {
    *l = *i = *j = 0;
    for (int k = 0; k < NL; k++) {
        int hw = (int)hw_of(sc, k);
        if (a < hw) {
            *l = k;
            *i = a / sc->W[k];
            *j = a % sc->W[k];
            return;
        }
        a -= hw;
    }
    fail_msg("anchor out of range");
}

typedef struct {
    int32_t matched[MAXB * 20];
    float pred_iou[MAXB * 20];
    int32_t dk[MAXG];
} assignment;

static void get_assign(yoloxloss_context *ctx, assignment *as) {
    memset(as, 0, sizeof *as);
    assert_int_equal(yoloxloss_get_assignment(ctx, as->matched, as->pred_iou, as->dk), YOLOXLOSS_OK);
}

static int first_gt_row(const scene *sc, int b) {
    int r = 0;
    for (int k = 0; k < b; k++) r += sc->num_gt[k];
    return r;
}

/* expected loss terms (weighted, normalised by N) from an assignment, double */
static void expected_terms(const scene *sc, const yoloxloss_config *cfg, const assignment *as, double N,
                           double out[4]) {
    double iou = 0, obj = 0, cls = 0, l1 = 0;
    for (int b = 0; b < sc->B; b++)
        for (int a = 0; a < 20; a++) {
            int l, i, j;
            anchor_pos(sc, a, &l, &i, &j);
            int m = as->matched[b * 20 + a];
            obj += (double)tu_bce_logits_l(*at(sc, l, b, 4, i, j), m >= 0 ? 1 : 0);
            if (m < 0) continue;
            int row = first_gt_row(sc, b) + m;
            int c = sc->classes[row];
            for (int k = 0; k < C; k++)
                cls += (double)tu_bce_logits_l(*at(sc, l, b, 5 + k, i, j), k == c ? as->pred_iou[b * 20 + a] : 0.0);
            double s = sc->s[l];
            double t[4] = {*at(sc, l, b, 0, i, j), *at(sc, l, b, 1, i, j), *at(sc, l, b, 2, i, j),
                           *at(sc, l, b, 3, i, j)};
            double pb[4] = {(t[0] + j) * s, (t[1] + i) * s, exp(t[2]) * s, exp(t[3]) * s};
            const float *gb = sc->boxes + 4 * row;
            double gd[4] = {gb[0], gb[1], gb[2], gb[3]};
            iou += tu_iou_loss_d(pb, gd, cfg->iou_loss == YOLOXLOSS_IOU_LOSS_GIOU);
            double target[4] = {gd[0] / s - j, gd[1] / s - i, log(gd[2] / s + 1e-8), log(gd[3] / s + 1e-8)};
            for (int k = 0; k < 4; k++) l1 += fabs(t[k] - target[k]);
        }
    out[0] = cfg->reg_weight * iou / N;
    out[1] = cfg->obj_weight * obj / N;
    out[2] = cfg->cls_weight * cls / N;
    out[3] = cfg->use_l1 ? cfg->l1_weight * l1 / N : 0.0;
}

static void check_losses_against_assignment(yoloxloss_iou_loss type, int use_l1, uint64_t seed) {
    scene sc;
    scene_make(&sc, 3, seed);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.iou_loss = type;
    cfg.use_l1 = use_l1;
    cfg.reg_weight = 4.5f;
    cfg.obj_weight = 1.5f;
    cfg.cls_weight = 0.75f;
    cfg.l1_weight = 2.0f;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assignment as;
    get_assign(ctx, &as);
    int64_t fg = 0;
    for (int q = 0; q < sc.B * 20; q++) fg += as.matched[q] >= 0;
    assert_true(l.num_fg == fg);
    assert_true(fg > 0);
    assert_true(l.num_gt == total_gt(&sc));
    double N = fg > 1 ? (double)fg : 1.0;
    assert_true(l.normalizer == (float)N);
    TU_ASSERT_CLOSE(l.fg_ratio, N / (double)total_gt(&sc), 1e-6, 0);
    double want[4];
    expected_terms(&sc, &cfg, &as, N, want);
    TU_ASSERT_CLOSE(l.iou, want[0], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.obj, want[1], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.cls, want[2], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.l1, want[3], 1e-5, 1e-6);
    if (!use_l1) assert_true(l.l1 == 0.0f);
    TU_ASSERT_CLOSE(l.total, (double)l.iou + l.obj + l.cls + l.l1, 1e-6, 1e-6);
    TU_ASSERT_CLOSE(l.total, want[0] + want[1] + want[2] + want[3], 1e-5, 1e-6);

    /* gradients of obj (every anchor) and cls (fg only; 0 elsewhere) */
    grads g;
    grads_make(&g, &sc, NAN);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_OK);
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < 20; a++) {
            int lv, i, j;
            anchor_pos(&sc, a, &lv, &i, &j);
            int m = as.matched[b * 20 + a];
            size_t hw = hw_of(&sc, lv);
            size_t base = (size_t)b * CH * hw + (size_t)(i * sc.W[lv] + j);
            double x = *at(&sc, lv, b, 4, i, j);
            double want_obj = cfg.obj_weight * (tu_sigmoid(x) - (m >= 0 ? 1.0 : 0.0)) / N;
            TU_ASSERT_NEAR_CTX(g.fused[lv][base + 4 * hw], want_obj, 1e-6 * fabs(want_obj) + 1e-8, "obj b %d a %d",
                               b, a);
            int c = m >= 0 ? sc.classes[first_gt_row(&sc, b) + m] : -1;
            for (int k = 0; k < C; k++) {
                double xc = *at(&sc, lv, b, 5 + k, i, j);
                double want_cls =
                    m < 0 ? 0.0 : cfg.cls_weight * (tu_sigmoid(xc) - (k == c ? as.pred_iou[b * 20 + a] : 0.0)) / N;
                TU_ASSERT_NEAR_CTX(g.fused[lv][base + (size_t)(5 + k) * hw], want_cls, 1e-6 * fabs(want_cls) + 1e-8,
                                   "cls b %d a %d k %d", b, a, k);
            }
            if (m < 0)
                for (int k = 0; k < 4; k++) assert_true(g.fused[lv][base + (size_t)k * hw] == 0.0f);
        }
    grads_free(&g);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_losses_against_assignment(void **state) {
    (void)state;
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_IOU, 0, 11);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_IOU, 1, 12);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_GIOU, 1, 13);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_GIOU, 0, 14);
}

static void test_zero_gt_batch(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 6);
    sc.num_gt[0] = sc.num_gt[1] = 0;
    sc.batch.gt_classes = NULL;
    sc.batch.gt_boxes = NULL;
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    cfg.obj_weight = 1.5f;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(l.num_fg == 0);
    assert_true(l.num_gt == 0);
    assert_true(l.normalizer == 1.0f);
    assert_true(l.fg_ratio == 1.0f);
    assert_true(l.iou == 0.0f && l.cls == 0.0f && l.l1 == 0.0f);
    long double sum = 0;
    for (int lv = 0; lv < NL; lv++)
        for (int b = 0; b < sc.B; b++)
            for (int i = 0; i < sc.H[lv]; i++)
                for (int j = 0; j < sc.W[lv]; j++) sum += tu_bce_logits_l(*at(&sc, lv, b, 4, i, j), 0);
    TU_ASSERT_CLOSE(l.obj, 1.5 * (double)sum / 1.0, 1e-6, 0);
    TU_ASSERT_CLOSE(l.total, l.obj, 1e-7, 0);

    assignment as;
    memset(&as, 0x11, sizeof as);
    assert_int_equal(yoloxloss_get_assignment(ctx, as.matched, as.pred_iou, as.dk), YOLOXLOSS_OK);
    for (int q = 0; q < sc.B * 20; q++) {
        assert_int_equal(as.matched[q], -1);
        assert_true(as.pred_iou[q] == 0.0f);
    }
    grads g;
    grads_make(&g, &sc, NAN);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_OK);
    for (int lv = 0; lv < NL; lv++)
        for (int b = 0; b < sc.B; b++)
            for (int i = 0; i < sc.H[lv]; i++)
                for (int j = 0; j < sc.W[lv]; j++) {
                    size_t hw = hw_of(&sc, lv), base = (size_t)b * CH * hw + (size_t)(i * sc.W[lv] + j);
                    double want = 1.5 * tu_sigmoid(*at(&sc, lv, b, 4, i, j));
                    TU_ASSERT_CLOSE(g.fused[lv][base + 4 * hw], want, 1e-6, 1e-9);
                    for (int ch = 0; ch < CH; ch++)
                        if (ch != 4) assert_true(g.fused[lv][base + (size_t)ch * hw] == 0.0f);
                }
    /* mixed: one image with gts, one without */
    scene_free(&sc);
    scene_make(&sc, 2, 6);
    sc.num_gt[0] = 0;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(l.num_gt == sc.num_gt[1]);
    get_assign(ctx, &as);
    for (int q = 0; q < 20; q++) assert_int_equal(as.matched[q], -1);
    grads_free(&g);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_obj_grad_background(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 7);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.obj_weight = 2.5f;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assignment as;
    get_assign(ctx, &as);
    grads g;
    grads_make(&g, &sc, 0.0f);
    assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_OK);
    int n_bg = 0, n_fg = 0;
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < 20; a++) {
            int lv, i, j;
            anchor_pos(&sc, a, &lv, &i, &j);
            size_t hw = hw_of(&sc, lv), base = (size_t)b * CH * hw + (size_t)(i * sc.W[lv] + j);
            double x = *at(&sc, lv, b, 4, i, j);
            int fg = as.matched[b * 20 + a] >= 0;
            double want = 2.5 * (tu_sigmoid(x) - fg) / l.normalizer;
            TU_ASSERT_CLOSE(g.fused[lv][base + 4 * hw], want, 1e-6, 1e-9);
            if (fg) {
                assert_true(g.fused[lv][base + 4 * hw] < 0.0f);
                n_fg++;
            } else {
                assert_true(g.fused[lv][base + 4 * hw] > 0.0f);
                n_bg++;
            }
        }
    assert_true(n_bg > 0 && n_fg > 0);
    grads_free(&g);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_get_assignment_consistency(void **state) {
    (void)state;
    for (int assigner = 0; assigner < 2; assigner++) {
        scene sc;
        scene_make(&sc, 4, 20 + (uint64_t)assigner);
        yoloxloss_config cfg;
        cfg_small(&cfg);
        cfg.assigner = (yoloxloss_assigner)assigner;
        yoloxloss_context *ctx = make_ctx(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        assert_true(yoloxloss_num_anchors(ctx) == 20);
        assignment as;
        get_assign(ctx, &as);
        int64_t fg = 0;
        for (int b = 0; b < sc.B; b++) {
            int taken[MAXG] = {0};
            int g0 = first_gt_row(&sc, b);
            for (int a = 0; a < 20; a++) {
                int m = as.matched[b * 20 + a];
                float u = as.pred_iou[b * 20 + a];
                assert_true(m >= -1 && m < sc.num_gt[b]);
                if (m < 0) {
                    assert_true(u == 0.0f);
                } else {
                    fg++;
                    taken[m]++;
                    assert_true(u >= 0.0f && u <= 1.0f);
                }
            }
            for (int g = 0; g < sc.num_gt[b]; g++) {
                /* every gt lies inside the image, so it has candidates */
                assert_true(as.dk[g0 + g] >= 1 && as.dk[g0 + g] <= 20);
                assert_true(taken[g] <= as.dk[g0 + g]);
            }
        }
        assert_true(fg == l.num_fg);
        /* every pointer may be NULL */
        assert_int_equal(yoloxloss_get_assignment(ctx, NULL, as.pred_iou, NULL), YOLOXLOSS_OK);
        yoloxloss_destroy(ctx);
        scene_free(&sc);
    }
}

/* ---- options ------------------------------------------------------------- */

static void backward_fused(yoloxloss_context *ctx, grads *g, const yoloxloss_upstream *up, int acc) {
    assert_int_equal(yoloxloss_backward(ctx, g->g_fused, up, acc), YOLOXLOSS_OK);
}

static void test_renormalize(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 3, 8);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l0, l1;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l0), YOLOXLOSS_OK);
    grads g0, g1;
    grads_make(&g0, &sc, 0.0f);
    grads_make(&g1, &sc, 0.0f);
    backward_fused(ctx, &g0, NULL, 0);
    const float newN = 7.25f;
    double ratio = (double)l0.normalizer / newN;
    assert_int_equal(yoloxloss_renormalize(ctx, newN, &l1), YOLOXLOSS_OK);
    assert_true(l1.normalizer == newN);
    TU_ASSERT_CLOSE(l1.iou, l0.iou * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.obj, l0.obj * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.cls, l0.cls * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.l1, l0.l1 * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.total, l0.total * ratio, 1e-6, 0);
    assert_true(l1.num_fg == l0.num_fg && l1.num_gt == l0.num_gt);
    backward_fused(ctx, &g1, NULL, 0);
    for (int lv = 0; lv < NL; lv++)
        for (size_t q = 0; q < level_elems(&sc, lv); q++)
            TU_ASSERT_NEAR_CTX(g1.fused[lv][q], g0.fused[lv][q] * ratio, 1e-5 * fabs(g0.fused[lv][q] * ratio) + 1e-10,
                               "level %d q %zu", lv, q);
    /* invalid normalisers are refused and change nothing */
    const float bad[] = {0.0f, -1.0f, NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        yoloxloss_losses l = SENTINEL_LOSSES;
        assert_int_equal(yoloxloss_renormalize(ctx, bad[k], &l), YOLOXLOSS_ERR_INVALID_ARGUMENT);
        assert_losses_untouched(&l);
        assert_non_null(strstr(yoloxloss_last_error(ctx), "normalizer"));
    }
    grads g2;
    grads_make(&g2, &sc, 0.0f);
    backward_fused(ctx, &g2, NULL, 0);
    for (int lv = 0; lv < NL; lv++)
        assert_memory_equal(g2.fused[lv], g1.fused[lv], level_elems(&sc, lv) * sizeof(float));
    /* NULL losses is accepted; a new forward restores max(num_fg, 1) */
    assert_int_equal(yoloxloss_renormalize(ctx, 1.0f, NULL), YOLOXLOSS_OK);
    yoloxloss_losses l3;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l3), YOLOXLOSS_OK);
    assert_true(l3.normalizer == l0.normalizer);
    TU_ASSERT_CLOSE(l3.total, l0.total, 0, 0);
    grads_free(&g0);
    grads_free(&g1);
    grads_free(&g2);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_accumulate_vs_overwrite(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 9);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assignment as;
    get_assign(ctx, &as);
    grads ref, garbage, acc;
    grads_make(&ref, &sc, 0.0f);
    grads_make(&garbage, &sc, NAN);
    grads_make(&acc, &sc, 0.0f);
    backward_fused(ctx, &ref, NULL, 0);
    /* overwrite ignores a garbage prefill */
    for (int lv = 0; lv < NL; lv++)
        for (size_t q = 0; q < level_elems(&sc, lv); q++) garbage.fused[lv][q] = (q % 3) ? NAN : 1e30f;
    backward_fused(ctx, &garbage, NULL, 0);
    for (int lv = 0; lv < NL; lv++)
        assert_memory_equal(garbage.fused[lv], ref.fused[lv], level_elems(&sc, lv) * sizeof(float));
    /* accumulate adds to the prefill */
    tu_rng r = {123};
    float *pre[NL];
    for (int lv = 0; lv < NL; lv++) {
        pre[lv] = malloc(level_elems(&sc, lv) * sizeof(float));
        for (size_t q = 0; q < level_elems(&sc, lv); q++) acc.fused[lv][q] = pre[lv][q] = tu_rangef(&r, -1, 1);
    }
    backward_fused(ctx, &acc, NULL, 1);
    int nonzero = 0;
    for (int lv = 0; lv < NL; lv++) {
        size_t hw = hw_of(&sc, lv);
        for (size_t q = 0; q < level_elems(&sc, lv); q++) {
            double want = (double)pre[lv][q] + ref.fused[lv][q];
            TU_ASSERT_NEAR_CTX(acc.fused[lv][q], want, 1.2e-7 * (fabs(pre[lv][q]) + fabs(ref.fused[lv][q])),
                               "level %d q %zu", lv, q);
            /* background reg / cls elements have zero gradient: left exactly as they were */
            size_t b = q / (CH * hw), ch = (q / hw) % CH, pos = q % hw;
            int a = (int)pos + (lv == 1 ? 16 : 0);
            if (ch != 4 && as.matched[b * 20 + (size_t)a] < 0) assert_true(acc.fused[lv][q] == pre[lv][q]);
            if (ref.fused[lv][q] != 0.0f) nonzero++;
        }
        free(pre[lv]);
    }
    assert_true(nonzero > 20);
    /* two accumulating calls on a zero buffer give twice the gradient */
    grads twice;
    grads_make(&twice, &sc, 0.0f);
    backward_fused(ctx, &twice, NULL, 1);
    backward_fused(ctx, &twice, NULL, 1);
    for (int lv = 0; lv < NL; lv++)
        for (size_t q = 0; q < level_elems(&sc, lv); q++) assert_true(twice.fused[lv][q] == 2.0f * ref.fused[lv][q]);
    grads_free(&ref);
    grads_free(&garbage);
    grads_free(&acc);
    grads_free(&twice);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

/* which channels carry a non-zero gradient */
static void channel_mask(const grads *g, const scene *sc, int any[CH]) {
    for (int ch = 0; ch < CH; ch++) any[ch] = 0;
    for (int lv = 0; lv < NL; lv++) {
        size_t hw = hw_of(sc, lv);
        for (size_t q = 0; q < level_elems(sc, lv); q++)
            if (g->fused[lv][q] != 0.0f) any[(q / hw) % CH] = 1;
    }
}

static void test_upstream(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 10);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    cfg.l1_weight = 1.5f;
    yoloxloss_context *ctx = make_ctx(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assignment as;
    get_assign(ctx, &as);
    grads gnull, gone, giou, gobj, gcls, gl1, gtwo;
    grads_make(&gnull, &sc, NAN);
    grads_make(&gone, &sc, NAN);
    grads_make(&giou, &sc, NAN);
    grads_make(&gobj, &sc, NAN);
    grads_make(&gcls, &sc, NAN);
    grads_make(&gl1, &sc, NAN);
    grads_make(&gtwo, &sc, NAN);
    const yoloxloss_upstream one = {1, 0, 0, 0, 0}, up_iou = {0, 1, 0, 0, 0}, up_obj = {0, 0, 1, 0, 0},
                             up_cls = {0, 0, 0, 1, 0}, up_l1 = {0, 0, 0, 0, 1}, two = {2, 0, 0, 0, 0};
    backward_fused(ctx, &gnull, NULL, 0);
    backward_fused(ctx, &gone, &one, 0);
    backward_fused(ctx, &giou, &up_iou, 0);
    backward_fused(ctx, &gobj, &up_obj, 0);
    backward_fused(ctx, &gcls, &up_cls, 0);
    backward_fused(ctx, &gl1, &up_l1, 0);
    backward_fused(ctx, &gtwo, &two, 0);
    for (int lv = 0; lv < NL; lv++) {
        size_t n = level_elems(&sc, lv);
        assert_memory_equal(gnull.fused[lv], gone.fused[lv], n * sizeof(float));
        for (size_t q = 0; q < n; q++) {
            TU_ASSERT_CLOSE(gtwo.fused[lv][q], 2.0 * gone.fused[lv][q], 1e-6, 1e-12);
            /* the parts add up to the total's gradient */
            double parts = (double)giou.fused[lv][q] + gobj.fused[lv][q] + gcls.fused[lv][q] + gl1.fused[lv][q];
            TU_ASSERT_NEAR_CTX(gone.fused[lv][q], parts, 1e-6 * fabs(parts) + 1e-9, "level %d q %zu", lv, q);
        }
    }
    int m[CH];
    channel_mask(&giou, &sc, m);
    for (int ch = 0; ch < CH; ch++) assert_int_equal(m[ch], ch < 4);
    channel_mask(&gl1, &sc, m);
    for (int ch = 0; ch < CH; ch++) assert_int_equal(m[ch], ch < 4);
    channel_mask(&gobj, &sc, m);
    for (int ch = 0; ch < CH; ch++) assert_int_equal(m[ch], ch == 4);
    channel_mask(&gcls, &sc, m);
    for (int ch = 0; ch < CH; ch++) assert_int_equal(m[ch], ch >= 5);
    /* d(l1) = l1_weight * sign(reg - target) / N on fg anchors */
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < 20; a++) {
            int lv, i, j;
            anchor_pos(&sc, a, &lv, &i, &j);
            int mm = as.matched[b * 20 + a];
            size_t hw = hw_of(&sc, lv), base = (size_t)b * CH * hw + (size_t)(i * sc.W[lv] + j);
            for (int k = 0; k < 4; k++) {
                double want = 0.0;
                if (mm >= 0) {
                    const float *gb = sc.boxes + 4 * (first_gt_row(&sc, b) + mm);
                    double s = sc.s[lv];
                    double target[4] = {gb[0] / s - j, gb[1] / s - i, log(gb[2] / s + 1e-8), log(gb[3] / s + 1e-8)};
                    double d = *at(&sc, lv, b, k, i, j) - target[k];
                    want = 1.5 * ((d > 0) - (d < 0)) / l.normalizer;
                }
                TU_ASSERT_CLOSE(gl1.fused[lv][base + (size_t)k * hw], want, 1e-6, 0);
            }
        }
    grads *all[] = {&gnull, &gone, &giou, &gobj, &gcls, &gl1, &gtwo};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) grads_free(all[k]);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_fused_vs_split(void **state) {
    (void)state;
    for (int giou = 0; giou < 2; giou++) {
        scene sc;
        scene_make(&sc, 3, 30 + (uint64_t)giou);
        yoloxloss_config cfg;
        cfg_small(&cfg);
        cfg.use_l1 = 1;
        cfg.iou_loss = giou ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
        yoloxloss_context *ctx = make_ctx(&cfg);
        yoloxloss_losses lf, ls;
        grads g;
        grads_make(&g, &sc, 0.0f);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &lf), YOLOXLOSS_OK);
        assignment af, as;
        get_assign(ctx, &af);
        assert_int_equal(yoloxloss_backward(ctx, g.g_fused, NULL, 0), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &ls), YOLOXLOSS_OK);
        get_assign(ctx, &as);
        assert_int_equal(yoloxloss_backward(ctx, g.g_split, NULL, 0), YOLOXLOSS_OK);
        TU_ASSERT_BITS_EQ(lf.total, ls.total);
        TU_ASSERT_BITS_EQ(lf.iou, ls.iou);
        TU_ASSERT_BITS_EQ(lf.obj, ls.obj);
        TU_ASSERT_BITS_EQ(lf.cls, ls.cls);
        TU_ASSERT_BITS_EQ(lf.l1, ls.l1);
        assert_true(lf.num_fg == ls.num_fg);
        assert_memory_equal(af.matched, as.matched, sizeof af.matched);
        assert_memory_equal(af.pred_iou, as.pred_iou, sizeof af.pred_iou);
        for (int lv = 0; lv < NL; lv++) {
            size_t hw = hw_of(&sc, lv);
            for (int b = 0; b < sc.B; b++) {
                const float *base = g.fused[lv] + (size_t)b * CH * hw;
                assert_memory_equal(base, g.reg[lv] + (size_t)b * 4 * hw, 4 * hw * sizeof(float));
                assert_memory_equal(base + 4 * hw, g.obj[lv] + (size_t)b * hw, hw * sizeof(float));
                assert_memory_equal(base + 5 * hw, g.cls[lv] + (size_t)b * C * hw, C * hw * sizeof(float));
            }
        }
        grads_free(&g);
        yoloxloss_destroy(ctx);
        scene_free(&sc);
    }
}

/* Thread count of the second run: 2, unless YOLOXLOSS_TEST_MAX_THREADS=1
 * (the qemu-user runs of cross builds, where libgomp hangs as soon as a
 * parallel region has a second thread; threading is tested natively). Then
 * two 1-thread runs are compared: still run-to-run determinism. */
static int second_run_threads(void) {
    const char *cap = getenv("YOLOXLOSS_TEST_MAX_THREADS");
    if (cap && atoi(cap) == 1) {
        print_message("test_threads_bitwise: YOLOXLOSS_TEST_MAX_THREADS=1, so 1 thread against 1 "
                      "thread instead of 1 against 2\n");
        return 1;
    }
    return 2;
}

static void test_threads_bitwise(void **state) {
    (void)state;
    const int threads[2] = {1, second_run_threads()};
    scene sc;
    scene_make(&sc, 4, 40);
    yoloxloss_losses l[2];
    grads g[2];
    assignment as[2];
    for (int t = 0; t < 2; t++) {
        yoloxloss_config cfg;
        cfg_small(&cfg);
        cfg.use_l1 = 1;
        cfg.num_threads = threads[t];
        yoloxloss_context *ctx = make_ctx(&cfg);
        grads_make(&g[t], &sc, 0.0f);
        /* run twice so the second call reuses the workspace */
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l[t]), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l[t]), YOLOXLOSS_OK);
        get_assign(ctx, &as[t]);
        assert_int_equal(yoloxloss_backward(ctx, g[t].g_fused, NULL, 0), YOLOXLOSS_OK);
        yoloxloss_destroy(ctx);
    }
    TU_ASSERT_BITS_EQ(l[0].total, l[1].total);
    TU_ASSERT_BITS_EQ(l[0].iou, l[1].iou);
    TU_ASSERT_BITS_EQ(l[0].obj, l[1].obj);
    TU_ASSERT_BITS_EQ(l[0].cls, l[1].cls);
    TU_ASSERT_BITS_EQ(l[0].l1, l[1].l1);
    assert_true(l[0].num_fg == l[1].num_fg);
    assert_memory_equal(&as[0], &as[1], sizeof as[0]);
    for (int lv = 0; lv < NL; lv++)
        assert_memory_equal(g[0].fused[lv], g[1].fused[lv], level_elems(&sc, lv) * sizeof(float));
    grads_free(&g[0]);
    grads_free(&g[1]);
    scene_free(&sc);
}

/* ---- finite differences through the whole forward ------------------------ */

static float forward_term(yoloxloss_context *ctx, const scene *sc, int term, assignment *as) {
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc->batch, &l), YOLOXLOSS_OK);
    get_assign(ctx, as);
    return term == 0 ? l.total : term == 1 ? l.iou : l.l1;
}

/* Perturbs obj / cls logits (term: total) or reg outputs of fg anchors
 * (terms: iou and l1, which pred_iou does not enter) and compares the
 * central difference with backward, keeping only steps that leave the
 * assignment unchanged. */
static void check_fd(yoloxloss_iou_loss type, uint64_t seed) {
    scene sc;
    scene_make(&sc, 2, seed);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    cfg.iou_loss = type;
    yoloxloss_context *ctx = make_ctx(&cfg);
    assignment a0, ap, am;
    (void)forward_term(ctx, &sc, 0, &a0);
    grads gtot, giou, gl1;
    grads_make(&gtot, &sc, 0.0f);
    grads_make(&giou, &sc, 0.0f);
    grads_make(&gl1, &sc, 0.0f);
    const yoloxloss_upstream up_iou = {0, 1, 0, 0, 0}, up_l1 = {0, 0, 0, 0, 1};
    backward_fused(ctx, &gtot, NULL, 0);
    backward_fused(ctx, &giou, &up_iou, 0);
    backward_fused(ctx, &gl1, &up_l1, 0);

    int checked_logit = 0, checked_reg = 0;
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < 20; a++) {
            int lv, i, j;
            anchor_pos(&sc, a, &lv, &i, &j);
            int fg = a0.matched[b * 20 + a] >= 0;
            size_t hw = hw_of(&sc, lv), base = (size_t)b * CH * hw + (size_t)(i * sc.W[lv] + j);
            /* obj and cls logits: every fg anchor, every third bg anchor */
            if (fg || a % 3 == 0)
                for (int ch = 4; ch < CH; ch++) {
                    float *x = at(&sc, lv, b, ch, i, j);
                    const float x0 = *x, h = 1e-2f;
                    *x = x0 + h;
                    double fp = forward_term(ctx, &sc, 0, &ap);
                    *x = x0 - h;
                    double fm = forward_term(ctx, &sc, 0, &am);
                    *x = x0;
                    if (memcmp(ap.matched, a0.matched, sizeof ap.matched) ||
                        memcmp(am.matched, a0.matched, sizeof am.matched))
                        continue;
                    double fd = (fp - fm) / (2.0 * (double)h);
                    double gr = gtot.fused[lv][base + (size_t)ch * hw];
                    TU_ASSERT_NEAR_CTX(gr, fd, 2e-3 + 2e-2 * fabs(fd), "%s logit b %d a %d ch %d",
                                       type ? "giou" : "iou", b, a, ch);
                    checked_logit++;
                }
            if (!fg) continue;
            for (int ch = 0; ch < 4; ch++) {
                for (int term = 1; term <= 2; term++) {
                    float *x = at(&sc, lv, b, ch, i, j);
                    if (term == 2) {
                        /* |reg - target| has a kink at 0: stay clear of it */
                        const float *gb = sc.boxes + 4 * (first_gt_row(&sc, b) + a0.matched[b * 20 + a]);
                        double s = sc.s[lv];
                        double target[4] = {gb[0] / s - j, gb[1] / s - i, log(gb[2] / s + 1e-8),
                                            log(gb[3] / s + 1e-8)};
                        if (fabs(*x - target[ch]) < 2e-2) continue;
                    }
                    const float x0 = *x, h = 5e-3f;
                    *x = x0 + h;
                    double fp = forward_term(ctx, &sc, term, &ap);
                    *x = x0 - h;
                    double fm = forward_term(ctx, &sc, term, &am);
                    *x = x0;
                    if (memcmp(ap.matched, a0.matched, sizeof ap.matched) ||
                        memcmp(am.matched, a0.matched, sizeof am.matched))
                        continue;
                    double fd = (fp - fm) / (2.0 * (double)h);
                    double gr = (term == 1 ? giou : gl1).fused[lv][base + (size_t)ch * hw];
                    TU_ASSERT_NEAR_CTX(gr, fd, 2e-3 + 2e-2 * fabs(fd), "%s reg term %d b %d a %d ch %d",
                                       type ? "giou" : "iou", term, b, a, ch);
                    checked_reg++;
                }
            }
        }
    assert_true(checked_logit >= 40);
    assert_true(checked_reg >= 16);
    grads_free(&gtot);
    grads_free(&giou);
    grads_free(&gl1);
    yoloxloss_destroy(ctx);
    scene_free(&sc);
}

static void test_finite_differences(void **state) {
    (void)state;
    check_fd(YOLOXLOSS_IOU_LOSS_IOU, 50);
    check_fd(YOLOXLOSS_IOU_LOSS_GIOU, 51);
}

/* Every pred equals its L1 target exactly (and so decodes to the gt box):
 * sign(0) = 0 gives no L1 gradient, and the IoU loss of identical boxes (all
 * corners tie, shares of 1/2) has zero gradient too. */
static void test_exact_targets_zero_gradient(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 1, 60);
    sc.num_gt[0] = 1;
    sc.classes[0] = 2;
    const float gt[4] = {20, 20, 16, 16};
    memcpy(sc.boxes, gt, sizeof gt);
    for (int lv = 0; lv < NL; lv++)
        for (int i = 0; i < sc.H[lv]; i++)
            for (int j = 0; j < sc.W[lv]; j++) {
                float s = sc.s[lv];
                *at(&sc, lv, 0, 0, i, j) = gt[0] / s - (float)j;
                *at(&sc, lv, 0, 1, i, j) = gt[1] / s - (float)i;
                *at(&sc, lv, 0, 2, i, j) = logf(gt[2] / s + 1e-8f);
                *at(&sc, lv, 0, 3, i, j) = logf(gt[3] / s + 1e-8f);
            }
    yoloxloss_config cfg;
    cfg_small(&cfg);
    cfg.use_l1 = 1;
    for (int type = 0; type < 2; type++) {
        cfg.iou_loss = (yoloxloss_iou_loss)type;
        yoloxloss_context *ctx = make_ctx(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        assert_true(l.num_fg >= 1);
        assert_true(l.l1 == 0.0f);
        TU_ASSERT_CLOSE(l.iou, 0.0, 0, 1e-6);
        assignment as;
        get_assign(ctx, &as);
        for (int a = 0; a < 20; a++)
            if (as.matched[a] >= 0) assert_true(as.pred_iou[a] == 1.0f);
        grads g;
        grads_make(&g, &sc, NAN);
        const yoloxloss_upstream up = {0, 1, 0, 0, 1}; /* iou and l1 only */
        backward_fused(ctx, &g, &up, 0);
        for (int lv = 0; lv < NL; lv++)
            for (size_t q = 0; q < level_elems(&sc, lv); q++) TU_ASSERT_CLOSE(g.fused[lv][q], 0.0, 0, 1e-7);
        grads_free(&g);
        yoloxloss_destroy(ctx);
    }
    scene_free(&sc);
}

/* A gt far outside the image: its image has no candidate, dynamic_k is 0. */
static void test_gt_outside_image_api(void **state) {
    (void)state;
    scene sc;
    scene_make(&sc, 2, 61);
    sc.num_gt[0] = 1;
    sc.num_gt[1] = 1;
    const float far[4] = {-900, 4000, 12, 12}, in[4] = {16, 16, 12, 12};
    memcpy(sc.boxes, far, sizeof far);
    memcpy(sc.boxes + 4, in, sizeof in);
    yoloxloss_config cfg;
    cfg_small(&cfg);
    for (int assigner = 0; assigner < 2; assigner++) {
        cfg.assigner = (yoloxloss_assigner)assigner;
        yoloxloss_context *ctx = make_ctx(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        assignment as;
        memset(&as, 0x22, sizeof as);
        assert_int_equal(yoloxloss_get_assignment(ctx, as.matched, as.pred_iou, as.dk), YOLOXLOSS_OK);
        assert_int_equal(as.dk[0], 0);
        assert_true(as.dk[1] >= 1);
        int fg1 = 0;
        for (int a = 0; a < 20; a++) {
            assert_int_equal(as.matched[a], -1);
            fg1 += as.matched[20 + a] >= 0;
        }
        assert_true(l.num_fg == fg1 && fg1 >= 1);
        yoloxloss_destroy(ctx);
    }
    scene_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_validate_rejects_each_field),
        cmocka_unit_test(test_create_get_config),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_forward_pointer_and_shape_errors),
        cmocka_unit_test(test_forward_label_and_box_errors),
        cmocka_unit_test(test_check_finite),
        cmocka_unit_test(test_backward_errors),
        cmocka_unit_test(test_forward_failure_clears_state),
        cmocka_unit_test(test_losses_against_assignment),
        cmocka_unit_test(test_zero_gt_batch),
        cmocka_unit_test(test_obj_grad_background),
        cmocka_unit_test(test_get_assignment_consistency),
        cmocka_unit_test(test_renormalize),
        cmocka_unit_test(test_accumulate_vs_overwrite),
        cmocka_unit_test(test_upstream),
        cmocka_unit_test(test_fused_vs_split),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_exact_targets_zero_gradient),
        cmocka_unit_test(test_gt_outside_image_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
