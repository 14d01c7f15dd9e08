/* super_tree.c -- a three-level tree in which one failure escalates two
 * levels up, as the event log shows.
 *
 *   root (one_for_one, 5 restarts per 10 s)
 *   |-- logger                       a worker that never fails
 *   `-- branch (one_for_all, 1 restart per 5 s)
 *       |-- cache                    a worker
 *       `-- leaf (intensity 0: gives up at the first failure)
 *           |-- flaky                fails 1 s after it starts
 *           `-- steady
 *
 * flaky fails: leaf gives up, and branch restarts all its children (cache
 * and a new leaf).  A second later flaky fails again: leaf gives up again,
 * which is branch's second restart within 5 s, so branch gives up too and
 * root restarts it.  After 5 s the tree is listed and stopped.
 *
 * Usage: super_tree [--time-scale=X]  (1 is real time; the test runs 0.05).
 * Expected output (scenario seconds, roughly):
 *   [1.0] root.branch.leaf: flaky exited (user)
 *   [1.0] root.branch.leaf: intensity_exceeded
 *   [1.0] root.branch.leaf: steady exited (shutdown)
 *   [1.0] root.branch: leaf exited (shutdown)
 *   [1.0] root.branch: cache exited (shutdown)
 *   [1.0] root.branch: cache restarted
 *   [1.0] root.branch: leaf restarted
 *   [2.0] root.branch.leaf: flaky exited (user)
 *   ...
 *   [2.0] root.branch: intensity_exceeded
 *   ...
 *   [2.0] root: branch exited (shutdown)
 *   [2.0] root: branch restarted
 *   ...
 *   after 5 s: logger restarts 0, branch restarts 2
 */
#include <arbor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;
static struct timespec t0;

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ((double)(t.tv_sec - t0.tv_sec) +
          (double)(t.tv_nsec - t0.tv_nsec) / 1e9) / scale;
}

static void on_event(const arbor_event *ev, void *ud)
{
  (void)ud;
  if (ev->kind == ARBOR_EV_CHILD_EXITED)
    printf("[%3.1f] %s: %s exited (%s)\n", now_s(), ev->sup_name, ev->child_id,
           arbor_reason_name(ev->reason));
  else if (ev->kind == ARBOR_EV_CHILD_RESTARTED)
    printf("[%3.1f] %s: %s restarted\n", now_s(), ev->sup_name, ev->child_id);
  else if (ev->kind == ARBOR_EV_INTENSITY_EXCEEDED)
    printf("[%3.1f] %s: %s\n", now_s(), ev->sup_name, arbor_event_name(ev->kind));
}

static int worker(void *arg) /* runs until stopped, or fails after *arg ms */
{
  const int *fail_after = arg;
  arbor_msg m;

  if (arbor_init_ack(0) != 0)
    return 2;
  if (fail_after != NULL)
    return arbor_sleep((int64_t)(*fail_after * scale) + 1) == 0 ? 1 : 2;
  while (arbor_recv(&m, -1) == 0)
    ;
  return 2;
}

int main(int argc, char **argv)
{
  static const int one_second = 1000;
  arbor_child_spec leaf_kids[] = {
      {.id = "flaky", .start = worker, .arg = (void *)&one_second},
      {.id = "steady", .start = worker}};
  arbor_sup_spec leaf = {.name = "leaf", .intensity = 0, .period_ms = 1,
                         .children = leaf_kids, .nchildren = 2};
  arbor_child_spec branch_kids[] = {
      {.id = "cache", .start = worker},
      {.id = "leaf", .type = ARBOR_SUPERVISOR, .sup = &leaf}};
  arbor_sup_spec branch = {.name = "branch", .strategy = ARBOR_ONE_FOR_ALL,
                           .intensity = 1, .children = branch_kids,
                           .nchildren = 2};
  arbor_child_spec kids[] = {
      {.id = "logger", .start = worker},
      {.id = "branch", .type = ARBOR_SUPERVISOR, .sup = &branch}};
  arbor_sup_spec root = {.name = "root", .intensity = 5, .children = kids,
                         .nchildren = 2};
  arbor_child_info v[2];
  arbor_rt *rt;
  arbor_pid sup;
  int err, reason = 0;

  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--time-scale=", 13) == 0)
      scale = atof(argv[i] + 13);
  if (scale <= 0) {
    fprintf(stderr, "usage: %s [--time-scale=X]  (X > 0)\n", argv[0]);
    return EXIT_FAILURE;
  }
  branch.period_ms = (int)(5000 * scale) + 1;
  root.period_ms = (int)(10000 * scale) + 1;
  err = arbor_rt_create(&rt, NULL);
  if (err < 0) {
    fprintf(stderr, "arbor_rt_create: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  err = arbor_rt_set_event_sink(rt, on_event, NULL, ARBOR_LEVEL_DEBUG);
  if (err == 0)
    err = arbor_sup_start(rt, &root, &sup, NULL);
  if (err == 0) {
    int64_t wait_ms = (int64_t)(5000 * scale);
    struct timespec d = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};

    nanosleep(&d, NULL);
    err = arbor_sup_which_children(sup, v, 2);
  }
  if (err >= 0) {
    printf("after 5 s: %s restarts %llu, %s restarts %llu\n", v[0].id,
           (unsigned long long)v[0].restarts, v[1].id,
           (unsigned long long)v[1].restarts);
    err = arbor_sup_stop(sup, -1);
  }
  if (err == 0)
    err = arbor_wait(rt, sup, -1, &reason);
  arbor_rt_destroy(rt);
  if (err < 0) {
    fprintf(stderr, "super_tree: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  /* Self-check: the failure reached root, which restarted branch. */
  return v[0].restarts == 0 && v[1].restarts >= 1 &&
                 reason == ARBOR_NORMAL
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}
