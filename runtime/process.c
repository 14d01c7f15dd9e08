/* runtime/process.c -- processes: the pid table, spawn, exit, defers, and
 * waiting for an exit from outside the runtime.
 *
 * A process is a record (struct arbor__proc) with a task embedded in it.
 * Records live in chunks indexed by the pid's index bits and are never freed
 * before the runtime is destroyed (they are type-stable), so any pid, stale
 * or not, can be looked up safely; a lookup then takes a reference and
 * checks the generation.  The record is recycled when its last reference
 * goes: the "alive" reference is dropped when the process has exited (or,
 * for a joinable process, when a wait collects it), lookup references when
 * the lookup is done.
 *
 * A process ends in exactly one place, proc_finish(), on its own stack:
 * its defers run there (in reverse order), then it switches away for good
 * and the worker frees its stack and calls proc_exited().  Being asked to
 * end (shutdown now, kill later) is noticed at the next runtime call
 * (checkpoint()) or before the first run, never by unwinding user frames.
 * The one exception is a crash: a stack overflow caught at the guard page
 * (sched/fault.c) leaves the process's stack for good, and the worker calls
 * proc_crashed(), which ends it without running its defers and then goes
 * the same way, through proc_exited().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rt.h"

static struct arbor__proc *proc_of(struct arbor__task *t)
{
  return arbor__container_of(t, struct arbor__proc, task);
}


/* The calling worker's index if it is a worker of rt, else -1. */
int arbor__local_worker(arbor_rt *rt)
{
  return arbor__sched_worker_in(&rt->sched);
}

/* ---- the record table (the free set is records.c) ------------------------ */

/* Tear an exited incarnation down and put the record up for reuse. */
static void recycle(struct arbor__proc *p)
{
  /* Release: lookups that still find the old pid see a consistent record
   * up to here; after it they fail the pid check. */
  atomic_store_explicit(&p->pid, 0, memory_order_release);
  arbor__name_unref(p->name);
  p->name = NULL;
  if (p->defers != p->defer_inline)
    free(p->defers);
  p->defers = NULL;
  arbor__record_free(p->rt, p);
}

int arbor__proc_ref(arbor_rt *rt, arbor_pid pid, struct arbor__proc **out)
{
  struct arbor__proc *p;
  uint32_t r;

  if (arbor__pid_tag(pid) != rt->tag)
    return pid == 0 ? ARBOR_ESRCH : ARBOR_EOTHERRT;
  p = arbor__proc_slot(rt, arbor__pid_index(pid));
  if (p == NULL)
    return ARBOR_ESRCH;
  r = atomic_load_explicit(&p->refs, memory_order_relaxed);
  do {
    if (r == 0)
      return ARBOR_ESRCH; /* free, or being recycled */
    /* SeqCst: pairs with the fetch_or of EXITED in proc_exited(): either
     * the exit sees our reference and broadcasts, or we see EXITED. */
  } while (!atomic_compare_exchange_weak_explicit(
      &p->refs, &r, r + 1, memory_order_seq_cst, memory_order_relaxed));
  /* Acquire: pairs with the release store of the pid in arbor_spawn(). */
  if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid) {
    arbor__proc_unref(p);
    return ARBOR_ESRCH;
  }
  *out = p;
  return 0;
}

void arbor__proc_unref(struct arbor__proc *p)
{
  /* Acq_rel: the last holder sees everything the others did to the record
   * before it recycles it. */
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
    recycle(p);
}

/* ---- life and death ------------------------------------------------------ */

static _Noreturn void proc_finish(struct arbor__proc *p, int reason)
{
  atomic_fetch_or_explicit(&p->flags, ARBOR__P_EXITING, memory_order_relaxed);
  /* One at a time from the top, so a defer may register another. */
  while (p->ndefers > 0) {
    struct arbor__defer d = p->defers[--p->ndefers];

    d.fn(d.arg);
  }
  atomic_store_explicit(&p->reason, reason, memory_order_relaxed);
  arbor__sched_exit();
}

_Noreturn void arbor__proc_die(struct arbor__proc *p, int reason)
{
  proc_finish(p, reason);
}

void arbor__proc_checkpoint_slow(struct arbor__proc *p)
{
  uint64_t k = atomic_load_explicit(&p->kill, memory_order_acquire);

  if (atomic_load_explicit(&p->flags, memory_order_relaxed) &
      ARBOR__P_EXITING)
    return; /* already ending: defers may call the runtime */
  if (k != 0)
    proc_finish(p, (int)(uint32_t)k);
  if (atomic_load_explicit(&p->rt->shutting_down, memory_order_relaxed))
    proc_finish(p, ARBOR_REASON_SHUTDOWN);
  if ((uintptr_t)__builtin_frame_address(0) - (uintptr_t)p->task.stack.lo <
      ARBOR__STACK_RESERVE) {
    /* About to run out of stack (see ARBOR__STACK_RESERVE): end as a
     * guard-page overflow would, without running defers, which might need
     * the stack that is not there. */
    p->ndefers = 0;
    proc_finish(p, ARBOR_ESTACKOVERFLOW);
  }
}

static void proc_main(struct arbor__task *t)
{
  struct arbor__proc *p = proc_of(t);

  proc_finish(p, p->fn(p->arg));
}

static int proc_prestart(struct arbor__task *t, int err)
{
  struct arbor__proc *p = proc_of(t);
  uint64_t k = atomic_load_explicit(&p->kill, memory_order_acquire);

  if (err != 0) {
    /* No stack could be mapped: the process ends before it starts, and its
     * waiters see why. */
    atomic_store_explicit(&p->reason, ARBOR_ENOMEM, memory_order_relaxed);
    return 1;
  }
  if (k != 0 ||
      atomic_load_explicit(&p->rt->shutting_down, memory_order_relaxed)) {
    /* Killed before it ever ran: it ends without running, with no stack. */
    atomic_store_explicit(
        &p->reason, k != 0 ? (int)(uint32_t)k : ARBOR_REASON_SHUTDOWN,
        memory_order_relaxed);
    return 1;
  }
  return 0;
}

static void proc_exited(struct arbor__task *t)
{
  struct arbor__proc *p = proc_of(t);
  arbor_rt *rt = p->rt;
  int w = t->worker; /* read now: once unreferenced, t may run elsewhere */
  uint32_t f;

  /* Exactly one notification per link and monitor, whatever the cause;
   * then free what the process held, closing its mailbox: later sends are
   * dropped (and counted) by their senders. */
  arbor__proc_notify_exit(p, atomic_load_explicit(&p->reason,
                                                  memory_order_relaxed));
  arbor__mailbox_drain(rt, p);
  /* Counted out on this worker (exits always run on one), before EXITED is
   * published: whoever sees the process exited (arbor_wait, a DOWN) also
   * sees the live count without it.  During shutdown every exit pokes the
   * waiter below, which sums the count again; an exit that misses the flag
   * is seen by the waiter's next periodic sum (see arbor_rt_shutdown()), so
   * no fence is needed here. */
  arbor__live_add(rt, w, -1);
  /* SeqCst: pairs with the reference CAS in arbor__proc_ref(); a waiter
   * either holds a reference we see here, or sees EXITED itself.  The
   * release half publishes the reason. */
  f = atomic_fetch_or_explicit(&p->flags, ARBOR__P_EXITED,
                               memory_order_seq_cst);
  if (atomic_load_explicit(&p->refs, memory_order_seq_cst) > 1) {
    pthread_mutex_lock(&rt->join_lock);
    pthread_cond_broadcast(&rt->join_cv);
    pthread_mutex_unlock(&rt->join_lock);
  }
  if ((f & ARBOR__P_JOINABLE) == 0)
    arbor__proc_unref(p);
  if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) {
    pthread_mutex_lock(&rt->life_lock);
    pthread_cond_broadcast(&rt->life_cv);
    pthread_mutex_unlock(&rt->life_lock);
  }
}

/* One line for every overflow that aborts: a slab canary found at a switch,
 * or a guard page hit with ARBOR_OVERFLOW_ABORT or that cannot be recovered
 * from.  The latter runs in a signal handler on the overflowing process's
 * worker, so this avoids stdio (whose lock that process may hold) and
 * malloc: snprintf into a buffer on the (alternate) stack, then write(). */
static void proc_overflow(struct arbor__task *t)
{
  struct arbor__proc *p = proc_of(t);
  char line[ARBOR_NAME_MAX + 128];
  int n;

  n = snprintf(
      line, sizeof(line),
      "arbor: stack overflow in process %#llx (%s), stack size %zu "
      "bytes: aborting\n",
      (unsigned long long)atomic_load_explicit(&p->pid, memory_order_relaxed),
      p->name != NULL ? p->name->s : "unnamed", t->stack.size);
  if (n > (int)sizeof(line) - 1)
    n = (int)sizeof(line) - 1;
  for (int off = 0; n > off;) {
    ssize_t k = write(STDERR_FILENO, line + off, (size_t)(n - off));

    if (k <= 0 && errno != EINTR)
      break;
    if (k > 0)
      off += (int)k;
  }
}

/* A guard-page overflow ended the process where it stood (sched/fault.c):
 * nothing of it may run again -- not its defers either, whose stack is
 * gone -- so it is marked as ending, given its reason, and then exits as
 * any other process does: one notification per link and monitor, its
 * registered name dropped, its mailbox drained, its waiters woken, a
 * joinable zombie keeping the reason, the record recycled. */
static void proc_crashed(struct arbor__task *t, int why)
{
  struct arbor__proc *p = proc_of(t);

  arbor__assert(why == ARBOR__CRASH_STACK_OVERFLOW);
  atomic_fetch_or_explicit(&p->flags, ARBOR__P_EXITING, memory_order_relaxed);
  atomic_store_explicit(&p->reason, ARBOR_ESTACKOVERFLOW,
                        memory_order_relaxed);
  proc_exited(t);
}

/* Asked by the fault handler, on the overflowing process's own worker:
 * a supervisor cannot end without its defer (supervisor.c's sup_cleanup,
 * which stops its children in order and frees its state), so an overflow
 * in one aborts the program instead. */
static bool proc_recoverable(struct arbor__task *t)
{
  return proc_of(t)->sup_state == NULL;
}

/* Between runs and before sleeping: fire due timers, and publish the
 * records that ended here, so that no free record stays out of sight while
 * this worker sleeps. */
static size_t proc_maintain(void *ud, unsigned w)
{
  arbor__records_flush(ud, w);
  return arbor__timers_maintain(ud, w);
}

const struct arbor__sched_hooks arbor__proc_hooks = {
    .main = proc_main,
    .prestart = proc_prestart,
    .exited = proc_exited,
    .overflow = proc_overflow,
    .park = arbor__proc_park,
    .crashed = proc_crashed,
    .recoverable = proc_recoverable,
    .maintain = proc_maintain,
    .next_deadline = arbor__timers_deadline,
    .ud = NULL, /* each runtime sets its own */
};

/* ---- the public calls ---------------------------------------------------- */

int arbor_spawn(arbor_rt *rt, arbor_pid *pid_out, arbor_fn fn, void *arg,
                const arbor_spawn_opts *opts)
{
  return arbor__spawn_ex(rt, pid_out, fn, arg, opts, 0);
}

int arbor__spawn_ex(arbor_rt *rt, arbor_pid *pid_out, arbor_fn fn, void *arg,
                    const arbor_spawn_opts *opts, arbor_pid sup)
{
  static const arbor_spawn_opts defaults = {0};
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__name *name = NULL;
  struct arbor__proc *p;
  arbor_pid pid;
  size_t stack;
  int w, err;

  if (opts == NULL)
    opts = &defaults;
  if (rt == NULL)
    rt = self != NULL ? self->rt : NULL;
  if (rt == NULL || fn == NULL ||
      (opts->flags & ~(ARBOR_SPAWN_JOINABLE | ARBOR_SPAWN_LINK |
                       ARBOR_SPAWN_MONITOR)) != 0)
    return ARBOR_EINVAL;
  if ((opts->flags & ARBOR_SPAWN_MONITOR) && opts->monitor_ref == NULL)
    return ARBOR_EINVAL;
  stack = arbor__stack_round(&rt->sched.stacks, opts->stack_size);
  if (stack == 0)
    return ARBOR_EINVAL;
  if (self != NULL && self->rt != rt)
    self = NULL; /* a parent in another runtime is no parent here */
  if (self == NULL && (opts->flags & (ARBOR_SPAWN_LINK | ARBOR_SPAWN_MONITOR)))
    return ARBOR_ENOTPROC;
  if (self != NULL)
    arbor__proc_checkpoint(self);
  if (opts->name != NULL) {
    err = arbor__name_make(self != NULL ? self->name : NULL, opts->name,
                           &name);
    if (err < 0)
      return err;
  } else if (self != NULL) {
    name = arbor__name_ref(self->name);
  }
  w = arbor__worker_of(rt, self);
  /* From being counted in `live` to being queued, the new process must not
   * be left half made: a lost one would keep shutdown waiting forever.  A
   * stack overflow cannot cut it short: a spawning process passed its
   * checkpoint above with ARBOR__STACK_RESERVE bytes of stack left, far
   * more than spawn's frames need, and other threads have no guard-page
   * handling.  So no critical section (fault.c) is taken here. */
  /* Count it, then look for shutdown.  The SeqCst fence pairs with the one
   * in arbor_rt_shutdown() between its store of shutting_down and its sum
   * of the live count: either shutdown sees this process counted, or we
   * see shutdown begun. */
  arbor__live_add(rt, w, 1);
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) {
    err = ARBOR_ESHUTDOWN;
    goto fail;
  }
  p = arbor__record_alloc(rt, w);
  if (p == NULL) {
    err = ARBOR_ENOMEM;
    goto fail;
  }
  p->gen++;
  p->fn = fn;
  p->arg = arg;
  p->name = name;
  p->defers = p->defer_inline;
  p->ndefers = 0;
  p->capdefers = ARBOR__DEFER_INLINE;
  atomic_store_explicit(&p->kill, 0, memory_order_relaxed);
  atomic_store_explicit(&p->reason, 0, memory_order_relaxed);
  atomic_store_explicit(&p->flags,
                        (opts->flags & ARBOR_SPAWN_JOINABLE) ? ARBOR__P_JOINABLE
                                                             : 0,
                        memory_order_relaxed);
  atomic_store_explicit(&p->refs, 1, memory_order_relaxed);
  arbor__mailbox_init(&p->mbox);
  p->saved = p->saved_tail = p->current = NULL;
  atomic_store_explicit(&p->waiting, ARBOR__WAIT_NONE, memory_order_relaxed);
  atomic_store_explicit(&p->lock, 0, memory_order_relaxed);
  p->dead = 0;
  p->links.n = p->monitors.n = p->watching.n = 0;
  p->regname = NULL;
  p->sup = sup;
  p->store = NULL;
  p->sup_state = NULL;
  arbor__task_init(&p->task, stack, p->index);
  pid = arbor__pid_make(rt->tag, p->gen, p->index);
  if (opts->flags & (ARBOR_SPAWN_LINK | ARBOR_SPAWN_MONITOR)) {
    /* Before the child is visible or runnable, so it cannot die
     * unobserved. */
    atomic_store_explicit(&p->pid, pid, memory_order_relaxed);
    err = arbor__spawn_link(self, p, opts->flags & ARBOR_SPAWN_LINK,
                            (opts->flags & ARBOR_SPAWN_MONITOR)
                                ? opts->monitor_ref
                                : NULL);
    if (err < 0) {
      atomic_store_explicit(&p->pid, 0, memory_order_relaxed);
      arbor__record_free(rt, p);
      goto fail;
    }
  }
  /* Release: pairs with the acquire in arbor__proc_ref(); the record is
   * complete before the pid resolves. */
  atomic_store_explicit(&p->pid, pid, memory_order_release);
  if (pid_out != NULL)
    *pid_out = pid;
  arbor__sched_count_spawn();
  arbor__sched_submit(&rt->sched, &p->task);
  if (self != NULL && --self->task.budget == 0) {
    /* Spawning is a runtime call like any other: a process that spawns in
     * a loop lets the others (its children first) run now and then. */
    arbor__sched_yield();
    arbor__proc_checkpoint(self);
  }
  return 0;

fail:
  arbor__live_add(rt, w, -1);
  arbor__name_unref(name);
  return err;
}

arbor_pid arbor_self(void)
{
  struct arbor__proc *p = arbor__proc_current();

  return p != NULL ? atomic_load_explicit(&p->pid, memory_order_relaxed) : 0;
}

int arbor_worker(void)
{
  return arbor__proc_current() != NULL ? arbor__sched_worker_index() : -1;
}

arbor_rt *arbor_rt_current(void)
{
  struct arbor__proc *p = arbor__proc_current();

  return p != NULL ? p->rt : NULL;
}

int arbor_yield(void)
{
  struct arbor__proc *p = arbor__proc_current();

  if (p == NULL)
    return ARBOR_ENOTPROC;
  arbor__proc_checkpoint(p);
  arbor__sched_yield();
  arbor__proc_checkpoint(p);
  return 0;
}

int arbor_exit(int reason)
{
  struct arbor__proc *p = arbor__proc_current();

  if (p == NULL)
    return ARBOR_ENOTPROC;
  proc_finish(p, reason);
}

int arbor_defer(void (*fn)(void *arg), void *arg)
{
  struct arbor__proc *p = arbor__proc_current();

  if (p == NULL)
    return ARBOR_ENOTPROC;
  if (fn == NULL)
    return ARBOR_EINVAL;
  if (p->ndefers == p->capdefers) {
    uint32_t cap = p->capdefers * 2;
    struct arbor__defer *d = malloc(cap * sizeof(*d));

    if (d == NULL)
      return ARBOR_ENOMEM;
    memcpy(d, p->defers, p->ndefers * sizeof(*d));
    if (p->defers != p->defer_inline)
      free(p->defers);
    p->defers = d;
    p->capdefers = cap;
  }
  p->defers[p->ndefers++] = (struct arbor__defer){fn, arg};
  return 0;
}

int arbor_name(arbor_rt *rt, arbor_pid pid, char *buf, size_t cap)
{
  struct arbor__proc *p;
  size_t len, n;
  int err;

  if (rt == NULL)
    rt = arbor_rt_current();
  if (rt == NULL || buf == NULL || cap == 0)
    return ARBOR_EINVAL;
  err = arbor__proc_ref(rt, pid, &p);
  if (err < 0)
    return err;
  if (atomic_load_explicit(&p->flags, memory_order_acquire) &
      ARBOR__P_EXITED) {
    arbor__proc_unref(p);
    return ARBOR_ESRCH;
  }
  /* The name cannot change or go while we hold a reference. */
  len = p->name != NULL ? p->name->len : 0;
  n = len < cap - 1 ? len : cap - 1;
  if (n > 0)
    memcpy(buf, p->name->s, n);
  buf[n] = '\0';
  arbor__proc_unref(p);
  return len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
}

int arbor_alive(arbor_rt *rt, arbor_pid pid)
{
  struct arbor__proc *p;
  int err, alive;

  if (rt == NULL)
    rt = arbor_rt_current();
  if (rt == NULL)
    return ARBOR_EINVAL;
  err = arbor__proc_ref(rt, pid, &p);
  if (err == ARBOR_ESRCH)
    return 0;
  if (err < 0)
    return err;
  alive = (atomic_load_explicit(&p->flags, memory_order_acquire) &
           ARBOR__P_EXITED) == 0;
  arbor__proc_unref(p);
  return alive;
}

int arbor_wait(arbor_rt *rt, arbor_pid pid, int64_t timeout_ms, int *reason)
{
  struct arbor__proc *p;
  struct timespec deadline;
  bool reap = false;
  int err, r = 0;

  if (rt == NULL)
    return ARBOR_EINVAL;
  if (arbor__sched_self() == &rt->sched)
    return ARBOR_EDEADLK;
  err = arbor__proc_ref(rt, pid, &p);
  if (err < 0)
    return err;
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&rt->join_lock);
  /* Acquire: pairs with the fetch_or of EXITED, which publishes the reason. */
  while ((atomic_load_explicit(&p->flags, memory_order_acquire) &
          ARBOR__P_EXITED) == 0) {
    if (timeout_ms == 0 ||
        (timeout_ms > 0 && pthread_cond_timedwait(&rt->join_cv, &rt->join_lock,
                                                  &deadline) == ETIMEDOUT)) {
      err = ARBOR_ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait(&rt->join_cv, &rt->join_lock);
  }
  if (err == 0) {
    uint32_t f = atomic_load_explicit(&p->flags, memory_order_acquire);

    r = atomic_load_explicit(&p->reason, memory_order_relaxed);
    /* Exactly one waiter collects a zombie. */
    if ((f & ARBOR__P_JOINABLE) && !(f & ARBOR__P_REAPED) &&
        !(atomic_fetch_or_explicit(&p->flags, ARBOR__P_REAPED,
                                   memory_order_relaxed) &
          ARBOR__P_REAPED))
      reap = true;
  }
  pthread_mutex_unlock(&rt->join_lock);
  if (reap)
    arbor__proc_unref(p);
  arbor__proc_unref(p);
  if (err == 0 && reason != NULL)
    *reason = r;
  return err;
}

/* Wake every process that may be blocked, so that it notices shutdown. */
void arbor__proc_wake_all(arbor_rt *rt)
{
  uint32_t n = atomic_load_explicit(&rt->next_index, memory_order_acquire);

  /* Refills that found the index space exhausted leave it a little past
   * the end (records.c). */
  if (n > ARBOR__PID_MAX_INDEX)
    n = ARBOR__PID_MAX_INDEX;

  for (uint32_t i = 0; i < n; i++) {
    struct arbor__proc *p = arbor__proc_slot(rt, i);

    /* Wakes it only if it is parked, taking its wait back (after the
     * caller set shutting_down, which the park hook checks after committing
     * a wait).  A record being recycled or reused at the same time gets at
     * worst a spurious wake, which every blocking call tolerates. */
    if (p != NULL && atomic_load_explicit(&p->pid, memory_order_acquire) != 0)
      arbor__proc_wake_waiting(p);
  }
}

void arbor__proc_table_fini(arbor_rt *rt)
{
  for (uint32_t c = 0; c < ARBOR__NCHUNKS; c++) {
    struct arbor__proc *chunk =
        atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);

    if (chunk == NULL)
      continue;
    /* Zombies nobody waited for still hold a name and maybe defers. */
    for (uint32_t i = 0; i < ARBOR__CHUNK_SIZE; i++) {
      struct arbor__proc *p = &chunk[i];

      arbor__signals_fini(p);
      if (atomic_load_explicit(&p->pid, memory_order_relaxed) == 0)
        continue;
      arbor__mailbox_drain(rt, p);
      arbor__name_unref(p->name);
      if (p->defers != p->defer_inline)
        free(p->defers);
    }
    free(chunk);
  }
}
