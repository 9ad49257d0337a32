/* The library's only way to get memory: the caller's allocator hook (or
 * malloc/free), and a buffer that grows to the largest size asked of it and
 * is then reused, so steady-state calls of one shape allocate nothing. */
#ifndef YL_BUFFER_H
#define YL_BUFFER_H

#include <stddef.h>

/* config.alloc_fn / free_fn / alloc_user; both NULL means malloc/free. */
typedef struct {
    void *(*alloc_fn)(void *user, size_t bytes);
    void (*free_fn)(void *user, void *ptr);
    void *user;
} yl_allocator;

/* NULL a (or a hook-less a) means malloc/free. yl_free(a, NULL) does nothing. */
void *yl_alloc(const yl_allocator *a, size_t bytes);
void *yl_calloc(const yl_allocator *a, size_t count, size_t size);
void yl_free(const yl_allocator *a, void *ptr);

typedef struct {
    void *ptr;
    size_t bytes;
    const yl_allocator *mem; /* NULL: malloc/free */
} yl_buffer;

/* Makes b hold at least `bytes` (at least 1, so ptr is never NULL after a
 * success) and returns b->ptr, or NULL if allocation failed (b unchanged).
 * Growing keeps the old contents, as realloc would. */
void *yl_buffer_reserve(yl_buffer *b, size_t bytes);
/* The same without headroom: growing b to exactly `bytes`. */
void *yl_buffer_reserve_exact(yl_buffer *b, size_t bytes);
void yl_buffer_free(yl_buffer *b);

#endif
