/* bench/wl_memory.c -- the memory workload: what an idle process costs.
 *
 * WORKLOADS.md: "read VmRSS from /proc/self/status; spawn n processes that
 * each block in receive; once all n are blocked read VmRSS again; report
 * bytes_per_proc_rss = growth / n, then release them.  A single run, not
 * timed for speed.  With hibernation (once it exists) report
 * variant=hibernate too."
 *
 * Variants: the default one blocks in arbor_recv(); `hibernate` calls
 * arbor_hibernate() first, so it waits with its stack released, then
 * receives the release message the same way.
 *
 * How the run knows that all n are blocked: each process bumps a counter
 * right before it blocks, and once the counter reads n the run waits until
 * every worker sleeps for lack of work, which happens only after the last
 * process has switched away and been parked; with hibernation it also waits
 * until the scheduler counts n hibernated tasks.  (Both are the runtime's
 * own white-box counters, read through the private headers.)  Those three
 * facts are the run's own check, with every process then ending normally on
 * its release message.
 *
 * The processes are spawned by one spawning process, as in the spawn
 * workload, so that they go straight to the workers' queues rather than
 * through the injection queue, whose buffer would count as their memory.
 * Their pids go to an array that is allocated and touched before the first
 * reading, for the same reason.  Freed heap memory of earlier cases would
 * hide growth (the allocator hands it out again without the RSS moving), so
 * it is given back to the kernel first (malloc_trim).  glibc's malloc_trim
 * leaves the free top of each thread arena in place, though, and memory
 * freed there by earlier cases can still be reused unseen: after the other
 * workloads of the default profile the figures came out 1-3% lower than
 * with the case alone in a fresh process (`arbor-bench memory sched=2
 * variant=hibernate`), which is the exact figure; with the quick profile's
 * few processes the same megabytes weigh much more (up to a third less per
 * process hibernated), so take quick figures as a smoke test only.  time_ms is the time from the first spawn until all n are
 * blocked: informative only.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "runtime/rt.h"

enum { P_N };

/* Quick: few enough for the TSan build, whose per-fiber mappings come on
 * top of the stacks' and exhaust vm.max_map_count near 10,000 live
 * processes. */
static const struct bench_param params[] = {
    {"n", 100000, 4000, 1},
};

enum { TAG_RELEASE = 1 };

struct memory_state {
  /* Written by the runner before the spawner is spawned. */
  int64_t n;
  bool hibernate;
  arbor_pid *pid; /* n entries, written by the spawner */
  /* Relaxed, all three: they are counts and a code, read for their own
   * value and publishing nothing else.
   * Bumped by each process right before it blocks. */
  atomic_int_fast64_t blocked;
  /* Processes that got their release message and end normally. */
  atomic_int_fast64_t released;
  atomic_int err; /* first failed runtime call of a process */
};

static void fail(struct memory_state *s, int err)
{
  int expect = 0;

  atomic_compare_exchange_strong_explicit(
      &s->err, &expect, err, memory_order_relaxed, memory_order_relaxed);
}

static int idle_proc(void *arg)
{
  struct memory_state *s = arg;
  arbor_msg m;
  int err;

  atomic_fetch_add_explicit(&s->blocked, 1, memory_order_relaxed);
  if (s->hibernate && (err = arbor_hibernate()) != 0) {
    fail(s, err);
    return 1;
  }
  err = arbor_recv(&m, -1);
  if (err != 0 || m.tag != TAG_RELEASE) {
    fail(s, err != 0 ? err : ARBOR_EINVAL);
    return 2;
  }
  atomic_fetch_add_explicit(&s->released, 1, memory_order_relaxed);
  return 0;
}

static int spawner(void *arg)
{
  struct memory_state *s = arg;

  for (int64_t i = 0; i < s->n; i++) {
    int err = arbor_spawn(NULL, &s->pid[i], idle_proc, s, NULL);

    if (err < 0) {
      fail(s, err);
      return err;
    }
  }
  return 0;
}

/* VmRSS in bytes, or -1. */
static int64_t vm_rss(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long long kib = -1;

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
      break;
  fclose(f);
  return kib >= 0 ? (int64_t)kib * 1024 : -1;
}

static void nap(void)
{
  nanosleep(&(struct timespec){0, 200 * 1000}, NULL);
}

/* Wait until n processes have reached their wait (and, hibernating, n
 * tasks are hibernated), with every worker asleep.  Nothing is blocked
 * forever by a failure: a process whose runtime call fails ends at once,
 * and the spawner stops at its first failure, so then the wait ends on
 * the error. */
static bool wait_blocked(struct memory_state *s, arbor_rt *rt,
                         arbor_pid spawner_pid)
{
  int64_t deadline = bench_now_ns() + BENCH_HANG_MS * 1000000;

  for (;;) {
    if (atomic_load_explicit(&s->err, memory_order_relaxed) != 0)
      return false;
    if (atomic_load_explicit(&s->blocked, memory_order_relaxed) == s->n &&
        arbor__sched_all_parked(&rt->sched) &&
        (!s->hibernate || arbor__sched_hibernated(&rt->sched) == s->n) &&
        arbor_alive(rt, spawner_pid) == 0)
      return true;
    if (bench_now_ns() > deadline)
      bench_hung("memory: waiting for the processes to block");
    nap();
  }
}

static void run_memory(const struct bench_case *c, arbor_rt *rt,
                       struct bench_run *out, bool hibernate)
{
  struct memory_state s = {.n = c->param[P_N], .hibernate = hibernate};
  int64_t before, after, t0, t1;
  arbor_pid sp = 0;
  int reason = -1, err;
  bool blocked;

  atomic_init(&s.blocked, 0);
  atomic_init(&s.released, 0);
  atomic_init(&s.err, 0);
  s.pid = malloc((size_t)s.n * sizeof(*s.pid));
  if (s.pid == NULL) {
    bench_fail(out, "malloc", ARBOR_ENOMEM);
    return;
  }
  memset(s.pid, 0, (size_t)s.n * sizeof(*s.pid));
  out->ok = true;

#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  before = vm_rss();
  t0 = bench_now_ns();
  err = arbor_spawn(rt, &sp, spawner, &s,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err < 0) {
    bench_fail(out, "arbor_spawn", err);
    goto free_pids;
  }
  blocked = wait_blocked(&s, rt, sp);
  t1 = bench_now_ns();
  after = vm_rss();

  /* The spawner has ended (wait_blocked saw it), so this returns at once
   * and orders its writes of s.pid before our reads. */
  err = arbor_wait(rt, sp, BENCH_HANG_MS, &reason);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("memory: waiting for the spawning process");
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  for (int64_t i = 0; i < s.n; i++) {
    if (s.pid[i] == 0)
      break; /* the spawner failed here */
    err = arbor_send(s.pid[i], TAG_RELEASE, NULL, 0);
    if (err < 0) {
      bench_fail(out, "arbor_send", err);
      break;
    }
  }
  /* Every process has exited (or the run is declared hung): they point
   * at s. */
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  err = atomic_load_explicit(&s.err, memory_order_relaxed);
  if (err != 0)
    bench_fail(out, "a runtime call in a process", err);
  if (before < 0 || after < 0)
    bench_fail(out, "reading VmRSS from /proc/self/status", ARBOR_ENOENT);
  if (out->err == 0) {
    out->time_ms = bench_ns_to_ms(t1 - t0);
    out->aux[0] = (double)(after - before) / (double)s.n;
    out->ok = blocked && reason == 0 &&
              atomic_load_explicit(&s.released, memory_order_relaxed) == s.n &&
              arbor__sched_hibernated(&rt->sched) == 0;
  }

free_pids:
  free(s.pid);
}

static void run_default(const struct bench_case *c, arbor_rt *rt,
                        struct bench_run *out)
{
  run_memory(c, rt, out, false);
}

static void run_hibernate(const struct bench_case *c, arbor_rt *rt,
                          struct bench_run *out)
{
  run_memory(c, rt, out, true);
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  double bytes = r->runs[0].aux[0];

  bench_extra_add(x, "bytes_per_proc_rss", bytes, 1);
  snprintf(x->per_op, sizeof(x->per_op), "%.0f B/proc", bytes);
}

static const struct bench_variant variants[] = {
    {NULL, false, run_default},
    {"hibernate", false, run_hibernate},
};

const struct bench_workload bench_wl_memory = {
    .name = "memory",
    .summary = "VmRSS growth per process blocked in receive (or hibernated)",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .one_run = true,
    .summarize = summarize,
};
