/* The public API's configuration: defaults, validation of every field,
 * create and get_config, and the status strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

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
    assert_true(c.cost_iou_eps == 1e-8f);
    assert_true(c.cost_penalty == 0.0f);
    assert_int_equal(c.arithmetic, YOLOXLOSS_ARITHMETIC_YOLOX);
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
static void m_iou_loss(yoloxloss_config *c, int v) { c->iou_loss = (yoloxloss_iou_loss)(v ? -1 : 7); }
static void m_reg_weight(yoloxloss_config *c, int v) { c->reg_weight = v ? INFINITY : NAN; }
static void m_obj_weight(yoloxloss_config *c, int v) { c->obj_weight = v ? -INFINITY : NAN; }
static void m_cls_weight(yoloxloss_config *c, int v) { c->cls_weight = v ? INFINITY : NAN; }
static void m_l1_weight(yoloxloss_config *c, int v) { c->l1_weight = v ? INFINITY : NAN; }
static void m_num_threads(yoloxloss_config *c, int v) { c->num_threads = v ? -100 : -1; }
static void m_cost_iou_eps(yoloxloss_config *c, int v) {
    const float bad[4] = {0.0f, -1e-8f, NAN, INFINITY};
    c->cost_iou_eps = bad[v];
}
static void m_cost_penalty(yoloxloss_config *c, int v) {
    const float bad[3] = {-1.0f, NAN, INFINITY};
    c->cost_penalty = bad[v];
}
static void m_arithmetic(yoloxloss_config *c, int v) { c->arithmetic = (yoloxloss_arithmetic)(v ? -1 : 2); }

static const bad_field BAD_FIELDS[] = {
    {"num_classes", m_num_classes, 2},     {"num_levels", m_num_levels, 2},
    {"strides", m_strides, 4},             {"assigner", m_assigner, 2},
    {"center_radius", m_center_radius, 3}, {"candidate_topk", m_topk, 2},
    {"iou_cost_weight", m_iou_cost, 2},    {"cls_cost_weight", m_cls_cost, 2},
    {"iou_loss", m_iou_loss, 2},           {"reg_weight", m_reg_weight, 2},
    {"obj_weight", m_obj_weight, 2},       {"cls_weight", m_cls_weight, 2},
    {"l1_weight", m_l1_weight, 2},         {"num_threads", m_num_threads, 2},
    {"cost_iou_eps", m_cost_iou_eps, 4},   {"cost_penalty", m_cost_penalty, 3},
    {"arithmetic", m_arithmetic, 2},
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
    ts_scene sc;
    ts_scene_make_small(&sc, 1, 0);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.iou_loss = YOLOXLOSS_IOU_LOSS_GIOU;
    cfg.l1_weight = 2.5f;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    const yoloxloss_config *got = yoloxloss_get_config(ctx);
    assert_non_null(got);
    assert_true(got != &cfg);
    assert_int_equal(got->num_classes, TS_SMALL_CLASSES);
    assert_int_equal(got->iou_loss, YOLOXLOSS_IOU_LOSS_GIOU);
    assert_true(got->l1_weight == 2.5f);
    assert_null(yoloxloss_get_config(NULL));
    assert_string_equal(yoloxloss_last_error(ctx), "");
    assert_non_null(yoloxloss_last_error(NULL));
    assert_true(yoloxloss_num_anchors(ctx) == 0);
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(NULL);
    ts_scene_free(&sc);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_validate_rejects_each_field),
        cmocka_unit_test(test_create_get_config),
        cmocka_unit_test(test_status_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
