/* The inference decode (yoloxloss_decode) and the runs of anchors into
 * which decode and detect split a batch's work: image by image, level by
 * level, YL_RUN_ANCHORS anchors at a time, in YOLOX's anchor order. */
#ifndef YL_DECODE_H
#define YL_DECODE_H

#include <stddef.h>

#include "simd/kernels.h"
#include "yoloxloss.h"

/* Anchors of one work item: enough to amortise a kernel call and a
 * thread's taking of an item, few enough that one 640 x 640 image (8400
 * anchors) gives six items to share among threads. */
#define YL_RUN_ANCHORS 2048

typedef struct {
    int image, level;
    size_t q0, n;  /* positions q0 .. q0 + n - 1 (i * W + j) of the level's planes */
    size_t anchor; /* index of position q0's anchor within its image */
} yl_run;

/* Work items per image of the levels (config.num_levels of them). */
size_t yl_runs_per_image(const yoloxloss_level *levels, int num_levels);

/* Item `item` of a batch: image item / per_image, then its levels' runs in order. */
yl_run yl_run_at(const yoloxloss_level *levels, int num_levels, size_t per_image, size_t item);

/* What the decode_anchors kernel reads for level `level` of image `image`. */
yl_decode_src yl_decode_src_of(const yoloxloss_config *cfg, const yoloxloss_level *levels, int level, int image);

/* Work item `item` (yl_run_at) into *run, and what the kernel reads for it. */
yl_decode_src yl_run_src(const yoloxloss_config *cfg, const yoloxloss_level *levels, size_t per_image, size_t item,
                         yl_run *run);

#endif
