/* The toy detector through the library (tiny_loss.h). */
#include "tiny_loss.h"

#include <stdio.h>

int make_dataset(image *images, image **all, int num, uint32_t *rng) {
    float mix[FEAT * SEMANTIC];
    make_mixing(mix, rng);
    for (int n = 0; n < num; n++) {
        all[n] = &images[n];
        if (make_image(&images[n], mix, rng) != 0) return -1;
    }
    return 0;
}

yoloxloss_context *example_context(int num_classes, int num_levels, const float *strides) {
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = num_classes;
    cfg.num_levels = num_levels;
    cfg.strides = strides;
    cfg.num_threads = 1;
    yoloxloss_context *ctx = NULL;
    const yoloxloss_status st = yoloxloss_create(&cfg, &ctx);
    if (st != YOLOXLOSS_OK) fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(NULL));
    return ctx;
}

int report_status(const yoloxloss_context *ctx, yoloxloss_status st) {
    if (st == YOLOXLOSS_OK) return 0;
    fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
    return -1;
}

int tiny_loss_forward(yoloxloss_context *ctx, const head *h, image *const *images, int num,
                      const head_planes out[LEVELS], yoloxloss_losses *losses) {
    flat_labels gt;
    flatten_labels(images, num, &gt);
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        head_forward(h, images, num, l, &out[l]);
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = out[l].fused,
                                      .reg = out[l].reg, .obj = out[l].obj, .cls = out[l].cls};
    }
    const yoloxloss_batch in = {.num_images = num, .levels = levels, .num_gt = gt.num_gt,
                                .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    return report_status(ctx, yoloxloss_forward(ctx, &in, losses));
}

int tiny_loss_backward(yoloxloss_context *ctx, image *const *images, int num, const head_planes grad[LEVELS],
                       float upstream, head *param_grad) {
    yoloxloss_level_grad g[LEVELS];
    for (int l = 0; l < LEVELS; l++)
        g[l] = (yoloxloss_level_grad){.fused = grad[l].fused, .reg = grad[l].reg, .obj = grad[l].obj,
                                      .cls = grad[l].cls};
    const yoloxloss_upstream up = {.total = upstream};
    if (report_status(ctx, yoloxloss_backward(ctx, g, &up, /*accumulate=*/0))) return -1;
    for (int l = 0; l < LEVELS; l++) head_backward(param_grad, images, num, l, &grad[l]);
    return 0;
}
