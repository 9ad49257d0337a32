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
 * (its highest-scoring anchor of the gt's class, from yoloxloss_decode).
 * Then it validates as a trainer would, on held-out images the head never
 * trained on: yoloxloss_detect (YOLOX's postprocess: score threshold and
 * per-class NMS) gives the detections, and their mean average precision at
 * IoU 0.5 must have risen from the untrained head's to at least MIN_AP50.
 * The program checks all four against the thresholds below and exits 1 if
 * one fails.
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

enum { NUM_IMAGES = 16, NUM_HELD_OUT = 8, BATCH = 4, MAX_DETECTIONS = 100 };

/* Every pass of the loop and the checks at the end are stated here. */
#define LOSS_FALL_FACTOR 4.0 /* final total loss at least this many times below the first */
#define MIN_MEAN_IOU 0.80    /* mean IoU of the matched predictions at the end */
#define MIN_DETECTION_IOU 0.80 /* mean IoU of each gt's best-scoring box at the end */
#define MIN_AP50 0.60        /* mean AP at IoU 0.5 on the held-out images at the end */
#define SCORE_THRESHOLD 0.01f /* validation keeps detections scoring at least this (YOLOX's test_conf) */
#define NMS_THRESHOLD 0.65    /* and suppresses per class above this IoU (YOLOX's eval nmsthre) */

/* IoU of two cx, cy, w, h boxes. */
static float box_iou(const float *a, const float *b) {
    const float ix = fminf(a[0] + a[2] / 2, b[0] + b[2] / 2) - fmaxf(a[0] - a[2] / 2, b[0] - b[2] / 2);
    const float iy = fminf(a[1] + a[3] / 2, b[1] + b[3] / 2) - fmaxf(a[1] - a[3] / 2, b[1] - b[3] / 2);
    const float inter = ix > 0 && iy > 0 ? ix * iy : 0.0f;
    return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

typedef struct {
    float *out[LEVELS], *grad[LEVELS]; /* [NUM_IMAGES, OUT, H, W] each, the largest batch */
    int32_t *matched;
    float *pred_iou;
    float *boxes, *scores;             /* yoloxloss_decode's [NUM_IMAGES, A, 4] and [NUM_IMAGES, A, C] */
    yoloxloss_detection *detections;   /* [NUM_HELD_OUT, MAX_DETECTIONS] */
} buffers;

/* The level structs of the head outputs of the last run_loss or validate. */
static void fused_levels(const buffers *buf, yoloxloss_level levels[LEVELS]) {
    for (int l = 0; l < LEVELS; l++)
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = buf->out[l]};
}

/* What a detector would output for each gt: among the anchors whose centre
 * lies inside the gt box, the one with the highest score of the gt's class
 * (sigmoid(obj) * sigmoid(cls)), its box and scores from yoloxloss_decode.
 * Returns the mean IoU of those boxes with their gts; unlike the matched
 * IoU it does not depend on which anchors SimOTA chose. -1 on failure. */
static double detection_iou(yoloxloss_context *ctx, image *const *batch, int num, const buffers *buf) {
    yoloxloss_level levels[LEVELS];
    fused_levels(buf, levels);
    yoloxloss_status st = yoloxloss_decode(ctx, num, levels, buf->boxes, buf->scores);
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        return -1.0;
    }
    const size_t A = (size_t)yoloxloss_num_anchors(ctx);
    double sum = 0;
    int count = 0;
    for (int b = 0; b < num; b++)
        for (int g = 0; g < batch[b]->num_gt; g++) {
            const float *gt = batch[b]->boxes + 4 * g;
            float best_score = -1.0f, best_box[4] = {0, 0, 1, 1};
            size_t a = (size_t)b * A; /* anchors in YOLOX's order: level by level, i * W + j */
            for (int l = 0; l < LEVELS; l++) {
                const int n = grid_size(l);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++, a++) {
                        const float xc = ((float)j + 0.5f) * kStrides[l], yc = ((float)i + 0.5f) * kStrides[l];
                        const float score = buf->scores[a * NUM_CLASSES + (size_t)batch[b]->classes[g]];
                        if (fabsf(xc - gt[0]) >= gt[2] / 2 || fabsf(yc - gt[1]) >= gt[3] / 2) continue;
                        if (score <= best_score) continue;
                        best_score = score;
                        memcpy(best_box, buf->boxes + 4 * a, sizeof best_box);
                    }
            }
            sum += box_iou(best_box, gt);
            count++;
        }
    return count ? sum / count : 0.0;
}

/* IoU of a detection's corners with a cx, cy, w, h box. */
static float detection_gt_iou(const yoloxloss_detection *d, const float *gt) {
    const float box[4] = {(d->x1 + d->x2) / 2, (d->y1 + d->y2) / 2, d->x2 - d->x1, d->y2 - d->y1};
    return box_iou(box, gt);
}

/* Mean over classes of the average precision at IoU 0.5 (PASCAL VOC's
 * all-point form) of the detections of images[0..num): per class, every
 * image's detections of it by score; one is a true positive when its IoU
 * with a gt of its class that no better detection took is >= 0.5. */
static double mean_ap50(image *const *images, int num, const yoloxloss_detection *det, const int32_t *counts) {
    double ap_sum = 0;
    int classes_with_gt = 0;
    for (int c = 0; c < NUM_CLASSES; c++) {
        int num_gt = 0, num_det = 0, tp = 0, fp = 0;
        for (int b = 0; b < num; b++) {
            for (int g = 0; g < images[b]->num_gt; g++) num_gt += images[b]->classes[g] == c;
            for (int k = 0; k < counts[b]; k++) num_det += det[b * MAX_DETECTIONS + k].cls == c;
        }
        if (num_gt == 0) continue;
        classes_with_gt++;
        /* walk the detections of class c from the best score down, taking gts as they match */
        int taken[NUM_HELD_OUT][MAX_GT] = {{0}}, next[NUM_HELD_OUT] = {0};
        double precision_at[NUM_HELD_OUT * MAX_DETECTIONS], recall_at[NUM_HELD_OUT * MAX_DETECTIONS];
        for (int r = 0; r < num_det; r++) {
            int best_b = -1;
            for (int b = 0; b < num; b++) { /* each image's list is already ranked */
                while (next[b] < counts[b] && det[b * MAX_DETECTIONS + next[b]].cls != c) next[b]++;
                if (next[b] < counts[b] && (best_b < 0 || det[b * MAX_DETECTIONS + next[b]].score >
                                                              det[best_b * MAX_DETECTIONS + next[best_b]].score))
                    best_b = b;
            }
            const yoloxloss_detection *d = &det[best_b * MAX_DETECTIONS + next[best_b]++];
            int hit = -1;
            float hit_iou = 0.5f;
            for (int g = 0; g < images[best_b]->num_gt; g++) {
                const float iou = detection_gt_iou(d, images[best_b]->boxes + 4 * g);
                if (images[best_b]->classes[g] == c && !taken[best_b][g] && iou >= hit_iou) hit = g, hit_iou = iou;
            }
            if (hit >= 0) taken[best_b][hit] = 1, tp++;
            else fp++;
            precision_at[r] = (double)tp / (tp + fp);
            recall_at[r] = (double)tp / num_gt;
        }
        /* area under the precision-recall curve, precision made non-increasing from the right */
        double ap = 0, best_precision = 0;
        for (int r = num_det - 1; r >= 0; r--) {
            if (precision_at[r] > best_precision) best_precision = precision_at[r];
            ap += best_precision * (recall_at[r] - (r > 0 ? recall_at[r - 1] : 0.0));
        }
        ap_sum += ap;
    }
    return classes_with_gt ? ap_sum / classes_with_gt : 0.0;
}

/* The head on images[0..num) (at most NUM_HELD_OUT), YOLOX's postprocess
 * through yoloxloss_detect, and the detections' mean AP at IoU 0.5; -1 on
 * failure. */
static double validate(yoloxloss_context *ctx, const head *h, image *const *images, int num, buffers *buf,
                       int *num_detections) {
    for (int l = 0; l < LEVELS; l++) head_forward(h, images, num, l, &(head_planes){.fused = buf->out[l]});
    yoloxloss_level levels[LEVELS];
    fused_levels(buf, levels);
    yoloxloss_detect_params params;
    yoloxloss_detect_params_defaults(&params);
    params.score_threshold = SCORE_THRESHOLD;
    params.nms_threshold = NMS_THRESHOLD;
    params.max_detections = MAX_DETECTIONS;
    int32_t counts[NUM_HELD_OUT];
    yoloxloss_status st = yoloxloss_detect(ctx, num, levels, &params, buf->detections, counts, NULL);
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        return -1.0;
    }
    *num_detections = 0;
    for (int b = 0; b < num; b++) *num_detections += counts[b];
    return mean_ap50(images, num, buf->detections, counts);
}

/* Runs the head and the loss on num images; with grad != NULL also the
 * backward pass into it. Reports the mean IoU of the matched predictions. */
static int run_loss(yoloxloss_context *ctx, const head *h, image *const *batch, int num, buffers *buf,
                    head *grad, yoloxloss_losses *losses, double *mean_iou) {
    flat_labels gt;
    flatten_labels(batch, num, &gt);
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) head_forward(h, batch, num, l, &(head_planes){.fused = buf->out[l]});
    fused_levels(buf, levels);
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

    /* the training images, and images of the same kind (their own random
     * numbers) the head never trains on */
    static image images[NUM_IMAGES + NUM_HELD_OUT];
    image *all[NUM_IMAGES], *held_out[NUM_HELD_OUT];
    uint32_t held_out_rng = 777u;
    for (int n = 0; n < NUM_IMAGES + NUM_HELD_OUT; n++) {
        if (make_image(&images[n], mix, n < NUM_IMAGES ? &rng : &held_out_rng) != 0) return 1;
        if (n < NUM_IMAGES) all[n] = &images[n];
        else held_out[n - NUM_IMAGES] = &images[n];
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
    buf.boxes = malloc(sizeof(float) * NUM_IMAGES * anchors * 4);
    buf.scores = malloc(sizeof(float) * NUM_IMAGES * anchors * NUM_CLASSES);
    buf.detections = malloc(sizeof(yoloxloss_detection) * NUM_HELD_OUT * MAX_DETECTIONS);
    if (!buf.matched || !buf.pred_iou || !buf.boxes || !buf.scores || !buf.detections) return 1;

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
    int first_dets, last_dets;
    const double first_ap = validate(ctx, &h, held_out, NUM_HELD_OUT, &buf, &first_dets);
    if (first_ap < 0 || run_loss(ctx, &h, all, NUM_IMAGES, &buf, NULL, &first, &first_iou) != 0) return 1;
    const double first_det = detection_iou(ctx, all, NUM_IMAGES, &buf);
    if (first_det < 0) return 1;
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
    const double last_det = detection_iou(ctx, all, NUM_IMAGES, &buf);
    const double last_ap = validate(ctx, &h, held_out, NUM_HELD_OUT, &buf, &last_dets);
    if (last_det < 0 || last_ap < 0) return 1;
    print_row("eval", steps, &last, last_iou);
    yoloxloss_destroy(ctx);

    const double fall = (double)first.total / (double)last.total;
    printf("loss fell %.1fx (need >= %.1fx)\n", fall, LOSS_FALL_FACTOR);
    printf("mean IoU of the matched predictions %.3f -> %.3f (need >= %.2f)\n", first_iou, last_iou,
           MIN_MEAN_IOU);
    printf("mean IoU of each gt's highest-scoring box %.3f -> %.3f (need >= %.2f)\n", first_det, last_det,
           MIN_DETECTION_IOU);
    printf("held-out images: AP50 %.3f (%d detections) -> %.3f (%d detections) (need >= %.2f and a rise)\n",
           first_ap, first_dets, last_ap, last_dets, MIN_AP50);
    for (int l = 0; l < LEVELS; l++) free(buf.out[l]), free(buf.grad[l]);
    free(buf.matched);
    free(buf.pred_iou);
    free(buf.boxes);
    free(buf.scores);
    free(buf.detections);
    for (int n = 0; n < NUM_IMAGES + NUM_HELD_OUT; n++) free_image(&images[n]);
    return fall >= LOSS_FALL_FACTOR && last_iou >= MIN_MEAN_IOU && last_det >= MIN_DETECTION_IOU &&
                   last_ap >= MIN_AP50 && last_ap > first_ap
               ? 0
               : 1;
}
