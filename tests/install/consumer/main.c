/* Links against an installed yoloxloss and makes one forward and backward
 * over a tiny one-level head: proves the header, the library and its
 * OpenMP/SLEEF dependencies all arrive through the package files. */
#include <stdio.h>

#include <yoloxloss.h>

int main(void) {
    enum { C = 2, H = 4, W = 4, N = (5 + C) * H * W };
    if (yoloxloss_version_number() != YOLOXLOSS_VERSION_NUMBER) {
        fprintf(stderr, "header %d, library %d\n", YOLOXLOSS_VERSION_NUMBER, yoloxloss_version_number());
        return 1;
    }
    static const float strides[1] = {8};
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = C;
    cfg.num_levels = 1;
    cfg.strides = strides;
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) return 1;

    float out[N] = {0}, grad[N];
    const yoloxloss_level level = {.height = H, .width = W, .fused = out};
    const int32_t num_gt[1] = {1}, gt_classes[1] = {1};
    const float gt_boxes[4] = {12, 12, 8, 8};
    const yoloxloss_batch batch = {.num_images = 1, .levels = &level, .num_gt = num_gt,
                                   .gt_classes = gt_classes, .gt_boxes = gt_boxes};
    yoloxloss_losses losses;
    yoloxloss_status st = yoloxloss_forward(ctx, &batch, &losses);
    const yoloxloss_level_grad g = {.fused = grad};
    if (st == YOLOXLOSS_OK) st = yoloxloss_backward(ctx, &g, NULL, 0);
    if (st != YOLOXLOSS_OK) {
        fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
        yoloxloss_destroy(ctx);
        return 1;
    }
    yoloxloss_destroy(ctx);
    printf("yoloxloss %s: total %.4f num_fg %lld\n", yoloxloss_version_string(), (double)losses.total,
           (long long)losses.num_fg);
    return losses.num_fg >= 1 && losses.total > 0 ? 0 : 1;
}
