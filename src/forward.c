/* forward: validate, assign every image, sum the loss terms; renormalize;
 * and the read-outs of the last forward's assignment and per-image losses. */
#include <omp.h>
#include <string.h>

#include "assign.h"
#include "context.h"
#include "layout.h"
#include "loss.h"
#include "validate.h"

yoloxloss_status yoloxloss_forward(yoloxloss_context *ctx, const yoloxloss_batch *batch,
                                   yoloxloss_losses *losses) {
    yl_clear_error(ctx);
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "ctx is NULL");
    ctx->has_forward = 0;
    if (!losses) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "losses is NULL");
    yoloxloss_status st = yl_validate_batch(ctx, batch);
    if (st != YOLOXLOSS_OK) return st;

    yl_step *step = &ctx->step;
    const int B = batch->num_images, L = ctx->cfg.num_levels;
    if (!yl_step_begin(step, batch) || !yl_buffer_reserve(&ctx->image_sums, (size_t)B * sizeof(yl_loss_sums)))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the workspace for %d images x %lld anchors",
                       B, (long long)step->num_anchors);

    int out_of_memory = 0;
    yl_loss_sums *sums = ctx->image_sums.ptr;
    /* Threads take whole images; with fewer images than threads, the
     * images go one by one and the threads share the work inside each. */
    const int across = B >= ctx->num_threads ? ctx->num_threads : 1;
    yl_assign_params ap = ctx->assign;
    ap.threads = across > 1 ? 1 : ctx->num_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(across) if (across > 1)
    for (int b = 0; b < B; b++) {
        const int t = omp_get_thread_num();
        yl_level_view *views = ctx->views + (size_t)t * (size_t)L;
        for (int l = 0; l < L; l++) views[l] = yl_level_view_of(step, l, b);
        yl_image_state img = yl_image_state_of(step, b);
        int64_t fg = yl_assign_image(&ap, views, L, step->num_anchors, img.n_gt, img.gt_boxes, img.gt_classes,
                                     &ctx->scratch[t], img.matched, img.pred_iou, img.dynamic_k);
        if (fg < 0) {
#pragma omp atomic write
            out_of_memory = 1;
            continue;
        }
        sums[b] = yl_image_loss_sums(&ctx->cfg, ctx->kernels, step, b, views);
    }
    if (out_of_memory || !yl_scratch_settle(ctx))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY,
                       "could not allocate the assignment workspace (candidates x gts of one image)");

    /* Fixed image order: the totals do not depend on the thread count. */
    memset(&ctx->sums, 0, sizeof ctx->sums);
    for (int b = 0; b < B; b++) {
        ctx->sums.iou += sums[b].iou;
        ctx->sums.obj += sums[b].obj;
        ctx->sums.cls += sums[b].cls;
        ctx->sums.l1 += sums[b].l1;
        ctx->sums.num_fg += sums[b].num_fg;
    }
    ctx->normalizer = ctx->sums.num_fg > 1 ? (float)ctx->sums.num_fg : 1.0f;
    ctx->has_forward = 1;
    yl_report_losses(&ctx->cfg, &ctx->sums, ctx->normalizer, step->total_gt, losses);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_renormalize(yoloxloss_context *ctx, float normalizer, yoloxloss_losses *losses) {
    yl_clear_error(ctx);
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "ctx is NULL");
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD, "renormalize needs a successful forward first");
    yoloxloss_status st = yl_validate_normalizer(ctx, normalizer);
    if (st != YOLOXLOSS_OK) return st;
    ctx->normalizer = normalizer;
    if (losses) yl_report_losses(&ctx->cfg, &ctx->sums, ctx->normalizer, ctx->step.total_gt, losses);
    return YOLOXLOSS_OK;
}

int64_t yoloxloss_num_anchors(const yoloxloss_context *ctx) {
    return ctx && ctx->has_forward ? ctx->step.num_anchors : 0;
}

yoloxloss_status yoloxloss_get_assignment(const yoloxloss_context *ctx, int32_t *matched_gt, float *pred_iou,
                                          int32_t *dynamic_k) {
    /* A read-out changes nothing but the message of its context, like every
     * other call that can fail; the context is the caller's own (never a
     * const object), so its message may be written. */
    yoloxloss_context *msg = (yoloxloss_context *)ctx;
    yl_clear_error(msg);
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "ctx is NULL");
    if (!ctx->has_forward)
        return yl_fail(msg, YOLOXLOSS_ERR_NO_FORWARD,
                       "get_assignment needs a successful forward first (the last forward failed, or none ran)");
    const yl_step *s = &ctx->step;
    size_t n = (size_t)s->num_images * (size_t)s->num_anchors;
    if (matched_gt) memcpy(matched_gt, s->matched.ptr, n * sizeof(int32_t));
    if (pred_iou) memcpy(pred_iou, s->pred_iou.ptr, n * sizeof(float));
    if (dynamic_k && s->total_gt > 0) memcpy(dynamic_k, s->dynamic_k.ptr, (size_t)s->total_gt * sizeof(int32_t));
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_get_image_losses(const yoloxloss_context *ctx, yoloxloss_losses *out) {
    yoloxloss_context *msg = (yoloxloss_context *)ctx; /* as in yoloxloss_get_assignment */
    yl_clear_error(msg);
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "ctx is NULL");
    if (!out) return yl_fail(msg, YOLOXLOSS_ERR_NULL_ARGUMENT, "out is NULL");
    if (!ctx->has_forward)
        return yl_fail(msg, YOLOXLOSS_ERR_NO_FORWARD,
                       "get_image_losses needs a successful forward first (the last forward failed, or none ran)");
    const yl_loss_sums *sums = ctx->image_sums.ptr;
    const int64_t *gt_offset = ctx->step.gt_offset.ptr;
    /* The batch's normaliser in every row: the rows then add up to the batch's terms. */
    for (int b = 0; b < ctx->step.num_images; b++)
        yl_report_losses(&ctx->cfg, &sums[b], ctx->normalizer, gt_offset[b + 1] - gt_offset[b], &out[b]);
    return YOLOXLOSS_OK;
}
