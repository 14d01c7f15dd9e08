/* sched/ctx_x86_64.S -- context switch and start trampoline, System V x86-64.
 *
 *   void arbor__ctx_switch(void **save_sp, void *load_sp);
 *
 * Contract: pushes everything the SysV ABI (3.2.1) makes callee-saved --
 * rbp, rbx, r12-r15, the control bits of MXCSR and the x87 control word --
 * onto the running stack, stores that stack pointer in *save_sp, then loads
 * load_sp and pops the same frame from there, returning to whatever called
 * arbor__ctx_switch on that stack.  Everything else is caller-saved,
 * so the C caller has already spilled what it needs.  A suspended context
 * is therefore just its stack pointer; the frame at it is, from low to high
 * addresses (make_frame() in sched/ctx.c builds the first one):
 *
 *   sp+0   MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes unused
 *   sp+8   r15, r14, r13, r12, rbx, rbp   (8 bytes each)
 *   sp+56  return address
 *
 * MXCSR's status flags go along with its control bits: one stmxcsr cannot
 * split them, and keeping a context's sticky exception flags with it is the
 * less surprising choice.  There is no CET property note on purpose: the
 * switch returns into another stack than it was called on, which a shadow
 * stack would reject, and it returns by indirect jump to addresses without
 * endbr64, which IBT would reject.  Linking this object therefore leaves CET
 * off for the whole program.
 */
/* Call-frame information lets debuggers and profilers walk through a switch. */
#define PUSH(reg) pushq %reg; .cfi_adjust_cfa_offset 8; .cfi_rel_offset reg, 0
#define POP(reg) popq %reg; .cfi_adjust_cfa_offset -8; .cfi_restore reg

        .text

        .globl  arbor__ctx_switch
        .hidden arbor__ctx_switch
        .type   arbor__ctx_switch, @function
        .p2align 4
arbor__ctx_switch:
        .cfi_startproc
        PUSH(rbp)
        PUSH(rbx)
        PUSH(r12)
        PUSH(r13)
        PUSH(r14)
        PUSH(r15)
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        /* Now on the other stack.  Its frame has the same shape, so the CFI
         * describes it as well. */
        movq    %rsi, %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        POP(r15)
        POP(r14)
        POP(r13)
        POP(r12)
        POP(rbx)
        POP(rbp)
        /* Not `ret`: the return-stack predictor would always guess our own
         * caller, never the other context's, and miss on every switch
         * (10.6 ns a switch instead of 5.2 here).  An indirect jump is
         * predicted from branch history, which learns ping-pong and
         * scheduler-loop patterns.  Its targets carry no endbr64, which is
         * fine because this object does not claim IBT (see above). */
        popq    %rcx
        .cfi_adjust_cfa_offset -8
        .cfi_register rip, rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   arbor__ctx_switch, .-arbor__ctx_switch

/* The first switch to a new context "returns" here with the entry function
 * in r12 and its argument in r13 (see arbor__ctx_make).  The stack pointer is
 * then the 16-byte aligned top, so the call gives the entry function the
 * ABI's rsp % 16 == 8.  rip is marked undefined so that debuggers and
 * unwinders stop here instead of walking off the top of the stack. */
        .globl  arbor__ctx_trampoline
        .hidden arbor__ctx_trampoline
        .type   arbor__ctx_trampoline, @function
        .p2align 4
        .cfi_startproc
        .cfi_undefined rip
        /* A debugger looks a return address up at address - 1; with this
         * byte, the one a new frame holds still lands in this FDE. */
        nop
arbor__ctx_trampoline:
        movq    %r13, %rdi
        callq   *%r12
        ud2                     /* entry functions must never return */
        .cfi_endproc
        .size   arbor__ctx_trampoline, .-arbor__ctx_trampoline

        .section .note.GNU-stack,"",@progbits
