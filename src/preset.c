/* Named configurations: the defaults with the fields that make the library
 * reproduce another codebase's YOLOX loss (docs/differences.md). */
#include <string.h>

#include "validate.h"

/* MMDetection 3.x, YOLOXHead with its default losses and SimOTAAssigner:
 * the legacy candidate rule (box or centre box, radius 2.5), its cost
 * constants (EPS = 1e-7 in -log(IoU + EPS), INF = 1e5) and its float32
 * arithmetic. Its box loss is IoULoss(mode='square', eps=1e-16) with weight
 * 5, its objectness, class and L1 weights 1: the defaults' own. */
static void preset_mmdet(yoloxloss_config *c) {
    c->assigner = YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    c->center_radius = 2.5f;
    c->candidate_topk = 10;
    c->iou_cost_weight = 3.0f;
    c->cls_cost_weight = 1.0f;
    c->cost_iou_eps = 1e-7f;
    c->cost_penalty = 100000.0f;
    c->arithmetic = YOLOXLOSS_ARITHMETIC_MMDET;
    c->iou_loss = YOLOXLOSS_IOU_LOSS_IOU;
    c->reg_weight = 5.0f;
    c->obj_weight = 1.0f;
    c->cls_weight = 1.0f;
    c->l1_weight = 1.0f;
}

static void preset_yolox(yoloxloss_config *c) { (void)c; }

static const struct {
    const char *name;
    void (*apply)(yoloxloss_config *c);
} PRESETS[] = {{"yolox", preset_yolox}, {"mmdet", preset_mmdet}};

yoloxloss_status yoloxloss_config_preset(yoloxloss_config *config, const char *name) {
    yl_clear_error(NULL);
    if (!config) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "config is NULL");
    if (!name) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "preset name is NULL");
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (strcmp(name, PRESETS[i].name) == 0) {
            yoloxloss_config_defaults(config);
            PRESETS[i].apply(config);
            return YOLOXLOSS_OK;
        }
    return yl_fail(NULL, YOLOXLOSS_ERR_INVALID_ARGUMENT, "preset \"%.64s\" is unknown; the presets are \"yolox\" and "
                   "\"mmdet\"", name);
}
