/* The glue between the toy detector of tiny_head.h and the library, shared by
 * the example programs that measure what the trainer guide quotes: a dataset,
 * a context, and the head's forward and backward through the loss. */
#ifndef YOLOXLOSS_EXAMPLES_TINY_LOSS_H
#define YOLOXLOSS_EXAMPLES_TINY_LOSS_H

#include <yoloxloss.h>

#include "tiny_head.h"

/** Draws the backbone's mixing matrix, then makes num images into images[]
 * and points all[n] at images[n] (the order of draws of train_tiny_head.c).
 * Returns 0, or -1 when out of memory. */
int make_dataset(image *images, image **all, int num, uint32_t *rng);

/** A context of YOLOX's defaults for num_classes classes and the given
 * levels, on one thread (the examples' batches are small); NULL on failure,
 * with the reason on stderr. */
yoloxloss_context *example_context(int num_classes, int num_levels, const float *strides);

/** 0 for YOLOXLOSS_OK; else prints the status and the context's message and returns -1. */
int report_status(const yoloxloss_context *ctx, yoloxloss_status st);

/** The head's forward into out (one entry per level, fused or split) and the
 * loss's forward over images[0..num); 0 or -1 (reported). */
int tiny_loss_forward(yoloxloss_context *ctx, const head *h, image *const *images, int num,
                      const head_planes out[LEVELS], yoloxloss_losses *losses);

/** The loss's backward of the last forward into grad (same layout as its
 * outputs) with upstream.total = upstream, then the head's backward, which
 * ADDS into *param_grad; 0 or -1 (reported). */
int tiny_loss_backward(yoloxloss_context *ctx, image *const *images, int num, const head_planes grad[LEVELS],
                       float upstream, head *param_grad);

#endif
