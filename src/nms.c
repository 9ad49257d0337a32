/* Ranking and non-maximum suppression of one image's candidates (nms.h). */
#include <string.h>

#include "half.h"
#include "nms.h"

/* Ascending; a stable merge sort is not needed since the keys are unique. */
static void sort_keys(uint64_t *keys, uint64_t *tmp, size_t n) {
    uint64_t *src = keys, *dst = tmp;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            const size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = src[j] < src[i] ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != keys) memcpy(keys, src, n * sizeof *keys);
}

/* std::max and std::min as torchvision's kernel calls them: the first
 * argument unless the comparison says otherwise (so a NaN second argument
 * is ignored, a NaN first one kept). */
static inline float tv_max(float a, float b) { return a < b ? b : a; }
static inline float tv_min(float a, float b) { return b < a ? b : a; }

/* Whether kept candidate a suppresses b: torchvision's IoU, in its order
 * of float32 operations, compared with the threshold in double. */
static inline int suppresses(const yl_candidate *a, const yl_candidate *b, double iou_threshold) {
    const float xx1 = tv_max(a->x1, b->x1), yy1 = tv_max(a->y1, b->y1);
    const float xx2 = tv_min(a->x2, b->x2), yy2 = tv_min(a->y2, b->y2);
    const float w = tv_max(0.0f, xx2 - xx1), h = tv_max(0.0f, yy2 - yy1);
    const float inter = w * h;
    const float ovr = inter / (a->area + b->area - inter);
    return (double)ovr > iou_threshold;
}

/* Greedy suppression along one group of candidates in rank order. */
static void suppress_group(const yl_candidate *cand, const uint32_t *group, size_t m, double iou_threshold,
                           uint8_t *suppressed) {
    for (size_t s = 0; s < m; s++) {
        const uint32_t i = group[s];
        if (suppressed[i]) continue;
        for (size_t t = s + 1; t < m; t++) {
            const uint32_t j = group[t];
            if (!suppressed[j] && suppresses(&cand[i], &cand[j], iou_threshold)) suppressed[j] = 1;
        }
    }
}

void yl_nms(const yl_candidate *cand, size_t n, int num_classes, double iou_threshold, int class_agnostic,
            const yl_nms_work *w) {
    /* Scores are >= 0 and not NaN: their bits order them as numbers, and
     * the inverted bits above the index order them highest first, equal
     * ones by index. */
    for (size_t i = 0; i < n; i++) w->keys[i] = ((uint64_t)(~yl_f32_bits(cand[i].score)) << 32) | (uint64_t)i;
    sort_keys(w->keys, w->tmp, n);
    memset(w->suppressed, 0, n);
    if (class_agnostic) {
        for (size_t r = 0; r < n; r++) w->order[r] = yl_nms_at(w, r);
        suppress_group(cand, w->order, n, iou_threshold, w->suppressed);
        return;
    }
    /* A stable counting sort by class keeps each class's candidates in rank
     * order; class_end[k] is then where class k's end. */
    const size_t C = (size_t)num_classes;
    int32_t *end = w->class_end;
    memset(end, 0, (C + 1) * sizeof *end);
    for (size_t i = 0; i < n; i++) end[(size_t)cand[i].cls + 1]++;
    for (size_t k = 1; k <= C; k++) end[k] += end[k - 1];
    for (size_t r = 0; r < n; r++) {
        const uint32_t i = yl_nms_at(w, r);
        w->order[end[cand[i].cls]++] = i;
    }
    for (size_t k = 0; k < C; k++) {
        const size_t first = k == 0 ? 0 : (size_t)end[k - 1];
        suppress_group(cand, w->order + first, (size_t)end[k] - first, iou_threshold, w->suppressed);
    }
}
