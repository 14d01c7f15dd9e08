/* sched/ctx_aarch64.S -- context switch and start trampoline, AAPCS64.
 *
 *   void arbor__ctx_switch(void **save_sp, void *load_sp);
 *
 * Contract: saves everything AAPCS64 makes callee-saved -- x19-x28, the
 * frame pointer x29, the link register x30 and the low halves d8-d15 of
 * v8-v15 -- in a 160-byte frame on the running stack, stores that stack
 * pointer in *save_sp, then loads load_sp, reloads the same frame from there
 * and returns to the x30 found in it.  The frame, from low to high addresses
 * (make_frame() in sched/ctx.c builds the first one):
 *
 *   sp+0    d8 ... d15
 *   sp+64   x19 ... x28
 *   sp+144  x29, x30
 *
 * FPCR is not saved, by design.  AAPCS64 does not make it callee-saved: its
 * rounding, flush-to-zero and trap bits are "global state of the
 * application", changed only through support functions such as fesetround.
 * So a context that changes them changes them for its thread, and for the
 * contexts that run there after it; code that needs another mode must set
 * and restore it without switching in between.  FPSR (sticky flags) is not
 * preserved across calls at all.  On x86-64, by contrast, the ABI makes
 * MXCSR and the x87 control word callee-saved, and ctx_x86_64.S saves them.
 *
 * We return with `ret`, although the return predictor then misses (it
 * expects our own caller), where ctx_x86_64.S jumps instead: under BTI, a
 * `br` must land on a `bti j`, which ordinary return addresses are not.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define BTI_C hint #34 /* bti c, spelled so that any assembler takes it */
#define ARBOR_BTI 1
#else
#define BTI_C
#define ARBOR_BTI 0
#endif

        .text

        .globl  arbor__ctx_switch
        .hidden arbor__ctx_switch
        .type   arbor__ctx_switch, %function
        .p2align 4
arbor__ctx_switch:
        .cfi_startproc
        BTI_C
        sub     sp, sp, #160
        .cfi_def_cfa_offset 160
        stp     d8, d9, [sp, #0]
        stp     d10, d11, [sp, #16]
        stp     d12, d13, [sp, #32]
        stp     d14, d15, [sp, #48]
        stp     x19, x20, [sp, #64]
        stp     x21, x22, [sp, #80]
        stp     x23, x24, [sp, #96]
        stp     x25, x26, [sp, #112]
        stp     x27, x28, [sp, #128]
        stp     x29, x30, [sp, #144]
        .cfi_offset x29, -16
        .cfi_offset x30, -8
        mov     x9, sp
        str     x9, [x0]
        /* Now on the other stack; its frame has the same shape. */
        mov     sp, x1
        ldp     d8, d9, [sp, #0]
        ldp     d10, d11, [sp, #16]
        ldp     d12, d13, [sp, #32]
        ldp     d14, d15, [sp, #48]
        ldp     x19, x20, [sp, #64]
        ldp     x21, x22, [sp, #80]
        ldp     x23, x24, [sp, #96]
        ldp     x25, x26, [sp, #112]
        ldp     x27, x28, [sp, #128]
        ldp     x29, x30, [sp, #144]
        add     sp, sp, #160
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        ret
        .cfi_endproc
        .size   arbor__ctx_switch, .-arbor__ctx_switch

/* The first switch to a new context "returns" here with the entry function
 * in x19 and its argument in x20 (see arbor__ctx_make), and sp at the
 * 16-byte aligned top of the stack.  It is entered by `ret`, which BTI does
 * not check, so it needs no landing pad.  x30 is marked undefined so that
 * debuggers and unwinders stop here. */
        .globl  arbor__ctx_trampoline
        .hidden arbor__ctx_trampoline
        .type   arbor__ctx_trampoline, %function
        .p2align 4
        .cfi_startproc
        .cfi_undefined x30
        /* A debugger looks a return address up at address - 1; with this
         * instruction, the one a new frame holds still lands in this FDE. */
        nop
arbor__ctx_trampoline:
        mov     x0, x20
        blr     x19
        udf     #0              /* entry functions must never return */
        .cfi_endproc
        .size   arbor__ctx_trampoline, .-arbor__ctx_trampoline

#if ARBOR_BTI
/* Tell the linker that this object is BTI-compatible, or it would turn BTI
 * off for the whole program (GNU_PROPERTY_AARCH64_FEATURE_1_AND = BTI). */
        .pushsection .note.gnu.property, "a"
        .balign 8
        .long   4                       /* name size */
        .long   16                      /* descriptor size */
        .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4                       /* property data size */
        .long   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
        .long   0                       /* padding to 8 bytes */
        .popsection
#endif

        .section .note.GNU-stack,"",%progbits
