/*
 * cpu.h — what the CPU we run on can do, detected once per process, and the kernel level
 * chosen from it (x86-64: cpuid + xgetbv, plus the Linux AMX permission request;
 * aarch64: getauxval(AT_HWCAP)).
 *
 * One x86-64 binary runs everywhere: SIMD kernels are compiled per file with their own
 * target flags and only reached through the table picked here. The environment variable
 * FASTVLM_CPU ("scalar", "avx2", "avx512", "neon") lowers the level for testing; a level
 * the CPU lacks is never chosen. Not here: the kernels themselves (kernels_*.c) and the
 * table of function pointers (kernels_arch.h).
 */
#ifndef FVLM_CPU_H
#define FVLM_CPU_H

#include <stdbool.h>

typedef enum fvlm_cpu_level {
    FVLM_CPU_SCALAR = 0,   /* portable C (kernels_scalar.c) */
    FVLM_CPU_AVX2 = 1,     /* x86-64: AVX2 + FMA + F16C */
    FVLM_CPU_AVX512 = 2,   /* x86-64: AVX-512 F/BW/VL/DQ (+ the AVX2 set) */
    FVLM_CPU_NEON = 3,     /* aarch64: Advanced SIMD (always there) */
    FVLM_CPU_LEVEL_COUNT
} fvlm_cpu_level;

typedef struct fvlm_cpu_info {
    /* x86-64 (all false elsewhere); each true only if the OS saves the registers too */
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
    bool amx_tile, amx_int8, amx_bf16;
    bool amx_permitted;    /* arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded */
    /* aarch64 (all false elsewhere) */
    bool neon, dotprod, fp16;
    fvlm_cpu_level best;   /* highest level this CPU supports and this build contains */
} fvlm_cpu_info;

/* Detected once (pthread_once); never NULL. */
const fvlm_cpu_info *fvlm_cpu_info_get(void);

/* The level the kernels use: `best`, lowered by FASTVLM_CPU if set (read once). */
fvlm_cpu_level fvlm_cpu_level_active(void);

/* True when `level` can run here (and was compiled in). SCALAR is always true. */
bool fvlm_cpu_level_supported(fvlm_cpu_level level);

/* "scalar", "avx2", "avx512", "neon"; "?" out of range. */
const char *fvlm_cpu_level_name(fvlm_cpu_level level);

/* The level named `s` (case-sensitive, as above), or -1. */
int fvlm_cpu_level_parse(const char *s);

#endif
