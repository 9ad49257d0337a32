/* backward: d(reported terms) / d(head outputs) of the last forward. */
#include <math.h>
#include <string.h>

#include "box.h"
#include "context.h"
#include "layout.h"
#include "validate.h"

/* Scale of each term's per-element gradient: upstream * weight / N. */
typedef struct {
    float iou, obj, cls, l1;
} term_scales;

/* Adds the gradient of the foreground anchors of level l of image b to
 * planes that dense_planes has zeroed (or, accumulating, left as they were). */
static void image_level_backward(const yoloxloss_context *ctx, int b, int l, const yl_grad_view *gv,
                                 term_scales s) {
    const yoloxloss_config *cfg = &ctx->cfg;
    const yl_kernels *k = ctx->kernels;
    const int C = cfg->num_classes;
    const yl_level_view v = yl_level_view_of(&ctx->step, l, b);
    const yl_image_state img = yl_image_state_of(&ctx->step, b);
    const int32_t *m = img.matched + v.anchor_offset;
    const float *pred_iou = img.pred_iou + v.anchor_offset;
    const float stride = v.stride;
    const size_t hw = v.hw;

    for (size_t q = 0; q < hw; q++) {
        int32_t g = m[q];
        if (g < 0) continue;
        if (s.cls != 0.0f)
            k->cls_grad(yl_cls_logits(&v, q), hw, C, img.gt_classes[g], pred_iou[q], s.cls,
                        yl_elem_at_mut(gv->cls, gv->dtype, q), 1, gv->dtype);
        int i = (int)(q / (size_t)v.width), j = (int)(q % (size_t)v.width);
        const float *gt = img.gt_boxes + 4 * g;
        yl_box gb = {gt[0], gt[1], gt[2], gt[3]};
        float t[4] = {yl_reg_value(&v, 0, q), yl_reg_value(&v, 1, q), yl_reg_value(&v, 2, q), yl_reg_value(&v, 3, q)};
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (s.iou != 0.0f) {
            yl_box pb = yl_decode(k->math, t[0], t[1], t[2], t[3], i, j, stride, cfg->arithmetic);
            float draw[4];
            yl_iou_loss_grad_raw(pb, gb, cfg->iou_loss, cfg->arithmetic, stride, draw);
            for (int c = 0; c < 4; c++) d[c] = s.iou * draw[c];
        }
        if (cfg->use_l1 && s.l1 != 0.0f) {
            float target[4];
            yl_l1_target(k->math, gb, i, j, stride, cfg->arithmetic, target);
            for (int c = 0; c < 4; c++) {
                float diff = t[c] - target[c];
                d[c] += s.l1 * (float)((diff > 0.0f) - (diff < 0.0f));
            }
        }
        /* a float16 or bfloat16 element: its float32 value plus d, rounded */
        for (int c = 0; c < 4; c++) yl_elem_add(gv->reg, gv->dtype, (size_t)c * hw + q, d[c]);
    }
}

/* Channels [ch0, ch1) (YOLOX's order: reg 0-3, obj 4, cls 5..) of image b,
 * level l: the objectness gradient, and zeros in the others when
 * overwriting, each contiguous run of planes in one call. */
static void dense_planes(const yoloxloss_context *ctx, int b, int l, size_t ch0, size_t ch1,
                         const yoloxloss_level_grad *g, float obj_scale, int accumulate) {
    const yl_grad_view gv = yl_grad_view_of(&ctx->step, g, l, b);
    const size_t hw = (size_t)ctx->step.levels[l].height * (size_t)ctx->step.levels[l].width;
    if (ch0 < 4 && !accumulate) {
        size_t end = ch1 < 4 ? ch1 : 4;
        ctx->kernels->zero(yl_elem_at_mut(gv.reg, gv.dtype, ch0 * hw), (end - ch0) * hw, gv.dtype);
    }
    if (ch0 <= 4 && ch1 > 4 && !(accumulate && obj_scale == 0.0f)) {
        const yl_level_view v = yl_level_view_of(&ctx->step, l, b);
        const int32_t *m = yl_image_state_of(&ctx->step, b).matched + v.anchor_offset;
        ctx->kernels->obj_grad(v.obj, m, hw, obj_scale, gv.obj, accumulate, gv.dtype);
    }
    if (ch1 > 5 && !accumulate) {
        size_t start = ch0 > 5 ? ch0 : 5;
        ctx->kernels->zero(yl_elem_at_mut(gv.cls, gv.dtype, (start - 5) * hw), (ch1 - start) * hw, gv.dtype);
    }
}

/* One backward, for yl_parallel_for. */
typedef struct {
    const yoloxloss_context *ctx;
    const yoloxloss_level_grad *grads;
    term_scales s;
    int accumulate;
    size_t planes; /* 5 + C */
    int parts;     /* plane ranges per image */
} backward_job;

/* Plane range `task % parts` of image `task / parts`, every level. */
static void dense_task(void *arg, size_t task, int t) {
    (void)t;
    const backward_job *j = arg;
    const size_t parts = (size_t)j->parts, part = task % parts;
    const int b = (int)(task / parts);
    const size_t ch0 = j->planes * part / parts, ch1 = j->planes * (part + 1) / parts;
    for (int l = 0; l < j->ctx->cfg.num_levels; l++)
        dense_planes(j->ctx, b, l, ch0, ch1, &j->grads[l], j->s.obj, j->accumulate);
}

static void foreground_image(void *arg, size_t i, int t) {
    (void)t;
    const backward_job *j = arg;
    const int b = (int)i;
    for (int l = 0; l < j->ctx->cfg.num_levels; l++) {
        const yl_grad_view gv = yl_grad_view_of(&j->ctx->step, &j->grads[l], l, b);
        image_level_backward(j->ctx, b, l, &gv, j->s);
    }
}

static yoloxloss_status backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                 const yoloxloss_upstream *upstream, int accumulate) {
    if (!ctx->has_forward) return yl_fail(ctx, YOLOXLOSS_ERR_NO_FORWARD, "backward needs a successful forward first");
    yoloxloss_status st = yl_validate_backward(ctx, grads, upstream);
    if (st != YOLOXLOSS_OK) return st;
    const yoloxloss_upstream u = upstream ? *upstream : (yoloxloss_upstream){1.0f, 0.0f, 0.0f, 0.0f, 0.0f};

    const yoloxloss_config *cfg = &ctx->cfg;
    const float n = ctx->normalizer;
    backward_job job = {.ctx = ctx, .grads = grads, .accumulate = accumulate,
                        .planes = 5 + (size_t)cfg->num_classes};
    job.s.iou = (float)((double)(u.total + u.iou) * cfg->reg_weight / n);
    job.s.obj = (float)((double)(u.total + u.obj) * cfg->obj_weight / n);
    job.s.cls = (float)((double)(u.total + u.cls) * cfg->cls_weight / n);
    job.s.l1 = cfg->use_l1 ? (float)((double)(u.total + u.l1) * cfg->l1_weight / n) : 0.0f;

    /* First every whole plane: the objectness gradient of all anchors and,
     * when overwriting, zeros in the reg and cls planes (background anchors
     * have no gradient there). These are most of the bytes, so they are
     * split into plane ranges across threads, whatever the image count.
     * Then the foreground anchors' reg and cls gradients, image by image. */
    const int B = ctx->step.num_images;
    const yl_thread_plan plan = yl_plan_threads(yl_policy_of(ctx), &ctx->backward_threads, (size_t)B * job.planes,
                                                yl_backward_work_ns(&ctx->step));
    const int threads = plan.threads;
    job.parts = B >= threads ? 1 : (threads + B - 1) / B;
    yl_parallel_for(threads, (size_t)B * (size_t)job.parts, dense_task, &job);
    yl_parallel_for(threads, (size_t)B, foreground_image, &job);
    yl_plan_done(&ctx->backward_threads, &plan);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                    const yoloxloss_upstream *upstream, int accumulate) {
    const yoloxloss_status st = yl_enter(ctx, "backward");
    return st != YOLOXLOSS_OK ? st : yl_leave(ctx, backward(ctx, grads, upstream, accumulate));
}
