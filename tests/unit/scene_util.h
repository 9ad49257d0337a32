/* A random training step of any size for the robustness tests (allocation,
 * threads, contract): fused head outputs, gradient buffers and labels, all
 * from one seed. Include after <cmocka.h>. */
#ifndef YL_SCENE_UTIL_H
#define YL_SCENE_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
} ts_scene;

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

/* B images, C classes, L levels of grid (grid >> l) with strides 8 << l,
 * 0..max_gt boxes per image inside the grid*8 pixel image. */
static inline void ts_scene_make(ts_scene *s, int B, int C, int L, int grid, int max_gt, uint64_t seed) {
    memset(s, 0, sizeof *s);
    tu_rng r = {seed ^ 0x5eedull};
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
    ts_scene_fill(s, seed);
    size_t rows = (size_t)B * (size_t)(max_gt > 0 ? max_gt : 1);
    s->num_gt = malloc((size_t)B * sizeof(int32_t));
    s->classes = malloc(rows * sizeof(int32_t));
    s->boxes = malloc(rows * 4 * sizeof(float));
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
    s->batch.num_images = B;
    s->batch.levels = s->lv;
    s->batch.num_gt = s->num_gt;
    s->batch.gt_classes = s->classes;
    s->batch.gt_boxes = s->boxes;
}

static inline void ts_scene_free(ts_scene *s) {
    for (int l = 0; l < s->L; l++) {
        free(s->out[l]);
        free(s->grad[l]);
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

#endif
