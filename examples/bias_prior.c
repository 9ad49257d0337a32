/* Why YOLOX starts its objectness and class logits at a 1% prior.
 *
 * YOLOX initialises the biases of its obj and cls prediction convolutions to
 * -log((1 - p) / p) with p = 0.01, so that every anchor starts out predicting
 * "background, no class" with probability 0.99. A head whose biases start at
 * 0 predicts 0.5 everywhere instead, and its first objectness loss counts
 * log 2 for every anchor of the batch, divided by the few foreground ones.
 *
 * This program computes the first loss with and without the prior on two
 * heads and prints the terms:
 *
 *   tiny    the example trainer's head (tiny_head.h, the 16 images of
 *           train_tiny_head.c, whose "eval 0" row is the prior's row here);
 *   yolox   YOLOX-sized outputs: 640x640 images, 80 classes, strides 8, 16
 *           and 32 (8400 anchors), 2 images with 8 boxes each, every logit
 *           drawn in [-0.01, 0.01) as a freshly initialised head's are near 0,
 *           plus the bias.
 *
 * Checks (exit 1 when one fails): without the prior the total is at least
 * MIN_RATIO times the total with it, on both heads; and on the yolox head,
 * whose logits are 0 up to 0.01, the objectness term is what the prior
 * predicts: without it log 2 per anchor, with it -log(1 - p) per background
 * and -log(p) per foreground anchor (each divided by N), to 2%.
 *
 * Usage: bias_prior
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <yoloxloss.h>

#include "tiny_loss.h"

#define PRIOR 0.01 /* YOLOX's prior probability of an object (and of each class) */
#define MIN_RATIO 2.0
#define OBJ_TOL 0.02

enum { YOLOX_CLASSES = 80, YOLOX_IMAGE = 640, YOLOX_LEVELS = 3, YOLOX_BATCH = 2, YOLOX_GT = 8 };
static const float kYoloxStrides[YOLOX_LEVELS] = {8, 16, 32};

static void print_row(const char *what, const yoloxloss_losses *l) {
    printf("%-18s total %9.4f  iou %7.4f  obj %9.4f  cls %8.4f  num_fg %4lld\n", what, (double)l->total,
           (double)l->iou, (double)l->obj, (double)l->cls, (long long)l->num_fg);
}

/* The loss of a batch of fused float32 levels; -1 on failure. */
static int loss_of(int num_classes, int num_levels, const float *strides, const yoloxloss_batch *batch,
                   yoloxloss_losses *out) {
    yoloxloss_context *ctx = example_context(num_classes, num_levels, strides);
    if (!ctx) return -1;
    const int bad = report_status(ctx, yoloxloss_forward(ctx, batch, out));
    yoloxloss_destroy(ctx);
    return bad;
}

/* The tiny head's first loss on train_tiny_head.c's images, biases at the
 * prior (head_init) or at 0. */
static int tiny_head_losses(yoloxloss_losses *with, yoloxloss_losses *without) {
    enum { NUM_IMAGES = 16 };
    uint32_t rng = 12345u; /* train_tiny_head.c's seed and order of draws */
    static image images[NUM_IMAGES];
    image *all[NUM_IMAGES];
    if (make_dataset(images, all, NUM_IMAGES, &rng) != 0) return -1;
    head h;
    head_init(&h, &rng);
    flat_labels gt;
    flatten_labels(all, NUM_IMAGES, &gt);
    float *out[LEVELS];
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        out[l] = malloc(sizeof(float) * NUM_IMAGES * OUT * (size_t)(grid_size(l) * grid_size(l)));
        if (!out[l]) return -1;
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = out[l]};
    }
    const yoloxloss_batch batch = {.num_images = NUM_IMAGES, .levels = levels, .num_gt = gt.num_gt,
                                   .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    int bad = 0;
    for (int pass = 0; pass < 2 && !bad; pass++) {
        if (pass == 1)
            for (int c = 4; c < OUT; c++) h.b[c] = 0.0f; /* the obj and cls biases */
        for (int l = 0; l < LEVELS; l++) head_forward(&h, all, NUM_IMAGES, l, &(head_planes){.fused = out[l]});
        bad = loss_of(NUM_CLASSES, LEVELS, kStrides, &batch, pass == 0 ? with : without);
    }
    for (int l = 0; l < LEVELS; l++) free(out[l]);
    for (int n = 0; n < NUM_IMAGES; n++) free_image(&images[n]);
    return bad;
}

/* YOLOX-sized outputs near 0 plus the obj and cls bias; -> the loss, and in
 * *anchors the number of anchors of the batch. */
static int yolox_losses(float bias, yoloxloss_losses *losses, double *anchors) {
    const int C = YOLOX_CLASSES, channels = 5 + YOLOX_CLASSES;
    uint32_t rng = 2024u;
    int32_t num_gt[YOLOX_BATCH], classes[YOLOX_BATCH * YOLOX_GT];
    float boxes[YOLOX_BATCH * YOLOX_GT * 4];
    for (int g = 0; g < YOLOX_BATCH * YOLOX_GT; g++) {
        float *box = boxes + 4 * g;
        box[2] = 32.0f + 224.0f * uniform(&rng);
        box[3] = 32.0f + 224.0f * uniform(&rng);
        box[0] = box[2] / 2 + (YOLOX_IMAGE - box[2]) * uniform(&rng);
        box[1] = box[3] / 2 + (YOLOX_IMAGE - box[3]) * uniform(&rng);
        classes[g] = (int32_t)(uniform(&rng) * (float)C);
    }
    for (int b = 0; b < YOLOX_BATCH; b++) num_gt[b] = YOLOX_GT;
    float *out[YOLOX_LEVELS] = {NULL};
    yoloxloss_level levels[YOLOX_LEVELS];
    int bad = 0;
    *anchors = 0;
    for (int l = 0; l < YOLOX_LEVELS && !bad; l++) {
        const int n = (int)(YOLOX_IMAGE / kYoloxStrides[l]);
        const size_t cells = (size_t)n * (size_t)n;
        *anchors += (double)YOLOX_BATCH * (double)cells;
        out[l] = malloc(sizeof(float) * YOLOX_BATCH * (size_t)channels * cells);
        if (!out[l]) {
            bad = -1;
            break;
        }
        for (size_t k = 0; k < YOLOX_BATCH * (size_t)channels * cells; k++) {
            const size_t c = k / cells % (size_t)channels;
            out[l][k] = 0.02f * (uniform(&rng) - 0.5f) + (c >= 4 ? bias : 0.0f);
        }
        levels[l] = (yoloxloss_level){.height = n, .width = n, .fused = out[l]};
    }
    const yoloxloss_batch batch = {.num_images = YOLOX_BATCH, .levels = levels, .num_gt = num_gt,
                                   .gt_classes = classes, .gt_boxes = boxes};
    if (!bad) bad = loss_of(C, YOLOX_LEVELS, kYoloxStrides, &batch, losses);
    for (int l = 0; l < YOLOX_LEVELS; l++) free(out[l]);
    return bad;
}

/* The objectness term of logits at `bias` exactly: BCE with target 1 on the
 * num_fg foreground anchors (YOLOX's obj target), 0 on the others, over N. */
static double predicted_obj(double bias, double anchors, const yoloxloss_losses *l) {
    const double p = 1.0 / (1.0 + exp(-bias)), fg = (double)l->num_fg;
    return (-(anchors - fg) * log(1.0 - p) - fg * log(p)) / (double)l->normalizer;
}

int main(void) {
    yoloxloss_losses tiny_with, tiny_without, yolox_with, yolox_without;
    double anchors = 0;
    const float prior_bias = (float)-log((1.0 - PRIOR) / PRIOR);
    if (tiny_head_losses(&tiny_with, &tiny_without) || yolox_losses(prior_bias, &yolox_with, &anchors) ||
        yolox_losses(0.0f, &yolox_without, &anchors))
        return 1;
    printf("first loss, obj and cls biases at -log((1 - %.2f) / %.2f) = %.4f or at 0:\n", PRIOR, PRIOR,
           (double)prior_bias);
    print_row("tiny, prior", &tiny_with);
    print_row("tiny, bias 0", &tiny_without);
    print_row("yolox, prior", &yolox_with);
    print_row("yolox, bias 0", &yolox_without);
    const double tiny_ratio = (double)tiny_without.total / tiny_with.total;
    const double yolox_ratio = (double)yolox_without.total / yolox_with.total;
    printf("without the prior the first loss is %.1fx (tiny) and %.1fx (yolox) the loss with it\n", tiny_ratio,
           yolox_ratio);

    int failed = 0;
    if (tiny_ratio < MIN_RATIO || yolox_ratio < MIN_RATIO) {
        fprintf(stderr, "the prior lowers the first loss less than %.1fx\n", MIN_RATIO);
        failed = 1;
    }
    const double want[2] = {predicted_obj(prior_bias, anchors, &yolox_with), predicted_obj(0.0, anchors, &yolox_without)};
    const double got[2] = {yolox_with.obj, yolox_without.obj};
    for (int k = 0; k < 2; k++) {
        printf("yolox obj term %s: %.4f, predicted %.4f\n", k ? "bias 0" : "prior", got[k], want[k]);
        if (fabs(got[k] - want[k]) > OBJ_TOL * want[k]) {
            fprintf(stderr, "the objectness term is not the prior's BCE to %.0f%%\n", 100 * OBJ_TOL);
            failed = 1;
        }
    }
    return failed;
}
