/* test_sched.c -- white-box tests of the scheduler: run queues, stealing,
 * block/wake races, the LIFO limit and injection-queue fairness. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"
#include "sched/worker.h"
#include "tests/sched_hooks_stub.h"

/* ---- run queues, on a scheduler whose threads never start ---------------- */


static struct arbor__sched s;

static void sched_setup(void)
{
  struct arbor__sched_opts o = {.workers = 2, .stack_cache = 4, .seed = 1};

  cr_assert_eq(arbor__sched_init(&s, &o, &dummy_hooks), 0);
}

static void sched_teardown(void)
{
  arbor__sched_fini(&s);
}

Test(sched, a_full_ring_spills_half_to_the_injection_queue_losing_nothing,
     .init = sched_setup, .fini = sched_teardown)
{
  enum { N = 1000 };
  static struct arbor__task tasks[N];
  static unsigned char seen[N];
  struct arbor__worker *w = s.workers[0];
  struct arbor__task *t;
  size_t n = 0;

  memset(seen, 0, sizeof(seen));
  for (int i = 0; i < N; i++) {
    arbor__task_init(&tasks[i], 0, ARBOR__SLOT_NONE);
    arbor__runq_push_sp(w, &tasks[i]);
  }
  cr_expect_leq(ck_ring_size(&w->ring), ARBOR__RING_SIZE - 1);
  cr_expect_gt(atomic_load(&s.inject.len), 0);
  cr_expect_eq(ck_ring_size(&w->ring) + atomic_load(&s.inject.len), N);
  while ((t = arbor__runq_pop_sp(w)) != NULL ||
         (t = arbor__inject_pop_batch(w)) != NULL) {
    seen[t - tasks]++;
    n++;
  }
  cr_expect_eq(n, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(seen[i], 1, "task %d seen %d times", i, seen[i]);
}

Test(sched, a_thief_takes_half_of_the_victims_ring, .init = sched_setup,
     .fini = sched_teardown)
{
  static struct arbor__task tasks[100];
  struct arbor__worker *v = s.workers[0], *thief = s.workers[1];
  struct arbor__task *t;

  for (int i = 0; i < 100; i++) {
    arbor__task_init(&tasks[i], 0, ARBOR__SLOT_NONE);
    arbor__runq_push_sp(v, &tasks[i]);
  }
  t = arbor__runq_steal_mc(thief, v);
  /* The oldest goes first: the thief runs it, and queues the next 49. */
  cr_expect_eq(t, &tasks[0]);
  cr_expect_eq(ck_ring_size(&thief->ring), 49);
  cr_expect_eq(ck_ring_size(&v->ring), 50);
  cr_expect_eq(arbor__runq_pop_sp(thief), &tasks[1]);
  cr_expect_eq(arbor__runq_pop_sp(v), &tasks[50]);
  /* Stealing from an empty ring finds nothing and takes nothing. */
  while (arbor__runq_pop_sp(v) != NULL)
    ;
  cr_expect_null(arbor__runq_steal_mc(thief, v));
  cr_expect_eq(ck_ring_size(&thief->ring), 48);
}

Test(sched, wake_of_a_waiting_task_queues_it_exactly_once,
     .init = sched_setup, .fini = sched_teardown)
{
  struct arbor__task t;

  arbor__task_init(&t, 0, ARBOR__SLOT_NONE);
  atomic_store(&t.state, ARBOR__TASK_WAITING);
  cr_expect(arbor__sched_wake(&s, &t));
  cr_expect_not(arbor__sched_wake(&s, &t)); /* already runnable */
  cr_expect_eq(atomic_load(&t.state) & ARBOR__TASK_STATE_MASK,
               ARBOR__TASK_RUNNABLE);
  /* From a foreign thread it went to the injection queue, once. */
  cr_expect_eq(atomic_load(&s.inject.len), 1);
  /* A running task is only marked: its next block will not park it. */
  atomic_store(&t.state, ARBOR__TASK_RUNNING);
  cr_expect_not(arbor__sched_wake(&s, &t));
  cr_expect_eq(atomic_load(&t.state),
               ARBOR__TASK_RUNNING | ARBOR__TASK_NOTIFIED);
  cr_expect_eq(atomic_load(&s.inject.len), 1);
}

/* ---- block and wake, with real workers ----------------------------------- */

static arbor_rt *rt;
static struct arbor__task *_Atomic task_a, *_Atomic task_b;
static atomic_long turn, rounds_done;

#define ROUNDS 100000

/* Wait until turn == mine, blocking between checks. */
static void await_turn(long mine)
{
  while (atomic_load(&turn) != mine)
    arbor__sched_block();
}

static int ping_thread_peer(void *arg)
{
  (void)arg;
  atomic_store(&task_a, arbor__sched_current());
  for (long i = 0; i < ROUNDS; i++) {
    await_turn(1);
    atomic_store(&turn, 0);
    atomic_fetch_add(&rounds_done, 1);
  }
  return 0;
}

Test(sched, block_and_wake_from_a_foreign_thread_never_lose_a_wakeup,
     .timeout = 120)
{
  arbor_pid pid;
  struct arbor__task *t;

  atomic_store(&turn, 0);
  atomic_store(&rounds_done, 0);
  atomic_store(&task_a, NULL);
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
  cr_assert_eq(arbor_spawn(rt, &pid, ping_thread_peer, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  while ((t = atomic_load(&task_a)) == NULL)
    sched_yield();
  for (long i = 0; i < ROUNDS; i++) {
    while (atomic_load(&turn) != 0)
      sched_yield();
    atomic_store(&turn, 1);
    arbor__sched_wake(&rt->sched, t);
  }
  cr_assert_eq(arbor_wait(rt, pid, -1, NULL), 0);
  cr_expect_eq(atomic_load(&rounds_done), ROUNDS);
  arbor_rt_destroy(rt);
}

static int pp_a(void *arg)
{
  (void)arg;
  while (atomic_load(&task_b) == NULL)
    arbor_yield();
  for (long i = 0; i < ROUNDS; i++) {
    await_turn(0);
    atomic_store(&turn, 1);
    arbor__sched_wake(&rt->sched, atomic_load(&task_b));
  }
  return 0;
}

static int pp_b(void *arg)
{
  (void)arg;
  atomic_store(&task_b, arbor__sched_current());
  for (long i = 0; i < ROUNDS; i++) {
    await_turn(1);
    atomic_fetch_add(&rounds_done, 1);
    atomic_store(&turn, 0);
    arbor__sched_wake(&rt->sched, atomic_load(&task_a));
  }
  return 0;
}

static int pp_a_start(void *arg)
{
  atomic_store(&task_a, arbor__sched_current());
  return pp_a(arg);
}

static void ping_pong(unsigned workers)
{
  arbor_pid a, b;

  atomic_store(&turn, 0);
  atomic_store(&rounds_done, 0);
  atomic_store(&task_a, NULL);
  atomic_store(&task_b, NULL);
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = workers}), 0);
  cr_assert_eq(arbor_spawn(rt, &a, pp_a_start, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, &b, pp_b, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, a, -1, NULL), 0);
  cr_assert_eq(arbor_wait(rt, b, -1, NULL), 0);
  cr_expect_eq(atomic_load(&rounds_done), ROUNDS);
  arbor_rt_destroy(rt);
}

Test(sched, two_processes_waking_each_other_on_two_workers_never_stall,
     .timeout = 120)
{
  ping_pong(2);
}

Test(sched, two_processes_waking_each_other_on_one_worker_never_stall,
     .timeout = 120)
{
  ping_pong(1);
}

/* ---- fairness ---------------------------------------------------------------- */

static atomic_long c_progress;
static atomic_int stop_c;

static int yielder(void *arg)
{
  (void)arg;
  while (!atomic_load(&stop_c)) {
    atomic_fetch_add(&c_progress, 1);
    arbor_yield();
  }
  return 0;
}

Test(sched, two_processes_in_the_lifo_slot_cannot_starve_a_third,
     .timeout = 120)
{
  arbor_pid a, b, c;

  atomic_store(&turn, 0);
  atomic_store(&rounds_done, 0);
  atomic_store(&task_a, NULL);
  atomic_store(&task_b, NULL);
  atomic_store(&c_progress, 0);
  atomic_store(&stop_c, 0);
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_assert_eq(arbor_spawn(rt, &c, yielder, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, &a, pp_a_start, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, &b, pp_b, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, a, -1, NULL), 0);
  cr_assert_eq(arbor_wait(rt, b, -1, NULL), 0);
  /* a and b hand each other the LIFO slot on every round; after three LIFO
   * runs in a row the ring gets its turn, so c ran about once every few
   * rounds. */
  cr_expect_gt(atomic_load(&c_progress), ROUNDS / 10, "c ran %ld times",
               atomic_load(&c_progress));
  atomic_store(&stop_c, 1);
  cr_assert_eq(arbor_wait(rt, c, -1, NULL), 0);
  arbor_rt_destroy(rt);
}

static atomic_int injected_ran;

static int injected(void *arg)
{
  (void)arg;
  atomic_store(&injected_ran, 1);
  return 0;
}

static int spin_yield_until_injected(void *arg)
{
  (void)arg;
  while (!atomic_load(&injected_ran))
    arbor_yield();
  return 0;
}

Test(sched, the_injection_queue_is_served_while_the_local_ring_is_busy,
     .timeout = 30)
{
  arbor_pid p1, p2;

  atomic_store(&injected_ran, 0);
  atomic_store(&c_progress, 0);
  atomic_store(&stop_c, 0);
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  /* Two processes keep the only worker's ring non-empty forever... */
  cr_assert_eq(arbor_spawn(rt, &p1, spin_yield_until_injected, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, &p2, spin_yield_until_injected, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_spawn(rt, NULL, yielder, NULL, NULL), 0);
  while (atomic_load(&c_progress) < 1000)
    sched_yield();
  /* ...so only the every-61-ticks check can find this one. */
  cr_assert_eq(arbor_spawn(rt, NULL, injected, NULL, NULL), 0);
  cr_assert_eq(arbor_wait(rt, p1, -1, NULL), 0);
  cr_assert_eq(arbor_wait(rt, p2, -1, NULL), 0);
  cr_expect_eq(atomic_load(&injected_ran), 1);
  atomic_store(&stop_c, 1);
  arbor_rt_destroy(rt);
}
