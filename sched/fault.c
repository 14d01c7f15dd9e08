/* sched/fault.c -- a process that runs off its stack, caught at the guard
 * page.
 *
 * A guarded stack has a PROT_NONE page right below its lowest usable byte
 * (sched/stack.c), so the first access past the end faults with SIGSEGV.
 * While any runtime exists, a handler installed with SA_SIGINFO|SA_ONSTACK
 * looks at every SIGSEGV and SIGBUS.  It runs on an alternate signal stack
 * that each worker thread gets at start (the overflowing stack has no room
 * left, so without one the kernel could not deliver the signal at all and
 * would kill the program).  A fault is ours when the faulting thread is a
 * worker running a task whose stack is guarded and the faulting address
 * lies in that stack's guard page; anything else is passed on, faithfully,
 * to the action that was installed before ours: a handler is called as it
 * asked (with siginfo or not, under its own mask); the default action is
 * put back and the fault repeated, so that the program dies of it exactly
 * as it would have without us (a SIGSEGV that was ignored counts as
 * default: the kernel does not ignore a fault either).  Under ASan, the
 * action found is ASan's own handler, whose report is thus kept.
 *
 * An overflow of ours, with the default ARBOR_OVERFLOW_EXIT, ends the
 * task alone: the handler puts back the signal mask of the interrupted code
 * (it will never return to undo it), marks the task ARBOR__SWITCH_CRASH and
 * makes the task's final jump to its worker's scheduler context -- the same
 * switch a task's exit makes, from the alternate stack instead of the
 * task's own, which is never touched again.  The worker, back in run(),
 * finds the reason (after_switch() in worker.c): the task is DONE, its
 * stack is discarded (unmapped, or for an arena slot made PROT_NONE and
 * never used again), and runtime/ ends the process without running any of
 * its code (hooks.crashed).  This works with every context back end: the
 * assembly switches only move registers and the stack pointer; ucontext's
 * swapcontext() also reloads the worker's signal mask; the ASan wrapper is
 * told the task's fiber is gone, and the alternate stack's frames, which
 * never return, are unpoisoned first.  Under TSan, whose own signal
 * wrapper expects the handler to return, EXIT falls back to ABORT.
 *
 * The task is ended only when that leaves the program consistent.  The
 * handler aborts instead, printing the same line as ARBOR_OVERFLOW_ABORT,
 * when the overflow happened
 *  - inside a runtime critical section (arbor__crit_enter(): so far a
 *    process's spinlock held, a spawn or a record's recycling half done), or
 *    while the worker hands over from one task to another (w->pending).
 *    The runtime's mutexes other than process.c's (registry, timers,
 *    stores, the injection queue, the idle list) do not count themselves
 *    yet: an overflow while one is held would leave it held;
 *  - with the program counter in the C library, which may hold a lock of
 *    its own (malloc's arena, a FILE's lock): it would stay locked forever;
 *  - in a task runtime/ says cannot be ended alone (hooks.recoverable: a
 *    supervisor, whose own cleanup must stop its children).
 * What the process's own code held (a user lock, memory it meant to free)
 * stays held, as with any ending that runs no defers.
 *
 * Nothing here runs on a context switch or a message hop: the only cost is
 * paid at fault time, at worker start and exit, and at runtime create and
 * destroy.
 */
#include "sched/fault.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "sched/worker.h"

#if defined(ARBOR_HAVE_ASAN)
#include <sanitizer/asan_interface.h>
#endif

/* The handler needs little, but a handler we chain to may need much (ASan's
 * report symbolises a stack trace).  MAP_NORESERVE: only the pages touched
 * cost memory. */
#define ALT_STACK_SIZE ((size_t)64 * 1024)

/* ---- the process-wide handler ---- */

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned install_refs; /* under install_lock */
/* The actions found by the first install.  Written under install_lock
 * before the sigaction() call that installs our handler, which orders the
 * writes before any delivery to it; read by the handler only. */
static struct sigaction prev_segv, prev_bus;
/* The executable segments of the C library, [libc_lo, libc_hi), or 0, 0
 * if it is not a separate object (a static link).  Written at the first
 * install, like prev_*. */
static uintptr_t libc_lo, libc_hi;

/* Runtime critical sections of this thread (see sched.h).  Volatile: the
 * handler reads it on the same thread, between any two instructions. */
static _Thread_local volatile unsigned crit_depth
    __attribute__((tls_model("initial-exec")));

/* This thread's alternate signal stack, and the one it had before. */
struct alt_stack {
  char *map;   /* the mapping: a guard page, then the stack */
  size_t len;  /* of the mapping */
  stack_t old; /* what sigaltstack() reported before ours */
};
static _Thread_local struct alt_stack alt
    __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) void arbor__crit_enter(void)
{
  crit_depth++;
}

__attribute__((noinline)) void arbor__crit_exit(void)
{
  crit_depth--;
}

static void say(const char *s)
{
  size_t n = strlen(s);

  while (n > 0) {
    ssize_t k = write(STDERR_FILENO, s, n);

    if (k <= 0 && errno != EINTR)
      return;
    if (k > 0) {
      s += k;
      n -= (size_t)k;
    }
  }
}

static uintptr_t fault_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.pc;
#else
  (void)uc;
  return 0; /* unknown: the C library check is skipped */
#endif
}

static bool in_libc(uintptr_t pc)
{
  return pc != 0 && pc >= libc_lo && pc < libc_hi;
}

/* Print the task's line (the same as a slab overflow's), and why it cannot
 * be ended alone if that is the case, then abort. */
static _Noreturn void give_up(struct arbor__sched *s, struct arbor__task *t,
                              const char *why)
{
  if (s->hooks.overflow != NULL)
    s->hooks.overflow(t);
  else
    say("arbor: stack overflow in a task: aborting\n");
  if (why != NULL) {
    say("arbor: the overflow cannot be recovered from: it happened ");
    say(why);
    say("\n");
  }
  abort();
}

/* A guard-page overflow of task t, running on worker w.  Runs on the
 * alternate stack with SIGSEGV and SIGBUS blocked; never returns. */
static _Noreturn void overflowed(struct arbor__worker *w, struct arbor__task *t,
                                 const ucontext_t *uc)
{
  struct arbor__sched *s = w->sched;

#if defined(ARBOR_HAVE_TSAN)
  /* TSan delivers a synchronous signal through its own wrapper, which does
   * its bookkeeping after the handler returns; leaving it by a switch would
   * corrupt TSan's state.  So under TSan an overflow always aborts. */
  give_up(s, t, NULL);
#endif
  if (s->on_overflow != ARBOR__OVERFLOW_EXIT || s->hooks.crashed == NULL)
    give_up(s, t, NULL);
  if (crit_depth != 0 || w->pending != NULL)
    give_up(s, t,
            "inside the runtime, holding one of its locks or switching "
            "between processes");
  if (in_libc(fault_pc(uc)))
    give_up(s, t,
            "inside the C library, which may hold a lock of its own "
            "(malloc, stdio)");
  if (s->hooks.recoverable != NULL && !s->hooks.recoverable(t))
    give_up(s, t,
            "in a supervisor, whose own cleanup must run to stop its "
            "children");

  /* The handler's frame will never be unwound, so neither will the mask
   * the kernel set for it: put back the interrupted code's. */
  pthread_sigmask(SIG_SETMASK, &uc->uc_sigmask, NULL);
  t->reason = ARBOR__SWITCH_CRASH;
#if defined(ARBOR_HAVE_ASAN)
  /* The frames on the alternate stack never return: clear their redzones
   * now, or the next signal handled on it would trip over them. */
  if (alt.map != NULL)
    __asan_unpoison_memory_region(alt.map, alt.len);
#endif
  arbor__ctx_jump_final(&t->ctx, &w->sched_ctx);
}

/* Hand a fault that is not ours to the action found at install time. */
static void chain(int sig, siginfo_t *si, void *uctx)
{
  const struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;
  /* SIG_DFL and SIG_IGN are spelled in sa_handler, whatever the flags (it
   * shares its storage with sa_sigaction). */
  void (*h)(int) = prev->sa_handler;
  bool sent = si->si_code <= 0; /* kill(), raise(), sigqueue() */
  struct sigaction dfl;
  sigset_t old;

  if (h != SIG_DFL && h != SIG_IGN) {
    pthread_sigmask(SIG_BLOCK, &prev->sa_mask, &old);
    if (prev->sa_flags & SA_SIGINFO)
      prev->sa_sigaction(sig, si, uctx);
    else
      h(sig);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return;
  }
  if (h == SIG_IGN && sent)
    return; /* a signal someone sent, which was ignored before us */
  /* The default action: put it back, and let the fault happen again when
   * we return, this time with no handler in the way, so the program dies
   * of it with the original siginfo and registers.  A sent signal, or an
   * asynchronous machine-check SIGBUS, would not happen again: send it
   * once more; it is delivered as soon as the handler returns. */
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
#if defined(BUS_MCEERR_AO)
  if (sig == SIGBUS && si->si_code == BUS_MCEERR_AO)
    sent = true;
#endif
  if (sent)
    raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
  int saved_errno = errno;
  struct arbor__worker *w = arbor__tls_worker;
  struct arbor__task *t =
      w != NULL ? atomic_load_explicit(&w->current, memory_order_relaxed) : NULL;

  if (t != NULL && si->si_code > 0 && t->stack.kind == ARBOR__STACK_GUARDED) {
    uintptr_t a = (uintptr_t)si->si_addr;
    uintptr_t lo = (uintptr_t)t->stack.lo;

    if (a < lo && a >= lo - w->sched->stacks.page)
      overflowed(w, t, uctx);
  }
  chain(sig, si, uctx);
  errno = saved_errno;
}

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
  const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
  const char *base = strrchr(name, '/');
  uintptr_t lo = UINTPTR_MAX, hi = 0;

  (void)size;
  (void)data;
  base = base != NULL ? base + 1 : name;
  if (strncmp(base, "libc.so", 7) != 0)
    return 0;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t b = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr;

    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    if (b < lo)
      lo = b;
    if (b + ph->p_memsz > hi)
      hi = b + ph->p_memsz;
  }
  if (hi > lo) {
    libc_lo = lo;
    libc_hi = hi;
  }
  return 1;
}

void arbor__fault_install(void)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGSEGV);
  sigaddset(&sa.sa_mask, SIGBUS);
  pthread_mutex_lock(&install_lock);
  if (install_refs++ == 0) {
    libc_lo = libc_hi = 0;
    dl_iterate_phdr(find_libc, NULL);
    /* Read first, then install: the handler may run on another thread as
     * soon as it is installed, and must find prev_* complete. */
    sigaction(SIGSEGV, NULL, &prev_segv);
    sigaction(SIGBUS, NULL, &prev_bus);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
  }
  pthread_mutex_unlock(&install_lock);
}

/* Put prev back for sig, unless our handler is no longer the one there. */
static void restore(int sig, const struct sigaction *prev)
{
  struct sigaction cur;

  if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
      cur.sa_sigaction == on_fault)
    sigaction(sig, prev, NULL);
}

void arbor__fault_uninstall(void)
{
  pthread_mutex_lock(&install_lock);
  if (install_refs > 0 && --install_refs == 0) {
    restore(SIGSEGV, &prev_segv);
    restore(SIGBUS, &prev_bus);
  }
  pthread_mutex_unlock(&install_lock);
}

/* ---- per worker thread: the alternate signal stack ---- */

void arbor__fault_thread_start(void)
{
  long p = sysconf(_SC_PAGESIZE);
  size_t page = p > 0 ? (size_t)p : 4096;
  size_t size = ALT_STACK_SIZE;
  stack_t ss;
  char *map;

#if defined(_SC_MINSIGSTKSZ)
  {
    /* Newer kernels and CPUs (AVX-512, SVE) need bigger signal frames. */
    long min = sysconf(_SC_MINSIGSTKSZ);

    if (min > 0 && (size_t)min * 4 > size)
      size = ((size_t)min * 4 + page - 1) & ~(page - 1);
  }
#endif
  map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED)
    return;
  /* A guard page below it too: a handler that overflows the alternate
   * stack must fault, not scribble over a neighbour. */
  if (mprotect(map, page, PROT_NONE) != 0)
    goto fail;
  ss.ss_sp = map + page;
  ss.ss_size = size;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, &alt.old) != 0)
    goto fail;
  alt.map = map;
  alt.len = size + page;
  return;

fail:
  munmap(map, size + page);
}

void arbor__fault_thread_stop(void)
{
  stack_t off;

  if (alt.map == NULL)
    return;
  if (alt.old.ss_flags & SS_DISABLE) {
    memset(&off, 0, sizeof(off));
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
  } else {
    /* Someone else's (ASan gives every thread one, and unmaps it when the
     * thread ends, after asking the kernel which one is current). */
    sigaltstack(&alt.old, NULL);
  }
#if defined(ARBOR_HAVE_ASAN)
  /* A later mapping may reuse these addresses: leave no poison behind. */
  __asan_unpoison_memory_region(alt.map, alt.len);
#endif
  munmap(alt.map, alt.len);
  alt.map = NULL;
  alt.len = 0;
}
