/* Makes a patched copy of onnxruntime see an AVX2-only CPU (see avx2_kernels.py).
 *
 * avx2_kernels.py replaces each `cpuid` (0F A2) in onnxruntime's library with `int3; nop`
 * (CC 90) and each `xgetbv` (0F 01 D0) with `int3; xchg ax, ax` (CC 66 90). Preloaded, this
 * library catches the SIGTRAP, runs the real instruction, hides AVX512, VNNI and AMX from the
 * result and resumes after the patched bytes. Only the patched library is affected: numpy and
 * Python see the real CPU.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

/* CPUID.(EAX=7, ECX=0): EBX AVX512 F DQ IFMA PF ER CD BW VL; ECX VBMI VBMI2 VNNI BITALG
 * VPOPCNTDQ; EDX 4VNNIW 4FMAPS VP2INTERSECT AMX-BF16 FP16 AMX-TILE AMX-INT8. */
#define LEAF7_EBX ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
#define LEAF7_ECX ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
#define LEAF7_EDX ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25))
/* CPUID.(EAX=7, ECX=1): EAX AVX-VNNI, AVX512-BF16, AVX-IFMA; EDX AVX-VNNI-INT8, AVX-NE-CONVERT,
 * AVX10 (onnxruntime 1.32 picks Avx2Vnni kernels from EDX bit 4). */
#define LEAF7_1_EAX ((1u << 4) | (1u << 5) | (1u << 23))
#define LEAF7_1_EDX ((1u << 4) | (1u << 5) | (1u << 19))
/* XCR0: opmask, ZMM_Hi256, Hi16_ZMM, AMX TILECFG, TILEDATA state. */
#define XCR0_HIDDEN ((1ull << 5) | (1ull << 6) | (1ull << 7) | (1ull << 17) | (1ull << 18))

const char zsl_cpuid_mask[] = "avx2"; /* benchmarks/common.py looks these symbols up */
volatile unsigned long zsl_cpuid_mask_traps = 0; /* patched instructions answered so far */

static void answer_patched_trap(int sig, siginfo_t *info, void *context) {
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *next = (const unsigned char *)reg[REG_RIP]; /* just after the int3 */
    int from_int3 = sig == SIGTRAP && info->si_code == SI_KERNEL && next[-1] == 0xCC;
    if (from_int3 && next[0] == 0x90) { /* was cpuid */
        unsigned int leaf = (unsigned int)reg[REG_RAX], sub = (unsigned int)reg[REG_RCX];
        unsigned int a, b, c, d;
        __cpuid_count(leaf, sub, a, b, c, d);
        if (leaf == 7 && sub == 0) {
            b &= ~LEAF7_EBX;
            c &= ~LEAF7_ECX;
            d &= ~LEAF7_EDX;
        } else if (leaf == 7 && sub == 1) {
            a &= ~LEAF7_1_EAX;
            d &= ~LEAF7_1_EDX;
        }
        reg[REG_RAX] = a;
        reg[REG_RBX] = b;
        reg[REG_RCX] = c;
        reg[REG_RDX] = d;
        reg[REG_RIP] += 1;
        zsl_cpuid_mask_traps++;
    } else if (from_int3 && next[0] == 0x66 && next[1] == 0x90) { /* was xgetbv */
        unsigned int index = (unsigned int)reg[REG_RCX], lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
        uint64_t value = ((uint64_t)hi << 32) | lo;
        if (index == 0) value &= ~XCR0_HIDDEN;
        reg[REG_RAX] = (uint32_t)value;
        reg[REG_RDX] = (uint32_t)(value >> 32);
        reg[REG_RIP] += 2;
        zsl_cpuid_mask_traps++;
    } else {
        signal(SIGTRAP, SIG_DFL); /* not ours: a debugger's breakpoint or a sent signal */
        raise(SIGTRAP);
    }
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = answer_patched_trap;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTRAP, &action, NULL);
}
