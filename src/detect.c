/* yoloxloss_detect: decode, score threshold and NMS of every image, as
 * YOLOX's postprocess, into the caller's detections. Two passes over work
 * items: runs of anchors collect the candidates that pass the threshold
 * (each run into its own slots), then each image gathers its runs' in
 * anchor order, ranks and suppresses them (nms.c) and writes its
 * detections. */
#include <string.h>

#include "context.h"
#include "decode.h"
#include "detect.h"
#include "nms.h"
#include "threads.h"
#include "validate.h"

void yl_detect_buffers(yl_detect_work *w, yl_buffer *out[YL_DETECT_BUFFERS]) {
    yl_buffer *all[YL_DETECT_BUFFERS] = {&w->cand, &w->keys, &w->tmp, &w->order, &w->suppressed, &w->class_end,
                                         &w->run_count};
    memcpy(out, all, sizeof all);
}

void yoloxloss_detect_params_defaults(yoloxloss_detect_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->score_threshold = 0.7f;
    params->nms_threshold = 0.45;
    params->class_agnostic = 0;
    params->max_detections = 100;
}

/* Anchors a run decodes at a time into the stack. */
#define TILE 256

typedef struct {
    const yoloxloss_context *ctx;
    const yoloxloss_level *levels;
    const yoloxloss_detect_params *params;
    size_t per_image, anchors;
    yl_candidate *cand;
    size_t *run_count;
    yl_nms_work work; /* of image 0; image b's start b * anchors (class_end b * (C + 1)) later */
    yoloxloss_detection *detections;
    int32_t *counts, *found;
} detect_job;

/* Pass 1: one run's anchors whose obj * cls_conf >= the threshold, as
 * candidates in the run's own slots (from its first anchor on). */
static void collect_run(void *arg, size_t item, int thread) {
    (void)thread;
    const detect_job *j = arg;
    yl_run r;
    const yl_decode_src src = yl_run_src(&j->ctx->cfg, j->levels, j->per_image, item, &r);
    const float thr = j->params->score_threshold;
    float boxes[4 * TILE], obj[TILE], conf[TILE];
    int32_t cls[TILE];
    /* obj * cls_conf <= obj: an anchor whose obj is below the threshold
     * fails it whatever its classes, so the kernel need not read them. */
    const yl_decode_dst dst = {boxes, NULL, obj, conf, cls, thr};
    yl_candidate *out = j->cand + (size_t)r.image * j->anchors + r.anchor;
    size_t count = 0;
    for (size_t t0 = 0; t0 < r.n; t0 += TILE) {
        const size_t m = r.n - t0 < TILE ? r.n - t0 : TILE;
        j->ctx->kernels->decode_anchors(&src, r.q0 + t0, m, &dst, j->levels[r.level].dtype);
        for (size_t a = 0; a < m; a++) {
            const float score = obj[a] * conf[a];
            if (!(score >= thr)) continue; /* YOLOX's conf_mask; NaN fails it */
            const float *b = boxes + 4 * a;
            yl_candidate *c = &out[count++];
            c->x1 = b[0] - b[2] / 2.0f;
            c->y1 = b[1] - b[3] / 2.0f;
            c->x2 = b[0] + b[2] / 2.0f;
            c->y2 = b[1] + b[3] / 2.0f;
            c->area = (c->x2 - c->x1) * (c->y2 - c->y1);
            c->obj = obj[a];
            c->cls_conf = conf[a];
            c->score = score;
            c->cls = cls[a];
        }
    }
    j->run_count[item] = count;
}

/* Pass 2: image b's candidates gathered in anchor order, ranked and
 * suppressed, and its detections written. */
static void select_image(void *arg, size_t b, int thread) {
    (void)thread;
    const detect_job *j = arg;
    const size_t A = j->anchors, C1 = (size_t)j->ctx->cfg.num_classes + 1;
    yl_candidate *cand = j->cand + b * A;
    size_t n = 0;
    for (size_t k = 0; k < j->per_image; k++) {
        const size_t item = b * j->per_image + k, count = j->run_count[item];
        const yl_run r = yl_run_at(j->levels, j->ctx->cfg.num_levels, j->per_image, item);
        /* r.anchor >= n: each run found at most its own anchors */
        if (count && r.anchor != n) memmove(cand + n, cand + r.anchor, count * sizeof *cand);
        n += count;
    }
    const yl_nms_work w = {j->work.keys + b * A, j->work.tmp + b * A, j->work.order + b * A,
                           j->work.suppressed + b * A, j->work.class_end + b * C1};
    const yoloxloss_detect_params *p = j->params;
    yl_nms(cand, n, j->ctx->cfg.num_classes, p->nms_threshold, p->class_agnostic, &w);
    yoloxloss_detection *out = j->detections + b * (size_t)p->max_detections;
    int32_t written = 0, kept = 0;
    for (size_t r = 0; r < n; r++) {
        const uint32_t i = yl_nms_at(&w, r);
        if (w.suppressed[i]) continue;
        kept++;
        if (written == p->max_detections) continue;
        const yl_candidate *c = &cand[i];
        const yoloxloss_detection d = {c->x1, c->y1, c->x2, c->y2, c->obj, c->cls_conf, c->cls, c->score};
        out[written++] = d;
    }
    j->counts[b] = written;
    if (j->found) j->found[b] = kept;
}

/* count elements of `size` bytes into b; 0 when the bytes overflow
 * (*overflow set) or allocation fails. */
static int reserve(yl_buffer *b, size_t count, size_t size, int *overflow) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        *overflow = 1;
        return 0;
    }
    return yl_buffer_reserve(b, bytes) != NULL;
}

static yoloxloss_status detect(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels,
                               const yoloxloss_detect_params *params, yoloxloss_detection *detections,
                               int32_t *counts, int32_t *found) {
    size_t anchors = 0;
    yoloxloss_status st = yl_validate_levels(ctx, num_images, levels, &anchors);
    if (st == YOLOXLOSS_OK) st = yl_validate_detect(ctx, num_images, params, detections, counts, found);
    if (st != YOLOXLOSS_OK) return st;

    const size_t B = (size_t)num_images, per_image = yl_runs_per_image(levels, ctx->cfg.num_levels);
    yl_detect_work *w = &ctx->detect;
    size_t slots, class_slots;
    int overflow = __builtin_mul_overflow(B, anchors, &slots) ||
                   __builtin_mul_overflow(B, (size_t)ctx->cfg.num_classes + 1, &class_slots);
    if (!overflow && !(reserve(&w->cand, slots, sizeof(yl_candidate), &overflow) &&
                       reserve(&w->keys, slots, sizeof(uint64_t), &overflow) &&
                       reserve(&w->tmp, slots, sizeof(uint64_t), &overflow) &&
                       reserve(&w->order, slots, sizeof(uint32_t), &overflow) &&
                       reserve(&w->suppressed, slots, sizeof(uint8_t), &overflow) &&
                       reserve(&w->class_end, class_slots, sizeof(int32_t), &overflow) &&
                       reserve(&w->run_count, B * per_image, sizeof(size_t), &overflow))) {
        if (!overflow)
            return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY,
                           "could not allocate detect's workspace for %d images x %zu anchors", num_images,
                           anchors);
    }
    if (overflow)
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                       "detect's workspace for %d images x %zu anchors (%zu bytes per anchor) does not fit in "
                       "size_t", num_images, anchors, sizeof(yl_candidate) + 2 * sizeof(uint64_t) + 5);

    const detect_job job = {ctx, levels, params, per_image, anchors, w->cand.ptr, w->run_count.ptr,
                            {w->keys.ptr, w->tmp.ptr, w->order.ptr, w->suppressed.ptr, w->class_end.ptr},
                            detections, counts, found};
    const yl_thread_plan plan =
        yl_plan_threads(yl_policy_of(ctx), &ctx->detect_threads, B * per_image,
                        yl_inference_work_ns(levels, ctx->cfg.num_levels, num_images, ctx->cfg.num_classes, 0, 0));
    yl_parallel_for(plan.threads, B * per_image, collect_run, (void *)&job);
    yl_parallel_for(plan.threads, B, select_image, (void *)&job);
    yl_plan_done(&ctx->detect_threads, &plan);
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_detect(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels,
                                  const yoloxloss_detect_params *params, yoloxloss_detection *detections,
                                  int32_t *counts, int32_t *found) {
    const yoloxloss_status st = yl_enter(ctx, "detect");
    return st != YOLOXLOSS_OK ? st
                              : yl_leave(ctx, detect(ctx, num_images, levels, params, detections, counts, found));
}
