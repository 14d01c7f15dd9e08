/* stress_sched.c -- a plain program (no Criterion, so ThreadSanitizer can
 * run it) that hammers the scheduler: spawn storms from foreign threads,
 * processes spawning processes, and two processes waking each other with
 * the internal block/wake primitive.  Exits non-zero on any lost, duplicated
 * or failed process. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/rt.h"

#define FOREIGN_THREADS 2
#define PER_THREAD 100000
#define FANOUT 50
#define ROUNDS 100000

static arbor_rt *rt;
static atomic_long ran, leaves;
static atomic_long turn;
static struct arbor__task *_Atomic ta, *_Atomic tb;

static int leaf(void *arg)
{
  (void)arg;
  atomic_fetch_add(&leaves, 1);
  return 0;
}

static int node(void *arg)
{
  (void)arg;
  atomic_fetch_add(&ran, 1);
  for (int i = 0; i < FANOUT; i++)
    if (arbor_spawn(NULL, NULL, leaf, NULL, NULL) != 0)
      abort();
  return 0;
}

static void *storm(void *arg)
{
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    if (arbor_spawn(rt, NULL, i % 100 == 0 ? node : leaf, NULL, NULL) != 0)
      abort();
    if (i % 1000 == 0)
      sched_yield();
  }
  return NULL;
}

static void await_turn(long mine)
{
  while (atomic_load(&turn) != mine)
    arbor__sched_block();
}

static int pinger(void *arg)
{
  long me = (long)(intptr_t)arg;
  struct arbor__task *_Atomic *peer = me == 0 ? &tb : &ta;

  atomic_store(me == 0 ? &ta : &tb, arbor__sched_current());
  while (atomic_load(peer) == NULL)
    arbor_yield();
  for (long i = 0; i < ROUNDS; i++) {
    await_turn(me);
    atomic_store(&turn, 1 - me);
    arbor__sched_wake(&rt->sched, atomic_load(peer));
  }
  return 0;
}

int main(void)
{
  pthread_t th[FOREIGN_THREADS];
  arbor_pid p0, p1;
  int r0 = -1, r1 = -1;
  long want_leaves;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}) != 0)
    return 2;
  if (arbor_spawn(rt, &p0, pinger, (void *)0,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0 ||
      arbor_spawn(rt, &p1, pinger, (void *)1,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
    return 2;
  for (int i = 0; i < FOREIGN_THREADS; i++)
    pthread_create(&th[i], NULL, storm, NULL);
  for (int i = 0; i < FOREIGN_THREADS; i++)
    pthread_join(th[i], NULL);
  if (arbor_wait(rt, p0, -1, &r0) != 0 || arbor_wait(rt, p1, -1, &r1) != 0 ||
      r0 != 0 || r1 != 0) {
    fprintf(stderr, "stress_sched: ping-pong failed\n");
    return 1;
  }
  /* Each node spawns FANOUT leaves; every other spawn is a leaf itself. */
  want_leaves = FOREIGN_THREADS * (PER_THREAD - PER_THREAD / 100) +
                FOREIGN_THREADS * (PER_THREAD / 100) * FANOUT;
  while (atomic_load(&leaves) < want_leaves)
    sched_yield();
  arbor_rt_destroy(rt);
  if (atomic_load(&leaves) != want_leaves ||
      atomic_load(&ran) != FOREIGN_THREADS * (PER_THREAD / 100)) {
    fprintf(stderr, "stress_sched: %ld leaves (want %ld), %ld nodes\n",
            atomic_load(&leaves), want_leaves, atomic_load(&ran));
    return 1;
  }
  printf("stress_sched: ok (%ld leaves, %d ping-pong rounds)\n", want_leaves,
         ROUNDS);
  return 0;
}
