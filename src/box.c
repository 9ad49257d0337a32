/* Box decoding, the assignment IoU, the box losses and their gradients
 * (docs/algorithm.md, "Box losses" and "IoU loss" under "Gradients"). */
#include <math.h>

#include "box.h"

yl_box yl_decode(const yl_mathf *m, float tx, float ty, float tw, float th, int i, int j, float stride,
                 yoloxloss_arithmetic arith) {
    yl_box b;
    if (arith == YOLOXLOSS_ARITHMETIC_MMDET) {
        b.x = tx * stride + (float)j * stride;
        b.y = ty * stride + (float)i * stride;
    } else {
        b.x = (tx + (float)j) * stride;
        b.y = (ty + (float)i) * stride;
    }
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

float yl_pair_iou_mmdet(yl_box gt, yl_box pred) {
    float p1x = pred.x - pred.w / 2.0f, p1y = pred.y - pred.h / 2.0f;
    float p2x = pred.x + pred.w / 2.0f, p2y = pred.y + pred.h / 2.0f;
    float g1x = gt.x - gt.w / 2.0f, g1y = gt.y - gt.h / 2.0f;
    float g2x = gt.x + gt.w / 2.0f, g2y = gt.y + gt.h / 2.0f;
    /* the same intersection as yl_pair_iou (its clamp at 0 gives the same values) */
    float tlx = fmaxf(g1x, p1x), tly = fmaxf(g1y, p1y), brx = fminf(g2x, p2x), bry = fminf(g2y, p2y);
    float en = (tlx < brx && tly < bry) ? 1.0f : 0.0f;
    float inter = (brx - tlx) * (bry - tly) * en;
    float uni = (p2x - p1x) * (p2y - p1y) + (g2x - g1x) * (g2y - g1y) - inter;
    return inter / (uni < 1e-6f ? 1e-6f : uni);
}

/* Every float32 intermediate of a box loss, kept for the gradient. */
typedef struct {
    float p1x, p1y, p2x, p2y; /* pred corners */
    float g1x, g1y, g2x, g2y; /* gt corners */
    float ix, iy, en;         /* intersection extents, 1 if it is non-empty */
    float area_p, area_i, area_u, iou;
    float union_floored;      /* mmdet: max(area_u, 1e-6); else area_u + 1e-16 (the loss's divisor) */
    float iou_raw;            /* mmdet: the IoU before its clamp at 1e-16; else iou */
    float cx, cy, area_c, giou; /* enclosing box (every type but iou and iou-linear) */
} iou_terms;

static int needs_enclosing_box(yoloxloss_iou_loss type) {
    return type != YOLOXLOSS_IOU_LOSS_IOU && type != YOLOXLOSS_IOU_LOSS_IOU_LINEAR;
}

static iou_terms iou_forward(yl_box p, yl_box g, yoloxloss_iou_loss type, yoloxloss_arithmetic arith) {
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
    t.en = (tlx < brx && tly < bry) ? 1.0f : 0.0f;
    t.ix = brx - tlx;
    t.iy = bry - tly;
    if (arith == YOLOXLOSS_ARITHMETIC_MMDET) {
        /* bbox_overlaps: areas from the corners, the extents clamped at 0
         * (the same products as the emptiness factor gives), the union at
         * least 1e-6, and IoULoss's clamp of the IoU at 1e-16. */
        t.area_p = (t.p2x - t.p1x) * (t.p2y - t.p1y);
        float area_g = (t.g2x - t.g1x) * (t.g2y - t.g1y);
        t.area_i = t.ix * t.iy * t.en;
        t.area_u = t.area_p + area_g - t.area_i;
        t.union_floored = t.area_u < 1e-6f ? 1e-6f : t.area_u;
        t.iou_raw = t.area_i / t.union_floored;
        t.iou = t.iou_raw < 1e-16f ? 1e-16f : t.iou_raw;
    } else {
        t.area_p = p.w * p.h;
        float area_g = g.w * g.h;
        t.area_i = t.ix * t.iy * t.en;
        t.area_u = t.area_p + area_g - t.area_i;
        t.union_floored = t.area_u + 1e-16f;
        t.iou = t.iou_raw = t.area_i / t.union_floored;
    }
    t.cx = t.cy = t.area_c = t.giou = 0.0f;
    if (needs_enclosing_box(type)) {
        t.cx = fmaxf(t.p2x, t.g2x) - fminf(t.p1x, t.g1x);
        t.cy = fmaxf(t.p2y, t.g2y) - fminf(t.p1y, t.g1y);
    }
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) {
        t.area_c = t.cx * t.cy;
        t.giou = t.iou - (t.area_c - t.area_u) / fmaxf(t.area_c, 1e-16f);
    }
    return t;
}

/* ---- DIoU, CIoU, EIoU, SIoU: their terms beyond the IoU, in double ---- */

/* d loss / d of each quantity the terms beyond the IoU are written in. */
typedef struct {
    double iou;    /* through the IoU of iou_forward */
    double cw, ch; /* the enclosing box's sides t.cx, t.cy */
    double dx, dy; /* the centre offsets x - x_gt, y - y_gt */
    double w, h;   /* the prediction's sides, where they appear directly */
} box_partials;

static double sgn(double v) { return (v > 0.0) - (v < 0.0); }

/* Share of the gradient that max(a, b) sends to a: all when a wins, half on
 * a tie, none when it loses (autograd's rule for two tensors). */
static double wins_max(float a, float b) { return a > b ? 1.0 : a == b ? 0.5 : 0.0; }
static double wins_min(float a, float b) { return a < b ? 1.0 : a == b ? 0.5 : 0.0; }

/* n^2 / (c^2 + eps) and its derivatives in n and c. A side that exp()
 * made infinite gives c = inf: the ratio is then 0 for finite n (and its
 * derivatives too); n infinite as well (the side's own difference) takes
 * the limit 1 of (w - w_gt)^2 / (C_w^2 + eps) as w grows, with no gradient. */
static double sq_ratio(double n, double c, double *d_n, double *d_c) {
    double den = c * c + YL_BOX_EPS;
    if (isinf(n)) {
        *d_n = *d_c = 0.0;
        return 1.0;
    }
    if (isinf(den)) {
        *d_n = *d_c = 0.0;
        return 0.0;
    }
    *d_n = 2.0 * n / den;
    *d_c = -n * n * 2.0 * c / (den * den);
    return n * n / den;
}

/* The aspect angle atan(w / h) as atan2(w, h), defined for h = 0 and for
 * both sides infinite; its derivatives h / (w^2 + h^2) and -w / (w^2 + h^2)
 * are taken as 0 where they are not defined (w = h = 0, or a side infinite,
 * where they tend to 0). */
static double aspect_angle(double w, double h, double *d_w, double *d_h) {
    double r2 = w * w + h * h;
    if (r2 > 0.0 && isfinite(r2)) {
        *d_w = h / r2;
        *d_h = -w / r2;
    } else {
        *d_w = *d_h = 0.0;
    }
    return atan2(w, h);
}

/* DIoU's penalty rho^2 / c^2 with c^2 = C_w^2 + C_h^2 + eps, and its
 * partials, scaled by `scale`, added into d. */
static double diou_penalty(double dx, double dy, double cw, double ch, double scale, box_partials *d) {
    double rho2 = dx * dx + dy * dy, c2 = cw * cw + ch * ch + YL_BOX_EPS;
    if (isinf(c2)) return 0.0; /* an infinite side: rho is finite, the penalty and its gradient 0 */
    d->dx += scale * 2.0 * dx / c2;
    d->dy += scale * 2.0 * dy / c2;
    d->cw += scale * -rho2 * 2.0 * cw / (c2 * c2);
    d->ch += scale * -rho2 * 2.0 * ch / (c2 * c2);
    return rho2 / c2;
}

/* SIoU's shape term (1 - exp(-omega))^4 of one side, omega = |s - s_gt| /
 * max(s, s_gt); adds its derivative in s, scaled, into *d_s. An infinite
 * side takes the limit omega = 1 with no gradient. */
static double siou_shape(float s, float s_gt, double scale, double *d_s) {
    if (isinf(s)) return pow(1.0 - exp(-1.0), 4.0);
    double n = fabs((double)s - (double)s_gt), m = fmax((double)s, (double)s_gt);
    double om = n / m, e = exp(-om), q = 1.0 - e;
    double d_om = 4.0 * q * q * q * e;
    *d_s += scale * d_om * (sgn((double)s - (double)s_gt) / m - n / (m * m) * wins_max(s, s_gt));
    return q * q * q * q;
}

/* The loss of a type other than iou, iou-linear and giou, from the float32
 * terms t; d (if not NULL) receives its partials. */
static double penalised_loss(const iou_terms *t, yl_box p, yl_box g, yoloxloss_iou_loss type, box_partials *d) {
    box_partials scratch;
    box_partials *out = d ? d : &scratch;
    *out = (box_partials){0};
    const double iou = t->iou, cw = t->cx, ch = t->cy;
    const double dx = (double)p.x - (double)g.x, dy = (double)p.y - (double)g.y;
    switch (type) {
    case YOLOXLOSS_IOU_LOSS_DIOU:
        out->iou = -1.0;
        return 1.0 - iou + diou_penalty(dx, dy, cw, ch, 1.0, out);
    case YOLOXLOSS_IOU_LOSS_CIOU: {
        const double pi = 3.14159265358979323846, k = 4.0 / (pi * pi);
        double dtw, dth, unused_w, unused_h;
        double gap = aspect_angle(g.w, g.h, &unused_w, &unused_h) - aspect_angle(p.w, p.h, &dtw, &dth);
        double v = k * gap * gap;
        /* alpha is a constant of the gradient; it is 0 unless IoU > 0.5 */
        double alpha = t->iou > 0.5f ? v / (1.0 - iou + v + YL_BOX_EPS) : 0.0;
        box_partials pen = {0};
        double c = iou - diou_penalty(dx, dy, cw, ch, 1.0, &pen) - alpha * v;
        if (!(c >= -1.0 && c <= 1.0)) /* clamped (or NaN): no gradient passes */
            return 1.0 - (c > 1.0 ? 1.0 : -1.0);
        /* l = 1 - c: d l = -d iou + d penalty + alpha d v, v = k (angle_gt - angle)^2 */
        out->iou = -1.0;
        out->dx = pen.dx, out->dy = pen.dy, out->cw = pen.cw, out->ch = pen.ch;
        double d_angle = alpha * k * 2.0 * gap * -1.0;
        out->w = d_angle * dtw;
        out->h = d_angle * dth;
        return 1.0 - c;
    }
    case YOLOXLOSS_IOU_LOSS_EIOU: {
        out->iou = -1.0;
        double l = 1.0 - iou + diou_penalty(dx, dy, cw, ch, 1.0, out);
        double dn, dc;
        double nw = isinf(p.w) ? INFINITY : (double)p.w - (double)g.w;
        double nh = isinf(p.h) ? INFINITY : (double)p.h - (double)g.h;
        l += sq_ratio(nw, cw, &dn, &dc);
        out->w += dn, out->cw += dc;
        l += sq_ratio(nh, ch, &dn, &dc);
        out->h += dn, out->ch += dc;
        return l;
    }
    default: { /* YOLOXLOSS_IOU_LOSS_SIOU */
        out->iou = -1.0;
        /* angle cost 1 - 2 sin^2(arcsin(|dy| / sigma) - pi/4) = 2 |dx| |dy| / sigma^2 */
        double a = fabs(dx), b = fabs(dy), s = a * a + b * b + YL_BOX_EPS;
        double lam = 2.0 * a * b / s, gamma = 2.0 - lam;
        double dpx_dn, dpx_dc, dpy_dn, dpy_dc;
        double rx = sq_ratio(dx, cw, &dpx_dn, &dpx_dc), ry = sq_ratio(dy, ch, &dpy_dn, &dpy_dc);
        double ex = exp(-gamma * rx), ey = exp(-gamma * ry);
        double dist = (1.0 - ex) + (1.0 - ey);
        /* (distance + shape) / 2: the factor 1/2 on every derivative below */
        double d_rx = 0.5 * gamma * ex, d_ry = 0.5 * gamma * ey;
        double d_gamma = 0.5 * (rx * ex + ry * ey), d_lam = -d_gamma;
        double d_a = d_lam * 2.0 * b * (s - 2.0 * a * a) / (s * s);
        double d_b = d_lam * 2.0 * a * (s - 2.0 * b * b) / (s * s);
        out->dx = d_rx * dpx_dn + d_a * sgn(dx);
        out->dy = d_ry * dpy_dn + d_b * sgn(dy);
        out->cw = d_rx * dpx_dc;
        out->ch = d_ry * dpy_dc;
        double shape = siou_shape(p.w, g.w, 0.5, &out->w) + siou_shape(p.h, g.h, 0.5, &out->h);
        return 1.0 - iou + 0.5 * (dist + shape);
    }
    }
}

float yl_iou_loss(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith) {
    iou_terms t = iou_forward(pred, gt, type, arith);
    switch (type) {
    case YOLOXLOSS_IOU_LOSS_IOU: return 1.0f - t.iou * t.iou;
    case YOLOXLOSS_IOU_LOSS_GIOU: return 1.0f - fminf(fmaxf(t.giou, -1.0f), 1.0f);
    case YOLOXLOSS_IOU_LOSS_IOU_LINEAR: return 1.0f - t.iou;
    default: return (float)penalised_loss(&t, pred, gt, type, NULL);
    }
}

/* d loss / d (x, y, w, h) of pred, in double: yl_iou_loss_grad rounds it,
 * yl_iou_loss_grad_raw chains it on through decoding first. */
static void iou_loss_grad_d(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith,
                            double grad[4]) {
    iou_terms t = iou_forward(pred, gt, type, arith);
    /* Reverse mode through the forward above, in double; g_* is d loss / d *. */
    box_partials pen = {0};
    double g_iou, g_area_u = 0.0, g_area_c = 0.0;
    if (type == YOLOXLOSS_IOU_LOSS_GIOU) {
        double g_giou = (t.giou >= -1.0f && t.giou <= 1.0f) ? -1.0 : 0.0;
        double cc = t.area_c > 1e-16f ? (double)t.area_c : 1e-16;
        g_iou = g_giou;
        g_area_u = g_giou / cc;
        /* g_giou is 0 when GIoU is clamped or NaN (inf - inf of an infinite box) */
        double g_cc = g_giou == 0.0 ? 0.0 : g_giou * ((double)t.area_c - (double)t.area_u) / (cc * cc);
        g_area_c = -g_giou / cc + (t.area_c >= 1e-16f ? g_cc : 0.0);
    } else if (type == YOLOXLOSS_IOU_LOSS_IOU) {
        g_iou = -2.0 * (double)t.iou;
    } else if (type == YOLOXLOSS_IOU_LOSS_IOU_LINEAR) {
        g_iou = -1.0;
    } else {
        penalised_loss(&t, pred, gt, type, &pen);
        g_iou = pen.iou;
    }
    /* mmdet: IoULoss's clamp at 1e-16 passes the gradient where the IoU is >= 1e-16 */
    if (arith == YOLOXLOSS_ARITHMETIC_MMDET && !(t.iou_raw >= 1e-16f)) g_iou = 0.0;
    const int mmdet = arith == YOLOXLOSS_ARITHMETIC_MMDET;
    double d = mmdet ? (double)t.union_floored : (double)t.area_u + 1e-16, g_area_i = g_iou / d;
    double g_union = -g_iou * (double)t.area_i / (d * d);
    /* mmdet's max(union, 1e-6) passes all of it above the floor, half at it */
    if (mmdet) g_union *= wins_max(t.area_u, 1e-6f);
    g_area_u += g_union;
    double g_area_p = g_area_u;
    g_area_i -= g_area_u;

    double g_ix = g_area_i * t.iy * t.en, g_iy = g_area_i * t.ix * t.en;
    /* ix = min(p2x, g2x) - max(p1x, g1x) */
    double g_p1x = -g_ix * wins_max(t.p1x, t.g1x), g_p2x = g_ix * wins_min(t.p2x, t.g2x);
    double g_p1y = -g_iy * wins_max(t.p1y, t.g1y), g_p2y = g_iy * wins_min(t.p2y, t.g2y);
    if (needs_enclosing_box(type)) {
        /* cx = max(p2x, g2x) - min(p1x, g1x) */
        double g_cx = g_area_c == 0.0 ? g_area_c : g_area_c * t.cy; /* as for area_p below */
        double g_cy = g_area_c == 0.0 ? g_area_c : g_area_c * t.cx;
        g_cx += pen.cw;
        g_cy += pen.ch;
        g_p1x -= g_cx * wins_min(t.p1x, t.g1x);
        g_p2x += g_cx * wins_max(t.p2x, t.g2x);
        g_p1y -= g_cy * wins_min(t.p1y, t.g1y);
        g_p2y += g_cy * wins_max(t.p2y, t.g2y);
    }
    /* p1 = c - size/2, p2 = c + size/2, area_p = w * h (mmdet: the corners'
     * product, whose x side is p2x - p1x). When a side is infinite (exp
     * overflow) the IoU is 0 and g_area_p is a zero: keep it, where
     * autograd's 0 * inf would make the other side's gradient NaN. */
    double side_w = mmdet ? (double)(t.p2x - t.p1x) : (double)pred.w;
    double side_h = mmdet ? (double)(t.p2y - t.p1y) : (double)pred.h;
    grad[0] = g_p1x + g_p2x + pen.dx;
    grad[1] = g_p1y + g_p2y + pen.dy;
    grad[2] = (g_p2x - g_p1x) / 2.0 + (g_area_p == 0.0 ? g_area_p : g_area_p * side_h) + pen.w;
    grad[3] = (g_p2y - g_p1y) / 2.0 + (g_area_p == 0.0 ? g_area_p : g_area_p * side_w) + pen.h;
}

void yl_iou_loss_grad(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith,
                      float grad[4]) {
    double g[4];
    iou_loss_grad_d(pred, gt, type, arith, g);
    for (int c = 0; c < 4; c++) grad[c] = (float)g[c];
}

void yl_iou_loss_grad_raw(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith,
                          float stride, float grad[4]) {
    double g[4];
    iou_loss_grad_d(pred, gt, type, arith, g);
    /* dx/dtx = s and dw/dtw = exp(tw) s = w, taken in double: d/dw grows as
     * 1/w for a tiny side (SIoU's shape cost; about 1e41 for a side of
     * 1e-41 px) and would overflow float32, while its product with w stays
     * bounded. A zero gradient stays 0 on an infinite side (exp overflow),
     * where 0 * inf would be NaN. */
    grad[0] = (float)(g[0] * stride);
    grad[1] = (float)(g[1] * stride);
    grad[2] = g[2] == 0.0 ? 0.0f : (float)(g[2] * (double)pred.w);
    grad[3] = g[3] == 0.0 ? 0.0f : (float)(g[3] * (double)pred.h);
}

void yl_l1_target(const yl_mathf *m, yl_box gt, int i, int j, float stride, yoloxloss_arithmetic arith,
                  float target[4]) {
    if (arith == YOLOXLOSS_ARITHMETIC_MMDET) {
        target[0] = (gt.x - (float)j * stride) / stride;
        target[1] = (gt.y - (float)i * stride) / stride;
    } else {
        target[0] = gt.x / stride - (float)j;
        target[1] = gt.y / stride - (float)i;
    }
    target[2] = m->log(gt.w / stride + 1e-8f);
    target[3] = m->log(gt.h / stride + 1e-8f);
}
