/* Box decoding, the assignment IoU, and the IoU/GIoU loss with its gradient. */
#include <math.h>

#include "box.h"

yl_box yl_decode(const yl_mathf *m, float tx, float ty, float tw, float th, int i, int j, float stride) {
    yl_box b;
    b.x = (tx + (float)j) * stride;
    b.y = (ty + (float)i) * stride;
    b.w = m->exp(tw) * stride;
    b.h = m->exp(th) * stride;
    return b;
}

float yl_pair_iou(yl_box a, yl_box b) {
    float tlx = fmaxf(a.x - a.w / 2.0f, b.x - b.w / 2.0f);
    float tly = fmaxf(a.y - a.h / 2.0f, b.y - b.h / 2.0f);
    float brx = fminf(a.x + a.w / 2.0f, b.x + b.w / 2.0f);
    float bry = fminf(a.y + a.h / 2.0f, b.y + b.h / 2.0f);
    float area_a = a.w * a.h;
    float area_b = b.w * b.h;
    float en = (tlx < brx && tly < bry) ? 1.0f : 0.0f;
    float inter = (brx - tlx) * (bry - tly) * en;
    return inter / (area_a + area_b - inter);
}

/* Every intermediate of IOUloss for one pair, kept for the gradient. */
typedef struct {
    float p1x, p1y, p2x, p2y; /* pred corners */
    float g1x, g1y, g2x, g2y; /* gt corners */
    float ix, iy, en;         /* intersection extents, 1 if it is non-empty */
    float area_p, area_i, area_u, iou;
    float cx, cy, area_c, giou; /* enclosing box (giou only) */
} iou_terms;

static iou_terms iou_forward(yl_box p, yl_box g, yoloxloss_iou_loss type) {
    iou_terms t;
    t.p1x = p.x - p.w / 2.0f;
    t.p1y = p.y - p.h / 2.0f;
    t.p2x = p.x + p.w / 2.0f;
    t.p2y = p.y + p.h / 2.0f;
    t.g1x = g.x - g.w / 2.0f;
    t.g1y = g.y - g.h / 2.0f;
    t.g2x = g.x + g.w / 2.0f;
    t.g2y = g.y + g.h / 2.0f;
    float tlx = fmaxf(t.p1x, t.g1x), tly = fmaxf(t.p1y, t.g1y);
    float brx = fminf(t.p2x, t.g2x), bry = fminf(t.p2y, t.g2y);
    t.area_p = p.w * p.h;
    float area_g = g.w * g.h;
    t.en = (tlx < brx && tly < bry) ? 1.0f : 0.0f;
    t.ix = brx - tlx;
    t.iy = bry - tly;
    t.area_i = t.ix * t.iy * t.en;
    t.area_u = t.area_p + area_g - t.area_i;
    t.iou = t.area_i / (t.area_u + 1e-16f);
    t.cx = t.cy = t.area_c = t.giou = 0.0f;
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) {
        t.cx = fmaxf(t.p2x, t.g2x) - fminf(t.p1x, t.g1x);
        t.cy = fmaxf(t.p2y, t.g2y) - fminf(t.p1y, t.g1y);
        t.area_c = t.cx * t.cy;
        t.giou = t.iou - (t.area_c - t.area_u) / fmaxf(t.area_c, 1e-16f);
    }
    return t;
}

float yl_iou_loss(yl_box pred, yl_box gt, yoloxloss_iou_loss type) {
    iou_terms t = iou_forward(pred, gt, type);
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) return 1.0f - fminf(fmaxf(t.giou, -1.0f), 1.0f);
    return 1.0f - t.iou * t.iou;
}

/* Share of the gradient that torch.max(a, b) / torch.min(a, b) sends to a:
 * all of it when a wins, half on a tie, none when it loses. */
static double wins_max(float a, float b) { return a > b ? 1.0 : a == b ? 0.5 : 0.0; }
static double wins_min(float a, float b) { return a < b ? 1.0 : a == b ? 0.5 : 0.0; }

void yl_iou_loss_grad(yl_box pred, yl_box gt, yoloxloss_iou_loss type, float grad[4]) {
    iou_terms t = iou_forward(pred, gt, type);
    /* Reverse mode through the forward above, in double; g_* is d loss / d *. */
    double g_iou, g_area_u = 0.0, g_area_c = 0.0;
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) {
        double g_giou = (t.giou >= -1.0f && t.giou <= 1.0f) ? -1.0 : 0.0;
        double cc = t.area_c > 1e-16f ? (double)t.area_c : 1e-16;
        g_iou = g_giou;
        g_area_u = g_giou / cc;
        /* g_giou is 0 when GIoU is clamped or NaN (inf - inf of an infinite box) */
        double g_cc = g_giou == 0.0 ? 0.0 : g_giou * ((double)t.area_c - (double)t.area_u) / (cc * cc);
        g_area_c = -g_giou / cc + (t.area_c >= 1e-16f ? g_cc : 0.0);
    } else {
        g_iou = -2.0 * (double)t.iou;
    }
    double d = (double)t.area_u + 1e-16;
    double g_area_i = g_iou / d;
    g_area_u += -g_iou * (double)t.area_i / (d * d);
    double g_area_p = g_area_u;
    g_area_i -= g_area_u;

    double g_ix = g_area_i * t.iy * t.en, g_iy = g_area_i * t.ix * t.en;
    /* ix = min(p2x, g2x) - max(p1x, g1x) */
    double g_p1x = -g_ix * wins_max(t.p1x, t.g1x), g_p2x = g_ix * wins_min(t.p2x, t.g2x);
    double g_p1y = -g_iy * wins_max(t.p1y, t.g1y), g_p2y = g_iy * wins_min(t.p2y, t.g2y);
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) {
        /* cx = max(p2x, g2x) - min(p1x, g1x) */
        double g_cx = g_area_c == 0.0 ? g_area_c : g_area_c * t.cy;   /* as for area_p below */
        double g_cy = g_area_c == 0.0 ? g_area_c : g_area_c * t.cx;
        g_p1x -= g_cx * wins_min(t.p1x, t.g1x);
        g_p2x += g_cx * wins_max(t.p2x, t.g2x);
        g_p1y -= g_cy * wins_min(t.p1y, t.g1y);
        g_p2y += g_cy * wins_max(t.p2y, t.g2y);
    }
    /* p1 = c - size/2, p2 = c + size/2, area_p = w * h. When a side is
     * infinite (exp overflow) the IoU is 0 and g_area_p is a zero: keep it,
     * where autograd's 0 * inf would make the other side's gradient NaN. */
    grad[0] = (float)(g_p1x + g_p2x);
    grad[1] = (float)(g_p1y + g_p2y);
    grad[2] = (float)((g_p2x - g_p1x) / 2.0 + (g_area_p == 0.0 ? g_area_p : g_area_p * pred.h));
    grad[3] = (float)((g_p2y - g_p1y) / 2.0 + (g_area_p == 0.0 ? g_area_p : g_area_p * pred.w));
}

void yl_l1_target(const yl_mathf *m, yl_box gt, int i, int j, float stride, float target[4]) {
    target[0] = gt.x / stride - (float)j;
    target[1] = gt.y / stride - (float)i;
    target[2] = m->log(gt.w / stride + 1e-8f);
    target[3] = m->log(gt.h / stride + 1e-8f);
}
