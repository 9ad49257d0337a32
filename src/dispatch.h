/* Which kernel table a context uses: the only code that asks what the CPU
 * can do. */
#ifndef YL_DISPATCH_H
#define YL_DISPATCH_H

#include "simd/kernels.h"
#include "yoloxloss.h"

/* The table of isa, or for YOLOXLOSS_ISA_AUTO the best this CPU runs;
 * NULL if isa is not built in or the CPU lacks it. The scalar table is the
 * one whose exp/log give the bits of this CPU's vector tables (FMA or not);
 * the AVX-512 one rounds to bfloat16 with AVX512_BF16 where the CPU has it. */
const yl_kernels *yl_kernels_select(yoloxloss_isa isa);

/* Whether isa is YOLOXLOSS_ISA_AUTO or one of the instruction sets the
 * library knows (isa_list.inc), built in or not. */
int yl_isa_known(yoloxloss_isa isa);

/* Reads the YOLOXLOSS_ISA environment variable into *isa (AUTO if unset or
 * empty); 0 if it names no instruction set. */
int yl_isa_from_env(yoloxloss_isa *isa);

/* "auto, avx512, avx2, ...": every name YOLOXLOSS_ISA accepts, for messages. */
extern const char yl_isa_names[];

#endif
