/* One context used by two threads at once, which the header forbids: a real
 * data race. Built only under ThreadSanitizer and registered as a test that
 * must fail, it shows the TSan stage (libomp + libarcher) can see races in
 * the library at all, so its silence on test_concurrency means something. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static ts_scene scene;
static yoloxloss_context *shared_ctx;

static void *hammer(void *arg) {
    (void)arg;
    yoloxloss_losses l;
    for (int i = 0; i < 20; i++) yoloxloss_forward(shared_ctx, &scene.batch, &l);
    return NULL;
}

int main(void) {
    ts_scene_make(&scene, 2, 3, 2, 8, 3, 1);
    shared_ctx = ts_context(&scene, 1);
    if (!shared_ctx) return 2;
    pthread_t a, b;
    pthread_create(&a, NULL, hammer, NULL);
    pthread_create(&b, NULL, hammer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    yoloxloss_destroy(shared_ctx);
    ts_scene_free(&scene);
    return 0;
}
