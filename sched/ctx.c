/* sched/ctx.c -- contexts: first-activation frames and sanitizer-aware jumps.
 *
 * The assembly back ends only move registers; this file builds the frame a
 * new context starts from, and in sanitizer builds it wraps every switch so
 * that ASan and TSan always know which stack is running.  With
 * ARBOR_CTX_UCONTEXT the first frame comes from ctx_ucontext.c and the
 * switch is swapcontext(), under the same wrappers.
 */
#include "sched/ctx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(ARBOR_HAVE_ASAN)
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ARBOR_HAVE_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(ARBOR_CTX_UCONTEXT)
/* In ctx_<abi>.S; never called, only returned into (see make_frame). */
void arbor__ctx_trampoline(void);

#if defined(__x86_64__)
/* What arbor__ctx_switch pops, lowest address first (ctx_x86_64.S). */
struct frame {
  uint32_t mxcsr;
  uint16_t x87_cw;
  uint16_t unused;
  uint64_t r15, r14, r13, r12, rbx, rbp;
  uint64_t ret;
};
#elif defined(__aarch64__)
/* What arbor__ctx_switch loads, lowest address first (ctx_aarch64.S). */
struct frame {
  uint64_t d8_d15[8];
  uint64_t x19_x28[10];
  uint64_t x29, x30;
};
#else
#error "no assembly switch for this CPU: build with ARBOR_CTX_UCONTEXT"
#endif

/* The frame sits right below the 16-byte aligned top, so popping it leaves
 * the stack pointer aligned as a call expects. */
_Static_assert(sizeof(struct frame) % 16 == 0, "frame breaks alignment");

/* Lay out the stack so that the first switch to ctx "returns" into
 * arbor__ctx_trampoline, which calls entry(arg) with the stack pointer at
 * top, as if top were the caller's stack:
 *
 *   x86-64: ret = trampoline, r12 = entry, r13 = arg, rbp = 0 (ends
 *           frame-pointer walks), other registers 0, MXCSR = 0x1F80 and x87
 *           CW = 0x037F (the ABI's initial values: round to nearest, all
 *           exceptions masked, extended precision);
 *   aarch64: x30 = trampoline, x19 = entry, x20 = arg, x29 = 0, other
 *           registers and d8-d15 0.  FPCR is not part of a context (see
 *           ctx_aarch64.S). */
static void make_frame(struct arbor__ctx *ctx, void *lo, size_t size,
                       arbor__ctx_entry entry, void *arg)
{
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  struct frame *f = (struct frame *)(top - sizeof(*f));

  memset(f, 0, sizeof(*f));
#if defined(__x86_64__)
  f->mxcsr = 0x1F80;
  f->x87_cw = 0x037F;
  f->r12 = (uintptr_t)entry;
  f->r13 = (uintptr_t)arg;
  f->ret = (uintptr_t)arbor__ctx_trampoline;
#else
  f->x19_x28[0] = (uintptr_t)entry;
  f->x19_x28[1] = (uintptr_t)arg;
  f->x30 = (uintptr_t)arbor__ctx_trampoline;
#endif
  ctx->sp = f;
}
#endif /* !ARBOR_CTX_UCONTEXT */

/* The two helpers below are always inlined: between __tsan_switch_to_fiber()
 * and the switch there must be no instrumented function entry or exit, or
 * TSan books it on the wrong fiber's shadow stack (which overflows at -O0,
 * where plain `inline` is ignored). */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The switch itself, below the sanitizer bookkeeping. */
static ALWAYS_INLINE void raw_switch(struct arbor__ctx *from,
                                     struct arbor__ctx *to)
{
#if defined(ARBOR_CTX_UCONTEXT)
  /* Fails only if the kernel rejects the signal mask. */
  if (swapcontext(&from->uc, &to->uc) != 0)
    abort();
#else
  arbor__ctx_switch(&from->sp, to->sp);
#endif
}

/* Tell the sanitizers that `to` is about to run.  fake_save is where ASan
 * parks the fake stack of the context we leave, or NULL if that context
 * never runs again, which makes ASan free it. */
static ALWAYS_INLINE void switch_begin(void **fake_save,
                                       const struct arbor__ctx *to)
{
#if defined(ARBOR_HAVE_ASAN)
  __sanitizer_start_switch_fiber(fake_save, to->stack_lo, to->stack_size);
#else
  (void)fake_save;
#endif
#if defined(ARBOR_HAVE_TSAN)
  /* TSan wants this immediately before the switch. */
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  (void)to;
}

void arbor__ctx_init_thread(struct arbor__ctx *ctx)
{
  memset(ctx, 0, sizeof(*ctx));
#if defined(ARBOR_HAVE_ASAN)
  {
    /* ASan needs the bounds of the stack it switches back to; if they
     * cannot be had, it runs with unknown bounds and may report falsely. */
    pthread_attr_t attr;
    void *lo;
    size_t size;

    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        ctx->stack_lo = lo;
        ctx->stack_size = size;
      }
      pthread_attr_destroy(&attr);
    }
  }
#endif
#if defined(ARBOR_HAVE_TSAN)
  ctx->tsan_fiber = __tsan_get_current_fiber();
  ctx->tsan_owned = 0;
#endif
}

void arbor__ctx_make(struct arbor__ctx *ctx, void *lo, size_t size,
                     arbor__ctx_entry entry, void *arg)
{
#if defined(ARBOR_HAVE_ASAN)
  ctx->asan_fake = NULL;
  ctx->stack_lo = lo;
  ctx->stack_size = size;
  /* A reused stack can still carry the redzones of frames that never
   * returned in its previous life; they would be false reports now. */
  __asan_unpoison_memory_region(lo, size);
#endif
#if defined(ARBOR_HAVE_TSAN)
  ctx->tsan_fiber = __tsan_create_fiber(0);
  ctx->tsan_owned = 1;
#endif
#if defined(ARBOR_CTX_UCONTEXT)
  arbor__ctx_uc_make(ctx, lo, size, entry, arg);
#else
  make_frame(ctx, lo, size, entry, arg);
#endif
}

void arbor__ctx_destroy(struct arbor__ctx *ctx)
{
#if defined(ARBOR_HAVE_TSAN)
  if (ctx->tsan_owned)
    __tsan_destroy_fiber(ctx->tsan_fiber);
  ctx->tsan_fiber = NULL;
  ctx->tsan_owned = 0;
#else
  (void)ctx;
#endif
}

void arbor__ctx_started(void)
{
#if defined(ARBOR_HAVE_ASAN)
  /* A new context has no fake stack to take back, and we have no use for
   * the bounds of the stack we came from. */
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

#if defined(ARBOR_HAVE_ASAN) || defined(ARBOR_HAVE_TSAN) || \
    defined(ARBOR_CTX_UCONTEXT)
void arbor__ctx_jump(struct arbor__ctx *from, struct arbor__ctx *to)
{
#if defined(ARBOR_HAVE_ASAN)
  switch_begin(&from->asan_fake, to);
#else
  switch_begin(NULL, to);
#endif
  raw_switch(from, to);
#if defined(ARBOR_HAVE_ASAN)
  /* Back on our own stack, resumed by someone's jump: take our fake stack
   * back. */
  __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}
#endif

_Noreturn void arbor__ctx_jump_final(struct arbor__ctx *from,
                                     struct arbor__ctx *to)
{
  switch_begin(NULL, to);
  raw_switch(from, to);
  /* Only a jump back into a context that has ended gets here. */
  abort();
}
