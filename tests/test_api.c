/* test_api.c -- misuse of every public function: each bad argument gets the
 * code arbor.h documents, and the failed call has no effect.
 *
 * Black-box: only <arbor.h>.  For every function below, each case that
 * applies: NULL pointers; zero and out-of-range sizes, counts, timeouts,
 * flags and levels; pid 0; stale pids (exited and reaped), zombies (exited,
 * not reaped) and pids that were never issued; a pid of another live
 * runtime (ARBOR_EOTHERRT where documented) and of a destroyed one; calls
 * from outside a process where one is needed (ARBOR_ENOTPROC), from a
 * worker where the call would block it (ARBOR_EDEADLK); calls after
 * arbor_rt_shutdown() and after arbor_rt_destroy(); names and ids that are
 * too long; bad supervisor and child specs (ARBOR_EBADSPEC, naming the
 * field).  "No effect" is checked as: out-parameters untouched (they are
 * preset to a sentinel), nothing spawned (arbor_rt_live()), nothing sent
 * (a counting receiver gets nothing before its stop message, which comes
 * after the failed calls from the same sender), nothing registered,
 * linked, monitored or armed.  Also: calls made by a process that has been
 * asked to end (it ends in them, and they must not leak), and callbacks
 * the runtime runs outside any process.  Leak checks are explicit
 * (leaks_now()): Criterion ignores LeakSanitizer's report at exit.
 *
 * What is not checked, because it cannot be: an arbor_rt pointer that has
 * been destroyed (or was never created) is dangling memory, and no call can
 * tell it from a live one -- passing one is undefined, as for free().  Pids
 * are values, so every call that takes a pid does handle the pids of a
 * destroyed runtime (see after_destroy_pid_calls_fail_cleanly below).
 *
 * Every function declared ARBOR_API in include/arbor.h is listed here, and
 * the `api_coverage` test (tests/api_coverage.cmake) fails when the list
 * and the header differ, or when a listed function is never called below:
 *
 * API-LIST-BEGIN
 *   arbor_strerror arbor_err_name arbor_reason_name
 *   arbor_rt_create arbor_rt_shutdown arbor_rt_destroy arbor_rt_workers
 *   arbor_rt_live arbor_rt_stats arbor_rt_current
 *   arbor_spawn arbor_self arbor_worker arbor_yield arbor_exit arbor_defer
 *   arbor_name arbor_alive arbor_wait
 *   arbor_send arbor_send_owned arbor_recv arbor_recv_tag arbor_recv_match
 *   arbor_sleep arbor_rt_dropped arbor_hibernate
 *   arbor_register arbor_unregister arbor_whereis arbor_send_name
 *   arbor_link arbor_unlink arbor_monitor arbor_demonitor arbor_trap_exit
 *   arbor_kill
 *   arbor_send_after arbor_timer_cancel
 *   arbor_sup_start arbor_init_ack arbor_sup_stop arbor_sup_start_child
 *   arbor_sup_terminate_child arbor_sup_restart_child arbor_sup_delete_child
 *   arbor_sup_which_children arbor_sup_count_children arbor_sup_get_childspec
 *   arbor_store_get arbor_store_set arbor_store_delete arbor_store_update
 *   arbor_store_size
 *   arbor_rt_set_event_sink arbor_event_sink_logfmt arbor_event_sink_jsonl
 *   arbor_event_name arbor_sup_dump
 * API-LIST-END
 */
#include <arbor.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#endif
#ifdef TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ---- fixtures and helpers ------------------------------------------------ */

static arbor_rt *rt, *rt2;

static void quiet_sink(const arbor_event *ev, void *ud)
{
  (void)ev;
  (void)ud;
}

static void setup(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
  cr_assert_eq(arbor_rt_create(&rt2, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, quiet_sink, NULL, 0), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt2, quiet_sink, NULL, 0), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
  arbor_rt_destroy(rt2);
}

/* Checks made inside processes: the first failure is recorded, and the
 * process returns a nonzero reason that the test asserts on. */
static char failbuf[512];
static atomic_int failed;

static void note_fail(int line, const char *what, long long a, long long b)
{
  if (atomic_exchange(&failed, 1) == 0)
    snprintf(failbuf, sizeof(failbuf), "line %d: %s (got %lld, want %lld)",
             line, what, a, b);
}

#define PCHECK(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      note_fail(__LINE__, #cond, 0, 1);                                        \
      return 1000 + __LINE__;                                                  \
    }                                                                          \
  } while (0)

#define PCHECK_EQ(a, b)                                                        \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      note_fail(__LINE__, #a " == " #b, a_, b_);                               \
      return 1000 + __LINE__;                                                  \
    }                                                                          \
  } while (0)

/* Spawn fn(arg) joinable in r and wait for its reason. */
static int run_in(arbor_rt *r, arbor_fn fn, void *arg)
{
  arbor_pid pid;
  int reason = -123456;

  cr_assert_eq(arbor_spawn(r, &pid, fn, arg,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(r, pid, -1, &reason), 0);
  return reason;
}

#define RUN_IN(r, fn, arg) cr_assert_eq(run_in(r, fn, arg), 0, "%s", failbuf)
#define RUN(fn, arg) RUN_IN(rt, fn, arg)

static int nop(void *arg)
{
  (void)arg;
  return 0;
}

static int ret_arg(void *arg)
{
  return (int)(intptr_t)arg;
}

/* The tag that stops a counter; every other message is counted. */
#define STOP 1u
static atomic_long got;
static atomic_int last_tag;

static int counter(void *arg)
{
  arbor_msg m;

  (void)arg;
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      return 98;
    if (m.tag == STOP)
      return 0;
    atomic_store(&last_tag, (int)m.tag);
    atomic_fetch_add(&got, 1);
  }
}

static arbor_pid spawn_counter(arbor_rt *r)
{
  arbor_pid pid;

  atomic_store(&got, 0);
  cr_assert_eq(arbor_spawn(r, &pid, counter, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  return pid;
}

/* Stop a counter (from this thread, so after everything this thread sent)
 * and return how many messages it had counted. */
static long stop_counter(arbor_rt *r, arbor_pid pid)
{
  int reason = -1;

  cr_assert_eq(arbor_send(pid, STOP, NULL, 0), 0);
  cr_assert_eq(arbor_wait(r, pid, -1, &reason), 0);
  cr_assert_eq(reason, 0);
  return atomic_load(&got);
}

/* A pid that has exited and been reaped. */
static arbor_pid stale_pid(arbor_rt *r)
{
  arbor_pid pid;

  cr_assert_eq(arbor_spawn(r, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(r, pid, -1, NULL), 0);
  return pid;
}

/* A joinable process that has exited with `reason` but not been reaped. */
static arbor_pid zombie_pid(arbor_rt *r, int reason)
{
  arbor_pid pid;

  cr_assert_eq(arbor_spawn(r, &pid, ret_arg, (void *)(intptr_t)reason,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  while (arbor_alive(r, pid) != 0)
    sched_yield();
  return pid;
}

/* A pid of a runtime that has been destroyed. */
static arbor_pid destroyed_rt_pid(void)
{
  arbor_rt *r3;
  arbor_pid pid;

  cr_assert_eq(arbor_rt_create(&r3, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_spawn(r3, &pid, counter, NULL, NULL), 0);
  arbor_rt_destroy(r3);
  return pid;
}

/* A pid with a live runtime's tag that was never issued: a real pid's
 * neighbour far away (black-box: we only know pids differ in low bits). */
static arbor_pid never_issued(arbor_pid real)
{
  return real + 100000;
}

/* In sanitizer builds, whether LeakSanitizer finds leaks right now.
 * (Criterion ignores the report LeakSanitizer prints when a test's process
 * exits, so tests that are about leaks ask explicitly, once every runtime
 * is destroyed.)  Elsewhere: no. */
static int leaks_now(void)
{
#ifdef TEST_LSAN
  return __lsan_do_recoverable_leak_check();
#else
  return 0;
#endif
}

static void destroy_all(void)
{
  arbor_rt_destroy(rt);
  arbor_rt_destroy(rt2);
  rt = rt2 = NULL;
}

static void wait_dead(arbor_rt *r, arbor_pid pid)
{
  while (arbor_alive(r, pid) == 1)
    sched_yield();
}

/* arbor_rt_live() counts a process out before its exit is published (see
 * test_process.c), but a process nobody waits for may still be exiting:
 * wait for the count to settle (the test's timeout bounds it). */
static void settle_live(arbor_rt *r, int64_t n)
{
  while (arbor_rt_live(r) != n)
    sched_yield();
}

/* ---- errors and names ------------------------------------------------------ */

Test(api, name_functions_accept_any_int_and_never_return_null)
{
  static const int values[] = {INT_MIN, INT_MIN + 1, -4006, -4000, -5005,
                               -1,      0,           1,     4001,  INT_MAX};

  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    int v = values[i];

    cr_assert_not_null(arbor_strerror(v));
    cr_assert_not_null(arbor_err_name(v));
    cr_assert_not_null(arbor_reason_name(v));
    cr_assert_not_null(arbor_event_name(v));
  }
  cr_expect_str_eq(arbor_strerror(INT_MIN), "unknown error");
  cr_expect_str_eq(arbor_err_name(INT_MAX), "ARBOR_UNKNOWN");
  cr_expect_str_eq(arbor_reason_name(INT_MAX), "user");
  cr_expect_str_eq(arbor_reason_name(INT_MIN), "ARBOR_UNKNOWN");
  cr_expect_str_eq(arbor_reason_name(ARBOR_ESRCH), "ARBOR_ESRCH");
  cr_expect_str_eq(arbor_event_name(-1), "unknown");
  cr_expect_str_eq(arbor_event_name(ARBOR_EV_PROC_STUCK), "process_stuck");
  cr_expect_str_eq(arbor_event_name(ARBOR_EV_PROC_STUCK + 1), "unknown");
  cr_expect_str_eq(arbor_event_name(INT_MIN), "unknown");
}

/* ---- the runtime ----------------------------------------------------------- */

Test(api, rt_create_rejects_bad_options_and_leaves_rt_untouched,
     .timeout = 30)
{
  static const arbor_rt_opts bad[] = {
      {.workers = 257},
      {.workers = UINT_MAX},
      {.stack_size = 1},
      {.stack_size = 16 * 1024 - 1},
      {.stack_size = ((size_t)1 << 30) + 1},
      {.stack_size = SIZE_MAX},
      {.stack_mode = 3},
      {.stack_mode = -1},
      {.stack_mode = INT_MIN},
      {.stack_cache = 65537},
      {.stack_cache = UINT_MAX},
  };
  arbor_rt *r = (arbor_rt *)0x1;

  cr_expect_eq(arbor_rt_create(NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(NULL, &(arbor_rt_opts){.workers = 1}),
               ARBOR_EINVAL);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_eq(arbor_rt_create(&r, &bad[i]), ARBOR_EINVAL, "options #%zu",
                 i);
  cr_expect_eq(r, (arbor_rt *)0x1);

  /* The limits themselves are accepted. */
  cr_assert_eq(arbor_rt_create(&r, &(arbor_rt_opts){.workers = 1,
                                                    .stack_size = 16 * 1024,
                                                    .stack_mode = 2,
                                                    .stack_cache = 65536}),
               0);
  arbor_rt_destroy(r);
  cr_assert_eq(arbor_rt_create(&r, &(arbor_rt_opts){.workers = 1,
                                                    .stack_size = (size_t)1
                                                                  << 30}),
               0);
  arbor_rt_destroy(r);
}

static int shutdown_from_inside(void *arg)
{
  arbor_pid child;

  (void)arg;
  PCHECK_EQ(arbor_rt_shutdown(arbor_rt_current()), ARBOR_EDEADLK);
  PCHECK_EQ(arbor_rt_shutdown(NULL), ARBOR_EINVAL);
  /* A no-op from inside. */
  arbor_rt_destroy(arbor_rt_current());
  /* Neither did anything: the runtime still spawns. */
  PCHECK_EQ(arbor_spawn(NULL, &child, nop, NULL, NULL), 0);
  PCHECK_EQ(arbor_yield(), 0);
  return 0;
}

Test(api, rt_shutdown_and_destroy_refuse_to_run_inside_their_runtime,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid pid;

  arbor_rt_destroy(NULL); /* a no-op */
  cr_expect_eq(arbor_rt_shutdown(NULL), ARBOR_EINVAL);
  RUN(shutdown_from_inside, NULL);
  /* Still alive and well. */
  cr_assert_eq(arbor_spawn(rt, &pid, nop, NULL, NULL), 0);
  cr_expect_eq(arbor_rt_shutdown(rt), 0);
  cr_expect_eq(arbor_rt_shutdown(rt), 0); /* again: harmless */
  cr_expect_eq(arbor_rt_live(rt), 0);
}

Test(api, rt_queries_reject_null, .init = setup, .fini = teardown)
{
  arbor_worker_stats st[4];

  memset(st, 0x5a, sizeof(st));
  cr_expect_eq(arbor_rt_workers(NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_live(NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_dropped(NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_stats(NULL, st, 4), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_stats(rt, NULL, 4), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_stats(rt, NULL, 0), ARBOR_EINVAL);
  for (size_t i = 0; i < sizeof(st); i++)
    cr_assert_eq(((unsigned char *)st)[i], 0x5a);
  cr_expect_eq(arbor_rt_workers(rt), 2);
  cr_expect_eq(arbor_rt_live(rt), 0);
  cr_expect_eq(arbor_rt_dropped(rt), 0);
}

Test(api, rt_stats_copies_at_most_n_and_at_most_the_worker_count,
     .init = setup, .fini = teardown)
{
  arbor_worker_stats st[5];
  unsigned char z[sizeof(st[0])];

  memset(st, 0x5a, sizeof(st));
  memset(z, 0x5a, sizeof(z));
  cr_expect_eq(arbor_rt_stats(rt, st, 0), 0);
  cr_expect_eq(memcmp(&st[0], z, sizeof(z)), 0);
  cr_expect_eq(arbor_rt_stats(rt, st, 1), 1);
  cr_expect_eq(memcmp(&st[1], z, sizeof(z)), 0);
  cr_expect_eq(arbor_rt_stats(rt, st, 5), 2);
  for (int i = 2; i < 5; i++)
    cr_expect_eq(memcmp(&st[i], z, sizeof(z)), 0, "entry %d written", i);
  cr_expect_eq(arbor_rt_stats(rt, st, UINT_MAX), 2);
}

static int where_am_i(void *arg)
{
  PCHECK(arbor_rt_current() == (arbor_rt *)arg);
  PCHECK(arbor_self() != 0);
  PCHECK(arbor_worker() >= 0 &&
         arbor_worker() < arbor_rt_workers(arbor_rt_current()));
  return 0;
}

Test(api, rt_current_self_and_worker_say_where_the_caller_is,
     .init = setup, .fini = teardown, .timeout = 30)
{
  cr_expect_null(arbor_rt_current());
  cr_expect_eq(arbor_self(), 0);
  cr_expect_eq(arbor_worker(), -1);
  RUN_IN(rt, where_am_i, rt);
  RUN_IN(rt2, where_am_i, rt2);
}

/* ---- spawn --------------------------------------------------------------------- */

Test(api, spawn_rejects_bad_arguments_and_spawns_nothing, .init = setup,
     .fini = teardown, .timeout = 30)
{
  uint64_t ref = 77;
  arbor_pid pid = 99;
  char longname[300];

  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  /* EINVAL */
  cr_expect_eq(arbor_spawn(NULL, &pid, nop, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, NULL, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = 8}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = 1u << 31}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = UINT_MAX}),
               ARBOR_EINVAL);
  cr_expect_eq(
      arbor_spawn(rt, &pid, nop, NULL,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR}),
      ARBOR_EINVAL); /* no monitor_ref */
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.stack_size = 1}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.stack_size = 16 * 1024 - 1}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.stack_size =
                                                   ((size_t)1 << 30) + 1}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.stack_size = SIZE_MAX}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL, &(arbor_spawn_opts){.name = ""}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.name = "_.-/ \t"}),
               ARBOR_EINVAL);
  /* ENAMETOOLONG */
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.name = longname}),
               ARBOR_ENAMETOOLONG);
  /* ENOTPROC: link or monitor with no calling process. */
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}),
               ARBOR_ENOTPROC);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                               .monitor_ref = &ref}),
               ARBOR_ENOTPROC);
  cr_expect_eq(pid, 99);
  cr_expect_eq(ref, 77);
  cr_expect_eq(arbor_rt_live(rt), 0);
  /* pid may be NULL; a 16 KiB stack is the minimum. */
  cr_expect_eq(arbor_spawn(rt, NULL, nop, NULL,
                           &(arbor_spawn_opts){.stack_size = 16 * 1024}),
               0);
}

static int spawn_long_child(void *arg)
{
  char seg[300], buf[ARBOR_NAME_MAX];
  arbor_pid child = 5;
  size_t n = (size_t)(intptr_t)arg;

  /* Our name is "p" (1 byte): "p." plus a segment of n bytes. */
  memset(seg, 'c', n);
  seg[n] = '\0';
  if (n + 2 > ARBOR_NAME_MAX - 1) {
    PCHECK_EQ(arbor_spawn(NULL, &child, counter, NULL,
                          &(arbor_spawn_opts){.name = seg}),
              ARBOR_ENAMETOOLONG);
    PCHECK_EQ(child, 5);
    return 0;
  }
  PCHECK_EQ(arbor_spawn(NULL, &child, counter, NULL,
                        &(arbor_spawn_opts){.name = seg}),
            0);
  PCHECK_EQ(arbor_name(NULL, child, buf, sizeof(buf)), n + 2);
  PCHECK_EQ(arbor_kill(child, ARBOR_REASON_KILL), 0);
  return 0;
}

Test(api, spawn_names_are_limited_to_255_bytes_of_dotted_path,
     .init = setup, .fini = teardown, .timeout = 30)
{
  char name[300], buf[ARBOR_NAME_MAX];
  arbor_pid pid;

  memset(name, 'n', sizeof(name));
  name[255] = '\0';
  cr_assert_eq(arbor_spawn(rt, &pid, counter, NULL,
                           &(arbor_spawn_opts){.name = name}),
               0);
  cr_expect_eq(arbor_name(rt, pid, buf, sizeof(buf)), 255);
  cr_expect_eq(arbor_kill(pid, ARBOR_REASON_KILL), 0);
  name[255] = 'n';
  name[256] = '\0';
  cr_expect_eq(arbor_spawn(rt, &pid, counter, NULL,
                           &(arbor_spawn_opts){.name = name}),
               ARBOR_ENAMETOOLONG);
  for (intptr_t n = 252; n <= 254; n++) {
    arbor_pid p;

    cr_assert_eq(arbor_spawn(rt, &p, spawn_long_child, (void *)n,
                             &(arbor_spawn_opts){.name = "p",
                                                 .flags =
                                                     ARBOR_SPAWN_JOINABLE}),
                 0);
    cr_assert_eq(arbor_wait(rt, p, -1, NULL), 0);
    cr_assert_eq(atomic_load(&failed), 0, "%s", failbuf);
  }
}

static int spawn_into_rt(void *arg)
{
  arbor_rt *other = arg;
  arbor_pid pid = 3;
  uint64_t ref = 4;

  /* A process of rt2 is no process of rt: it cannot link or monitor. */
  PCHECK_EQ(arbor_spawn(other, &pid, nop, NULL,
                        &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}),
            ARBOR_ENOTPROC);
  PCHECK_EQ(arbor_spawn(other, &pid, nop, NULL,
                        &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                            .monitor_ref = &ref}),
            ARBOR_ENOTPROC);
  PCHECK_EQ(pid, 3);
  PCHECK_EQ(ref, 4);
  PCHECK_EQ(arbor_spawn(other, &pid, nop, NULL, NULL), 0);
  return 0;
}

Test(api, spawn_linked_into_another_runtime_is_enotproc, .init = setup,
     .fini = teardown, .timeout = 30)
{
  RUN_IN(rt2, spawn_into_rt, rt);
}

/* ---- calls that need a process --------------------------------------------- */

static int match_all(const arbor_msg *m, void *arg)
{
  (void)m;
  (void)arg;
  return 1;
}

static void count_defer(void *arg)
{
  atomic_fetch_add((atomic_int *)arg, 1);
}

Test(api, calls_that_need_a_process_are_enotproc_outside_one,
     .init = setup, .fini = teardown)
{
  arbor_msg m;
  uint64_t ref = 5;
  arbor_pid pid = spawn_counter(rt);
  atomic_int ran = 0;

  memset(&m, 0x5a, sizeof(m));
  /* ENOTPROC comes first, whatever else is wrong with the arguments. */
  cr_expect_eq(arbor_yield(), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_exit(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_exit(ARBOR_REASON_KILL), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_defer(count_defer, &ran), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_defer(NULL, NULL), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv(&m, 0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv(NULL, -1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv_tag(&m, 3, 10), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv_tag(NULL, 3, 0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv_match(&m, match_all, NULL, 0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv_match(&m, NULL, NULL, 0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_recv_match(NULL, NULL, NULL, -1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_sleep(1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_sleep(-1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_link(pid), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_link(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_unlink(pid), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_unlink(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_monitor(pid, &ref), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_monitor(0, NULL), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_demonitor(ref), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_demonitor(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_trap_exit(1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_trap_exit(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_init_ack(0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_init_ack(5), ARBOR_ENOTPROC);
  /* No effect: nothing received, linked or monitored; the counter got
   * nothing and ends normally (a link would not matter, a monitor would
   * have had nowhere to go). */
  cr_expect_eq(ref, 5);
  for (size_t i = 0; i < sizeof(m); i++)
    cr_assert_eq(((unsigned char *)&m)[i], 0x5a);
  cr_expect_eq(stop_counter(rt, pid), 0);
  cr_expect_eq(atomic_load(&ran), 0);
}

static atomic_int defers_ran;

static int bad_defer(void *arg)
{
  (void)arg;
  PCHECK_EQ(arbor_defer(NULL, NULL), ARBOR_EINVAL);
  PCHECK_EQ(arbor_defer(NULL, &defers_ran), ARBOR_EINVAL);
  PCHECK_EQ(arbor_defer(count_defer, &defers_ran), 0);
  return 0;
}

Test(api, defer_rejects_null_and_registers_nothing, .init = setup,
     .fini = teardown, .timeout = 30)
{
  RUN(bad_defer, NULL);
  /* Only the valid one ran (a NULL one would have crashed). */
  cr_expect_eq(atomic_load(&defers_ran), 1);
}

/* ---- name, alive, wait ------------------------------------------------------------ */

Test(api, name_rejects_bad_arguments_and_leaves_buf_untouched,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid live, stale = stale_pid(rt), zombie = zombie_pid(rt, 3);
  arbor_pid other, dead_rt = destroyed_rt_pid();
  char buf[16];

  cr_assert_eq(arbor_spawn(rt, &live, counter, NULL,
                           &(arbor_spawn_opts){.name = "live"}),
               0);
  cr_assert_eq(arbor_spawn(rt2, &other, counter, NULL, NULL), 0);
  memset(buf, 'z', sizeof(buf));
  cr_expect_eq(arbor_name(NULL, live, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(arbor_name(rt, live, NULL, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(arbor_name(rt, live, buf, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_name(rt, 0, buf, sizeof(buf)), ARBOR_ESRCH);
  cr_expect_eq(arbor_name(rt, stale, buf, sizeof(buf)), ARBOR_ESRCH);
  cr_expect_eq(arbor_name(rt, zombie, buf, sizeof(buf)), ARBOR_ESRCH);
  cr_expect_eq(arbor_name(rt, never_issued(live), buf, sizeof(buf)),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_name(rt, other, buf, sizeof(buf)), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_name(rt2, live, buf, sizeof(buf)), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_name(rt, dead_rt, buf, sizeof(buf)), ARBOR_EOTHERRT);
  for (size_t i = 0; i < sizeof(buf); i++)
    cr_assert_eq(buf[i], 'z');
  /* Truncation: the full length, and as much as fits. */
  cr_expect_eq(arbor_name(rt, live, buf, 1), 4);
  cr_expect_str_eq(buf, "");
  cr_expect_eq(buf[1], 'z');
  cr_expect_eq(arbor_name(rt, live, buf, 3), 4);
  cr_expect_str_eq(buf, "li");
  cr_expect_eq(arbor_name(rt, live, buf, sizeof(buf)), 4);
  cr_expect_str_eq(buf, "live");
}

Test(api, alive_answers_zero_for_every_dead_or_unknown_pid, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt), other = spawn_counter(rt2);

  cr_expect_eq(arbor_alive(NULL, live), ARBOR_EINVAL);
  cr_expect_eq(arbor_alive(rt, 0), 0);
  cr_expect_eq(arbor_alive(rt, stale_pid(rt)), 0);
  cr_expect_eq(arbor_alive(rt, zombie_pid(rt, 0)), 0);
  cr_expect_eq(arbor_alive(rt, never_issued(live)), 0);
  cr_expect_eq(arbor_alive(rt, other), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_alive(rt, destroyed_rt_pid()), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_alive(rt, live), 1);
  cr_expect_eq(arbor_alive(rt2, other), 1);
}

static int wait_from_worker(void *arg)
{
  arbor_pid target = *(arbor_pid *)arg;
  int reason = 42;

  /* EDEADLK comes first: a worker must never block in it. */
  PCHECK_EQ(arbor_wait(arbor_rt_current(), target, 0, &reason), ARBOR_EDEADLK);
  PCHECK_EQ(arbor_wait(arbor_rt_current(), 0, -1, &reason), ARBOR_EDEADLK);
  PCHECK_EQ(arbor_wait(NULL, target, 0, &reason), ARBOR_EINVAL);
  PCHECK_EQ(reason, 42);
  return 0;
}

static int sleep_then_ret(void *arg)
{
  (void)arbor_sleep(20);
  return (int)(intptr_t)arg;
}

Test(api, wait_rejects_bad_arguments_and_leaves_reason_untouched,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt), other = spawn_counter(rt2), plain, j;
  int reason = 42;

  cr_expect_eq(arbor_wait(NULL, live, 0, &reason), ARBOR_EINVAL);
  cr_expect_eq(arbor_wait(rt, 0, 0, &reason), ARBOR_ESRCH);
  cr_expect_eq(arbor_wait(rt, stale_pid(rt), 0, &reason), ARBOR_ESRCH);
  cr_expect_eq(arbor_wait(rt, never_issued(live), 0, &reason), ARBOR_ESRCH);
  cr_expect_eq(arbor_wait(rt, other, 0, &reason), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_wait(rt, destroyed_rt_pid(), -1, &reason),
               ARBOR_EOTHERRT);
  cr_expect_eq(arbor_wait(rt, live, 0, &reason), ARBOR_ETIMEDOUT);
  cr_expect_eq(arbor_wait(rt, live, 1, &reason), ARBOR_ETIMEDOUT);
  /* A process that is not joinable cannot be waited for once gone. */
  cr_assert_eq(arbor_spawn(rt, &plain, nop, NULL, NULL), 0);
  wait_dead(rt, plain);
  cr_expect_eq(arbor_wait(rt, plain, -1, &reason), ARBOR_ESRCH);
  cr_expect_eq(reason, 42);
  RUN(wait_from_worker, &live);
  /* Extreme timeouts are fine: INT64_MIN waits forever, INT64_MAX does not
   * overflow the deadline. */
  cr_assert_eq(arbor_spawn(rt, &j, sleep_then_ret, (void *)7,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_expect_eq(arbor_wait(rt, j, INT64_MAX, &reason), 0);
  cr_expect_eq(reason, 7);
  cr_expect_eq(arbor_wait(rt, j, INT64_MAX, &reason), ARBOR_ESRCH);
  cr_assert_eq(arbor_spawn(rt, &j, sleep_then_ret, (void *)8,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_expect_eq(arbor_wait(rt, j, INT64_MIN, NULL), 0);
  cr_expect_eq(arbor_alive(rt, live), 1);
}

/* ---- send ------------------------------------------------------------------------- */

Test(api, send_rejects_bad_arguments_and_sends_nothing, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid to = spawn_counter(rt);
  char data[8] = "abc";
  int64_t dropped = arbor_rt_dropped(rt);

  cr_expect_eq(arbor_send(0, 5, data, 3), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, ARBOR_TAG_SYSTEM, data, 3), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, ARBOR_TAG_EXIT, NULL, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, ARBOR_TAG_DOWN, NULL, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, UINT32_MAX, NULL, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, 5, NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, 5, NULL, SIZE_MAX), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, 5, data, ARBOR_MSG_MAX + 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(to, 5, data, SIZE_MAX), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(destroyed_rt_pid(), 5, data, 3), ARBOR_ESRCH);
  cr_expect_eq(arbor_send(UINT64_MAX, 5, data, 3), ARBOR_ESRCH);
  cr_expect_eq(arbor_rt_dropped(rt), dropped);
  cr_expect_eq(stop_counter(rt, to), 0);
}

Test(api, send_to_a_dead_or_unknown_pid_is_dropped_and_counted,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt);
  arbor_pid stale = stale_pid(rt), zombie = zombie_pid(rt, 0);
  int64_t dropped = arbor_rt_dropped(rt);

  cr_expect_eq(arbor_send(stale, 5, "x", 1), 0);
  cr_expect_eq(arbor_send(zombie, 5, "x", 1), 0);
  cr_expect_eq(arbor_send(never_issued(live), 5, NULL, 0), 0);
  cr_expect_eq(arbor_send_owned(stale, 5, NULL, 0, NULL), 0);
  cr_expect_eq(arbor_rt_dropped(rt), dropped + 4);
  cr_expect_eq(arbor_rt_dropped(rt2), 0);
  /* NULL data with len 0 is an empty message, and is delivered. */
  cr_expect_eq(arbor_send(live, 5, NULL, 0), 0);
  cr_expect_eq(stop_counter(rt, live), 1);
}

static atomic_int freed;

static void counting_free(void *p)
{
  atomic_fetch_add(&freed, 1);
  free(p);
}

Test(api, send_owned_failures_leave_the_buffer_with_the_caller,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid to = spawn_counter(rt), stale = stale_pid(rt);
  char *buf = malloc(16);

  cr_assert_not_null(buf);
  strcpy(buf, "owned");
  cr_expect_eq(arbor_send_owned(0, 5, buf, 6, counting_free), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(to, ARBOR_TAG_SYSTEM, buf, 6, counting_free),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(to, 5, buf, 6, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(to, 5, NULL, 6, counting_free), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(to, 5, buf, ARBOR_MSG_MAX + 1, counting_free),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(destroyed_rt_pid(), 5, buf, 6, counting_free),
               ARBOR_ESRCH);
  /* Still ours, and untouched. */
  cr_expect_eq(atomic_load(&freed), 0);
  cr_expect_str_eq(buf, "owned");
  /* To a dead pid: taken, dropped, freed exactly once. */
  cr_expect_eq(arbor_send_owned(stale, 5, buf, 6, counting_free), 0);
  cr_expect_eq(atomic_load(&freed), 1);
  /* No data: nothing to free, free_fn may be anything. */
  cr_expect_eq(arbor_send_owned(to, 5, NULL, 0, counting_free), 0);
  cr_expect_eq(arbor_send_owned(to, 6, NULL, 0, NULL), 0);
  cr_expect_eq(stop_counter(rt, to), 2);
  cr_expect_eq(atomic_load(&freed), 1);
}

/* ---- receive and sleep ------------------------------------------------------------ */

static int odd_tag(const arbor_msg *m, void *arg)
{
  (void)arg;
  return (m->tag & 1) != 0;
}

static int bad_receives(void *arg)
{
  arbor_msg m, z;

  (void)arg;
  PCHECK_EQ(arbor_send(arbor_self(), 2, "a", 1), 0);
  PCHECK_EQ(arbor_send(arbor_self(), 4, "b", 1), 0);
  memset(&m, 0x5a, sizeof(m));
  memset(&z, 0x5a, sizeof(z));
  PCHECK_EQ(arbor_recv(NULL, 0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_recv(NULL, -1), ARBOR_EINVAL);
  PCHECK_EQ(arbor_recv_tag(NULL, 2, 0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_recv_match(NULL, odd_tag, NULL, 0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_recv_match(&m, NULL, NULL, 0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_recv_match(&m, NULL, NULL, -1), ARBOR_EINVAL);
  /* Nothing matches: a timeout, m untouched, the mailbox as it was. */
  PCHECK_EQ(arbor_recv_tag(&m, 3, 0), ARBOR_ETIMEDOUT);
  PCHECK_EQ(arbor_recv_tag(&m, 3, 1), ARBOR_ETIMEDOUT);
  PCHECK_EQ(arbor_recv_match(&m, odd_tag, NULL, 0), ARBOR_ETIMEDOUT);
  PCHECK_EQ(arbor_recv_tag(&m, ARBOR_TAG_EXIT, 0), ARBOR_ETIMEDOUT);
  PCHECK_EQ(memcmp(&m, &z, sizeof(m)), 0);
  PCHECK_EQ(arbor_recv(&m, 0), 0);
  PCHECK_EQ(m.tag, 2);
  PCHECK_EQ(arbor_recv(&m, 0), 0);
  PCHECK_EQ(m.tag, 4);
  PCHECK_EQ(arbor_recv(&m, 0), ARBOR_ETIMEDOUT);
  PCHECK_EQ(m.tag, 4); /* untouched by the timeout */
  return 0;
}

Test(api, receives_reject_null_and_leave_the_mailbox_alone, .init = setup,
     .fini = teardown, .timeout = 30)
{
  RUN(bad_receives, NULL);
}

static atomic_int blocked;

static int extreme_receives(void *arg)
{
  arbor_msg m;

  (void)arg;
  atomic_store(&blocked, 1);
  PCHECK_EQ(arbor_recv(&m, INT64_MAX), 0);
  PCHECK_EQ(m.tag, 3);
  atomic_store(&blocked, 2);
  PCHECK_EQ(arbor_recv_tag(&m, 4, INT64_MIN), 0);
  PCHECK_EQ(m.tag, 4);
  atomic_store(&blocked, 3);
  PCHECK_EQ(arbor_recv_match(&m, odd_tag, NULL, INT64_MAX - 1), 0);
  PCHECK_EQ(m.tag, 5);
  return 0;
}

Test(api, receive_timeouts_at_the_extremes_wait_for_the_message,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid pid;
  int reason = -1;

  cr_assert_eq(arbor_spawn(rt, &pid, extreme_receives, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  for (uint32_t tag = 3; tag <= 5; tag++) {
    while (atomic_load(&blocked) != (int)tag - 2)
      sched_yield();
    cr_assert_eq(arbor_send(pid, tag, NULL, 0), 0);
  }
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 0, "%s", failbuf);
}

static int sleeper(void *arg)
{
  (void)arg;
  PCHECK_EQ(arbor_sleep(-1), ARBOR_EINVAL);
  PCHECK_EQ(arbor_sleep(INT64_MIN), ARBOR_EINVAL);
  PCHECK_EQ(arbor_sleep(0), 0);
  atomic_store(&blocked, 1);
  (void)arbor_sleep(INT64_MAX); /* ends only by being killed */
  return 1;
}

Test(api, sleep_rejects_negative_times_and_the_longest_sleep_ends_on_a_kill,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid pid;
  int reason = -1;

  cr_assert_eq(arbor_spawn(rt, &pid, sleeper, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  while (atomic_load(&blocked) != 1)
    sched_yield();
  cr_assert_eq(arbor_kill(pid, 9), 0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 9, "%s", failbuf);
}

/* ---- registered names ----------------------------------------------------------------- */

Test(api, register_rejects_bad_names_and_pids_and_registers_nothing,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt), live2, other, found = 1;
  char n255[256], n256[257];

  cr_assert_eq(arbor_spawn(rt, &live2, counter, NULL, NULL), 0);
  cr_assert_eq(arbor_spawn(rt2, &other, counter, NULL, NULL), 0);
  memset(n255, 'r', 255);
  n255[255] = '\0';
  memset(n256, 'r', 256);
  n256[256] = '\0';
  cr_expect_eq(arbor_register(NULL, live), ARBOR_EINVAL);
  cr_expect_eq(arbor_register("", live), ARBOR_EINVAL);
  cr_expect_eq(arbor_register(n256, live), ARBOR_ENAMETOOLONG);
  cr_expect_eq(arbor_register("x", 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_register("x", stale_pid(rt)), ARBOR_ESRCH);
  cr_expect_eq(arbor_register("x", zombie_pid(rt, 0)), ARBOR_ESRCH);
  cr_expect_eq(arbor_register("x", never_issued(live)), ARBOR_ESRCH);
  cr_expect_eq(arbor_register("x", destroyed_rt_pid()), ARBOR_ESRCH);
  cr_expect_eq(arbor_register("x", UINT64_MAX), ARBOR_ESRCH);
  cr_expect_eq(arbor_whereis(rt, "x", &found), ARBOR_ESRCH);
  cr_expect_eq(found, 1);
  /* Taken names, and a process that already has one. */
  cr_assert_eq(arbor_register("x", live), 0);
  cr_expect_eq(arbor_register("x", live2), ARBOR_EEXIST);
  cr_expect_eq(arbor_register("x", live), ARBOR_EEXIST);
  cr_expect_eq(arbor_register("y", live), ARBOR_EEXIST);
  cr_expect_eq(arbor_whereis(rt, "y", &found), ARBOR_ESRCH);
  cr_expect_eq(arbor_whereis(rt, "x", &found), 0);
  cr_expect_eq(found, live);
  /* The longest name works; names belong to the pid's runtime. */
  cr_expect_eq(arbor_register(n255, live2), 0);
  cr_expect_eq(arbor_register("x", other), 0);
  cr_expect_eq(arbor_whereis(rt2, "x", &found), 0);
  cr_expect_eq(found, other);
  cr_expect_eq(arbor_whereis(rt2, n255, &found), ARBOR_ESRCH);
  cr_expect_eq(arbor_unregister(rt, n255), 0);
  cr_expect_eq(stop_counter(rt, live), 0);
  /* Freed with its process. */
  cr_expect_eq(arbor_whereis(rt, "x", &found), ARBOR_ESRCH);
}

static int names_in_proc(void *arg)
{
  arbor_pid found = 1;

  (void)arg;
  /* rt NULL inside a process: the process's runtime. */
  PCHECK_EQ(arbor_register("me", arbor_self()), 0);
  PCHECK_EQ(arbor_whereis(NULL, "me", &found), 0);
  PCHECK_EQ(found, arbor_self());
  PCHECK_EQ(arbor_send_name(NULL, "me", 7, NULL, 0), 0);
  PCHECK_EQ(arbor_unregister(NULL, "me"), 0);
  PCHECK_EQ(arbor_unregister(NULL, "me"), ARBOR_ESRCH);
  return 0;
}

Test(api, unregister_whereis_and_send_name_reject_bad_names,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt), found = 1;
  char n256[257];

  memset(n256, 'r', 256);
  n256[256] = '\0';
  cr_assert_eq(arbor_register("live", live), 0);
  /* rt NULL outside a process */
  cr_expect_eq(arbor_unregister(NULL, "live"), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(NULL, "live", &found), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_name(NULL, "live", 5, NULL, 0), ARBOR_EINVAL);
  /* bad names */
  cr_expect_eq(arbor_unregister(rt, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_unregister(rt, ""), ARBOR_EINVAL);
  cr_expect_eq(arbor_unregister(rt, n256), ARBOR_ENAMETOOLONG);
  cr_expect_eq(arbor_unregister(rt, "nobody"), ARBOR_ESRCH);
  cr_expect_eq(arbor_unregister(rt2, "live"), ARBOR_ESRCH);
  cr_expect_eq(arbor_whereis(rt, NULL, &found), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(rt, "", &found), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(rt, n256, &found), ARBOR_ENAMETOOLONG);
  cr_expect_eq(arbor_whereis(rt, "live", NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(rt, "nobody", &found), ARBOR_ESRCH);
  cr_expect_eq(found, 1);
  cr_expect_eq(arbor_send_name(rt, NULL, 5, NULL, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_name(rt, "", 5, NULL, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_name(rt, n256, 5, NULL, 0), ARBOR_ENAMETOOLONG);
  cr_expect_eq(arbor_send_name(rt, "nobody", 5, NULL, 0), ARBOR_ESRCH);
  cr_expect_eq(arbor_send_name(rt2, "live", 5, NULL, 0), ARBOR_ESRCH);
  /* A good name with a bad message: as arbor_send(). */
  cr_expect_eq(arbor_send_name(rt, "live", ARBOR_TAG_SYSTEM, NULL, 0),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_name(rt, "live", 5, NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_name(rt, "live", 5, "x", ARBOR_MSG_MAX + 1),
               ARBOR_EINVAL);
  /* The name is still there, and nothing was delivered. */
  cr_expect_eq(arbor_whereis(rt, "live", &found), 0);
  cr_expect_eq(found, live);
  cr_expect_eq(stop_counter(rt, live), 0);
  RUN(names_in_proc, NULL);
}

/* ---- links, monitors, exit signals --------------------------------------------------- */

struct pids {
  arbor_pid live, stale, zombie, other, dead_rt;
};

static int bad_links(void *arg)
{
  const struct pids *p = arg;

  PCHECK_EQ(arbor_link(0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_link(arbor_self()), ARBOR_EINVAL);
  PCHECK_EQ(arbor_link(p->stale), ARBOR_ESRCH);
  PCHECK_EQ(arbor_link(p->zombie), ARBOR_ESRCH);
  PCHECK_EQ(arbor_link(never_issued(p->live)), ARBOR_ESRCH);
  PCHECK_EQ(arbor_link(p->other), ARBOR_EOTHERRT);
  PCHECK_EQ(arbor_link(p->dead_rt), ARBOR_EOTHERRT);
  PCHECK_EQ(arbor_link(UINT64_MAX), ARBOR_EOTHERRT);
  /* Unlink is lenient: there is nothing to undo. */
  PCHECK_EQ(arbor_unlink(0), ARBOR_EINVAL);
  PCHECK_EQ(arbor_unlink(arbor_self()), ARBOR_EINVAL);
  PCHECK_EQ(arbor_unlink(p->stale), 0);
  PCHECK_EQ(arbor_unlink(p->zombie), 0);
  PCHECK_EQ(arbor_unlink(p->other), 0);
  PCHECK_EQ(arbor_unlink(p->dead_rt), 0);
  PCHECK_EQ(arbor_unlink(p->live), 0); /* never linked */
  return 13; /* an abnormal exit: would take any linked process down */
}

Test(api, link_rejects_bad_pids_and_makes_no_link, .init = setup,
     .fini = teardown, .timeout = 30)
{
  struct pids p;

  p.live = spawn_counter(rt);
  p.stale = stale_pid(rt);
  p.zombie = zombie_pid(rt, 0);
  cr_assert_eq(arbor_spawn(rt2, &p.other, counter, NULL, NULL), 0);
  p.dead_rt = destroyed_rt_pid();
  cr_assert_eq(run_in(rt, bad_links, &p), 13, "%s", failbuf);
  /* No link was made: the others outlived its abnormal exit. */
  cr_expect_eq(arbor_alive(rt, p.live), 1);
  cr_expect_eq(arbor_alive(rt2, p.other), 1);
  cr_expect_eq(stop_counter(rt, p.live), 0);
}

static int bad_monitors(void *arg)
{
  const struct pids *p = arg;
  uint64_t ref = 5, r1, r2;
  arbor_msg m;

  PCHECK_EQ(arbor_monitor(0, &ref), ARBOR_EINVAL);
  PCHECK_EQ(arbor_monitor(p->live, NULL), ARBOR_EINVAL);
  PCHECK_EQ(arbor_monitor(p->other, &ref), ARBOR_EOTHERRT);
  PCHECK_EQ(arbor_monitor(p->dead_rt, &ref), ARBOR_EOTHERRT);
  PCHECK_EQ(ref, 5);
  /* Nothing was monitored: no DOWN, and demonitor knows no such ref. */
  PCHECK_EQ(arbor_recv(&m, 0), ARBOR_ETIMEDOUT);
  PCHECK_EQ(arbor_demonitor(0), ARBOR_ESRCH);
  PCHECK_EQ(arbor_demonitor(5), ARBOR_ESRCH);
  PCHECK_EQ(arbor_demonitor(UINT64_MAX), ARBOR_ESRCH);
  /* A dead or unknown process: an immediate DOWN with noproc. */
  PCHECK_EQ(arbor_monitor(p->stale, &r1), 0);
  PCHECK_EQ(arbor_monitor(p->zombie, &r2), 0);
  PCHECK_EQ(arbor_recv(&m, 0), 0);
  PCHECK_EQ(m.tag, ARBOR_TAG_DOWN);
  PCHECK_EQ(m.ref, r1);
  PCHECK_EQ(m.from, p->stale);
  PCHECK_EQ(m.reason, ARBOR_REASON_NOPROC);
  PCHECK_EQ(arbor_recv(&m, 0), 0);
  PCHECK_EQ(m.ref, r2);
  PCHECK_EQ(m.reason, ARBOR_REASON_NOPROC);
  /* A fired and received monitor is gone; so is a removed one. */
  PCHECK_EQ(arbor_demonitor(r1), ARBOR_ESRCH);
  PCHECK_EQ(arbor_monitor(p->live, &r1), 0);
  PCHECK_EQ(arbor_demonitor(r1), 0);
  PCHECK_EQ(arbor_demonitor(r1), ARBOR_ESRCH);
  return 0;
}

Test(api, monitor_rejects_bad_arguments_and_dead_pids_get_noproc,
     .init = setup, .fini = teardown, .timeout = 30)
{
  struct pids p;

  p.live = spawn_counter(rt);
  p.stale = stale_pid(rt);
  p.zombie = zombie_pid(rt, 4);
  cr_assert_eq(arbor_spawn(rt2, &p.other, counter, NULL, NULL), 0);
  p.dead_rt = destroyed_rt_pid();
  RUN(bad_monitors, &p);
  cr_expect_eq(stop_counter(rt, p.live), 0);
}

static arbor_pid watched;
static _Atomic uint64_t watch_ref;

static int watcher(void *arg)
{
  uint64_t ref;
  arbor_msg m;

  (void)arg;
  PCHECK_EQ(arbor_monitor(watched, &ref), 0);
  atomic_store(&watch_ref, ref);
  PCHECK_EQ(arbor_recv_tag(&m, ARBOR_TAG_DOWN, -1), 0);
  PCHECK_EQ(m.ref, ref);
  return 0;
}

static int steal_monitor(void *arg)
{
  (void)arg;
  /* Another process's monitor is not ours to remove. */
  PCHECK_EQ(arbor_demonitor(atomic_load(&watch_ref)), ARBOR_ESRCH);
  return 0;
}

Test(api, demonitor_of_another_processs_ref_is_esrch_and_leaves_it,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid w;
  int reason = -1;

  watched = spawn_counter(rt);
  cr_assert_eq(arbor_spawn(rt, &w, watcher, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  while (atomic_load(&watch_ref) == 0)
    sched_yield();
  RUN(steal_monitor, NULL);
  cr_expect_eq(stop_counter(rt, watched), 0);
  /* The watcher's monitor still fired. */
  cr_assert_eq(arbor_wait(rt, w, -1, &reason), 0);
  cr_expect_eq(reason, 0, "%s", failbuf);
}

static int trapper(void *arg)
{
  (void)arg;
  PCHECK_EQ(arbor_trap_exit(5), 0);
  PCHECK_EQ(arbor_trap_exit(-1), 1);
  PCHECK_EQ(arbor_trap_exit(INT_MIN), 1);
  PCHECK_EQ(arbor_trap_exit(0), 1);
  PCHECK_EQ(arbor_trap_exit(0), 0);
  return 0;
}

Test(api, trap_exit_takes_any_int_and_returns_the_previous_setting,
     .init = setup, .fini = teardown, .timeout = 30)
{
  RUN(trapper, NULL);
}

Test(api, kill_rejects_pid_0_and_does_nothing_to_dead_pids, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid live = spawn_counter(rt), zombie = zombie_pid(rt, 6);
  int reason = -1;

  cr_expect_eq(arbor_kill(0, ARBOR_REASON_KILL), ARBOR_EINVAL);
  cr_expect_eq(arbor_kill(destroyed_rt_pid(), ARBOR_REASON_KILL),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_kill(UINT64_MAX, 1), ARBOR_ESRCH);
  cr_expect_eq(arbor_kill(stale_pid(rt), ARBOR_REASON_KILL), 0);
  cr_expect_eq(arbor_kill(never_issued(live), ARBOR_REASON_KILL), 0);
  cr_expect_eq(arbor_kill(zombie, ARBOR_REASON_KILL), 0);
  cr_expect_eq(arbor_kill(zombie, 9), 0);
  /* The zombie keeps its own reason. */
  cr_expect_eq(arbor_wait(rt, zombie, 0, &reason), 0);
  cr_expect_eq(reason, 6);
  /* A normal exit signal to a process that does not trap is ignored. */
  cr_expect_eq(arbor_kill(live, ARBOR_NORMAL), 0);
  cr_expect_eq(arbor_alive(rt, live), 1);
  cr_expect_eq(stop_counter(rt, live), 0);
}

/* ---- timers --------------------------------------------------------------------------- */

Test(api, send_after_rejects_bad_arguments_and_arms_nothing, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid to = spawn_counter(rt);
  arbor_timer t = 77;
  char data[4] = "abc";

  cr_expect_eq(arbor_send_after(0, 5, data, 3, 0, &t), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, ARBOR_TAG_SYSTEM, data, 3, 0, &t),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, ARBOR_TAG_DOWN, NULL, 0, 0, &t),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, 5, NULL, 3, 0, &t), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, 5, data, ARBOR_MSG_MAX + 1, 0, &t),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, 5, data, 3, -1, &t), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(to, 5, data, 3, INT64_MIN, &t), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_after(destroyed_rt_pid(), 5, data, 3, 0, &t),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_send_after(UINT64_MAX, 5, data, 3, 0, &t), ARBOR_ESRCH);
  cr_expect_eq(t, 77);
  /* A good timer to the same process arrives after whatever a bad one
   * would have sent, and it is the only message. */
  cr_expect_eq(arbor_send_after(to, 6, data, 3, 1, NULL), 0);
  while (atomic_load(&got) == 0)
    sched_yield();
  cr_expect_eq(stop_counter(rt, to), 1);
  cr_expect_eq(atomic_load(&last_tag), 6);
}

Test(api, timer_cancel_rejects_unknown_and_used_references, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid to = spawn_counter(rt);
  arbor_timer far, soon, dead_rt_timer;
  arbor_rt *r3;
  arbor_pid p3;

  cr_expect_eq(arbor_timer_cancel(0), ARBOR_EINVAL);
  cr_expect_eq(arbor_timer_cancel(UINT64_MAX), ARBOR_ESRCH);
  cr_expect_eq(arbor_timer_cancel(1), ARBOR_ESRCH);
  /* The longest timer can be cancelled, once. */
  cr_assert_eq(arbor_send_after(to, 5, "x", 1, INT64_MAX, &far), 0);
  cr_expect_neq(far, 0);
  cr_expect_eq(arbor_timer_cancel(never_issued(far)), ARBOR_ESRCH);
  cr_expect_eq(arbor_timer_cancel(far), 0);
  cr_expect_eq(arbor_timer_cancel(far), ARBOR_ESRCH);
  /* A timer that fired cannot be cancelled. */
  cr_assert_eq(arbor_send_after(to, 6, NULL, 0, 0, &soon), 0);
  while (atomic_load(&got) == 0)
    sched_yield();
  cr_expect_eq(arbor_timer_cancel(soon), ARBOR_ESRCH);
  cr_expect_eq(stop_counter(rt, to), 1);
  cr_expect_eq(atomic_load(&last_tag), 6);
  /* Nor one of a destroyed runtime (its message was freed with it). */
  cr_assert_eq(arbor_rt_create(&r3, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_spawn(r3, &p3, counter, NULL, NULL), 0);
  cr_assert_eq(arbor_send_after(p3, 5, "x", 1, 100000, &dead_rt_timer), 0);
  arbor_rt_destroy(r3);
  cr_expect_eq(arbor_timer_cancel(dead_rt_timer), ARBOR_ESRCH);
}

/* ---- supervisors: specs ------------------------------------------------------------------ */

static int sup_worker(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_init_ack(0) != 0)
    return 50;
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return 51;
}

static int sup_fails_init(void *arg)
{
  int reason = (int)(intptr_t)arg;

  (void)arbor_init_ack(reason);
  return reason;
}

struct bad_spec {
  const char *field;
  long child;
};

static const arbor_child_spec one_worker[] = {{.id = "w", .start = sup_worker}};
static const arbor_sup_spec good_nested = {.name = "inner",
                                           .children = one_worker,
                                           .nchildren = 1};
static arbor_sup_spec looped;
static arbor_child_spec looped_child;

/* Each bad spec, and the field and child its error must name. */
static void bad_specs(arbor_sup_spec *specs, struct bad_spec *want,
                      size_t *n)
{
  static arbor_child_spec c[32][2];
  static char id64[ARBOR_ID_MAX + 1], name256[ARBOR_NAME_MAX + 1];
  size_t k = 0;

  memset(id64, 'i', ARBOR_ID_MAX);
  memset(name256, 'n', ARBOR_NAME_MAX);
#define SUP(...)                                                               \
  specs[k] = (arbor_sup_spec){__VA_ARGS__};                                    \
  want[k]
#define ONE(...)                                                               \
  c[k][0] = (arbor_child_spec){__VA_ARGS__};                                   \
  specs[k] = (arbor_sup_spec){.children = c[k], .nchildren = 1};               \
  want[k]
  SUP(.name = "") = (struct bad_spec){"name: nothing left once sanitised", -1};
  k++;
  SUP(.name = "-._") =
      (struct bad_spec){"name: nothing left once sanitised", -1};
  k++;
  SUP(.name = name256) = (struct bad_spec){"name: too long", -1};
  k++;
  SUP(.strategy = 3) = (struct bad_spec){"strategy: not an arbor_strategy", -1};
  k++;
  SUP(.strategy = -1) =
      (struct bad_spec){"strategy: not an arbor_strategy", -1};
  k++;
  SUP(.intensity = -1) = (struct bad_spec){"intensity: negative", -1};
  k++;
  SUP(.period_ms = INT_MIN) = (struct bad_spec){"period_ms: negative", -1};
  k++;
  SUP(.auto_shutdown = 3) =
      (struct bad_spec){"auto_shutdown: not an arbor_auto_shutdown", -1};
  k++;
  SUP(.auto_shutdown = -1) =
      (struct bad_spec){"auto_shutdown: not an arbor_auto_shutdown", -1};
  k++;
  SUP(.children = NULL, .nchildren = 1) =
      (struct bad_spec){"children: NULL with nchildren > 0", -1};
  k++;
  ONE(.id = NULL, .start = sup_worker) =
      (struct bad_spec){"children[].id: NULL", 0};
  k++;
  ONE(.id = "", .start = sup_worker) =
      (struct bad_spec){"children[].id: empty", 0};
  k++;
  ONE(.id = id64, .start = sup_worker) =
      (struct bad_spec){"children[].id: too long", 0};
  k++;
  ONE(.id = "w") = (struct bad_spec){"children[].start: NULL for a worker", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .type = ARBOR_SUPERVISOR,
      .sup = &good_nested) =
      (struct bad_spec){"children[].start: set for a supervisor", 0};
  k++;
  ONE(.id = "w", .type = ARBOR_SUPERVISOR) =
      (struct bad_spec){"children[].sup: NULL for a supervisor", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .sup = &good_nested) =
      (struct bad_spec){"children[].sup: set for a worker", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .restart = 3) =
      (struct bad_spec){"children[].restart: not an arbor_restart", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .restart = -1) =
      (struct bad_spec){"children[].restart: not an arbor_restart", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .shutdown_ms = -3) = (struct bad_spec){
      "children[].shutdown_ms: negative but not BRUTAL or INFINITY", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .shutdown_ms = INT_MIN) =
      (struct bad_spec){
          "children[].shutdown_ms: negative but not BRUTAL or INFINITY", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .type = 2) =
      (struct bad_spec){"children[].type: not an arbor_child_type", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .significant = 1) = (struct bad_spec){
      "children[].significant: a permanent child cannot be significant", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .stack_size = 100) =
      (struct bad_spec){"children[].stack_size: out of range", 0};
  k++;
  ONE(.id = "w", .start = sup_worker, .stack_size = SIZE_MAX) =
      (struct bad_spec){"children[].stack_size: out of range", 0};
  k++;
  /* The second child: a duplicate id, with the index of the duplicate. */
  c[k][0] = (arbor_child_spec){.id = "w", .start = sup_worker};
  c[k][1] = (arbor_child_spec){.id = "w", .start = sup_worker};
  specs[k] = (arbor_sup_spec){.children = c[k], .nchildren = 2};
  want[k++] = (struct bad_spec){"children[].id: duplicate", 1};
  /* Inside a nested supervisor. */
  {
    static arbor_child_spec bad_leaf = {.id = "", .start = sup_worker};
    static const arbor_sup_spec bad_inner = {.children = &bad_leaf,
                                             .nchildren = 1};

    ONE(.id = "sub", .type = ARBOR_SUPERVISOR, .sup = &bad_inner) =
        (struct bad_spec){"children[].sup->children[].id: empty", 0};
    k++;
  }
  /* A spec that contains itself. */
  looped_child =
      (arbor_child_spec){.id = "me", .type = ARBOR_SUPERVISOR, .sup = &looped};
  looped = (arbor_sup_spec){.children = &looped_child, .nchildren = 1};
  specs[k] = looped;
  want[k++] = (struct bad_spec){
      "children[].sup->children[].sup: nested too deep (does a spec contain "
      "itself?)",
      0};
#undef SUP
#undef ONE
  *n = k;
}

Test(api, sup_start_rejects_bad_specs_naming_the_field_and_starts_nothing,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_sup_spec specs[40];
  struct bad_spec want[40];
  size_t n;

  bad_specs(specs, want, &n);
  for (size_t i = 0; i < n; i++) {
    arbor_sup_error err = {.field = "unset", .child = 99};
    arbor_pid pid = 5;

    cr_expect_eq(arbor_sup_start(rt, &specs[i], &pid, &err), ARBOR_EBADSPEC,
                 "spec #%zu", i);
    cr_expect_eq(pid, 5, "spec #%zu", i);
    cr_assert_not_null(err.field, "spec #%zu", i);
    /* The loop names the field at whatever depth it gave up. */
    if (strstr(want[i].field, "nested too deep") != NULL)
      cr_expect_not_null(strstr(err.field, "nested too deep"),
                         "spec #%zu: %s", i, err.field);
    else
      cr_expect_str_eq(err.field, want[i].field, "spec #%zu", i);
    cr_expect_eq(err.child, want[i].child, "spec #%zu: %s", i, err.field);
    /* err may be NULL. */
    cr_expect_eq(arbor_sup_start(rt, &specs[i], &pid, NULL), ARBOR_EBADSPEC);
  }
  cr_expect_eq(arbor_rt_live(rt), 0);
  cr_expect_eq(arbor_sup_start(rt, NULL, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_start(NULL, &good_nested, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_live(rt), 0);
}

Test(api, sup_start_reports_a_failed_child_and_leaves_nothing_running,
     .init = setup, .fini = teardown, .timeout = 30)
{
  static const arbor_child_spec kids[] = {
      {.id = "ok", .start = sup_worker},
      {.id = "bad", .start = sup_fails_init, .arg = (void *)(intptr_t)17},
  };
  static const arbor_sup_spec spec = {.name = "failing", .children = kids,
                                      .nchildren = 2};
  arbor_sup_error err = {.field = "unset"};
  arbor_pid pid = 5;

  cr_expect_eq(arbor_sup_start(rt, &spec, &pid, &err), ARBOR_ESTART);
  cr_expect_eq(pid, 5);
  cr_expect_null(err.field);
  cr_expect_eq(err.child, 1);
  cr_expect_str_eq(err.id, "bad");
  cr_expect_eq(err.reason, 17);
  settle_live(rt, 0);
  cr_expect_eq(arbor_sup_start(rt, &spec, NULL, NULL), ARBOR_ESTART);
  settle_live(rt, 0);
}

static int sup_start_long_name(void *arg)
{
  static const arbor_sup_spec spec = {.name = "s"};
  arbor_pid pid = 5;

  (void)arg;
  /* Our own name is 254 bytes: "...." + ".s" is too long. */
  PCHECK_EQ(arbor_sup_start(NULL, &spec, &pid, NULL), ARBOR_ENAMETOOLONG);
  PCHECK_EQ(pid, 5);
  return 0;
}

Test(api, sup_start_from_a_process_with_a_long_name_is_enametoolong,
     .init = setup, .fini = teardown, .timeout = 30)
{
  char name[255];
  arbor_pid pid;
  int reason = -1;

  memset(name, 'p', 254);
  name[254] = '\0';
  cr_assert_eq(arbor_spawn(rt, &pid, sup_start_long_name, NULL,
                           &(arbor_spawn_opts){.name = name,
                                               .flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(reason, 0, "%s", failbuf);
  settle_live(rt, 0);
}

/* ---- supervisors: calls naming one ---------------------------------------------------------- */

static const arbor_child_spec two_workers[] = {
    {.id = "a", .start = sup_worker},
    {.id = "b", .start = sup_worker},
};
static const arbor_sup_spec two_spec = {.name = "two",
                                        .children = two_workers,
                                        .nchildren = 2,
                                        .store = 1};

static arbor_pid start_two(void)
{
  arbor_pid sup;

  cr_assert_eq(arbor_sup_start(rt, &two_spec, &sup, NULL), 0);
  return sup;
}

static void expect_children(arbor_pid sup, int n)
{
  arbor_child_counts k;

  cr_assert_eq(arbor_sup_count_children(sup, &k), 0);
  cr_expect_eq(k.specs, n);
  cr_expect_eq(k.active, n);
}

Test(api, sup_calls_reject_pids_that_are_not_live_supervisors,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two(), plain = spawn_counter(rt);
  arbor_pid bad[] = {stale_pid(rt), zombie_pid(rt, 0), never_issued(sup),
                     plain, destroyed_rt_pid(), UINT64_MAX};
  static const arbor_child_spec extra = {.id = "x", .start = sup_worker};
  arbor_child_info info[3];
  arbor_child_counts k = {-1, -1, -1, -1};
  arbor_pid child = 5;
  char buf[8] = "zzzzzzz";

  memset(info, 0x5a, sizeof(info));
  /* pid 0: EINVAL */
  cr_expect_eq(arbor_sup_stop(0, -1), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_start_child(0, &extra, &child, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_terminate_child(0, "a"), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_restart_child(0, "a", &child), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_delete_child(0, "a"), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_which_children(0, info, 3), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_count_children(0, &k), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_get_childspec(0, "a", info), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_dump(0, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               ARBOR_EINVAL);
  /* Anything else that is not a live supervisor: ESRCH. */
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    arbor_pid p = bad[i];

    cr_expect_eq(arbor_sup_stop(p, -1), ARBOR_ESRCH, "pid #%zu", i);
    cr_expect_eq(arbor_sup_start_child(p, &extra, &child, NULL), ARBOR_ESRCH,
                 "pid #%zu", i);
    cr_expect_eq(arbor_sup_terminate_child(p, "a"), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_sup_terminate_child(p, ""), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_sup_restart_child(p, "a", &child), ARBOR_ESRCH,
                 "pid #%zu", i);
    cr_expect_eq(arbor_sup_delete_child(p, "a"), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_sup_which_children(p, info, 3), ARBOR_ESRCH, "#%zu",
                 i);
    cr_expect_eq(arbor_sup_which_children(p, NULL, 0), ARBOR_ESRCH, "#%zu",
                 i);
    cr_expect_eq(arbor_sup_count_children(p, &k), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_sup_get_childspec(p, "a", info), ARBOR_ESRCH, "#%zu",
                 i);
    cr_expect_eq(arbor_sup_dump(p, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
                 ARBOR_ESRCH, "#%zu", i);
  }
  cr_expect_eq(child, 5);
  cr_expect_eq(k.specs, -1);
  cr_expect_str_eq(buf, "zzzzzzz");
  for (size_t i = 0; i < sizeof(info); i++)
    cr_assert_eq(((unsigned char *)info)[i], 0x5a);
  /* None of that touched the plain process or the supervisor. */
  cr_expect_eq(arbor_alive(rt, plain), 1);
  expect_children(sup, 2);
  cr_expect_eq(stop_counter(rt, plain), 0);
}

Test(api, start_child_rejects_bad_specs_and_duplicates_and_starts_nothing,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two(), child = 5;
  arbor_sup_error err = {.field = "unset", .child = 99};
  arbor_sup_spec specs[40];
  struct bad_spec want[40];
  size_t n;
  static const arbor_child_spec dup = {.id = "a", .start = sup_worker};
  static const arbor_child_spec failing = {
      .id = "f", .start = sup_fails_init, .arg = (void *)(intptr_t)23};
  int64_t live = arbor_rt_live(rt);

  cr_expect_eq(arbor_sup_start_child(sup, NULL, &child, &err),
               ARBOR_EBADSPEC);
  cr_expect_str_eq(err.field, "spec: NULL");
  cr_expect_eq(err.child, -1);
  cr_expect_eq(arbor_sup_start_child(sup, NULL, &child, NULL),
               ARBOR_EBADSPEC);
  /* The child specs of the table above, given alone (field names without
   * the "children[]." prefix, no index). */
  bad_specs(specs, want, &n);
  for (size_t i = 0; i < n; i++) {
    const char *f = want[i].field;

    if (specs[i].nchildren != 1 || specs[i].children == NULL ||
        strncmp(f, "children[].", 11) != 0)
      continue;
    err.field = "unset";
    cr_expect_eq(arbor_sup_start_child(sup, &specs[i].children[0], &child,
                                       &err),
                 ARBOR_EBADSPEC, "spec #%zu", i);
    cr_assert_not_null(err.field);
    if (strstr(f, "nested too deep") == NULL)
      cr_expect_str_eq(err.field, f + 11, "spec #%zu", i);
    /* The index is the nested spec's child, or -1 for the spec itself. */
    cr_expect_eq(err.child, strstr(f, "->") != NULL ? want[i].child : -1,
                 "spec #%zu: %s", i, err.field);
  }
  cr_expect_eq(arbor_sup_start_child(sup, &dup, &child, &err), ARBOR_EEXIST);
  memset(&err, 0, sizeof(err));
  cr_expect_eq(arbor_sup_start_child(sup, &failing, &child, &err),
               ARBOR_ESTART);
  cr_expect_str_eq(err.id, "f");
  cr_expect_eq(err.reason, 23);
  cr_expect_eq(child, 5);
  settle_live(rt, live); /* the child that failed its init has gone */
  expect_children(sup, 2);
  cr_expect_eq(arbor_sup_get_childspec(sup, "f", &(arbor_child_info){0}),
               ARBOR_ENOENT);
}

Test(api, child_calls_reject_bad_ids_and_running_children, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two(), child = 5;
  arbor_child_info info, z;
  char id64[ARBOR_ID_MAX + 1];

  memset(id64, 'i', ARBOR_ID_MAX);
  id64[ARBOR_ID_MAX] = '\0';
  memset(&info, 0x5a, sizeof(info));
  memset(&z, 0x5a, sizeof(z));
  cr_expect_eq(arbor_sup_terminate_child(sup, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_restart_child(sup, NULL, &child), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_delete_child(sup, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_get_childspec(sup, NULL, &info), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_get_childspec(sup, "a", NULL), ARBOR_EINVAL);
  const char *unknown[] = {"", "zz", id64};
  for (size_t i = 0; i < 3; i++) {
    cr_expect_eq(arbor_sup_terminate_child(sup, unknown[i]), ARBOR_ENOENT);
    cr_expect_eq(arbor_sup_restart_child(sup, unknown[i], &child),
                 ARBOR_ENOENT);
    cr_expect_eq(arbor_sup_delete_child(sup, unknown[i]), ARBOR_ENOENT);
    cr_expect_eq(arbor_sup_get_childspec(sup, unknown[i], &info),
                 ARBOR_ENOENT);
  }
  /* Running children cannot be restarted or deleted. */
  cr_expect_eq(arbor_sup_restart_child(sup, "a", &child), ARBOR_EBUSY);
  cr_expect_eq(arbor_sup_delete_child(sup, "a"), ARBOR_EBUSY);
  cr_expect_eq(child, 5);
  cr_expect_eq(memcmp(&info, &z, sizeof(info)), 0);
  expect_children(sup, 2);
  /* Terminating a terminated child is not an error. */
  cr_expect_eq(arbor_sup_terminate_child(sup, "b"), 0);
  cr_expect_eq(arbor_sup_terminate_child(sup, "b"), 0);
  cr_expect_eq(arbor_sup_delete_child(sup, "b"), 0);
  cr_expect_eq(arbor_sup_delete_child(sup, "b"), ARBOR_ENOENT);
  expect_children(sup, 1);
}

Test(api, which_and_count_children_reject_null_and_write_at_most_cap,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two();
  arbor_child_info v[3], z;

  memset(v, 0x5a, sizeof(v));
  memset(&z, 0x5a, sizeof(z));
  cr_expect_eq(arbor_sup_which_children(sup, NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_which_children(sup, NULL, SIZE_MAX), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_count_children(sup, NULL), ARBOR_EINVAL);
  /* cap 0: just the count; cap 1: one entry. */
  cr_expect_eq(arbor_sup_which_children(sup, NULL, 0), 2);
  cr_expect_eq(arbor_sup_which_children(sup, v, 0), 2);
  cr_expect_eq(memcmp(&v[0], &z, sizeof(z)), 0);
  cr_expect_eq(arbor_sup_which_children(sup, v, 1), 2);
  cr_expect_str_eq(v[0].id, "a");
  cr_expect_eq(memcmp(&v[1], &z, sizeof(z)), 0);
  cr_expect_eq(arbor_sup_which_children(sup, v, 3), 2);
  cr_expect_str_eq(v[1].id, "b");
  cr_expect_eq(memcmp(&v[2], &z, sizeof(z)), 0);
}

/* A worker that calls its own supervisor before acknowledging its init
 * would wait forever: the supervisor is waiting for that ack. */
static _Atomic arbor_pid my_sup;
static atomic_int early_rc[4];

static int early_caller(void *arg)
{
  arbor_pid sup = atomic_load(&my_sup);
  arbor_child_counts k;
  arbor_msg m;

  (void)arg;
  atomic_store(&early_rc[0], arbor_sup_count_children(sup, &k));
  atomic_store(&early_rc[1], arbor_sup_stop(sup, 0));
  atomic_store(&early_rc[2], arbor_sup_terminate_child(sup, "a"));
  atomic_store(&early_rc[3], (int)arbor_sup_dump(sup, 0, NULL, 0));
  (void)arbor_init_ack(0);
  (void)arbor_init_ack(0); /* twice: a no-op */
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return 0;
}

Test(api, a_worker_calling_its_supervisor_before_its_ack_gets_edeadlk,
     .init = setup, .fini = teardown, .timeout = 30)
{
  static const arbor_child_spec early = {.id = "early", .start = early_caller};
  arbor_pid sup = start_two(), child;

  atomic_store(&my_sup, sup);
  cr_assert_eq(arbor_sup_start_child(sup, &early, &child, NULL), 0);
  for (int i = 0; i < 4; i++)
    cr_expect_eq(atomic_load(&early_rc[i]), ARBOR_EDEADLK, "call %d", i);
  expect_children(sup, 3);
  /* After the ack it may call. */
  cr_expect_eq(arbor_sup_stop(sup, -1), 0);
  cr_expect_eq(arbor_alive(rt, child), 0);
}

/* Event sinks run inside the supervisor: a call back to it is EDEADLK. */
static atomic_int sink_calls, sink_rc[5];

static void calling_sink(const arbor_event *ev, void *ud)
{
  static const arbor_child_spec extra = {.id = "x", .start = sup_worker};
  arbor_child_counts k;
  char buf[64];

  (void)ud;
  if (ev->kind != ARBOR_EV_CHILD_STARTED ||
      atomic_fetch_add(&sink_calls, 1) != 0)
    return;
  atomic_store(&sink_rc[0], arbor_sup_count_children(ev->sup, &k));
  atomic_store(&sink_rc[1], arbor_sup_stop(ev->sup, -1));
  atomic_store(&sink_rc[2],
               arbor_sup_start_child(ev->sup, &extra, NULL, NULL));
  atomic_store(&sink_rc[3],
               (int)arbor_sup_dump(ev->sup, ARBOR_DUMP_DOT, buf, sizeof(buf)));
  atomic_store(&sink_rc[4], arbor_sup_get_childspec(ev->sup, "a", NULL));
}

Test(api, a_supervisor_calling_itself_from_its_sink_gets_edeadlk,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid sup;

  cr_assert_eq(arbor_rt_set_event_sink(rt, calling_sink, NULL,
                                       ARBOR_LEVEL_DEBUG),
               0);
  sup = start_two();
  cr_expect_eq(atomic_load(&sink_calls), 2);
  for (int i = 0; i < 4; i++)
    cr_expect_eq(atomic_load(&sink_rc[i]), ARBOR_EDEADLK, "call %d", i);
  cr_expect_eq(atomic_load(&sink_rc[4]), ARBOR_EINVAL); /* checked first */
  expect_children(sup, 2);
}

/* Code that runs on a worker thread but in no process -- here the free
 * function of an owned message that a process leaves unread when it dies
 * -- must not block the worker. */
static arbor_rt *rt1;
static atomic_int free_rc[5];
static atomic_int free_ran;

static void calling_free(void *p)
{
  arbor_pid pid = 5;
  int reason = 7;

  free(p);
  atomic_store(&free_rc[0], arbor_wait(rt1, 1, -1, &reason));
  atomic_store(&free_rc[1], arbor_rt_shutdown(rt1));
  atomic_store(&free_rc[2], arbor_sup_start(rt1, &two_spec, &pid, NULL));
  atomic_store(&free_rc[3], (int)(pid == 5 && reason == 7));
  atomic_store(&free_rc[4], arbor_self() == 0 && arbor_rt_current() == NULL);
  atomic_store(&free_ran, 1);
}

static int wait_tag_99(void *arg)
{
  arbor_msg m;

  (void)arg;
  return arbor_recv_tag(&m, 99, -1) != 0;
}

Test(api, blocking_calls_from_a_worker_outside_any_process_get_edeadlk,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid pid;
  void *buf = malloc(8);

  cr_assert_not_null(buf);
  cr_assert_eq(arbor_rt_create(&rt1, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt1, quiet_sink, NULL, 0), 0);
  cr_assert_eq(arbor_spawn(rt1, &pid, wait_tag_99, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_send_owned(pid, 5, buf, 8, calling_free), 0);
  cr_assert_eq(arbor_kill(pid, ARBOR_REASON_KILL), 0);
  cr_assert_eq(arbor_wait(rt1, pid, -1, NULL), 0);
  cr_assert_eq(atomic_load(&free_ran), 1);
  cr_expect_eq(atomic_load(&free_rc[0]), ARBOR_EDEADLK);
  cr_expect_eq(atomic_load(&free_rc[1]), ARBOR_EDEADLK);
  cr_expect_eq(atomic_load(&free_rc[2]), ARBOR_EDEADLK);
  cr_expect_eq(atomic_load(&free_rc[3]), 1);
  cr_expect_eq(atomic_load(&free_rc[4]), 1);
  /* Nothing was started (the dead process leaves the count just after its
   * waiters are told; a supervisor would never leave it), nothing shut
   * down. */
  settle_live(rt1, 0);
  cr_expect_eq(arbor_spawn(rt1, NULL, nop, NULL, NULL), 0);
  arbor_rt_destroy(rt1);
}

static int not_supervised(void *arg)
{
  arbor_msg m;

  (void)arg;
  PCHECK_EQ(arbor_init_ack(0), 0);
  PCHECK_EQ(arbor_init_ack(-7), 0);
  PCHECK_EQ(arbor_init_ack(INT_MIN), 0);
  /* A no-op: nothing was sent anywhere. */
  PCHECK_EQ(arbor_recv(&m, 0), ARBOR_ETIMEDOUT);
  return 0;
}

Test(api, init_ack_outside_a_supervised_start_is_a_noop, .init = setup,
     .fini = teardown, .timeout = 30)
{
  int64_t dropped = arbor_rt_dropped(rt);

  RUN(not_supervised, NULL);
  cr_expect_eq(arbor_rt_dropped(rt), dropped);
}

Test(api, sup_stop_timeouts_and_a_second_stop, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two();
  int reason = -1;

  /* A stop that is still in progress when the time is up says so; it goes
   * on, and the root stays a zombie for arbor_wait(). */
  int rc = arbor_sup_stop(sup, 0);
  cr_expect(rc == 0 || rc == ARBOR_ETIMEDOUT, "rc %d", rc);
  cr_expect_eq(arbor_wait(rt, sup, -1, &reason), 0);
  cr_expect_eq(reason, ARBOR_NORMAL);
  cr_expect_eq(arbor_sup_stop(sup, -1), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_stop(sup, INT64_MAX), ARBOR_ESRCH);
  settle_live(rt, 0);
}

/* ---- the store ----------------------------------------------------------------------------- */

static int bad_update(void *val, size_t *len, int exists, void *arg)
{
  int how = (int)(intptr_t)arg;

  (void)exists;
  switch (how) {
  case 0:
    memset(val, 'X', *len);
    return 2; /* not 1, 0 or -1 */
  case 1:
    memset(val, 'X', *len);
    *len = SIZE_MAX; /* past the buffer */
    return 1;
  case 2:
    memset(val, 'X', *len);
    return INT_MIN;
  default: {
    /* Store calls from inside fail (except size) instead of deadlocking. */
    arbor_pid sup = (arbor_pid)(uintptr_t)atomic_load(&my_sup);
    char b[4];

    if (arbor_store_get(sup, "k", b, sizeof(b)) != ARBOR_EINVAL ||
        arbor_store_set(sup, "other", "x", 1) != ARBOR_EINVAL ||
        arbor_store_delete(sup, "k") != ARBOR_EINVAL ||
        arbor_store_update(sup, "k", 0, bad_update, arg) != ARBOR_EINVAL ||
        arbor_store_size(sup) != 1)
      return 2;
    memset(val, 'X', *len);
    return 0;
  }
  }
}

Test(api, store_calls_reject_bad_keys_buffers_and_callbacks, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two();
  char k64[ARBOR_ID_MAX + 1], buf[8];
  const char *badkeys[] = {NULL, "", k64};

  atomic_store(&my_sup, sup);
  memset(k64, 'k', ARBOR_ID_MAX);
  k64[ARBOR_ID_MAX] = '\0';
  cr_assert_eq(arbor_store_set(sup, "k", "value", 5), 0);
  memset(buf, 'z', sizeof(buf));
  for (size_t i = 0; i < 3; i++) {
    cr_expect_eq(arbor_store_get(sup, badkeys[i], buf, sizeof(buf)),
                 ARBOR_EINVAL);
    cr_expect_eq(arbor_store_set(sup, badkeys[i], "v", 1), ARBOR_EINVAL);
    cr_expect_eq(arbor_store_delete(sup, badkeys[i]), ARBOR_EINVAL);
    cr_expect_eq(arbor_store_update(sup, badkeys[i], 8, bad_update, NULL),
                 ARBOR_EINVAL);
  }
  cr_expect_eq(arbor_store_get(sup, "k", NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_store_set(sup, "k", NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_store_update(sup, "k", 8, NULL, NULL), ARBOR_EINVAL);
  for (intptr_t how = 0; how < 4; how++)
    cr_expect_eq(arbor_store_update(sup, "k", (size_t)how * 100, bad_update,
                                    (void *)how),
                 how == 3 ? 0 : ARBOR_EINVAL, "callback %d", (int)how);
  /* Missing keys. */
  cr_expect_eq(arbor_store_get(sup, "nokey", buf, sizeof(buf)), ARBOR_ENOENT);
  cr_expect_eq(arbor_store_delete(sup, "nokey"), ARBOR_ENOENT);
  for (size_t i = 0; i < sizeof(buf); i++)
    cr_assert_eq(buf[i], 'z');
  /* The value is as it was; a short buffer gets a prefix and the length. */
  cr_expect_eq(arbor_store_size(sup), 1);
  cr_expect_eq(arbor_store_get(sup, "k", NULL, 0), 5);
  cr_expect_eq(arbor_store_get(sup, "k", buf, 2), 5);
  cr_expect_eq(memcmp(buf, "vazzzzzz", 8), 0);
  cr_expect_eq(arbor_store_get(sup, "k", buf, sizeof(buf)), 5);
  cr_expect_eq(memcmp(buf, "valuezzz", 8), 0);
  /* NULL with length 0 is an empty value. */
  cr_expect_eq(arbor_store_set(sup, "empty", NULL, 0), 0);
  cr_expect_eq(arbor_store_get(sup, "empty", buf, sizeof(buf)), 0);
  cr_expect_eq(arbor_store_size(sup), 2);
}

static int store_from_plain_process(void *arg)
{
  char buf[4];

  (void)arg;
  /* sup = 0 in a process that no supervisor started: no store. */
  PCHECK_EQ(arbor_store_set(0, "k", "v", 1), ARBOR_ESRCH);
  PCHECK_EQ(arbor_store_get(0, "k", buf, sizeof(buf)), ARBOR_ESRCH);
  PCHECK_EQ(arbor_store_size(0), ARBOR_ESRCH);
  return 0;
}

Test(api, store_calls_without_a_store_are_esrch, .init = setup,
     .fini = teardown, .timeout = 30)
{
  static const arbor_sup_spec bare = {.name = "bare"};
  arbor_pid sup, plain = spawn_counter(rt);
  arbor_pid bad[] = {0,     0, plain, stale_pid(rt), zombie_pid(rt, 0),
                     never_issued(plain), destroyed_rt_pid(), UINT64_MAX};
  char buf[4] = "zzz";

  cr_assert_eq(arbor_sup_start(rt, &bare, &sup, NULL), 0);
  bad[1] = sup; /* a supervisor without a store */
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    arbor_pid p = bad[i];

    cr_expect_eq(arbor_store_get(p, "k", buf, sizeof(buf)), ARBOR_ESRCH,
                 "#%zu", i);
    cr_expect_eq(arbor_store_set(p, "k", "v", 1), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_store_delete(p, "k"), ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_store_update(p, "k", 4, bad_update, (void *)3),
                 ARBOR_ESRCH, "#%zu", i);
    cr_expect_eq(arbor_store_size(p), ARBOR_ESRCH, "#%zu", i);
  }
  cr_expect_str_eq(buf, "zzz");
  RUN(store_from_plain_process, NULL);
  cr_expect_eq(stop_counter(rt, plain), 0);
}

/* ---- events and dumps ------------------------------------------------------------------------- */

static atomic_int sink_a, sink_b;

static void sink_count_a(const arbor_event *ev, void *ud)
{
  (void)ev;
  (void)ud;
  atomic_fetch_add(&sink_a, 1);
}

static void sink_count_b(const arbor_event *ev, void *ud)
{
  (void)ev;
  (void)ud;
  atomic_fetch_add(&sink_b, 1);
}

Test(api, set_event_sink_rejects_null_rt_and_bad_levels_and_keeps_the_sink,
     .init = setup, .fini = teardown, .timeout = 30)
{
  static const arbor_sup_spec bare = {.name = "bare"};
  arbor_pid sup;

  cr_assert_eq(arbor_rt_set_event_sink(rt, sink_count_a, NULL,
                                       ARBOR_LEVEL_DEBUG),
               0);
  cr_expect_eq(arbor_rt_set_event_sink(NULL, sink_count_b, NULL, 0),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_set_event_sink(rt, sink_count_b, NULL, -1),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_set_event_sink(rt, sink_count_b, NULL, 4),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_set_event_sink(rt, sink_count_b, NULL, INT_MAX),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_set_event_sink(rt, NULL, NULL, INT_MIN),
               ARBOR_EINVAL);
  /* Still sink a at DEBUG: a start and a stop give events to a only. */
  cr_assert_eq(arbor_sup_start(rt, &bare, &sup, NULL), 0);
  cr_assert_eq(arbor_sup_stop(sup, -1), 0);
  cr_expect_gt(atomic_load(&sink_a), 0);
  cr_expect_eq(atomic_load(&sink_b), 0);
}

Test(api, builtin_sinks_take_null_events_strings_and_odd_values)
{
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  arbor_event ev = {
      .time_ns = INT64_MIN,
      .kind = -1,
      .level = 99,
      .sup_name = NULL,
      .child_id = NULL,
      .reason = INT_MIN,
  };

  cr_assert_not_null(f);
  arbor_event_sink_logfmt(NULL, f);
  arbor_event_sink_jsonl(NULL, f);
  fflush(f);
  cr_expect_eq(len, 0); /* NULL events write nothing */
  arbor_event_sink_logfmt(&ev, f);
  arbor_event_sink_jsonl(&ev, f);
  ev.time_ns = INT64_MAX;
  ev.kind = INT_MAX;
  ev.sup_name = "a \"b\"\n\\\x01\x7f";
  ev.child_id = "\xff\xfe\xc3(\xed\xa0\x80";
  arbor_event_sink_logfmt(&ev, f);
  arbor_event_sink_jsonl(&ev, f);
  fclose(f);
  /* One line per event, each with the unknown kind named. */
  {
    int lines = 0;

    for (size_t i = 0; i < len; i++) {
      lines += text[i] == '\n';
      /* Control bytes are always escaped. */
      cr_expect(text[i] == '\n' || (unsigned char)text[i] >= ' ',
                "raw control byte %#x at %zu", (unsigned char)text[i], i);
    }
    cr_expect_eq(lines, 4);
    cr_expect_not_null(strstr(text, "event=unknown"));
    cr_expect_not_null(strstr(text, "\"event\":\"unknown\""));
    cr_expect_not_null(strstr(text, "\\ufffd")); /* invalid UTF-8 */
  }
  free(text);
}

Test(api, dump_rejects_bad_arguments_and_leaves_buf_untouched,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid sup = start_two();
  char buf[64], z[64];
  int64_t full;

  memset(buf, 'z', sizeof(buf));
  memcpy(z, buf, sizeof(z));
  cr_expect_eq(arbor_sup_dump(sup, ARBOR_DUMP_TEXT, NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_dump(sup, 2, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_dump(sup, -1, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(arbor_sup_dump(sup, INT_MAX, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(memcmp(buf, z, sizeof(buf)), 0);
  /* cap 0 measures; cap 1 stores only the NUL. */
  full = arbor_sup_dump(sup, ARBOR_DUMP_TEXT, NULL, 0);
  cr_expect_gt(full, 0);
  cr_expect_eq(arbor_sup_dump(sup, ARBOR_DUMP_TEXT, buf, 0), full);
  cr_expect_eq(memcmp(buf, z, sizeof(buf)), 0);
  cr_expect_eq(arbor_sup_dump(sup, ARBOR_DUMP_TEXT, buf, 1), full);
  cr_expect_eq(buf[0], '\0');
  cr_expect_eq(buf[1], 'z');
  cr_expect_eq(arbor_sup_dump(sup, ARBOR_DUMP_DOT, buf, sizeof(buf)),
               arbor_sup_dump(sup, ARBOR_DUMP_DOT, NULL, 0));
  cr_expect_lt(strlen(buf), sizeof(buf));
}

/* ---- after shutdown, after destroy ------------------------------------------------------------- */

/* Everything a runtime hands out, for the two tests below. */
struct leftovers {
  arbor_pid zombie, live, sup, other;
  arbor_timer timer;
};

static void make_leftovers(struct leftovers *l)
{
  cr_assert_eq(arbor_spawn(rt, &l->live, counter, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_register("live", l->live), 0);
  l->zombie = zombie_pid(rt, 12);
  l->sup = start_two();
  cr_assert_eq(arbor_store_set(l->sup, "k", "v", 1), 0);
  cr_assert_eq(arbor_send_after(l->live, 5, "x", 1, 3600 * 1000, &l->timer),
               0);
  cr_assert_eq(arbor_spawn(rt2, &l->other, counter, NULL, NULL), 0);
}

static struct leftovers left;

static int link_to_leftovers(void *arg)
{
  uint64_t ref = 9;

  (void)arg;
  /* A process of rt2: every pid of rt is another runtime's. */
  PCHECK_EQ(arbor_link(left.live), ARBOR_EOTHERRT);
  PCHECK_EQ(arbor_link(left.sup), ARBOR_EOTHERRT);
  PCHECK_EQ(arbor_monitor(left.zombie, &ref), ARBOR_EOTHERRT);
  PCHECK_EQ(ref, 9);
  PCHECK_EQ(arbor_unlink(left.live), 0);
  return 0;
}

static void expect_pid_calls_fail(const struct leftovers *l, int on_dead_rt)
{
  static const arbor_child_spec extra = {.id = "x", .start = sup_worker};
  int esrch_or_drop = on_dead_rt ? ARBOR_ESRCH : 0;
  arbor_child_counts k = {-1, -1, -1, -1};
  arbor_timer t = 5;
  char buf[8] = "zzzzzzz";

  /* Sends and kills: dropped (0) while the runtime exists, ESRCH after. */
  cr_expect_eq(arbor_send(l->live, 5, "x", 1), esrch_or_drop);
  cr_expect_eq(arbor_send(l->zombie, 5, NULL, 0), esrch_or_drop);
  cr_expect_eq(arbor_send_owned(l->live, 5, NULL, 0, NULL), esrch_or_drop);
  cr_expect_eq(arbor_kill(l->live, ARBOR_REASON_KILL), esrch_or_drop);
  cr_expect_eq(arbor_kill(l->sup, 3), esrch_or_drop);
  cr_expect_eq(arbor_send_after(l->live, 5, NULL, 0, 1, &t), esrch_or_drop);
  if (on_dead_rt)
    cr_expect_eq(t, 5);
  /* Names. */
  cr_expect_eq(arbor_register("again", l->live), ARBOR_ESRCH);
  cr_expect_eq(arbor_register("again", l->zombie), ARBOR_ESRCH);
  /* Supervisors and stores. */
  cr_expect_eq(arbor_sup_stop(l->sup, -1), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_start_child(l->sup, &extra, NULL, NULL),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_terminate_child(l->sup, "a"), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_restart_child(l->sup, "a", NULL), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_delete_child(l->sup, "a"), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_which_children(l->sup, NULL, 0), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_count_children(l->sup, &k), ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_get_childspec(l->sup, "a", &(arbor_child_info){0}),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_sup_dump(l->sup, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_store_get(l->sup, "k", buf, sizeof(buf)), ARBOR_ESRCH);
  cr_expect_eq(arbor_store_set(l->sup, "k", "v", 1), ARBOR_ESRCH);
  cr_expect_eq(arbor_store_delete(l->sup, "k"), ARBOR_ESRCH);
  cr_expect_eq(arbor_store_update(l->sup, "k", 4, bad_update, (void *)3),
               ARBOR_ESRCH);
  cr_expect_eq(arbor_store_size(l->sup), ARBOR_ESRCH);
  cr_expect_eq(k.specs, -1);
  cr_expect_str_eq(buf, "zzzzzzz");
  /* From the other runtime, they are another runtime's pids. */
  cr_expect_eq(arbor_alive(rt2, l->live), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_name(rt2, l->zombie, buf, sizeof(buf)), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_wait(rt2, l->zombie, 0, NULL), ARBOR_EOTHERRT);
  cr_expect_eq(arbor_send_name(rt2, "live", 5, NULL, 0), ARBOR_ESRCH);
  RUN_IN(rt2, link_to_leftovers, NULL);
}

Test(api, after_shutdown_every_call_fails_cleanly_or_does_nothing,
     .init = setup, .fini = teardown, .timeout = 60)
{
  arbor_worker_stats st[2];
  arbor_pid found = 1;
  int reason = -1;
  char buf[8];

  make_leftovers(&left);
  cr_assert_eq(arbor_rt_shutdown(rt), 0);
  cr_expect_eq(arbor_rt_live(rt), 0);
  /* The joinable processes are zombies: waits still collect them. */
  cr_expect_eq(arbor_wait(rt, left.live, -1, &reason), 0);
  cr_expect_eq(reason, ARBOR_REASON_SHUTDOWN);
  cr_expect_eq(arbor_wait(rt, left.live, -1, &reason), ARBOR_ESRCH);
  /* New processes and trees: ESHUTDOWN, with nothing written. */
  {
    arbor_pid pid = 5;

    cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL, NULL), ARBOR_ESHUTDOWN);
    cr_expect_eq(arbor_sup_start(rt, &two_spec, &pid, NULL), ARBOR_ESHUTDOWN);
    cr_expect_eq(pid, 5);
  }
  /* The registry emptied with its processes. */
  cr_expect_eq(arbor_whereis(rt, "live", &found), ARBOR_ESRCH);
  cr_expect_eq(arbor_unregister(rt, "live"), ARBOR_ESRCH);
  cr_expect_eq(arbor_send_name(rt, "live", 5, NULL, 0), ARBOR_ESRCH);
  cr_expect_eq(found, 1);
  cr_expect_eq(arbor_alive(rt, left.zombie), 0);
  cr_expect_eq(arbor_name(rt, left.zombie, buf, sizeof(buf)), ARBOR_ESRCH);
  expect_pid_calls_fail(&left, 0);
  /* A timer armed before the shutdown can still be cancelled (its message
   * is freed now rather than with the runtime); one armed after it never
   * fires and is freed with the runtime. */
  cr_expect_eq(arbor_timer_cancel(left.timer), 0);
  cr_expect_eq(arbor_timer_cancel(left.timer), ARBOR_ESRCH);
  /* The runtime can still be asked about itself. */
  cr_expect_eq(arbor_rt_shutdown(rt), 0);
  cr_expect_eq(arbor_rt_workers(rt), 2);
  cr_expect_eq(arbor_rt_stats(rt, st, 2), 2);
  cr_expect_geq(arbor_rt_dropped(rt), 0);
  cr_expect_eq(arbor_rt_set_event_sink(rt, quiet_sink, NULL, 0), 0);
  /* The zombie keeps its reason to the end. */
  cr_expect_eq(arbor_wait(rt, left.zombie, 0, &reason), 0);
  cr_expect_eq(reason, 12);
}

Test(api, after_destroy_pid_calls_fail_cleanly, .init = setup,
     .fini = teardown, .timeout = 60)
{
  make_leftovers(&left);
  arbor_rt_destroy(rt);
  rt = NULL; /* the pointer is dangling now; only pids are left */
  expect_pid_calls_fail(&left, 1);
  cr_expect_eq(arbor_timer_cancel(left.timer), ARBOR_ESRCH);
  /* The other runtime did not notice. */
  cr_expect_eq(arbor_alive(rt2, left.other), 1);
  cr_expect_eq(arbor_send(left.other, 5, NULL, 0), 0);
}

/* ---- calls made by a process that has been asked to end ------------------------------------ */

/* A process that is asked to end while it runs ends at its next runtime
 * call.  Whatever that call is, ending there must not leak what the call
 * was given or had allocated.  The victim spins (making no runtime call)
 * until the test has killed it, then makes the call. */
static atomic_int doomed_ready, doomed_go;

static void doomed_wait(void)
{
  atomic_store(&doomed_ready, 1);
  while (!atomic_load(&doomed_go))
    sched_yield();
}

/* Kill the spinning victim, let it make its call, and return its reason. */
static int doom(arbor_fn fn, void *arg)
{
  arbor_pid pid;
  int reason = -1;

  atomic_store(&doomed_ready, 0);
  atomic_store(&doomed_go, 0);
  cr_assert_eq(arbor_spawn(rt, &pid, fn, arg,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  while (!atomic_load(&doomed_ready))
    sched_yield();
  cr_assert_eq(arbor_kill(pid, 9), 0);
  atomic_store(&doomed_go, 1);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  return reason;
}

static int doomed_send_owned(void *arg)
{
  char *buf = malloc(8);

  if (buf == NULL)
    return 2;
  doomed_wait();
  if (arbor_send_owned(*(arbor_pid *)arg, 5, buf, 8, counting_free) != 0)
    free(buf);
  return 1; /* not reached: it ends in the call */
}

Test(api, send_owned_by_a_process_asked_to_end_frees_the_buffer_once,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid to = spawn_counter(rt);

  cr_expect_eq(doom(doomed_send_owned, &to), 9);
  /* Delivered or dropped, the buffer is freed once the counter is done. */
  stop_counter(rt, to);
  cr_expect_eq(atomic_load(&freed), 1);
  destroy_all();
  cr_expect_eq(leaks_now(), 0);
}

static const arbor_child_spec extra_child = {.id = "x", .start = sup_worker};

struct doomed_call {
  arbor_pid sup;
  int op;
};

static int doomed_sup_call(void *arg)
{
  const struct doomed_call *c = arg;
  arbor_child_info info[2];
  arbor_child_counts k;

  doomed_wait();
  switch (c->op) {
  case 0:
    (void)arbor_sup_start_child(c->sup, &extra_child, NULL, NULL);
    break;
  case 1:
    /* (Not a cast to void: gcc keeps warn_unused_result through one.) */
    if (arbor_sup_start(NULL, &two_spec, NULL, NULL) == 0)
      return 2;
    break;
  case 2:
    (void)arbor_sup_stop(c->sup, -1);
    break;
  case 3:
    (void)arbor_sup_which_children(c->sup, info, 2);
    break;
  case 4:
    (void)arbor_sup_count_children(c->sup, &k);
    break;
  case 5:
    (void)arbor_sup_terminate_child(c->sup, "a");
    break;
  case 6:
    (void)arbor_sup_restart_child(c->sup, "a", NULL);
    break;
  default:
    (void)arbor_sup_dump(c->sup, ARBOR_DUMP_TEXT, NULL, 0);
    break;
  }
  return 1; /* not reached: it ends in the call */
}

/* The caller ends in the call, before asking anything: the supervisor is
 * untouched, and nothing the call allocated is left behind (LeakSanitizer
 * checks that part in the ASan build). */
Test(api, sup_calls_by_a_process_asked_to_end_leave_nothing_behind,
     .init = setup, .fini = teardown, .timeout = 60)
{
  arbor_pid sup = start_two();

  for (int op = 0; op < 8; op++) {
    struct doomed_call c = {sup, op};

    cr_expect_eq(doom(doomed_sup_call, &c), 9, "call %d", op);
    expect_children(sup, 2);
  }
  settle_live(rt, 3); /* the supervisor and its two children */
  destroy_all();
  cr_expect_eq(leaks_now(), 0);
}

/* ---- free functions run outside any process -------------------------------------------------- */

/* The free function of a message that a dying process leaves unread runs
 * on its worker after the process is gone -- also when the worker hands
 * over directly to the next process, on that process's stack.  It must
 * then see no calling process, never that unrelated next one (whose
 * identity any runtime call it made would borrow). */
static _Atomic arbor_pid seen_self, waker_target;
static atomic_int hand_ready, hand_go;

static void note_self_free(void *p)
{
  free(p);
  atomic_store(&seen_self, arbor_self());
}

static int handoff_target_proc(void *arg)
{
  arbor_msg m;

  (void)arg;
  atomic_store(&hand_ready, 1);
  return arbor_recv_tag(&m, 7, -1) != 0;
}

static int waker_dies(void *arg)
{
  (void)arg;
  /* Wait (outside the runtime) until our owned message has arrived. */
  while (!atomic_load(&hand_go))
    sched_yield();
  /* Wake the target into this worker's LIFO slot, then exit: the worker
   * switches straight to it, and our exit (with the unread message) is
   * finished on its stack. */
  return arbor_send(atomic_load(&waker_target), 7, NULL, 0) != 0;
}

Test(api, free_functions_of_dropped_messages_run_outside_any_process,
     .timeout = 60)
{
  arbor_rt *r1;

  cr_assert_eq(arbor_rt_create(&r1, &(arbor_rt_opts){.workers = 1}), 0);
  for (int i = 0; i < 20; i++) {
    arbor_pid a, b;
    void *buf = malloc(8);

    cr_assert_not_null(buf);
    atomic_store(&hand_ready, 0);
    atomic_store(&hand_go, 0);
    atomic_store(&seen_self, 1);
    cr_assert_eq(arbor_spawn(r1, &a, handoff_target_proc, NULL,
                             &(arbor_spawn_opts){.flags =
                                                     ARBOR_SPAWN_JOINABLE}),
                 0);
    atomic_store(&waker_target, a);
    while (!atomic_load(&hand_ready))
      sched_yield();
    cr_assert_eq(arbor_spawn(r1, &b, waker_dies, NULL,
                             &(arbor_spawn_opts){.flags =
                                                     ARBOR_SPAWN_JOINABLE}),
                 0);
    cr_assert_eq(arbor_send_owned(b, 99, buf, 8, note_self_free), 0);
    atomic_store(&hand_go, 1);
    cr_assert_eq(arbor_wait(r1, b, -1, NULL), 0);
    cr_assert_eq(arbor_wait(r1, a, -1, NULL), 0);
    cr_assert_eq(atomic_load(&seen_self), 0,
                 "round %d: the free function ran as process %#llx", i,
                 (unsigned long long)atomic_load(&seen_self));
  }
  arbor_rt_destroy(r1);
}

/* ---- a dump cut short --------------------------------------------------------------------------- */

/* arbor_sup_dump() holds a list per level while it asks the next
 * supervisor; a dumper killed during such a wait must leave none behind.
 * The nested supervisor is kept busy (waiting for a slow child's init) so
 * that the dumper's question waits; when it is answered at last, the
 * answer to the dead dumper is dropped -- that is how the test knows the
 * kill landed in the wait. */
static _Atomic arbor_pid dump_root;
static atomic_int dumping;

static int dumper(void *arg)
{
  char buf[64];

  (void)arg;
  atomic_store(&dumping, 1);
  return (int)arbor_sup_dump(atomic_load(&dump_root), ARBOR_DUMP_TEXT, buf,
                             sizeof(buf));
}

static int slow_init(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_register("slow", arbor_self()) != 0 ||
      arbor_recv_tag(&m, 42, -1) != 0)
    return 3;
  (void)arbor_init_ack(0);
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return 0;
}

static int start_slow(void *arg)
{
  static const arbor_child_spec slow[] = {
      {.id = "s0", .start = slow_init}, {.id = "s1", .start = slow_init},
      {.id = "s2", .start = slow_init}, {.id = "s3", .start = slow_init},
      {.id = "s4", .start = slow_init}, {.id = "s5", .start = slow_init},
      {.id = "s6", .start = slow_init}, {.id = "s7", .start = slow_init},
      {.id = "s8", .start = slow_init}, {.id = "s9", .start = slow_init},
      {.id = "sa", .start = slow_init}, {.id = "sb", .start = slow_init},
      {.id = "sc", .start = slow_init}, {.id = "sd", .start = slow_init},
      {.id = "se", .start = slow_init}, {.id = "sf", .start = slow_init},
  };
  const arbor_pid *a = arg; /* a[0]: the nested supervisor, a[1]: round */

  return arbor_sup_start_child(a[0], &slow[a[1]], NULL, NULL) != 0;
}

Test(api, a_dump_whose_caller_is_killed_mid_walk_leaks_nothing,
     .init = setup, .fini = teardown, .timeout = 120)
{
  static const arbor_sup_spec inner = {.name = "inner"};
  static const arbor_child_spec kids[] = {
      {.id = "inner", .type = ARBOR_SUPERVISOR, .sup = &inner}};
  static const arbor_sup_spec outer = {.name = "outer", .children = kids,
                                       .nchildren = 1};
  arbor_child_info info;
  arbor_child_counts k;
  arbor_pid root, args[2], starter, dumper_pid, slow;
  bool hit = false;
  long delay = 1;

  cr_assert_eq(arbor_sup_start(rt, &outer, &root, NULL), 0);
  cr_assert_eq(arbor_sup_get_childspec(root, "inner", &info), 0);
  atomic_store(&dump_root, root);
  args[0] = info.pid;
  for (int round = 0; round < 16 && !hit; round++, delay *= 4) {
    int64_t dropped;
    int reason = -1;

    /* The inner supervisor waits for a slow child's init. */
    args[1] = (arbor_pid)round;
    cr_assert_eq(arbor_spawn(rt, &starter, start_slow, args,
                             &(arbor_spawn_opts){.flags =
                                                     ARBOR_SPAWN_JOINABLE}),
                 0);
    while (arbor_whereis(rt, "slow", &slow) != 0)
      sched_yield();
    dropped = arbor_rt_dropped(rt);
    /* The dumper asks the root, then the busy inner supervisor. */
    atomic_store(&dumping, 0);
    cr_assert_eq(arbor_spawn(rt, &dumper_pid, dumper, NULL,
                             &(arbor_spawn_opts){.flags =
                                                     ARBOR_SPAWN_JOINABLE}),
                 0);
    while (!atomic_load(&dumping))
      sched_yield();
    for (long i = 0; i < delay; i++)
      sched_yield();
    cr_assert_eq(arbor_kill(dumper_pid, 9), 0);
    cr_assert_eq(arbor_wait(rt, dumper_pid, -1, &reason), 0);
    cr_expect_eq(reason, 9); /* it never finished the dump */
    /* Let the slow child finish; the inner supervisor then answers what
     * it was asked, in order, before our own question. */
    cr_assert_eq(arbor_send(slow, 42, NULL, 0), 0);
    cr_assert_eq(arbor_wait(rt, starter, -1, &reason), 0);
    cr_assert_eq(reason, 0);
    cr_assert_eq(arbor_sup_count_children(args[0], &k), 0);
    cr_assert_eq(k.active, round + 1);
    cr_assert_eq(arbor_unregister(rt, "slow"), 0);
    hit = arbor_rt_dropped(rt) > dropped;
  }
  cr_assert(hit, "no kill landed while the dumper waited");
  destroy_all();
  cr_expect_eq(leaks_now(), 0);
}

/* arbor_hibernate: its behaviour inside a process is tested in
 * test_hibernate.c; here, the call that has no process to hibernate. */
Test(api, hibernate_outside_a_process_is_enotproc)
{
  cr_expect_eq(arbor_hibernate(), ARBOR_ENOTPROC);
}
