/* backward: d(reported terms) / d(head outputs) of the last forward. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "mathf.h"

yl_grad_view yl_grad_view_of(const yoloxloss_level_grad *g, const yoloxloss_level *shape,
                             int num_classes, int image) {
    yl_grad_view v;
    size_t hw = (size_t)shape->height * (size_t)shape->width;
    yl_plane_offsets o = yl_planes(g->fused != NULL, image, num_classes, hw);
    v.reg = (g->fused ? g->fused : g->reg) + o.reg;
    v.obj = (g->fused ? g->fused : g->obj) + o.obj;
    v.cls = (g->fused ? g->fused : g->cls) + o.cls;
    return v;
}

/* Scale of each term's per-element gradient: upstream * weight / N. */
typedef struct {
    float iou, obj, cls, l1;
} term_scales;

/* g * d exp(t)/dt. When exp(t) overflows the box side is infinite, its IoU
 * is 0 for any t and g is 0: the gradient is 0, where autograd's 0 * inf
 * would give NaN (docs/reliability.md). */
static float chain_exp(float g, float t) {
    float e = yl_expf(t);
    return g == 0.0f && isinf(e) ? 0.0f : g * e;
}

/* Adds the gradient of the foreground anchors of level l of image b to
 * planes that dense_planes has zeroed (or, accumulating, left as they were). */
static void image_level_backward(const yoloxloss_context *ctx, int b, int l, const yl_grad_view *gv,
                                 term_scales s) {
    const yoloxloss_config *cfg = &ctx->cfg;
    const int C = cfg->num_classes;
    yl_level_view v = yl_input_view(&ctx->levels[l], C, b);
    const float stride = cfg->strides[l];
    const size_t hw = v.hw;
    const size_t at = (size_t)b * (size_t)ctx->num_anchors + (size_t)ctx->level_offset[l];
    const int32_t *m = (const int32_t *)ctx->matched.ptr + at;
    const float *pred_iou = (const float *)ctx->pred_iou.ptr + at;
    const int64_t g0 = ((const int64_t *)ctx->gt_offset.ptr)[b];
    const int32_t *gt_cls = (const int32_t *)ctx->gt_classes.ptr + g0;
    const float *gt_box = (const float *)ctx->gt_boxes.ptr + 4 * g0;

    for (size_t q = 0; q < hw; q++) {
        int32_t g = m[q];
        if (g < 0) continue;
        if (s.cls != 0.0f)
            ctx->kernels->cls_grad(v.cls + q, hw, C, gt_cls[g], pred_iou[q], s.cls, gv->cls + q, 1);
        int i = (int)(q / (size_t)v.width), j = (int)(q % (size_t)v.width);
        const float *gt = gt_box + 4 * g;
        yl_box gb = {gt[0], gt[1], gt[2], gt[3]};
        float t[4] = {v.reg[q], v.reg[hw + q], v.reg[2 * hw + q], v.reg[3 * hw + q]};
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (s.iou != 0.0f) {
            yl_box pb = yl_decode(t[0], t[1], t[2], t[3], i, j, stride);
            float dbox[4];
            yl_iou_loss_grad(pb, gb, cfg->iou_loss, dbox);
            /* x = (tx + j) s, w = exp(tw) s: chained as autograd does. */
            d[0] = s.iou * (dbox[0] * stride);
            d[1] = s.iou * (dbox[1] * stride);
            d[2] = s.iou * chain_exp(dbox[2] * stride, t[2]);
            d[3] = s.iou * chain_exp(dbox[3] * stride, t[3]);
        }
        if (cfg->use_l1 && s.l1 != 0.0f) {
            float target[4];
            yl_l1_target(gb, i, j, stride, target);
            for (int c = 0; c < 4; c++) {
                float diff = t[c] - target[c];
                d[c] += s.l1 * (float)((diff > 0.0f) - (diff < 0.0f));
            }
        }
        for (int c = 0; c < 4; c++) gv->reg[(size_t)c * hw + q] += d[c];
    }
}

/* Channels [ch0, ch1) (YOLOX's order: reg 0-3, obj 4, cls 5..) of image b,
 * level l: the objectness gradient, and zeros in the others when
 * overwriting, each contiguous run of planes in one call. */
static void dense_planes(const yoloxloss_context *ctx, int b, int l, int ch0, int ch1,
                         const yoloxloss_level_grad *g, float obj_scale, int accumulate) {
    const int C = ctx->cfg.num_classes;
    const yoloxloss_level *shape = &ctx->levels[l];
    const size_t hw = (size_t)shape->height * (size_t)shape->width;
    yl_grad_view gv = yl_grad_view_of(g, shape, C, b);
    if (ch0 < 4 && !accumulate) {
        int end = ch1 < 4 ? ch1 : 4;
        ctx->kernels->zero(gv.reg + (size_t)ch0 * hw, (size_t)(end - ch0) * hw);
    }
    if (ch0 <= 4 && ch1 > 4 && !(accumulate && obj_scale == 0.0f)) {
        yl_level_view v = yl_input_view(shape, C, b);
        const int32_t *m = (const int32_t *)ctx->matched.ptr + (size_t)b * (size_t)ctx->num_anchors +
                           (size_t)ctx->level_offset[l];
        ctx->kernels->obj_grad(v.obj, m, hw, obj_scale, gv.obj, accumulate);
    }
    if (ch1 > 5 && !accumulate) {
        int start = ch0 > 5 ? ch0 : 5;
        ctx->kernels->zero(gv.cls + (size_t)(start - 5) * hw, (size_t)(ch1 - start) * hw);
    }
}

yoloxloss_status yoloxloss_backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                    const yoloxloss_upstream *upstream, int accumulate) {
    if (!ctx) return YOLOXLOSS_ERR_NULL_ARGUMENT;
    ctx->error[0] = '\0';
    if (!ctx->has_forward)
        return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD, "backward needs a successful forward first");
    if (!grads) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "grads is NULL");
    const yoloxloss_config *cfg = &ctx->cfg;
    for (int l = 0; l < cfg->num_levels; l++) {
        const yoloxloss_level_grad *g = &grads[l];
        int fused_in = ctx->levels[l].fused != NULL;
        int ok = fused_in ? g->fused != NULL : (g->reg && g->obj && g->cls);
        if (!ok)
            return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                           "level %d: the inputs were %s, so grads[%d] needs %s", l,
                           fused_in ? "fused" : "split", l,
                           fused_in ? "fused set" : "reg, obj and cls all set");
    }
    yoloxloss_upstream up = {1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (upstream) up = *upstream;
    const yoloxloss_upstream *u = &up;
    static const char *names[5] = {"total", "iou", "obj", "cls", "l1"};
    const float vals[5] = {u->total, u->iou, u->obj, u->cls, u->l1};
    for (int i = 0; i < 5; i++)
        if (!isfinite(vals[i]))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "upstream.%s is %g; it must be finite",
                           names[i], (double)vals[i]);

    const float n = ctx->normalizer;
    term_scales s;
    s.iou = (float)((double)(u->total + u->iou) * cfg->reg_weight / n);
    s.obj = (float)((double)(u->total + u->obj) * cfg->obj_weight / n);
    s.cls = (float)((double)(u->total + u->cls) * cfg->cls_weight / n);
    s.l1 = cfg->use_l1 ? (float)((double)(u->total + u->l1) * cfg->l1_weight / n) : 0.0f;

    /* First every whole plane: the objectness gradient of all anchors and,
     * when overwriting, zeros in the reg and cls planes (background anchors
     * have no gradient there). These are most of the bytes, so they are
     * split plane by plane across threads, whatever the image count. Then
     * the foreground anchors' reg and cls gradients, image by image. */
    const int B = ctx->num_images, P = 5 + cfg->num_classes;
    const int parts = B >= ctx->num_threads ? 1 : (ctx->num_threads + B - 1) / B;
    const int tasks = B * parts;
#pragma omp parallel for schedule(static) num_threads(ctx->num_threads)
    for (int t = 0; t < tasks; t++) {
        int b = t / parts, part = t % parts;
        for (int l = 0; l < cfg->num_levels; l++)
            dense_planes(ctx, b, l, P * part / parts, P * (part + 1) / parts, &grads[l], s.obj, accumulate);
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->num_threads)
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < cfg->num_levels; l++) {
            yl_grad_view gv = yl_grad_view_of(&grads[l], &ctx->levels[l], cfg->num_classes, b);
            image_level_backward(ctx, b, l, &gv, s);
        }
    }
    return YOLOXLOSS_OK;
}
