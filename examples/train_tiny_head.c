/* A custom trainer in plain C: a 1x1-convolution detection head trained with
 * Adam on synthetic images, with yoloxloss_forward/backward as its loss.
 *
 * The "backbone" is frozen and synthetic: at every cell of every level it
 * emits D features that are a fixed random mixture of what a trained backbone
 * would know about the nearest object (its centre offset and log size in
 * strides, whether it is close, its class) plus noise. The head is one 1x1
 * convolution (weights [5+C, D] and a bias, shared by the levels), so all it
 * has to learn is the readout: where the boxes are, which cells are objects,
 * which class (tiny_head.h has both, shared with the other example
 * trainers). The loss must fall, the boxes SimOTA matches must converge on
 * the ground truth, and so must the box a detector would report for each gt
 * (its highest-objectness anchor); the program checks all three against the
 * thresholds below and exits 1 if one fails.
 *
 * Usage: train_tiny_head [steps]   (default 300)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yoloxloss.h>

#include "tiny_head.h"

enum { NUM_IMAGES = 16, BATCH = 4 };

/* Every pass of the loop and the checks at the end are stated here. */
#define LOSS_FALL_FACTOR 4.0 /* final total loss at least this many times below the first */
#define MIN_MEAN_IOU 0.80    /* mean IoU of the matched predictions at the end */
#define MIN_DETECTION_IOU 0.80 /* mean IoU of each gt's best-scoring box at the end */

/* IoU of two cx, cy, w, h boxes. */
static float box_iou(const float *a, const float *b) {
    const float ix = fminf(a[0] + a[2] / 2, b[0] + b[2] / 2) - fmaxf(a[0] - a[2] / 2, b[0] - b[2] / 2);
    const float iy = fminf(a[1] + a[3] / 2, b[1] + b[3] / 2) - fmaxf(a[1] - a[3] / 2, b[1] - b[3] / 2);
    const float inter = ix > 0 && iy > 0 ? ix * iy : 0.0f;
    return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/* What a detector would output for each gt: among the anchors whose centre
 * lies inside the gt box, the one with the highest objectness, decoded as
 * the library decodes. Returns the mean IoU of those boxes with their gts;
 * unlike the matched IoU it does not depend on which anchors SimOTA chose. */
static double detection_iou(image *const *batch, int num, float *const out[LEVELS]) {
    double sum = 0;
    int count = 0;
    for (int b = 0; b < num; b++)
        for (int g = 0; g < batch[b]->num_gt; g++) {
            const float *gt = batch[b]->boxes + 4 * g;
            float best_obj = -INFINITY, best_box[4] = {0, 0, 1, 1};
            for (int l = 0; l < LEVELS; l++) {
                const int n = grid_size(l), cells = n * n;
                const float s = kStrides[l], *o = out[l] + (size_t)b * OUT * (size_t)cells;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) {
                        const float xc = ((float)j + 0.5f) * s, yc = ((float)i + 0.5f) * s;
                        const int p = i * n + j;
                        if (fabsf(xc - gt[0]) >= gt[2] / 2 || fabsf(yc - gt[1]) >= gt[3] / 2) continue;
                        if (o[4 * cells + p] <= best_obj) continue;
                        best_obj = o[4 * cells + p];
                        best_box[0] = (o[p] + (float)j) * s;
                        best_box[1] = (o[cells + p] + (float)i) * s;
                        best_box[2] = expf(o[2 * cells + p]) * s;
                        best_box[3] = expf(o[3 * cells + p]) * s;
                    }
            }
            sum += box_iou(best_box, gt);
            count++;
        }
    return count ? sum / count : 0.0;
}

typedef struct {
    float *out[LEVELS], *grad[LEVELS]; /* [NUM_IMAGES, OUT, H, W] each, the largest batch */
    int32_t *matched;
    float *pred_iou;
} buffers;

/* Runs the head and the loss on num images; with grad != NULL also the
 * backward pass into it. Reports the mean IoU of the matched predictions. */
static int run_loss(yoloxloss_context *ctx, const head *h, image *const *batch, int num, buffers *buf,
                    head *grad, yoloxloss_losses *losses, double *mean_iou) {
    flat_labels gt;
    flatten_labels(batch, num, &gt);
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        head_forward(h, batch, num, l, &(head_planes){.fused = buf->out[l]});
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = buf->out[l]};
    }
    const yoloxloss_batch in = {.num_images = num, .levels = levels, .num_gt = gt.num_gt,
                                .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    yoloxloss_status st = yoloxloss_forward(ctx, &in, losses);
    if (st == YOLOXLOSS_OK) st = yoloxloss_get_assignment(ctx, buf->matched, buf->pred_iou, NULL);
    if (st == YOLOXLOSS_OK && grad) {
        yoloxloss_level_grad g[LEVELS];
        for (int l = 0; l < LEVELS; l++) g[l] = (yoloxloss_level_grad){.fused = buf->grad[l]};
        st = yoloxloss_backward(ctx, g, NULL, /*accumulate=*/0);
    }
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        return -1;
    }
    if (grad) {
        memset(grad, 0, sizeof(*grad));
        for (int l = 0; l < LEVELS; l++) head_backward(grad, batch, num, l, &(head_planes){.fused = buf->grad[l]});
    }
    const int64_t anchors = yoloxloss_num_anchors(ctx);
    double sum = 0;
    int64_t fg = 0;
    for (int64_t a = 0; a < (int64_t)num * anchors; a++)
        if (buf->matched[a] >= 0) sum += buf->pred_iou[a], fg++;
    *mean_iou = fg ? sum / (double)fg : 0.0;
    return 0;
}

static void print_row(const char *what, int step, const yoloxloss_losses *l, double mean_iou) {
    printf("%-5s %4d  total %8.4f  iou %7.4f  obj %7.4f  cls %7.4f  l1 %6.4f  num_fg %3lld  "
           "mean IoU %.3f\n",
           what, step, (double)l->total, (double)l->iou, (double)l->obj, (double)l->cls, (double)l->l1,
           (long long)l->num_fg, mean_iou);
}

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 300;
    if (steps < 1) {
        fprintf(stderr, "usage: %s [steps >= 1]\n", argv[0]);
        return 2;
    }
    uint32_t rng = 12345u;
    float mix[FEAT * SEMANTIC];
    make_mixing(mix, &rng);

    static image images[NUM_IMAGES];
    image *all[NUM_IMAGES];
    for (int n = 0; n < NUM_IMAGES; n++) {
        if (make_image(&images[n], mix, &rng) != 0) return 1;
        all[n] = &images[n];
    }

    buffers buf = {0};
    size_t anchors = 0;
    for (int l = 0; l < LEVELS; l++) {
        const size_t cells = (size_t)(grid_size(l) * grid_size(l));
        anchors += cells;
        buf.out[l] = malloc(sizeof(float) * NUM_IMAGES * OUT * cells);
        buf.grad[l] = malloc(sizeof(float) * NUM_IMAGES * OUT * cells);
        if (!buf.out[l] || !buf.grad[l]) return 1;
    }
    buf.matched = malloc(sizeof(int32_t) * NUM_IMAGES * anchors);
    buf.pred_iou = malloc(sizeof(float) * NUM_IMAGES * anchors);
    if (!buf.matched || !buf.pred_iou) return 1;

    head h, grad;
    head_init(&h, &rng);

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = NUM_CLASSES;
    cfg.num_levels = LEVELS;
    cfg.strides = kStrides;
    cfg.num_threads = 1; /* tiny batches: threads would only add overhead */
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) return 1;

    yoloxloss_losses first, last, step_losses;
    double first_iou, last_iou, step_iou;
    if (run_loss(ctx, &h, all, NUM_IMAGES, &buf, NULL, &first, &first_iou) != 0) return 1;
    const double first_det = detection_iou(all, NUM_IMAGES, buf.out);
    print_row("eval", 0, &first, first_iou);

    adam_state opt = {0};
    for (int step = 1; step <= steps; step++) {
        image *batch[BATCH];
        for (int b = 0; b < BATCH; b++) batch[b] = all[((step - 1) * BATCH + b) % NUM_IMAGES];
        if (run_loss(ctx, &h, batch, BATCH, &buf, &grad, &step_losses, &step_iou) != 0) return 1;
        adam_step(&h, &grad, &opt, 0.02f);
        if (step % 50 == 0 || step == 1) print_row("train", step, &step_losses, step_iou);
    }
    if (run_loss(ctx, &h, all, NUM_IMAGES, &buf, NULL, &last, &last_iou) != 0) return 1;
    const double last_det = detection_iou(all, NUM_IMAGES, buf.out);
    print_row("eval", steps, &last, last_iou);
    yoloxloss_destroy(ctx);

    const double fall = (double)first.total / (double)last.total;
    printf("loss fell %.1fx (need >= %.1fx)\n", fall, LOSS_FALL_FACTOR);
    printf("mean IoU of the matched predictions %.3f -> %.3f (need >= %.2f)\n", first_iou, last_iou,
           MIN_MEAN_IOU);
    printf("mean IoU of each gt's highest-objectness box %.3f -> %.3f (need >= %.2f)\n", first_det,
           last_det, MIN_DETECTION_IOU);
    for (int l = 0; l < LEVELS; l++) free(buf.out[l]), free(buf.grad[l]);
    free(buf.matched);
    free(buf.pred_iou);
    for (int n = 0; n < NUM_IMAGES; n++) free_image(&images[n]);
    return fall >= LOSS_FALL_FACTOR && last_iou >= MIN_MEAN_IOU && last_det >= MIN_DETECTION_IOU ? 0 : 1;
}
