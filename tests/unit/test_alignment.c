/* Buffers that do not start at a multiple of their element size are
 * refused with YOLOXLOSS_ERR_INVALID_ARGUMENT, naming the level and the
 * buffer, before anything is read or written: head outputs at forward
 * (a 16-bit level at an odd address, a float32 one at 1, 2 or 3 past a
 * multiple of 4), gradient buffers at backward (left untouched, byte for
 * byte), and the gt arrays (int32 num_gt and classes, float boxes). Buffers
 * aligned to their element size but no more (a 16-bit one at 2 past a
 * multiple of 4) are accepted and give the results of the usual ones.
 * Under the asan preset, whose UBSan flags every misaligned load, this
 * shows that no access to a misaligned buffer is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static const yoloxloss_dtype DTYPES[3] = {YOLOXLOSS_DTYPE_FLOAT16, YOLOXLOSS_DTYPE_BFLOAT16,
                                          YOLOXLOSS_DTYPE_FLOAT32};
static const char *ROLES[3] = {"reg", "obj", "cls"};

static size_t esize(yoloxloss_dtype dt) { return dt == YOLOXLOSS_DTYPE_FLOAT32 ? 4 : 2; }

/* A copy of `bytes` bytes of src that starts `off` bytes past a multiple
 * of 16; *block is what to free. */
static void *shifted(const void *src, size_t bytes, size_t off, void **block) {
    unsigned char *b = malloc(bytes + 32);
    assert_non_null(b);
    unsigned char *p = b + (16 - (uintptr_t)b % 16) % 16 + off;
    memcpy(p, src, bytes);
    *block = b;
    return p;
}

/* The misaligned offsets of a dtype's buffers and an aligned one that is
 * not a multiple of 4 where there is one. */
static size_t bad_offsets(yoloxloss_dtype dt, size_t out[3]) {
    if (dt != YOLOXLOSS_DTYPE_FLOAT32) {
        out[0] = 1;
        return 1;
    }
    out[0] = 1, out[1] = 2, out[2] = 3;
    return 3;
}

static size_t good_offset(yoloxloss_dtype dt) { return dt == YOLOXLOSS_DTYPE_FLOAT32 ? 4 : 2; }

/* Level l's buffer `part` (fused: 0; split: reg, obj, cls) of a typed
 * scene's inputs, or of its gradients, replaced by a copy at offset off. */
static void *shift_part(ts_typed_scene *t, int l, int part, int grad, size_t off, void **block) {
    void *src = grad ? t->grad[l][part] : t->in[l][part];
    void *p = shifted(src, t->count[l][part] * esize(t->dtype[l]), off, block);
    if (grad) {
        void **slot = t->split ? (part == 0 ? &t->g[l].reg : part == 1 ? &t->g[l].obj : &t->g[l].cls)
                               : &t->g[l].fused;
        *slot = p;
    } else {
        const void **slot = t->split ? (part == 0 ? &t->lv[l].reg : part == 1 ? &t->lv[l].obj : &t->lv[l].cls)
                                     : &t->lv[l].fused;
        *slot = p;
    }
    return p;
}

/* Level l's buffers back to the typed scene's own. */
static void restore(ts_typed_scene *t, int l) {
    if (t->split) {
        t->lv[l].reg = t->in[l][0], t->lv[l].obj = t->in[l][1], t->lv[l].cls = t->in[l][2];
        t->g[l].reg = t->grad[l][0], t->g[l].obj = t->grad[l][1], t->g[l].cls = t->grad[l][2];
    } else {
        t->lv[l].fused = t->in[l][0];
        t->g[l].fused = t->grad[l][0];
    }
}

typedef struct {
    ts_scene s;
    ts_typed_scene t;
    yoloxloss_context *ctx;
    yoloxloss_losses want; /* the losses with every buffer in place */
} fixture;

/* The small scene with both levels in dt, fused or split, and the losses
 * of a forward on it as it is. */
static void fixture_make(fixture *f, yoloxloss_dtype dt, int split) {
    ts_scene_make_small(&f->s, 2, 31);
    const yoloxloss_dtype dts[TS_MAX_LEVELS] = {dt, dt, dt, dt};
    ts_typed_make(&f->t, &f->s, dts, split);
    yoloxloss_config cfg;
    ts_config(&f->s, &cfg, 1);
    f->ctx = ts_create_ok(&cfg);
    assert_int_equal(yoloxloss_forward(f->ctx, &f->t.batch, &f->want), YOLOXLOSS_OK);
}

static void fixture_free(fixture *f) {
    yoloxloss_destroy(f->ctx);
    ts_typed_free(&f->t);
    ts_scene_free(&f->s);
}

/* A check of one buffer of one level: its misaligned offsets bad[0..n_bad)
 * and an offset aligned to the element size only, `good`. Returns how many
 * refusals it saw. */
typedef int (*buffer_check)(fixture *f, int l, int part, const char *role, const size_t *bad, size_t n_bad,
                            size_t good);

/* check on every buffer of every level, every dtype, fused and split. */
static int each_buffer(buffer_check check) {
    int refused = 0;
    for (int d = 0; d < 3; d++)
        for (int split = 0; split <= 1; split++) {
            fixture f;
            fixture_make(&f, DTYPES[d], split);
            size_t offs[3];
            const size_t n_bad = bad_offsets(DTYPES[d], offs);
            for (int l = 0; l < f.s.L; l++)
                for (int part = 0; part < (split ? 3 : 1); part++) {
                    refused += check(&f, l, part, split ? ROLES[part] : "fused", offs, n_bad, good_offset(DTYPES[d]));
                    restore(&f.t, l);
                }
            fixture_free(&f);
        }
    return refused;
}

static int check_input(fixture *f, int l, int part, const char *role, const size_t *bad, size_t n_bad,
                       size_t good) {
    char which[32];
    snprintf(which, sizeof which, "level %d: %s", l, role);
    void *block;
    for (size_t k = 0; k < n_bad; k++) {
        shift_part(&f->t, l, part, 0, bad[k], &block);
        ts_expect_refused(f->ctx, &f->t.batch, YOLOXLOSS_ERR_INVALID_ARGUMENT, which, "aligned");
        free(block);
    }
    /* aligned to the element size, not to more: accepted, the same losses */
    shift_part(&f->t, l, part, 0, good, &block);
    yoloxloss_losses got;
    assert_int_equal(yoloxloss_forward(f->ctx, &f->t.batch, &got), YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&got, &f->want));
    free(block);
    restore(&f->t, l);
    /* the forward held for the next check reads the buffers in place */
    assert_int_equal(yoloxloss_forward(f->ctx, &f->t.batch, &got), YOLOXLOSS_OK);
    return (int)n_bad;
}

static void test_misaligned_inputs_refused(void **state) {
    (void)state;
    /* 16-bit: 1 offset x (2 fused + 6 split buffers) x 2 dtypes; float32: 3 x 8 */
    assert_int_equal(each_buffer(check_input), 2 * 8 + 3 * 8);
}

/* Bytes of every gradient buffer of t equal to `fill`. */
static void expect_all_bytes(const ts_typed_scene *t, const void *const shifted_buf, size_t shifted_bytes,
                             unsigned char fill) {
    for (int l = 0; l < t->L; l++)
        for (int k = 0; k < 3; k++) {
            const unsigned char *p = t->grad[l][k];
            if (!p) continue;
            for (size_t i = 0; i < t->count[l][k] * esize(t->dtype[l]); i++)
                if (p[i] != fill) fail_msg("level %d buffer %d byte %zu written after a refusal", l, k, i);
        }
    const unsigned char *q = shifted_buf;
    for (size_t i = 0; i < shifted_bytes; i++)
        if (q[i] != fill) fail_msg("the misaligned buffer's byte %zu written after a refusal", i);
}

static void fill_grads(ts_typed_scene *t, unsigned char fill) {
    for (int l = 0; l < t->L; l++)
        for (int k = 0; k < 3; k++)
            if (t->grad[l][k]) memset(t->grad[l][k], fill, t->count[l][k] * esize(t->dtype[l]));
}

/* Overwrite and accumulate: each misaligned offset refused with every
 * gradient buffer untouched; the aligned one gives the gradient of the
 * buffers in place. */
static int check_gradient(fixture *f, int l, int part, const char *role, const size_t *bad, size_t n_bad,
                          size_t good) {
    char which[48];
    snprintf(which, sizeof which, "level %d: gradient buffer %s", l, role);
    const size_t bytes = f->t.count[l][part] * esize(f->t.dtype[l]);
    void *block;
    for (int acc = 0; acc <= 1; acc++) {
        for (size_t k = 0; k < n_bad; k++) {
            fill_grads(&f->t, 0xa5);
            void *p = shift_part(&f->t, l, part, 1, bad[k], &block);
            const yoloxloss_status st = yoloxloss_backward(f->ctx, f->t.g, NULL, acc);
            if (st != YOLOXLOSS_ERR_INVALID_ARGUMENT) fail_msg("status %d (%s)", (int)st, yoloxloss_last_error(f->ctx));
            const char *msg = yoloxloss_last_error(f->ctx);
            if (!strstr(msg, which) || !strstr(msg, "aligned"))
                fail_msg("\"%s\" does not name %s and its alignment", msg, which);
            expect_all_bytes(&f->t, p, bytes, 0xa5);
            free(block);
            restore(&f->t, l);
        }
        fill_grads(&f->t, 0x3c);
        assert_int_equal(yoloxloss_backward(f->ctx, f->t.g, NULL, acc), YOLOXLOSS_OK);
        void *want = malloc(bytes);
        assert_non_null(want);
        memcpy(want, f->t.grad[l][part], bytes);
        fill_grads(&f->t, 0x3c);
        void *p = shift_part(&f->t, l, part, 1, good, &block);
        assert_int_equal(yoloxloss_backward(f->ctx, f->t.g, NULL, acc), YOLOXLOSS_OK);
        assert_memory_equal(p, want, bytes);
        free(want);
        free(block);
        restore(&f->t, l);
    }
    return 2 * (int)n_bad;
}

static void test_misaligned_gradients_refused(void **state) {
    (void)state;
    assert_int_equal(each_buffer(check_gradient), 2 * (2 * 8 + 3 * 8));
}

static void test_misaligned_gt_arrays_refused(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, YOLOXLOSS_DTYPE_FLOAT32, 0);
    const yoloxloss_batch good = f.t.batch;
    int total = 0;
    for (int b = 0; b < f.s.B; b++) total += f.s.num_gt[b];
    assert_true(total > 0);
    const size_t sizes[3] = {(size_t)f.s.B * 4, (size_t)total * 4, (size_t)total * 16};
    const void *arrays[3] = {good.num_gt, good.gt_classes, good.gt_boxes};
    const char *names[3] = {"batch.num_gt", "batch.gt_classes", "batch.gt_boxes"};
    for (int k = 0; k < 3; k++)
        for (size_t off = 1; off <= 4; off++) {
            void *block;
            void *p = shifted(arrays[k], sizes[k], off, &block);
            yoloxloss_batch b = good;
            if (k == 0) b.num_gt = p;
            if (k == 1) b.gt_classes = p;
            if (k == 2) b.gt_boxes = p;
            if (off < 4) {
                ts_expect_refused(f.ctx, &b, YOLOXLOSS_ERR_INVALID_ARGUMENT, names[k], "aligned");
            } else {
                yoloxloss_losses got;
                assert_int_equal(yoloxloss_forward(f.ctx, &b, &got), YOLOXLOSS_OK);
                assert_true(ts_losses_equal(&got, &f.want));
            }
            free(block);
        }
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misaligned_inputs_refused),
        cmocka_unit_test(test_misaligned_gradients_refused),
        cmocka_unit_test(test_misaligned_gt_arrays_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
