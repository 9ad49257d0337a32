/* A buffer that grows to the largest size asked of it and is then reused,
 * so steady-state calls of one shape allocate nothing. */
#ifndef YL_BUFFER_H
#define YL_BUFFER_H

#include <stddef.h>

typedef struct {
    void *ptr;
    size_t bytes;
} yl_buffer;

/* Makes b hold at least `bytes` (at least 1, so ptr is never NULL after a
 * success) and returns b->ptr, or NULL if allocation failed (b unchanged). */
void *yl_buffer_reserve(yl_buffer *b, size_t bytes);
void yl_buffer_free(yl_buffer *b);

#endif
