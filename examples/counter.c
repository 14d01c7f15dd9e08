/* counter.c -- ash_flare's counter example: a permanent, a crashing and a
 * temporary worker under one one_for_one supervisor.
 *
 * Each worker counts once a second.  "stable" (permanent) never fails;
 * "crashes" (permanent) fails at count 5 and is restarted, counting from 0
 * again; "temporary" fails at count 8 and is not restarted, so it leaves
 * the child list.  After 14 s the program lists the children and stops.
 *
 * Usage: counter [--time-scale=X]  (1 is real time; the test runs 0.05).
 * Expected output:
 *   crashes: count 5, crashing
 *   temporary: count 8, crashing
 *   crashes: count 5, crashing
 *   after 14 s:
 *     stable     running  restarts 0
 *     crashes    running  restarts 2
 *   stopped (normal)
 */
#include <arbor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;

struct counter {
  const char *name;
  int crash_at; /* 0: never */
};

static int count(void *arg)
{
  const struct counter *c = arg;

  if (arbor_init_ack(0) != 0)
    return 2;
  for (int n = 1;; n++) {
    if (arbor_sleep((int64_t)(1000 * scale) + 1) != 0)
      return 2;
    if (n == c->crash_at) {
      printf("%s: count %d, crashing\n", c->name, n);
      return 1; /* an application error */
    }
  }
}

static const char *state_name(int state)
{
  return state == ARBOR_CHILD_RUNNING      ? "running"
         : state == ARBOR_CHILD_RESTARTING ? "restarting"
                                           : "undefined";
}

int main(int argc, char **argv)
{
  static struct counter stable = {"stable", 0}, crashes = {"crashes", 5},
                        temporary = {"temporary", 8};
  arbor_child_spec kids[] = {
      {.id = "stable", .start = count, .arg = &stable},
      {.id = "crashes", .start = count, .arg = &crashes},
      {.id = "temporary", .start = count, .arg = &temporary,
       .restart = ARBOR_TEMPORARY}};
  arbor_sup_spec spec = {.name = "counters", .intensity = 3, .children = kids,
                         .nchildren = 3};
  arbor_child_info v[3];
  arbor_rt *rt;
  arbor_pid sup;
  int err, n = 0, reason = 0;

  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--time-scale=", 13) == 0)
      scale = atof(argv[i] + 13);
  if (scale <= 0) {
    fprintf(stderr, "usage: %s [--time-scale=X]  (X > 0)\n", argv[0]);
    return EXIT_FAILURE;
  }
  spec.period_ms = (int)(10000 * scale) + 1;
  err = arbor_rt_create(&rt, NULL);
  if (err < 0) {
    fprintf(stderr, "arbor_rt_create: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  /* Events go to a sink that drops them: the workers tell the story. */
  err = arbor_rt_set_event_sink(rt, arbor_event_sink_logfmt, NULL,
                                ARBOR_LEVEL_ERROR);
  if (err == 0)
    err = arbor_sup_start(rt, &spec, &sup, NULL);
  if (err == 0) {
    int64_t wait_ms = (int64_t)(14000 * scale);
    struct timespec d = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};

    nanosleep(&d, NULL);
    err = n = arbor_sup_which_children(sup, v, 3);
  }
  if (err >= 0) {
    printf("after 14 s:\n");
    for (int i = 0; i < n && i < 3; i++)
      printf("  %-10s %-8s restarts %llu\n", v[i].id, state_name(v[i].state),
             (unsigned long long)v[i].restarts);
    err = arbor_sup_stop(sup, -1);
  }
  if (err == 0)
    err = arbor_wait(rt, sup, -1, &reason);
  arbor_rt_destroy(rt);
  if (err < 0) {
    fprintf(stderr, "counter: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  printf("stopped (%s)\n", arbor_reason_name(reason));
  /* Self-check: stable untouched, crashes restarted, temporary gone. */
  return n == 2 && v[0].restarts == 0 && v[1].restarts >= 1 &&
                 reason == ARBOR_NORMAL
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}
