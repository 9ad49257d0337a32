/* One case of the PyTorch reference check, through the C API, file in and
 * file out:
 *
 *     run_case CASE_FILE OUT_FILE
 *
 * check_reference.py --runner CMD writes CASE_FILE, runs CMD CASE_FILE
 * OUT_FILE and compares OUT_FILE with the reference. This lets the check
 * test a build that Python cannot load, such as an aarch64 build run under
 * qemu-user. Both files are little-endian, as x86-64 and aarch64 are (the
 * program refuses to run elsewhere); tests/reference/runner_io.py writes
 * and reads the same layout:
 *
 * CASE_FILE
 *   char    magic[8]         "YXCASE3"
 *   int32   B, C, L, T       images, classes, levels, ground-truth rows
 *   int32   assigner, iou_loss, use_l1, num_threads   (yoloxloss_config's values)
 *   float32 reg_weight, obj_weight, cls_weight, l1_weight
 *   float32 upstream[5]      total, iou, obj, cls, l1
 *   float32 cost_iou_eps, cost_penalty; int32 arithmetic   (yoloxloss_config's values)
 *   per level: float32 stride; int32 H, W, fused (1: [B,5+C,H,W]; 0: reg, obj, cls),
 *              dtype (yoloxloss_dtype: 0 float32, 1 float16, 2 bfloat16)
 *   int32   num_gt[B], gt_classes[T]; float32 gt_boxes[T, 4]
 *   per level: the fused tensor, or reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W],
 *              elements of the level's dtype (2 bytes each for float16 and
 *              bfloat16), each tensor padded with zero bytes to a multiple of 4
 *
 * OUT_FILE
 *   char    magic[8]         "YXOUT2"
 *   float32 total, iou, obj, cls, l1, fg_ratio
 *   int32   matched_gt[B, A]; float32 pred_iou[B, A]; int32 dynamic_k[T]
 *   per level: the gradient, in the layout and dtype of that level's input
 *
 * Exit status 0 on success; 1 with a message on stderr when the library
 * rejects the case; 2 for a malformed file or a usage error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yoloxloss.h>

#define MAX_LEVELS 64

static const char CASE_MAGIC[8] = "YXCASE3";
static const char OUT_MAGIC[8] = "YXOUT2";

/* The case file in memory and how far it has been read. */
typedef struct {
    const char *path;
    unsigned char *data;
    size_t size, pos;
} reader;

static void fail_format(const reader *r, const char *what) {
    fprintf(stderr, "run_case: %s: malformed case file at byte %zu: %s\n", r->path, r->pos, what);
    exit(2);
}

/* The next n items of size bytes each, or exit if the file is too short.
 * Every field is 4 bytes wide and the buffer comes from malloc, so the
 * returned pointers are aligned for float and int32_t. */
static void *take(reader *r, size_t n, size_t size, const char *what) {
    if (size != 0 && n > (r->size - r->pos) / size) fail_format(r, what);
    void *p = r->data + r->pos;
    r->pos += n * size;
    return p;
}

/* A tensor of n elements of esize bytes, and its padding to 4 bytes (so
 * every field after it stays aligned). */
static void *take_tensor(reader *r, size_t n, size_t esize, const char *what) {
    void *p = take(r, n, esize, what);
    take(r, (4 - (n * esize) % 4) % 4, 1, "padding after a tensor");
    return p;
}

static int32_t take_int(reader *r, const char *what, int32_t lo, int32_t hi) {
    int32_t v;
    memcpy(&v, take(r, 1, sizeof v, what), sizeof v);
    if (v < lo || v > hi) {
        fprintf(stderr, "run_case: %s: %s = %d, expected %d..%d\n", r->path, what, (int)v, (int)lo,
                (int)hi);
        exit(2);
    }
    return v;
}

static float take_float(reader *r, const char *what) {
    float v;
    memcpy(&v, take(r, 1, sizeof v, what), sizeof v);
    return v;
}

static void read_file(reader *r, const char *path) {
    r->path = path;
    r->data = NULL;
    r->size = r->pos = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (fseek(f, 0, SEEK_END) != 0) fail_format(r, "cannot seek");
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) fail_format(r, "cannot tell its size");
    r->size = (size_t)len;
    r->data = malloc(r->size ? r->size : 1);
    if (!r->data) {
        fprintf(stderr, "run_case: %s: out of memory for %zu bytes\n", path, r->size);
        exit(2);
    }
    if (fread(r->data, 1, r->size, f) != r->size) fail_format(r, "short read");
    fclose(f);
}

/* n0 * n1 * n2 * n3 elements (of up to a float each), or exit when that
 * does not fit in size_t. */
static size_t count4(const reader *r, size_t n0, size_t n1, size_t n2, size_t n3) {
    size_t n = n0;
    const size_t f[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++) {
        if (f[i] != 0 && n > SIZE_MAX / sizeof(float) / f[i]) fail_format(r, "tensor size overflows");
        n *= f[i];
    }
    return n;
}

static void write_all(FILE *f, const char *path, const void *p, size_t n, size_t size) {
    if (n && fwrite(p, size, n, f) != n) {
        perror(path);
        exit(2);
    }
}

static void *alloc_or_exit(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "run_case: out of memory for %zu items\n", n);
        exit(2);
    }
    return p;
}

static int library_failure(yoloxloss_context *ctx, const char *call, yoloxloss_status st) {
    fprintf(stderr, "run_case: %s: %s: %s\n", call, yoloxloss_status_string(st),
            ctx ? yoloxloss_last_error(ctx) : "");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CASE_FILE OUT_FILE (see tests/reference/run_case.c)\n", argv[0]);
        return 2;
    }
    const uint32_t one = 1;
    unsigned char low_byte;
    memcpy(&low_byte, &one, 1);
    if (low_byte != 1) {
        fprintf(stderr, "run_case: the case files are little-endian and this machine is not\n");
        return 2;
    }
    reader r;
    read_file(&r, argv[1]);
    if (memcmp(take(&r, 1, sizeof CASE_MAGIC, "magic"), CASE_MAGIC, sizeof CASE_MAGIC) != 0)
        fail_format(&r, "not a case file of this version (magic YXCASE3 missing)");

    const int B = take_int(&r, "B", 1, INT32_MAX);
    const int C = take_int(&r, "C", 1, INT32_MAX - 5);
    const int L = take_int(&r, "L", 1, MAX_LEVELS);
    const int T = take_int(&r, "T", 0, INT32_MAX);
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = C;
    cfg.num_levels = L;
    cfg.assigner = (yoloxloss_assigner)take_int(&r, "assigner", 0, 1);
    cfg.iou_loss = (yoloxloss_iou_loss)take_int(&r, "iou_loss", 0, YOLOXLOSS_IOU_LOSS_SIOU);
    cfg.use_l1 = take_int(&r, "use_l1", 0, 1);
    cfg.num_threads = take_int(&r, "num_threads", 0, 1024);
    cfg.reg_weight = take_float(&r, "reg_weight");
    cfg.obj_weight = take_float(&r, "obj_weight");
    cfg.cls_weight = take_float(&r, "cls_weight");
    cfg.l1_weight = take_float(&r, "l1_weight");
    yoloxloss_upstream up;
    up.total = take_float(&r, "upstream");
    up.iou = take_float(&r, "upstream");
    up.obj = take_float(&r, "upstream");
    up.cls = take_float(&r, "upstream");
    up.l1 = take_float(&r, "upstream");
    cfg.cost_iou_eps = take_float(&r, "cost_iou_eps");
    cfg.cost_penalty = take_float(&r, "cost_penalty");
    cfg.arithmetic = (yoloxloss_arithmetic)take_int(&r, "arithmetic", 0, YOLOXLOSS_ARITHMETIC_MMDET);

    float strides[MAX_LEVELS];
    int fused[MAX_LEVELS];
    yoloxloss_level levels[MAX_LEVELS];
    yoloxloss_level_grad grads[MAX_LEVELS];
    size_t level_elems[MAX_LEVELS], esize[MAX_LEVELS];
    size_t A = 0;
    for (int l = 0; l < L; l++) {
        strides[l] = take_float(&r, "stride");
        memset(&levels[l], 0, sizeof levels[l]);
        memset(&grads[l], 0, sizeof grads[l]);
        levels[l].height = take_int(&r, "H", 1, INT32_MAX);
        levels[l].width = take_int(&r, "W", 1, INT32_MAX);
        fused[l] = take_int(&r, "fused", 0, 1);
        levels[l].dtype = (yoloxloss_dtype)take_int(&r, "dtype", 0, 2);
        esize[l] = levels[l].dtype == YOLOXLOSS_DTYPE_FLOAT32 ? sizeof(float) : sizeof(uint16_t);
        A += (size_t)levels[l].height * (size_t)levels[l].width;
    }
    cfg.strides = strides;

    const int32_t *num_gt = take(&r, (size_t)B, sizeof(int32_t), "num_gt");
    int64_t total_gt = 0;
    for (int b = 0; b < B; b++) total_gt += num_gt[b] > 0 ? num_gt[b] : 0;
    if (total_gt != T) fail_format(&r, "num_gt does not add up to T");
    const int32_t *gt_classes = take(&r, (size_t)T, sizeof(int32_t), "gt_classes");
    const float *gt_boxes = take(&r, (size_t)T * 4, sizeof(float), "gt_boxes");

    for (int l = 0; l < L; l++) {
        const size_t hw = count4(&r, (size_t)levels[l].height, (size_t)levels[l].width, 1, 1);
        level_elems[l] = count4(&r, (size_t)B, (size_t)C + 5, hw, 1);
        if (fused[l]) {
            levels[l].fused = take_tensor(&r, level_elems[l], esize[l], "fused level data");
        } else {
            levels[l].reg = take_tensor(&r, count4(&r, (size_t)B, 4, hw, 1), esize[l], "reg data");
            levels[l].obj = take_tensor(&r, count4(&r, (size_t)B, 1, hw, 1), esize[l], "obj data");
            levels[l].cls = take_tensor(&r, count4(&r, (size_t)B, (size_t)C, hw, 1), esize[l], "cls data");
        }
    }
    if (r.pos != r.size) fail_format(&r, "trailing bytes after the last level");

    yoloxloss_context *ctx = NULL;
    yoloxloss_status st = yoloxloss_create(&cfg, &ctx);
    if (st != YOLOXLOSS_OK) {
        char msg[256];
        yoloxloss_config_validate(&cfg, msg, sizeof msg);
        fprintf(stderr, "run_case: yoloxloss_create: %s: %s\n", yoloxloss_status_string(st), msg);
        return 1;
    }
    const yoloxloss_batch batch = {.num_images = B, .levels = levels, .num_gt = num_gt,
                                   .gt_classes = T ? gt_classes : NULL, .gt_boxes = T ? gt_boxes : NULL};
    yoloxloss_losses losses;
    st = yoloxloss_forward(ctx, &batch, &losses);
    if (st != YOLOXLOSS_OK) return library_failure(ctx, "yoloxloss_forward", st);

    const size_t BA = (size_t)B * A;
    int32_t *matched = alloc_or_exit(BA, sizeof(int32_t));
    float *pred_iou = alloc_or_exit(BA, sizeof(float));
    int32_t *dynamic_k = alloc_or_exit((size_t)T, sizeof(int32_t));
    st = yoloxloss_get_assignment(ctx, matched, pred_iou, T ? dynamic_k : NULL);
    if (st != YOLOXLOSS_OK) return library_failure(ctx, "yoloxloss_get_assignment", st);

    /* the split buffers of a level are carved out of one allocation */
    unsigned char *gbuf[MAX_LEVELS];
    for (int l = 0; l < L; l++) {
        gbuf[l] = alloc_or_exit(level_elems[l], esize[l]);
        if (fused[l]) {
            grads[l].fused = gbuf[l];
        } else {
            const size_t hw = (size_t)levels[l].height * (size_t)levels[l].width;
            grads[l].reg = gbuf[l];
            grads[l].obj = gbuf[l] + (size_t)B * 4 * hw * esize[l];
            grads[l].cls = gbuf[l] + (size_t)B * 5 * hw * esize[l];
        }
    }
    st = yoloxloss_backward(ctx, grads, &up, 0);
    if (st != YOLOXLOSS_OK) return library_failure(ctx, "yoloxloss_backward", st);

    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        perror(argv[2]);
        return 2;
    }
    const float terms[6] = {losses.total, losses.iou, losses.obj, losses.cls, losses.l1, losses.fg_ratio};
    write_all(out, argv[2], OUT_MAGIC, 1, sizeof OUT_MAGIC);
    write_all(out, argv[2], terms, 6, sizeof(float));
    write_all(out, argv[2], matched, BA, sizeof(int32_t));
    write_all(out, argv[2], pred_iou, BA, sizeof(float));
    write_all(out, argv[2], dynamic_k, (size_t)T, sizeof(int32_t));
    for (int l = 0; l < L; l++) write_all(out, argv[2], gbuf[l], level_elems[l], esize[l]);
    if (fclose(out) != 0) {
        perror(argv[2]);
        return 2;
    }

    for (int l = 0; l < L; l++) free(gbuf[l]);
    free(matched);
    free(pred_iou);
    free(dynamic_k);
    yoloxloss_destroy(ctx);
    free(r.data);
    return 0;
}
