/* The input contract (docs/reliability.md, section 1): every check of a
 * config, a batch, gradient buffers, an upstream gradient and a normaliser,
 * and the error messages they leave. Nothing here writes anything but a
 * message. */
#ifndef YL_VALIDATE_H
#define YL_VALIDATE_H

#include "context.h"
#include "yoloxloss.h"

/* The config's defaults, of yoloxloss_config_defaults: its strides array
 * holds YL_DEFAULT_NUM_LEVELS values. */
#define YL_DEFAULT_NUM_LEVELS 3
extern const float yl_default_strides[YL_DEFAULT_NUM_LEVELS];

/* printf-style message of a failed call; returns status for tail calls.
 * With a context the message goes to ctx->error, without one (ctx NULL,
 * or a call that has none) to the calling thread's message: either is
 * what yoloxloss_last_error(ctx) returns. */
yoloxloss_status yl_fail(yoloxloss_context *ctx, yoloxloss_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears the message that a call on ctx (NULL: a call without a context)
 * would leave on failure; every API call that can fail starts with it. */
void yl_clear_error(yoloxloss_context *ctx);

/* yoloxloss_config_validate into the calling thread's message: what a
 * failed yoloxloss_create leaves for yoloxloss_last_error(NULL). */
yoloxloss_status yl_validate_config_for_create(const yoloxloss_config *config);

/* Checks the batch against the config and every shape, label and box;
 * with cfg.check_finite also every head output value. */
yoloxloss_status yl_validate_batch(yoloxloss_context *ctx, const yoloxloss_batch *batch);

/* The head outputs of num_images images as decode and detect take them:
 * the level checks of yl_validate_batch (image count, pointers, grids,
 * dtypes, sizes, level geometry; with cfg.check_finite every value), with
 * the same messages. *anchors: the anchors per image. */
yoloxloss_status yl_validate_levels(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels,
                                    size_t *anchors);

/* decode's outputs (those given, NULL ones are not asked for): [B, A, 4]
 * and [B, A, C] floats, addressable and aligned to a float. */
yoloxloss_status yl_validate_decode_outputs(yoloxloss_context *ctx, int num_images, size_t anchors,
                                            const float *boxes, const float *scores);

/* detect's params (finite thresholds, max_detections >= 1) and output
 * pointers (set, and aligned to their types; found may be NULL). */
yoloxloss_status yl_validate_detect(yoloxloss_context *ctx, int num_images, const yoloxloss_detect_params *params,
                                    const yoloxloss_detection *detections, const int32_t *counts,
                                    const int32_t *found);

/* Checks that grads gives, for every level, the buffers of the layout its
 * inputs had in the last forward, and that the upstream gradients are
 * finite (upstream may be NULL). */
yoloxloss_status yl_validate_backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                      const yoloxloss_upstream *upstream);

/* A thread count for yoloxloss_set_num_threads: the config's rule. */
yoloxloss_status yl_validate_num_threads(yoloxloss_context *ctx, int num_threads);

/* A normaliser for yoloxloss_renormalize: finite and > 0. */
yoloxloss_status yl_validate_normalizer(yoloxloss_context *ctx, float normalizer);

#endif
