/* spawn_many.c -- a million processes spawned from inside the runtime, each
 * run exactly once, spread over every worker.
 *
 * Expected output (timings and the split vary):
 *   1000000 processes ran in 0.123 s; per worker: 512345 487655
 */
#include <arbor.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 1000000

static atomic_long ran;

static int child(void *arg)
{
  (void)arg;
  atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
  return 0;
}

static int spawner(void *arg)
{
  (void)arg;
  for (long i = 0; i < N; i++) {
    int err = arbor_spawn(NULL, NULL, child, NULL, NULL);

    if (err < 0)
      return err;
  }
  /* Let the children run; the spawner ends when every one has. */
  while (atomic_load_explicit(&ran, memory_order_relaxed) < N)
    arbor_yield();
  return 0;
}

int main(void)
{
  arbor_worker_stats st[64];
  struct timespec t0, t1;
  arbor_rt *rt;
  arbor_pid pid;
  int err, reason = 0, n;

  err = arbor_rt_create(&rt, NULL);
  if (err < 0) {
    fprintf(stderr, "arbor_rt_create: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  err = arbor_spawn(rt, &pid, spawner, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err == 0)
    err = arbor_wait(rt, pid, -1, &reason);
  if (err < 0 || reason != 0) {
    fprintf(stderr, "spawner: %s\n", arbor_strerror(err < 0 ? err : reason));
    arbor_rt_destroy(rt);
    return EXIT_FAILURE;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  n = arbor_rt_stats(rt, st, 64);
  printf("%ld processes ran in %.3f s; per worker:", atomic_load(&ran),
         (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  for (int i = 0; i < n; i++)
    printf(" %llu", (unsigned long long)st[i].runs);
  printf("\n");
  arbor_rt_destroy(rt);
  return atomic_load(&ran) == N ? EXIT_SUCCESS : EXIT_FAILURE;
}
