/* Ground truth as frameworks hold it (yoloxloss_padded_labels): which rows
 * of each image's padded array are used, a row's class and its box in
 * pixels, and their conversion into a step's flat copies. The checks
 * (validate.c) and the step (layout.c) both read rows through these, so
 * the values checked are bit for bit the values used. */
#ifndef YL_LABELS_H
#define YL_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "yoloxloss.h"

/* A batch's padded labels with the choices of its fields resolved. Only
 * for fields that passed validation (row_floats 0 or >= 5, a known order,
 * a finite, non-negative image size, a level 0 with a grid). */
typedef struct {
    const yoloxloss_padded_labels *p;
    size_t row_floats; /* 5 when the field is 0 */
    size_t class_at;   /* index of the class within a row */
    size_t box_at;     /* index of cx; cy, w, h follow */
    float scale_x;     /* 1, or the image width when normalized */
    float scale_y;
} yl_padded_reader;

/* strides: the config's; level 0's grid times strides[0] is the image size
 * where the struct leaves it 0. */
yl_padded_reader yl_padded_reader_of(const yoloxloss_batch *batch, const float *strides);

/* Row r of image b. */
static inline const float *yl_padded_row(const yl_padded_reader *rd, int image, int row) {
    const size_t at = (size_t)image * (size_t)rd->p->max_rows + (size_t)row;
    return rd->p->rows + at * rd->row_floats;
}

/* Whether the row's four box values are all zero (-0 included): padding. */
static inline int yl_padded_is_padding(const yl_padded_reader *rd, const float *row) {
    const float *box = row + rd->box_at;
    return box[0] == 0.0f && box[1] == 0.0f && box[2] == 0.0f && box[3] == 0.0f;
}

/* The first padding row of image b, or max_rows if it has none. */
int32_t yl_padded_end(const yl_padded_reader *rd, int image);

/* The rows image b uses: counts[b], or yl_padded_end without counts. */
static inline int32_t yl_padded_count(const yl_padded_reader *rd, int image) {
    return rd->p->counts ? rd->p->counts[image] : yl_padded_end(rd, image);
}

/* The box of a row in pixels: cx, cy, w, h, scaled when normalized. */
static inline void yl_padded_box(const yl_padded_reader *rd, const float *row, float out[4]) {
    const float *box = row + rd->box_at;
    out[0] = box[0] * rd->scale_x;
    out[1] = box[1] * rd->scale_y;
    out[2] = box[2] * rd->scale_x;
    out[3] = box[3] * rd->scale_y;
}

/* The used rows of every image, image by image (image b's at gt_offset[b],
 * int64 [B + 1]), as flat classes [T] and boxes [T, 4]. The class floats
 * must have been checked to be integers in [0, C). */
void yl_padded_flatten(const yl_padded_reader *rd, int num_images, const int64_t *gt_offset, int32_t *classes,
                       float *boxes);

#endif
