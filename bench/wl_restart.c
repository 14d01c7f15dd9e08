/* bench/wl_restart.c -- the restart workload: a one_for_one supervisor
 * restarts a permanent worker that exits abnormally right after its init.
 *
 * WORKLOADS.md: "a one_for_one supervisor (intensity 1,000,000,000 within a
 * period of 1 s, so it never gives up) with one permanent worker.  Each
 * start of the worker increments a shared counter; while the counter is
 * below n+1 the worker exits abnormally right after acknowledging its init;
 * the start that brings the counter to n+1 notifies the measuring process
 * and stays alive.  Time: from starting the supervisor to the notification
 * (initial start + n restarts)."  The measuring process is the runner's
 * thread: the clock starts right before arbor_sup_start() (so it includes
 * spawning the supervisor and its first child) and stops in the last
 * incarnation, which wakes the thread.  Every restart goes through the full
 * supervisor path: the exit signal, the restart decision and the intensity
 * window, the spawn of a linked child, its init ack, and the events (at
 * DEBUG, INFO and WARN level, which the run filters out at the sink rather
 * than print 100,000 lines on stderr).  restarts_per_s = n / time.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "bench/bench.h"

enum { P_N };

static const struct bench_param params[] = {
    {"n", 100000, 10000, 1},
};

struct restart_state {
  int64_t n;
  /* Incarnations are strictly one after the other (each starts after the
   * supervisor saw the previous one exit), so the counter needs no
   * ordering of its own: relaxed. */
  atomic_int_fast64_t counter;
  pthread_mutex_t lock; /* guards t1 and done */
  pthread_cond_t cond;
  int64_t t1;
  bool done;
};

static int worker(void *arg)
{
  struct restart_state *s = arg;
  int64_t c =
      atomic_fetch_add_explicit(&s->counter, 1, memory_order_relaxed) + 1;
  arbor_msg m;

  if (arbor_init_ack(0) != 0)
    return -1;
  if (c < s->n + 1)
    return 1; /* abnormal: restarted */
  pthread_mutex_lock(&s->lock);
  s->t1 = bench_now_ns();
  s->done = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
  /* Stay alive until the supervisor stops us. */
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return -1;
}

static void wait_done(struct restart_state *s)
{
  struct timespec deadline;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += BENCH_HANG_MS / 1000;
  pthread_mutex_lock(&s->lock);
  while (!s->done) {
    if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0 && !s->done)
      bench_hung("restart: waiting for the last incarnation");
  }
  pthread_mutex_unlock(&s->lock);
}

static void run_restart(const struct bench_case *c, arbor_rt *rt,
                        struct bench_run *out)
{
  struct restart_state s = {.n = c->param[P_N], .done = false};
  arbor_child_spec child = {
      .id = "worker", .start = worker, .arg = &s, .restart = ARBOR_PERMANENT};
  arbor_sup_spec spec = {.name = "bench_sup",
                         .strategy = ARBOR_ONE_FOR_ONE,
                         .intensity = 1000000000,
                         .period_ms = 1000,
                         .children = &child,
                         .nchildren = 1};
  pthread_condattr_t ca;
  arbor_sup_error se;
  arbor_pid sup = 0;
  int64_t t0;
  int reason = -1, err;

  atomic_init(&s.counter, 0);
  pthread_mutex_init(&s.lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s.cond, &ca);
  pthread_condattr_destroy(&ca);
  out->ok = true;

  /* The default sink, but only at ERROR: nothing here is an error. */
  err = arbor_rt_set_event_sink(rt, arbor_event_sink_logfmt, NULL,
                                ARBOR_LEVEL_ERROR);
  if (err < 0) {
    bench_fail(out, "arbor_rt_set_event_sink", err);
    goto destroy;
  }
  t0 = bench_now_ns();
  err = arbor_sup_start(rt, &spec, &sup, &se);
  if (err < 0) {
    bench_fail(out, "arbor_sup_start", err);
    goto destroy;
  }
  wait_done(&s);
  err = arbor_sup_stop(sup, BENCH_HANG_MS);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("restart: stopping the supervisor");
  if (err < 0)
    bench_fail(out, "arbor_sup_stop", err);
  err = arbor_wait(rt, sup, BENCH_HANG_MS, &reason);
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (out->err == 0) {
    pthread_mutex_lock(&s.lock);
    out->time_ms = bench_ns_to_ms(s.t1 - t0);
    pthread_mutex_unlock(&s.lock);
    out->ok = reason == ARBOR_NORMAL &&
              atomic_load(&s.counter) == s.n + 1;
  }

destroy:
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  double n = (double)r->c.param[P_N];

  bench_extra_add(x, "restarts", n, 0);
  bench_extra_add(x, "restarts_per_s", n / (r->median_ms / 1000.0), 0);
  bench_extra_per_op(x, "ns_per_restart", "restart", r->median_ms, n);
}

static const struct bench_variant variants[] = {
    {NULL, false, run_restart},
};

const struct bench_workload bench_wl_restart = {
    .name = "restart",
    .summary = "a one_for_one supervisor restarts a crashing worker n times",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .summarize = summarize,
};
