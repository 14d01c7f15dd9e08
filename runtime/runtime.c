/* runtime/runtime.c -- the runtime's life cycle: options, create, shutdown,
 * destroy, and the read-only queries.
 *
 * Shutdown sets shutting_down and then waits for the live count to reach
 * 0, while spawn counts itself in before it checks shutting_down, with a
 * SeqCst fence between the two on each side: so no spawn slips past a
 * shutdown.  The live count is sharded, one share per worker written only
 * by that worker plus a shared atomic for spawns from other threads, so
 * that spawn and exit never bounce a line between workers.  A process may
 * be spawned on one worker and end on another, so each worker counts both
 * (spawned, ended) and only the totals mean something.  The sum reads every
 * `ended` first (acquire) and every `spawned` after, so it never counts an
 * exit without its spawn: it is never below the number of processes
 * alive.  Taken after the fence, it counts every spawn that succeeded, so
 * a sum of 0 means every process has ended.  Exits during shutdown signal the waiter, which also
 * sums again every few milliseconds, in case an exit's count and the
 * waiter's sum crossed without seeing each other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/sup.h"

#define MAX_WORKERS 256
#define DEFAULT_STACK_CACHE 256
#define MAX_STACK_CACHE 65536
#define DEFAULT_WATCHDOG_MS ((int64_t)100)
#define MAX_WATCHDOG_MS ((int64_t)24 * 60 * 60 * 1000)

/* Live runtimes by tag, so that a pid alone finds its runtime (arbor_send()
 * takes no runtime).  Tags are 1..255, 0 is never one (so 0 is never a pid),
 * and a tag is taken by one live runtime at a time.  A slot is cleared when
 * its runtime is destroyed; as for every call, none may race with that. */
arbor_rt *_Atomic arbor__runtimes[256];
static _Atomic unsigned next_tag;

static int take_tag(arbor_rt *rt)
{
  for (unsigned i = 0; i < 255; i++) {
    unsigned tag = (atomic_fetch_add(&next_tag, 1) % 255) + 1;
    arbor_rt *expect = NULL;

    /* Acq_rel: pairs with the acquire in arbor__rt_of_pid(). */
    if (atomic_compare_exchange_strong_explicit(&arbor__runtimes[tag], &expect, rt,
                                                memory_order_acq_rel,
                                                memory_order_relaxed)) {
      rt->tag = (uint8_t)tag;
      return 0;
    }
  }
  return ARBOR_EAGAIN; /* 255 runtimes alive at once */
}

static int validate(const arbor_rt_opts *o, unsigned *workers)
{
  unsigned n = o->workers;

  if (n == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    n = cpus > 0 ? (unsigned)cpus : 1;
    if (n > MAX_WORKERS)
      n = MAX_WORKERS;
  }
  if (n > MAX_WORKERS)
    return ARBOR_EINVAL;
  if (o->stack_size != 0 &&
      (o->stack_size < ARBOR__STACK_MIN || o->stack_size > ARBOR__STACK_MAX))
    return ARBOR_EINVAL;
  if (o->stack_mode < ARBOR_STACK_AUTO || o->stack_mode > ARBOR_STACK_SLAB)
    return ARBOR_EINVAL;
  if (o->stack_cache > MAX_STACK_CACHE)
    return ARBOR_EINVAL;
  if (o->on_stack_overflow != ARBOR_OVERFLOW_EXIT &&
      o->on_stack_overflow != ARBOR_OVERFLOW_ABORT)
    return ARBOR_EINVAL;
  if (o->watchdog_ms > MAX_WATCHDOG_MS)
    return ARBOR_EINVAL;
  *workers = n;
  return 0;
}

/* The stuck() hook (sched/watchdog.c), on the watchdog thread: report the
 * process that holds worker w.  It may be running right now, so nothing in
 * its record may be read before the record is pinned to the incarnation
 * that was stuck: the pid is read with acquire (pairs with its release
 * store in arbor_spawn(), so the name and supervisor written before it are
 * visible), a reference keeps that incarnation's name alive (records are
 * type-stable, and a name is freed only by the last unref), and the
 * confirmation that the worker has not switched since the sample proves the
 * pid read was the stuck incarnation's.  name and sup do not change while
 * the incarnation lives. */
static void proc_stuck(void *ud, struct arbor__task *t, unsigned w,
                       int64_t ns)
{
  arbor_rt *rt = ud;
  struct arbor__proc *p = arbor__container_of(t, struct arbor__proc, task);
  struct arbor__proc *pinned, *sup = NULL;
  arbor_pid pid = atomic_load_explicit(&p->pid, memory_order_acquire);
  arbor_event ev;

  if (pid == 0 || arbor__proc_ref(rt, pid, &pinned) < 0)
    return;
  if (arbor__sched_stuck_confirm(&rt->sched, w, t)) {
    ev = (arbor_event){
        .kind = ARBOR_EV_PROC_STUCK,
        .sup = p->sup,
        .child_id = p->name != NULL ? p->name->s : "",
        .child = pid,
        .worker = (int)w,
        .duration_ns = ns,
    };
    if (p->sup != 0 && arbor__proc_ref(rt, p->sup, &sup) == 0 &&
        sup->name != NULL)
      ev.sup_name = sup->name->s;
    arbor__sup_emit(rt, &ev);
    if (sup != NULL)
      arbor__proc_unref(sup);
  }
  arbor__proc_unref(pinned);
}

int arbor_rt_create(arbor_rt **out, const arbor_rt_opts *opts)
{
  static const arbor_rt_opts defaults = {0};
  struct arbor__sched_hooks hooks;
  struct arbor__sched_opts so;
  unsigned workers;
  arbor_rt *rt;
  int err;

  if (out == NULL)
    return ARBOR_EINVAL;
  if (opts == NULL)
    opts = &defaults;
  err = validate(opts, &workers);
  if (err < 0)
    return err;
  rt = aligned_alloc(64, sizeof(*rt));
  if (rt == NULL)
    return ARBOR_ENOMEM;
  memset(rt, 0, sizeof(*rt));
  rt->nworkers = workers;
  rt->local = aligned_alloc(64, workers * sizeof(*rt->local));
  if (rt->local == NULL) {
    err = ARBOR_ENOMEM;
    goto fail_local;
  }
  memset(rt->local, 0, workers * sizeof(*rt->local));
  err = arbor__records_init(rt);
  if (err < 0)
    goto fail_records;
  pthread_mutex_init(&rt->life_lock, NULL);
  pthread_mutex_init(&rt->stop_lock, NULL);
  pthread_cond_init(&rt->life_cv, NULL);
  pthread_mutex_init(&rt->join_lock, NULL);
  {
    /* arbor_wait() measures its timeout on the monotonic clock. */
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->join_cv, &ca);
    pthread_condattr_destroy(&ca);
  }

  arbor__registry_init(rt);
  arbor__timers_init(rt);
  pthread_mutex_init(&rt->event_lock, NULL);
  rt->event_level = ARBOR_LEVEL_WARN;
  hooks = arbor__proc_hooks;
  hooks.stuck = proc_stuck;
  hooks.ud = rt;
  so = (struct arbor__sched_opts){
      .workers = workers,
      .stack_size = opts->stack_size,
      .stack_mode = opts->stack_mode,
      .stack_cache = opts->stack_cache != 0 ? opts->stack_cache
                                            : DEFAULT_STACK_CACHE,
      .seed = opts->seed,
      .on_overflow = opts->on_stack_overflow,
      .watchdog_ns = opts->watchdog_ms < 0    ? 0 /* off */
                     : opts->watchdog_ms == 0 ? DEFAULT_WATCHDOG_MS * 1000000
                                              : opts->watchdog_ms * 1000000,
  };
  err = arbor__sched_init(&rt->sched, &so, &hooks);
  if (err < 0)
    goto fail_sched;
  err = take_tag(rt);
  if (err < 0)
    goto fail_tag;
  err = arbor__sched_start(&rt->sched);
  if (err < 0)
    goto fail_start;
  *out = rt;
  return 0;

fail_start:
  atomic_store(&arbor__runtimes[rt->tag], NULL);
fail_tag:
  arbor__sched_fini(&rt->sched);
fail_sched:
  pthread_mutex_destroy(&rt->event_lock);
  arbor__timers_fini(rt);
  arbor__registry_fini(rt);
  pthread_cond_destroy(&rt->join_cv);
  pthread_mutex_destroy(&rt->join_lock);
  pthread_cond_destroy(&rt->life_cv);
  pthread_mutex_destroy(&rt->life_lock);
  pthread_mutex_destroy(&rt->stop_lock);
  arbor__records_fini(rt);
fail_records:
  free(rt->local);
fail_local:
  free(rt);
  return err == -ENOMEM ? ARBOR_ENOMEM : err;
}

int arbor_rt_shutdown(arbor_rt *rt)
{
  if (rt == NULL)
    return ARBOR_EINVAL;
  if (arbor__sched_self() == &rt->sched)
    return ARBOR_EDEADLK;
  /* stop_lock serialises shutdowns; life_lock only guards the wait, and is
   * not held while the workers are joined: the last exit takes it to signal
   * us, and its worker must be able to finish that before it can stop. */
  pthread_mutex_lock(&rt->stop_lock);
  if (!rt->stopped) {
    /* SeqCst: pairs with the live count in arbor_spawn() and in the exit
     * path (see the top of this file). */
    atomic_store_explicit(&rt->shutting_down, 1, memory_order_seq_cst);
    /* Processes that are running or runnable notice at their next runtime
     * call or first run; blocked ones need a wake to notice. */
    arbor__proc_wake_all(rt);
    atomic_thread_fence(memory_order_seq_cst); /* see the top of the file */
    pthread_mutex_lock(&rt->life_lock);
    while (arbor__rt_live_sum(rt) > 0) {
      struct timespec until;

      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 2000000L; /* 2 ms */
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&rt->life_cv, &rt->life_lock, &until);
    }
    pthread_mutex_unlock(&rt->life_lock);
    arbor__sched_stop(&rt->sched);
    rt->stopped = 1;
  }
  pthread_mutex_unlock(&rt->stop_lock);
  return 0;
}

void arbor_rt_destroy(arbor_rt *rt)
{
  if (rt == NULL || arbor__sched_self() == &rt->sched)
    return;
  (void)arbor_rt_shutdown(rt);
  atomic_store_explicit(&arbor__runtimes[rt->tag], NULL, memory_order_release);
  arbor__sched_fini(&rt->sched);
  arbor__proc_table_fini(rt);
  arbor__timers_fini(rt);
  arbor__registry_fini(rt);
  pthread_mutex_destroy(&rt->event_lock);
  for (unsigned w = 0; w < rt->nworkers; w++) {
    struct arbor__env *e = rt->local[w].envs;

    while (e != NULL) {
      struct arbor__env *next =
          atomic_load_explicit(&e->next, memory_order_relaxed);

      free(e);
      e = next;
    }
  }
  pthread_cond_destroy(&rt->join_cv);
  pthread_mutex_destroy(&rt->join_lock);
  pthread_cond_destroy(&rt->life_cv);
  pthread_mutex_destroy(&rt->life_lock);
  pthread_mutex_destroy(&rt->stop_lock);
  arbor__records_fini(rt);
  free(rt->local);
  free(rt);
}

int arbor_rt_workers(const arbor_rt *rt)
{
  return rt != NULL ? (int)rt->nworkers : ARBOR_EINVAL;
}

int64_t arbor__rt_live_sum(const arbor_rt *rt)
{
  uint64_t ended = 0, spawned = 0;

  /* Acquire: pairs with the release in arbor__live_add(); see the top of
   * this file for why ended is read first. */
  for (unsigned w = 0; w < rt->nworkers; w++)
    ended += atomic_load_explicit(&rt->local[w].ended, memory_order_acquire);
  for (unsigned w = 0; w < rt->nworkers; w++)
    spawned += atomic_load_explicit(&rt->local[w].spawned, memory_order_acquire);
  return (int64_t)(spawned - ended) +
         atomic_load_explicit(&rt->live, memory_order_acquire);
}

int64_t arbor_rt_live(const arbor_rt *rt)
{
  if (rt == NULL)
    return ARBOR_EINVAL;
  return arbor__rt_live_sum(rt);
}

int arbor_rt_stats(const arbor_rt *rt, arbor_worker_stats *out, unsigned n)
{
  if (rt == NULL || out == NULL)
    return ARBOR_EINVAL;
  if (n > rt->nworkers)
    n = rt->nworkers;
  for (unsigned i = 0; i < n; i++) {
    struct arbor__worker_stats s;

    arbor__sched_stats(&rt->sched, i, &s);
    out[i] = (arbor_worker_stats){
        .runs = s.runs,
        .spawns = s.spawns,
        .steals = s.steals,
        .injects = s.injects,
        .parks = s.parks,
        .lifo = s.lifo,
        .timers = s.timers,
    };
  }
  return (int)n;
}
