/* yoloxloss_decode: every anchor of a batch to its box and class scores,
 * and the runs of anchors that decode and detect share out to threads. */
#include <math.h>

#include "context.h"
#include "decode.h"
#include "layout.h"
#include "threads.h"
#include "validate.h"

size_t yl_runs_per_image(const yoloxloss_level *levels, int num_levels) {
    size_t runs = 0;
    for (int l = 0; l < num_levels; l++) {
        const size_t hw = (size_t)levels[l].height * (size_t)levels[l].width;
        runs += (hw + YL_RUN_ANCHORS - 1) / YL_RUN_ANCHORS;
    }
    return runs;
}

yl_run yl_run_at(const yoloxloss_level *levels, int num_levels, size_t per_image, size_t item) {
    yl_run r = {(int)(item / per_image), 0, 0, 0, 0};
    size_t k = item % per_image, first_anchor = 0;
    for (int l = 0; l < num_levels; l++) {
        const size_t hw = (size_t)levels[l].height * (size_t)levels[l].width;
        const size_t runs = (hw + YL_RUN_ANCHORS - 1) / YL_RUN_ANCHORS;
        if (k < runs) {
            r.level = l;
            r.q0 = k * YL_RUN_ANCHORS;
            r.n = hw - r.q0 < YL_RUN_ANCHORS ? hw - r.q0 : YL_RUN_ANCHORS;
            r.anchor = first_anchor + r.q0;
            return r;
        }
        k -= runs;
        first_anchor += hw;
    }
    return r; /* not reached for item < images * per_image */
}

yl_decode_src yl_decode_src_of(const yoloxloss_config *cfg, const yoloxloss_level *levels, int level, int image) {
    const yl_level_view v = yl_input_view(&levels[level], cfg->num_classes, image);
    const yl_decode_src s = {v.reg, v.obj, v.cls, v.hw, v.width, cfg->num_classes, cfg->strides[level],
                             cfg->arithmetic == YOLOXLOSS_ARITHMETIC_MMDET};
    return s;
}

yl_decode_src yl_run_src(const yoloxloss_config *cfg, const yoloxloss_level *levels, size_t per_image, size_t item,
                         yl_run *run) {
    *run = yl_run_at(levels, cfg->num_levels, per_image, item);
    return yl_decode_src_of(cfg, levels, run->level, run->image);
}

typedef struct {
    const yoloxloss_context *ctx;
    const yoloxloss_level *levels;
    size_t per_image, anchors;
    float *boxes, *scores;
} decode_job;

static void decode_run(void *arg, size_t item, int thread) {
    (void)thread;
    const decode_job *j = arg;
    const yoloxloss_config *cfg = &j->ctx->cfg;
    yl_run r;
    const yl_decode_src src = yl_run_src(cfg, j->levels, j->per_image, item, &r);
    const size_t at = (size_t)r.image * j->anchors + r.anchor;
    const yl_decode_dst dst = {j->boxes ? j->boxes + 4 * at : NULL,
                               j->scores ? j->scores + at * (size_t)cfg->num_classes : NULL, NULL, NULL, NULL,
                               -INFINITY};
    j->ctx->kernels->decode_anchors(&src, r.q0, r.n, &dst, j->levels[r.level].dtype);
}

static yoloxloss_status decode(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels, float *boxes,
                               float *scores) {
    size_t anchors = 0;
    yoloxloss_status st = yl_validate_levels(ctx, num_images, levels, &anchors);
    if (st == YOLOXLOSS_OK) st = yl_validate_decode_outputs(ctx, num_images, anchors, boxes, scores);
    if (st != YOLOXLOSS_OK || (!boxes && !scores)) return st;
    const decode_job job = {ctx, levels, yl_runs_per_image(levels, ctx->cfg.num_levels), anchors, boxes, scores};
    const size_t items = (size_t)num_images * job.per_image;
    const yl_thread_plan plan =
        yl_plan_threads(yl_policy_of(ctx), &ctx->decode_threads, items,
                        yl_inference_work_ns(levels, ctx->cfg.num_levels, num_images, ctx->cfg.num_classes,
                                             boxes != NULL, scores != NULL));
    yl_parallel_for(plan.threads, items, decode_run, (void *)&job);
    yl_plan_done(&ctx->decode_threads, &plan);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_decode(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels,
                                  float *boxes, float *scores) {
    const yoloxloss_status st = yl_enter(ctx, "decode");
    return st != YOLOXLOSS_OK ? st : yl_leave(ctx, decode(ctx, num_images, levels, boxes, scores));
}
