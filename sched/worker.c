/* sched/worker.c -- the worker loop: pick a task, switch to it, and act on
 * why it switched back.
 *
 * Order of the search for work (Tokio's, which is Go's):
 *   every 61st tick the injection queue first, for fairness;
 *   the LIFO slot (at most 3 runs in a row, so two tasks waking each other
 *   cannot starve the ring);
 *   the worker's own ring;
 *   the injection queue (a fair share of it);
 *   stealing half of a random victim's ring, a few rounds, spinning briefly;
 *   parking until woken or until the next timer deadline.
 *
 * A task switches back to the worker's own stack for a yield, and for a
 * block or exit unless it can hand off directly to the task in the LIFO slot
 * (handoff_target()).  Either way the new state is published only by the
 * code that runs next, after the switch: a blocked task becomes WAITING (and
 * so wakeable, and stealable once woken) only after its stack is no longer
 * in use.
 *
 * The LIFO slot is the owner's, but the watchdog may take its task from a
 * worker stuck in one task (sched/watchdog.c): every access to it sits
 * between arbor__lifo_enter() and arbor__lifo_leave(), and while the slot is
 * closed a woken task goes to the ring and no handoff happens.
 */
#include "sched/worker.h"

#include <ck_pr.h>
#include <stdio.h>
#include <stdlib.h>

#include "sched/fault.h"

_Thread_local struct arbor__worker *arbor__tls_worker
    __attribute__((tls_model("initial-exec")));

/* Search rounds before parking, and the pause between them.  Spinning a
 * little before a futex sleep makes a wakeup ~20x cheaper when work arrives
 * soon (runtime-research.md 9.2); only searchers spin, at most half of the
 * workers. */
#define SEARCH_ROUNDS 16
#define SEARCH_PAUSE 64

/* A task may migrate between threads while it is suspended, and compilers
 * assume the thread-local base never changes within a function.  Every read
 * of the current worker after a switch goes through this opaque call. */
__attribute__((noinline)) static struct arbor__worker *self_worker(void)
{
  struct arbor__worker *w = arbor__tls_worker;

  __asm__ volatile("" ::: "memory");
  return w;
}

static uint64_t rng_next(struct arbor__worker *w)
{
  /* xorshift64*: enough to pick victims. */
  uint64_t x = w->rng;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void finish_pending(struct arbor__worker *w);

static _Noreturn void task_entry(void *arg)
{
  struct arbor__task *t = arg;

  arbor__ctx_started();
  finish_pending(self_worker());
  self_worker()->sched->hooks.main(t);
  arbor__panic(__FILE__, __LINE__, "a task's main returned");
}

/* Fire due timers; true if any fired (they may have made tasks runnable). */
static bool maintain(struct arbor__worker *w)
{
  struct arbor__sched *s = w->sched;
  size_t n;

  if (s->hooks.maintain == NULL)
    return false;
  n = s->hooks.maintain(s->hooks.ud, w->index);
  if (n == 0)
    return false;
  atomic_store_explicit(
      &w->n_timers,
      atomic_load_explicit(&w->n_timers, memory_order_relaxed) + n,
      memory_order_relaxed);
  return true;
}

/* Scheduler loop only: empty the LIFO slot, first taking it back from the
 * watchdog if it has finished with it. */
static struct arbor__task *lifo_pop(struct arbor__worker *w)
{
  struct arbor__task *t;

  if (arbor__unlikely(!arbor__lifo_enter(w)) &&
      (!arbor__lifo_reopen(w) || !arbor__lifo_enter(w)))
    return NULL;
  t = w->lifo;
  w->lifo = NULL;
  arbor__lifo_leave(w);
  return t;
}

static struct arbor__task *find_local(struct arbor__worker *w)
{
  struct arbor__task *t;

  if (++w->tick % ARBOR__GLOBAL_INTERVAL == 0) {
    /* The same interval as Tokio's event_interval: timers are checked
     * between runs, not only when the worker is idle. */
    maintain(w);
    t = arbor__inject_pop_one(w);
    if (t != NULL) {
      w->lifo_runs = 0;
      return t;
    }
  }
  t = lifo_pop(w);
  if (t != NULL) {
    if (w->lifo_runs < ARBOR__LIFO_MAX) {
      w->lifo_runs++;
      arbor__count(&w->n_lifo);
      return t;
    }
    /* Three LIFO runs in a row: let the ring have its turn -- if it has
     * anything.  This push is for fairness on this worker, not new work
     * for others, so it wakes nobody: waking a sleeper here would cost a
     * futex call every few hops of a message chain. */
    if (!arbor__runq_has_work(w)) {
      w->lifo_runs = 0;
      return t;
    }
    arbor__runq_push_quiet_sp(w, t);
  }
  w->lifo_runs = 0;
  t = arbor__runq_pop_sp(w);
  if (t != NULL)
    return t;
  return arbor__inject_pop_batch(w);
}

static struct arbor__task *steal_round(struct arbor__worker *w)
{
  struct arbor__sched *s = w->sched;
  unsigned n = s->nworkers;
  unsigned start = (unsigned)(rng_next(w) % n);

  for (unsigned i = 0; i < n; i++) {
    struct arbor__worker *v = s->workers[(start + i) % n];
    struct arbor__task *t;

    if (v == w)
      continue;
    t = arbor__runq_steal_mc(w, v);
    if (t != NULL)
      return t;
  }
  return NULL;
}

static struct arbor__task *search(struct arbor__worker *w)
{
  struct arbor__task *t;

  for (int round = 0; round < SEARCH_ROUNDS; round++) {
    if (!arbor__idle_to_searching(w))
      return NULL;
    if (w->sched->nworkers > 1) {
      t = steal_round(w);
      if (t != NULL)
        return t;
    }
    t = arbor__inject_pop_batch(w);
    if (t != NULL)
      return t;
    if (atomic_load_explicit(&w->sched->stop, memory_order_relaxed))
      return NULL;
    for (int i = 0; i < SEARCH_PAUSE; i++)
      ck_pr_stall();
  }
  return NULL;
}

static void overflowed(struct arbor__worker *w, struct arbor__task *t)
{
  w->sched->hooks.overflow(t);
  abort();
}

/* A task parks in arbor__sched_hibernate(): release its stack now, before
 * the park hook commits the wait, since after that another worker may wake
 * it and run it; prepare() puts the stack back.  The copy reads the task's
 * own stack, which is not in use any more even when this runs on the stack
 * of the task it handed off to.  Without the saved stack pointer (ucontext)
 * or memory for the copy, it just parks. */
static void hibernate(struct arbor__sched *s, struct arbor__task *t)
{
  const void *sp = arbor__ctx_saved_sp(&t->ctx);

  if (sp == NULL)
    return;
  if (arbor__stack_hibernate(&t->stack, sp, &t->hib) == 0)
    atomic_fetch_add_explicit(&s->hibernated, 1, memory_order_relaxed);
}

/* Put a hibernated task's stack back, at the same address. */
static void thaw(struct arbor__sched *s, struct arbor__task *t)
{
  arbor__stack_restore(&t->stack, arbor__ctx_saved_sp(&t->ctx), t->hib);
  t->hib = NULL;
  atomic_fetch_sub_explicit(&s->hibernated, 1, memory_order_relaxed);
}

/* Act on why task t switched away, now that its stack is no longer in
 * use: on the worker's own stack after a switch back to it, or on the
 * stack of the task it handed off to (finish_pending()). */
static inline __attribute__((always_inline)) void after_switch(struct arbor__worker *w, struct arbor__task *t)
{
  struct arbor__sched *s = w->sched;
  uint32_t expect;

  switch (t->reason) {
  case ARBOR__SWITCH_YIELD:
    if (arbor__unlikely(
            !arbor__stack_check(&t->stack, arbor__ctx_saved_sp(&t->ctx))))
      overflowed(w, t);
    atomic_store_explicit(&t->state, ARBOR__TASK_RUNNABLE,
                          memory_order_relaxed);
    arbor__runq_push_sp(w, t);
    break;
  case ARBOR__SWITCH_BLOCK:
    if (arbor__unlikely(
            !arbor__stack_check(&t->stack, arbor__ctx_saved_sp(&t->ctx))))
      overflowed(w, t);
    expect = ARBOR__TASK_RUNNING;
    /* Release: pairs with the acquire CAS in arbor__sched_wake(); the
     * waker that moves it on sees everything the task did. */
    if (atomic_compare_exchange_strong_explicit(&t->state, &expect,
                                                ARBOR__TASK_WAITING,
                                                memory_order_release,
                                                memory_order_acquire))
      break;
    /* A wake arrived while it was still running: do not park it. */
    atomic_store_explicit(&t->state, ARBOR__TASK_RUNNABLE,
                          memory_order_relaxed);
    arbor__runq_push_sp(w, t);
    break;
  case ARBOR__SWITCH_HIBERNATE:
  case ARBOR__SWITCH_PARK:
    if (arbor__unlikely(
            !arbor__stack_check(&t->stack, arbor__ctx_saved_sp(&t->ctx))))
      overflowed(w, t);
    if (t->reason == ARBOR__SWITCH_HIBERNATE)
      hibernate(s, t);
    /* Once the hook has committed the wait, t may be woken and run by
     * another worker at any moment: do not touch it after a true. */
    if (s->hooks.park(t))
      break;
    arbor__runq_push_sp(w, t);
    break;
  case ARBOR__SWITCH_EXIT:
    if (arbor__unlikely(!arbor__stack_check(&t->stack, NULL)))
      overflowed(w, t);
    atomic_exchange_explicit(&t->state, ARBOR__TASK_DONE,
                             memory_order_release);
    arbor__ctx_destroy(&t->ctx);
    arbor__stack_free_slot(&s->stacks, &w->stack_cache, t->slot, &t->stack);
    t->stack.kind = ARBOR__STACK_NONE;
    t->started = 0;
    s->hooks.exited(t);
    break;
  case ARBOR__SWITCH_CRASH:
    /* A guard-page overflow (fault.c): the handler jumped here from its
     * alternate stack, and the task's stack must never be used again. */
    if (s->hooks.crashed == NULL)
      overflowed(w, t);
    /* Release, as for an exit: pairs with the acq_rel RMWs of a late
     * arbor__sched_wake(), which then finds the task DONE. */
    atomic_exchange_explicit(&t->state, ARBOR__TASK_DONE,
                             memory_order_release);
    arbor__ctx_destroy(&t->ctx);
    arbor__stack_discard_slot(&s->stacks, t->slot, &t->stack);
    t->stack.kind = ARBOR__STACK_NONE;
    t->started = 0;
    s->hooks.crashed(t, ARBOR__CRASH_STACK_OVERFLOW);
    break;
  default:
    arbor__panic(__FILE__, __LINE__, "a task switched away without a reason");
  }
}

/* Make t the running task of w.  Returns false if it ended before it could
 * start (no stack, or the runtime refused). */
static inline __attribute__((always_inline)) bool prepare(struct arbor__worker *w, struct arbor__task *t)
{
  struct arbor__sched *s = w->sched;

  /* n_runs is also the watchdog's heartbeat: it moves at every switch. */
  arbor__count(&w->n_runs);
  /* A plain store: the run queue (or this thread, for the LIFO slot)
   * already ordered the task's stack before us, and a NOTIFIED bit it
   * drops is one the task makes moot by checking its condition when it
   * runs (see arbor__sched_wake()). */
  atomic_store_explicit(&t->state, ARBOR__TASK_RUNNING, memory_order_relaxed);
  t->worker = (uint16_t)w->index;
  if (arbor__unlikely(!t->started)) {
    int err = arbor__stack_alloc_slot(&s->stacks, &w->stack_cache,
                                      t->stack_size, t->slot, &t->stack);

    if (s->hooks.prestart(t, err) != 0 || err != 0) {
      if (err == 0)
        arbor__stack_free_slot(&s->stacks, &w->stack_cache, t->slot, &t->stack);
      t->stack.kind = ARBOR__STACK_NONE;
      atomic_exchange_explicit(&t->state, ARBOR__TASK_DONE,
                               memory_order_release);
      s->hooks.exited(t);
      return false;
    }
    arbor__ctx_make(&t->ctx, t->stack.lo, t->stack.size, task_entry, t);
    t->started = 1;
  }
  if (arbor__unlikely(t->hib != NULL))
    thaw(s, t);
  t->budget = ARBOR__BUDGET;
  atomic_store_explicit(&w->current, t, memory_order_relaxed);
  return true;
}

static void run(struct arbor__worker *w, struct arbor__task *t)
{
  if (!prepare(w, t))
    return;
  arbor__ctx_jump(&w->sched_ctx, &t->ctx);
  /* Whichever task switched back to us -- t, or one it handed off to. */
  t = atomic_load_explicit(&w->current, memory_order_relaxed);
  atomic_store_explicit(&w->current, NULL, memory_order_relaxed);
  arbor__assert(w->pending == NULL);
  after_switch(w, t);
}

/* On a task's stack, right after a switch to it: finish parking (or
 * requeueing, or releasing) the task that handed off to it. */
static void finish_pending(struct arbor__worker *w)
{
  struct arbor__task *t = w->pending;

  if (t != NULL) {
    struct arbor__task *cur =
        atomic_load_explicit(&w->current, memory_order_relaxed);

    /* The hooks act for t, not for the task whose stack this is: no task
     * is current while they run, as in run(), so that code they reach (a
     * message's free function) does not act as that task.  `pending` is
     * cleared after, not before: until t is finished, an overflow of the
     * stack we run on must not be taken for one that can be recovered from
     * (fault.c looks at it). */
    atomic_store_explicit(&w->current, NULL, memory_order_relaxed);
    after_switch(w, t);
    w->pending = NULL;
    atomic_store_explicit(&w->current, cur, memory_order_relaxed);
  }
}

/* The task a blocking or exiting task may switch to directly: the one the
 * worker made runnable last (in the LIFO slot, so likely the one it just
 * woke), if the LIFO rules would run it next anyway.  Saves a switch
 * through the worker's stack and the scheduler loop on every message hop.
 * Unstarted tasks and tick boundaries (injection queue, timers) go through
 * the scheduler.  Inlined: it is on every message hop, and its two callers
 * are small. */
__attribute__((always_inline)) static inline struct arbor__task *
handoff_target(struct arbor__worker *w)
{
  struct arbor__task *t;

  /* Closed: the watchdog is taking the slot; go through the scheduler,
   * which reopens it. */
  if (arbor__unlikely(!arbor__lifo_enter(w)))
    return NULL;
  t = w->lifo;
  if (t == NULL || !t->started || w->lifo_runs >= ARBOR__LIFO_MAX ||
      (w->tick + 1) % ARBOR__GLOBAL_INTERVAL == 0) {
    arbor__lifo_leave(w);
    return NULL;
  }
  w->lifo = NULL;
  arbor__lifo_leave(w);
  w->lifo_runs++;
  w->tick++;
  arbor__count(&w->n_lifo);
  prepare(w, t); /* cannot fail: it has started */
  return t;
}

static int64_t next_deadline(struct arbor__worker *w)
{
  struct arbor__sched *s = w->sched;

  if (s->hooks.next_deadline == NULL)
    return -1;
  return s->hooks.next_deadline(s->hooks.ud, w->index);
}

void *arbor__worker_main(void *arg);
void *arbor__worker_main(void *arg)
{
  struct arbor__worker *w = arg;
  struct arbor__sched *s = w->sched;

  arbor__tls_worker = w;
  arbor__fault_thread_start();
  arbor__ctx_init_thread(&w->sched_ctx);
  while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
    struct arbor__task *t = find_local(w);

    if (t == NULL)
      t = search(w);
    if (t != NULL) {
      arbor__idle_from_searching(w);
      run(w, t);
      continue;
    }
    /* Timers due now may make work; look again before sleeping. */
    if (maintain(w))
      continue;
    /* Nothing anywhere: sleep.  The last searcher to give up re-checks
     * every queue, closing the race with a push that saw it searching. */
    if (arbor__idle_to_parked(w) && arbor__sched_has_work(s))
      arbor__idle_notify(s);
    /* SeqCst load: pairs with the store in arbor__sched_stop(), which then
     * unparks everyone; an unpark before the park leaves NOTIFIED. */
    if (!atomic_load_explicit(&s->stop, memory_order_seq_cst))
      arbor__park(w, next_deadline(w));
    arbor__idle_from_parked(w);
  }
  arbor__fault_thread_stop();
  arbor__tls_worker = NULL;
  return NULL;
}

void arbor__sched_yield(void)
{
  struct arbor__worker *w = self_worker();
  struct arbor__task *t =
      atomic_load_explicit(&w->current, memory_order_relaxed);

  t->reason = ARBOR__SWITCH_YIELD;
  arbor__ctx_jump(&t->ctx, &w->sched_ctx);
  /* No finish_pending() here: a yielded task waits in the ring, never in
   * the LIFO slot, so it is resumed by run(), never by a handoff. */
}

/* Switch away for `reason` -- BLOCK, PARK or HIBERNATE -- handing off to
 * the LIFO task when the rules allow (handoff_target()); whoever runs next
 * finishes the block or park once we are off this stack.  Returns when the
 * task is resumed, perhaps on another worker. */
static inline __attribute__((always_inline)) void switch_away(uint8_t reason)
{
  struct arbor__worker *w = self_worker();
  struct arbor__task *t =
      atomic_load_explicit(&w->current, memory_order_relaxed);
  struct arbor__task *next = handoff_target(w);

  t->reason = reason;
  if (next != NULL) {
    w->pending = t; /* finished by `next` once we are off this stack */
    arbor__ctx_jump(&t->ctx, &next->ctx);
  } else {
    arbor__ctx_jump(&t->ctx, &w->sched_ctx);
  }
  finish_pending(self_worker());
}

void arbor__sched_block(void)
{
  switch_away(ARBOR__SWITCH_BLOCK);
}

void arbor__sched_park(void)
{
  switch_away(ARBOR__SWITCH_PARK);
}

void arbor__sched_hibernate(void)
{
  switch_away(ARBOR__SWITCH_HIBERNATE);
}

_Noreturn void arbor__sched_exit(void)
{
  struct arbor__worker *w = self_worker();
  struct arbor__task *t =
      atomic_load_explicit(&w->current, memory_order_relaxed);
  struct arbor__task *next = handoff_target(w);

  t->reason = ARBOR__SWITCH_EXIT;
  if (next != NULL) {
    w->pending = t; /* released by `next` */
    arbor__ctx_jump_final(&t->ctx, &next->ctx);
  }
  arbor__ctx_jump_final(&t->ctx, &w->sched_ctx);
}

/* Called at the start of every runtime call: one call, one TLS read.  It is
 * out of line (callers in other files cannot cache the thread-local base
 * across their own switches) and makes no switch itself, so it may read
 * the TLS variable directly. */
struct arbor__task *arbor__sched_current(void)
{
  struct arbor__worker *w = arbor__tls_worker;

  return w != NULL ? atomic_load_explicit(&w->current, memory_order_relaxed)
                   : NULL;
}

struct arbor__sched *arbor__sched_self(void)
{
  struct arbor__worker *w = self_worker();

  return w != NULL ? w->sched : NULL;
}

int arbor__sched_worker_in(const struct arbor__sched *s)
{
  /* Out of line and switch-free: reads the TLS variable directly (see
   * arbor__sched_current()). */
  struct arbor__worker *w = arbor__tls_worker;

  return w != NULL && w->sched == s ? (int)w->index : -1;
}

int arbor__sched_worker_index(void)
{
  struct arbor__worker *w = self_worker();

  return w != NULL ? (int)w->index : -1;
}

void arbor__sched_count_spawn(void)
{
  struct arbor__worker *w = self_worker();

  if (w != NULL)
    arbor__count(&w->n_spawns);
}

void arbor__panic(const char *file, int line, const char *what)
{
  fprintf(stderr, "arbor: internal error at %s:%d: %s\n", file, line, what);
  abort();
}
