/* Chooses the kernel table for a context. The only file that asks what the
 * CPU can do; the instruction sets themselves come from simd/isa_list.inc. */
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__)
/* Bit `bit` of register `reg` (0 eax, 1 ebx, 2 ecx, 3 edx) of CPUID leaf
 * `leaf`, sub-leaf `sub`: for the features the compilers' query cannot
 * name (clang 14 knows no "f16c"). Whether the OS saves the registers these
 * use is settled by the AVX2 or AVX-512 test they come with. */
static int cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
    unsigned r[4];
    if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return 0;
    return (int)((r[reg] >> bit) & 1u);
}
#endif

/* Does the CPU (and the OS, which must save the wide registers) run isa?
 * libgcc's CPU-feature query covers both on x86-64. */
static int cpu_runs(yoloxloss_isa isa) {
    switch (isa) {
    case YOLOXLOSS_ISA_SCALAR: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    /* F16C (float16 conversions; CPUID 1, ecx bit 29) came with Ivy Bridge
     * and the first AMD AVX CPUs: every CPU with AVX2 has it. */
    case YOLOXLOSS_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_bit(1, 0, 2, 29);
    case YOLOXLOSS_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    case YOLOXLOSS_ISA_NEON: return 1; /* Advanced SIMD is part of the aarch64 baseline */
#endif
    default: return 0;
    }
}

/* Whether an AVX-512 CPU also has AVX512_BF16 (CPUID 7.1, eax bit 5), the
 * native rounding to bfloat16 of yl_kernels_avx512_bf16. */
static int cpu_has_avx512_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return cpuid_bit(7, 1, 0, 5);
#else
    return 0;
#endif
}

/* Whether the scalar code should call SLEEF's FMA functions: they give the
 * bits of the vector tables (mathf.h). */
static int cpu_has_fma(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("fma");
#elif defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

typedef struct {
    yoloxloss_isa isa;
    const char *name;
    const yl_kernels *table;
} isa_entry;

static const isa_entry ISAS[] = {
#define YL_ISA(ENUM, name) {YOLOXLOSS_ISA_##ENUM, #name, &yl_kernels_##name},
#include "simd/isa_list.inc"
};
enum { NUM_ISAS = sizeof ISAS / sizeof ISAS[0] };

const char yl_isa_names[] = "auto"
#define YL_ISA(ENUM, name) ", " #name
#include "simd/isa_list.inc"
    ;

static const isa_entry *entry_of(yoloxloss_isa isa) {
    for (int i = 0; i < NUM_ISAS; i++)
        if (ISAS[i].isa == isa) return &ISAS[i];
    return NULL;
}

int yl_isa_known(yoloxloss_isa isa) { return isa == YOLOXLOSS_ISA_AUTO || entry_of(isa) != NULL; }

int yoloxloss_isa_supported(yoloxloss_isa isa) {
    if (isa == YOLOXLOSS_ISA_AUTO) return 1;
    const isa_entry *e = entry_of(isa);
    return e != NULL && yl_kernels_built(e->table) && cpu_runs(isa);
}

const char *yoloxloss_isa_name(yoloxloss_isa isa) {
    if (isa == YOLOXLOSS_ISA_AUTO) return "auto";
    const isa_entry *e = entry_of(isa);
    return e ? e->name : "unknown";
}

int yl_isa_from_env(yoloxloss_isa *isa) {
    const char *name = getenv("YOLOXLOSS_ISA");
    *isa = YOLOXLOSS_ISA_AUTO;
    if (!name || !*name || strcmp(name, "auto") == 0) return 1;
    for (int i = 0; i < NUM_ISAS; i++)
        if (strcmp(name, ISAS[i].name) == 0) {
            *isa = ISAS[i].isa;
            return 1;
        }
    return 0;
}

const yl_kernels *yl_kernels_select(yoloxloss_isa isa) {
    if (isa == YOLOXLOSS_ISA_AUTO) {
        /* ISAS is best first; scalar, last, is always supported. */
        for (int i = 0; i < NUM_ISAS && isa == YOLOXLOSS_ISA_AUTO; i++)
            if (yoloxloss_isa_supported(ISAS[i].isa)) isa = ISAS[i].isa;
    }
    if (!yoloxloss_isa_supported(isa)) return NULL;
    if (isa == YOLOXLOSS_ISA_SCALAR && cpu_has_fma()) return &yl_kernels_scalar_fma;
    if (isa == YOLOXLOSS_ISA_AVX512 && yl_kernels_built(&yl_kernels_avx512_bf16) && cpu_has_avx512_bf16())
        return &yl_kernels_avx512_bf16;
    return entry_of(isa)->table;
}
