/* The loss terms of an assigned image (docs/algorithm.md, section 4), and
 * what forward reports from their sums. */
#ifndef YL_LOSS_H
#define YL_LOSS_H

#include <stdint.h>

#include "layout.h"
#include "simd/kernels.h"
#include "yoloxloss.h"

/* Sums of one image, or of the batch: unweighted and unnormalised. */
typedef struct {
    double iou, obj, cls, l1;
    int64_t num_fg;
} yl_loss_sums;

/* The sums of image `image` of an assigned step: the objectness BCE over
 * every anchor; for each foreground anchor its box loss, class BCE (target
 * the IoU) and, with cfg->use_l1, the L1 distance of the raw reg outputs
 * to their targets. views: the image's L level views (yl_level_view_of). */
yl_loss_sums yl_image_loss_sums(const yoloxloss_config *cfg, const yl_kernels *k, const yl_step *s,
                                int image, const yl_level_view *views);

/* *out from the batch sums, the normaliser N (sums / N, times the weights)
 * and the batch's gt count. */
void yl_report_losses(const yoloxloss_config *cfg, const yl_loss_sums *sums, float normalizer,
                      int64_t total_gt, yoloxloss_losses *out);

#endif
