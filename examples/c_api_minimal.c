/* The README's C example as a program: one forward and one backward over
 * fused head outputs of a 640x640 input, 20 classes, two images. Built and
 * run by the test suite so the README cannot drift from the API. */
#include <stdio.h>
#include <stdlib.h>

#include <yoloxloss.h>

int main(void) {
    enum { B = 2, C = 20 };
    const int grid[3] = {80, 40, 20};
    float *outputs[3], *grads[3];
    for (int l = 0; l < 3; l++) {
        size_t n = (size_t)B * (5 + C) * grid[l] * grid[l];
        outputs[l] = malloc(n * sizeof(float));
        grads[l] = malloc(n * sizeof(float));
        if (!outputs[l] || !grads[l]) return 1;
        for (size_t i = 0; i < n; i++) outputs[l][i] = -4.6f + 0.001f * (float)(i % 97);
    }
    /* image 0 has two boxes, image 1 none */
    const int32_t num_gt[B] = {2, 0};
    const int32_t gt_classes[2] = {3, 17};
    const float gt_boxes[2 * 4] = {320, 320, 100, 80, 100, 500, 40, 60};

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg); /* 80 classes, strides 8/16/32, current SimOTA */
    cfg.num_classes = C;
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) return 1;

    yoloxloss_level levels[3] = {
        {.height = 80, .width = 80, .fused = outputs[0]},
        {.height = 40, .width = 40, .fused = outputs[1]},
        {.height = 20, .width = 20, .fused = outputs[2]},
    };
    yoloxloss_batch batch = {.num_images = B, .levels = levels, .num_gt = num_gt,
                             .gt_classes = gt_classes, .gt_boxes = gt_boxes};
    yoloxloss_losses losses;
    yoloxloss_status st = yoloxloss_forward(ctx, &batch, &losses);
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        return 1;
    }
    yoloxloss_level_grad g[3] = {{.fused = grads[0]}, {.fused = grads[1]}, {.fused = grads[2]}};
    st = yoloxloss_backward(ctx, g, NULL, /*accumulate=*/0);
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        return 1;
    }
    printf("total %.6f  iou %.6f  obj %.6f  cls %.6f  num_fg %lld  num_gt %lld\n", (double)losses.total,
           (double)losses.iou, (double)losses.obj, (double)losses.cls, (long long)losses.num_fg,
           (long long)losses.num_gt);

    /* A bad label is refused with a message naming it, and nothing is written. */
    const int32_t bad_classes[2] = {3, 25};
    batch.gt_classes = bad_classes;
    st = yoloxloss_forward(ctx, &batch, &losses);
    printf("bad class id -> %s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
    int ok = st == YOLOXLOSS_ERR_INVALID_LABEL && losses.num_fg >= 2;

    yoloxloss_destroy(ctx);
    for (int l = 0; l < 3; l++) {
        free(outputs[l]);
        free(grads[l]);
    }
    return ok ? 0 : 1;
}
