/* A random batch with fused head outputs and gradient buffers, for tests
 * that compare whole forward/backward runs. Include after test_util.h. */
#ifndef YL_TEST_BATCH_H
#define YL_TEST_BATCH_H

#include "yoloxloss.h"

#define TB_MAX_IMAGES 8
#define TB_MAX_GT 40

typedef struct {
    yoloxloss_config cfg;
    yoloxloss_level lv[3];
    yoloxloss_batch batch;
    size_t len[3]; /* floats per level buffer */
    int32_t num_gt[TB_MAX_IMAGES], cls[TB_MAX_IMAGES * TB_MAX_GT];
    float box[TB_MAX_IMAGES * TB_MAX_GT * 4];
} tb_batch;

/* B images (<= TB_MAX_IMAGES) of a square image of `size` pixels with
 * strides 8/16/32, 0..TB_MAX_GT boxes each. */
static inline void tb_make(tb_batch *t, tu_rng *r, int B, int C, int size) {
    yoloxloss_config_defaults(&t->cfg);
    t->cfg.num_classes = C;
    int total = 0;
    for (int l = 0; l < 3; l++) {
        int g = size / (8 << l);
        t->len[l] = (size_t)B * (size_t)(5 + C) * (size_t)g * (size_t)g;
        float *in = malloc(t->len[l] * sizeof *in);
        assert_non_null(in);
        for (size_t i = 0; i < t->len[l]; i++) in[i] = tu_rangef(r, -3, 1);
        t->lv[l] = (yoloxloss_level){g, g, in, NULL, NULL, NULL};
    }
    for (int b = 0; b < B; b++) {
        t->num_gt[b] = tu_int(r, 0, TB_MAX_GT);
        for (int g = 0; g < t->num_gt[b]; g++, total++) {
            t->cls[total] = tu_int(r, 0, C - 1);
            t->box[4 * total + 0] = tu_rangef(r, 0, size);
            t->box[4 * total + 1] = tu_rangef(r, 0, size);
            t->box[4 * total + 2] = tu_rangef(r, 4, size / 2);
            t->box[4 * total + 3] = tu_rangef(r, 4, size / 2);
        }
    }
    t->batch = (yoloxloss_batch){B, t->lv, t->num_gt, t->cls, t->box};
}

static inline void tb_free(tb_batch *t) {
    for (int l = 0; l < 3; l++) free((void *)t->lv[l].fused);
}

/* Gradient buffers shaped like t's inputs. */
static inline void tb_grads(const tb_batch *t, yoloxloss_level_grad g[3]) {
    for (int l = 0; l < 3; l++) {
        g[l] = (yoloxloss_level_grad){malloc(t->len[l] * sizeof(float)), NULL, NULL, NULL};
        assert_non_null(g[l].fused);
    }
}

static inline void tb_grads_free(yoloxloss_level_grad g[3]) {
    for (int l = 0; l < 3; l++) free(g[l].fused);
}

#endif
