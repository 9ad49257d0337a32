/* A reference of the inference path written from YOLOX's eval code
 * (docs/algorithm.md, "Inference: decode and detect"), for test_decode.c
 * and test_detect.c: the decoded box and the scores of one anchor of a
 * scene in float32 (the library's exp, so values compare bitwise) and in
 * double, and YOLOX's postprocess done the plain way: every candidate
 * against every other, sorted by insertion. Include after scene_util.h. */
#ifndef YL_DECODE_REF_H
#define YL_DECODE_REF_H

#include "scene_util.h"

static inline float dr_sigmoid(float x) { return 1.0f / (1.0f + tu_expf(-x)); }

/* (cx, cy, w, h) of the anchor at row i, column j of level l of image b,
 * as decode_outputs computes it in float32 (mmdet: MMDetection's x = tx s + j s). */
static inline void dr_box(const ts_scene *s, int mmdet, int b, int l, int i, int j, float box[4]) {
    const float st = s->strides[l], tx = *ts_at(s, l, b, 0, i, j), ty = *ts_at(s, l, b, 1, i, j);
    box[0] = mmdet ? tx * st + (float)j * st : (tx + (float)j) * st;
    box[1] = mmdet ? ty * st + (float)i * st : (ty + (float)i) * st;
    box[2] = tu_expf(*ts_at(s, l, b, 2, i, j)) * st;
    box[3] = tu_expf(*ts_at(s, l, b, 3, i, j)) * st;
}

/* The same in double. */
static inline void dr_box_d(const ts_scene *s, int mmdet, int b, int l, int i, int j, double box[4]) {
    const double st = s->strides[l], tx = *ts_at(s, l, b, 0, i, j), ty = *ts_at(s, l, b, 1, i, j);
    box[0] = mmdet ? tx * st + j * st : (tx + j) * st;
    box[1] = mmdet ? ty * st + i * st : (ty + i) * st;
    box[2] = exp((double)*ts_at(s, l, b, 2, i, j)) * st;
    box[3] = exp((double)*ts_at(s, l, b, 3, i, j)) * st;
}

/* sigmoid(obj) * sigmoid(cls_k) of that anchor, float32. */
static inline float dr_score(const ts_scene *s, int b, int l, int i, int j, int k) {
    return dr_sigmoid(*ts_at(s, l, b, 4, i, j)) * dr_sigmoid(*ts_at(s, l, b, 5 + k, i, j));
}

/* One row of YOLOX's postprocess output, with its anchor. */
typedef struct {
    float x1, y1, x2, y2, obj, conf, score;
    int cls, anchor;
} dr_det;

/* torchvision's IoU of two detections in its float32 order of operations. */
static inline float dr_iou(const dr_det *a, const dr_det *b) {
    const float xx1 = a->x1 < b->x1 ? b->x1 : a->x1, yy1 = a->y1 < b->y1 ? b->y1 : a->y1;
    const float xx2 = b->x2 < a->x2 ? b->x2 : a->x2, yy2 = b->y2 < a->y2 ? b->y2 : a->y2;
    const float w = 0.0f < xx2 - xx1 ? xx2 - xx1 : 0.0f, h = 0.0f < yy2 - yy1 ? yy2 - yy1 : 0.0f;
    const float inter = w * h;
    const float area_a = (a->x2 - a->x1) * (a->y2 - a->y1), area_b = (b->x2 - b->x1) * (b->y2 - b->y1);
    return inter / (area_a + area_b - inter);
}

/* Image b's detections as YOLOX's postprocess gives them (ties of score:
 * lower anchor first), the first `cap` into out; returns how many NMS
 * kept, and (candidates not NULL) how many passed the threshold. */
static inline int dr_postprocess(const ts_scene *s, int mmdet, int b, float conf_thre, double nms_thre,
                                 int agnostic, dr_det *out, int cap, int *candidates) {
    int A = 0;
    for (int l = 0; l < s->L; l++) A += (int)ts_hw(s, l);
    dr_det *c = malloc((size_t)A * sizeof *c);
    char *gone = calloc((size_t)A, 1);
    assert_true(c && gone);
    int n = 0;
    for (int a = 0; a < A; a++) {
        int l, i, j;
        ts_anchor_pos(s, a, &l, &i, &j);
        const float obj = dr_sigmoid(*ts_at(s, l, b, 4, i, j));
        float conf = dr_sigmoid(*ts_at(s, l, b, 5, i, j));
        int cls = 0;
        for (int k = 1; k < s->C && conf == conf; k++) {
            const float p = dr_sigmoid(*ts_at(s, l, b, 5 + k, i, j));
            if (p > conf || p != p) conf = p, cls = k;
        }
        const float score = obj * conf;
        if (!(score >= conf_thre)) continue;
        float box[4];
        dr_box(s, mmdet, b, l, i, j, box);
        const dr_det d = {box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2,
                          obj, conf, score, cls, a};
        int at = n++;
        while (at > 0 && c[at - 1].score < score) { /* insertion: a tie stays behind the lower anchor */
            c[at] = c[at - 1];
            at--;
        }
        c[at] = d;
    }
    if (candidates) *candidates = n;
    int kept = 0;
    for (int x = 0; x < n; x++) {
        if (gone[x]) continue;
        if (kept < cap) out[kept] = c[x];
        kept++;
        for (int y = x + 1; y < n; y++)
            if (!gone[y] && (agnostic || c[y].cls == c[x].cls) && (double)dr_iou(&c[x], &c[y]) > nms_thre)
                gone[y] = 1;
    }
    free(c);
    free(gone);
    return kept;
}

#endif
