/* test_overflow.c -- stack overflows: a process that runs off its stack
 * into the guard page ends alone with ARBOR_ESTACKOVERFLOW (links,
 * monitors, waiters, supervisors and the event log see it; its defers do
 * not run; its stack is unmapped), or the program aborts naming it
 * (ARBOR_OVERFLOW_ABORT, slab stacks, overflows that cannot be recovered
 * from); faults that are not overflows are never swallowed.
 *
 * Black box, through <arbor.h>, except one test that enters a runtime
 * critical section (sched/sched.h) to show that an overflow there aborts,
 * and one that looks at where a process's stack is (the stack arena).
 * Tests that must see the program abort and read what it printed run the
 * runtime in a forked child whose stderr is a pipe.  Waits are on
 * conditions, bounded; nothing here asserts timing. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched.h" /* arbor__crit_enter(), for one test */

#define TMO .timeout = 120.0
#define FRAME 512 /* bytes of locals per recursion level (< a page) */

static void nap(void)
{
  nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* Poll a condition for up to ~60 s. */
#define WAIT_UNTIL(cond)                                               \
  do {                                                                 \
    for (int wait_i_ = 0; !(cond); wait_i_++) {                        \
      cr_assert_lt(wait_i_, 60000, "timed out waiting for %s", #cond); \
      nap();                                                           \
    }                                                                  \
  } while (0)

/* ---- ways to run off the stack ---- */

/* Never reached; it only keeps the recursion from being provably endless. */
static volatile unsigned depth_limit = UINT32_MAX;

/* Each level touches both ends of a FRAME-byte buffer, so consecutive
 * touches are less than a page apart and the first one past the stack lands
 * in the guard page -- also under ASan, whose redzones grow the frame a
 * little but keep the locals on the real stack. */
__attribute__((noinline)) static unsigned deep(unsigned n)
{
  volatile char buf[FRAME];

  buf[0] = (char)n;
  buf[FRAME - 1] = (char)(n >> 8);
  if (n >= depth_limit)
    return buf[0];
  return deep(n + 1) + (unsigned)buf[FRAME - 1];
}

/* Recurse until the stack has grown `bytes` below `top`, then make a
 * runtime call (a switch away).  Measured on frame addresses, which stay on
 * the real stack even where ASan moves locals to its fake stacks.  Every
 * byte of each buffer is written, so the canary at the bottom of a slab
 * stack is dirtied whether or not the back end knows the saved stack
 * pointer (ucontext does not). */
__attribute__((noinline)) static unsigned
deep_then_yield(unsigned n, uintptr_t top, size_t bytes)
{
  volatile char buf[FRAME];

  for (size_t i = 0; i < FRAME; i++)
    buf[i] = (char)(n | 1);
  if (top - (uintptr_t)__builtin_frame_address(0) >= bytes) {
    (void)arbor_yield();
    return buf[0];
  }
  return deep_then_yield(n + 1, top, bytes) + (unsigned)buf[FRAME - 1];
}

/* A tiny frame around a call into the C library that uses far more stack
 * than the frame (strtod's multi-precision buffers): the first touch past
 * the stack is then always inside the C library.  (strtod is not one of
 * ASan's interceptors, so no frame of ASan's sits in between.) */
static const char *volatile big_number = "1.7976931348623157e308";

__attribute__((noinline)) static double deep_libc(unsigned n)
{
  double d = strtod(big_number, NULL);

  if (n >= depth_limit)
    return d;
  return deep_libc(n + 1) + d;
}

static int overflow_fn(void *arg)
{
  (void)arg;
  return (int)deep(0);
}

/* ---- the forked child: run a body, collect its stderr and its fate ---- */

struct fate {
  int status;
  char err[8192];
};

static void run_forked(void (*body)(void), struct fate *f)
{
  int fd[2];
  size_t n = 0;
  pid_t pid;

  cr_assert_eq(pipe(fd), 0);
  fflush(NULL);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], STDERR_FILENO);
    close(fd[1]);
    body();
    _exit(0);
  }
  close(fd[1]);
  for (;;) {
    ssize_t k = read(fd[0], f->err + n, sizeof(f->err) - 1 - n);

    if (k <= 0)
      break;
    n += (size_t)k;
  }
  f->err[n] = '\0';
  close(fd[0]);
  cr_assert_eq(waitpid(pid, &f->status, 0), pid);
}

/* The line the child printed before the overflow: "pid=0x..." */
static unsigned long long printed_pid(const struct fate *f)
{
  const char *p = strstr(f->err, "pid=");

  return p != NULL ? strtoull(p + 4, NULL, 16) : 0;
}

static void expect_abort_line(const struct fate *f, const char *name,
                              size_t stack)
{
  char want[256];

  cr_assert(WIFSIGNALED(f->status) && WTERMSIG(f->status) == SIGABRT,
            "expected death by SIGABRT, status %#x; stderr:\n%s", f->status,
            f->err);
  cr_assert_neq(printed_pid(f), 0, "no pid printed; stderr:\n%s", f->err);
  snprintf(want, sizeof(want),
           "arbor: stack overflow in process %#llx (%s), stack size %zu "
           "bytes: aborting\n",
           printed_pid(f), name, stack);
  cr_assert_not_null(strstr(f->err, want), "missing \"%s\" in:\n%s", want,
                     f->err);
}

/* What after_go() runs (set in the forked child before the spawn). */
static int (*go_fn)(void *);

/* A process that waits for a go, then runs go_fn. */
static int after_go(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, -1) != 0)
    return 1;
  return go_fn(NULL);
}

/* In the forked child: spawn `fn` (after a go) as "deep" with `stack`
 * bytes, print its pid, let it run and wait for the end.  Exits 3 if the
 * program survives. */
static void child_go(arbor_rt *rt, int (*fn)(void *), size_t stack)
{
  arbor_pid pid;

  go_fn = fn;
  if (arbor_spawn(rt, &pid, after_go, NULL,
                  &(arbor_spawn_opts){.name = "deep",
                                      .stack_size = stack,
                                      .flags = ARBOR_SPAWN_JOINABLE}) != 0)
    _exit(2);
  dprintf(STDERR_FILENO, "pid=%#llx\n", (unsigned long long)pid);
  if (arbor_send(pid, 1, NULL, 0) != 0)
    _exit(2);
  if (arbor_wait(rt, pid, -1, NULL) != 0)
    _exit(4);
  _exit(3);
}

static void child_run(const arbor_rt_opts *o, int (*fn)(void *), size_t stack)
{
  arbor_rt *rt;

  if (arbor_rt_create(&rt, o) != 0)
    _exit(2);
  child_go(rt, fn, stack);
}

/* ---- the process ends alone ---- */

static int returns_seven(void *arg)
{
  (void)arg;
  return 7;
}

Test(overflow, the_process_ends_with_estackoverflow_and_the_worker_goes_on, TMO)
{
  arbor_rt *rt;
  arbor_pid a, b, c;
  int reason = 0;

  /* One worker: whatever runs after the overflow runs on the same thread. */
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_spawn(rt, &a, overflow_fn, NULL,
                           &(arbor_spawn_opts){.name = "deep",
                                               .flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, a, -1, &reason), 0);
  cr_expect_eq(reason, ARBOR_ESTACKOVERFLOW, "reason %d (%s)", reason,
               arbor_reason_name(reason));
  cr_expect_eq(arbor_alive(rt, a), 0);

  /* The worker schedules again, and a zombie keeps the reason. */
  cr_assert_eq(arbor_spawn(rt, &b, overflow_fn, NULL,
                           &(arbor_spawn_opts){.stack_size = 16 * 1024,
                                               .flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, &c, returns_seven, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, c, -1, &reason), 0);
  cr_expect_eq(reason, 7);
  WAIT_UNTIL(arbor_alive(rt, b) == 0);
  cr_assert_eq(arbor_wait(rt, b, 0, &reason), 0);
  cr_expect_eq(reason, ARBOR_ESTACKOVERFLOW);
  WAIT_UNTIL(arbor_rt_live(rt) == 0);
  arbor_rt_destroy(rt);
}

/* ---- on an arena stack (white box: sched/) ---- */

/* What the last process that called note_stack() saw: its slot, and
 * whether its stack was its slot's arena stack. */
static _Atomic uint32_t seen_slot = ARBOR__SLOT_NONE;
static _Atomic int seen_arena = -1;
static struct arbor__stack_pool *_Atomic seen_pool;

static void note_stack(void)
{
  const struct arbor__task *t = arbor__sched_current();
  struct arbor__stack_pool *pool = &arbor__sched_self()->stacks;
  const void *top = (const char *)t->stack.lo + t->stack.size;

  atomic_store(&seen_pool, pool);
  atomic_store(&seen_slot, t->slot);
  atomic_store(&seen_arena, arbor__stack_slot_top(pool, t->slot) == top);
}

static uint64_t arena_active(void)
{
  struct arbor__stack_pool *pool = atomic_load(&seen_pool);
  uint64_t n;

  pthread_mutex_lock(&pool->lock);
  n = pool->arena_active;
  pthread_mutex_unlock(&pool->lock);
  return n;
}

static int note_then_overflow(void *arg)
{
  note_stack();
  return overflow_fn(arg);
}

static int note_then_return(void *arg)
{
  (void)arg;
  note_stack();
  return 0;
}

Test(overflow, an_overflow_on_an_arena_stack_ends_the_process_and_its_slot, TMO)
{
  arbor_rt *rt;
  arbor_pid a;
  uint32_t slot;
  int reason = 0;

  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_spawn(rt, &a, note_then_overflow, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, a, -1, &reason), 0);
  cr_expect_eq(reason, ARBOR_ESTACKOVERFLOW, "reason %d (%s)", reason,
               arbor_reason_name(reason));
  cr_expect_eq(atomic_load(&seen_arena), 1, "a default stack is the slot's");
  slot = atomic_load(&seen_slot);
  /* The crash path broke the slot before the waiters were told. */
  cr_expect_eq(arena_active(), 0, "the slot is broken");

  /* Other processes run and overflow as before; one that gets the broken
   * slot (when its record is reused) has a stack from the pool. */
  for (int i = 0; i < 8; i++) {
    cr_assert_eq(
        arbor_spawn(rt, &a, i % 2 ? note_then_overflow : note_then_return, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
        0);
    cr_assert_eq(arbor_wait(rt, a, -1, &reason), 0);
    cr_expect_eq(reason, i % 2 ? ARBOR_ESTACKOVERFLOW : 0, "process %d", i);
    cr_expect_eq(atomic_load(&seen_arena), atomic_load(&seen_slot) != slot,
                 "process %d, slot %u", i, atomic_load(&seen_slot));
  }
  WAIT_UNTIL(arbor_rt_live(rt) == 0);
  arbor_rt_destroy(rt);
}

Test(overflow, the_reason_has_a_code_and_a_name)
{
  cr_expect_eq(ARBOR_ESTACKOVERFLOW, -4006);
  cr_expect_str_eq(arbor_strerror(ARBOR_ESTACKOVERFLOW), "stack overflow");
  cr_expect_str_eq(arbor_err_name(ARBOR_ESTACKOVERFLOW),
                   "ARBOR_ESTACKOVERFLOW");
  cr_expect_str_eq(arbor_reason_name(ARBOR_ESTACKOVERFLOW), "stack_overflow");
}

Test(overflow, an_unknown_overflow_action_is_rejected)
{
  arbor_rt *rt = NULL;

  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.on_stack_overflow = 2}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.on_stack_overflow = -1}),
               ARBOR_EINVAL);
  cr_expect_null(rt);
}

/* ---- links, monitors, names, defers ---- */

static atomic_int defers_run;

static void count_defer(void *arg)
{
  (void)arg;
  atomic_fetch_add(&defers_run, 1);
}

/* Registers a name and two defers, then overflows (or returns). */
static int named_deferring(void *arg)
{
  if (arbor_register("deep", arbor_self()) != 0 ||
      arbor_defer(count_defer, NULL) != 0 ||
      arbor_defer(count_defer, NULL) != 0)
    return 1;
  if (arg != NULL)
    return 0;
  return (int)deep(0);
}

struct watch {
  atomic_int done;
  arbor_pid child;
  int down, exit; /* messages seen */
  int down_reason, exit_reason;
  arbor_pid down_from, exit_from;
  int down_ref_ok, extra;
  int whereis; /* arbor_whereis("deep") after the exit */
};

/* Traps exits, spawns the overflowing child linked and monitored, and
 * records what arrives. */
static int watcher(void *arg)
{
  struct watch *w = arg;
  uint64_t ref = 0;
  arbor_pid pid, found;
  arbor_msg m;

  arbor_trap_exit(1);
  if (arbor_spawn(
          NULL, &pid, named_deferring, NULL,
          &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK | ARBOR_SPAWN_MONITOR,
                              .monitor_ref = &ref}) != 0)
    return 1;
  w->child = pid;
  while (w->down + w->exit < 2 && arbor_recv(&m, 30000) == 0) {
    if (m.tag == ARBOR_TAG_DOWN) {
      w->down++;
      w->down_reason = m.reason;
      w->down_from = m.from;
      w->down_ref_ok = m.ref == ref;
    } else if (m.tag == ARBOR_TAG_EXIT) {
      w->exit++;
      w->exit_reason = m.reason;
      w->exit_from = m.from;
    }
  }
  /* Nothing more comes (this cannot fail falsely: it only looks). */
  while (arbor_recv(&m, 20) == 0)
    w->extra++;
  w->whereis = arbor_whereis(NULL, "deep", &found);
  atomic_store(&w->done, 1);
  return 0;
}

Test(overflow, links_and_monitors_see_estackoverflow_once_and_defers_do_not_run,
     TMO)
{
  static struct watch w;
  arbor_rt *rt;
  arbor_pid pid;
  int reason = 0;

  atomic_store(&defers_run, 0);
  cr_assert_eq(arbor_rt_create(&rt, NULL), 0);
  cr_assert_eq(arbor_spawn(rt, &pid, watcher, &w,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_assert_eq(reason, 0);
  cr_assert_eq(atomic_load(&w.done), 1);
  cr_expect_eq(w.down, 1);
  cr_expect_eq(w.down_reason, ARBOR_ESTACKOVERFLOW);
  cr_expect_eq(w.down_from, w.child);
  cr_expect(w.down_ref_ok);
  cr_expect_eq(w.exit, 1);
  cr_expect_eq(w.exit_reason, ARBOR_ESTACKOVERFLOW);
  cr_expect_eq(w.exit_from, w.child);
  cr_expect_eq(w.extra, 0);
  cr_expect_eq(w.whereis, ARBOR_ESRCH, "the registered name is gone: %d",
               w.whereis);
  cr_expect_eq(atomic_load(&defers_run), 0, "defers ran after an overflow");

  /* The same process without the overflow does run its two defers. */
  cr_assert_eq(arbor_spawn(rt, &pid, named_deferring, (void *)1,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  cr_expect_eq(atomic_load(&defers_run), 2);
  arbor_rt_destroy(rt);
}

/* ---- supervision ---- */

#define MAX_STARTS 1024
static atomic_int starts;
static _Atomic arbor_pid start_pids[MAX_STARTS];
static atomic_long progress;

static int deep_child(void *arg)
{
  int n = atomic_fetch_add(&starts, 1);

  (void)arg;
  if (n < MAX_STARTS)
    atomic_store(&start_pids[n], arbor_self());
  arbor_init_ack(0);
  return (int)deep(0);
}

/* Ticks until its supervisor stops it (the sleep then fails). */
static int progressing(void *arg)
{
  (void)arg;
  arbor_init_ack(0);
  while (arbor_sleep(1) == 0)
    atomic_fetch_add(&progress, 1);
  return 0;
}

#define EV_MAX 4096
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int kind, reason;
  arbor_pid child;
  char id[ARBOR_ID_MAX];
} ev_v[EV_MAX];
static int ev_n;
static char ev_logfmt[4096]; /* the logfmt line of the first overflow */

static void sink(const arbor_event *e, void *ud)
{
  (void)ud;
  pthread_mutex_lock(&ev_lock);
  if (ev_n < EV_MAX) {
    ev_v[ev_n].kind = e->kind;
    ev_v[ev_n].reason = e->reason;
    ev_v[ev_n].child = e->child;
    snprintf(ev_v[ev_n].id, sizeof(ev_v[0].id), "%s", e->child_id);
    ev_n++;
  }
  if (e->kind == ARBOR_EV_CHILD_EXITED && ev_logfmt[0] == '\0') {
    FILE *f = fmemopen(ev_logfmt, sizeof(ev_logfmt) - 1, "w");

    if (f != NULL) {
      arbor_event_sink_logfmt(e, f);
      fclose(f);
    }
  }
  pthread_mutex_unlock(&ev_lock);
}

static int ev_exits(const char *id, int reason)
{
  int k = 0;

  pthread_mutex_lock(&ev_lock);
  for (int i = 0; i < ev_n; i++)
    k += ev_v[i].kind == ARBOR_EV_CHILD_EXITED && strcmp(ev_v[i].id, id) == 0 &&
         ev_v[i].reason == reason;
  pthread_mutex_unlock(&ev_lock);
  return k;
}

static bool ev_names_exit_of(arbor_pid child, int reason)
{
  bool found = false;

  pthread_mutex_lock(&ev_lock);
  for (int i = 0; i < ev_n; i++)
    found |= ev_v[i].kind == ARBOR_EV_CHILD_EXITED && ev_v[i].child == child &&
             ev_v[i].reason == reason;
  pthread_mutex_unlock(&ev_lock);
  return found;
}

static const arbor_child_spec sup_children[] = {
    {.id = "ticker", .start = progressing, .restart = ARBOR_PERMANENT},
    {.id = "deep",
     .start = deep_child,
     .restart = ARBOR_PERMANENT,
     .stack_size = 16 * 1024},
};
static const arbor_sup_spec sup_spec = {
    .name = "top",
    .strategy = ARBOR_ONE_FOR_ONE,
    .intensity = 100000,
    .period_ms = 600000,
    .children = sup_children,
    .nchildren = 2,
};

static void reset_sup_state(void)
{
  atomic_store(&starts, 0);
  atomic_store(&progress, 0);
  pthread_mutex_lock(&ev_lock);
  ev_n = 0;
  ev_logfmt[0] = '\0';
  pthread_mutex_unlock(&ev_lock);
}

static uint64_t deep_restarts(arbor_pid sup)
{
  arbor_child_info info[2];

  cr_assert_eq(arbor_sup_which_children(sup, info, 2), 2);
  cr_assert_str_eq(info[1].id, "deep");
  return info[1].restarts;
}

Test(
    overflow,
    a_supervised_child_is_restarted_while_others_make_progress_and_the_log_names_the_reason,
    TMO)
{
  arbor_rt *rt;
  arbor_pid sup;
  long before;
  uint64_t restarts;

  reset_sup_state();
  /* One worker: the overflows, the restarts and the ticker share it. */
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, sink, NULL, ARBOR_LEVEL_DEBUG), 0);
  cr_assert_eq(arbor_sup_start(rt, &sup_spec, &sup, NULL), 0);

  WAIT_UNTIL(atomic_load(&starts) >= 2);
  before = atomic_load(&progress);
  /* The ticker keeps advancing across the overflows that follow. */
  WAIT_UNTIL(atomic_load(&starts) >= 6 && atomic_load(&progress) > before);
  WAIT_UNTIL(deep_restarts(sup) >= 5);
  restarts = deep_restarts(sup);
  cr_expect_geq((uint64_t)atomic_load(&starts), restarts + 1);

  /* The log names the reason, for this very child. */
  WAIT_UNTIL(ev_exits("deep", ARBOR_ESTACKOVERFLOW) >= 5);
  cr_expect(
      ev_names_exit_of(atomic_load(&start_pids[0]), ARBOR_ESTACKOVERFLOW));
  cr_expect_eq(ev_exits("ticker", ARBOR_ESTACKOVERFLOW), 0);
  pthread_mutex_lock(&ev_lock);
  cr_expect_not_null(strstr(ev_logfmt, "child=deep"), "%s", ev_logfmt);
  cr_expect_not_null(strstr(ev_logfmt, "reason=-4006 "), "%s", ev_logfmt);
  cr_expect_not_null(strstr(ev_logfmt, "reason_name=stack_overflow"), "%s",
                     ev_logfmt);
  pthread_mutex_unlock(&ev_lock);

  cr_expect_eq(arbor_sup_stop(sup, -1), 0);
  cr_expect_eq(arbor_wait(rt, sup, -1, NULL), 0);
  /* The exit path counts itself out just after it wakes the waiters. */
  WAIT_UNTIL(arbor_rt_live(rt) == 0);
  arbor_rt_destroy(rt);
}

static size_t count_maps(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  size_t n = 0;
  int c;

  cr_assert_not_null(f);
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

/* Mappings the allocator (or ASan's) may add meanwhile; an overflowed stack
 * left mapped would be two each, 400 for this test. */
#define MAPS_SLACK 32

Test(overflow, two_hundred_overflows_in_a_row_leave_no_stack_mapped, TMO)
{
  arbor_rt *rt;
  arbor_pid sup;
  size_t base, after;

  reset_sup_state();
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, sink, NULL, ARBOR_LEVEL_ERROR), 0);
  base = count_maps();
  cr_assert_eq(arbor_sup_start(rt, &sup_spec, &sup, NULL), 0);
  WAIT_UNTIL(atomic_load(&starts) >= 201);
  cr_expect_eq(arbor_sup_stop(sup, -1), 0);
  cr_expect_eq(arbor_wait(rt, sup, -1, NULL), 0);
  /* The exit path counts itself out just after it wakes the waiters. */
  WAIT_UNTIL(arbor_rt_live(rt) == 0);
  after = count_maps();
  cr_expect_leq(after, base + MAPS_SLACK, "maps: %zu before, %zu after", base,
                after);
  arbor_rt_destroy(rt);
}

/* ---- aborting ---- */

Test(overflow, the_abort_option_aborts, .signal = SIGABRT, TMO)
{
  arbor_rt *rt;
  arbor_pid pid;

  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.on_stack_overflow =
                                                         ARBOR_OVERFLOW_ABORT}),
               0);
  cr_assert_eq(arbor_spawn(rt, &pid, overflow_fn, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  if (arbor_wait(rt, pid, -1, NULL) != 0)
    _exit(4);
  cr_assert_fail("the program survived an overflow with ARBOR_OVERFLOW_ABORT");
}

static void abort_option_body(void)
{
  child_run(&(arbor_rt_opts){.on_stack_overflow = ARBOR_OVERFLOW_ABORT},
            overflow_fn, 32 * 1024);
}

Test(overflow, the_abort_option_prints_pid_name_and_stack_size, TMO)
{
  static struct fate f;

  run_forked(abort_option_body, &f);
  expect_abort_line(&f, "deep", 32 * 1024);
}

/* Slab mode: the filler takes the slab's first stack, so "deep", carved
 * right above it, overflows into memory that is mapped; the canary check at
 * its next switch catches it. */
static int filler(void *arg)
{
  arbor_msg m;

  (void)arg;
  return arbor_recv(&m, -1) == 0 ? 0 : 1;
}

static int slab_overflow(void *arg)
{
  (void)arg;
  /* 8 KiB past the end of the 64 KiB stack, well within the filler's. */
  return (int)deep_then_yield(0, (uintptr_t)__builtin_frame_address(0),
                              72 * 1024);
}

static void slab_body(void)
{
  arbor_rt *rt;
  arbor_pid pid;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1,
                                            .stack_mode = ARBOR_STACK_SLAB}) !=
      0)
    _exit(2);
  if (arbor_spawn(rt, &pid, filler, NULL, NULL) != 0)
    _exit(2);
  /* Let the filler take its stack first. */
  while (arbor_rt_live(rt) > 0) {
    arbor_worker_stats st;

    if (arbor_rt_stats(rt, &st, 1) == 1 && st.runs > 0)
      break;
    nap();
  }
  child_go(rt, slab_overflow, 0);
}

Test(overflow, a_slab_stack_overflow_aborts_with_the_same_line, TMO)
{
  static struct fate f;

  run_forked(slab_body, &f);
  expect_abort_line(&f, "deep", 64 * 1024);
}

/* Unrecoverable overflows abort even with ARBOR_OVERFLOW_EXIT. */
static int overflow_in_critical_section(void *arg)
{
  (void)arg;
  arbor__crit_enter();
  return (int)deep(0);
}

static void crit_body(void)
{
  child_run(NULL, overflow_in_critical_section, 32 * 1024);
}

Test(overflow, an_overflow_inside_a_runtime_critical_section_aborts, TMO)
{
  static struct fate f;

  run_forked(crit_body, &f);
  expect_abort_line(&f, "deep", 32 * 1024);
  cr_expect_not_null(strstr(f.err, "cannot be recovered from: it happened "
                                   "inside the runtime"),
                     "%s", f.err);
}

static int overflow_in_libc(void *arg)
{
  (void)arg;
  return (int)deep_libc(0);
}

static void libc_body(void)
{
  child_run(NULL, overflow_in_libc, 32 * 1024);
}

Test(overflow, an_overflow_inside_the_c_library_aborts, TMO)
{
  static struct fate f;

  run_forked(libc_body, &f);
  expect_abort_line(&f, "deep", 32 * 1024);
  cr_expect_not_null(strstr(f.err, "inside the C library"), "%s", f.err);
}

/* A supervisor's event sink runs on the supervisor's stack. */
static void deep_sink(const arbor_event *e, void *ud)
{
  (void)ud;
  if (e->kind == ARBOR_EV_CHILD_STARTED) {
    dprintf(STDERR_FILENO, "pid=%#llx\n", (unsigned long long)e->sup);
    (void)deep(0);
  }
}

static int acks(void *arg)
{
  arbor_msg m;

  (void)arg;
  arbor_init_ack(0);
  return arbor_recv(&m, -1) == 0 ? 0 : 1;
}

static void sup_body(void)
{
  static const arbor_child_spec kids[] = {{.id = "kid", .start = acks}};
  static const arbor_sup_spec spec = {
      .name = "sup", .children = kids, .nchildren = 1};
  arbor_rt *rt;
  arbor_pid sup;

  if (arbor_rt_create(&rt, NULL) != 0 ||
      arbor_rt_set_event_sink(rt, deep_sink, NULL, ARBOR_LEVEL_DEBUG) != 0)
    _exit(2);
  if (arbor_sup_start(rt, &spec, &sup, NULL) != 0)
    _exit(5);
  if (arbor_wait(rt, sup, -1, NULL) != 0)
    _exit(4);
  _exit(3);
}

Test(overflow, an_overflow_in_a_supervisor_aborts, TMO)
{
  static struct fate f;

  run_forked(sup_body, &f);
  expect_abort_line(&f, "sup", 64 * 1024);
  cr_expect_not_null(strstr(f.err, "in a supervisor"), "%s", f.err);
}

/* ---- faults that are not overflows ---- */

static int null_deref(void *arg)
{
  (void)arg;
  *(volatile int *)arg = 1;
  return 0;
}

Test(overflow, a_null_dereference_in_a_process_is_not_swallowed,
     .signal = SIGSEGV, TMO)
{
  arbor_rt *rt;
  arbor_pid pid;

  cr_assert_eq(arbor_rt_create(&rt, NULL), 0);
  cr_assert_eq(arbor_spawn(rt, &pid, null_deref, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  if (arbor_wait(rt, pid, -1, NULL) != 0)
    _exit(4);
  cr_assert_fail("the fault was swallowed");
}

static int raises_sigsegv(void *arg)
{
  (void)arg;
  raise(SIGSEGV);
  return 0;
}

Test(overflow, a_sigsegv_sent_to_a_process_is_not_swallowed, .signal = SIGSEGV,
     TMO)
{
  arbor_rt *rt;
  arbor_pid pid;

  cr_assert_eq(arbor_rt_create(&rt, NULL), 0);
  cr_assert_eq(arbor_spawn(rt, &pid, raises_sigsegv, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  if (arbor_wait(rt, pid, -1, NULL) != 0)
    _exit(4);
  cr_assert_fail("the signal was swallowed");
}

static void exit_42(int sig, siginfo_t *si, void *uc)
{
  (void)uc;
  _exit(sig == SIGSEGV && si->si_addr == (void *)16 ? 42 : 43);
}

Test(overflow, another_fault_reaches_the_handler_installed_before, TMO,
     .exit_code = 42)
{
  struct sigaction sa;
  arbor_rt *rt;
  arbor_pid pid;

  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = exit_42;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
  cr_assert_eq(arbor_rt_create(&rt, NULL), 0);
  cr_assert_eq(arbor_spawn(rt, &pid, null_deref, (void *)16,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  if (arbor_wait(rt, pid, -1, NULL) != 0)
    _exit(4);
  cr_assert_fail("the previous handler was not called");
}

static void old_handler(int sig)
{
  (void)sig;
}

static bool handler_is(int sig, void (*h)(int))
{
  struct sigaction cur;

  cr_assert_eq(sigaction(sig, NULL, &cur), 0);
  return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == h;
}

Test(overflow, the_previous_actions_come_back_with_the_last_runtime)
{
  struct sigaction sa;
  arbor_rt *a, *b;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = old_handler;
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
  cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
  cr_assert_eq(arbor_rt_create(&a, NULL), 0);
  cr_expect(!handler_is(SIGSEGV, old_handler));
  cr_expect(!handler_is(SIGBUS, old_handler));
  cr_assert_eq(arbor_rt_create(&b, NULL), 0);
  arbor_rt_destroy(a);
  cr_expect(!handler_is(SIGSEGV, old_handler), "restored too early");
  arbor_rt_destroy(b);
  cr_expect(handler_is(SIGSEGV, old_handler));
  cr_expect(handler_is(SIGBUS, old_handler));
  sa.sa_handler = SIG_DFL;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
}

/* ---- the reserve check at runtime calls ---- */

/* Recursion that makes a runtime call at every level: the call made with
 * less than the reserve left ends the process, before any byte past the
 * stack is touched. */
__attribute__((noinline)) static unsigned yield_every_level(unsigned n)
{
  volatile char buf[FRAME];

  buf[0] = (char)n;
  buf[FRAME - 1] = (char)(n >> 8);
  (void)arbor_yield();
  if (n >= depth_limit)
    return buf[0];
  return yield_every_level(n + 1) + (unsigned)buf[FRAME - 1];
}

static int yielding_deep(void *arg)
{
  (void)arg;
  return (int)yield_every_level(0);
}

/* In slab mode there is no guard page: without the reserve check this
 * recursion would run over the neighbouring stack and the canary check
 * would abort the program.  With it the process ends cleanly, at a runtime
 * call, and the next process on the same worker runs. */
Test(overflow, a_runtime_call_short_of_stack_ends_the_process_even_on_a_slab,
     TMO)
{
  for (int mode = ARBOR_STACK_GUARDED; mode <= ARBOR_STACK_SLAB; mode++) {
    arbor_rt *rt;
    arbor_pid a, c;
    int reason = 0;

    cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1,
                                                       .stack_mode = mode}),
                 0);
    cr_assert_eq(arbor_spawn(rt, &a, yielding_deep, NULL,
                             &(arbor_spawn_opts){.stack_size = 32 * 1024,
                                                 .flags = ARBOR_SPAWN_JOINABLE}),
                 0);
    cr_assert_eq(arbor_wait(rt, a, -1, &reason), 0);
    cr_expect_eq(reason, ARBOR_ESTACKOVERFLOW, "mode %d: reason %d (%s)", mode,
                 reason, arbor_reason_name(reason));
    cr_assert_eq(arbor_spawn(rt, &c, returns_seven, NULL,
                             &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
                 0);
    cr_assert_eq(arbor_wait(rt, c, -1, &reason), 0);
    cr_expect_eq(reason, 7);
    arbor_rt_destroy(rt);
  }
}
