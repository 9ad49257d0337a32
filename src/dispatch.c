/* Chooses the kernel table for this CPU. The only file that may ask what
 * the CPU can do; today only the scalar table exists. */
#include "simd/kernels.h"

const yl_kernels *yl_kernels_select(void) { return &yl_kernels_scalar; }
