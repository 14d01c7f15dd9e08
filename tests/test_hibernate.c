/* test_hibernate.c -- arbor_hibernate(): a process waits for a message with
 * its stack released, and wakes with its locals, and pointers to them,
 * intact.
 *
 * White-box: the tests read the scheduler's count of hibernated tasks
 * (arbor__sched_hibernated) and whether every worker sleeps, to know when the
 * processes they watch have really gone to sleep, and look at the stack of a
 * hibernated process (its bounds, mincore) to see that its pages are gone.
 * Every wait is on a condition; nothing asserts timing.
 */
#include "runtime/rt.h"

#include <criterion/criterion.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif

/* The ucontext switch does not expose the saved stack pointer, so there a
 * hibernating process just blocks (see arbor__sched_hibernate). */
#if defined(ARBOR_CTX_UCONTEXT)
#define HIBERNATES 0
#else
#define HIBERNATES 1
#endif

enum { TAG_WAKE = 1, TAG_PTR, TAG_AWAKE, TAG_DONE, TAG_NEXT, TAG_TOKEN };

static arbor_rt *rt;

static arbor_rt *make_rt(unsigned workers, int stack_mode)
{
  arbor_rt *r;

  cr_assert_eq(arbor_rt_create(&r, &(arbor_rt_opts){.workers = workers,
                                                    .stack_mode = stack_mode}),
               0);
  return r;
}

static void setup(void)
{
  rt = make_rt(2, ARBOR_STACK_AUTO);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

static arbor_pid spawn_j(arbor_rt *r, arbor_fn fn, void *arg)
{
  arbor_pid pid;

  cr_assert_eq(arbor_spawn(r, &pid, fn, arg,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  return pid;
}

static int join(arbor_rt *r, arbor_pid pid)
{
  int reason = -12345;

  cr_assert_eq(arbor_wait(r, pid, -1, &reason), 0);
  return reason;
}

static void nap(void)
{
  nanosleep(&(struct timespec){0, 200 * 1000}, NULL);
}

/* Wait until n tasks of r are hibernated and every worker sleeps: each
 * process of the test is then at rest where it waits. */
static void wait_asleep(arbor_rt *r, int64_t n)
{
  while (!arbor__sched_all_parked(&r->sched) ||
         (HIBERNATES && arbor__sched_hibernated(&r->sched) != n))
    nap();
}

static void wait_gone(arbor_rt *r)
{
  while (arbor_rt_live(r) > 0)
    nap();
}

/* Make the compiler keep *p in memory, where the test can find it. */
__attribute__((noinline)) static void escape(const void *p)
{
  __asm__ volatile("" : : "r"(p) : "memory");
}

static uint64_t pattern(uint64_t seed, uint64_t k)
{
  return (seed + k + 1) * 0x9E3779B97F4A7C15ULL;
}

/* ---- locals and pointers to them ----------------------------------------- */

#define MARKER 0x5EC12E7CAFEF00DULL

struct shape {
  int32_t a;
  double b;
  char name[24];
  uint64_t tail;
};

/* What a sleeper shows the test thread about its stack. */
struct probe {
  _Atomic(volatile uint64_t *) marker; /* a local of the sleeper */
  _Atomic int woken;                   /* hibernate has returned */
};

static int keeps_locals(void *arg)
{
  struct probe *pr = arg;
  int32_t i = 12345;
  int64_t j = -987654321;
  struct shape sh = {-7, 2.5, "hibernate", 0xFEEDFACEULL};
  uint64_t arr[48];
  volatile uint64_t marker = MARKER;
  int32_t *pi = &i;
  struct shape *psh = &sh;
  uint64_t *parr = &arr[17];
  arbor_msg m;

  for (uint64_t k = 0; k < 48; k++)
    arr[k] = pattern(3, k);
  escape(&i);
  escape(&j);
  escape(&sh);
  escape(arr);
  atomic_store(&pr->marker, &marker);
  if (arbor_hibernate() != 0)
    return 1;
  atomic_store(&pr->woken, 1);
  if (i != 12345 || j != -987654321 || marker != MARKER)
    return 2;
  if (sh.a != -7 || sh.b != 2.5 || strcmp(sh.name, "hibernate") != 0 ||
      sh.tail != 0xFEEDFACEULL)
    return 3;
  for (uint64_t k = 0; k < 48; k++)
    if (arr[k] != pattern(3, k))
      return 4;
  if (pi != &i || *pi != 12345 || psh != &sh || psh->tail != 0xFEEDFACEULL ||
      parr != &arr[17] || *parr != pattern(3, 17))
    return 5;
  /* Written after the wake-up, through the pointers: the stack is live. */
  *pi = 1;
  psh->a = 2;
  parr[1] = 3;
  if (i != 1 || sh.a != 2 || arr[18] != 3)
    return 6;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE)
    return 7;
  return 0;
}

/* Pages of [lo, lo + size) in memory. */
static size_t resident_pages(const void *lo, size_t size)
{
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = size / page, in = 0;
  unsigned char *vec = malloc(n);

  cr_assert_not_null(vec);
  cr_assert_eq(mincore((void *)lo, size, vec), 0);
  for (size_t k = 0; k < n; k++)
    in += vec[k] & 1;
  free(vec);
  return in;
}

static void locals_survive(int mode, uint32_t kind)
{
  arbor_rt *r = make_rt(2, mode);
  struct probe pr = {NULL, 0};
  arbor_pid pid = spawn_j(r, keeps_locals, &pr);
  struct arbor__proc *p;
  volatile uint64_t *marker;
  const char *lo;
  size_t size;

  wait_asleep(r, 1);
  cr_assert_eq(atomic_load(&pr.woken), 0);
  p = arbor__proc_peek(r, pid);
  cr_assert_not_null(p);
  cr_expect_eq(p->task.stack.kind, kind);
  lo = p->task.stack.lo;
  size = p->task.stack.size;
  marker = atomic_load(&pr.marker);
  cr_assert_not_null(marker);
  if (HIBERNATES) {
    cr_expect_not_null(p->task.hib);
    /* Every page of the stack is gone, and a read there finds zero (ASan's
     * fake stacks, if enabled, hold locals elsewhere). */
    cr_expect_eq(resident_pages(lo, size), 0);
    if ((const char *)marker >= lo && (const char *)marker < lo + size)
      cr_expect_eq(*marker, 0);
  }
  cr_assert_eq(arbor_send(pid, TAG_WAKE, NULL, 0), 0);
  cr_expect_eq(join(r, pid), 0);
  cr_expect_eq(atomic_load(&pr.woken), 1);
  cr_expect_eq(arbor__sched_hibernated(&r->sched), 0);
  arbor_rt_destroy(r);
}

Test(hibernate, locals_and_pointers_survive_on_a_guarded_stack, .timeout = 30)
{
  locals_survive(ARBOR_STACK_GUARDED, ARBOR__STACK_GUARDED);
}

Test(hibernate, locals_and_pointers_survive_on_a_slab_stack, .timeout = 30)
{
  locals_survive(ARBOR_STACK_SLAB, ARBOR__STACK_SLAB);
}

/* ---- a pointer into the stack, held by another process ------------------- */

struct pair {
  arbor_pid holder;
  arbor_rt *rt;
};

static int owner(void *arg)
{
  struct pair *pa = arg;
  uint64_t secret[8];
  uint64_t *ptr = secret;
  arbor_msg m;

  for (uint64_t k = 0; k < 8; k++)
    secret[k] = pattern(11, k);
  escape(secret);
  if (arbor_send(pa->holder, TAG_PTR, &ptr, sizeof(ptr)) != 0)
    return 1;
  if (arbor_hibernate() != 0)
    return 2;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE || m.from != pa->holder)
    return 3;
  /* Awake, and now waiting normally, stack in place, while the holder
   * reads through its pointer. */
  if (arbor_send(pa->holder, TAG_AWAKE, NULL, 0) != 0)
    return 4;
  if (arbor_recv(&m, -1) != 0 || m.tag != TAG_DONE)
    return 5;
  return 0;
}

static int holder(void *arg)
{
  struct pair *pa = arg;
  const uint64_t *ptr;
  arbor_msg m;

  if (arbor_recv(&m, -1) != 0 || m.tag != TAG_PTR || m.len != sizeof(ptr))
    return 1;
  memcpy(&ptr, m.data, sizeof(ptr));
  /* The owner hibernates right after its send: wait for it (there is
   * nobody else to hibernate here). */
  while (HIBERNATES && arbor__sched_hibernated(&pa->rt->sched) != 1)
    if (arbor_sleep(1) != 0)
      return 2;
  if (arbor_send(m.from, TAG_WAKE, NULL, 0) != 0)
    return 3;
  if (arbor_recv(&m, -1) != 0 || m.tag != TAG_AWAKE)
    return 4;
  for (uint64_t k = 0; k < 8; k++)
    if (ptr[k] != pattern(11, k))
      return 5;
  return arbor_send(m.from, TAG_DONE, NULL, 0) == 0 ? 0 : 6;
}

Test(hibernate, a_pointer_into_the_stack_held_by_another_process_stays_valid,
     .init = setup, .fini = teardown, .timeout = 30)
{
  struct pair pa = {0, rt};
  arbor_pid o;

  pa.holder = spawn_j(rt, holder, &pa);
  o = spawn_j(rt, owner, &pa);
  cr_expect_eq(join(rt, o), 0);
  cr_expect_eq(join(rt, pa.holder), 0);
}

/* ---- what wakes it ------------------------------------------------------- */

struct trap {
  _Atomic arbor_pid linked;
};

static int dies_on_message(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, -1) != 0)
    return 1;
  return 77;
}

static int traps_while_hibernated(void *arg)
{
  struct trap *tr = arg;
  uint64_t local[4] = {pattern(5, 0), pattern(5, 1), pattern(5, 2),
                       pattern(5, 3)};
  arbor_pid child;
  arbor_msg m;

  escape(local);
  if (arbor_trap_exit(1) != 0)
    return 1;
  if (arbor_spawn(NULL, &child, dies_on_message, NULL,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}) != 0)
    return 2;
  atomic_store(&tr->linked, child);
  if (arbor_hibernate() != 0)
    return 3;
  if (arbor_recv(&m, 0) != 0 || m.tag != ARBOR_TAG_EXIT || m.from != child ||
      m.reason != 77)
    return 4;
  for (uint64_t k = 0; k < 4; k++)
    if (local[k] != pattern(5, k))
      return 5;
  return 0;
}

Test(hibernate, a_trapped_exit_signal_wakes_it, .init = setup, .fini = teardown,
     .timeout = 30)
{
  struct trap tr = {0};
  arbor_pid pid = spawn_j(rt, traps_while_hibernated, &tr);

  /* The linked child waits in a plain receive: one task hibernated. */
  wait_asleep(rt, 1);
  cr_assert_neq(atomic_load(&tr.linked), 0);
  cr_assert_eq(arbor_send(atomic_load(&tr.linked), TAG_WAKE, NULL, 0), 0);
  cr_expect_eq(join(rt, pid), 0);
}

static int waits_for_a_timer(void *arg)
{
  uint64_t local[6];
  arbor_msg m;

  (void)arg;
  for (uint64_t k = 0; k < 6; k++)
    local[k] = pattern(8, k);
  escape(local);
  if (arbor_hibernate() != 0)
    return 1;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE || m.len != 5 ||
      memcmp(m.data, "timer", 5) != 0)
    return 2;
  for (uint64_t k = 0; k < 6; k++)
    if (local[k] != pattern(8, k))
      return 3;
  return 0;
}

Test(hibernate, a_timer_message_wakes_it, .init = setup, .fini = teardown,
     .timeout = 30)
{
  arbor_pid pid = spawn_j(rt, waits_for_a_timer, NULL);
  arbor_worker_stats st[2];
  uint64_t fired = 0;

  wait_asleep(rt, 1);
  cr_assert_eq(arbor_send_after(pid, TAG_WAKE, "timer", 5, 2, NULL), 0);
  cr_expect_eq(join(rt, pid), 0);
  cr_assert_eq(arbor_rt_stats(rt, st, 2), 2);
  for (int k = 0; k < 2; k++)
    fired += st[k].timers;
  cr_expect_eq(fired, 1);
}

/* ---- killed while hibernated --------------------------------------------- */

struct kill_case {
  _Atomic arbor_pid target;
  _Atomic int defer_saw; /* 1: the defer found the local intact */
  _Atomic int down_ok;
};

static void check_local(void *arg)
{
  const uint64_t *v = arg;
  /* Runs on the target's stack after the kill woke it: the stack must be
   * back by then. */
  struct kill_case *kc = (struct kill_case *)(uintptr_t)v[1];

  atomic_store(&kc->defer_saw, v[0] == MARKER ? 1 : 2);
}

static int hibernates_forever(void *arg)
{
  uint64_t local[2] = {MARKER, (uint64_t)(uintptr_t)arg};

  escape(local);
  if (arbor_defer(check_local, local) != 0)
    return 1;
  for (;;)
    if (arbor_hibernate() != 0)
      return 2;
}

static int watches(void *arg)
{
  struct kill_case *kc = arg;
  arbor_pid target;
  uint64_t ref;
  arbor_msg m;

  if (arbor_spawn(NULL, &target, hibernates_forever, kc,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                      .monitor_ref = &ref}) != 0)
    return 1;
  atomic_store(&kc->target, target);
  if (arbor_recv(&m, -1) != 0)
    return 2;
  if (m.tag != ARBOR_TAG_DOWN || m.from != target || m.ref != ref ||
      m.reason != 42)
    return 3;
  atomic_store(&kc->down_ok, 1);
  return 0;
}

Test(hibernate, a_kill_ends_it_at_once_and_its_monitor_sees_the_reason,
     .init = setup, .fini = teardown, .timeout = 30)
{
  struct kill_case kc = {0, 0, 0};
  arbor_pid w = spawn_j(rt, watches, &kc);

  wait_asleep(rt, 1);
  cr_assert_neq(atomic_load(&kc.target), 0);
  cr_assert_eq(arbor_kill(atomic_load(&kc.target), 42), 0);
  cr_expect_eq(join(rt, w), 0);
  cr_expect_eq(atomic_load(&kc.down_ok), 1);
  cr_expect_eq(atomic_load(&kc.defer_saw), 1);
  wait_gone(rt);
  cr_expect_eq(arbor__sched_hibernated(&rt->sched), 0);
}

Test(hibernate, shutdown_ends_hibernated_processes_and_frees_their_copies,
     .timeout = 60)
{
  enum { N = 200 };
  arbor_rt *r = make_rt(2, ARBOR_STACK_AUTO);
  struct kill_case kc[N];

  for (int k = 0; k < N; k++) {
    kc[k] = (struct kill_case){0, 0, 0};
    cr_assert_eq(arbor_spawn(r, NULL, hibernates_forever, &kc[k], NULL), 0);
  }
  wait_asleep(r, N);
  cr_assert_eq(arbor_rt_shutdown(r), 0);
  cr_expect_eq(arbor_rt_live(r), 0);
  /* Each was woken, put back and ended on its own stack. */
  cr_expect_eq(arbor__sched_hibernated(&r->sched), 0);
  for (int k = 0; k < N; k++)
    cr_expect_eq(atomic_load(&kc[k].defer_saw), 1, "process %d", k);
  arbor_rt_destroy(r); /* LeakSanitizer would see a copy not freed */
}

/* ---- a message already waiting ------------------------------------------- */

static int finds_a_message_waiting(void *arg)
{
  arbor_msg m;

  (void)arg;
  /* One worker and nobody to wake it: blocking here would hang. */
  if (arbor_send(arbor_self(), TAG_WAKE, "a", 1) != 0)
    return 1;
  if (arbor_hibernate() != 0 || arbor_hibernate() != 0)
    return 2;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE)
    return 3;
  /* One a selective receive passed over counts too. */
  if (arbor_send(arbor_self(), TAG_WAKE, "b", 1) != 0)
    return 4;
  if (arbor_recv_tag(&m, TAG_DONE, 0) != ARBOR_ETIMEDOUT)
    return 5;
  if (arbor_hibernate() != 0)
    return 6;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE ||
      memcmp(m.data, "b", 1) != 0)
    return 7;
  return 0;
}

Test(hibernate, returns_at_once_when_a_message_is_waiting, .timeout = 30)
{
  arbor_rt *r = make_rt(1, ARBOR_STACK_AUTO);
  arbor_pid pid = spawn_j(r, finds_a_message_waiting, NULL);

  cr_expect_eq(join(r, pid), 0);
  arbor_rt_destroy(r);
}

Test(hibernate, outside_a_process_is_refused)
{
  cr_expect_eq(arbor_hibernate(), ARBOR_ENOTPROC);
}

/* ---- many cycles, two workers -------------------------------------------- */

#define RING 64
#define TOKENS 4
#define HOPS 2500 /* per token: 10,000 hibernate/wake cycles in all */

struct ring {
  arbor_pid collector;
  _Atomic int64_t wakes;      /* hibernate returns, all members */
  _Atomic int64_t migrations; /* woke on another worker than it slept on */
};

struct member_arg {
  struct ring *ring;
  unsigned index;
};

static int member(void *arg)
{
  struct member_arg *ma = arg;
  struct ring *rg = ma->ring;
  uint64_t mine[16];
  uint64_t *pm = &mine[9];
  arbor_pid next = 0;
  arbor_msg m;

  for (uint64_t k = 0; k < 16; k++)
    mine[k] = pattern(ma->index, k);
  escape(mine);
  for (;;) {
    int before = arbor_worker();
    int64_t left;

    if (arbor_hibernate() != 0)
      return 1;
    atomic_fetch_add(&rg->wakes, 1);
    if (arbor_worker() != before)
      atomic_fetch_add(&rg->migrations, 1);
    for (uint64_t k = 0; k < 16; k++)
      if (mine[k] != pattern(ma->index, k))
        return 2;
    if (pm != &mine[9] || *pm != pattern(ma->index, 9))
      return 3;
    if (arbor_recv(&m, 0) != 0)
      return 4;
    switch (m.tag) {
    case TAG_NEXT:
      memcpy(&next, m.data, sizeof(next));
      break;
    case TAG_TOKEN:
      memcpy(&left, m.data, sizeof(left));
      if (left == 0) {
        if (arbor_send(rg->collector, TAG_DONE, NULL, 0) != 0)
          return 5;
        break;
      }
      left--;
      if (next == 0 || arbor_send(next, TAG_TOKEN, &left, sizeof(left)) != 0)
        return 6;
      break;
    case TAG_DONE:
      return 0;
    default:
      return 7;
    }
  }
}

static int collector(void *arg)
{
  arbor_msg m;

  (void)arg;
  for (int k = 0; k < TOKENS; k++)
    if (arbor_recv(&m, -1) != 0 || m.tag != TAG_DONE)
      return 1;
  return 0;
}

Test(hibernate, many_cycles_on_two_workers_keep_every_stack_intact,
     .init = setup, .fini = teardown, .timeout = 120)
{
  static struct member_arg ma[RING];
  struct ring rg = {0, 0, 0};
  arbor_pid pids[RING];
  int64_t hops = HOPS;

  rg.collector = spawn_j(rt, collector, NULL);
  for (unsigned k = 0; k < RING; k++) {
    ma[k] = (struct member_arg){&rg, k};
    pids[k] = spawn_j(rt, member, &ma[k]);
  }
  for (unsigned k = 0; k < RING; k++)
    cr_assert_eq(
        arbor_send(pids[k], TAG_NEXT, &pids[(k + 1) % RING], sizeof(arbor_pid)),
        0);
  for (unsigned k = 0; k < TOKENS; k++)
    cr_assert_eq(
        arbor_send(pids[k * (RING / TOKENS)], TAG_TOKEN, &hops, sizeof(hops)),
        0);
  cr_expect_eq(join(rt, rg.collector), 0);
  wait_asleep(rt, RING);
  for (unsigned k = 0; k < RING; k++)
    cr_assert_eq(arbor_send(pids[k], TAG_DONE, NULL, 0), 0);
  for (unsigned k = 0; k < RING; k++)
    cr_expect_eq(join(rt, pids[k]), 0, "member %u", k);
  /* RING setup wakes, (HOPS + 1) per token, RING stop wakes. */
  cr_expect_eq(atomic_load(&rg.wakes), 2 * RING + (int64_t)TOKENS * (HOPS + 1));
  cr_expect_eq(arbor__sched_hibernated(&rt->sched), 0);
  cr_log_info("%lld of %lld wake-ups on another worker",
              (long long)atomic_load(&rg.migrations),
              (long long)atomic_load(&rg.wakes));
}

/* ---- what it saves ------------------------------------------------------- */

static _Atomic int64_t sleepers_ok;

static int sleeper(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_hibernate() != 0)
    return 1;
  if (arbor_recv(&m, 0) != 0 || m.tag != TAG_WAKE)
    return 2;
  atomic_fetch_add(&sleepers_ok, 1);
  return 0;
}

/* VmRSS from /proc/self/status, in bytes, as the memory workload reads it. */
static int64_t vm_rss(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long long kib = -1;

  cr_assert_not_null(f);
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
      break;
  fclose(f);
  cr_assert_geq(kib, 0);
  return (int64_t)kib * 1024;
}

Test(hibernate, hibernated_processes_cost_less_than_1024_bytes_each,
     .timeout = 300)
{
#if defined(TEST_SANITIZED)
  /* Shadow memory and redzones make RSS meaningless: check the rest. */
  const int64_t n = 10000;
#else
  const int64_t n = 100000;
#endif
  arbor_rt *r = make_rt(2, ARBOR_STACK_AUTO);
  arbor_pid *pids = calloc((size_t)n, sizeof(*pids));
  int64_t before, after;
  double per;

  cr_assert_not_null(pids);
  memset(pids, 0xff, (size_t)n * sizeof(*pids)); /* in RSS before we start */
  wait_asleep(r, 0);
  malloc_trim(0);
  before = vm_rss();
  for (int64_t k = 0; k < n; k++)
    cr_assert_eq(arbor_spawn(r, &pids[k], sleeper, NULL, NULL), 0);
  wait_asleep(r, n);
  after = vm_rss();
  per = (double)(after - before) / (double)n;
  cr_log_info("%lld hibernated processes: %.1f bytes each", (long long)n, per);
#if !defined(TEST_SANITIZED)
  if (HIBERNATES)
    cr_expect_lt(per, 1024.0);
#endif
  for (int64_t k = 0; k < n; k++)
    cr_assert_eq(arbor_send(pids[k], TAG_WAKE, NULL, 0), 0);
  wait_gone(r);
  cr_expect_eq(atomic_load(&sleepers_ok), n);
  cr_expect_eq(arbor__sched_hibernated(&r->sched), 0);
  arbor_rt_destroy(r);
  free(pids);
}
