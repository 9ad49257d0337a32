#include <stdlib.h>
#include <string.h>

#include "buffer.h"

void *yl_alloc(const yl_allocator *a, size_t bytes) {
    if (a && a->alloc_fn) return a->alloc_fn(a->user, bytes);
    return malloc(bytes);
}

void *yl_calloc(const yl_allocator *a, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return NULL;
    void *p = yl_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void yl_free(const yl_allocator *a, void *ptr) {
    if (!ptr) return;
    if (a && a->free_fn)
        a->free_fn(a->user, ptr);
    else
        free(ptr);
}

static void *grow(yl_buffer *b, size_t bytes, int headroom) {
    if (bytes == 0) bytes = 1; /* a real pointer even when empty: ptr + 0 must be defined */
    if (bytes <= b->bytes) return b->ptr;
    /* Headroom so a slowly rising size settles after a few calls. */
    size_t want = headroom ? bytes + bytes / 4 : bytes;
    if (want < bytes) want = bytes;
    void *p = yl_alloc(b->mem, want);
    if (!p && want > bytes) {
        want = bytes;
        p = yl_alloc(b->mem, want);
    }
    if (!p) return NULL;
    /* realloc's contract, by hand: a user hook has no realloc. */
    if (b->ptr) memcpy(p, b->ptr, b->bytes);
    yl_free(b->mem, b->ptr);
    b->ptr = p;
    b->bytes = want;
    return p;
}

void *yl_buffer_reserve(yl_buffer *b, size_t bytes) { return grow(b, bytes, 1); }

void *yl_buffer_reserve_exact(yl_buffer *b, size_t bytes) { return grow(b, bytes, 0); }

void yl_buffer_free(yl_buffer *b) {
    yl_free(b->mem, b->ptr);
    b->ptr = NULL;
    b->bytes = 0;
}
