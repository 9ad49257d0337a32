/* Loss terms of one assigned image, and the reported losses. */
#include <math.h>
#include <string.h>

#include "box.h"
#include "loss.h"

yl_loss_sums yl_image_loss_sums(const yoloxloss_config *cfg, const yl_kernels *k, const yl_step *s,
                                int image, const yl_level_view *views) {
    const yl_image_state img = yl_image_state_of(s, image);
    yl_loss_sums sums;
    memset(&sums, 0, sizeof sums);
    for (int l = 0; l < cfg->num_levels; l++) {
        const yl_level_view *v = &views[l];
        const int32_t *m = img.matched + v->anchor_offset;
        const float *pred_iou = img.pred_iou + v->anchor_offset;
        sums.obj += k->obj_loss(v->obj, m, v->hw, v->dtype);
        for (size_t q = 0; q < v->hw; q++) {
            int32_t g = m[q];
            if (g < 0) continue;
            sums.num_fg++;
            int i = (int)(q / (size_t)v->width), j = (int)(q % (size_t)v->width);
            const float *gt = img.gt_boxes + 4 * g;
            yl_box gb = {gt[0], gt[1], gt[2], gt[3]};
            float t[4] = {yl_reg_value(v, 0, q), yl_reg_value(v, 1, q), yl_reg_value(v, 2, q), yl_reg_value(v, 3, q)};
            yl_box pb = yl_decode(k->math, t[0], t[1], t[2], t[3], i, j, v->stride, cfg->arithmetic);
            sums.iou += yl_iou_loss(pb, gb, cfg->iou_loss, cfg->arithmetic);
            sums.cls += k->cls_loss(yl_cls_logits(v, q), v->hw, cfg->num_classes, img.gt_classes[g], pred_iou[q],
                                    v->dtype);
            if (cfg->use_l1) {
                float target[4];
                yl_l1_target(k->math, gb, i, j, v->stride, cfg->arithmetic, target);
                for (int c = 0; c < 4; c++) sums.l1 += fabsf(t[c] - target[c]);
            }
        }
    }
    return sums;
}

void yl_report_losses(const yoloxloss_config *cfg, const yl_loss_sums *sums, float normalizer,
                      int64_t total_gt, yoloxloss_losses *out) {
    double n = normalizer;
    double iou = cfg->reg_weight * (sums->iou / n);
    double obj = cfg->obj_weight * (sums->obj / n);
    double cls = cfg->cls_weight * (sums->cls / n);
    double l1 = cfg->use_l1 ? cfg->l1_weight * (sums->l1 / n) : 0.0;
    out->iou = (float)iou;
    out->obj = (float)obj;
    out->cls = (float)cls;
    out->l1 = (float)l1;
    out->total = (float)(iou + obj + cls + l1);
    out->normalizer = normalizer;
    double fg = sums->num_fg > 1 ? (double)sums->num_fg : 1.0;
    double gt = total_gt > 1 ? (double)total_gt : 1.0;
    out->fg_ratio = (float)(fg / gt);
    out->num_fg = sums->num_fg;
    out->num_gt = total_gt;
}
