/* The AVX-512 kernels once more, for CPUs that also have AVX512_BF16
 * (Zen 4, Cooper Lake, Sapphire Rapids and later): the same kernels, whose
 * rounding to bfloat16 uses that extension's vcvtneps2bf16 instead of bit
 * arithmetic. Compiled with the AVX-512 flags and -mavx512bf16; dispatch.c
 * gives this table to a context that runs the AVX-512 kernels on such a
 * CPU, and tests/unit/test_kernels.c checks both tables against scalar. */
#define YL_AVX512_BF16 1
#include "kernels_avx512.c"
