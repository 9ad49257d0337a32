/* Random training steps for the tests that go through the public API, all
 * from one seed: a scene of any size for the robustness tests (allocation,
 * threads, contract), and a small hand-shaped one for the API tests
 * (test_api_*.c) with split-layout copies, gradient buffers in both layouts
 * and the assignment read back per anchor. Include after <cmocka.h>. */
#ifndef YL_SCENE_UTIL_H
#define YL_SCENE_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "half_ref.h"
#include "test_util.h"
#include "yoloxloss.h"

#define TS_MAX_LEVELS 4

typedef struct {
    int B, C, L;
    float strides[TS_MAX_LEVELS];
    float *out[TS_MAX_LEVELS];  /* [B, 5+C, H, W] */
    float *grad[TS_MAX_LEVELS]; /* same shape */
    size_t elems[TS_MAX_LEVELS];
    yoloxloss_level lv[TS_MAX_LEVELS];
    yoloxloss_level_grad g[TS_MAX_LEVELS];
    int32_t *num_gt;  /* [B] */
    int32_t *classes; /* [B * max_gt] */
    float *boxes;     /* [B * max_gt, 4] */
    int total_gt;
    yoloxloss_batch batch;
    /* Split-layout copies of out, NULL unless ts_scene_add_split made them. */
    float *reg[TS_MAX_LEVELS]; /* [B, 4, H, W] */
    float *obj[TS_MAX_LEVELS]; /* [B, 1, H, W] */
    float *cls[TS_MAX_LEVELS]; /* [B, C, H, W] */
    yoloxloss_level lv_split[TS_MAX_LEVELS];
    yoloxloss_batch batch_split;
} ts_scene;

/* Anchors of one level: height x width. */
static inline size_t ts_hw(const ts_scene *s, int l) {
    return (size_t)s->lv[l].height * (size_t)s->lv[l].width;
}

/* Index of element (image b, channel ch, row i, column j) in a level-l
 * buffer of the fused layout: head outputs and their gradients alike. */
static inline size_t ts_index(const ts_scene *s, int l, int b, int ch, int i, int j) {
    size_t plane = (size_t)b * (size_t)(5 + s->C) + (size_t)ch;
    return plane * ts_hw(s, l) + (size_t)i * (size_t)s->lv[l].width + (size_t)j;
}

/* That element of the head outputs. */
static inline float *ts_at(const ts_scene *s, int l, int b, int ch, int i, int j) {
    return s->out[l] + ts_index(s, l, b, ch, i, j);
}

/* Head values for every element of the scene, from seed. */
static inline void ts_scene_fill(ts_scene *s, uint64_t seed) {
    tu_rng r = {seed};
    for (int l = 0; l < s->L; l++) {
        size_t hw = (size_t)s->lv[l].height * (size_t)s->lv[l].width;
        for (int b = 0; b < s->B; b++)
            for (int ch = 0; ch < 5 + s->C; ch++) {
                float *plane = s->out[l] + ((size_t)b * (size_t)(5 + s->C) + (size_t)ch) * hw;
                double lo = ch < 2 ? 0.0 : ch < 4 ? -0.5 : -4.0, hi = ch < 2 ? 1.0 : ch < 4 ? 1.5 : 3.0;
                for (size_t q = 0; q < hw; q++) plane[q] = tu_rangef(&r, lo, hi);
            }
    }
}

/* Buffers for B images, C classes, L levels of grid (grid >> l) with strides
 * 8 << l, room for max_gt labels per image; num_gt all 0, values unset. */
static inline void ts_scene_alloc(ts_scene *s, int B, int C, int L, int grid, int max_gt) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->C = C;
    s->L = L;
    for (int l = 0; l < L; l++) {
        int n = grid >> l > 0 ? grid >> l : 1;
        s->strides[l] = (float)(8 << l);
        s->elems[l] = (size_t)B * (size_t)(5 + C) * (size_t)n * (size_t)n;
        s->out[l] = malloc(s->elems[l] * sizeof(float));
        s->grad[l] = malloc(s->elems[l] * sizeof(float));
        s->lv[l].height = s->lv[l].width = n;
        s->lv[l].fused = s->out[l];
        s->g[l].fused = s->grad[l];
    }
    size_t rows = (size_t)B * (size_t)(max_gt > 0 ? max_gt : 1);
    s->num_gt = calloc((size_t)B, sizeof(int32_t));
    s->classes = malloc(rows * sizeof(int32_t));
    s->boxes = malloc(rows * 4 * sizeof(float));
    s->batch.num_images = B;
    s->batch.levels = s->lv;
    s->batch.num_gt = s->num_gt;
    s->batch.gt_classes = s->classes;
    s->batch.gt_boxes = s->boxes;
}

/* B images, C classes, L levels of grid (grid >> l) with strides 8 << l,
 * 0..max_gt boxes per image inside the grid*8 pixel image. */
static inline void ts_scene_make(ts_scene *s, int B, int C, int L, int grid, int max_gt, uint64_t seed) {
    ts_scene_alloc(s, B, C, L, grid, max_gt);
    tu_rng r = {seed ^ 0x5eedull};
    ts_scene_fill(s, seed);
    float size = (float)grid * 8.0f;
    for (int b = 0; b < B; b++) {
        s->num_gt[b] = (int32_t)(tu_unif(&r) * (max_gt + 1));
        if (s->num_gt[b] > max_gt) s->num_gt[b] = max_gt;
        for (int g = 0; g < s->num_gt[b]; g++, s->total_gt++) {
            s->classes[s->total_gt] = (int32_t)(tu_unif(&r) * C) % C;
            float *bx = s->boxes + 4 * s->total_gt;
            bx[2] = tu_rangef(&r, 4.0, size / 2);
            bx[3] = tu_rangef(&r, 4.0, size / 2);
            bx[0] = tu_rangef(&r, 0.0, size);
            bx[1] = tu_rangef(&r, 0.0, size);
        }
    }
}

/* Copies the fused head outputs into the split buffers. */
static inline void ts_scene_sync_split(ts_scene *s) {
    size_t C = (size_t)s->C;
    for (int l = 0; l < s->L; l++) {
        size_t hw = ts_hw(s, l);
        for (int b = 0; b < s->B; b++) {
            const float *base = s->out[l] + (size_t)b * (5 + C) * hw;
            memcpy(s->reg[l] + (size_t)b * 4 * hw, base, 4 * hw * sizeof(float));
            memcpy(s->obj[l] + (size_t)b * hw, base + 4 * hw, hw * sizeof(float));
            memcpy(s->cls[l] + (size_t)b * C * hw, base + 5 * hw, C * hw * sizeof(float));
        }
    }
}

/* Split-layout copies of the scene's head outputs, and batch_split, which
 * reads them and shares batch's labels. */
static inline void ts_scene_add_split(ts_scene *s) {
    for (int l = 0; l < s->L; l++) {
        size_t hw = ts_hw(s, l), B = (size_t)s->B;
        s->reg[l] = malloc(B * 4 * hw * sizeof(float));
        s->obj[l] = malloc(B * hw * sizeof(float));
        s->cls[l] = malloc(B * (size_t)s->C * hw * sizeof(float));
        s->lv_split[l].height = s->lv[l].height;
        s->lv_split[l].width = s->lv[l].width;
        s->lv_split[l].reg = s->reg[l];
        s->lv_split[l].obj = s->obj[l];
        s->lv_split[l].cls = s->cls[l];
    }
    s->batch_split = s->batch;
    s->batch_split.levels = s->lv_split;
    ts_scene_sync_split(s);
}

/* Frees every buffer of a scene from ts_scene_make or ts_scene_make_small. */
static inline void ts_scene_free(ts_scene *s) {
    for (int l = 0; l < s->L; l++) {
        free(s->out[l]);
        free(s->grad[l]);
        free(s->reg[l]);
        free(s->obj[l]);
        free(s->cls[l]);
    }
    free(s->num_gt);
    free(s->classes);
    free(s->boxes);
}

/* num_threads, lowered to YOLOXLOSS_TEST_MAX_THREADS when that is set: the
 * qemu-user runs of cross builds set 1, since libgomp hangs there once a
 * parallel region has a second thread (threading is tested natively). */
static inline int ts_threads(int num_threads) {
    const char *cap = getenv("YOLOXLOSS_TEST_MAX_THREADS");
    int most = cap ? atoi(cap) : 0;
    return most >= 1 && num_threads > most ? most : num_threads;
}

/* The config the scene was made for: its classes and strides, L1 on. */
static inline void ts_config(const ts_scene *s, yoloxloss_config *cfg, int num_threads) {
    yoloxloss_config_defaults(cfg);
    cfg->num_classes = s->C;
    cfg->num_levels = s->L;
    cfg->strides = s->strides;
    cfg->use_l1 = 1;
    cfg->num_threads = ts_threads(num_threads);
    cfg->check_finite = 1;
}

/* A context for ts_config(s, threads); NULL if create failed. */
static inline yoloxloss_context *ts_context(const ts_scene *s, int num_threads) {
    yoloxloss_config cfg;
    ts_config(s, &cfg, num_threads);
    yoloxloss_context *ctx = NULL;
    return yoloxloss_create(&cfg, &ctx) == YOLOXLOSS_OK ? ctx : NULL;
}

/* Every field of a and b equal bitwise (memcmp of the whole struct would
 * read its padding). */
static inline int ts_losses_equal(const yoloxloss_losses *a, const yoloxloss_losses *b) {
    const float fa[7] = {a->total, a->iou, a->obj, a->cls, a->l1, a->normalizer, a->fg_ratio};
    const float fb[7] = {b->total, b->iou, b->obj, b->cls, b->l1, b->normalizer, b->fg_ratio};
    return memcmp(fa, fb, sizeof fa) == 0 && a->num_fg == b->num_fg && a->num_gt == b->num_gt;
}

/* Bytes of every gradient level equal to those of ref (a copy of grads). */
static inline int ts_grads_equal(const ts_scene *s, float *const ref[TS_MAX_LEVELS]) {
    for (int l = 0; l < s->L; l++)
        if (memcmp(s->grad[l], ref[l], s->elems[l] * sizeof(float)) != 0) return 0;
    return 1;
}

static inline void ts_grads_copy(const ts_scene *s, float *out[TS_MAX_LEVELS]) {
    for (int l = 0; l < s->L; l++) {
        out[l] = malloc(s->elems[l] * sizeof(float));
        memcpy(out[l], s->grad[l], s->elems[l] * sizeof(float));
    }
}

static inline void ts_grads_release(const ts_scene *s, float *g[TS_MAX_LEVELS]) {
    for (int l = 0; l < s->L; l++) free(g[l]);
}

/* ---- the small scene of the API tests ------------------------------------ */

/* Level 0 4x4 at stride 8 and level 1 2x2 at stride 16 (a 32x32 image, 20
 * anchors per image), 3 classes, 1 to 3 boxes per image: small enough that a
 * test can walk every anchor and every element. */
#define TS_SMALL_CLASSES 3
#define TS_SMALL_CHANNELS (5 + TS_SMALL_CLASSES)
#define TS_SMALL_LEVELS 2
#define TS_SMALL_ANCHORS 20
#define TS_SMALL_MAX_IMAGES 4
#define TS_SMALL_MAX_GT_PER_IMAGE 3
#define TS_SMALL_MAX_GT (TS_SMALL_MAX_IMAGES * TS_SMALL_MAX_GT_PER_IMAGE)

/* B (at most TS_SMALL_MAX_IMAGES) images of the small scene, with split
 * copies. Box centres lie inside the image (4 to 28 of 32 pixels), so every
 * gt has candidates; predicted boxes (about 11 to 30 pixels on both levels)
 * are the size of the gts (6 to 28), so IoUs and costs span a useful range. */
static inline void ts_scene_make_small(ts_scene *s, int B, uint64_t seed) {
    assert_true(B >= 1 && B <= TS_SMALL_MAX_IMAGES);
    ts_scene_alloc(s, B, TS_SMALL_CLASSES, TS_SMALL_LEVELS, 4, TS_SMALL_MAX_GT_PER_IMAGE);
    tu_rng r = {seed};
    for (int l = 0; l < s->L; l++) {
        assert_non_null(s->out[l]);
        /* tw, th: exp() * stride gives 11..30 pixels on either level */
        const double wh_lo = l == 0 ? 0.3 : -0.4, wh_hi = l == 0 ? 1.3 : 0.6;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < s->lv[l].height; i++)
                for (int j = 0; j < s->lv[l].width; j++) {
                    *ts_at(s, l, b, 0, i, j) = tu_rangef(&r, 0.1, 0.9);
                    *ts_at(s, l, b, 1, i, j) = tu_rangef(&r, 0.1, 0.9);
                    *ts_at(s, l, b, 2, i, j) = tu_rangef(&r, wh_lo, wh_hi);
                    *ts_at(s, l, b, 3, i, j) = tu_rangef(&r, wh_lo, wh_hi);
                    *ts_at(s, l, b, 4, i, j) = tu_rangef(&r, -3, 3);
                    for (int k = 0; k < s->C; k++) *ts_at(s, l, b, 5 + k, i, j) = tu_rangef(&r, -3, 3);
                }
    }
    for (int b = 0; b < B; b++) {
        s->num_gt[b] = tu_int(&r, 1, TS_SMALL_MAX_GT_PER_IMAGE);
        for (int g = 0; g < s->num_gt[b]; g++, s->total_gt++) {
            float *bx = s->boxes + 4 * s->total_gt;
            s->classes[s->total_gt] = tu_int(&r, 0, s->C - 1);
            bx[0] = tu_rangef(&r, 4, 28);
            bx[1] = tu_rangef(&r, 4, 28);
            bx[2] = tu_rangef(&r, 6, 28);
            bx[3] = tu_rangef(&r, 6, 28);
        }
    }
    ts_scene_add_split(s);
}

/* The first label row of image b: the rows of images 0..b-1 come before it,
 * as num_gt says now (tests change it after ts_scene_make_small). */
static inline int ts_first_gt_row(const ts_scene *s, int b) {
    int row = 0;
    for (int k = 0; k < b; k++) row += s->num_gt[k];
    return row;
}

/* Level l, row i, column j of anchor a of an image (YOLOX order: level by
 * level, row-major within a level). */
static inline void ts_anchor_pos(const ts_scene *s, int a, int *l, int *i, int *j) {
    *l = *i = *j = 0;
    for (int k = 0; k < s->L; k++) {
        int hw = (int)ts_hw(s, k);
        if (a < hw) {
            *l = k;
            *i = a / s->lv[k].width;
            *j = a % s->lv[k].width;
            return;
        }
        a -= hw;
    }
    fail_msg("anchor out of range");
}

/* The L1 term's target for the anchor at row i, column j of level l against
 * label row `row`: the gt centre in grid cells from the anchor's cell, and
 * the log of its size in strides. */
static inline void ts_l1_target(const ts_scene *s, int l, int i, int j, int row, double target[4]) {
    const float *gb = s->boxes + 4 * row;
    double stride = s->strides[l];
    target[0] = gb[0] / stride - j;
    target[1] = gb[1] / stride - i;
    target[2] = log(gb[2] / stride + 1e-8);
    target[3] = log(gb[3] / stride + 1e-8);
}

/* A context for cfg, which must be valid. */
static inline yoloxloss_context *ts_create_ok(const yoloxloss_config *cfg) {
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(cfg, &ctx), YOLOXLOSS_OK);
    assert_non_null(ctx);
    return ctx;
}

/* Gradient buffers for every level of a scene in both layouts, each element
 * set to one fill value; as_fused and as_split point at them for backward. */
typedef struct {
    int L;
    float *fused[TS_MAX_LEVELS];
    float *reg[TS_MAX_LEVELS], *obj[TS_MAX_LEVELS], *cls[TS_MAX_LEVELS];
    yoloxloss_level_grad as_fused[TS_MAX_LEVELS], as_split[TS_MAX_LEVELS];
} ts_grad_buffers;

/* n floats from malloc, each set to fill. */
static inline float *ts_filled(size_t n, float fill) {
    float *x = malloc(n * sizeof(float));
    for (size_t q = 0; q < n; q++) x[q] = fill;
    return x;
}

/* Buffers shaped for scene s, every element set to fill (NaN or a sentinel
 * shows which elements backward wrote). */
static inline void ts_grad_buffers_make(ts_grad_buffers *g, const ts_scene *s, float fill) {
    memset(g, 0, sizeof *g);
    g->L = s->L;
    for (int l = 0; l < s->L; l++) {
        size_t hw = ts_hw(s, l), B = (size_t)s->B;
        g->fused[l] = ts_filled(s->elems[l], fill);
        g->reg[l] = ts_filled(B * 4 * hw, fill);
        g->obj[l] = ts_filled(B * hw, fill);
        g->cls[l] = ts_filled(B * (size_t)s->C * hw, fill);
        g->as_fused[l].fused = g->fused[l];
        g->as_split[l].reg = g->reg[l];
        g->as_split[l].obj = g->obj[l];
        g->as_split[l].cls = g->cls[l];
    }
}

/* Frees what ts_grad_buffers_make allocated. */
static inline void ts_grad_buffers_free(ts_grad_buffers *g) {
    for (int l = 0; l < g->L; l++) {
        free(g->fused[l]);
        free(g->reg[l]);
        free(g->obj[l]);
        free(g->cls[l]);
    }
}

/* backward into g's fused buffers, which must succeed. */
static inline void ts_backward_fused(yoloxloss_context *ctx, ts_grad_buffers *g, const yoloxloss_upstream *up,
                                     int accumulate) {
    assert_int_equal(yoloxloss_backward(ctx, g->as_fused, up, accumulate), YOLOXLOSS_OK);
}

/* The assignment of the last forward over a small scene, per anchor of each
 * image (image-major) and per label row. */
typedef struct {
    int32_t matched[TS_SMALL_MAX_IMAGES * TS_SMALL_ANCHORS];
    float pred_iou[TS_SMALL_MAX_IMAGES * TS_SMALL_ANCHORS];
    int32_t dk[TS_SMALL_MAX_GT];
} ts_small_assignment;

/* Reads the assignment of ctx's last forward, which must be held. */
static inline void ts_get_assignment(yoloxloss_context *ctx, ts_small_assignment *as) {
    memset(as, 0, sizeof *as);
    assert_int_equal(yoloxloss_get_assignment(ctx, as->matched, as->pred_iou, as->dk), YOLOXLOSS_OK);
}

/* Losses that no successful call writes: a failed call must leave them. */
static inline yoloxloss_losses ts_sentinel_losses(void) {
    const yoloxloss_losses sentinel = {-1.25f, -2.5f, -3.75f, -4.5f, -5.25f, -6.5f, -7.75f, -99, -98};
    return sentinel;
}

/* l still holds ts_sentinel_losses(), bit for bit. */
static inline void ts_assert_losses_untouched(const yoloxloss_losses *l) {
    const yoloxloss_losses sentinel = ts_sentinel_losses();
    assert_true(ts_losses_equal(l, &sentinel));
}

/* ---- typed copies: float16, bfloat16 and mixed-dtype levels ------------- */

/* A scene's head outputs with each level in its own dtype, fused or split,
 * and gradient buffers of the same dtypes. ts_typed_make rounds the
 * scene's values into each level's dtype (half_ref.h's reference rounding)
 * and writes the rounded values back into the float32 scene, which then
 * holds exactly the up-converted inputs: its results are what the typed
 * ones must equal. */
typedef struct {
    int L, split;
    yoloxloss_dtype dtype[TS_MAX_LEVELS];
    void *in[TS_MAX_LEVELS][3];   /* fused: [0]; split: reg, obj, cls */
    void *grad[TS_MAX_LEVELS][3];
    size_t count[TS_MAX_LEVELS][3]; /* elements of each buffer */
    yoloxloss_level lv[TS_MAX_LEVELS];
    yoloxloss_level_grad g[TS_MAX_LEVELS];
    yoloxloss_batch batch;         /* the scene's labels, these levels */
} ts_typed_scene;

static inline href_fmt ts_fmt(yoloxloss_dtype dt) { return dt == YOLOXLOSS_DTYPE_FLOAT16 ? HREF_F16 : HREF_BF16; }

/* Buffer part and element within it of fused element i of level l. */
static inline size_t ts_typed_locate(const ts_typed_scene *t, const ts_scene *s, int l, size_t i, int *part) {
    const size_t hw = ts_hw(s, l), C = (size_t)s->C, per = (5 + C) * hw;
    const size_t b = i / per, ch = (i % per) / hw, q = i % hw;
    if (!t->split) {
        *part = 0;
        return i;
    }
    if (ch < 4) {
        *part = 0;
        return (b * 4 + ch) * hw + q;
    }
    if (ch == 4) {
        *part = 1;
        return b * hw + q;
    }
    *part = 2;
    return (b * C + ch - 5) * hw + q;
}

/* The bits of element idx of a buffer of dt: a float's 32, or the 16 of a
 * float16 or bfloat16. */
static inline uint32_t ts_bits_at(const void *buf, yoloxloss_dtype dt, size_t idx) {
    if (dt == YOLOXLOSS_DTYPE_FLOAT32) return href_bits(((const float *)buf)[idx]);
    return ((const uint16_t *)buf)[idx];
}

/* The value v stored as dt would be: its float bits, or its rounded pattern. */
static inline uint32_t ts_bits_of(float v, yoloxloss_dtype dt) {
    return dt == YOLOXLOSS_DTYPE_FLOAT32 ? href_bits(v) : href_round(v, ts_fmt(dt));
}

/* The value of a dt element whose bits are `bits`, as float. */
static inline float ts_value_of(uint32_t bits, yoloxloss_dtype dt) {
    return dt == YOLOXLOSS_DTYPE_FLOAT32 ? href_float(bits) : (float)href_value((uint16_t)bits, ts_fmt(dt));
}

/* s->out's values rounded into t's buffers, and the rounded values
 * written back into s->out (and its split copies, if any). */
static inline void ts_typed_sync(ts_typed_scene *t, ts_scene *s) {
    for (int l = 0; l < s->L; l++)
        for (size_t i = 0; i < s->elems[l]; i++) {
            int part;
            size_t at = ts_typed_locate(t, s, l, i, &part);
            uint32_t bits = ts_bits_of(s->out[l][i], t->dtype[l]);
            if (t->dtype[l] == YOLOXLOSS_DTYPE_FLOAT32)
                ((float *)t->in[l][part])[at] = s->out[l][i];
            else
                ((uint16_t *)t->in[l][part])[at] = (uint16_t)bits;
            s->out[l][i] = ts_value_of(bits, t->dtype[l]);
        }
    if (s->reg[0]) ts_scene_sync_split(s);
}

/* Typed copies of scene s, level l in dtypes[l], fused or split; s->out
 * becomes the up-converted values. Gradient buffers are zero. */
static inline void ts_typed_make(ts_typed_scene *t, ts_scene *s, const yoloxloss_dtype *dtypes, int split) {
    memset(t, 0, sizeof *t);
    t->L = s->L;
    t->split = split;
    for (int l = 0; l < s->L; l++) {
        const size_t hw = ts_hw(s, l), B = (size_t)s->B, C = (size_t)s->C;
        const yoloxloss_dtype dt = dtypes[l];
        const size_t esize = dt == YOLOXLOSS_DTYPE_FLOAT32 ? 4 : 2;
        t->dtype[l] = dt;
        const int parts = split ? 3 : 1;
        const size_t counts[3] = {split ? B * 4 * hw : s->elems[l], B * hw, B * C * hw};
        for (int k = 0; k < parts; k++) {
            t->count[l][k] = counts[k];
            t->in[l][k] = malloc(counts[k] * esize);
            t->grad[l][k] = calloc(counts[k], esize);
            assert_true(t->in[l][k] && t->grad[l][k]);
        }
        t->lv[l].height = s->lv[l].height;
        t->lv[l].width = s->lv[l].width;
        t->lv[l].dtype = dt;
        if (split) {
            t->lv[l].reg = t->in[l][0];
            t->lv[l].obj = t->in[l][1];
            t->lv[l].cls = t->in[l][2];
            t->g[l].reg = t->grad[l][0];
            t->g[l].obj = t->grad[l][1];
            t->g[l].cls = t->grad[l][2];
        } else {
            t->lv[l].fused = t->in[l][0];
            t->g[l].fused = t->grad[l][0];
        }
    }
    ts_typed_sync(t, s);
    t->batch = s->batch;
    t->batch.levels = t->lv;
}

/* Bits of the typed gradient at fused element i of level l. */
static inline uint32_t ts_typed_grad_bits(const ts_typed_scene *t, const ts_scene *s, int l, size_t i) {
    int part;
    size_t at = ts_typed_locate(t, s, l, i, &part);
    return ts_bits_at(t->grad[l][part], t->dtype[l], at);
}

/* Every typed gradient element and s->grad set to one random value each,
 * representable in the level's dtype (so both start equal), for
 * accumulate mode. */
static inline void ts_typed_fill_grads(ts_typed_scene *t, ts_scene *s, uint64_t seed) {
    tu_rng r = {seed};
    for (int l = 0; l < s->L; l++)
        for (size_t i = 0; i < s->elems[l]; i++) {
            int part;
            size_t at = ts_typed_locate(t, s, l, i, &part);
            uint32_t bits = ts_bits_of(tu_rangef(&r, -2, 2), t->dtype[l]);
            if (t->dtype[l] == YOLOXLOSS_DTYPE_FLOAT32)
                ((float *)t->grad[l][part])[at] = href_float(bits);
            else
                ((uint16_t *)t->grad[l][part])[at] = (uint16_t)bits;
            s->grad[l][i] = ts_value_of(bits, t->dtype[l]);
        }
}

/* Fails unless every typed gradient is the float32 scene's gradient stored
 * in the level's dtype (rounded to nearest even; NaN as NaN), bit for bit. */
static inline void ts_typed_expect_rounded(const ts_typed_scene *t, const ts_scene *s, const char *what) {
    for (int l = 0; l < s->L; l++)
        for (size_t i = 0; i < s->elems[l]; i++) {
            uint32_t got = ts_typed_grad_bits(t, s, l, i), want = ts_bits_of(s->grad[l][i], t->dtype[l]);
            if (got != want)
                fail_msg("%s: level %d (%s) element %zu: gradient bits 0x%x, float32 gradient %.9g rounds to 0x%x",
                         what, l, t->dtype[l] == YOLOXLOSS_DTYPE_FLOAT32 ? "float32"
                                  : href_name(ts_fmt(t->dtype[l])), i, got, (double)s->grad[l][i], want);
        }
}

static inline void ts_typed_free(ts_typed_scene *t) {
    for (int l = 0; l < t->L; l++)
        for (int k = 0; k < 3; k++) {
            free(t->in[l][k]);
            free(t->grad[l][k]);
        }
}

/* ---- refusals ------------------------------------------------------------ */

/* forward must fail with `want` and every one of the n needles in its
 * message, write nothing, and hold no forward afterwards (neither an
 * assignment nor per-image losses); `what` names the case in failures. */
static inline void ts_expect_refused_n(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_status want,
                                       const char *const *needles, int n, const char *what) {
    yoloxloss_losses l = ts_sentinel_losses();
    const yoloxloss_status st = yoloxloss_forward(ctx, batch, &l);
    if (st != want)
        fail_msg("%s: status %d (%s), expected %d", what, (int)st, yoloxloss_last_error(ctx), (int)want);
    ts_assert_losses_untouched(&l);
    for (int k = 0; k < n; k++)
        if (!strstr(yoloxloss_last_error(ctx), needles[k]))
            fail_msg("%s: \"%s\" lacks \"%s\"", what, yoloxloss_last_error(ctx), needles[k]);
    assert_int_equal(yoloxloss_get_assignment(ctx, NULL, NULL, NULL), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_get_image_losses(ctx, &l), YOLOXLOSS_ERR_NO_FORWARD);
    ts_assert_losses_untouched(&l);
}

/* A list of message needles and its length, for ts_expect_refused_n. */
#define TS_NEEDLES(...) \
    (const char *const[]){__VA_ARGS__}, (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* ts_expect_refused_n with up to two needles (NULL: none). */
static inline void ts_expect_refused(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_status want,
                                     const char *needle1, const char *needle2) {
    const char *needles[2];
    int n = 0;
    if (needle1) needles[n++] = needle1;
    if (needle2) needles[n++] = needle2;
    ts_expect_refused_n(ctx, batch, want, needles, n, "forward");
}

#endif
