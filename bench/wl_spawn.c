/* bench/wl_spawn.c -- the spawn workload: one process spawns n processes,
 * each of which decrements a shared counter and exits.
 *
 * WORKLOADS.md: "a process spawns n processes, each of which decrements a
 * shared counter initialised to n and exits; time until the counter reaches
 * zero".  The clock starts in the spawning process just before its first
 * spawn and stops in the child that brings the counter to zero, so it covers
 * every spawn, every child's start and run, and most exits: the last few
 * children may still be leaving when the clock stops, which the contract
 * allows, since it stops the clock at the counter.  ns_per_spawn = time / n.
 * The run is only over (and *s reusable) once every child is gone.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "bench/bench.h"

enum { P_N };

static const struct bench_param params[] = {
    {"n", 1000000, 20000, 1},
};

struct spawn_state {
  int64_t n;
  /* Decremented with acq_rel: each decrement releases, and the one that
   * reaches zero acquires all of them (they form one release sequence), so
   * through `lock` the main thread sees every child done with *s before it
   * reuses the memory.  On x86 it is the same locked instruction as a
   * relaxed decrement, so this costs nothing. */
  atomic_int_fast64_t counter;
  atomic_int spawn_err; /* first failed arbor_spawn */
  int64_t t0;           /* written by the spawner, read after arbor_wait */
  pthread_mutex_t lock; /* guards t1 and done */
  pthread_cond_t cond;
  int64_t t1;
  bool done;
};

/* Wake the main thread.  The worker blocks on `lock` only while the main
 * thread holds it to check `done`, which is brief and outside the timed
 * interval (t1 is already taken). */
static void finish(struct spawn_state *s, int64_t t1)
{
  pthread_mutex_lock(&s->lock);
  s->t1 = t1;
  s->done = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

static int child(void *arg)
{
  struct spawn_state *s = arg;

  /* Acq_rel: pairs with the other children's decrements (see counter). */
  if (atomic_fetch_sub_explicit(&s->counter, 1, memory_order_acq_rel) == 1)
    finish(s, bench_now_ns());
  return 0;
}

static int spawner(void *arg)
{
  struct spawn_state *s = arg;

  s->t0 = bench_now_ns();
  for (int64_t i = 0; i < s->n; i++) {
    int err = arbor_spawn(NULL, NULL, child, s, NULL);

    if (err < 0) {
      int64_t missing = s->n - i;

      atomic_store_explicit(&s->spawn_err, err, memory_order_relaxed);
      /* Take the unborn children's share so that the count still reaches
       * zero and the main thread is woken; the run reports ok=0. */
      if (atomic_fetch_sub_explicit(&s->counter, missing,
                                    memory_order_acq_rel) == missing)
        finish(s, bench_now_ns());
      return err;
    }
  }
  return 0;
}

/* Wait for the last child's signal.  A timeout means the runtime lost
 * children: nothing can be cleaned up, since they point at *s. */
static void wait_done(struct spawn_state *s)
{
  struct timespec deadline;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += BENCH_HANG_MS / 1000;
  pthread_mutex_lock(&s->lock);
  while (!s->done) {
    if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0 && !s->done)
      bench_hung("spawn: waiting for the counter to reach zero");
  }
  pthread_mutex_unlock(&s->lock);
}

static void run_spawn(const struct bench_case *c, arbor_rt *rt,
                      struct bench_run *out)
{
  struct spawn_state s = {.n = c->param[P_N], .done = false};
  pthread_condattr_t ca;
  arbor_pid pid = 0;
  int reason = -1, err;

  atomic_init(&s.counter, s.n);
  atomic_init(&s.spawn_err, 0);
  pthread_mutex_init(&s.lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s.cond, &ca);
  pthread_condattr_destroy(&ca);
  out->ok = true;

  err = arbor_spawn(rt, &pid, spawner, &s,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err < 0) {
    bench_fail(out, "arbor_spawn", err);
    goto destroy;
  }
  err = arbor_wait(rt, pid, BENCH_HANG_MS, &reason);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("spawn: waiting for the spawning process");
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  wait_done(&s);
  /* The last children may still be on their way out, and they point at s. */
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (atomic_load(&s.spawn_err) != 0)
    bench_fail(out, "arbor_spawn (in the spawner)", atomic_load(&s.spawn_err));
  if (out->err == 0) {
    pthread_mutex_lock(&s.lock);
    out->time_ms = bench_ns_to_ms(s.t1 - s.t0);
    pthread_mutex_unlock(&s.lock);
    out->ok = reason == 0 && atomic_load(&s.counter) == 0;
  }

destroy:
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  bench_extra_per_op(x, "ns_per_spawn", "spawn", r->median_ms,
                     (double)r->c.param[P_N]);
}

static const struct bench_variant variants[] = {
    {NULL, false, run_spawn},
};

const struct bench_workload bench_wl_spawn = {
    .name = "spawn",
    .summary = "one process spawns n that each decrement a counter and exit",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .summarize = summarize,
};
