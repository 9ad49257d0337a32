/* Ground truth as frameworks hold it, and the per-image losses, through the
 * public API. Padded labels (yoloxloss_padded_labels) in either order,
 * normalised or in pixels, with counts or an end row, with or without an
 * extra float per row, give bit for bit the losses, per-image losses,
 * assignment and gradients of the flat batch of the converted rows, for
 * every dtype, both layouts and every instruction set this CPU has; each
 * rule of the padded form refuses what it must with a message naming the
 * image and the row, writing nothing. yoloxloss_get_image_losses' rows add
 * up to the batch's terms and each equals a forward of its image alone
 * given the batch's normaliser. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "scene_util.h"

static const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                             BF16 = YOLOXLOSS_DTYPE_BFLOAT16;

/* The dtypes of the two levels of the small scene, one mix per run. */
#define N_MIXES 4
static const yoloxloss_dtype MIXES[N_MIXES][2] = {{F32, F32}, {F16, F16}, {BF16, BF16}, {F16, BF16}};

/* The instruction sets this build and this CPU have, scalar first. */
static int available_isas(yoloxloss_isa out[8]) {
    int n = 0;
    for (int i = YOLOXLOSS_ISA_SCALAR; i <= YOLOXLOSS_ISA_NEON; i++)
        if (yoloxloss_isa_supported((yoloxloss_isa)i)) out[n++] = (yoloxloss_isa)i;
    return n;
}

/* ---- the padded form of a scene's labels --------------------------------- */

#define MAX_ROWS 5
#define MAX_FLOATS 6

typedef struct {
    yoloxloss_label_order order;
    int normalized;
    int row_floats; /* 0 means 5 */
    int use_counts;
    int max_rows;
    float image_width, image_height; /* 0: what level 0 implies */
} form_opts;

typedef struct {
    float rows[TS_SMALL_MAX_IMAGES * MAX_ROWS * MAX_FLOATS];
    int32_t counts[TS_SMALL_MAX_IMAGES];
    yoloxloss_padded_labels p;
} padded_form;

/* Row r of image b of a form. */
static float *form_row(padded_form *pf, int b, int r) {
    const int rf = pf->p.row_floats == 0 ? 5 : pf->p.row_floats;
    return pf->rows + ((size_t)b * (size_t)pf->p.max_rows + (size_t)r) * (size_t)rf;
}

static int class_at(yoloxloss_label_order order) { return order == YOLOXLOSS_LABELS_CLASS_FIRST ? 0 : 4; }
static int box_at(yoloxloss_label_order order) { return order == YOLOXLOSS_LABELS_CLASS_FIRST ? 1 : 0; }

/* The scene's labels as a padded form. Normalised, each box is divided by
 * the image size and the scene's box replaced by that value times the
 * size in float32, so that the flat batch holds exactly what the library
 * converts to. Rows past an image's labels: with counts, NaN everywhere
 * (never read); without, a zero box under class -1 and a track id (only
 * the box marks padding). Extra floats of used rows hold a track id. */
static void padded_make(padded_form *pf, ts_scene *s, form_opts o) {
    memset(pf, 0, sizeof *pf);
    assert_true(o.max_rows <= MAX_ROWS && (o.row_floats == 0 || (o.row_floats >= 5 && o.row_floats <= MAX_FLOATS)));
    pf->p.rows = pf->rows;
    pf->p.max_rows = o.max_rows;
    pf->p.row_floats = o.row_floats;
    pf->p.order = o.order;
    pf->p.normalized = o.normalized;
    pf->p.image_width = o.image_width;
    pf->p.image_height = o.image_height;
    pf->p.counts = o.use_counts ? pf->counts : NULL;
    const int rf = o.row_floats == 0 ? 5 : o.row_floats, ca = class_at(o.order), ba = box_at(o.order);
    const float W = o.image_width > 0 ? o.image_width : (float)s->lv[0].width * s->strides[0];
    const float H = o.image_height > 0 ? o.image_height : (float)s->lv[0].height * s->strides[0];
    const float scale[4] = {W, H, W, H};
    int g = 0;
    for (int b = 0; b < s->B; b++) {
        assert_true(s->num_gt[b] <= o.max_rows);
        pf->counts[b] = s->num_gt[b];
        for (int r = 0; r < o.max_rows; r++) {
            float *row = form_row(pf, b, r);
            if (r < s->num_gt[b]) {
                float *bx = s->boxes + 4 * (g + r);
                for (int k = 0; k < 4; k++) {
                    row[ba + k] = o.normalized ? bx[k] / scale[k] : bx[k];
                    if (o.normalized) bx[k] = row[ba + k] * scale[k];
                }
                row[ca] = (float)s->classes[g + r];
                for (int k = 5; k < rf; k++) row[k] = 1000.0f + (float)r;
            } else if (o.use_counts) {
                for (int k = 0; k < rf; k++) row[k] = NAN;
            } else {
                for (int k = 0; k < 4; k++) row[ba + k] = 0.0f;
                row[ca] = -1.0f;
                for (int k = 5; k < rf; k++) row[k] = 7.0f;
            }
        }
        g += s->num_gt[b];
    }
}

/* flat's levels with pf's labels instead of its flat ones. */
static yoloxloss_batch padded_batch(const yoloxloss_batch *flat, const padded_form *pf) {
    yoloxloss_batch b = *flat;
    b.num_gt = NULL;
    b.gt_classes = NULL;
    b.gt_boxes = NULL;
    b.padded = &pf->p;
    return b;
}

/* ---- one step and its results ------------------------------------------- */

typedef struct {
    yoloxloss_losses total;
    yoloxloss_losses rows[TS_SMALL_MAX_IMAGES];
    ts_small_assignment as;
} step_result;

/* Element bytes of a typed level. */
static size_t esize_of(yoloxloss_dtype dt) { return dt == F32 ? sizeof(float) : sizeof(uint16_t); }

/* forward, per-image losses, assignment and backward (into t's gradient
 * buffers) of batch on a fresh context of cfg. */
static void run_step(const yoloxloss_config *cfg, const yoloxloss_batch *batch, ts_typed_scene *t,
                     step_result *out) {
    memset(out, 0, sizeof *out);
    yoloxloss_context *ctx = ts_create_ok(cfg);
    yoloxloss_status st = yoloxloss_forward(ctx, batch, &out->total);
    if (st != YOLOXLOSS_OK) fail_msg("forward: %s", yoloxloss_last_error(ctx));
    assert_int_equal(yoloxloss_get_image_losses(ctx, out->rows), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    ts_get_assignment(ctx, &out->as);
    assert_int_equal(yoloxloss_backward(ctx, t->g, NULL, 0), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
}

/* A copy of every gradient buffer of t, in one block. */
static unsigned char *grads_snapshot(const ts_typed_scene *t, size_t *bytes) {
    size_t n = 0;
    for (int l = 0; l < t->L; l++)
        for (int k = 0; k < 3; k++) n += t->count[l][k] * esize_of(t->dtype[l]);
    unsigned char *out = malloc(n), *at = out;
    assert_non_null(out);
    for (int l = 0; l < t->L; l++)
        for (int k = 0; k < 3; k++) {
            const size_t len = t->count[l][k] * esize_of(t->dtype[l]);
            if (len) memcpy(at, t->grad[l][k], len);
            at += len;
        }
    *bytes = n;
    return out;
}

static void expect_same_results(const step_result *a, const step_result *b, int B, const char *what) {
    if (!ts_losses_equal(&a->total, &b->total)) fail_msg("%s: losses differ", what);
    for (int i = 0; i < B; i++)
        if (!ts_losses_equal(&a->rows[i], &b->rows[i])) fail_msg("%s: image %d's losses differ", what, i);
    if (memcmp(&a->as, &b->as, sizeof a->as) != 0) fail_msg("%s: assignments differ", what);
}

/* ---- padded == flat -------------------------------------------------------- */

/* Every combination of order, normalisation, row length and end rule, for
 * each dtype mix, layout and instruction set: padded and flat agree in
 * everything, gradient bits included. Normalised with counts uses an
 * explicit image size (40 x 24), without counts the one level 0 implies. */
static void test_padded_equals_flat(void **state) {
    (void)state;
    yoloxloss_isa isas[8];
    const int n_isas = available_isas(isas);
    int runs = 0;
    for (int ii = 0; ii < n_isas; ii++)
        for (int mix = 0; mix < N_MIXES; mix++)
            for (int split = 0; split <= 1; split++)
                for (int variant = 0; variant < 16; variant++) {
                    const form_opts o = {
                        .order = (variant & 1) ? YOLOXLOSS_LABELS_CLASS_LAST : YOLOXLOSS_LABELS_CLASS_FIRST,
                        .normalized = (variant >> 1) & 1,
                        .row_floats = (variant >> 2) & 1 ? 6 : 0,
                        .use_counts = (variant >> 3) & 1,
                        /* 6 floats: 3 rows, so an image with 3 labels has no end row */
                        .max_rows = (variant >> 2) & 1 ? TS_SMALL_MAX_GT_PER_IMAGE : MAX_ROWS,
                        .image_width = (variant & 10) == 10 ? 40.0f : 0.0f,
                        .image_height = (variant & 10) == 10 ? 24.0f : 0.0f,
                    };
                    ts_scene s;
                    ts_scene_make_small(&s, 3, 500 + (uint64_t)(variant + 16 * mix));
                    padded_form pf;
                    padded_make(&pf, &s, o); /* before the typed copy: it may change s's boxes */
                    ts_typed_scene t;
                    ts_typed_make(&t, &s, MIXES[mix], split);
                    yoloxloss_config cfg;
                    ts_config(&s, &cfg, 1 + (variant & 1));
                    cfg.isa = isas[ii];
                    cfg.assigner = variant % 3 == 0 ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
                    const yoloxloss_batch pb = padded_batch(&t.batch, &pf);
                    step_result flat, padded;
                    run_step(&cfg, &t.batch, &t, &flat);
                    size_t bytes;
                    unsigned char *g_flat = grads_snapshot(&t, &bytes);
                    run_step(&cfg, &pb, &t, &padded);
                    unsigned char *g_padded = grads_snapshot(&t, &bytes);
                    char what[160];
                    snprintf(what, sizeof what, "isa %s, mix %d, split %d, order %d, normalized %d, row_floats %d, "
                             "counts %d", yoloxloss_isa_name(isas[ii]), mix, split, (int)o.order, o.normalized,
                             o.row_floats, o.use_counts);
                    expect_same_results(&flat, &padded, s.B, what);
                    if (memcmp(g_flat, g_padded, bytes) != 0) fail_msg("%s: gradients differ", what);
                    assert_true(flat.total.num_gt == s.total_gt && flat.total.num_fg > 0);
                    free(g_flat);
                    free(g_padded);
                    ts_typed_free(&t);
                    ts_scene_free(&s);
                    runs++;
                }
    assert_int_equal(runs, n_isas * N_MIXES * 2 * 16);
}

/* What YOLOX and darknet mean by the image size: a 640 x 640 input at
 * strides 8, 16, 32 has an 80 x 80 level 0, and a box normalised to it is
 * that box in pixels of 640. */
static void test_level_implied_image_size(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 3, 3, 80, 4, 77);
    assert_int_equal(s.lv[0].width, 80);
    s.num_gt[0] = 2;
    s.num_gt[1] = 1;
    const float norm[3][5] = {{1, 0.5f, 0.25f, 0.125f, 0.375f}, {2, 0.75f, 0.5f, 0.3125f, 0.0625f},
                              {0, 0.125f, 0.875f, 0.5f, 0.25f}};
    padded_form pf;
    memset(&pf, 0, sizeof pf);
    pf.p = (yoloxloss_padded_labels){.rows = pf.rows, .max_rows = 3, .order = YOLOXLOSS_LABELS_CLASS_FIRST,
                                     .normalized = 1};
    for (int g = 0; g < 3; g++) {
        const int b = g < 2 ? 0 : 1, r = g < 2 ? g : 0;
        memcpy(form_row(&pf, b, r), norm[g], sizeof norm[g]);
        s.classes[g] = (int32_t)norm[g][0];
        for (int k = 0; k < 4; k++) s.boxes[4 * g + k] = norm[g][1 + k] * 640.0f; /* exact: powers of two */
    }
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *a = ts_create_ok(&cfg), *c = ts_create_ok(&cfg);
    yoloxloss_losses lf, lp;
    assert_int_equal(yoloxloss_forward(a, &s.batch, &lf), YOLOXLOSS_OK);
    const yoloxloss_batch pb = padded_batch(&s.batch, &pf);
    assert_int_equal(yoloxloss_forward(c, &pb, &lp), YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&lf, &lp));
    assert_true(lf.num_fg > 0);
    assert_int_equal(lp.num_gt, 3);
    yoloxloss_destroy(a);
    yoloxloss_destroy(c);
    ts_scene_free(&s);
}

/* A 100 x 60 image at stride 8 has a 13 x 8 grid, which implies 104 x 64:
 * left 0, the size is 104 x 64; given, it is what is given. */
static void test_rounded_grid_needs_the_size(void **state) {
    (void)state;
    enum { C = 2, H = 8, W = 13 };
    static float out[(5 + C) * H * W];
    tu_rng r = {99};
    for (size_t q = 0; q < sizeof out / sizeof out[0]; q++) out[q] = tu_rangef(&r, -1, 1);
    const float strides[1] = {8.0f};
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = C;
    cfg.num_levels = 1;
    cfg.strides = strides;
    cfg.use_l1 = 1;
    cfg.num_threads = 1;
    const yoloxloss_level lv = {.height = H, .width = W, .fused = out};
    const float norm[5] = {0.5f, 0.25f, 0.375f, 0.5f, 1.0f}; /* class last */
    float rows[5];
    memcpy(rows, norm, sizeof rows);
    yoloxloss_padded_labels p = {.rows = rows, .max_rows = 1, .order = YOLOXLOSS_LABELS_CLASS_LAST, .normalized = 1};
    const yoloxloss_batch pb = {.num_images = 1, .levels = &lv, .padded = &p};
    const int32_t one = 1, cls = 1;
    yoloxloss_losses got[2];
    for (int given = 0; given <= 1; given++) {
        const float iw = given ? 100.0f : 104.0f, ih = given ? 60.0f : 64.0f;
        p.image_width = given ? 100.0f : 0.0f;
        p.image_height = given ? 60.0f : 0.0f;
        const float box[4] = {norm[0] * iw, norm[1] * ih, norm[2] * iw, norm[3] * ih};
        const yoloxloss_batch fb = {.num_images = 1, .levels = &lv, .num_gt = &one, .gt_classes = &cls,
                                    .gt_boxes = box};
        yoloxloss_context *a = ts_create_ok(&cfg), *c = ts_create_ok(&cfg);
        yoloxloss_losses lf;
        assert_int_equal(yoloxloss_forward(a, &fb, &lf), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(c, &pb, &got[given]), YOLOXLOSS_OK);
        assert_true(ts_losses_equal(&lf, &got[given]));
        yoloxloss_destroy(a);
        yoloxloss_destroy(c);
    }
    assert_false(ts_losses_equal(&got[0], &got[1])); /* the L1 targets differ */
}

/* Padding the rules accept: an image with no labels (count 0, or a zero
 * first row), -0 as zero, NaN in the class and extra floats of padding
 * rows, anything at all past a count, and no end row (every row used). */
static void test_padding_accepted(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 3, 8);
    s.num_gt[0] = 0;
    s.num_gt[1] = 2;
    s.num_gt[2] = 3;
    for (int g = 0; g < 5; g++) {
        s.classes[g] = g % TS_SMALL_CLASSES;
        const float box[4] = {8.0f + 3.0f * (float)g, 10.0f + 2.0f * (float)g, 9.0f, 7.0f};
        memcpy(s.boxes + 4 * g, box, sizeof box);
    }
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    for (int use_counts = 0; use_counts <= 1; use_counts++) {
        padded_form pf;
        const form_opts o = {.order = YOLOXLOSS_LABELS_CLASS_FIRST, .row_floats = 6, .use_counts = use_counts,
                             .max_rows = 3};
        padded_make(&pf, &s, o);
        if (!use_counts) {
            float *pad = form_row(&pf, 1, 2);
            pad[1] = -0.0f;
            pad[3] = -0.0f;
            pad[0] = NAN;
            pad[5] = INFINITY;
        }
        yoloxloss_context *a = ts_create_ok(&cfg), *c = ts_create_ok(&cfg);
        yoloxloss_losses lf, lp;
        assert_int_equal(yoloxloss_forward(a, &s.batch, &lf), YOLOXLOSS_OK);
        const yoloxloss_batch pb = padded_batch(&s.batch, &pf);
        yoloxloss_status st = yoloxloss_forward(c, &pb, &lp);
        if (st != YOLOXLOSS_OK) fail_msg("counts %d: %s", use_counts, yoloxloss_last_error(c));
        assert_true(ts_losses_equal(&lf, &lp));
        assert_int_equal(lp.num_gt, 5);
        yoloxloss_losses rows[3];
        assert_int_equal(yoloxloss_get_image_losses(c, rows), YOLOXLOSS_OK);
        assert_int_equal(rows[0].num_gt, 0);
        assert_int_equal(rows[1].num_gt, 2);
        assert_int_equal(rows[2].num_gt, 3); /* max_rows 3: no end row */
        yoloxloss_destroy(a);
        yoloxloss_destroy(c);
    }
    ts_scene_free(&s);
}

/* ---- the padded form's refusals ---------------------------------------- */

/* Each field of the struct and the flat fields beside it. */
static void test_padded_field_errors(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 2, 9);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    padded_form pf;
    const form_opts o = {.order = YOLOXLOSS_LABELS_CLASS_FIRST, .max_rows = MAX_ROWS};
    padded_make(&pf, &s, o);
    const yoloxloss_padded_labels good = pf.p;
    yoloxloss_batch pb = padded_batch(&s.batch, &pf);
    yoloxloss_losses l;
    /* a successful forward first: each refusal below must drop it */
    assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);

    pb.num_gt = s.num_gt;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_ARGUMENT, TS_NEEDLES("batch.padded", "num_gt set"), "num_gt too");
    pb = padded_batch(&s.batch, &pf);
    pb.gt_classes = s.classes;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_ARGUMENT, TS_NEEDLES("gt_classes set"), "gt_classes too");
    pb = padded_batch(&s.batch, &pf);
    pb.gt_boxes = s.boxes;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_ARGUMENT, TS_NEEDLES("gt_boxes set"), "gt_boxes too");
    pb = padded_batch(&s.batch, &pf);
    /* neither form */
    pb.padded = NULL;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_NULL_ARGUMENT, TS_NEEDLES("num_gt is NULL"), "no labels");
    pb.padded = &pf.p;

    pf.p.rows = NULL;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_NULL_ARGUMENT, TS_NEEDLES("rows is NULL"), "NULL rows");
    /* int fields out of range: each named with its value */
    static const struct {
        const char *field;
        int value;
    } bad_ints[] = {{"max_rows", 0},   {"max_rows", -3}, {"row_floats", 1}, {"row_floats", 4},
                    {"row_floats", -5}, {"order", 2},     {"order", -1}};
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++) {
        pf.p = good;
        const char *field = bad_ints[k].field;
        if (!strcmp(field, "max_rows")) pf.p.max_rows = bad_ints[k].value;
        else if (!strcmp(field, "row_floats")) pf.p.row_floats = bad_ints[k].value;
        else pf.p.order = (yoloxloss_label_order)bad_ints[k].value;
        char v[40];
        snprintf(v, sizeof v, "%s is %d", field, bad_ints[k].value);
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_ARGUMENT, TS_NEEDLES(v, "must be"), field);
    }
    pf.p = good;
    const float bad_size[4] = {NAN, INFINITY, -1.0f, -INFINITY};
    for (int k = 0; k < 4; k++)
        for (int which = 0; which < 2; which++) {
            pf.p = good;
            pf.p.normalized = which; /* checked whether used or not */
            if (which) pf.p.image_height = bad_size[k];
            else pf.p.image_width = bad_size[k];
            ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                           TS_NEEDLES(which ? "image_height" : "image_width", "finite and >= 0"), "image size");
        }
    /* B x max_rows x row_floats floats past size_t: refused before a row is read */
    pf.p = good;
    pf.p.max_rows = INT32_MAX;
    pf.p.row_floats = INT32_MAX;
    ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_SIZE_OVERFLOW, TS_NEEDLES("size_t"), "huge array");
    pf.p = good;
    assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), "");
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* Counts out of range, a hole after the end row, a class that is not an
 * integer in [0, C), a (0, 0) centre, a bad box after scaling: each names
 * the image and the row, in both orders. */
static void test_padded_row_errors(void **state) {
    (void)state;
    for (int ord = 0; ord <= 1; ord++) {
        const yoloxloss_label_order order = (yoloxloss_label_order)ord;
        const int ca = class_at(order), ba = box_at(order);
        ts_scene s;
        ts_scene_make_small(&s, 2, 10);
        s.num_gt[0] = 1;
        s.num_gt[1] = 2;
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1);
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        padded_form pf, keep;
        form_opts o = {.order = order, .max_rows = 4, .row_floats = 5};
        padded_make(&pf, &s, o);
        keep = pf;
        const yoloxloss_batch pb = padded_batch(&s.batch, &pf);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);

        /* counts */
        pf.p.counts = pf.counts;
        pf.counts[1] = -1;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL, TS_NEEDLES("image 1", "counts[1] is -1", "max_rows = 4"),
                       "negative count");
        pf.counts[1] = 5;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL, TS_NEEDLES("image 1", "counts[1] is 5"), "count > M");
        pf.counts[1] = 4; /* rows 2, 3 are zero rows now used: (0, 0) */
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL, TS_NEEDLES("image 1, row 2", "class -1"),
                       "padding inside a count");
        form_row(&pf, 1, 2)[ca] = 0.0f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX,
                       TS_NEEDLES("image 1, row 2", "(0, 0)", "missing label"), "zero row inside a count");
        pf = keep;

        /* a hole: image 1's row 2 is the end, row 3 a label */
        float *r3 = form_row(&pf, 1, 3);
        memcpy(r3, form_row(&pf, 1, 0), 5 * sizeof(float));
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL, TS_NEEDLES("image 1: row 2 ends", "row 3", "hole"),
                       "hole");
        pf = keep;
        form_row(&pf, 1, 3)[ba + 2] = NAN; /* NaN is not padding either */
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL, TS_NEEDLES("image 1: row 2 ends", "row 3"), "NaN hole");
        pf = keep;
        /* a box of size 0 with a centre is a bad label, not padding: all four values mark the end */
        form_row(&pf, 1, 2)[ba] = 5.0f;
        form_row(&pf, 1, 2)[ba + 1] = 6.0f;
        form_row(&pf, 1, 2)[ca] = 1.0f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 1, row 2", "w is 0"), "zero-size box");
        pf = keep;
        /* with counts, whatever follows the count is not read */
        pf.p.counts = pf.counts;
        memcpy(form_row(&pf, 1, 3), form_row(&pf, 1, 0), 5 * sizeof(float));
        assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);
        pf = keep;

        /* classes */
        const float bad_class[6] = {2.5f, -1.0f, (float)TS_SMALL_CLASSES, NAN, INFINITY, 0.999f};
        const char *shown[6] = {"class 2.5 ", "class -1 ", "class 3 ", "class nan", "class inf", "class 0.999"};
        for (int k = 0; k < 6; k++) {
            form_row(&pf, 1, 1)[ca] = bad_class[k];
            ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_LABEL,
                           TS_NEEDLES("image 1, row 1", shown[k], "not an integer in [0, 3)"), shown[k]);
        }
        pf = keep;

        /* (0, 0): a missing label turned into a box, with or without a size */
        float *row = form_row(&pf, 0, 0);
        row[ba] = 0.0f;
        row[ba + 1] = -0.0f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 0, row 0", "(0, 0)", "missing label"),
                       "centre (0, 0)");
        pf = keep;
        /* one coordinate 0 is a box at an edge, accepted */
        form_row(&pf, 0, 0)[ba] = 0.0f;
        assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);
        pf = keep;

        /* boxes: the flat checks, naming the row */
        form_row(&pf, 1, 1)[ba + 2] = 0.0f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 1, row 1", "w is 0", "must be > 0"),
                       "w = 0");
        pf = keep;
        form_row(&pf, 1, 0)[ba + 3] = -INFINITY;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 1, row 0", "h is -inf"), "h = -inf");
        pf = keep;
        form_row(&pf, 1, 0)[ba + 1] = NAN;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 1, row 0", "cy is nan"), "cy NaN");
        pf = keep;
        /* normalised: checked after scaling, and the message shows both */
        pf.p.normalized = 1;
        for (int b = 0; b < 2; b++)
            for (int r = 0; r < s.num_gt[b]; r++)
                for (int k = 0; k < 4; k++) form_row(&pf, b, r)[ba + k] = 0.25f;
        form_row(&pf, 0, 0)[ba] = 1e38f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX,
                       TS_NEEDLES("image 0, row 0", "cx is inf", "scaled from (1e+38", "image size 32 x 32"),
                       "overflow by scaling");
        form_row(&pf, 0, 0)[ba] = 0.25f;
        assert_int_equal(yoloxloss_forward(ctx, &pb, &l), YOLOXLOSS_OK);
        /* the message is cut to the context's capacity, still a string */
        form_row(&pf, 0, 0)[ba + 2] = -1e-30f;
        ts_expect_refused_n(ctx, &pb, YOLOXLOSS_ERR_INVALID_BOX, TS_NEEDLES("image 0, row 0", "w is -3.2e-29"), "w < 0");
        assert_true(strlen(yoloxloss_last_error(ctx)) < 320);
        yoloxloss_destroy(ctx);
        ts_scene_free(&s);
    }
}

/* ---- per-image losses ----------------------------------------------------- */

/* Image b of a typed scene as a batch of its own: its slices of the
 * buffers and its labels. */
static yoloxloss_batch image_alone(const ts_typed_scene *t, const ts_scene *s, int b, yoloxloss_level *lv) {
    for (int l = 0; l < t->L; l++) {
        const size_t hw = ts_hw(s, l), C = (size_t)s->C, es = esize_of(t->dtype[l]), bb = (size_t)b;
        lv[l] = t->lv[l];
        if (!t->split) {
            lv[l].fused = (const char *)t->in[l][0] + bb * (5 + C) * hw * es;
        } else {
            lv[l].reg = (const char *)t->in[l][0] + bb * 4 * hw * es;
            lv[l].obj = (const char *)t->in[l][1] + bb * hw * es;
            lv[l].cls = (const char *)t->in[l][2] + bb * C * hw * es;
        }
    }
    const int first = ts_first_gt_row(s, b);
    const yoloxloss_batch one = {.num_images = 1, .levels = lv, .num_gt = &s->num_gt[b],
                                 .gt_classes = s->classes + first, .gt_boxes = s->boxes + 4 * first};
    return one;
}

/* |sum of the rows' term - the batch's term| within float32 rounding: each
 * row and the batch's term are rounded once from double sums. */
static void expect_rows_add_up(const yoloxloss_losses *rows, int B, const yoloxloss_losses *batch) {
    const float *terms[5] = {&batch->total, &batch->iou, &batch->obj, &batch->cls, &batch->l1};
    int64_t fg = 0, gt = 0;
    for (int k = 0; k < 5; k++) {
        const size_t at = (size_t)((const char *)terms[k] - (const char *)batch);
        double sum = 0.0, mag = 0.0;
        for (int b = 0; b < B; b++) {
            const float v = *(const float *)((const char *)&rows[b] + at);
            sum += v;
            mag += fabs(v);
        }
        const double tol = (B + 1) * (double)FLT_EPSILON * (mag + fabs(*terms[k]));
        if (!(fabs(sum - *terms[k]) <= tol))
            fail_msg("term %d: rows add up to %.9g, the batch's is %.9g (tolerance %.3g)", k, sum, (double)*terms[k],
                     tol);
    }
    for (int b = 0; b < B; b++) {
        fg += rows[b].num_fg;
        gt += rows[b].num_gt;
        TU_ASSERT_BITS_EQ(rows[b].normalizer, batch->normalizer);
        const double want = (double)(rows[b].num_fg > 1 ? rows[b].num_fg : 1) /
                            (double)(rows[b].num_gt > 1 ? rows[b].num_gt : 1);
        TU_ASSERT_BITS_EQ(rows[b].fg_ratio, (float)want);
    }
    assert_int_equal(fg, batch->num_fg);
    assert_int_equal(gt, batch->num_gt);
}

/* Each row is bit for bit a forward of its image alone, renormalised to the
 * batch's normaliser; the rows add up to the batch; after renormalize the
 * rows follow the new normaliser. Every dtype mix, layout and ISA. */
static void test_image_losses_values(void **state) {
    (void)state;
    yoloxloss_isa isas[8];
    const int n_isas = available_isas(isas);
    for (int ii = 0; ii < n_isas; ii++)
        for (int mix = 0; mix < N_MIXES; mix++)
            for (int split = 0; split <= 1; split++) {
                ts_scene s;
                ts_scene_make_small(&s, 4, 700 + (uint64_t)(mix * 2 + split));
                s.num_gt[2] = 0; /* an image without labels has an obj term only */
                ts_typed_scene t;
                ts_typed_make(&t, &s, MIXES[mix], split);
                yoloxloss_config cfg;
                ts_config(&s, &cfg, 2);
                cfg.isa = isas[ii];
                cfg.iou_loss = split ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
                yoloxloss_context *ctx = ts_create_ok(&cfg), *alone = ts_create_ok(&cfg);
                yoloxloss_losses batch, rows[TS_SMALL_MAX_IMAGES + 1];
                assert_int_equal(yoloxloss_forward(ctx, &t.batch, &batch), YOLOXLOSS_OK);
                for (int pass = 0; pass < 2; pass++) {
                    if (pass == 1) assert_int_equal(yoloxloss_renormalize(ctx, 3.5f, &batch), YOLOXLOSS_OK);
                    rows[s.B] = ts_sentinel_losses();
                    assert_int_equal(yoloxloss_get_image_losses(ctx, rows), YOLOXLOSS_OK);
                    ts_assert_losses_untouched(&rows[s.B]); /* B rows, not one more */
                    expect_rows_add_up(rows, s.B, &batch);
                    for (int b = 0; b < s.B; b++) {
                        yoloxloss_level lv[TS_MAX_LEVELS];
                        const yoloxloss_batch one = image_alone(&t, &s, b, lv);
                        yoloxloss_losses l1, own;
                        assert_int_equal(yoloxloss_forward(alone, &one, &l1), YOLOXLOSS_OK);
                        assert_int_equal(yoloxloss_get_image_losses(alone, &own), YOLOXLOSS_OK);
                        assert_true(ts_losses_equal(&own, &l1)); /* one image: its row is the batch */
                        assert_int_equal(yoloxloss_renormalize(alone, batch.normalizer, &l1), YOLOXLOSS_OK);
                        if (!ts_losses_equal(&l1, &rows[b]))
                            fail_msg("isa %s mix %d split %d pass %d: image %d's row (total %.9g) is not its forward "
                                     "alone (%.9g)", yoloxloss_isa_name(isas[ii]), mix, split, pass, b,
                                     (double)rows[b].total, (double)l1.total);
                    }
                }
                assert_int_equal(rows[2].num_gt, 0);
                assert_int_equal(rows[2].num_fg, 0);
                assert_true(rows[2].obj > 0.0f && rows[2].iou == 0.0f && rows[2].cls == 0.0f);
                yoloxloss_destroy(ctx);
                yoloxloss_destroy(alone);
                ts_typed_free(&t);
                ts_scene_free(&s);
            }
}

/* NULL arguments, no forward (none yet, a failed one), the message, and
 * the rows after backward (the forward is still held) and after a smaller
 * batch (B rows only). */
static void test_image_losses_contract(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 3, 12);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses rows[4] = {ts_sentinel_losses(), ts_sentinel_losses(), ts_sentinel_losses(),
                                ts_sentinel_losses()};
    assert_int_equal(yoloxloss_get_image_losses(NULL, rows), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(NULL), "ctx"));
    assert_int_equal(yoloxloss_get_image_losses(ctx, rows), YOLOXLOSS_ERR_NO_FORWARD);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "get_image_losses needs a successful forward"));
    ts_assert_losses_untouched(&rows[0]);
    assert_int_equal(yoloxloss_get_image_losses(ctx, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "out is NULL"));

    yoloxloss_losses batch;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &batch), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_get_image_losses(ctx, NULL), YOLOXLOSS_ERR_NULL_ARGUMENT);
    assert_int_equal(yoloxloss_get_image_losses(ctx, rows), YOLOXLOSS_OK);
    assert_string_equal(yoloxloss_last_error(ctx), ""); /* cleared by the call */
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    yoloxloss_losses again[3];
    assert_int_equal(yoloxloss_get_image_losses(ctx, again), YOLOXLOSS_OK);
    for (int b = 0; b < 3; b++) assert_true(ts_losses_equal(&again[b], &rows[b]));

    /* a smaller batch: two rows, the third left alone */
    yoloxloss_batch two = s.batch;
    two.num_images = 2;
    assert_int_equal(yoloxloss_forward(ctx, &two, &batch), YOLOXLOSS_OK);
    rows[2] = ts_sentinel_losses();
    assert_int_equal(yoloxloss_get_image_losses(ctx, rows), YOLOXLOSS_OK);
    ts_assert_losses_untouched(&rows[2]);
    expect_rows_add_up(rows, 2, &batch);

    /* a failed forward drops them */
    s.classes[0] = -4;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &batch), YOLOXLOSS_ERR_INVALID_LABEL);
    rows[0] = ts_sentinel_losses();
    assert_int_equal(yoloxloss_get_image_losses(ctx, rows), YOLOXLOSS_ERR_NO_FORWARD);
    ts_assert_losses_untouched(&rows[0]);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padded_equals_flat),
        cmocka_unit_test(test_level_implied_image_size),
        cmocka_unit_test(test_rounded_grid_needs_the_size),
        cmocka_unit_test(test_padding_accepted),
        cmocka_unit_test(test_padded_field_errors),
        cmocka_unit_test(test_padded_row_errors),
        cmocka_unit_test(test_image_losses_values),
        cmocka_unit_test(test_image_losses_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
