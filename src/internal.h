/* The context and the helpers shared by the library's source files. */
#ifndef YL_INTERNAL_H
#define YL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "assign.h"
#include "buffer.h"
#include "simd/kernels.h"
#include "yoloxloss.h"

/* Per-image sums of the last forward, unweighted and unnormalised. */
typedef struct {
    double iou, obj, cls, l1;
    int64_t num_fg;
} yl_image_sums;

struct yoloxloss_context {
    yoloxloss_config cfg;
    yl_allocator mem; /* cfg's hook; every workspace below points here */
    yl_assign_params assign;
    const yl_kernels *kernels;
    int num_threads;  /* resolved: >= 1 */
    char error[320];

    /* State of the last successful forward, read by backward. */
    int has_forward;
    int num_images;
    int64_t num_anchors;
    int64_t total_gt;
    float *strides;               /* [L], cfg.strides points here */
    yoloxloss_level *levels;      /* [L] the caller's pointers and grids */
    int64_t *level_offset;        /* [L] index of each level's first anchor */
    yl_level_view *views;         /* [num_threads, L] per-thread image views */
    double sum_iou, sum_obj, sum_cls, sum_l1; /* unweighted, over the batch */
    int64_t num_fg;
    float normalizer;

    yl_buffer gt_offset;   /* int64 [B + 1] */
    yl_buffer gt_classes;  /* int32 [total_gt] */
    yl_buffer gt_boxes;    /* float [total_gt, 4] */
    yl_buffer dynamic_k;   /* int32 [total_gt] */
    yl_buffer matched;     /* int32 [B, A] */
    yl_buffer pred_iou;    /* float [B, A] */
    yl_buffer image_sums;  /* yl_image_sums [B] */
    yl_assign_scratch *scratch; /* [num_threads] */
};

/* printf-style message into ctx->error; returns status for tail calls. */
yoloxloss_status yl_fail(yoloxloss_context *ctx, yoloxloss_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks the batch against the config and every shape, label and box;
 * with cfg.check_finite also every head output value. Writes nothing but
 * ctx->error. */
yoloxloss_status yl_validate_batch(yoloxloss_context *ctx, const yoloxloss_batch *batch);

/* Offsets, in floats, of image b's reg, obj and cls planes of one level
 * from the buffers they live in: all three in `fused` for a fused level,
 * each in its own buffer for a split one. Inputs and gradients share it. */
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

/* Where image b's planes of one level start, for inputs and gradients.
 * Channel planes are H*W floats apart in both layouts. The input view's
 * stride and anchor_offset are left 0 for the caller to fill. */
yl_level_view yl_input_view(const yoloxloss_level *lv, int num_classes, int image);

typedef struct {
    float *reg, *obj, *cls;
} yl_grad_view;

yl_grad_view yl_grad_view_of(const yoloxloss_level_grad *g, const yoloxloss_level *shape,
                             int num_classes, int image);

/* Grows every thread's assignment scratch to the largest any thread holds.
 * Which thread assigns which image varies from call to call; after this, a
 * call whose images all fit what some thread once needed allocates nothing.
 * 0 if an allocation failed. */
int yl_scratch_settle(yoloxloss_context *ctx);

/* Fills *losses from the stored sums and ctx->normalizer. */
void yl_report_losses(const yoloxloss_context *ctx, yoloxloss_losses *losses);

#endif
