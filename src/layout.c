/* The views and the step state of layout.h. */
#include <string.h>

#include "labels.h"
#include "layout.h"

yl_level_view yl_input_view(const yoloxloss_level *lv, int num_classes, int image) {
    yl_level_view v;
    memset(&v, 0, sizeof v);
    v.height = lv->height;
    v.width = lv->width;
    v.hw = (size_t)lv->height * (size_t)lv->width;
    yl_plane_offsets o = yl_planes(lv->fused != NULL, image, num_classes, v.hw);
    v.dtype = lv->dtype;
    v.reg = yl_elem_at(lv->fused ? lv->fused : lv->reg, v.dtype, o.reg);
    v.obj = yl_elem_at(lv->fused ? lv->fused : lv->obj, v.dtype, o.obj);
    v.cls = yl_elem_at(lv->fused ? lv->fused : lv->cls, v.dtype, o.cls);
    return v;
}

void yl_step_buffers(yl_step *s, yl_buffer *out[YL_STEP_BUFFERS]) {
    yl_buffer *all[YL_STEP_BUFFERS] = {&s->gt_offset, &s->gt_classes, &s->gt_boxes,
                                       &s->dynamic_k, &s->matched,    &s->pred_iou};
    memcpy(out, all, sizeof all);
}

int yl_step_begin(yl_step *s, const yoloxloss_batch *batch) {
    const int B = batch->num_images;
    int64_t A = 0;
    for (int l = 0; l < s->num_levels; l++) {
        s->levels[l] = batch->levels[l];
        s->level_offset[l] = A;
        A += (int64_t)batch->levels[l].height * batch->levels[l].width;
    }
    const size_t nb = (size_t)B, na = (size_t)A;
    if (!yl_buffer_reserve(&s->gt_offset, (nb + 1) * sizeof(int64_t))) return 0;
    /* Padded labels: each image's used rows found once, here. */
    const yl_padded_reader rd = batch->padded ? yl_padded_reader_of(batch, s->strides) : (yl_padded_reader){0};
    int64_t *gt_offset = s->gt_offset.ptr;
    gt_offset[0] = 0;
    for (int b = 0; b < B; b++)
        gt_offset[b + 1] = gt_offset[b] + (batch->padded ? yl_padded_count(&rd, b) : batch->num_gt[b]);
    const int64_t T = gt_offset[B];
    const size_t nt = (size_t)T;
    if (!yl_buffer_reserve(&s->gt_classes, nt * sizeof(int32_t)) ||
        !yl_buffer_reserve(&s->gt_boxes, nt * 4 * sizeof(float)) ||
        !yl_buffer_reserve(&s->dynamic_k, nt * sizeof(int32_t)) ||
        !yl_buffer_reserve(&s->matched, nb * na * sizeof(int32_t)) ||
        !yl_buffer_reserve(&s->pred_iou, nb * na * sizeof(float)))
        return 0;
    s->num_images = B;
    s->num_anchors = A;
    s->total_gt = T;
    if (T > 0 && batch->padded) {
        yl_padded_flatten(&rd, B, gt_offset, s->gt_classes.ptr, s->gt_boxes.ptr);
    } else if (T > 0) {
        memcpy(s->gt_classes.ptr, batch->gt_classes, nt * sizeof(int32_t));
        memcpy(s->gt_boxes.ptr, batch->gt_boxes, nt * 4 * sizeof(float));
    }
    return 1;
}

yl_image_state yl_image_state_of(const yl_step *s, int image) {
    const size_t at = (size_t)image * (size_t)s->num_anchors;
    const int64_t g0 = ((const int64_t *)s->gt_offset.ptr)[image];
    const int64_t g1 = ((const int64_t *)s->gt_offset.ptr)[image + 1];
    yl_image_state st;
    st.matched = (int32_t *)s->matched.ptr + at;
    st.pred_iou = (float *)s->pred_iou.ptr + at;
    st.n_gt = (int)(g1 - g0);
    st.gt_classes = (const int32_t *)s->gt_classes.ptr + g0;
    st.gt_boxes = (const float *)s->gt_boxes.ptr + 4 * g0;
    st.dynamic_k = (int32_t *)s->dynamic_k.ptr + g0;
    return st;
}

yl_level_view yl_level_view_of(const yl_step *s, int level, int image) {
    yl_level_view v = yl_input_view(&s->levels[level], s->num_classes, image);
    v.stride = s->strides[level];
    v.anchor_offset = s->level_offset[level];
    return v;
}

yl_grad_view yl_grad_view_of(const yl_step *s, const yoloxloss_level_grad *g, int level, int image) {
    const yoloxloss_level *shape = &s->levels[level];
    size_t hw = (size_t)shape->height * (size_t)shape->width;
    yl_plane_offsets o = yl_planes(g->fused != NULL, image, s->num_classes, hw);
    yl_grad_view v;
    v.dtype = shape->dtype;
    v.reg = yl_elem_at_mut(g->fused ? g->fused : g->reg, v.dtype, o.reg);
    v.obj = yl_elem_at_mut(g->fused ? g->fused : g->obj, v.dtype, o.obj);
    v.cls = yl_elem_at_mut(g->fused ? g->fused : g->cls, v.dtype, o.cls);
    return v;
}
