/*
 * cpu.c — CPU feature detection and the choice of kernel level (cpu.h).
 *
 * x86-64: cpuid leaves 1 and 7 say what the core implements, xgetbv(0) whether the OS
 * saves the AVX / AVX-512 / AMX register state (a feature the OS does not enable is
 * treated as absent). AMX tile data additionally needs a per-process permission on Linux
 * (arch_prctl ARCH_REQ_XCOMP_PERM), requested here once when the tiles exist.
 * aarch64: AT_HWCAP bits. The result is computed once with pthread_once and read-only
 * afterwards — the only process-wide state of the engine, and it is immutable.
 *
 * Not here: the kernels (kernels_*.c) and the table that binds them (kernels.c).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) || defined(_M_X64)
#  define FVLM_X86 1
#  include <cpuid.h>
#  if defined(__linux__)
#    include <sys/syscall.h>
#    include <unistd.h>
#  endif
#elif defined(__aarch64__)
#  define FVLM_ARM64 1
#  if defined(__linux__)
#    include <sys/auxv.h>
#  endif
#endif

static fvlm_cpu_info cpu_info;
static bool level_supported(const fvlm_cpu_info *ci, fvlm_cpu_level level);
static fvlm_cpu_level cpu_active;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

#ifdef FVLM_X86
static unsigned long long read_xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_x86(fvlm_cpu_info *ci)
{
    unsigned a, b, c, d, max_leaf;
    unsigned long long xcr0 = 0;
    bool os_avx = false, os_avx512 = false, os_amx = false;

    if (!__get_cpuid(0, &max_leaf, &b, &c, &d))
        return;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    if (c & (1u << 27)) {                         /* OSXSAVE: xgetbv is usable */
        xcr0 = read_xcr0();
        os_avx = (xcr0 & 0x6) == 0x6;             /* SSE + AVX state */
        os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
        os_amx = (xcr0 & 0x60000) == 0x60000;     /* XTILECFG + XTILEDATA */
    }
    const bool avx = os_avx && (c & (1u << 28));
    ci->fma = avx && (c & (1u << 12));
    ci->f16c = avx && (c & (1u << 29));
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_sub7 = a;
    ci->avx2 = avx && (b & (1u << 5));
    ci->avx512f = os_avx512 && (b & (1u << 16));
    ci->avx512dq = ci->avx512f && (b & (1u << 17));
    ci->avx512bw = ci->avx512f && (b & (1u << 30));
    ci->avx512vl = ci->avx512f && (b & (1u << 31));
    ci->avx512vnni = ci->avx512f && (c & (1u << 11));
    ci->amx_bf16 = os_amx && (d & (1u << 22));
    ci->amx_tile = os_amx && (d & (1u << 24));
    ci->amx_int8 = os_amx && (d & (1u << 25));
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        ci->avx512bf16 = ci->avx512f && (a & (1u << 5));
    }
#if defined(__linux__)
    if (ci->amx_tile) {
        /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
        ci->amx_permitted = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
#endif
}
#endif

#ifdef FVLM_ARM64
static void detect_arm64(fvlm_cpu_info *ci)
{
    ci->neon = true;                       /* Advanced SIMD is mandatory in AArch64 */
#if defined(__linux__)
    const unsigned long hw = getauxval(AT_HWCAP);
    ci->fp16 = (hw & (1ul << 9)) && (hw & (1ul << 10)); /* HWCAP_FPHP, HWCAP_ASIMDHP */
    ci->dotprod = (hw & (1ul << 20)) != 0;              /* HWCAP_ASIMDDP */
#endif
}
#endif

static void cpu_init(void)
{
    fvlm_cpu_info *ci = &cpu_info;
    memset(ci, 0, sizeof *ci);
    ci->best = FVLM_CPU_SCALAR;
#ifdef FVLM_X86
    detect_x86(ci);
#  ifdef FVLM_HAVE_AVX2
    if (ci->avx2 && ci->fma && ci->f16c)
        ci->best = FVLM_CPU_AVX2;
#  endif
#  ifdef FVLM_HAVE_AVX512
    if (ci->best == FVLM_CPU_AVX2 && ci->avx512f && ci->avx512bw && ci->avx512vl &&
        ci->avx512dq)
        ci->best = FVLM_CPU_AVX512;
#  endif
#endif
#ifdef FVLM_ARM64
    detect_arm64(ci);
#  ifdef FVLM_HAVE_NEON
    ci->best = FVLM_CPU_NEON;
#  endif
#endif
    cpu_active = ci->best;
    const char *env = getenv("FASTVLM_CPU");
    if (env && *env) {
        const int want = fvlm_cpu_level_parse(env);
        /* Only lower, never raise: a forced level must exist on this CPU. */
        if (want >= 0 && level_supported(ci, (fvlm_cpu_level)want))
            cpu_active = (fvlm_cpu_level)want;
    }
}

const fvlm_cpu_info *fvlm_cpu_info_get(void)
{
    pthread_once(&cpu_once, cpu_init);
    return &cpu_info;
}

fvlm_cpu_level fvlm_cpu_level_active(void)
{
    pthread_once(&cpu_once, cpu_init);
    return cpu_active;
}

static bool level_supported(const fvlm_cpu_info *ci, fvlm_cpu_level level)
{
    switch (level) {
    case FVLM_CPU_SCALAR:
        return true;
    case FVLM_CPU_AVX2:
    case FVLM_CPU_AVX512:
        return ci->best != FVLM_CPU_NEON && ci->best >= level;
    case FVLM_CPU_NEON:
        return ci->best == FVLM_CPU_NEON;
    default:
        return false;
    }
}

bool fvlm_cpu_level_supported(fvlm_cpu_level level)
{
    pthread_once(&cpu_once, cpu_init);
    return level_supported(&cpu_info, level);
}

static const char *const level_names[FVLM_CPU_LEVEL_COUNT] = {"scalar", "avx2", "avx512",
                                                              "neon"};

const char *fvlm_cpu_level_name(fvlm_cpu_level level)
{
    return (unsigned)level < FVLM_CPU_LEVEL_COUNT ? level_names[level] : "?";
}

int fvlm_cpu_level_parse(const char *s)
{
    for (int i = 0; s && i < FVLM_CPU_LEVEL_COUNT; i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return -1;
}
