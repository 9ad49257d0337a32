/* yoloxloss_detect's workspace: the per-image candidate lists and the
 * ranking and suppression arrays of nms.h, in the context's growable
 * buffers (no allocation once the batch shape settles). */
#ifndef YL_DETECT_H
#define YL_DETECT_H

#include "buffer.h"

typedef struct {
    yl_buffer cand;        /* yl_candidate [B, A]: image b's from b * A, compacted */
    yl_buffer keys, tmp;   /* uint64 [B, A] */
    yl_buffer order;       /* uint32 [B, A] */
    yl_buffer suppressed;  /* uint8 [B, A] */
    yl_buffer class_end;   /* int32 [B, C + 1] */
    yl_buffer run_count;   /* size_t [B, runs per image]: candidates each run found */
} yl_detect_work;

enum { YL_DETECT_BUFFERS = 7 };

/* The workspace's buffers, for allocation and freeing in one loop. */
void yl_detect_buffers(yl_detect_work *w, yl_buffer *out[YL_DETECT_BUFFERS]);

#endif
