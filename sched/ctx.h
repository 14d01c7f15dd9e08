/* sched/ctx.h -- switching the CPU between stacks.
 *
 * A context is a suspended flow of control: for the assembly back ends just
 * the stack pointer at which its callee-saved registers were pushed (the
 * rest of its state lives on its own stack).  The hand-written switch
 * (ctx_x86_64.S, ctx_aarch64.S) saves every callee-saved register of its
 * ABI, including MXCSR and the x87 control word on x86-64 and d8-d15 on
 * aarch64.  Other targets use the portable ucontext back end (ctx_ucontext.c),
 * chosen by CMake (ARBOR_CTX_UCONTEXT).
 *
 * Every switch goes through arbor__ctx_jump().  In ASan builds it brackets
 * the switch with __sanitizer_start_switch_fiber/finish_switch_fiber, and in
 * TSan builds it calls __tsan_switch_to_fiber, so the sanitizers always know
 * which stack is live.  Without sanitizers it is the bare switch, inlined.
 */
#ifndef ARBOR_SCHED_CTX_H
#define ARBOR_SCHED_CTX_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARBOR_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARBOR_HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ARBOR_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ARBOR_HAVE_TSAN 1
#endif
#endif

#if defined(ARBOR_CTX_UCONTEXT)
#include <ucontext.h>
#endif

struct arbor__ctx {
#if defined(ARBOR_CTX_UCONTEXT)
  ucontext_t uc;
#else
  void *sp; /* saved stack pointer; the registers sit just above it */
#endif
#if defined(ARBOR_HAVE_ASAN)
  void *asan_fake;      /* ASan fake stack of this context while suspended */
  const void *stack_lo; /* lowest address of this context's stack */
  size_t stack_size;
#endif
#if defined(ARBOR_HAVE_TSAN)
  void *tsan_fiber;
  int tsan_owned; /* created by arbor__ctx_make, so destroyed with it */
#endif
};

/* An entry function.  It must never return: a context ends by jumping away
 * for the last time with arbor__ctx_jump_final(). */
typedef void (*arbor__ctx_entry)(void *arg);

/* Describe the calling thread's own (native) stack as a context, so that
 * contexts can jump back to it.  Call once per thread before the first
 * arbor__ctx_jump() away from it. */
void arbor__ctx_init_thread(struct arbor__ctx *ctx);

/* Prepare ctx to start running entry(arg) on the stack [lo, lo + size) at
 * the next jump to it.  The top of the stack is aligned as the ABI wants. */
void arbor__ctx_make(struct arbor__ctx *ctx, void *lo, size_t size,
                     arbor__ctx_entry entry, void *arg);

/* Release what arbor__ctx_make() attached to ctx (a TSan fiber).  The stack
 * itself belongs to the caller. */
void arbor__ctx_destroy(struct arbor__ctx *ctx);

/* Must be the first call of every entry function: completes the sanitizer
 * side of the jump that started it.  A no-op without sanitizers. */
void arbor__ctx_started(void);

/* The bare switch: save the current context into *save_sp and resume the one
 * saved at load_sp.  Defined in the per-ABI assembly file. */
void arbor__ctx_switch(void **save_sp, void *load_sp);

#if defined(ARBOR_HAVE_ASAN) || defined(ARBOR_HAVE_TSAN) ||                   \
    defined(ARBOR_CTX_UCONTEXT)
/* Suspend `from` and resume `to`; returns when something jumps back. */
void arbor__ctx_jump(struct arbor__ctx *from, struct arbor__ctx *to);
#else
static inline void arbor__ctx_jump(struct arbor__ctx *from,
                                   struct arbor__ctx *to)
{
  arbor__ctx_switch(&from->sp, to->sp);
}
#endif

/* The stack pointer a suspended context was saved at, for the stack overflow
 * check; NULL where the back end does not expose it (ucontext). */
static inline const void *arbor__ctx_saved_sp(const struct arbor__ctx *ctx)
{
#if defined(ARBOR_CTX_UCONTEXT)
  (void)ctx;
  return NULL;
#else
  return ctx->sp;
#endif
}

/* The last jump away from a context whose stack is about to be released:
 * tells ASan to drop the fake stack of `from`.  Never returns. */
_Noreturn void arbor__ctx_jump_final(struct arbor__ctx *from,
                                     struct arbor__ctx *to);

#if defined(ARBOR_CTX_UCONTEXT)
/* Private to ctx.c: the first-activation layout of the ucontext back end
 * (ctx_ucontext.c), standing in for the assembly ones' frame. */
void arbor__ctx_uc_make(struct arbor__ctx *ctx, void *lo, size_t size,
                        arbor__ctx_entry entry, void *arg);
#endif

#endif /* ARBOR_SCHED_CTX_H */
