/* Gradient accumulation over micro-batches, done on the parameters.
 *
 * The tiny head of tiny_head.h (a 1x1 convolution over synthetic backbone
 * features, split reg / obj / cls outputs) is trained with Adam on batches of
 * BATCH images, each split into K micro-batches of BATCH / K images, the way
 * a trainer works when a whole batch does not fit in memory. Per micro-batch:
 * head forward, loss forward, loss backward with accumulate = 0 and
 * upstream.total = 1/K into the output-gradient buffers (which the next
 * micro-batch overwrites), then the head's own backward, which ADDS into the
 * parameter gradients. One optimiser step per batch. The output gradients of
 * different micro-batches are never summed: they belong to different outputs.
 *
 * The normaliser. YOLOX divides the batch's loss by N = max(num_fg, 1) of
 * that batch. Each micro-batch dividing by its own num_fg would weight its
 * images by 1/num_fg_k instead of 1/num_fg: another loss. So every
 * micro-batch is renormalised (yoloxloss_renormalize) to N / K, which with
 * upstream.total = 1/K makes each image's gradient that of the whole batch's
 * loss, 1/N times its sum. num_fg of the batch is known only once every
 * micro-batch is assigned, so each step first runs the forwards alone to
 * count it: an image's assignment does not depend on the other images of its
 * batch, so the micro-batches' counts add up to the batch's. That costs one
 * more head forward per micro-batch; a trainer for which that is too much
 * can use an estimate of num_fg (the previous step's) at the price of
 * exactness.
 *
 * Checks; the program exits 1 with a message when one fails:
 *   - on the first and every CHECK_EVERY-th step, the parameter gradient
 *     accumulated over the K micro-batches equals the gradient of one
 *     forward and backward over the whole batch to GRAD_TOL (below), and the
 *     step's loss, the micro-batches' losses times 1/K added up, equals the
 *     whole batch's loss to LOSS_TOL;
 *   - the loss over all NUM_IMAGES images falls at least LOSS_FALL_FACTOR
 *     times.
 *
 * Usage: train_micro_batches [steps [K]]   (defaults 150 and 3; K divides BATCH)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yoloxloss.h>

#include "tiny_head.h"

enum { NUM_IMAGES = 24, BATCH = 12, CHECK_EVERY = 25 };

#define LOSS_FALL_FACTOR 3.0 /* final loss over all images at least this many times below the first */
/* The two ways give every output element the same gradient but for the
 * scale, upstream * weight / N against (1/K) * weight / (N/K), where 1/K
 * and N/K are rounded to float32 when K is not a power of two: a few
 * float32 roundings (~1e-7) apart. The head's backward adds the same
 * products, grouped by micro-batch instead of level by level over the
 * whole batch, so each parameter-gradient component also rounds
 * differently, by about that relative amount of the terms it sums.
 * Measured relative to the largest component (1e-6 seen at most, on the
 * first steps, where the gradients are large and cancel most), with room: */
#define GRAD_TOL 1e-5
/* Each loss is a double sum rounded to float32, added over micro-batches
 * in another grouping than over the whole batch. */
#define LOSS_TOL 1e-5

typedef struct {
    head_planes out[LEVELS], grad[LEVELS]; /* split, sized for NUM_IMAGES */
} buffers;

static int alloc_buffers(buffers *buf) {
    for (int l = 0; l < LEVELS; l++) {
        const size_t cells = (size_t)grid_size(l) * (size_t)grid_size(l);
        head_planes *p[2] = {&buf->out[l], &buf->grad[l]};
        for (int k = 0; k < 2; k++) {
            p[k]->reg = malloc(sizeof(float) * NUM_IMAGES * 4 * cells);
            p[k]->obj = malloc(sizeof(float) * NUM_IMAGES * cells);
            p[k]->cls = malloc(sizeof(float) * NUM_IMAGES * NUM_CLASSES * cells);
            if (!p[k]->reg || !p[k]->obj || !p[k]->cls) return -1;
        }
    }
    return 0;
}

static void free_buffers(buffers *buf) {
    for (int l = 0; l < LEVELS; l++) {
        head_planes *p[2] = {&buf->out[l], &buf->grad[l]};
        for (int k = 0; k < 2; k++) {
            free(p[k]->reg);
            free(p[k]->obj);
            free(p[k]->cls);
        }
    }
}

static int report(yoloxloss_context *ctx, yoloxloss_status st) {
    if (st == YOLOXLOSS_OK) return 0;
    fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
    return -1;
}

/* Head forward and loss forward over images[0..num). */
static int forward(yoloxloss_context *ctx, const head *h, image *const *images, int num, buffers *buf,
                   yoloxloss_losses *losses) {
    flat_labels gt;
    flatten_labels(images, num, &gt);
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        head_forward(h, images, num, l, &buf->out[l]);
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .reg = buf->out[l].reg,
                                      .obj = buf->out[l].obj, .cls = buf->out[l].cls};
    }
    const yoloxloss_batch in = {.num_images = num, .levels = levels, .num_gt = gt.num_gt,
                                .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    return report(ctx, yoloxloss_forward(ctx, &in, losses));
}

/* Loss backward of the last forward (over images[0..num)) into the output
 * gradients, then the head's backward, which adds into *param_grad. */
static int backward(yoloxloss_context *ctx, image *const *images, int num, buffers *buf,
                    const yoloxloss_upstream *upstream, head *param_grad) {
    yoloxloss_level_grad g[LEVELS];
    for (int l = 0; l < LEVELS; l++)
        g[l] = (yoloxloss_level_grad){.reg = buf->grad[l].reg, .obj = buf->grad[l].obj, .cls = buf->grad[l].cls};
    if (report(ctx, yoloxloss_backward(ctx, g, upstream, /*accumulate=*/0))) return -1;
    for (int l = 0; l < LEVELS; l++) head_backward(param_grad, images, num, l, &buf->grad[l]);
    return 0;
}

/* One step's gradient from K micro-batches: *grad and *loss are those of
 * the batch's loss. */
static int micro_batch_gradient(yoloxloss_context *ctx, const head *h, image *const *batch, int K,
                                buffers *buf, head *grad, double *loss) {
    const int micro = BATCH / K;
    yoloxloss_losses l;
    int64_t num_fg = 0;
    for (int k = 0; k < K; k++) {
        if (forward(ctx, h, batch + k * micro, micro, buf, &l)) return -1;
        num_fg += l.num_fg;
    }
    const float n_micro = (float)((double)(num_fg > 1 ? num_fg : 1) / K);
    const yoloxloss_upstream upstream = {.total = 1.0f / (float)K};

    memset(grad, 0, sizeof(*grad));
    *loss = 0.0;
    int64_t recount = 0;
    for (int k = 0; k < K; k++) {
        image *const *images = batch + k * micro;
        if (forward(ctx, h, images, micro, buf, &l)) return -1;
        if (report(ctx, yoloxloss_renormalize(ctx, n_micro, &l))) return -1;
        if (backward(ctx, images, micro, buf, &upstream, grad)) return -1;
        *loss += (double)upstream.total * (double)l.total;
        recount += l.num_fg;
    }
    if (recount != num_fg) {
        fprintf(stderr, "the second pass assigned %lld foreground anchors, the first %lld\n",
                (long long)recount, (long long)num_fg);
        return -1;
    }
    return 0;
}

/* The reference: one forward and backward over the whole batch. */
static int whole_batch_gradient(yoloxloss_context *ctx, const head *h, image *const *batch, buffers *buf,
                                head *grad, double *loss) {
    yoloxloss_losses l;
    memset(grad, 0, sizeof(*grad));
    if (forward(ctx, h, batch, BATCH, buf, &l) || backward(ctx, batch, BATCH, buf, NULL, grad)) return -1;
    *loss = (double)l.total;
    return 0;
}

/* Largest |a - b| over the parameters, relative to the largest |b|. */
static double relative_difference(const head *a, const head *b) {
    const float *x = (const float *)a, *y = (const float *)b;
    double diff = 0.0, scale = 0.0;
    /* Plain comparisons, not fmax: gcc 12's aarch64 vectoriser crashes on
     * this loop's two fmax reductions (an internal compiler error at -O3). */
    for (size_t k = 0; k < sizeof(head) / sizeof(float); k++) {
        double d = fabs((double)x[k] - (double)y[k]), m = fabs((double)y[k]);
        if (d > diff) diff = d;
        if (m > scale) scale = m;
    }
    return scale > 0.0 ? diff / scale : diff;
}

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 150;
    const int K = argc > 2 ? atoi(argv[2]) : 3;
    if (steps < 1 || K < 1 || BATCH % K != 0) {
        fprintf(stderr, "usage: %s [steps >= 1 [K, a divisor of %d]]\n", argv[0], BATCH);
        return 2;
    }
    uint32_t rng = 777u;
    float mix[FEAT * SEMANTIC];
    make_mixing(mix, &rng);
    static image images[NUM_IMAGES];
    image *all[NUM_IMAGES];
    for (int n = 0; n < NUM_IMAGES; n++) {
        all[n] = &images[n];
        if (make_image(&images[n], mix, &rng) != 0) return 1;
    }
    buffers buf = {0};
    if (alloc_buffers(&buf) != 0) return 1;
    head h, grad, reference;
    head_init(&h, &rng);

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = NUM_CLASSES;
    cfg.num_levels = LEVELS;
    cfg.strides = kStrides;
    cfg.num_threads = 1; /* tiny batches: threads would only add overhead */
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) return 1;

    int failed = 0;
    yoloxloss_losses first, last;
    if (forward(ctx, &h, all, NUM_IMAGES, &buf, &first)) return 1;
    printf("all %2d images, step %3d: loss %.4f\n", NUM_IMAGES, 0, (double)first.total);
    double worst_grad = 0.0, worst_loss = 0.0;
    adam_state opt = {0};
    for (int step = 1; step <= steps && !failed; step++) {
        image *batch[BATCH];
        for (int b = 0; b < BATCH; b++) batch[b] = all[((step - 1) * BATCH + b) % NUM_IMAGES];
        double loss;
        if (micro_batch_gradient(ctx, &h, batch, K, &buf, &grad, &loss)) return 1;
        if (step == 1 || step % CHECK_EVERY == 0 || step == steps) {
            double whole_loss;
            if (whole_batch_gradient(ctx, &h, batch, &buf, &reference, &whole_loss)) return 1;
            const double dg = relative_difference(&grad, &reference);
            const double dl = fabs(loss - whole_loss) / fmax(fabs(whole_loss), 1e-30);
            worst_grad = fmax(worst_grad, dg);
            worst_loss = fmax(worst_loss, dl);
            printf("batch step %3d: loss %.4f from %d micro-batches, %.4f whole; gradient difference %.2g\n",
                   step, loss, K, whole_loss, dg);
            if (dg > GRAD_TOL || dl > LOSS_TOL) {
                fprintf(stderr, "step %d: %d micro-batches do not give the whole batch's %s "
                        "(relative difference %.3g, tolerance %.0e)\n", step, K,
                        dg > GRAD_TOL ? "gradient" : "loss", dg > GRAD_TOL ? dg : dl,
                        dg > GRAD_TOL ? GRAD_TOL : LOSS_TOL);
                failed = 1;
            }
        }
        adam_step(&h, &grad, &opt, 0.02f);
    }
    if (!failed && forward(ctx, &h, all, NUM_IMAGES, &buf, &last)) return 1;
    yoloxloss_destroy(ctx);
    free_buffers(&buf);
    for (int n = 0; n < NUM_IMAGES; n++) free_image(&images[n]);
    if (failed) return 1;

    const double fall = (double)first.total / (double)last.total;
    printf("all %2d images, step %3d: loss %.4f\n", NUM_IMAGES, steps, (double)last.total);
    printf("largest relative difference to the whole batch: gradient %.2g (tolerance %.0e), loss %.2g "
           "(tolerance %.0e)\n", worst_grad, GRAD_TOL, worst_loss, LOSS_TOL);
    printf("loss fell %.1fx (need >= %.1fx)\n", fall, LOSS_FALL_FACTOR);
    if (fall < LOSS_FALL_FACTOR) {
        fprintf(stderr, "the loss did not fall enough\n");
        return 1;
    }
    return 0;
}
