/* bench/wl_switch.c -- the switch workload: n hand-overs of one worker
 * between two processes (variant=yield) or two bare contexts (variant=raw).
 *
 * WORKLOADS.md: "two processes hand control to each other n times in all
 * (n/2 round trips)"; ns_per_switch = time / n.  Both variants count a
 * hand-over the same way: one side stops running and the other resumes.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/bench.h"
#include "sched/ctx.h"

enum { P_N };

static const struct bench_param params[] = {
    {"n", 10000000, 200000, 2},
};

/* ---- variant=yield: through the scheduler ------------------------------ */

/* Both processes run on the one worker thread, so they never run at the same
 * time; the atomics are only there to keep the accesses formally race-free
 * and are all relaxed.  In the timed loop they are plain loads and stores,
 * not read-modify-writes, so the bookkeeping stays a few instructions next
 * to a yield. */
struct yield_state {
  uint64_t half;               /* yields per process: n/2 */
  atomic_uint arrived;         /* processes that have started */
  atomic_uint_fast64_t issued; /* timed yields issued by either process */
  atomic_uint_fast64_t bad;    /* hand-overs that did not alternate */
  atomic_int err;              /* first failed arbor_yield */
  atomic_int_fast64_t t0, t1;
  atomic_int_fast64_t live; /* processes in the runtime at t0: must be 2 */
};

static void note_err(struct yield_state *s, int err)
{
  int none = 0;

  atomic_compare_exchange_strong_explicit(
      &s->err, &none, err, memory_order_relaxed, memory_order_relaxed);
}

/* One timed yield; returns the number of yields issued while it was away. */
static uint64_t counted_yield(struct yield_state *s, int *err)
{
  uint64_t before = atomic_load_explicit(&s->issued, memory_order_relaxed);

  atomic_store_explicit(&s->issued, before + 1, memory_order_relaxed);
  *err = arbor_yield();
  return atomic_load_explicit(&s->issued, memory_order_relaxed) - before - 1;
}

/* Whichever process starts first waits, yielding, for the other; the second
 * to arrive opens the timed part.  So when t0 is taken both are running and
 * the first is parked in the run queue, and the only runnable processes are
 * these two.  The timed hand-overs then go second, first, second, ...: each
 * of the second's n/2 yields hands over to the first, and each of the
 * first's n/2 yields hands back.  The last of them (the first's) resumes the
 * second, which takes t1: exactly n hand-overs, with spawn, start-up and
 * exit outside the interval. */
static int yielder(void *arg)
{
  struct yield_state *s = arg;
  unsigned me = atomic_fetch_add_explicit(&s->arrived, 1, memory_order_relaxed);
  int err = 0;

  if (me == 0) {
    while (atomic_load_explicit(&s->arrived, memory_order_relaxed) < 2) {
      err = arbor_yield();
      if (err != 0)
        goto fail;
    }
    for (uint64_t i = 0; i < s->half; i++) {
      (void)counted_yield(s, &err);
      if (err != 0)
        goto fail;
    }
    return 0;
  }

  atomic_store_explicit(&s->live, arbor_rt_live(arbor_rt_current()),
                        memory_order_relaxed);
  atomic_store_explicit(&s->t0, bench_now_ns(), memory_order_relaxed);
  for (uint64_t i = 0; i < s->half; i++) {
    /* Exactly one yield by the other process between ours: anything else
     * means we did not alternate (ran alone, or something else ran). */
    if (counted_yield(s, &err) != 1)
      atomic_fetch_add_explicit(&s->bad, 1, memory_order_relaxed);
    if (err != 0)
      goto fail;
  }
  atomic_store_explicit(&s->t1, bench_now_ns(), memory_order_relaxed);
  return 0;

fail:
  note_err(s, err);
  return err;
}

static void run_yield(const struct bench_case *c, arbor_rt *rt,
                      struct bench_run *out)
{
  const arbor_spawn_opts opts = {.flags = ARBOR_SPAWN_JOINABLE};
  struct yield_state s = {.half = (uint64_t)c->param[P_N] / 2};
  arbor_pid pid[2] = {0, 0};
  int reason[2] = {-1, -1};
  int err;

  out->ok = true;
  for (int i = 0; i < 2; i++) {
    err = arbor_spawn(rt, &pid[i], yielder, &s, &opts);
    if (err < 0) {
      bench_fail(out, "arbor_spawn", err);
      /* Stand in for the missing process, so that a started one does not
       * wait for it forever; the run is failed anyway. */
      atomic_fetch_add_explicit(&s.arrived, 2 - (unsigned)i,
                                memory_order_relaxed);
      break;
    }
  }
  for (int i = 0; i < 2; i++) {
    if (pid[i] == 0)
      continue;
    err = arbor_wait(rt, pid[i], BENCH_HANG_MS, &reason[i]);
    if (err == ARBOR_ETIMEDOUT)
      bench_hung("switch/yield: waiting for a yielding process");
    if (err < 0)
      bench_fail(out, "arbor_wait", err);
  }
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (atomic_load(&s.err) != 0)
    bench_fail(out, "arbor_yield", atomic_load(&s.err));
  if (out->err != 0)
    return;

  out->time_ms = bench_ns_to_ms(atomic_load(&s.t1) - atomic_load(&s.t0));
  /* Each of the second's yields saw exactly one of the first's, all n were
   * issued, and nothing else was alive to be scheduled in between. */
  out->ok = reason[0] == 0 && reason[1] == 0 && atomic_load(&s.bad) == 0 &&
            atomic_load(&s.issued) == 2 * s.half && atomic_load(&s.live) == 2;
}

/* ---- variant=raw: the bare primitive ----------------------------------- */

#define RAW_STACK ((size_t)64 * 1024)

struct raw_state {
  struct arbor__ctx main, other;
  uint64_t resumes; /* times `other` got control */
  bool stop;
};

/* Bounces straight back to main each time it is resumed, until told to
 * stop.  The counter lives in memory the opaque switch may touch, so the
 * compiler cannot drop or batch its updates. */
static void bouncer(void *arg)
{
  struct raw_state *s = arg;

  arbor__ctx_started();
  for (;;) {
    s->resumes++;
    if (s->stop)
      arbor__ctx_jump_final(&s->other, &s->main);
    arbor__ctx_jump(&s->other, &s->main);
  }
}

static void run_raw(const struct bench_case *c, arbor_rt *rt,
                    struct bench_run *out)
{
  uint64_t half = (uint64_t)c->param[P_N] / 2;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  struct raw_state s = {.resumes = 0, .stop = false};
  char *map;
  int64_t t0, t1;

  (void)rt;
  /* A guard page below the stack, as the runtime's own stacks have. */
  map = mmap(NULL, RAW_STACK + page, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) {
    bench_fail(out, "mmap", ARBOR_ENOMEM);
    return;
  }
  if (mprotect(map, page, PROT_NONE) != 0) {
    bench_fail(out, "mprotect", ARBOR_ENOMEM);
    goto unmap;
  }
  arbor__ctx_init_thread(&s.main);
  arbor__ctx_make(&s.other, map + page, RAW_STACK, bouncer, &s);

  /* The first activation goes through the start-up trampoline; keep it out
   * of the timed part, as spawning is kept out of variant=yield. */
  arbor__ctx_jump(&s.main, &s.other);

  t0 = bench_now_ns();
  for (uint64_t i = 0; i < half; i++)
    arbor__ctx_jump(&s.main, &s.other); /* two hand-overs: there and back */
  t1 = bench_now_ns();

  s.stop = true;
  arbor__ctx_jump(&s.main, &s.other);
  arbor__ctx_destroy(&s.other);

  out->time_ms = bench_ns_to_ms(t1 - t0);
  /* The start-up, the timed round trips and the final stop. */
  out->ok = s.resumes == half + 2;
unmap:
  munmap(map, RAW_STACK + page);
}

/* ---- description ------------------------------------------------------- */

static const char *validate(const int64_t *p)
{
  /* n/2 round trips: an odd n would make one process yield once more than
   * the other, to nobody. */
  if (p[P_N] % 2 != 0)
    return "n must be even (n/2 round trips)";
  return NULL;
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  bench_extra_per_op(x, "ns_per_switch", "switch", r->median_ms,
                     (double)r->c.param[P_N]);
}

static const struct bench_variant variants[] = {
    {"yield", false, run_yield},
    {"raw", true, run_raw},
};

const struct bench_workload bench_wl_switch = {
    .name = "switch",
    .summary = "n hand-overs between two processes on one worker (yield) "
               "or two bare contexts (raw)",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .max_sched = 1,
    .validate = validate,
    .summarize = summarize,
};
