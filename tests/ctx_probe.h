/* tests/ctx_probe.h -- the register probe shared by test_ctx.c and
 * ctx_selftest.c (which cannot use Criterion: it runs under qemu-aarch64).
 * Include it in one translation unit only: it defines the probe. */
#ifndef ARBOR_TESTS_CTX_PROBE_H
#define ARBOR_TESTS_CTX_PROBE_H

#include <stdint.h>

/* probe_callee_saved(in, out, fn, a, b) loads every callee-saved register
 * from in[], calls fn(a, b) and stores what the registers hold afterwards
 * in out[].  It is assembly so that no compiled code sits between loading
 * the registers and the switch, where it could save and restore one on the
 * switch's behalf and hide a register the switch forgot. */
void probe_callee_saved(const uint64_t *in, uint64_t *out,
                        void (*fn)(void *, void *), void *a, void *b);

#if defined(__x86_64__)
#define NREGS 6
#define NINTREGS 6
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12",
                                             "r13", "r14", "r15"};
__asm__(".text\n"
        ".globl probe_callee_saved\n"
        ".hidden probe_callee_saved\n"
        ".type probe_callee_saved, @function\n"
        "probe_callee_saved:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %rsi\n" /* out; the 7th push also aligns rsp for the call */
        "  movq %rdx, %rax\n"
        "  movq 0(%rdi), %rbx\n"
        "  movq 8(%rdi), %rbp\n"
        "  movq 16(%rdi), %r12\n"
        "  movq 24(%rdi), %r13\n"
        "  movq 32(%rdi), %r14\n"
        "  movq 40(%rdi), %r15\n"
        "  movq %rcx, %rdi\n"
        "  movq %r8, %rsi\n"
        "  callq *%rax\n"
        "  popq %rsi\n"
        "  movq %rbx, 0(%rsi)\n"
        "  movq %rbp, 8(%rsi)\n"
        "  movq %r12, 16(%rsi)\n"
        "  movq %r13, 24(%rsi)\n"
        "  movq %r14, 32(%rsi)\n"
        "  movq %r15, 40(%rsi)\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size probe_callee_saved, .-probe_callee_saved\n");
#elif defined(__aarch64__)
#define NREGS 19
#define NINTREGS 11
static const char *const reg_names[NREGS] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "x29", "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15"};
__asm__(".text\n"
        ".globl probe_callee_saved\n"
        ".hidden probe_callee_saved\n"
        ".type probe_callee_saved, %function\n"
        "probe_callee_saved:\n"
        "  hint #34\n" /* bti c */
        "  stp x29, x30, [sp, #-176]!\n"
        "  stp x19, x20, [sp, #16]\n"
        "  stp x21, x22, [sp, #32]\n"
        "  stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n"
        "  stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  str x1, [sp, #160]\n"
        "  mov x9, x2\n"
        "  ldp x19, x20, [x0, #0]\n"
        "  ldp x21, x22, [x0, #16]\n"
        "  ldp x23, x24, [x0, #32]\n"
        "  ldp x25, x26, [x0, #48]\n"
        "  ldp x27, x28, [x0, #64]\n"
        "  ldr x29, [x0, #80]\n"
        "  ldp d8, d9, [x0, #88]\n"
        "  ldp d10, d11, [x0, #104]\n"
        "  ldp d12, d13, [x0, #120]\n"
        "  ldp d14, d15, [x0, #136]\n"
        "  mov x0, x3\n"
        "  mov x1, x4\n"
        "  blr x9\n"
        "  ldr x1, [sp, #160]\n"
        "  stp x19, x20, [x1, #0]\n"
        "  stp x21, x22, [x1, #16]\n"
        "  stp x23, x24, [x1, #32]\n"
        "  stp x25, x26, [x1, #48]\n"
        "  stp x27, x28, [x1, #64]\n"
        "  str x29, [x1, #80]\n"
        "  stp d8, d9, [x1, #88]\n"
        "  stp d10, d11, [x1, #104]\n"
        "  stp d12, d13, [x1, #120]\n"
        "  stp d14, d15, [x1, #136]\n"
        "  ldp x19, x20, [sp, #16]\n"
        "  ldp x21, x22, [sp, #32]\n"
        "  ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n"
        "  ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size probe_callee_saved, .-probe_callee_saved\n");
#else
#error "ctx_probe.h knows the registers of x86-64 and aarch64 only"
#endif

#endif /* ARBOR_TESTS_CTX_PROBE_H */
