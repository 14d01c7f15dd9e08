/* sched/sched.c -- the worker pool's life cycle, and making tasks runnable.
 *
 * Memory: workers (with their rings) and the sleeper list are allocated at
 * init and freed in arbor__sched_fini(), after arbor__sched_stop() joined
 * every thread, so no thread can still be reading them.  Stacks belong to
 * the stack pool and the per-worker caches (sched/stack.c); every cached
 * stack is unmapped at fini.  The watchdog's thread is started last and
 * stopped first, and its state freed at fini.
 */
#include "sched/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/fault.h"

void *arbor__worker_main(void *arg);

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int arbor__sched_init(struct arbor__sched *s,
                      const struct arbor__sched_opts *opts,
                      const struct arbor__sched_hooks *hooks)
{
  uint64_t seed = opts->seed;
  unsigned n = opts->workers;
  unsigned i;
  int err;

  memset(s, 0, sizeof(*s));
  s->nworkers = n;
  s->hooks = *hooks;
  s->on_overflow = opts->on_overflow;
  s->watchdog_ns = opts->watchdog_ns > 0 ? opts->watchdog_ns : 0;
  err = arbor__stack_pool_init(&s->stacks, opts->stack_mode, opts->stack_size);
  if (err < 0)
    return err;
  if (seed == 0) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
  pthread_mutex_init(&s->inject.lock, NULL);
  pthread_mutex_init(&s->idle.lock, NULL);
  /* Every worker starts awake and not searching. */
  atomic_init(&s->idle.state, n << 16);
  s->idle.sleepers = calloc(n, sizeof(*s->idle.sleepers));
  s->workers = calloc(n, sizeof(*s->workers));
  s->threads = calloc(n, sizeof(*s->threads));
  if (s->idle.sleepers == NULL || s->workers == NULL || s->threads == NULL) {
    err = -ENOMEM;
    goto fail;
  }
  for (i = 0; i < n; i++) {
    struct arbor__worker *w = aligned_alloc(64, sizeof(*w));

    if (w == NULL) {
      err = -ENOMEM;
      goto fail;
    }
    memset(w, 0, sizeof(*w));
    w->index = i;
    w->sched = s;
    w->rng = splitmix64(&seed) | 1; /* xorshift must not start at 0 */
    ck_ring_init(&w->ring, ARBOR__RING_SIZE);
    s->workers[i] = w;
    err = arbor__stack_cache_init(&w->stack_cache, opts->stack_cache);
    if (err < 0)
      goto fail;
  }
  return 0;

fail:
  arbor__sched_fini(s);
  return err;
}

int arbor__sched_start(struct arbor__sched *s)
{
  int err;

  /* Before any worker runs a task that could overflow. */
  arbor__fault_install();
  s->fault_handler = true;
  for (unsigned i = 0; i < s->nworkers; i++) {
    char name[16];

    if (pthread_create(&s->threads[i], NULL, arbor__worker_main,
                       s->workers[i]) != 0) {
      arbor__sched_stop(s);
      return -EAGAIN;
    }
    s->nthreads++;
    snprintf(name, sizeof(name), "arbor-w%u", i % 1000u);
    pthread_setname_np(s->threads[i], name);
  }
  err = arbor__watchdog_start(s);
  if (err < 0)
    arbor__sched_stop(s);
  return err;
}

void arbor__sched_stop(struct arbor__sched *s)
{
  /* First, so that it is not taking a LIFO slot from a worker that leaves:
   * it may wait for that worker to finish a slot access. */
  arbor__watchdog_stop(s);
  /* SeqCst: pairs with the load before park in arbor__worker_main(); a
   * worker either sees the flag or gets the unpark below. */
  atomic_store_explicit(&s->stop, 1, memory_order_seq_cst);
  for (unsigned i = 0; i < s->nthreads; i++)
    arbor__unpark(s->workers[i]);
  for (unsigned i = 0; i < s->nthreads; i++)
    pthread_join(s->threads[i], NULL);
  s->nthreads = 0;
  if (s->fault_handler) {
    arbor__fault_uninstall();
    s->fault_handler = false;
  }
}

void arbor__sched_fini(struct arbor__sched *s)
{
  arbor__watchdog_fini(s);
  if (s->workers != NULL) {
    for (unsigned i = 0; i < s->nworkers; i++) {
      struct arbor__worker *w = s->workers[i];

      if (w == NULL)
        continue;
      arbor__stack_cache_fini(&s->stacks, &w->stack_cache);
      free(w);
    }
  }
  free(s->workers);
  free(s->threads);
  free(s->idle.sleepers);
  s->workers = NULL;
  s->threads = NULL;
  s->idle.sleepers = NULL;
  arbor__inject_fini(s);
  pthread_mutex_destroy(&s->inject.lock);
  pthread_mutex_destroy(&s->idle.lock);
  arbor__stack_pool_fini(&s->stacks);
}

void arbor__task_init(struct arbor__task *t, size_t stack_size, uint32_t slot)
{
  arbor__assert(stack_size <= ARBOR__STACK_MAX);
  memset(&t->stack, 0, sizeof(t->stack));
  t->stack_size = (uint32_t)stack_size;
  t->slot = slot;
  t->reason = 0;
  t->started = 0;
  t->budget = ARBOR__BUDGET;
  atomic_store_explicit(&t->state, ARBOR__TASK_RUNNABLE, memory_order_relaxed);
}

/* Put a runnable task where it will run soonest. */
static void enqueue(struct arbor__sched *s, struct arbor__task *t)
{
  struct arbor__worker *w = arbor__tls_worker;

  if (w != NULL && w->sched == s) {
    /* The worker made it runnable, so it is likely to touch what the
     * worker just touched: run it next, and let the previous occupant of
     * the LIFO slot be stolen. */
    struct arbor__task *prev;

    if (arbor__unlikely(!arbor__lifo_enter(w))) {
      /* The watchdog found this worker stuck and is taking (or took) its
       * LIFO slot: queue where thieves can reach. */
      arbor__runq_push_sp(w, t);
      return;
    }
    prev = w->lifo;
    w->lifo = t;
    arbor__lifo_leave(w);
    if (prev != NULL)
      arbor__runq_push_sp(w, prev);
    return;
  }
  arbor__inject_push(s, &t, 1);
  arbor__idle_notify(s);
}

void arbor__sched_submit(struct arbor__sched *s, struct arbor__task *t)
{
  enqueue(s, t);
}

void arbor__sched_ready(struct arbor__sched *s, struct arbor__task *t)
{
  /* The task is likely to run next, on this worker, after the waker's few
   * remaining instructions: start fetching the lines its switch-in needs
   * (its task line, and the top of its saved stack) now, so that their
   * misses overlap with that work instead of following it.  In a ring of
   * processes every hop's lines are cold. */
  const char *sp = arbor__ctx_saved_sp(&t->ctx);

  if (sp != NULL) {
    __builtin_prefetch(sp);
    __builtin_prefetch(sp + 64);
    __builtin_prefetch(sp + 128);
    __builtin_prefetch(sp + 192);
  }
  /* The caller's take-back of the wait word (an acquire RMW) pairs with
   * the release RMW that committed it in the park hook, after the switch
   * away: the task's saved context is visible, and the run queue passes it
   * on to whoever runs the task. */
  enqueue(s, t);
}

bool arbor__sched_wake(struct arbor__sched *s, struct arbor__task *t)
{
  uint32_t st = ARBOR__TASK_WAITING;

  /* The common case, one CAS: the task is parked, and we move it out.
   * Acquire: pairs with the release CAS to WAITING in run(), so we (and,
   * through the run queue, whoever runs it next) see its stack as it was
   * left. */
  if (atomic_compare_exchange_strong_explicit(&t->state, &st,
                                              ARBOR__TASK_RUNNABLE,
                                              memory_order_acq_rel,
                                              memory_order_acquire)) {
    enqueue(s, t);
    return true;
  }
  /* Not parked yet (still running, or between its switch away and the
   * park): leave NOTIFIED, and the park will not happen.  If it parks
   * between our CAS and this, fetch_or sees WAITING and we own the wake
   * after all. */
  st = atomic_fetch_or_explicit(&t->state, ARBOR__TASK_NOTIFIED,
                                memory_order_acq_rel);
  if (st != ARBOR__TASK_WAITING)
    return false; /* running, runnable, done, or already being woken */
  atomic_store_explicit(&t->state, ARBOR__TASK_RUNNABLE, memory_order_relaxed);
  enqueue(s, t);
  return true;
}

void arbor__sched_poke(struct arbor__sched *s, unsigned w)
{
  arbor__unpark(s->workers[w]);
}

void arbor__sched_stats(const struct arbor__sched *s, unsigned i,
                        struct arbor__worker_stats *out)
{
  const struct arbor__worker *w = s->workers[i];

  out->runs = atomic_load_explicit(&w->n_runs, memory_order_relaxed);
  out->spawns = atomic_load_explicit(&w->n_spawns, memory_order_relaxed);
  out->steals = atomic_load_explicit(&w->n_steals, memory_order_relaxed);
  out->injects = atomic_load_explicit(&w->n_injects, memory_order_relaxed);
  out->parks = atomic_load_explicit(&w->n_parks, memory_order_relaxed);
  out->lifo = atomic_load_explicit(&w->n_lifo, memory_order_relaxed);
  out->timers = atomic_load_explicit(&w->n_timers, memory_order_relaxed);
}
