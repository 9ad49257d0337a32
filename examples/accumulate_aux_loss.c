/* Accumulate mode: several losses on the SAME head outputs, their gradients
 * summed into one set of gradient buffers.
 *
 * The objective is, on one batch of split (reg / obj / cls) head outputs,
 *
 *     L = total_main + AUX_WEIGHT * total_aux + penalty
 *
 *   total_main  YOLOX's loss with the default config;
 *   total_aux   a second YOLOX loss on the same outputs with another config
 *               (GIoU box loss, the legacy 0.1-0.3 assigner, L1 on), the kind
 *               of auxiliary term an ablation adds; a second context holds it;
 *   penalty     OBJ_L2 / 2 * mean(obj^2), an L2 penalty on the objectness
 *               logits that the trainer computes itself.
 *
 * The trainer's way to get dL/d outputs: the first backward overwrites the
 * buffers (accumulate = 0, no memset needed), the second adds to them
 * (accumulate = 1, its weight passed as upstream.total), and the penalty's
 * gradient is added by hand. The program then computes the three gradients
 * again, each into buffers of its own, and checks that the accumulated
 * buffers hold exactly their sum, element by element. Exactly, because
 * accumulate mode adds each element's gradient to what is there with one
 * float32 addition (and skips zeros, where x + 0 == x), the value added being
 * the one accumulate = 0 writes; the check adds the same values in the same
 * order. Exits 1 with a message when an element differs.
 *
 * Accumulate mode is for this: other gradients of the same outputs. Summing
 * the output gradients of different micro-batches is not; see
 * train_micro_batches.c.
 *
 * Usage: accumulate_aux_loss
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <yoloxloss.h>

#include "tiny_head.h"

enum { BATCH = 4 };

#define AUX_WEIGHT 0.5f /* weight of the auxiliary YOLOX loss in L */
#define OBJ_L2 0.1f     /* strength of the L2 penalty on the objectness logits */

/* One level's split buffers [BATCH, 4 | 1 | C, H, W], for outputs or gradients. */
static int alloc_planes(head_planes *p, size_t cells) {
    *p = (head_planes){.reg = malloc(sizeof(float) * BATCH * 4 * cells),
                       .obj = malloc(sizeof(float) * BATCH * cells),
                       .cls = malloc(sizeof(float) * BATCH * NUM_CLASSES * cells)};
    return p->reg && p->obj && p->cls ? 0 : -1;
}

static void free_planes(head_planes *p) {
    free(p->reg);
    free(p->obj);
    free(p->cls);
}

static yoloxloss_level_grad as_grad(const head_planes *p) {
    return (yoloxloss_level_grad){.reg = p->reg, .obj = p->obj, .cls = p->cls};
}

static int report(yoloxloss_context *ctx, yoloxloss_status st, const char *what) {
    if (st == YOLOXLOSS_OK) return 0;
    fprintf(stderr, "%s: %s: %s\n", what, yoloxloss_status_string(st), yoloxloss_last_error(ctx));
    return -1;
}

/* Compares the accumulated gradient of every element of one level with the
 * sum of the separate ones (printing the first few that differ) and counts
 * where the two YOLOX losses both have a non-zero gradient. Returns the
 * number of elements that differ. */
static size_t compare_level(int level, const head_planes *acc, const head_planes *g_main,
                            const head_planes *g_aux, const float *g_pen, size_t cells, size_t *overlap) {
    size_t bad = 0;
    for (int b = 0; b < BATCH; b++)
        for (int c = 0; c < OUT; c++) {
            const float *a = head_channel(acc, b, c, cells), *m = head_channel(g_main, b, c, cells),
                        *x = head_channel(g_aux, b, c, cells);
            for (size_t p = 0; p < cells; p++) {
                const float pen = c == 4 ? g_pen[(size_t)b * cells + p] : 0.0f;
                const float want = (m[p] + x[p]) + pen;
                if (m[p] != 0.0f && x[p] != 0.0f) (*overlap)++;
                if (a[p] == want) continue;
                if (bad++ < 5)
                    fprintf(stderr,
                            "level %d image %d channel %d cell %zu: accumulated %.9g, main %.9g + aux %.9g "
                            "+ penalty %.9g = %.9g\n",
                            level, b, c, p, (double)a[p], (double)m[p], (double)x[p], (double)pen,
                            (double)want);
            }
        }
    return bad;
}

int main(void) {
    uint32_t rng = 2024u;
    float mix[FEAT * SEMANTIC];
    make_mixing(mix, &rng);
    image images[BATCH] = {0};
    image *batch[BATCH];
    int ok = 1;
    for (int b = 0; b < BATCH; b++) {
        batch[b] = &images[b];
        if (make_image(&images[b], mix, &rng) != 0) ok = 0;
    }
    head h;
    head_init(&h, &rng);

    /* The head outputs, and four sets of gradient buffers: accumulated, and
     * each term on its own. */
    head_planes out[LEVELS] = {0}, acc[LEVELS] = {0}, g_main[LEVELS] = {0}, g_aux[LEVELS] = {0};
    float *g_pen[LEVELS] = {0};
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        const size_t cells = (size_t)grid_size(l) * (size_t)grid_size(l);
        if (alloc_planes(&out[l], cells) || alloc_planes(&acc[l], cells) || alloc_planes(&g_main[l], cells) ||
            alloc_planes(&g_aux[l], cells) || !(g_pen[l] = malloc(sizeof(float) * BATCH * cells)))
            ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int32_t num_gt[BATCH], classes[BATCH * MAX_GT];
    float boxes[BATCH * MAX_GT * 4];
    int total_gt = 0;
    for (int b = 0; b < BATCH; b++) {
        num_gt[b] = images[b].num_gt;
        for (int g = 0; g < images[b].num_gt; g++, total_gt++) {
            classes[total_gt] = images[b].classes[g];
            for (int k = 0; k < 4; k++) boxes[4 * total_gt + k] = images[b].boxes[4 * g + k];
        }
    }
    for (int l = 0; l < LEVELS; l++) {
        head_forward(&h, batch, BATCH, l, &out[l]);
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l),
                                      .reg = out[l].reg, .obj = out[l].obj, .cls = out[l].cls};
    }
    const yoloxloss_batch in = {.num_images = BATCH, .levels = levels, .num_gt = num_gt,
                                .gt_classes = classes, .gt_boxes = boxes};

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = NUM_CLASSES;
    cfg.num_levels = LEVELS;
    cfg.strides = kStrides;
    yoloxloss_context *main_ctx = NULL, *aux_ctx = NULL;
    if (yoloxloss_create(&cfg, &main_ctx) != YOLOXLOSS_OK) return 1;
    cfg.assigner = YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    cfg.iou_loss = YOLOXLOSS_IOU_LOSS_GIOU;
    cfg.use_l1 = 1;
    if (yoloxloss_create(&cfg, &aux_ctx) != YOLOXLOSS_OK) return 1;

    /* Both forwards read the same outputs, which stay unchanged until both
     * backwards have run. */
    yoloxloss_losses main_losses, aux_losses;
    if (report(main_ctx, yoloxloss_forward(main_ctx, &in, &main_losses), "main forward") ||
        report(aux_ctx, yoloxloss_forward(aux_ctx, &in, &aux_losses), "aux forward"))
        return 1;

    /* The penalty and its gradient OBJ_L2 * x / count, in buffers of their own. */
    size_t obj_count = 0;
    for (int l = 0; l < LEVELS; l++) obj_count += (size_t)BATCH * (size_t)grid_size(l) * (size_t)grid_size(l);
    const float pen_scale = OBJ_L2 / (float)obj_count;
    double penalty = 0.0;
    for (int l = 0; l < LEVELS; l++)
        for (size_t k = 0; k < (size_t)BATCH * (size_t)grid_size(l) * (size_t)grid_size(l); k++) {
            const float x = out[l].obj[k];
            penalty += 0.5 * (double)pen_scale * (double)x * (double)x;
            g_pen[l][k] = pen_scale * x;
        }

    /* The trainer's way: one set of buffers, every term added into it. */
    yoloxloss_level_grad grads[LEVELS];
    for (int l = 0; l < LEVELS; l++) grads[l] = as_grad(&acc[l]);
    const yoloxloss_upstream aux_up = {.total = AUX_WEIGHT};
    if (report(main_ctx, yoloxloss_backward(main_ctx, grads, NULL, /*accumulate=*/0), "main backward") ||
        report(aux_ctx, yoloxloss_backward(aux_ctx, grads, &aux_up, /*accumulate=*/1), "aux backward"))
        return 1;
    for (int l = 0; l < LEVELS; l++)
        for (size_t k = 0; k < (size_t)BATCH * (size_t)grid_size(l) * (size_t)grid_size(l); k++)
            acc[l].obj[k] += g_pen[l][k];

    /* The check's way: each term alone, overwriting buffers of its own. */
    for (int l = 0; l < LEVELS; l++) grads[l] = as_grad(&g_main[l]);
    if (report(main_ctx, yoloxloss_backward(main_ctx, grads, NULL, 0), "main backward")) return 1;
    for (int l = 0; l < LEVELS; l++) grads[l] = as_grad(&g_aux[l]);
    if (report(aux_ctx, yoloxloss_backward(aux_ctx, grads, &aux_up, 0), "aux backward")) return 1;

    size_t bad = 0, overlap = 0, elements = 0;
    for (int l = 0; l < LEVELS; l++) {
        const size_t cells = (size_t)grid_size(l) * (size_t)grid_size(l);
        bad += compare_level(l, &acc[l], &g_main[l], &g_aux[l], g_pen[l], cells, &overlap);
        elements += (size_t)BATCH * OUT * cells;
    }
    printf("L = main %.4f + %.2f * aux %.4f + penalty %.6f = %.4f\n", (double)main_losses.total,
           (double)AUX_WEIGHT, (double)aux_losses.total, penalty,
           (double)main_losses.total + (double)AUX_WEIGHT * (double)aux_losses.total + penalty);
    printf("num_fg: main %lld, aux %lld; elements where both YOLOX losses have a gradient: %zu\n",
           (long long)main_losses.num_fg, (long long)aux_losses.num_fg, overlap);
    printf("accumulated gradient == main + aux + penalty: %zu of %zu elements differ\n", bad, elements);

    for (int l = 0; l < LEVELS; l++) {
        free_planes(&out[l]);
        free_planes(&acc[l]);
        free_planes(&g_main[l]);
        free_planes(&g_aux[l]);
        free(g_pen[l]);
    }
    for (int b = 0; b < BATCH; b++) free_image(&images[b]);
    yoloxloss_destroy(main_ctx);
    yoloxloss_destroy(aux_ctx);
    /* Where the two losses never both had a gradient, adding and overwriting
     * could not be told apart: the check would prove nothing. */
    if (overlap == 0) {
        fprintf(stderr, "no element has a gradient from both YOLOX losses: the check is empty\n");
        return 1;
    }
    if (bad) {
        fprintf(stderr, "accumulate mode did not add the gradients\n");
        return 1;
    }
    return 0;
}
