/* sched/ctx_ucontext.c -- the portable context back end, on ucontext.
 *
 * Used where there is no assembly switch (or with -DARBOR_CTX_UCONTEXT=ON).
 * It is correct everywhere glibc is, and slow: glibc's swapcontext makes an
 * rt_sigprocmask system call on every switch.  This file lays out the first
 * activation; ctx.c calls swapcontext() itself, with the same sanitizer
 * bookkeeping as for the assembly back ends.  Under ASan, the
 * swapcontext interceptor still prints a one-time warning that it "doesn't
 * fully support" ucontext; with the fiber annotations that is only noise.
 */
#if !defined(ARBOR_CTX_UCONTEXT)
#error "ctx_ucontext.c is the ARBOR_CTX_UCONTEXT back end"
#endif

#include "sched/ctx.h"

#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

/* What the first activation needs.  makecontext() can only pass ints, so it
 * gets the address of this record, split in two, and the record lives at
 * the top of the new stack, where nothing else is yet. */
struct start {
  arbor__ctx_entry entry;
  void *arg;
};

static void start_context(int lo32, int hi32)
{
  uint64_t bits = (uint64_t)(unsigned)hi32 << 32 | (unsigned)lo32;
  const struct start *st = (const struct start *)(uintptr_t)bits;

  st->entry(st->arg);
  abort(); /* entry functions must never return */
}

void arbor__ctx_uc_make(struct arbor__ctx *ctx, void *lo, size_t size,
                        arbor__ctx_entry entry, void *arg)
{
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  struct start *st = (struct start *)(top - ((sizeof(*st) + 15) & ~(size_t)15));
  uint64_t bits = (uintptr_t)st;

  st->entry = entry;
  st->arg = arg;
  /* Fails only if the kernel rejects reading the signal mask. */
  if (getcontext(&ctx->uc) != 0)
    abort();
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = (size_t)((uintptr_t)st - (uintptr_t)lo);
  ctx->uc.uc_link = NULL;
#if defined(__x86_64__)
  /* Start from the ABI's initial FP control, as the assembly back end does,
   * rather than from whatever the creator had set.  (fpregs points into uc
   * itself, which is why a ucontext context must never be moved.) */
  ctx->uc.uc_mcontext.fpregs->mxcsr = 0x1F80;
  ctx->uc.uc_mcontext.fpregs->cwd = 0x037F;
#endif
  makecontext(&ctx->uc, (void (*)(void))start_context, 2,
              (int)(unsigned)(bits & 0xFFFFFFFFu), (int)(unsigned)(bits >> 32));
}
