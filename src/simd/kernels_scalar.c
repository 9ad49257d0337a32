/* The scalar kernel tables: the same kernels (kernels_scalar.inc) once with
 * SLEEF's portable scalar functions and once with its FMA ones. dispatch.c
 * gives a CPU with FMA the second, whose bits match the vector tables'. */
#include <string.h>

#include "../bce.h"
#include "../box.h"
#include "kernels.h"

#define YL_SCALAR_NAME scalar
#define YL_SCALAR_MATH yl_mathf_portable
#include "kernels_scalar.inc"

#define YL_SCALAR_NAME scalar_fma
#define YL_SCALAR_MATH yl_mathf_fma
#include "kernels_scalar.inc"
