/* SimOTA label assignment (docs/algorithm.md, section 3).
 *
 * The work for one image is split in two so each half can be tested alone:
 *   yl_assign_image builds the candidate set, the IoU and cost matrices
 *   from the head outputs; yl_simota_match runs dynamic-k matching on them.
 */
#ifndef YL_ASSIGN_H
#define YL_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "box.h"
#include "buffer.h"
#include "layout.h"
#include "simd/kernels.h"
#include "yoloxloss.h"

/* Dynamic-k matching of one image.
 *   iou, cost: [n_gt, n_cand] row-major; n_gt >= 1, n_cand >= 1.
 *   topk: how many of the largest IoUs of a row are summed for k.
 *   dynamic_k [n_gt] out: max(1, (int)sum) of those IoUs, never above n_cand.
 *   match [n_cand] out: index of the gt that keeps each candidate, -1 if none.
 *   work: yl_simota_work_bytes(n_cand, topk) bytes of scratch.
 * Each gt takes its k cheapest candidates (ties: lowest candidate index).
 * A candidate taken by several gts goes to the gt of smallest cost in its
 * whole cost column, as the reference does, even a gt that did not take it
 * (ties: lowest gt index). */
size_t yl_simota_work_bytes(int n_cand, int topk);

void yl_simota_match(const yl_kernels *k, int n_gt, int n_cand, const float *iou, const float *cost, int topk,
                     int32_t *dynamic_k, int32_t *match, void *work);

/* Growable per-thread scratch of the assigner; zero-initialise, free with
 * yl_assign_scratch_free. */
typedef struct {
    yl_buffer slot[11];
} yl_assign_scratch;

void yl_assign_scratch_free(yl_assign_scratch *s);

/* Everything the assigner needs of the config, with the constants of each
 * rule resolved. */
typedef struct {
    yoloxloss_assigner assigner;
    yoloxloss_arithmetic arithmetic; /* of decoding, anchor centres and the IoU */
    float center_radius;   /* in strides, > 0 */
    float penalty;         /* added to the cost of a candidate outside the centre (and box) test */
    float iou_eps;         /* of the cost's -log(IoU + iou_eps) */
    int topk;
    float iou_cost_weight, cls_cost_weight;
    int num_classes;
    const yl_kernels *kernels;
    int threads;           /* OpenMP threads for the work inside the image; <= 1: none */
} yl_assign_params;

/* The assigner's parameters for cfg: the rule's own radius (1.5 strides for
 * current YOLOX, 2.5 for the legacy rule) unless cfg sets one, and its
 * penalty (1e6, or 1e5 for the legacy rule) unless cfg sets one. threads is
 * left 1. */
yl_assign_params yl_assign_params_for(const yoloxloss_config *cfg, const yl_kernels *kernels);

/* Assigns one image. levels: num_levels views; num_anchors = A.
 * gt_boxes [n_gt, 4], gt_classes [n_gt], n_gt >= 0.
 * Out: matched [A] (gt row or -1), pred_iou [A] (0 for background),
 * dynamic_k [n_gt] (0 when the image has no candidate anchor).
 * Returns the number of fg anchors, or -1 if scratch could not be allocated. */
int64_t yl_assign_image(const yl_assign_params *p, const yl_level_view *levels, int num_levels,
                        int64_t num_anchors, int n_gt, const float *gt_boxes,
                        const int32_t *gt_classes, yl_assign_scratch *scratch, int32_t *matched,
                        float *pred_iou, int32_t *dynamic_k);

#endif
