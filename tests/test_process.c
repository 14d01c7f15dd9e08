/* test_process.c -- processes: spawn, exit reasons, defers, names, pids,
 * waiting, and a million of them. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <fenv.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
/* Sanitizer builds run the million-process tests at a tenth of the size:
 * ASan's shadow memory and fake stacks would need tens of GiB otherwise. */
#ifdef SANITIZED
#define MILLION 100000
#else
#define MILLION 1000000
#endif

static arbor_rt *rt;

static void setup2(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
}

static void setup1(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

/* Wait (on the test thread) until *v reaches target. */
static void wait_until(atomic_long *v, long target)
{
  while (atomic_load(v) < target)
    sched_yield();
}

static int spawn_joinable(arbor_fn fn, void *arg, arbor_pid *pid)
{
  return arbor_spawn(rt, pid, fn, arg,
                     &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
}

/* ---- exit reasons ------------------------------------------------------- */

static int returns_arg(void *arg)
{
  return (int)(intptr_t)arg;
}

static void exit_deep(int depth, int reason)
{
  if (depth == 0) {
    arbor_exit(reason);
    return;
  }
  exit_deep(depth - 1, reason);
}

static int exits_from_deep(void *arg)
{
  exit_deep(10, (int)(intptr_t)arg);
  return -1; /* not reached */
}

static int waits_then_returns(void *arg)
{
  arbor_msg m;

  (void)arg;
  return arbor_recv(&m, -1) == 0 ? (int)m.tag : -1;
}

/* The live count leaves a process out as soon as anyone can see that it has
 * exited: arbor_wait returning is enough, with no settling. */
Test(process, the_live_count_drops_before_arbor_wait_returns, .init = setup2,
     .fini = teardown, .timeout = 60)
{
  enum { N = 500 };
  static arbor_pid pid[N];
  int reason = -1;

  for (int i = 0; i < N; i++)
    cr_assert_eq(spawn_joinable(waits_then_returns, NULL, &pid[i]), 0);
  cr_assert_eq(arbor_rt_live(rt), N);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(arbor_send(pid[i], (uint32_t)(i + 1), NULL, 0), 0);
    cr_assert_eq(arbor_wait(rt, pid[i], -1, &reason), 0);
    cr_assert_eq(reason, i + 1);
    cr_assert_eq(arbor_rt_live(rt), N - i - 1, "after %d waits", i + 1);
  }
}

Test(process, return_value_is_the_exit_reason, .init = setup2,
     .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason = -1;

  cr_assert_eq(spawn_joinable(returns_arg, (void *)(intptr_t)42, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 42);
  cr_assert_eq(spawn_joinable(returns_arg, (void *)0, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, ARBOR_NORMAL);
}

Test(process, arbor_exit_ends_the_process_from_any_depth, .init = setup2,
     .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason = -1;

  cr_assert_eq(spawn_joinable(exits_from_deep, (void *)(intptr_t)7, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 7);
}

/* ---- defers --------------------------------------------------------------- */

struct trace {
  atomic_int n;
  int order[8];
};

static void record(struct trace *t, int v)
{
  int i = atomic_fetch_add(&t->n, 1);

  if (i < 8)
    t->order[i] = v;
}

static struct trace trace;
static void d1(void *arg)
{
  (void)arg;
  record(&trace, 1);
}
static void d2(void *arg)
{
  (void)arg;
  record(&trace, 2);
}
static void d3(void *arg)
{
  (void)arg;
  record(&trace, 3);
}
static void d_registers_another(void *arg)
{
  (void)arg;
  record(&trace, 4);
  cr_assert_eq(arbor_defer(d1, NULL), 0);
}

static int defers_then(void *arg)
{
  int how = (int)(intptr_t)arg;

  cr_assert_eq(arbor_defer(d1, NULL), 0);
  cr_assert_eq(arbor_defer(d2, NULL), 0);
  cr_assert_eq(arbor_defer(d3, NULL), 0); /* beyond the inline slots */
  cr_assert_eq(arbor_defer(NULL, NULL), ARBOR_EINVAL);
  if (how == 1)
    arbor_exit(5);
  return 6;
}

Test(process, defers_run_in_reverse_order_on_return, .init = setup2,
     .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason;

  memset(&trace, 0, sizeof(trace));
  cr_assert_eq(spawn_joinable(defers_then, (void *)0, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 6);
  cr_assert_eq(atomic_load(&trace.n), 3);
  cr_expect_eq(trace.order[0], 3);
  cr_expect_eq(trace.order[1], 2);
  cr_expect_eq(trace.order[2], 1);
}

Test(process, defers_run_in_reverse_order_on_arbor_exit, .init = setup2,
     .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason;

  memset(&trace, 0, sizeof(trace));
  cr_assert_eq(spawn_joinable(defers_then, (void *)1, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 5);
  cr_assert_eq(atomic_load(&trace.n), 3);
  cr_expect_eq(trace.order[0], 3);
  cr_expect_eq(trace.order[2], 1);
}

static int defer_registers_defer(void *arg)
{
  (void)arg;
  cr_assert_eq(arbor_defer(d_registers_another, NULL), 0);
  return 0;
}

Test(process, a_defer_may_register_another, .init = setup2, .fini = teardown,
     .timeout = 10)
{
  arbor_pid pid;

  memset(&trace, 0, sizeof(trace));
  cr_assert_eq(spawn_joinable(defer_registers_defer, NULL, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, NULL), 0);
  cr_assert_eq(atomic_load(&trace.n), 2);
  cr_expect_eq(trace.order[0], 4);
  cr_expect_eq(trace.order[1], 1);
}

/* ---- shutdown ------------------------------------------------------------ */

static atomic_long started, deferred;

static void count_defer(void *arg)
{
  (void)arg;
  atomic_fetch_add(&deferred, 1);
}

static int yields_forever(void *arg)
{
  (void)arg;
  if (arbor_defer(count_defer, NULL) != 0)
    return 1;
  atomic_fetch_add(&started, 1);
  while (arbor_yield() == 0)
    ;
  return 0;
}

Test(process, shutdown_ends_every_process_and_runs_its_defers, .init = setup2,
     .timeout = 30)
{
  arbor_pid pid;
  int reason = 0;

  atomic_store(&started, 0);
  atomic_store(&deferred, 0);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(arbor_spawn(rt, NULL, yields_forever, NULL, NULL), 0);
  cr_assert_eq(spawn_joinable(yields_forever, NULL, &pid), 0);
  wait_until(&started, 1001);
  cr_expect_eq(arbor_rt_live(rt), 1001);
  cr_assert_eq(arbor_rt_shutdown(rt), 0);
  cr_expect_eq(atomic_load(&deferred), 1001);
  cr_expect_eq(arbor_rt_live(rt), 0);
  /* The joinable one keeps its reason for a wait after shutdown. */
  cr_expect_eq(arbor_wait(rt, pid, 0, &reason), 0);
  cr_expect_eq(reason, ARBOR_REASON_SHUTDOWN);
  cr_expect_eq(arbor_spawn(rt, NULL, yields_forever, NULL, NULL),
               ARBOR_ESHUTDOWN);
  cr_expect_eq(arbor_rt_shutdown(rt), 0); /* twice is harmless */
  arbor_rt_destroy(rt);
}

/* Guarded 64 KiB stacks in /proc/self/maps: a 4 KiB PROT_NONE page right
 * below a 64 KiB read-write mapping.  Counting that shape, not every
 * mapping, keeps the test exact under sanitizers, whose allocators map
 * memory of their own. */
static int count_stacks(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  unsigned long s0, e0, prev_end = 0;
  char perms[8], line[512];
  int guard_before = 0, n = 0;

  cr_assert_not_null(f);
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "%lx-%lx %7s", &s0, &e0, perms) != 3)
      continue;
    if (guard_before && s0 == prev_end && e0 - s0 == 65536 &&
        perms[0] == 'r' && perms[1] == 'w')
      n++;
    guard_before = e0 - s0 == 4096 && perms[0] == '-' && perms[1] == '-';
    prev_end = e0;
  }
  fclose(f);
  return n;
}

Test(process, shutdown_with_live_processes_unmaps_every_stack, .timeout = 60)
{
  int before;

  before = count_stacks();

  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){
                                        .workers = 2,
                                        .stack_mode = ARBOR_STACK_GUARDED}),
               0);
  atomic_store(&started, 0);
  atomic_store(&deferred, 0);
  for (int i = 0; i < 2000; i++)
    cr_assert_eq(arbor_spawn(rt, NULL, yields_forever, NULL, NULL), 0);
  wait_until(&started, 2000);
  cr_expect_geq(count_stacks(), before + 2000);
  arbor_rt_destroy(rt);
  cr_expect_eq(atomic_load(&deferred), 2000);
  cr_expect_eq(count_stacks(), before);
}

/* ---- FP state travels with each process --------------------------------- */

static atomic_int fp_phase;
static atomic_int fp_seen_b, fp_kept_a;

static int fp_a(void *arg)
{
  (void)arg;
  fesetround(FE_UPWARD);
  atomic_store(&fp_phase, 1);
  while (atomic_load(&fp_phase) != 2)
    arbor_yield();
  atomic_store(&fp_kept_a, fegetround() == FE_UPWARD);
  fesetround(FE_TONEAREST);
  return 0;
}

static int fp_b(void *arg)
{
  (void)arg;
  while (atomic_load(&fp_phase) != 1)
    arbor_yield();
  atomic_store(&fp_seen_b, fegetround() == FE_TONEAREST);
  fesetround(FE_DOWNWARD); /* must not leak into a */
  atomic_store(&fp_phase, 2);
  arbor_yield();
  fesetround(FE_TONEAREST);
  return 0;
}

Test(process, rounding_mode_set_in_one_process_is_not_seen_in_another,
     .init = setup1, .fini = teardown, .timeout = 10)
{
  arbor_pid a, b;

  cr_assert_eq(spawn_joinable(fp_a, NULL, &a), 0);
  cr_assert_eq(spawn_joinable(fp_b, NULL, &b), 0);
  cr_assert_eq(arbor_wait(rt, a, -1, NULL), 0);
  cr_assert_eq(arbor_wait(rt, b, -1, NULL), 0);
  cr_expect(atomic_load(&fp_seen_b), "b saw a's rounding mode");
  cr_expect(atomic_load(&fp_kept_a), "a lost its rounding mode");
}

/* ---- names --------------------------------------------------------------- */

static char child_name[ARBOR_NAME_MAX], grandchild_name[ARBOR_NAME_MAX];

static int grandchild(void *arg)
{
  (void)arg;
  arbor_name(NULL, arbor_self(), grandchild_name, sizeof(grandchild_name));
  return 0;
}

static int named_child(void *arg)
{
  arbor_pid pid;

  (void)arg;
  arbor_name(NULL, arbor_self(), child_name, sizeof(child_name));
  /* No name of its own: the grandchild takes ours. */
  return arbor_spawn(NULL, &pid, grandchild, NULL, NULL);
}

static int named_root(void *arg)
{
  (void)arg;
  return arbor_spawn(NULL, NULL, named_child, NULL,
                     &(arbor_spawn_opts){.name = "-worker--123-"});
}

Test(process, names_are_dotted_paths_inherited_and_sanitised, .init = setup1,
     .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  char buf[8];

  cr_assert_eq(arbor_spawn(rt, &pid, named_root, NULL,
                           &(arbor_spawn_opts){.name = "root.sup"}),
               0);
  while (grandchild_name[0] == '\0')
    sched_yield();
  cr_expect_str_eq(child_name, "root_sup.worker_123");
  cr_expect_str_eq(grandchild_name, "root_sup.worker_123");
  cr_assert_eq(arbor_spawn(rt, &pid, yields_forever, NULL,
                           &(arbor_spawn_opts){.name = "abcdefghijkl"}),
               0);
  /* Truncation still reports the full length. */
  cr_expect_eq(arbor_name(rt, pid, buf, sizeof(buf)), 12);
  cr_expect_str_eq(buf, "abcdefg");
  cr_assert_eq(arbor_spawn(rt, &pid, yields_forever, NULL, NULL), 0);
  cr_expect_eq(arbor_name(rt, pid, buf, sizeof(buf)), 0);
  cr_expect_str_eq(buf, "");
}

/* ---- pids ------------------------------------------------------------------ */

Test(process, stale_pids_give_esrch_and_are_never_reused, .init = setup1,
     .fini = teardown, .timeout = 30)
{
  arbor_pid first, pid, prev;
  char buf[16];

  cr_assert_eq(spawn_joinable(returns_arg, NULL, &first), 0);
  cr_assert_eq(arbor_wait(rt, first, -1, NULL), 0);
  /* Reaped: every call on it says so. */
  cr_expect_eq(arbor_alive(rt, first), 0);
  cr_expect_eq(arbor_wait(rt, first, 0, NULL), ARBOR_ESRCH);
  cr_expect_eq(arbor_name(rt, first, buf, sizeof(buf)), ARBOR_ESRCH);
  /* The record is reused, the pid is not. */
  prev = first;
  for (int i = 0; i < 1000; i++) {
    cr_assert_eq(spawn_joinable(returns_arg, NULL, &pid), 0);
    cr_assert_neq(pid, prev);
    cr_assert_neq(pid, first);
    cr_assert_eq(arbor_wait(rt, pid, -1, NULL), 0);
    cr_expect_eq(arbor_alive(rt, first), 0);
    prev = pid;
  }
  /* Forged pids: a future generation, an index never handed out. */
  cr_expect_eq(arbor_alive(rt, pid + (1ull << 24)), 0);
  cr_expect_eq(arbor_wait(rt, pid + (1ull << 24), 0, NULL), ARBOR_ESRCH);
  cr_expect_eq(arbor_alive(rt, (pid & ~0xffffffull) | 0xfffff0), 0);
}

Test(process, wait_times_out_on_a_live_process_and_polls_with_zero,
     .init = setup2, .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason = 12345;

  atomic_store(&started, 0);
  cr_assert_eq(arbor_spawn(rt, &pid, yields_forever, NULL, NULL), 0);
  cr_expect_eq(arbor_wait(rt, pid, 0, &reason), ARBOR_ETIMEDOUT);
  cr_expect_eq(arbor_wait(rt, pid, 20, &reason), ARBOR_ETIMEDOUT);
  cr_expect_eq(reason, 12345);
  cr_expect_eq(arbor_alive(rt, pid), 1);
}

static int wait_from_inside(void *arg)
{
  arbor_rt *self_rt = arbor_rt_current();

  (void)arg;
  if (arbor_wait(self_rt, arbor_self(), 0, NULL) != ARBOR_EDEADLK)
    return 1;
  if (arbor_rt_shutdown(self_rt) != ARBOR_EDEADLK)
    return 2;
  arbor_rt_destroy(self_rt); /* does nothing from inside */
  return 0;
}

Test(process, blocking_runtime_calls_from_inside_a_process_are_refused,
     .init = setup2, .fini = teardown, .timeout = 10)
{
  arbor_pid pid;
  int reason = -1;

  cr_assert_eq(spawn_joinable(wait_from_inside, NULL, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 0);
}

/* ---- a million ------------------------------------------------------------ */

static unsigned char *ran_once;
static atomic_long ran_total;

static int mark(void *arg)
{
  uintptr_t i = (uintptr_t)arg;

  ran_once[i]++; /* each index is written by exactly one process */
  atomic_fetch_add_explicit(&ran_total, 1, memory_order_release);
  return 0;
}

static int spawn_million(void *arg)
{
  (void)arg;
  for (uintptr_t i = 0; i < MILLION; i++)
    if (arbor_spawn(NULL, NULL, mark, (void *)i, NULL) != 0)
      return 1;
  return 0;
}

Test(process, a_million_processes_each_run_exactly_once, .init = setup2,
     .fini = teardown, .timeout = 120)
{
  arbor_pid pid;
  int reason = -1;

  ran_once = calloc(MILLION, 1);
  atomic_store(&ran_total, 0);
  cr_assert_eq(spawn_joinable(spawn_million, NULL, &pid), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_assert_eq(reason, 0);
  while (atomic_load_explicit(&ran_total, memory_order_acquire) < MILLION)
    sched_yield();
  for (long i = 0; i < MILLION; i++)
    cr_assert_eq(ran_once[i], 1, "process %ld ran %d times", i, ran_once[i]);
  cr_expect_eq(atomic_load(&ran_total), MILLION);
  free(ran_once);
}

static atomic_int release_all;
static atomic_long live_now;

static int stay_alive(void *arg)
{
  (void)arg;
  atomic_fetch_add_explicit(&live_now, 1, memory_order_relaxed);
  while (!atomic_load_explicit(&release_all, memory_order_relaxed))
    arbor_yield();
  atomic_fetch_sub_explicit(&live_now, 1, memory_order_relaxed);
  return 0;
}

static void million_live(int mode)
{
  arbor_worker_stats st[2];

  atomic_store(&release_all, 0);
  atomic_store(&live_now, 0);
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2,
                                                     .stack_mode = mode}),
               0);
  for (long i = 0; i < MILLION; i++)
    cr_assert_eq(arbor_spawn(rt, NULL, stay_alive, NULL, NULL), 0,
                 "spawn %ld failed", i);
  /* Every one of them has started, so every one holds a stack. */
  wait_until(&live_now, MILLION);
  cr_expect_eq(arbor_rt_live(rt), MILLION);
  atomic_store(&release_all, 1);
  while (arbor_rt_live(rt) > 0)
    sched_yield();
  cr_expect_eq(atomic_load(&live_now), 0);
  cr_assert_eq(arbor_rt_stats(rt, st, 2), 2);
  cr_expect_gt(st[0].runs, 0);
  cr_expect_gt(st[1].runs, 0);
  arbor_rt_destroy(rt);
}

Test(process, a_million_live_processes_in_slab_mode, .timeout = 300)
{
  million_live(ARBOR_STACK_SLAB);
}

Test(process, a_million_live_processes_by_default, .timeout = 300)
{
  million_live(ARBOR_STACK_AUTO);
}
