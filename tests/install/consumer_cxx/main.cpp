// Links a C++ program against an installed yoloxloss: the header's extern
// "C" block, the library and its OpenMP/SLEEF dependencies must all arrive
// through the package files of a project that never enabled C. One forward
// and backward over a tiny one-level head, its buffers in std::vector.
#include <cstdio>
#include <memory>
#include <vector>

#include <yoloxloss.h>

namespace {

struct context_deleter {
    void operator()(yoloxloss_context *ctx) const { yoloxloss_destroy(ctx); }
};
using context_ptr = std::unique_ptr<yoloxloss_context, context_deleter>;

}  // namespace

int main() {
    constexpr int classes = 2, height = 4, width = 4;
    if (yoloxloss_version_number() != YOLOXLOSS_VERSION_NUMBER) {
        std::fprintf(stderr, "header %d, library %d\n", YOLOXLOSS_VERSION_NUMBER, yoloxloss_version_number());
        return 1;
    }
    static const float strides[1] = {8};
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = classes;
    cfg.num_levels = 1;
    cfg.strides = strides;
    yoloxloss_context *raw = nullptr;
    if (yoloxloss_create(&cfg, &raw) != YOLOXLOSS_OK) return 1;
    context_ptr ctx(raw);

    // Split layout: reg [1, 4, H, W], obj [1, 1, H, W], cls [1, C, H, W].
    const std::size_t cells = height * width;
    std::vector<float> reg(4 * cells, 0.0f), obj(cells, 0.0f), cls(classes * cells, 0.0f);
    std::vector<float> g_reg(reg.size()), g_obj(obj.size()), g_cls(cls.size());
    yoloxloss_level level{};
    level.height = height;
    level.width = width;
    level.reg = reg.data();
    level.obj = obj.data();
    level.cls = cls.data();
    const int32_t num_gt[1] = {1}, gt_classes[1] = {1};
    const float gt_boxes[4] = {12, 12, 8, 8};
    yoloxloss_batch batch{};
    batch.num_images = 1;
    batch.levels = &level;
    batch.num_gt = num_gt;
    batch.gt_classes = gt_classes;
    batch.gt_boxes = gt_boxes;

    yoloxloss_losses losses{};
    yoloxloss_status st = yoloxloss_forward(ctx.get(), &batch, &losses);
    yoloxloss_level_grad grad{};
    grad.reg = g_reg.data();
    grad.obj = g_obj.data();
    grad.cls = g_cls.data();
    if (st == YOLOXLOSS_OK) st = yoloxloss_backward(ctx.get(), &grad, nullptr, 0);
    if (st != YOLOXLOSS_OK) {
        std::fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx.get()));
        return 1;
    }
    // The one gt must get foreground anchors, and every objectness logit a gradient.
    bool all_obj_grads = true;
    for (float g : g_obj) all_obj_grads = all_obj_grads && g != 0.0f;
    std::printf("yoloxloss %s from C++: total %.4f num_fg %lld\n", yoloxloss_version_string(),
                static_cast<double>(losses.total), static_cast<long long>(losses.num_fg));
    return losses.num_fg >= 1 && losses.total > 0 && all_obj_grads ? 0 : 1;
}
