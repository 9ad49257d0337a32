/* forward: validate, assign every image, sum the loss terms; renormalize;
 * and the read-outs of the last forward's assignment and per-image losses. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "assign.h"
#include "context.h"
#include "layout.h"
#include "loss.h"
#include "validate.h"

/* One forward's images, for yl_parallel_for. */
typedef struct {
    yoloxloss_context *ctx;
    yl_assign_params ap;
    yl_loss_sums *sums;
    atomic_int out_of_memory;
} forward_job;

static void forward_image(void *arg, size_t i, int t) {
    forward_job *job = arg;
    const int b = (int)i;
    yoloxloss_context *ctx = job->ctx;
    const yl_step *step = &ctx->step;
    const int L = ctx->cfg.num_levels;
    yl_level_view *views = ctx->views + (size_t)t * (size_t)L;
    for (int l = 0; l < L; l++) views[l] = yl_level_view_of(step, l, b);
    yl_image_state img = yl_image_state_of(step, b);
    int64_t fg = yl_assign_image(&job->ap, views, L, step->num_anchors, img.n_gt, img.gt_boxes, img.gt_classes,
                                 &ctx->scratch[t], img.matched, img.pred_iou, img.dynamic_k);
    if (fg < 0) {
        atomic_store_explicit(&job->out_of_memory, 1, memory_order_relaxed);
        return;
    }
    job->sums[b] = yl_image_loss_sums(&ctx->cfg, ctx->kernels, step, b, views);
}

static yoloxloss_status forward(yoloxloss_context *ctx, const yoloxloss_batch *batch, yoloxloss_losses *losses) {
    ctx->has_forward = 0;
    if (!losses) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "losses is NULL");
    yoloxloss_status st = yl_validate_batch(ctx, batch);
    if (st != YOLOXLOSS_OK) return st;

    yl_step *step = &ctx->step;
    const int B = batch->num_images;
    if (!yl_step_begin(step, batch) || !yl_buffer_reserve(&ctx->image_sums, (size_t)B * sizeof(yl_loss_sums)))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the workspace for %d images x %lld anchors",
                       B, (long long)step->num_anchors);

    /* Threads take whole images; with fewer images than threads, the
     * images go one by one and the threads share the work inside each. */
    const yl_assign_params *ap = &ctx->assign;
    const yl_thread_plan plan = yl_plan_threads(
        yl_policy_of(ctx), &ctx->forward_threads, SIZE_MAX,
        yl_forward_work_ns(step, ctx->strides, ap->center_radius, ap->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY));
    const int threads = plan.threads, across = B >= threads ? threads : 1;
    forward_job job = {.ctx = ctx, .ap = *ap, .sums = ctx->image_sums.ptr};
    atomic_init(&job.out_of_memory, 0);
    job.ap.threads = across > 1 ? 1 : threads;
    yl_parallel_for(across, (size_t)B, forward_image, &job);
    /* Scratch for every thread this shape may run on, whichever the
     * default picks next: switching never allocates. */
    if (atomic_load(&job.out_of_memory) || !yl_scratch_settle(ctx, B >= plan.most ? plan.most : 1))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY,
                       "could not allocate the assignment workspace (candidates x gts of one image)");

    /* Fixed image order: the totals do not depend on the thread count. */
    const yl_loss_sums *sums = ctx->image_sums.ptr;
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
    yl_plan_done(&ctx->forward_threads, &plan);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_forward(yoloxloss_context *ctx, const yoloxloss_batch *batch,
                                   yoloxloss_losses *losses) {
    const yoloxloss_status st = yl_enter(ctx, "forward");
    return st != YOLOXLOSS_OK ? st : yl_leave(ctx, forward(ctx, batch, losses));
}

static yoloxloss_status renormalize(yoloxloss_context *ctx, float normalizer, yoloxloss_losses *losses) {
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD, "renormalize needs a successful forward first");
    yoloxloss_status st = yl_validate_normalizer(ctx, normalizer);
    if (st != YOLOXLOSS_OK) return st;
    ctx->normalizer = normalizer;
    if (losses) yl_report_losses(&ctx->cfg, &ctx->sums, ctx->normalizer, ctx->step.total_gt, losses);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_renormalize(yoloxloss_context *ctx, float normalizer, yoloxloss_losses *losses) {
    const yoloxloss_status st = yl_enter(ctx, "renormalize");
    return st != YOLOXLOSS_OK ? st : yl_leave(ctx, renormalize(ctx, normalizer, losses));
}

int64_t yoloxloss_num_anchors(const yoloxloss_context *ctx) {
    return ctx && ctx->has_forward ? ctx->step.num_anchors : 0;
}

static yoloxloss_status get_assignment(yoloxloss_context *ctx, int32_t *matched_gt, float *pred_iou,
                                       int32_t *dynamic_k) {
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD,
                       "get_assignment needs a successful forward first (the last forward failed, or none ran)");
    const yl_step *s = &ctx->step;
    size_t n = (size_t)s->num_images * (size_t)s->num_anchors;
    if (matched_gt) memcpy(matched_gt, s->matched.ptr, n * sizeof(int32_t));
    if (pred_iou) memcpy(pred_iou, s->pred_iou.ptr, n * sizeof(float));
    if (dynamic_k && s->total_gt > 0) memcpy(dynamic_k, s->dynamic_k.ptr, (size_t)s->total_gt * sizeof(int32_t));
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_get_assignment(const yoloxloss_context *ctx, int32_t *matched_gt, float *pred_iou,
                                          int32_t *dynamic_k) {
    /* A read-out changes nothing but the message of its context (and, for
     * the call's duration, its busy mark), like every other call that can
     * fail; the context is the caller's own (never a const object). */
    yoloxloss_context *c = (yoloxloss_context *)ctx;
    const yoloxloss_status st = yl_enter(c, "get_assignment");
    return st != YOLOXLOSS_OK ? st : yl_leave(c, get_assignment(c, matched_gt, pred_iou, dynamic_k));
}

static yoloxloss_status get_image_losses(yoloxloss_context *ctx, yoloxloss_losses *out) {
    if (!out) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "out is NULL");
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD,
                       "get_image_losses needs a successful forward first (the last forward failed, or none ran)");
    const yl_loss_sums *sums = ctx->image_sums.ptr;
    const int64_t *gt_offset = ctx->step.gt_offset.ptr;
    /* The batch's normaliser in every row: the rows then add up to the batch's terms. */
    for (int b = 0; b < ctx->step.num_images; b++)
        yl_report_losses(&ctx->cfg, &sums[b], ctx->normalizer, gt_offset[b + 1] - gt_offset[b], &out[b]);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_get_image_losses(const yoloxloss_context *ctx, yoloxloss_losses *out) {
    yoloxloss_context *c = (yoloxloss_context *)ctx; /* as in yoloxloss_get_assignment */
    const yoloxloss_status st = yl_enter(c, "get_image_losses");
    return st != YOLOXLOSS_OK ? st : yl_leave(c, get_image_losses(c, out));
}
