/* Two contexts whose backward calls write the same gradient buffer at the
 * same time: a caller's mistake no check can see (each context is used by
 * one thread, and each call's buffers are valid), and a real data race in
 * the library's stores. Built only under ThreadSanitizer and registered as a
 * test that must fail, it shows the TSan stage (libomp + libarcher) can see
 * races in the library at all, so its silence on test_concurrency means
 * something. (One context used by two threads at once, the canary before the
 * busy guard, is now refused with YOLOXLOSS_ERR_BUSY.) */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static ts_scene scene;
static yoloxloss_context *ctx[2];

static void *hammer(void *arg) {
    yoloxloss_context *c = arg;
    for (int i = 0; i < 20; i++) yoloxloss_backward(c, scene.g, NULL, 0);
    return NULL;
}

int main(void) {
    ts_scene_make(&scene, 2, 3, 2, 8, 3, 1);
    yoloxloss_losses l;
    for (int i = 0; i < 2; i++) {
        ctx[i] = ts_context(&scene, 1);
        if (!ctx[i] || yoloxloss_forward(ctx[i], &scene.batch, &l) != YOLOXLOSS_OK) return 2;
    }
    pthread_t a, b;
    pthread_create(&a, NULL, hammer, ctx[0]);
    pthread_create(&b, NULL, hammer, ctx[1]);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    for (int i = 0; i < 2; i++) yoloxloss_destroy(ctx[i]);
    ts_scene_free(&scene);
    return 0;
}
