/* Padded labels read and converted (labels.h). */
#include "labels.h"

yl_padded_reader yl_padded_reader_of(const yoloxloss_batch *batch, const float *strides) {
    const yoloxloss_padded_labels *p = batch->padded;
    yl_padded_reader rd;
    rd.p = p;
    rd.row_floats = p->row_floats == 0 ? 5 : (size_t)p->row_floats;
    rd.class_at = p->order == YOLOXLOSS_LABELS_CLASS_FIRST ? 0 : 4;
    rd.box_at = p->order == YOLOXLOSS_LABELS_CLASS_FIRST ? 1 : 0;
    rd.scale_x = rd.scale_y = 1.0f;
    if (p->normalized) {
        /* YOLOX's and darknet's image size: a 640 px input at stride 8 gives
         * an 80-cell level 0, and 80 * 8 = 640. */
        rd.scale_x = p->image_width > 0.0f ? p->image_width : (float)batch->levels[0].width * strides[0];
        rd.scale_y = p->image_height > 0.0f ? p->image_height : (float)batch->levels[0].height * strides[0];
    }
    return rd;
}

int32_t yl_padded_end(const yl_padded_reader *rd, int image) {
    int32_t r = 0;
    while (r < rd->p->max_rows && !yl_padded_is_padding(rd, yl_padded_row(rd, image, r))) r++;
    return r;
}

void yl_padded_flatten(const yl_padded_reader *rd, int num_images, const int64_t *gt_offset, int32_t *classes,
                       float *boxes) {
    for (int b = 0; b < num_images; b++) {
        const int32_t n = (int32_t)(gt_offset[b + 1] - gt_offset[b]);
        for (int32_t r = 0; r < n; r++) {
            const size_t t = (size_t)gt_offset[b] + (size_t)r;
            const float *row = yl_padded_row(rd, b, r);
            classes[t] = (int32_t)row[rd->class_at];
            yl_padded_box(rd, row, boxes + 4 * t);
        }
    }
}
