/* One loss call for all levels, in a framework whose loss layers are per level.
 *
 * SimOTA assigns each ground-truth box to anchors of every level at once (its
 * candidates, costs and dynamic k span the levels), so the library takes all
 * levels of a batch in one yoloxloss_forward. Frameworks such as darknet have
 * one loss layer per level ([yolo] layers), each run in the network's order
 * after the convolution that feeds it. This program wires such layers to one
 * call: every per-level layer registers its input and its delta with a group
 * shared by the levels, and the layer that completes the set (whichever level
 * the network runs last) calls forward and backward once for all of them.
 * Each layer's own backward then adds its delta into its input's, as a
 * darknet layer does. The delta follows darknet's convention, the negative
 * gradient times the batch: upstream.total = -BATCH.
 *
 * The tiny head of tiny_head.h provides the "network": one 1x1 convolution
 * per level (fused outputs), the loss layers run coarsest level first (as
 * YOLOv3's cfg orders its [yolo] layers).
 *
 * Checks (exit 1 when one fails): every convolution's delta is exactly
 * -BATCH times the gradient of one direct call (BATCH is a power of two, so
 * the scaling is exact); and one call per level (a context of one level
 * each, the mistake this wiring avoids) assigns differently: its summed
 * loss and num_fg are printed beside the one call's.
 *
 * Usage: per_level_loss_layers
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yoloxloss.h>

#include "tiny_loss.h"

enum { BATCH = 8 };

/* The levels' shared state: what each per-level layer has registered in this
 * pass, and the context of the one call. */
typedef struct {
    yoloxloss_context *ctx;
    int num_levels;
    unsigned seen;                       /* bit l: level l registered in this pass */
    yoloxloss_level levels[LEVELS];      /* in the order of config.strides */
    yoloxloss_level_grad grads[LEVELS];
    float upstream;                      /* -batch: darknet's delta */
    yoloxloss_losses losses;
} loss_group;

/* One per-level loss layer. */
typedef struct {
    loss_group *group;
    int level, height, width;
    float *input, *input_delta; /* the feeding convolution's output and delta, [B, 5+C, H, W] */
    float *delta;               /* this layer's: -batch * d total / d input */
    size_t size;
} loss_layer;

/* The layer's forward: register; the layer that completes the set runs the
 * loss of all levels, writing every layer's delta. */
static int loss_layer_forward(loss_layer *l, int num_images, const flat_labels *gt) {
    loss_group *g = l->group;
    if (g->seen & (1u << l->level)) {
        fprintf(stderr, "level %d ran twice in one pass\n", l->level);
        return -1;
    }
    g->seen |= 1u << l->level;
    g->levels[l->level] = (yoloxloss_level){.height = l->height, .width = l->width, .fused = l->input};
    g->grads[l->level] = (yoloxloss_level_grad){.fused = l->delta};
    if (g->seen != (1u << g->num_levels) - 1) return 0; /* levels still to come */
    g->seen = 0;
    const yoloxloss_batch batch = {.num_images = num_images, .levels = g->levels, .num_gt = gt->num_gt,
                                   .gt_classes = gt->classes, .gt_boxes = gt->boxes};
    const yoloxloss_upstream up = {.total = g->upstream};
    yoloxloss_status st = yoloxloss_forward(g->ctx, &batch, &g->losses);
    if (st == YOLOXLOSS_OK) st = yoloxloss_backward(g->ctx, g->grads, &up, /*accumulate=*/0);
    return report_status(g->ctx, st);
}

/* The layer's backward: its delta into its input's (darknet adds). */
static void loss_layer_backward(const loss_layer *l) {
    for (size_t k = 0; k < l->size; k++) l->input_delta[k] += l->delta[k];
}

int main(void) {
    uint32_t rng = 99u;
    static image images[BATCH];
    image *batch[BATCH];
    if (make_dataset(images, batch, BATCH, &rng) != 0) return 1;
    head h;
    head_init(&h, &rng);
    flat_labels gt;
    flatten_labels(batch, BATCH, &gt);

    loss_group group = {.ctx = example_context(NUM_CLASSES, LEVELS, kStrides), .num_levels = LEVELS, .upstream = -(float)BATCH};
    loss_layer layers[LEVELS];
    float *direct[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        const size_t size = (size_t)BATCH * OUT * (size_t)(grid_size(l) * grid_size(l));
        layers[l] = (loss_layer){.group = &group, .level = l, .height = grid_size(l), .width = grid_size(l),
                                 .input = malloc(sizeof(float) * size), .input_delta = calloc(size, sizeof(float)),
                                 .delta = malloc(sizeof(float) * size), .size = size};
        direct[l] = malloc(sizeof(float) * size);
        if (!layers[l].input || !layers[l].input_delta || !layers[l].delta || !direct[l]) return 1;
    }
    if (!group.ctx) return 1;

    /* The network's forward: each level's convolution, then its loss layer,
     * coarsest level first; then the backward in reverse order. */
    for (int l = LEVELS - 1; l >= 0; l--) {
        head_forward(&h, batch, BATCH, l, &(head_planes){.fused = layers[l].input});
        if (loss_layer_forward(&layers[l], BATCH, &gt)) return 1;
    }
    for (int l = 0; l < LEVELS; l++) loss_layer_backward(&layers[l]);

    /* The same loss as one direct call, gradient with upstream 1. */
    yoloxloss_level levels[LEVELS];
    yoloxloss_level_grad grads[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = layers[l].input};
        grads[l] = (yoloxloss_level_grad){.fused = direct[l]};
    }
    const yoloxloss_batch whole = {.num_images = BATCH, .levels = levels, .num_gt = gt.num_gt,
                                   .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    yoloxloss_context *ref = example_context(NUM_CLASSES, LEVELS, kStrides);
    yoloxloss_losses one;
    if (!ref || yoloxloss_forward(ref, &whole, &one) || yoloxloss_backward(ref, grads, NULL, 0)) return 1;
    size_t differ = 0;
    for (int l = 0; l < LEVELS; l++)
        for (size_t k = 0; k < layers[l].size; k++) differ += layers[l].input_delta[k] != -(float)BATCH * direct[l][k];
    printf("one call from the per-level layers: total %.4f, num_fg %lld; deltas that are not -%d x the direct "
           "gradient: %zu\n", (double)group.losses.total, (long long)group.losses.num_fg, BATCH, differ);

    /* The mistake: one call per level, each level assigned on its own. */
    double total = 0;
    int64_t num_fg = 0;
    for (int l = 0; l < LEVELS; l++) {
        yoloxloss_context *alone = example_context(NUM_CLASSES, 1, &kStrides[l]);
        const yoloxloss_batch one_level = {.num_images = BATCH, .levels = &levels[l], .num_gt = gt.num_gt,
                                           .gt_classes = gt.classes, .gt_boxes = gt.boxes};
        yoloxloss_losses part;
        if (!alone || yoloxloss_forward(alone, &one_level, &part)) return 1;
        total += part.total;
        num_fg += part.num_fg;
        yoloxloss_destroy(alone);
    }
    printf("one call per level, added up:       total %.4f, num_fg %lld\n", total, (long long)num_fg);

    yoloxloss_destroy(ref);
    yoloxloss_destroy(group.ctx);
    for (int l = 0; l < LEVELS; l++) free(layers[l].input), free(layers[l].input_delta), free(layers[l].delta),
                                     free(direct[l]);
    for (int n = 0; n < BATCH; n++) free_image(&images[n]);
    if (differ) {
        fprintf(stderr, "the per-level layers' deltas are not the one call's gradient times -%d\n", BATCH);
        return 1;
    }
    if (num_fg == one.num_fg) {
        fprintf(stderr, "one call per level assigned as many anchors as one call for all levels\n");
        return 1;
    }
    return 0;
}
