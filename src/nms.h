/* YOLOX's postprocess after the score threshold: the candidates of one
 * image ordered by score, and non-maximum suppression per class (or across
 * classes) as torchvision's CPU nms computes it (docs/algorithm.md,
 * "Inference: decode and detect"). */
#ifndef YL_NMS_H
#define YL_NMS_H

#include <stddef.h>
#include <stdint.h>

/* An anchor whose score passed the threshold. */
typedef struct {
    float x1, y1, x2, y2; /* corners: cx - w/2, cy - h/2, cx + w/2, cy + h/2 (float32) */
    float area;           /* (x2 - x1) * (y2 - y1), torchvision's area */
    float obj, cls_conf;  /* sigmoid(obj), the largest class probability */
    float score;          /* obj * cls_conf, >= the threshold, so never NaN or negative */
    int32_t cls;
} yl_candidate;

/* Workspace for n candidates of C classes. */
typedef struct {
    uint64_t *keys;       /* [n]: after yl_nms, the candidates by rank (yl_nms_at) */
    uint64_t *tmp;        /* [n] */
    uint32_t *order;      /* [n] */
    uint8_t *suppressed;  /* [n]: after yl_nms, 1 for each candidate NMS removed */
    int32_t *class_end;   /* [C + 1], class-aware only */
} yl_nms_work;

/* Ranks cand[0..n) by score, highest first (equal scores: lower index
 * first), then walks each class's candidates (every candidate's, with
 * class_agnostic) in rank order: one not yet suppressed is kept and
 * suppresses every later one whose IoU with it is > iou_threshold. The
 * IoU is torchvision's, float32, compared in double. */
void yl_nms(const yl_candidate *cand, size_t n, int num_classes, double iou_threshold, int class_agnostic,
            const yl_nms_work *w);

/* The candidate of rank i (after yl_nms). */
static inline uint32_t yl_nms_at(const yl_nms_work *w, size_t i) { return (uint32_t)w->keys[i]; }

#endif
