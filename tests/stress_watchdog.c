/* stress_watchdog.c -- a plain program (no Criterion, so ThreadSanitizer can
 * run it) that races the watchdog's LIFO-slot handshake (sched/watchdog.c).
 *
 * Part 1, white-box: one thread plays a worker's owner, making tasks
 * runnable into its LIFO slot and popping them from slot, ring and
 * injection queue as fast as it can, while a second thread plays the
 * watchdog and takes the slot again and again.  Every task carries a token
 * (queued or held), so a task taken twice, or lost, is caught.
 *
 * Part 2, end to end: a runtime with a 1 ms threshold, where spinners stay
 * a few milliseconds without a runtime call and then spawn a child into
 * their LIFO slot, while pairs of processes ping-pong through the LIFO slot
 * and handoffs: the watchdog keeps closing slots under real traffic.  Every
 * child must run once and every round trip must complete.
 *
 * Exits non-zero on any failure; prints what it did. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/rt.h"
#include "sched/worker.h"
#include "tests/sched_hooks_stub.h"

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, "stress_watchdog: " __VA_ARGS__);                          \
    fputc('\n', stderr);                                                       \
    exit(1);                                                                   \
  } while (0)

/* ---- part 1: the handshake alone ---------------------------------------- */

#define NTASKS 64
#define TAKES 5000 /* each costs two membarrier() calls */


static struct arbor__sched s;
static struct arbor__task tasks[NTASKS];
static atomic_int queued[NTASKS]; /* 1 while in a queue or the slot */
static atomic_int watchdog_done;
static long takes, taken, closed_seen, owner_ops;

static void got(struct arbor__task *t)
{
  long i = t - tasks;

  if (i < 0 || i >= NTASKS)
    FAIL("a task that is not ours came out of a queue");
  if (atomic_exchange(&queued[i], 0) != 1)
    FAIL("task %ld came out of the queues twice", i);
}

/* worker.c's lifo_pop(): the scheduler loop's access to the slot. */
static struct arbor__task *lifo_pop(struct arbor__worker *w)
{
  struct arbor__task *t;

  if (!arbor__lifo_enter(w)) {
    closed_seen++;
    if (!arbor__lifo_reopen(w) || !arbor__lifo_enter(w))
      return NULL;
  }
  t = w->lifo;
  w->lifo = NULL;
  arbor__lifo_leave(w);
  return t;
}

static struct arbor__task *pop_any(struct arbor__worker *w, unsigned r)
{
  struct arbor__task *t = NULL;

  if (r & 1)
    t = lifo_pop(w);
  if (t == NULL)
    t = arbor__runq_pop_sp(w);
  if (t == NULL)
    t = arbor__inject_pop_one(w);
  if (t == NULL && !(r & 1))
    t = lifo_pop(w);
  return t;
}

static void *owner(void *arg)
{
  struct arbor__worker *w = arg;
  struct arbor__task *held[NTASKS];
  unsigned nheld = 0, rng = 12345;

  arbor__tls_worker = w;
  for (unsigned i = 0; i < NTASKS; i++)
    held[nheld++] = &tasks[i];
  while (!atomic_load_explicit(&watchdog_done, memory_order_relaxed)) {
    owner_ops++;
    rng = rng * 1103515245u + 12345u;
    if (((rng >> 16) & 3) < 2 && nheld > 0) {
      struct arbor__task *t = held[--nheld];

      atomic_store(&queued[t - tasks], 1);
      arbor__sched_submit(&s, t); /* into the slot, or the ring if closed */
    } else {
      struct arbor__task *t = pop_any(w, rng >> 20);

      if (t != NULL) {
        got(t);
        held[nheld++] = t;
      }
    }
  }
  /* Drain everything; nothing may be missing. */
  for (int idle = 0; nheld < NTASKS && idle < 1000000; idle++) {
    struct arbor__task *t = pop_any(w, 1);

    if (t != NULL) {
      got(t);
      held[nheld++] = t;
      idle = 0;
    }
  }
  if (nheld != NTASKS)
    FAIL("%u tasks of %d were lost", NTASKS - nheld, NTASKS);
  arbor__tls_worker = NULL;
  return NULL;
}

static void *watchdog(void *arg)
{
  struct arbor__worker *w = arg;

  while (takes < TAKES) {
    if (atomic_load_explicit(&w->lifo_fenced, memory_order_relaxed) == 0) {
      takes++;
      if (arbor__watchdog_take_lifo(&s, w) != NULL)
        taken++;
    } else {
      sched_yield();
    }
  }
  atomic_store(&watchdog_done, 1);
  return NULL;
}

static void part1(void)
{
  struct arbor__sched_opts o = {.workers = 2, .stack_cache = 4, .seed = 1};
  pthread_t to, tw;

  if (!arbor__watchdog_membarrier()) {
    printf("stress_watchdog: no membarrier(), handshake part skipped\n");
    return;
  }
  if (arbor__sched_init(&s, &o, &dummy_hooks) != 0)
    FAIL("sched init");
  for (unsigned i = 0; i < NTASKS; i++)
    arbor__task_init(&tasks[i], 0, ARBOR__SLOT_NONE);
  pthread_create(&to, NULL, owner, s.workers[0]);
  pthread_create(&tw, NULL, watchdog, s.workers[0]);
  pthread_join(tw, NULL);
  pthread_join(to, NULL);
  if (taken == 0 || closed_seen == 0)
    FAIL("the race did not happen (takes %ld, taken %ld, closed %ld)", takes,
         taken, closed_seen);
  printf("stress_watchdog: handshake: %ld owner operations, %ld takes, %ld "
         "tasks taken, slot found closed %ld times, nothing lost or "
         "duplicated\n",
         owner_ops, takes, taken, closed_seen);
  fflush(stdout);
  arbor__sched_fini(&s);
}

/* ---- part 2: a runtime under a 1 ms watchdog ------------------------------- */

#define SPINNERS 2
#define SPINS 40
#define PAIRS 4
#define TRIPS 20000

static atomic_long children_ran, trips_done, stuck_events;

static void count_stuck(const arbor_event *ev, void *ud)
{
  (void)ud;
  if (ev->kind == ARBOR_EV_PROC_STUCK)
    atomic_fetch_add(&stuck_events, 1);
}

static int child(void *arg)
{
  (void)arg;
  atomic_fetch_add(&children_ran, 1);
  return 0;
}

static int spinner(void *arg)
{
  (void)arg;
  for (int i = 0; i < SPINS; i++) {
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do /* no runtime call for 3 ms */
      clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
           3000000L);
    if (arbor_spawn(NULL, NULL, child, NULL, NULL) != 0)
      FAIL("spawn");
    /* A switch: the next spin is a new episode, and a new take. */
    if (arbor_yield() != 0)
      FAIL("yield");
  }
  return 0;
}

static int pong(void *arg)
{
  arbor_msg m;

  (void)arg;
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      FAIL("pong recv");
    if (m.tag == 2)
      return 0;
    if (arbor_send(m.from, 1, NULL, 0) != 0)
      FAIL("pong send");
  }
}

static int ping(void *arg)
{
  arbor_pid peer;
  arbor_msg m;

  (void)arg;
  if (arbor_spawn(NULL, &peer, pong, NULL, NULL) != 0)
    FAIL("spawn pong");
  for (int i = 0; i < TRIPS; i++) {
    if (arbor_send(peer, 1, NULL, 0) != 0 || arbor_recv(&m, -1) != 0)
      FAIL("ping");
    atomic_fetch_add(&trips_done, 1);
  }
  return arbor_send(peer, 2, NULL, 0);
}

static void part2(void)
{
  arbor_rt *rt;
  arbor_pid pids[SPINNERS + PAIRS];
  int n = 0;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2, .watchdog_ms = 1}) !=
      0)
    FAIL("rt create");
  if (arbor_rt_set_event_sink(rt, count_stuck, NULL, ARBOR_LEVEL_DEBUG) != 0)
    FAIL("sink");
  for (int i = 0; i < PAIRS; i++)
    if (arbor_spawn(rt, &pids[n++], ping, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
      FAIL("spawn ping");
  for (int i = 0; i < SPINNERS; i++)
    if (arbor_spawn(rt, &pids[n++], spinner, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
      FAIL("spawn spinner");
  for (int i = 0; i < n; i++) {
    int reason = -1;

    if (arbor_wait(rt, pids[i], -1, &reason) != 0 || reason != 0)
      FAIL("process %d ended with %d", i, reason);
  }
  /* The last children may still be queued (shutdown would discard them):
   * wait for them, for a minute at most. */
  for (int ms = 0; ms < 60000 && atomic_load(&children_ran) < SPINNERS * SPINS;
       ms++)
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  arbor_rt_destroy(rt);
  if (atomic_load(&children_ran) != SPINNERS * SPINS)
    FAIL("%ld children of %d ran", atomic_load(&children_ran),
         SPINNERS * SPINS);
  if (atomic_load(&trips_done) != (long)PAIRS * TRIPS)
    FAIL("%ld round trips of %d", atomic_load(&trips_done), PAIRS * TRIPS);
  if (atomic_load(&stuck_events) == 0)
    FAIL("no stuck process was reported");
  printf("stress_watchdog: runtime: %d children and %d round trips, %ld "
         "stuck reports\n",
         SPINNERS * SPINS, PAIRS * TRIPS, atomic_load(&stuck_events));
}

int main(void)
{
  part1();
  part2();
  return 0;
}
