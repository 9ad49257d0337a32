/* forward: validate, assign every image, sum the loss terms. Also the
 * views that locate an image's planes, and the assignment read-out. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "internal.h"

yl_level_view yl_input_view(const yoloxloss_level *lv, int num_classes, int image) {
    yl_level_view v;
    memset(&v, 0, sizeof v);
    v.height = lv->height;
    v.width = lv->width;
    v.hw = (size_t)lv->height * (size_t)lv->width;
    yl_plane_offsets o = yl_planes(lv->fused != NULL, image, num_classes, v.hw);
    v.reg = (lv->fused ? lv->fused : lv->reg) + o.reg;
    v.obj = (lv->fused ? lv->fused : lv->obj) + o.obj;
    v.cls = (lv->fused ? lv->fused : lv->cls) + o.cls;
    return v;
}

/* The views of image b at every level, with strides and anchor offsets. */
static void image_views(const yoloxloss_context *ctx, int b, yl_level_view *views) {
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        views[l] = yl_input_view(&ctx->levels[l], ctx->cfg.num_classes, b);
        views[l].stride = ctx->cfg.strides[l];
        views[l].anchor_offset = ctx->level_offset[l];
    }
}

/* Loss sums of one assigned image. */
static yl_image_sums image_losses(const yoloxloss_context *ctx, int b, const yl_level_view *views) {
    const yoloxloss_config *cfg = &ctx->cfg;
    const int64_t A = ctx->num_anchors;
    const int32_t *matched = (const int32_t *)ctx->matched.ptr + (size_t)b * (size_t)A;
    const float *pred_iou = (const float *)ctx->pred_iou.ptr + (size_t)b * (size_t)A;
    const int64_t g0 = ((const int64_t *)ctx->gt_offset.ptr)[b];
    const int32_t *gt_cls = (const int32_t *)ctx->gt_classes.ptr + g0;
    const float *gt_box = (const float *)ctx->gt_boxes.ptr + 4 * g0;
    yl_image_sums s;
    memset(&s, 0, sizeof s);
    for (int l = 0; l < cfg->num_levels; l++) {
        const yl_level_view *v = &views[l];
        const int32_t *m = matched + v->anchor_offset;
        s.obj += ctx->kernels->obj_loss(v->obj, m, v->hw);
        for (size_t q = 0; q < v->hw; q++) {
            int32_t g = m[q];
            if (g < 0) continue;
            s.num_fg++;
            int i = (int)(q / (size_t)v->width), j = (int)(q % (size_t)v->width);
            const float *gt = gt_box + 4 * g;
            yl_box gb = {gt[0], gt[1], gt[2], gt[3]};
            float t[4] = {v->reg[q], v->reg[v->hw + q], v->reg[2 * v->hw + q], v->reg[3 * v->hw + q]};
            yl_box pb = yl_decode(t[0], t[1], t[2], t[3], i, j, v->stride);
            s.iou += yl_iou_loss(pb, gb, cfg->iou_loss);
            s.cls += ctx->kernels->cls_loss(v->cls + q, v->hw, cfg->num_classes, gt_cls[g],
                                            pred_iou[v->anchor_offset + (int64_t)q]);
            if (cfg->use_l1) {
                float target[4];
                yl_l1_target(gb, i, j, v->stride, target);
                for (int c = 0; c < 4; c++) s.l1 += fabsf(t[c] - target[c]);
            }
        }
    }
    return s;
}

void yl_report_losses(const yoloxloss_context *ctx, yoloxloss_losses *out) {
    const yoloxloss_config *cfg = &ctx->cfg;
    double n = ctx->normalizer;
    double iou = cfg->reg_weight * (ctx->sum_iou / n);
    double obj = cfg->obj_weight * (ctx->sum_obj / n);
    double cls = cfg->cls_weight * (ctx->sum_cls / n);
    double l1 = cfg->use_l1 ? cfg->l1_weight * (ctx->sum_l1 / n) : 0.0;
    out->iou = (float)iou;
    out->obj = (float)obj;
    out->cls = (float)cls;
    out->l1 = (float)l1;
    out->total = (float)(iou + obj + cls + l1);
    out->normalizer = ctx->normalizer;
    double fg = ctx->num_fg > 1 ? (double)ctx->num_fg : 1.0;
    double gt = ctx->total_gt > 1 ? (double)ctx->total_gt : 1.0;
    out->fg_ratio = (float)(fg / gt);
    out->num_fg = ctx->num_fg;
    out->num_gt = ctx->total_gt;
}

/* Sizes the per-call buffers for B images of A anchors and total_gt boxes;
 * non-zero if an allocation failed. */
static int reserve_state(yoloxloss_context *ctx, size_t B, size_t A, size_t total_gt) {
    return !yl_buffer_reserve(&ctx->gt_offset, (B + 1) * sizeof(int64_t)) ||
           !yl_buffer_reserve(&ctx->gt_classes, total_gt * sizeof(int32_t)) ||
           !yl_buffer_reserve(&ctx->gt_boxes, total_gt * 4 * sizeof(float)) ||
           !yl_buffer_reserve(&ctx->dynamic_k, total_gt * sizeof(int32_t)) ||
           !yl_buffer_reserve(&ctx->matched, B * A * sizeof(int32_t)) ||
           !yl_buffer_reserve(&ctx->pred_iou, B * A * sizeof(float)) ||
           !yl_buffer_reserve(&ctx->image_sums, B * sizeof(yl_image_sums));
}

yoloxloss_status yoloxloss_forward(yoloxloss_context *ctx, const yoloxloss_batch *batch,
                                   yoloxloss_losses *losses) {
    if (!ctx) return YOLOXLOSS_ERR_NULL_ARGUMENT;
    ctx->error[0] = '\0';
    ctx->has_forward = 0;
    if (!losses) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "losses is NULL");
    yoloxloss_status st = yl_validate_batch(ctx, batch);
    if (st != YOLOXLOSS_OK) return st;

    const yoloxloss_config *cfg = &ctx->cfg;
    const int B = batch->num_images;
    int64_t A = 0, total_gt = 0;
    for (int l = 0; l < cfg->num_levels; l++) {
        ctx->levels[l] = batch->levels[l];
        ctx->level_offset[l] = A;
        A += (int64_t)batch->levels[l].height * batch->levels[l].width;
    }
    for (int b = 0; b < B; b++) total_gt += batch->num_gt[b];
    if (reserve_state(ctx, (size_t)B, (size_t)A, (size_t)total_gt))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY,
                       "could not allocate the workspace for %d images x %lld anchors", B, (long long)A);
    ctx->num_images = B;
    ctx->num_anchors = A;
    ctx->total_gt = total_gt;
    int64_t *gt_offset = ctx->gt_offset.ptr;
    gt_offset[0] = 0;
    for (int b = 0; b < B; b++) gt_offset[b + 1] = gt_offset[b] + batch->num_gt[b];
    if (total_gt > 0) {
        memcpy(ctx->gt_classes.ptr, batch->gt_classes, (size_t)total_gt * sizeof(int32_t));
        memcpy(ctx->gt_boxes.ptr, batch->gt_boxes, (size_t)total_gt * 4 * sizeof(float));
    }

    int out_of_memory = 0;
    yl_image_sums *sums = ctx->image_sums.ptr;
    /* Threads take whole images; with fewer images than threads, the
     * images go one by one and the threads share the work inside each. */
    const int across = B >= ctx->num_threads ? ctx->num_threads : 1;
    yl_assign_params ap = ctx->assign;
    ap.threads = across > 1 ? 1 : ctx->num_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(across) if (across > 1)
    for (int b = 0; b < B; b++) {
        yl_level_view *views = ctx->views + (size_t)omp_get_thread_num() * (size_t)cfg->num_levels;
        image_views(ctx, b, views);
        int64_t g0 = gt_offset[b];
        size_t at = (size_t)b * (size_t)A;
        int64_t fg = yl_assign_image(&ap, views, cfg->num_levels, A, batch->num_gt[b],
                                     (const float *)ctx->gt_boxes.ptr + 4 * g0,
                                     (const int32_t *)ctx->gt_classes.ptr + g0,
                                     &ctx->scratch[omp_get_thread_num()],
                                     (int32_t *)ctx->matched.ptr + at, (float *)ctx->pred_iou.ptr + at,
                                     (int32_t *)ctx->dynamic_k.ptr + g0);
        if (fg < 0) {
#pragma omp atomic write
            out_of_memory = 1;
            continue;
        }
        sums[b] = image_losses(ctx, b, views);
    }
    if (out_of_memory || !yl_scratch_settle(ctx))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY,
                       "could not allocate the assignment workspace (candidates x gts of one image)");

    /* Fixed image order: the totals do not depend on the thread count. */
    ctx->sum_iou = ctx->sum_obj = ctx->sum_cls = ctx->sum_l1 = 0.0;
    ctx->num_fg = 0;
    for (int b = 0; b < B; b++) {
        ctx->sum_iou += sums[b].iou;
        ctx->sum_obj += sums[b].obj;
        ctx->sum_cls += sums[b].cls;
        ctx->sum_l1 += sums[b].l1;
        ctx->num_fg += sums[b].num_fg;
    }
    ctx->normalizer = ctx->num_fg > 1 ? (float)ctx->num_fg : 1.0f;
    ctx->has_forward = 1;
    yl_report_losses(ctx, losses);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_renormalize(yoloxloss_context *ctx, float normalizer,
                                       yoloxloss_losses *losses) {
    if (!ctx) return YOLOXLOSS_ERR_NULL_ARGUMENT;
    ctx->error[0] = '\0';
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD, "renormalize needs a successful forward first");
    if (!(isfinite(normalizer) && normalizer > 0.0f))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "normalizer is %g; it must be finite and > 0",
                       (double)normalizer);
    ctx->normalizer = normalizer;
    if (losses) yl_report_losses(ctx, losses);
    return YOLOXLOSS_OK;
}

int64_t yoloxloss_num_anchors(const yoloxloss_context *ctx) {
    return ctx && ctx->has_forward ? ctx->num_anchors : 0;
}

yoloxloss_status yoloxloss_get_assignment(const yoloxloss_context *ctx, int32_t *matched_gt,
                                          float *pred_iou, int32_t *dynamic_k) {
    if (!ctx) return YOLOXLOSS_ERR_NULL_ARGUMENT;
    if (!ctx->has_forward) return YOLOXLOSS_ERR_NO_FORWARD;
    size_t n = (size_t)ctx->num_images * (size_t)ctx->num_anchors;
    if (matched_gt) memcpy(matched_gt, ctx->matched.ptr, n * sizeof(int32_t));
    if (pred_iou) memcpy(pred_iou, ctx->pred_iou.ptr, n * sizeof(float));
    if (dynamic_k && ctx->total_gt > 0)
        memcpy(dynamic_k, ctx->dynamic_k.ptr, (size_t)ctx->total_gt * sizeof(int32_t));
    return YOLOXLOSS_OK;
}
