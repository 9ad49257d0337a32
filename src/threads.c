/* The thread count of a call and the parallel loop (threads.h). */
#include <math.h>
#include <omp.h>

#include "threads.h"

/* Single-thread costs on the AVX2 machine of docs/performance.md, in ns:
 * rough on purpose (within 2x is enough to place a threshold), measured
 * with bench/bench_yoloxloss.c --threads 1 on shapes that isolate each. */
#define NS_PER_ANCHOR 1.5         /* objectness BCE and the per-anchor pass of one image */
#define NS_PER_CAND_CLASS 2.5     /* the class part of the matching cost */
#define NS_PER_PAIR 3.0           /* IoU, cost and matching of a gt and a candidate */
#define NS_PER_GRAD_BYTE 0.08     /* writing the dense gradient planes */
#define NS_PER_FG_CLASS 2.0       /* a foreground anchor's class loss or gradient */
#define CANDS_PER_FG 4.0          /* foreground anchors per gt box, roughly dynamic k */

int yl_threads_for(yl_thread_policy p, size_t units, double work_ns) {
    size_t t = p.requested > 0 ? (size_t)p.requested : (size_t)p.ceiling;
    if (p.requested == 0) {
        double useful = floor(work_ns / YL_WORK_PER_THREAD);
        if (!(useful >= 1.0)) useful = 1.0;
        if (useful < (double)t) t = (size_t)useful;
    }
    if ((size_t)p.ceiling < t) t = (size_t)p.ceiling;
    if (units < t) t = units;
    return t < 1 ? 1 : (int)t;
}

/* Candidates one gt box makes at one level: the centre box of radius r
 * strides, and for the legacy rule also the anchors inside the box, capped
 * by the grid. */
static double cands_of(const float *box, float stride, double hw, float radius, int legacy) {
    double side = 2.0 * radius + 1.0, n = side * side;
    if (legacy) n += (box[2] / stride + 1.0) * (box[3] / stride + 1.0);
    return n < hw ? n : hw;
}

double yl_forward_work_ns(const yl_step *s, const float *strides, float radius, int legacy) {
    const double B = s->num_images, A = (double)s->num_anchors, C = s->num_classes;
    double cand_class = 0.0, pairs = 0.0;
    const int64_t *gt_offset = s->gt_offset.ptr;
    const float *boxes = s->gt_boxes.ptr;
    for (int b = 0; b < s->num_images; b++) {
        double cands = 0.0;
        for (int64_t g = gt_offset[b]; g < gt_offset[b + 1]; g++)
            for (int l = 0; l < s->num_levels; l++) {
                const double hw = (double)s->levels[l].height * (double)s->levels[l].width;
                cands += cands_of(boxes + 4 * g, strides[l], hw, radius, legacy);
            }
        if (cands > A) cands = A;
        cand_class += cands * C;
        pairs += cands * (double)(gt_offset[b + 1] - gt_offset[b]);
    }
    const double fg_class = (double)s->total_gt * CANDS_PER_FG * C;
    return B * A * NS_PER_ANCHOR + cand_class * NS_PER_CAND_CLASS + pairs * NS_PER_PAIR +
           fg_class * NS_PER_FG_CLASS;
}

double yl_backward_work_ns(const yl_step *s) {
    double bytes = 0.0;
    for (int l = 0; l < s->num_levels; l++) {
        const double hw = (double)s->levels[l].height * (double)s->levels[l].width;
        bytes += hw * (5.0 + s->num_classes) * (double)yl_dtype_size(s->levels[l].dtype);
    }
    const double B = s->num_images, A = (double)s->num_anchors, C = s->num_classes;
    return B * bytes * NS_PER_GRAD_BYTE + B * A * NS_PER_ANCHOR +
           (double)s->total_gt * CANDS_PER_FG * C * NS_PER_FG_CLASS;
}

void yl_parallel_for(int threads, int n, void (*fn)(void *arg, int i, int t), void *arg) {
    if (threads <= 1) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < n; i++) fn(arg, i, omp_get_thread_num());
}
