/* Argument checks of forward: every problem is reported before anything is
 * written, with the image, label, level or channel it was found at. */
#include <inttypes.h>
#include <math.h>

#include "internal.h"

static int mul_overflows(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

static const char *channel_name(int c) {
    static const char *names[5] = {"reg tx", "reg ty", "reg tw", "reg th", "obj"};
    return c < 5 ? names[c] : "cls";
}

/* First non-finite value of one level, if any, in (image, channel, position) order. */
static yoloxloss_status check_level_finite(yoloxloss_context *ctx, const yoloxloss_level *lv, int l,
                                           int num_images) {
    const size_t hw = (size_t)lv->height * (size_t)lv->width;
    const int C = ctx->cfg.num_classes;
    for (int b = 0; b < num_images; b++) {
        yl_level_view v = yl_input_view(lv, C, b);
        for (int c = 0; c < 5 + C; c++) {
            const float *plane = c < 4 ? v.reg + (size_t)c * hw : c == 4 ? v.obj : v.cls + (size_t)(c - 5) * hw;
            for (size_t p = 0; p < hw; p++) {
                if (!isfinite(plane[p])) {
                    return yl_fail(ctx, YOLOXLOSS_ERR_NONFINITE_INPUT,
                                   "level %d, image %d, channel %d (%s%s), position (row %zu, col %zu): "
                                   "value is %g",
                                   l, b, c, channel_name(c), c >= 5 ? " logit" : "", p / (size_t)lv->width,
                                   p % (size_t)lv->width, (double)plane[p]);
                }
            }
        }
    }
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_batch(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    const yoloxloss_config *cfg = &ctx->cfg;
    if (!batch) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch is NULL");
    if (batch->num_images < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is %d; it must be >= 1",
                       batch->num_images);
    if (!batch->levels) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.levels is NULL");
    if (!batch->num_gt) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.num_gt is NULL");

    const size_t B = (size_t)batch->num_images;
    const size_t C = (size_t)cfg->num_classes;
    size_t anchors = 0;
    for (int l = 0; l < cfg->num_levels; l++) {
        const yoloxloss_level *lv = &batch->levels[l];
        if (lv->height < 1 || lv->width < 1)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE,
                           "level %d: grid is %d x %d; height and width must be >= 1", l, lv->height,
                           lv->width);
        int split = (lv->reg != NULL) + (lv->obj != NULL) + (lv->cls != NULL);
        if (lv->fused && split != 0)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                           "level %d: fused and %d of reg/obj/cls are set; give either fused, or all "
                           "three of reg, obj and cls", l, split);
        if (!lv->fused && split != 3)
            return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                           "level %d: give either fused, or all three of reg, obj and cls "
                           "(fused is %s, %d of reg/obj/cls set)",
                           l, lv->fused ? "set" : "NULL", split);
        size_t hw, per_image, total;
        if (mul_overflows((size_t)lv->height, (size_t)lv->width, &hw) ||
            mul_overflows(hw, 5 + C, &per_image) || mul_overflows(per_image, B, &total) ||
            mul_overflows(total, sizeof(float), &total))
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                           "level %d: %zu images x %zu channels x %d x %d floats do not fit in size_t", l,
                           B, 5 + C, lv->height, lv->width);
        anchors += hw;
        if (anchors > (size_t)INT32_MAX)
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                           "levels 0..%d hold more than %d anchors per image", l, INT32_MAX);
    }
    size_t per_batch;
    if (mul_overflows(anchors, B, &per_batch) || mul_overflows(per_batch, sizeof(float), &per_batch))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW, "%zu images x %zu anchors do not fit in size_t",
                       B, anchors);

    int64_t total_gt = 0;
    for (size_t b = 0; b < B; b++) {
        if (batch->num_gt[b] < 0)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL, "image %zu: num_gt is %" PRId32 "; it must be >= 0",
                           b, batch->num_gt[b]);
        total_gt += batch->num_gt[b];
        /* The assigner holds two [num_gt, candidates] float matrices per image. */
        size_t pairs;
        if (mul_overflows((size_t)batch->num_gt[b], anchors, &pairs) ||
            mul_overflows(pairs, 2 * sizeof(float), &pairs))
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                           "image %zu: %" PRId32 " boxes x %zu anchors cost matrices do not fit in size_t", b,
                           batch->num_gt[b], anchors);
    }
    if (total_gt > 0 && !batch->gt_classes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.gt_classes is NULL but there are %" PRId64
                       " ground-truth boxes", total_gt);
    if (total_gt > 0 && !batch->gt_boxes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.gt_boxes is NULL but there are %" PRId64
                       " ground-truth boxes", total_gt);

    int64_t row = 0;
    for (size_t b = 0; b < B; b++) {
        for (int32_t r = 0; r < batch->num_gt[b]; r++, row++) {
            int32_t cls = batch->gt_classes[row];
            if (cls < 0 || (size_t)cls >= C)
                return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL,
                               "image %zu, label %" PRId32 ": class id %" PRId32 " is outside [0, %zu)", b, r,
                               cls, C);
            const float *box = batch->gt_boxes + 4 * row;
            static const char *field[4] = {"cx", "cy", "w", "h"};
            for (int k = 0; k < 4; k++)
                if (!isfinite(box[k]))
                    return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX, "image %zu, label %" PRId32 ": %s is %g",
                                   b, r, field[k], (double)box[k]);
            for (int k = 2; k < 4; k++)
                if (!(box[k] > 0.0f))
                    return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                                   "image %zu, label %" PRId32 ": %s is %g; box sizes must be > 0", b, r,
                                   field[k], (double)box[k]);
            /* The IoU needs the corners and the area in float32: beyond that
             * it is NaN (in PyTorch too), so the box is refused here. */
            const float x1 = box[0] - box[2] / 2.0f, x2 = box[0] + box[2] / 2.0f;
            const float y1 = box[1] - box[3] / 2.0f, y2 = box[1] + box[3] / 2.0f;
            if (!(isfinite(x1) && isfinite(x2) && isfinite(y1) && isfinite(y2) && isfinite(box[2] * box[3])))
                return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                               "image %zu, label %" PRId32 ": box (%g, %g, %g, %g) has a corner or an area "
                               "(w*h = %g) beyond float32's range", b, r, (double)box[0], (double)box[1],
                               (double)box[2], (double)box[3], (double)(box[2] * box[3]));
        }
    }

    if (cfg->check_finite) {
        for (int l = 0; l < cfg->num_levels; l++) {
            yoloxloss_status st = check_level_finite(ctx, &batch->levels[l], l, batch->num_images);
            if (st != YOLOXLOSS_OK) return st;
        }
    }
    return YOLOXLOSS_OK;
}
