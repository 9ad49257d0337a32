/* Where every value of a step lives: the planes of an image in the
 * caller's NCHW buffers (inputs and gradients, fused or split), and the
 * state one forward leaves for backward and the read-outs (the copied
 * ground truth and the assignment), with the typed views of one image.
 *
 * Validation, forward, loss and backward all read buffers through these,
 * and through nothing else.
 *
 * Shapes: B images, L levels of H_l x W_l anchors, A = sum_l H_l W_l anchors
 * per image, C classes, T ground-truth boxes over the batch. */
#ifndef YL_LAYOUT_H
#define YL_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "half.h"
#include "yoloxloss.h"

/* Offsets, in elements of the level's dtype, of image b's reg, obj and cls planes of one level
 * from the buffers they live in: all three in `fused` for a fused level
 * ([B, 5+C, H, W]), each in its own buffer for a split one ([B,4,H,W],
 * [B,1,H,W], [B,C,H,W]). Inputs and gradients share it. */
typedef struct {
    size_t reg, obj, cls;
} yl_plane_offsets;

static inline yl_plane_offsets yl_planes(int fused, int image, int num_classes, size_t hw) {
    size_t b = (size_t)image, C = (size_t)num_classes;
    yl_plane_offsets o;
    if (fused) {
        o.reg = b * (5 + C) * hw;
        o.obj = o.reg + 4 * hw;
        o.cls = o.reg + 5 * hw;
    } else {
        o.reg = b * 4 * hw;
        o.obj = b * hw;
        o.cls = b * C * hw;
    }
    return o;
}

/* One feature level of one image, as the assigner and the loss read it.
 * Channel c of reg (resp. cls) starts c*hw elements after reg (resp. cls);
 * elements are of type dtype (half.h reads them, yl_reg_value below). */
typedef struct {
    const void *reg; /* [4, H, W] */
    const void *obj; /* [H, W] */
    const void *cls; /* [C, H, W] */
    yoloxloss_dtype dtype;
    size_t hw;
    int height, width;
    float stride;
    int64_t anchor_offset; /* index of this level's first anchor in the image */
} yl_level_view;

/* Image b's planes of the caller's level lv. Its stride and anchor_offset
 * are left 0: a level struct alone does not know them (yl_level_view_of
 * fills them from a step). */
yl_level_view yl_input_view(const yoloxloss_level *lv, int num_classes, int image);

/* Raw output c (tx, ty, tw, th) of the anchor at position q of view v, as float32. */
static inline float yl_reg_value(const yl_level_view *v, int c, size_t q) {
    return yl_elem_get(v->reg, v->dtype, (size_t)c * v->hw + q);
}

/* Where the class logits of the anchor at position q start (then hw apart). */
static inline const void *yl_cls_logits(const yl_level_view *v, size_t q) {
    return yl_elem_at(v->cls, v->dtype, q);
}

/* Image b's gradient planes of one level; channels H*W elements apart,
 * elements of the level's dtype. */
typedef struct {
    void *reg, *obj, *cls;
    yoloxloss_dtype dtype;
} yl_grad_view;

/* What a successful forward keeps: the caller's level structs (pointers
 * to the head outputs, which must stay valid until backward), where each
 * level's anchors start, the ground truth copied, and the assignment. */
typedef struct {
    int num_images;        /* B */
    int num_levels;        /* L */
    int num_classes;       /* C */
    int64_t num_anchors;   /* A, per image */
    int64_t total_gt;      /* T */
    const float *strides;  /* [L] the context's copy */
    yoloxloss_level *levels; /* [L] */
    int64_t *level_offset; /* [L] index of each level's first anchor */
    yl_buffer gt_offset;   /* int64 [B + 1]: image b owns gt rows [gt_offset[b], gt_offset[b+1]) */
    yl_buffer gt_classes;  /* int32 [T] */
    yl_buffer gt_boxes;    /* float [T, 4] cx, cy, w, h */
    yl_buffer dynamic_k;   /* int32 [T] */
    yl_buffer matched;     /* int32 [B, A] gt row within its image, -1 = background */
    yl_buffer pred_iou;    /* float [B, A] IoU of fg anchors with their gt, 0 elsewhere */
} yl_step;

/* The state buffers of a step, for allocation and freeing in one loop. */
enum { YL_STEP_BUFFERS = 6 };
void yl_step_buffers(yl_step *s, yl_buffer *out[YL_STEP_BUFFERS]);

/* Sizes the step's buffers for B images of A anchors and T gt boxes and
 * takes the shape from batch (levels, offsets, gt copied, or converted
 * from validated padded rows: labels.h); 0 if an allocation failed, and
 * then the step holds no forward. */
int yl_step_begin(yl_step *s, const yoloxloss_batch *batch);

/* Image b of a step, typed: its anchors' assignment and its gt boxes. */
typedef struct {
    int32_t *matched;          /* [A] */
    float *pred_iou;           /* [A] */
    int n_gt;
    const int32_t *gt_classes; /* [n_gt] */
    const float *gt_boxes;     /* [n_gt, 4] */
    int32_t *dynamic_k;        /* [n_gt] */
} yl_image_state;

yl_image_state yl_image_state_of(const yl_step *s, int image);

/* Image b's view of level l of a step, with its stride and anchor offset. */
yl_level_view yl_level_view_of(const yl_step *s, int level, int image);

/* Image b's gradient planes of level l in g, laid out like that level's
 * inputs of the step. */
yl_grad_view yl_grad_view_of(const yl_step *s, const yoloxloss_level_grad *g, int level, int image);

#endif
