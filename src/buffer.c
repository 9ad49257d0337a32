#include <stdlib.h>

#include "buffer.h"

void *yl_buffer_reserve(yl_buffer *b, size_t bytes) {
    if (bytes == 0) bytes = 1; /* a real pointer even when empty: ptr + 0 must be defined */
    if (bytes <= b->bytes) return b->ptr;
    /* Grow with headroom so a slowly rising size settles after a few calls. */
    size_t want = bytes + bytes / 4;
    if (want < bytes) want = bytes;
    void *p = realloc(b->ptr, want);
    if (!p) {
        want = bytes;
        p = realloc(b->ptr, want);
        if (!p) return NULL;
    }
    b->ptr = p;
    b->bytes = want;
    return p;
}

void yl_buffer_free(yl_buffer *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->bytes = 0;
}
