/* basic_supervisor.c -- Saluki's scenario: restarts, the intensity limit,
 * escalation to the parent, and an ordered shutdown.  root (1 restart per
 * 5 s) has a worker that never ends, admin_api (a listener that never ends,
 * a handler that fails every 7 s) and telemetry (a collector that crashes
 * every 3 s, a flusher that takes 2 s to stop).  The collector's second
 * crash within 5 s makes telemetry give up; root restarts it; after 30 s
 * the tree shuts down.  Usage: basic_supervisor [--time-scale=X] (1 is real
 * time; the test runs 0.05).  Expected output (scenario seconds, roughly):
 *   [ 3.0] root.telemetry: collector exited (user)
 *   [ 3.0] root.telemetry: collector restarted
 *   [ 6.0] root.telemetry: collector exited (user)
 *   [ 6.0] root.telemetry: intensity_exceeded
 *   [ 7.0] root.admin_api: handler exited (user)
 *   [ 7.0] root.admin_api: handler restarted
 *   [ 8.0] root.telemetry: flusher exited (shutdown)
 *   [ 8.0] root: telemetry exited (shutdown)
 *   [ 8.0] root: telemetry restarted
 *   ...
 *   [30.0] shutting down the tree
 *   stopped (normal): telemetry restarted 3 times, handler 4 times
 */
#include <arbor.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;
static struct timespec t0;
static atomic_int telemetry_restarts, handler_restarts;

static int64_t ms(double scenario_ms) /* scenario time to real time */
{
  return (int64_t)(scenario_ms * scale) + 1;
}

static double now_s(void) /* scenario seconds since the start */
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ((double)(t.tv_sec - t0.tv_sec) +
          (double)(t.tv_nsec - t0.tv_nsec) / 1e9) / scale;
}

/* Called on the supervisor's worker: print one line and return. */
static void on_event(const arbor_event *ev, void *ud)
{
  (void)ud;
  if (ev->kind == ARBOR_EV_CHILD_RESTARTED) {
    if (strcmp(ev->child_id, "telemetry") == 0)
      atomic_fetch_add(&telemetry_restarts, 1);
    else if (strcmp(ev->child_id, "handler") == 0)
      atomic_fetch_add(&handler_restarts, 1);
    printf("[%4.1f] %s: %s restarted\n", now_s(), ev->sup_name, ev->child_id);
  } else if (ev->kind == ARBOR_EV_CHILD_EXITED && ev->child_id[0] != '\0') {
    printf("[%4.1f] %s: %s exited (%s)\n", now_s(), ev->sup_name, ev->child_id,
           arbor_reason_name(ev->reason));
  } else if (ev->kind == ARBOR_EV_INTENSITY_EXCEEDED) {
    printf("[%4.1f] %s: %s\n", now_s(), ev->sup_name, arbor_event_name(ev->kind));
  }
}

static int forever(void *arg) /* never ends; its supervisor stops it */
{
  arbor_msg m;
  (void)arg;
  if (arbor_init_ack(0) != 0)
    return 2;
  while (arbor_recv(&m, -1) == 0)
    ;
  return 1;
}

static int fails_every(void *arg) /* crashes after *arg scenario ms */
{
  if (arbor_init_ack(0) != 0 || arbor_sleep(ms(*(double *)arg)) != 0)
    return 2;
  return 1; /* an application error */
}

static int flusher(void *arg) /* takes 2 s to shut down */
{
  arbor_msg m;
  (void)arg;
  if (arbor_trap_exit(1) < 0 || arbor_init_ack(0) != 0)
    return 2;
  while (arbor_recv_tag(&m, ARBOR_TAG_EXIT, -1) != 0)
    ;
  int reason = m.reason;
  return arbor_sleep(ms(2000)) == 0 ? reason : 2; /* flushing */
}

static double every7 = 7000, every3 = 3000;

int main(int argc, char **argv)
{
  arbor_rt *rt;
  arbor_pid root;
  int err, reason = 0;

  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--time-scale=", 13) == 0)
      scale = atof(argv[i] + 13);
  if (scale <= 0) {
    fprintf(stderr, "usage: %s [--time-scale=X]  (X > 0)\n", argv[0]);
    return EXIT_FAILURE;
  }
  int period = (int)ms(5000);
  arbor_child_spec admin_kids[] = {
      {.id = "listener", .start = forever},
      {.id = "handler", .start = fails_every, .arg = &every7}};
  arbor_child_spec tele_kids[] = {
      {.id = "collector", .start = fails_every, .arg = &every3},
      {.id = "flusher", .start = flusher, .shutdown_ms = (int)ms(5000)}};
  arbor_sup_spec admin = {.name = "admin_api", .intensity = 1, .period_ms = period,
                          .children = admin_kids, .nchildren = 2};
  arbor_sup_spec tele = {.name = "telemetry", .intensity = 1, .period_ms = period,
                         .children = tele_kids, .nchildren = 2};
  arbor_child_spec kids[] = {
      {.id = "forever", .start = forever},
      {.id = "admin_api", .type = ARBOR_SUPERVISOR, .sup = &admin},
      {.id = "telemetry", .type = ARBOR_SUPERVISOR, .sup = &tele}};
  arbor_sup_spec spec = {.name = "root", .intensity = 1, .period_ms = period,
                         .children = kids, .nchildren = 3};

  err = arbor_rt_create(&rt, NULL);
  if (err < 0) {
    fprintf(stderr, "arbor_rt_create: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  err = arbor_rt_set_event_sink(rt, on_event, NULL, ARBOR_LEVEL_DEBUG);
  if (err == 0)
    err = arbor_sup_start(rt, &spec, &root, NULL);
  if (err == 0) {
    struct timespec d = {ms(30000) / 1000, (long)(ms(30000) % 1000) * 1000000L};
    nanosleep(&d, NULL); /* the scenario runs */
    printf("[%4.1f] shutting down the tree\n", now_s());
    err = arbor_sup_stop(root, -1);
  }
  if (err == 0)
    err = arbor_wait(rt, root, -1, &reason);
  arbor_rt_destroy(rt);
  if (err < 0) {
    fprintf(stderr, "basic_supervisor: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  printf("stopped (%s): telemetry restarted %d times, handler %d times\n",
         arbor_reason_name(reason), atomic_load(&telemetry_restarts),
         atomic_load(&handler_restarts));
  /* The scenario is its own check: telemetry gave up and came back. */
  return atomic_load(&telemetry_restarts) >= 2 &&
                 atomic_load(&handler_restarts) >= 3 &&
                 reason == ARBOR_NORMAL
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}
