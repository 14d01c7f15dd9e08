/* test_records.c -- the process table's free set (runtime/records.c):
 * records are reused lowest index first, and the index space does not grow
 * while the number of live processes does not. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "runtime/rt.h"

#define BURST 300

static arbor_rt *rt;

static void setup1(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
}

static void setup2(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

static int wait_one(void *arg)
{
  arbor_msg m;

  (void)arg;
  return arbor_recv(&m, -1);
}

struct bursts {
  uint32_t idx[2][BURST];
  int err;
};

/* Spawn BURST monitored children, end them all, collect their DOWNs. */
static int burst(uint32_t *idx)
{
  arbor_pid pid[BURST];
  arbor_msg m;
  int err;

  for (int i = 0; i < BURST; i++) {
    err = arbor_spawn(NULL, &pid[i], wait_one, NULL, NULL);
    if (err != 0)
      return err;
    idx[i] = arbor__pid_index(pid[i]);
  }
  for (int i = 0; i < BURST; i++) {
    uint64_t ref;

    err = arbor_monitor(pid[i], &ref);
    if (err == 0)
      err = arbor_send(pid[i], 1, NULL, 0);
    if (err != 0)
      return err;
  }
  for (int i = 0; i < BURST; i++) {
    err = arbor_recv_tag(&m, ARBOR_TAG_DOWN, 10000);
    if (err != 0)
      return err;
  }
  return 0;
}

static int two_bursts(void *arg)
{
  struct bursts *b = arg;

  b->err = burst(b->idx[0]);
  if (b->err == 0)
    b->err = burst(b->idx[1]);
  return 0;
}

static int by_value(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

  return (x > y) - (x < y);
}

Test(records, a_burst_of_spawns_reuses_the_lowest_free_records_in_order,
     .init = setup1, .fini = teardown, .timeout = 30)
{
  struct bursts *b = calloc(1, sizeof(*b));
  arbor_pid driver;
  uint32_t lo, hi, drops = 0;

  cr_assert_not_null(b);
  cr_assert_eq(arbor_spawn(rt, &driver, two_bursts, b,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, driver, -1, NULL), 0);
  cr_assert_eq(b->err, 0);
  /* The first burst's records were fresh, so ascending.  The second takes
   * what the first left in its claim (the rest of its last word), then the
   * freed records from the lowest: ascending with at most one drop, and
   * none above where the first burst's claim ended. */
  for (int i = 1; i < BURST; i++) {
    cr_expect_gt(b->idx[0][i], b->idx[0][i - 1]);
    drops += b->idx[1][i] < b->idx[1][i - 1];
    cr_expect_neq(b->idx[1][i], b->idx[1][i - 1]);
  }
  cr_expect_leq(drops, 1, "%u drops in the reused order", drops);
  lo = b->idx[0][0];
  hi = (b->idx[0][BURST - 1] | 63) + 1;
  qsort(b->idx[1], BURST, sizeof(uint32_t), by_value);
  cr_expect_geq(b->idx[1][0], lo);
  cr_expect_lt(b->idx[1][BURST - 1], hi);
  for (int i = 1; i < BURST; i++)
    cr_expect_neq(b->idx[1][i], b->idx[1][i - 1]);
  free(b);
}

/* ---- churn on two workers ---------------------------------------------- */

#define ROUNDS 40
#define WIDTH 1000

static int quick(void *arg)
{
  (void)arg;
  return 0;
}

static atomic_int churn_err;

/* Spawn WIDTH children that end at once, wait for all, ROUNDS times. */
static int churn(void *arg)
{
  arbor_msg m;
  uint64_t ref;
  int err;

  (void)arg;
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < WIDTH; i++) {
      err = arbor_spawn(NULL, NULL, quick, NULL,
                        &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                            .monitor_ref = &ref});
      if (err != 0)
        goto fail;
    }
    for (int i = 0; i < WIDTH; i++) {
      err = arbor_recv_tag(&m, ARBOR_TAG_DOWN, 10000);
      if (err != 0)
        goto fail;
    }
  }
  return 0;
fail:
  atomic_store(&churn_err, err);
  return 0;
}

Test(records, churn_on_two_workers_keeps_the_index_space_bounded,
     .init = setup2, .fini = teardown, .timeout = 60)
{
  arbor_pid driver;
  uint32_t used;

  cr_assert_eq(arbor_spawn(rt, &driver, churn, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, driver, -1, NULL), 0);
  cr_assert_eq(atomic_load(&churn_err), 0);
  /* At most WIDTH + 1 live at once.  A fresh word is taken only when no
   * published word has a free record, so everything below next_index is
   * live, claimed by a thread (64 per worker, 64 for the test thread), or
   * gathered but not yet published (64 per worker): the bound below, and
   * 40,000 processes would need 40 times more if records leaked. */
  used = atomic_load(&rt->next_index);
  cr_expect_leq(used, WIDTH + 1 + 64 * (2 * 2 + 1) + 64, "next_index %u",
                used);
}
