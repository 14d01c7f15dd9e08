/* sched/sched.h -- the worker pool; the only sched/ header runtime/ includes.
 *
 * sched/ knows tasks, not processes.  A task is a stack, a saved context, a
 * run-queue link and a state word; runtime/ embeds one in each process and
 * gets back to the process with arbor__container_of().  Whatever sched/ needs
 * to know about processes it asks through the hook table runtime/ hands it
 * at init.
 *
 * Task states (one atomic word per task, every transition an atomic RMW so
 * that the release sequences of wakers are never broken by a plain store):
 *
 *   RUNNABLE --worker picks it--> RUNNING --yield--> RUNNABLE
 *   RUNNING --block: switch away, then on the scheduler stack--> WAITING
 *   WAITING --wake--> RUNNABLE (the waker enqueues it)
 *   RUNNING --exit: switch away for good--> DONE
 *   RUNNING --crash (a stack overflow caught at the guard page, see
 *             fault.c): the signal handler switches away for good--> DONE
 *
 * Parking is the cheaper protocol runtime/ uses for every wait of a process
 * (arbor__sched_park(), arbor__sched_ready()): the task switches away first,
 * and only then, off its stack, the `park` hook commits the wait by setting
 * runtime/'s own wait word (the mailbox's BLOCKED tag, say).  Whoever takes
 * that word back afterwards owns the wakeup and knows the task is off its
 * stack, so it enqueues it with no state CAS at all; the task-state word is
 * not used (it stays RUNNING while parked).  Two atomic RMWs fewer per
 * message hop than block/wake.
 *
 * NOTIFIED is a bit on top: a wake that finds the task RUNNING or RUNNABLE
 * sets it, and the block that follows sees it and puts the task back in a
 * run queue instead of parking it.  Only the waker that moves a task out of
 * WAITING enqueues it, so a task is never queued twice.  A task is parked
 * only after the switch away from its stack (Go's park_m): until then it is
 * RUNNING and no other worker can pick it.
 *
 * Hibernation is a park that also releases the stack: after the switch
 * away and before the park hook commits the wait, the live part of its
 * stack is copied to the heap (task->hib) and its pages are given back;
 * whichever worker runs it next copies it back first, in prepare().
 */
#ifndef ARBOR_SCHED_SCHED_H
#define ARBOR_SCHED_SCHED_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/ctx.h"
#include "sched/stack.h"

/* clang-format off */
#define arbor__container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

#if defined(__GNUC__)
#define arbor__likely(x) __builtin_expect(!!(x), 1)
#define arbor__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define arbor__likely(x) (x)
#define arbor__unlikely(x) (x)
#endif

/* Broken internal invariants abort: there is no sane way to go on. */
#define arbor__assert(cond)                                                    \
  do {                                                                         \
    if (arbor__unlikely(!(cond)))                                              \
      arbor__panic(__FILE__, __LINE__, #cond);                                 \
  } while (0)
_Noreturn void arbor__panic(const char *file, int line, const char *what);

enum {
  ARBOR__TASK_RUNNABLE = 1,
  ARBOR__TASK_RUNNING = 2,
  ARBOR__TASK_WAITING = 3,
  ARBOR__TASK_DONE = 4,
  ARBOR__TASK_STATE_MASK = 0xf,
  ARBOR__TASK_NOTIFIED = 0x10,
};

/* Why a task switched back to its worker. */
enum arbor__switch_reason {
  ARBOR__SWITCH_YIELD = 1,
  ARBOR__SWITCH_BLOCK = 2,
  ARBOR__SWITCH_EXIT = 3,
  ARBOR__SWITCH_PARK = 4,
  /* Set by the fault handler (fault.c), never by the task's own code: the
   * task overflowed its stack and must never run again. */
  ARBOR__SWITCH_CRASH = 5,
  ARBOR__SWITCH_HIBERNATE = 6, /* a park that also releases the stack */
};

/* Why a task crashed (the `why` of hooks.crashed). */
enum arbor__crash {
  ARBOR__CRASH_STACK_OVERFLOW = 1,
};

/* What a guard-page overflow does; the values match the public enum
 * arbor_overflow_action. */
enum arbor__overflow_mode {
  ARBOR__OVERFLOW_EXIT = 0,
  ARBOR__OVERFLOW_ABORT = 1,
};

/* Calls into a process (runtime/) that a task makes between yields. */
#define ARBOR__BUDGET 128

/* One cache line: runtime/'s process record puts it alone on its first
 * line (see struct arbor__proc), and a message hop touches little else of
 * the receiver.  Sanitizer and ucontext builds make ctx larger, so the size
 * is checked only where it matters for speed. */
struct arbor__task {
  struct arbor__ctx ctx;
  struct arbor__stack stack; /* kind NONE until the task first runs */
  /* Rounded, <= ARBOR__STACK_MAX (1 GiB), so 32 bits are enough; the stack
   * is mapped at first run. */
  uint32_t stack_size;
  /* The stack arena slot to take the stack from (sched/stack.h), or
   * ARBOR__SLOT_NONE.  No two live tasks of one scheduler may share a
   * slot. */
  uint32_t slot;
  _Atomic uint32_t state;    /* ARBOR__TASK_* plus the NOTIFIED bit */
  uint8_t reason;            /* enum arbor__switch_reason, set by the task */
  uint8_t started;           /* the context has been made */
  uint16_t budget;           /* runtime calls left before a forced yield */
  uint16_t worker;           /* index of the worker running it (while it runs) */
  uint8_t park_arg;          /* runtime/'s, for the park hook (on this line) */
  /* While hibernated: the live part of its stack (arbor__stack_hibernate()),
   * put back by the worker that runs it next; NULL otherwise. */
  void *hib;
};
#if !defined(ARBOR_HAVE_ASAN) && !defined(ARBOR_HAVE_TSAN) && \
    !defined(ARBOR_CTX_UCONTEXT) && UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct arbor__task) == 64,
               "struct arbor__task must stay one cache line");
#endif

/* What sched/ asks of runtime/. */
struct arbor__sched_hooks {
  /* The task's body; runs on its own stack and ends with arbor__sched_exit().
   */
  void (*main)(struct arbor__task *t);
  /* Called on the worker before a task's first run.  Nonzero means "do not
   * start it": the task ends at once without a stack, and exited() follows.
   * err is 0, or the error of a failed stack allocation (then the return
   * value is ignored: the task cannot start). */
  int (*prestart)(struct arbor__task *t, int err);
  /* After a switch away by arbor__sched_park(), off the task's stack:
   * commit the wait.  true: the task is parked, and belongs to whoever
   * takes its wait back (who makes it runnable with arbor__sched_ready());
   * sched/ must not touch it again.  false: the wait is over already; the
   * task is requeued. */
  bool (*park)(struct arbor__task *t);
  /* The task is DONE and its stack released; runtime/ may recycle it.
   * Called on the worker's own stack. */
  void (*exited)(struct arbor__task *t);
  /* A stack overflow was detected at a switch (slab canary or stack pointer
   * below the stack), or caught at the guard page when the task cannot be
   * ended alone: describe the task on stderr in one line; the program then
   * aborts.  May run in a signal handler, on the task's worker: it must be
   * async-signal-safe in practice (no stdio, no locks). */
  void (*overflow)(struct arbor__task *t);
  /* The task crashed (enum arbor__crash): it is DONE, will never run again,
   * and its stack is discarded (given back, never reused).  End it without
   * running any more of its code, then as exited().  Called on the worker's
   * own stack.  May be NULL: a crash then aborts as overflow() does. */
  void (*crashed)(struct arbor__task *t, int why);
  /* From the fault handler, on the task's worker, before a crash: false if
   * ending the task alone would break runtime/'s invariants (the program
   * then aborts).  Async-signal-safe.  May be NULL (always true). */
  bool (*recoverable)(struct arbor__task *t);
  /* Fire worker w's due timers; returns how many fired.  Called every few
   * ticks and before the worker parks.  May be NULL. */
  size_t (*maintain)(void *ud, unsigned w);
  /* Absolute CLOCK_MONOTONIC deadline in ns of worker w's next timer, or -1.
   * Called right before the worker parks.  May be NULL. */
  int64_t (*next_deadline)(void *ud, unsigned w);
  /* Task t has been running on worker w for ns nanoseconds without a switch
   * (sched/watchdog.c).  Called on the watchdog thread, once per stuck
   * episode, while t may still be running on w: t's memory must stay
   * readable (runtime/'s records are type-stable), and before trusting what
   * it reads from t the hook calls arbor__sched_stuck_confirm().  May be
   * NULL. */
  void (*stuck)(void *ud, struct arbor__task *t, unsigned w, int64_t ns);
  void *ud;
};

struct arbor__sched_opts {
  unsigned workers;     /* >= 1 */
  size_t stack_size;    /* default stack size, 0 = 64 KiB */
  int stack_mode;       /* enum arbor__stack_mode */
  unsigned stack_cache; /* per worker */
  uint64_t seed;        /* victim choice; 0 = clock */
  int on_overflow;      /* enum arbor__overflow_mode */
  int64_t watchdog_ns;  /* stuck-task threshold; <= 0: no watchdog */
};

struct arbor__worker;   /* private to sched/ */
struct arbor__watchdog; /* private to sched/watchdog.c */

/* Injection queue: processes made runnable from outside any worker, and the
 * overflow of full rings.  A mutex-protected FIFO of task pointers in a
 * growable circular array (not an intrusive list: moving a batch must not
 * touch each task's cold memory), with an atomic length so that empty
 * checks need no lock. */
struct arbor__inject {
  pthread_mutex_t lock;
  struct arbor__task **buf; /* under lock: cap slots, a power of two */
  size_t cap, head;         /* under lock */
  alignas(64) _Atomic size_t len;
};

/* Tokio's idle protocol: which workers sleep and who is searching. */
struct arbor__idle {
  /* num_searching in the low 16 bits, num_unparked above.  SeqCst: pairs
   * with the fence after every push of stealable work (a StoreLoad handoff,
   * where acquire/release is not enough). */
  _Atomic uint32_t state;
  pthread_mutex_t lock;
  unsigned *sleepers; /* under lock */
  unsigned nsleepers;
};

struct arbor__sched {
  /* Set at init, read-only afterwards. */
  unsigned nworkers;
  struct arbor__worker **workers;
  struct arbor__sched_hooks hooks;
  struct arbor__stack_pool stacks;
  pthread_t *threads;
  unsigned nthreads; /* started */
  int on_overflow; /* enum arbor__overflow_mode */
  bool fault_handler; /* arbor__fault_install() done by start, not undone */

  alignas(64) struct arbor__inject inject;
  alignas(64) struct arbor__idle idle;
  alignas(64) _Atomic int stop; /* SeqCst: pairs with the check before park */
  /* Tasks hibernated right now.  Relaxed: a statistic, it publishes
   * nothing; exact once the tasks it counts are at rest. */
  alignas(64) _Atomic int64_t hibernated;

  /* The watchdog (sched/watchdog.c): set at init and start, read-only
   * afterwards.  NULL when it is off. */
  int64_t watchdog_ns;
  struct arbor__watchdog *watchdog;
};

int arbor__sched_init(struct arbor__sched *s,
                      const struct arbor__sched_opts *opts,
                      const struct arbor__sched_hooks *hooks);
/* Start the worker threads.  Returns 0 or -EAGAIN. */
int arbor__sched_start(struct arbor__sched *s);
/* Stop and join the workers.  Every task must have ended before. */
void arbor__sched_stop(struct arbor__sched *s);
/* Free what init allocated, every cached stack included. */
void arbor__sched_fini(struct arbor__sched *s);

/* Prepare a task (state RUNNABLE, not started).  stack_size is as returned
 * by arbor__stack_round(); slot is the task's stack arena slot (unique
 * among the scheduler's live tasks), or ARBOR__SLOT_NONE for a stack from
 * the pool. */
void arbor__task_init(struct arbor__task *t, size_t stack_size, uint32_t slot);

/* Make a new task runnable: into the LIFO slot of the calling worker when it
 * belongs to s, else into the injection queue. */
void arbor__sched_submit(struct arbor__sched *s, struct arbor__task *t);

/* Wake a task that is (or is about to be) blocked.  Safe on a task in any
 * state and from any thread; see the state machine above.  Returns true if
 * this call moved the task out of WAITING.
 *
 * Contract with callers: a wake is a hint that the task's wait condition
 * may have changed, and the task re-checks its condition after every
 * return from arbor__sched_block().  The condition itself must be published
 * through its own synchronisation (runtime/ uses a SeqCst handshake on the
 * process's `waiting` word), so a NOTIFIED bit set on a task that has not
 * run yet may be dropped when it starts: it has yet to check anything. */
bool arbor__sched_wake(struct arbor__sched *s, struct arbor__task *t);

/* Make worker w look at its hooks soon: wake it if it sleeps, or make its
 * next park return at once. */
void arbor__sched_poke(struct arbor__sched *s, unsigned w);

/* From inside a task: go to the back of the run queue. */
void arbor__sched_yield(void);
/* From inside a task: park until arbor__sched_wake().  May return early (a
 * wake that raced the block); callers loop on their own condition. */
void arbor__sched_block(void);
/* From inside a task: switch away and let the park hook commit the wait
 * (see the top of this file).  Returns when the task runs again: after an
 * arbor__sched_ready(), or at once if the hook said the wait was over. */
void arbor__sched_park(void);
/* From inside a task: as arbor__sched_park(), and while it is parked its
 * stack is hibernated: the live part is copied to the heap and every page
 * is given back, then put back at the same address before it runs again.
 * Where that cannot be done (no memory for the copy; the ucontext back end,
 * which does not expose the saved stack pointer) it is a plain park. */
void arbor__sched_hibernate(void);
/* Make runnable a task parked by arbor__sched_park() whose wait the caller
 * has taken back (so no one else will).  Any thread. */
void arbor__sched_ready(struct arbor__sched *s, struct arbor__task *t);

/* From inside a task: end it.  Its stack is released after the switch. */
_Noreturn void arbor__sched_exit(void);

/* The task running on the calling thread, or NULL outside a task. */
struct arbor__task *arbor__sched_current(void);
/* The scheduler of the calling thread, or NULL on a foreign thread. */
struct arbor__sched *arbor__sched_self(void);
/* Index of the calling worker, or -1 on a foreign thread. */
int arbor__sched_worker_index(void);
/* Index of the calling worker if it is one of s's, else -1. */
int arbor__sched_worker_in(const struct arbor__sched *s);

/* Runtime critical sections, for the stack overflow handler (fault.c): a
 * per-thread depth, raised around runtime locks taken on a process's stack
 * and around updates that must not be left half done (so far: process
 * spinlocks, spawning, recycling a record).  A guard-page overflow at depth
 * > 0 cannot be recovered from (a lock would stay held), so the handler
 * aborts instead of ending the process.  Out of line on purpose: a task
 * may migrate between a switch and the next call, and the compiler must
 * not reuse the thread-local address it computed before. */
void arbor__crit_enter(void);
void arbor__crit_exit(void);
/* From inside the stuck() hook only: true if task t is still in the very
 * run the watchdog found stuck on worker w (no switch on w since).  A hook
 * that read t's identity before this call knows it read the stuck one. */
bool arbor__sched_stuck_confirm(struct arbor__sched *s, unsigned w,
                                const struct arbor__task *t);

/* Counters of worker i (see arbor_worker_stats in arbor.h). */
struct arbor__worker_stats {
  uint64_t runs, spawns, steals, injects, parks, lifo, timers;
};
void arbor__sched_stats(const struct arbor__sched *s, unsigned i,
                        struct arbor__worker_stats *out);
/* Count a spawn on the calling worker (statistics only). */
void arbor__sched_count_spawn(void);

/* Tasks hibernated right now (a snapshot). */
static inline int64_t arbor__sched_hibernated(const struct arbor__sched *s)
{
  return atomic_load_explicit(&s->hibernated, memory_order_relaxed);
}

/* Whether every worker has gone to sleep for lack of work (a snapshot): no
 * task is running or runnable then, and every task that blocked has been
 * parked (and hibernated).  For tests and benchmarks. */
static inline bool arbor__sched_all_parked(const struct arbor__sched *s)
{
  /* The number of workers awake is the idle state's upper half.  SeqCst:
   * the idle state's own vocabulary (see park.c). */
  return (atomic_load_explicit(&s->idle.state, memory_order_seq_cst) >> 16) ==
         0;
}

#endif /* ARBOR_SCHED_SCHED_H */
