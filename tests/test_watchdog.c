/* tests/test_watchdog.c -- the stuck-process watchdog (sched/watchdog.c):
 * reports, rescue of the work queued behind a stuck process (LIFO slot and
 * ring), the option, the sinks' lines, and the LIFO handshake white-box.
 *
 * A "busy" process loops on an atomic flag and makes no runtime call; the
 * test thread waits on conditions (progress counters, recorded events, the
 * watchdog's scan count), never on time, and ends the loop by setting the
 * flag.  Only the test that the watchdog can be switched off lets a loop
 * run for a fixed time, and it asserts that nothing happened.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/sup.h"
#include "sched/worker.h"
#include "tests/sched_hooks_stub.h"

TestSuite(watchdog, .timeout = 120);

#define THRESHOLD_MS 50

static int64_t mono_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* Poll a condition for up to 60 s. */
#define WAIT_FOR(cond)                                                         \
  do {                                                                         \
    int64_t until_ = mono_ns() + (int64_t)60 * 1000000000;                     \
    while (!(cond) && mono_ns() < until_)                                      \
      sleep_ms(1);                                                             \
    cr_assert((cond), "timed out waiting for: %s", #cond);                    \
  } while (0)

/* Criterion's asserts belong to the test's thread; in a process, a broken
 * expectation aborts the test instead. */
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,        \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* ---- a sink that records -------------------------------------------------- */

#define REC_MAX 16

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static int rec_n;       /* every event */
static int rec_stuck_n; /* ARBOR_EV_PROC_STUCK only, recorded below */
static arbor_event rec_ev[REC_MAX];
static char rec_name[REC_MAX][ARBOR_NAME_MAX];
static char rec_sup_name[REC_MAX][ARBOR_NAME_MAX];
static uint64_t rec_scans[REC_MAX]; /* the watchdog's scans at the report */
static arbor_rt *rt;

static void record(const arbor_event *ev, void *ud)
{
  (void)ud;
  pthread_mutex_lock(&rec_lock);
  rec_n++;
  if (ev->kind == ARBOR_EV_PROC_STUCK && rec_stuck_n < REC_MAX) {
    int i = rec_stuck_n++;

    rec_ev[i] = *ev;
    snprintf(rec_name[i], sizeof(rec_name[i]), "%s", ev->child_id);
    snprintf(rec_sup_name[i], sizeof(rec_sup_name[i]), "%s", ev->sup_name);
    rec_scans[i] = arbor__watchdog_scans(&rt->sched);
  }
  pthread_mutex_unlock(&rec_lock);
}

static int stuck_count(void)
{
  int n;

  pthread_mutex_lock(&rec_lock);
  n = rec_stuck_n;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

static int event_count(void)
{
  int n;

  pthread_mutex_lock(&rec_lock);
  n = rec_n;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

static void start(unsigned workers, int64_t watchdog_ms)
{
  arbor_rt_opts o = {.workers = workers, .watchdog_ms = watchdog_ms};

  rec_n = rec_stuck_n = 0;
  cr_assert_eq(arbor_rt_create(&rt, &o), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, record, NULL, ARBOR_LEVEL_DEBUG),
               0);
}

/* ---- the busy process and its neighbour ---------------------------------- */

enum { PLACE_LIFO, PLACE_RING };

static atomic_int stop_busy;     /* ends the busy loop */
static atomic_int busy_worker;   /* where the busy process loops */
static atomic_int busy_looping;  /* it has started its loop */
static atomic_int busy_episodes; /* loops to make, with a yield between */
static atomic_long progress;     /* the neighbour's */
static atomic_int neighbour_worker;
static atomic_int stop_neighbour;
static atomic_long progress_at_loop_end; /* as the busy process saw it */
static int64_t busy_loop_ns;             /* > 0: loop that long instead */
static int64_t ring_setup_ns;            /* PLACE_RING: longest wait */
static atomic_int others_asleep;         /* PLACE_RING: as it should be */
static arbor_pid neighbour_pid;

static int neighbour(void *arg)
{
  (void)arg;
  atomic_store(&neighbour_worker, arbor_worker());
  while (!atomic_load(&stop_neighbour)) {
    atomic_fetch_add(&progress, 1);
    if (arbor_yield() != 0)
      break;
  }
  return 0;
}

/* The owner's LIFO operation of find_local()'s fairness rule, done by hand
 * (white-box): move the slot's task to the ring without waking anyone. */
static void lifo_to_ring_quietly(void)
{
  struct arbor__worker *w = arbor__tls_worker;
  struct arbor__task *t;

  CHECK(arbor__lifo_enter(w));
  t = w->lifo;
  w->lifo = NULL;
  arbor__lifo_leave(w);
  CHECK(t != NULL);
  arbor__runq_push_quiet_sp(w, t);
}

static void spin(void)
{
  if (busy_loop_ns > 0) {
    int64_t until = mono_ns() + busy_loop_ns;

    while (mono_ns() < until)
      ;
    return;
  }
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed))
    ;
}

static int busy(void *arg)
{
  int place = (int)(intptr_t)arg;

  atomic_store(&busy_worker, arbor_worker());
  /* From inside a process the child goes to this worker's LIFO slot. */
  CHECK(arbor_spawn(NULL, &neighbour_pid, neighbour, NULL,
                    &(arbor_spawn_opts){.name = "neighbour",
                                        .flags = ARBOR_SPAWN_JOINABLE}) == 0);
  if (place == PLACE_RING) {
    /* Make sure nobody would take it but for the watchdog: every other
     * worker asleep, and the task in the ring with no wakeup sent.  This
     * wait is part of the episode, so it is bounded well below the
     * threshold; on a machine so loaded that the other worker has not
     * gone to sleep by then, the test is weaker but still right. */
    int64_t until = mono_ns() + ring_setup_ns;

    while ((atomic_load(&rt->sched.idle.state) >> 16) != 1 &&
           mono_ns() < until)
      ;
    atomic_store(&others_asleep,
                 (atomic_load(&rt->sched.idle.state) >> 16) == 1);
    lifo_to_ring_quietly();
  }
  for (int e = atomic_load(&busy_episodes); e > 0; e--) {
    atomic_store(&busy_looping, 1);
    spin(); /* no runtime call */
    atomic_store(&progress_at_loop_end, atomic_load(&progress));
    atomic_store(&busy_looping, 0);
    if (e > 1) {
      atomic_store(&stop_busy, 0);
      arbor_yield(); /* a switch: the next loop is a new episode */
    }
  }
  return 0;
}

static arbor_pid spawn_busy(int place, int episodes)
{
  arbor_pid pid;

  atomic_store(&stop_busy, 0);
  atomic_store(&busy_looping, 0);
  atomic_store(&busy_episodes, episodes);
  atomic_store(&busy_worker, -1);
  atomic_store(&progress, 0);
  atomic_store(&progress_at_loop_end, -1);
  atomic_store(&neighbour_worker, -1);
  atomic_store(&stop_neighbour, 0);
  cr_assert_eq(arbor_spawn(rt, &pid, busy, (void *)(intptr_t)place,
                           &(arbor_spawn_opts){.name = "busy",
                                               .flags = ARBOR_SPAWN_JOINABLE}),
               0);
  return pid;
}

/* Scans that cover two thresholds: enough for a second report to come. */
static uint64_t two_thresholds_of_scans(void)
{
  return 2 * 4 + 1;
}

static void end_busy(arbor_pid busy_pid)
{
  int reason = -1;

  atomic_store(&stop_busy, 1);
  cr_assert_eq(arbor_wait(rt, busy_pid, -1, &reason), 0);
  cr_assert_eq(reason, 0);
}

static void end_neighbour_and_rt(void)
{
  int reason = -1;

  atomic_store(&stop_neighbour, 1);
  cr_assert_eq(arbor_wait(rt, neighbour_pid, -1, &reason), 0);
  cr_assert_eq(reason, 0);
  arbor_rt_destroy(rt);
  rt = NULL;
}

static void finish(arbor_pid busy_pid)
{
  end_busy(busy_pid);
  end_neighbour_and_rt();
}

static void check_report(int i, arbor_pid pid, int worker, int64_t min_ns)
{
  pthread_mutex_lock(&rec_lock);
  cr_expect_eq(rec_ev[i].kind, ARBOR_EV_PROC_STUCK);
  cr_expect_eq(rec_ev[i].level, ARBOR_LEVEL_WARN);
  cr_expect_eq(rec_ev[i].child, pid);
  cr_expect_str_eq(rec_name[i], "busy");
  cr_expect_eq(rec_ev[i].sup, 0);
  cr_expect_str_eq(rec_sup_name[i], "");
  cr_expect_eq(rec_ev[i].worker, worker);
  cr_expect_geq(rec_ev[i].duration_ns, min_ns, "duration %lld ns",
                (long long)rec_ev[i].duration_ns);
  pthread_mutex_unlock(&rec_lock);
}

/* Run the scenario: the neighbour must make progress while the busy
 * process still loops, and exactly one report must name the busy one. */
static void neighbour_is_rescued(int place, int64_t threshold_ms)
{
  struct arbor__worker *w;
  arbor_pid pid;
  uint64_t scans;

  start(2, threshold_ms);
  ring_setup_ns = threshold_ms * 1000000 / 2;
  pid = spawn_busy(place, 1);
  WAIT_FOR(atomic_load(&progress) >= 1000);
  WAIT_FOR(stuck_count() >= 1);
  /* Still looping: the progress was made behind a stuck process. */
  cr_assert_eq(atomic_load(&busy_looping), 1);
  cr_assert_eq(atomic_load(&progress_at_loop_end), -1);
  cr_assert_neq(atomic_load(&neighbour_worker), atomic_load(&busy_worker));
  /* Let two more thresholds pass: no second report for one episode. */
  pthread_mutex_lock(&rec_lock);
  scans = rec_scans[0];
  pthread_mutex_unlock(&rec_lock);
  WAIT_FOR(arbor__watchdog_scans(&rt->sched) >=
           scans + two_thresholds_of_scans());
  cr_assert_eq(atomic_load(&busy_looping), 1);
  cr_expect_eq(stuck_count(), 1);
  check_report(0, pid, atomic_load(&busy_worker), threshold_ms * 1000000);
  if (place == PLACE_RING && !atomic_load(&others_asleep))
    cr_log_warn("the other worker was still awake when the neighbour went "
                "to the ring: this run did not need the watchdog's wakeup");
  /* The watchdog has closed the busy worker's LIFO slot (emptied, in the
   * LIFO case); once the process is gone, the worker's scheduler loop takes
   * the slot back. */
  w = rt->sched.workers[atomic_load(&busy_worker)];
  if (arbor__watchdog_membarrier())
    cr_expect_eq(atomic_load(&w->lifo_fenced), 2);
  end_busy(pid);
  WAIT_FOR(atomic_load(&w->lifo_fenced) == 0);
  end_neighbour_and_rt();
  /* Neither spawn nor exit makes an event of any other kind. */
  cr_expect_eq(event_count(), 1);
}

Test(watchdog, a_process_in_the_lifo_slot_of_a_stuck_worker_runs_elsewhere)
{
  if (!arbor__watchdog_membarrier())
    cr_skip_test("membarrier() is not available here");
  neighbour_is_rescued(PLACE_LIFO, THRESHOLD_MS);
}

Test(watchdog, a_process_in_the_ring_of_a_stuck_worker_runs_elsewhere)
{
  /* Longer: the busy process first waits for the other worker to sleep. */
  neighbour_is_rescued(PLACE_RING, 4 * THRESHOLD_MS);
}

Test(watchdog, a_new_episode_is_reported_again)
{
  arbor_pid pid;

  start(2, THRESHOLD_MS);
  pid = spawn_busy(PLACE_LIFO, 2);
  WAIT_FOR(stuck_count() >= 1);
  /* End the first loop: the process yields and loops again. */
  atomic_store(&stop_busy, 1);
  WAIT_FOR(stuck_count() >= 2);
  cr_assert_eq(atomic_load(&busy_looping), 1);
  check_report(0, pid, atomic_load(&busy_worker),
               (int64_t)THRESHOLD_MS * 1000000);
  /* It may have moved to the other worker when it yielded. */
  pthread_mutex_lock(&rec_lock);
  cr_expect_eq(rec_ev[1].child, pid);
  cr_expect_geq(rec_ev[1].duration_ns, (int64_t)THRESHOLD_MS * 1000000);
  pthread_mutex_unlock(&rec_lock);
  finish(pid);
  cr_expect_eq(stuck_count(), 2);
}

Test(watchdog, with_one_worker_the_process_is_reported_and_nothing_moves)
{
  arbor_pid pid;

  start(1, THRESHOLD_MS);
  pid = spawn_busy(PLACE_LIFO, 1);
  WAIT_FOR(stuck_count() >= 1);
  cr_assert_eq(atomic_load(&busy_looping), 1);
  check_report(0, pid, 0, (int64_t)THRESHOLD_MS * 1000000);
  /* Nobody could take the neighbour, and the slot was left alone. */
  cr_expect_eq(atomic_load(&progress), 0);
  cr_expect_eq(atomic_load(&rt->sched.workers[0]->lifo_fenced), 0);
  atomic_store(&stop_busy, 1);
  WAIT_FOR(atomic_load(&progress) >= 1);
  cr_expect_eq(atomic_load(&progress_at_loop_end), 0);
  finish(pid);
  cr_expect_eq(stuck_count(), 1);
}

Test(watchdog, without_membarrier_it_reports_but_leaves_the_lifo_slot_alone)
{
  arbor_pid pid;
  uint64_t scans;

  arbor__watchdog_test_no_membarrier(true);
  start(2, THRESHOLD_MS);
  pid = spawn_busy(PLACE_LIFO, 1);
  WAIT_FOR(stuck_count() >= 1);
  pthread_mutex_lock(&rec_lock);
  scans = rec_scans[0];
  pthread_mutex_unlock(&rec_lock);
  WAIT_FOR(arbor__watchdog_scans(&rt->sched) >=
           scans + two_thresholds_of_scans());
  cr_assert_eq(atomic_load(&busy_looping), 1);
  check_report(0, pid, atomic_load(&busy_worker),
               (int64_t)THRESHOLD_MS * 1000000);
  cr_expect_eq(atomic_load(&progress), 0);
  finish(pid);
  cr_expect_eq(atomic_load(&progress_at_loop_end), 0);
  arbor__watchdog_test_no_membarrier(false);
}

Test(watchdog, the_default_threshold_is_100_ms)
{
  arbor_pid pid;

  start(2, 0);
  cr_assert_eq(rt->sched.watchdog_ns, (int64_t)100 * 1000000);
  pid = spawn_busy(PLACE_LIFO, 1);
  WAIT_FOR(stuck_count() >= 1);
  check_report(0, pid, atomic_load(&busy_worker), (int64_t)100 * 1000000);
  finish(pid);
}

Test(watchdog, a_negative_threshold_turns_it_off)
{
  arbor_pid pid;

  start(2, -1);
  cr_assert_null(rt->sched.watchdog);
  /* Three default thresholds without a runtime call. */
  busy_loop_ns = (int64_t)300 * 1000000;
  pid = spawn_busy(PLACE_LIFO, 1);
  cr_assert_eq(arbor_wait(rt, pid, -1, NULL), 0);
  busy_loop_ns = 0;
  cr_expect_eq(event_count(), 0);
  /* Nothing took the neighbour out of the busy worker's LIFO slot. */
  cr_expect_eq(atomic_load(&progress_at_loop_end), 0);
  atomic_store(&stop_neighbour, 1);
  cr_assert_eq(arbor_wait(rt, neighbour_pid, -1, NULL), 0);
  arbor_rt_destroy(rt);
}

Test(watchdog, the_option_is_validated)
{
  arbor_rt_opts o = {.workers = 1};
  arbor_rt *r = NULL;

  o.watchdog_ms = (int64_t)24 * 60 * 60 * 1000 + 1;
  cr_expect_eq(arbor_rt_create(&r, &o), ARBOR_EINVAL);
  cr_expect_null(r);
  o.watchdog_ms = INT64_MAX;
  cr_expect_eq(arbor_rt_create(&r, &o), ARBOR_EINVAL);
  cr_expect_null(r);
  /* The largest threshold, and any negative one (off), are fine. */
  o.watchdog_ms = (int64_t)24 * 60 * 60 * 1000;
  cr_assert_eq(arbor_rt_create(&r, &o), 0);
  cr_expect_eq(r->sched.watchdog_ns, o.watchdog_ms * 1000000);
  cr_expect_not_null(r->sched.watchdog);
  arbor_rt_destroy(r);
  o.watchdog_ms = INT64_MIN;
  cr_assert_eq(arbor_rt_create(&r, &o), 0);
  cr_expect_null(r->sched.watchdog);
  arbor_rt_destroy(r);
}

/* ---- the sinks' lines ------------------------------------------------------ */

static char *sink_line(arbor_event_sink sink, const arbor_event *ev)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);

  cr_assert_not_null(f);
  sink(ev, f);
  fclose(f);
  return buf;
}

Test(watchdog, the_built_in_sinks_print_the_worker_and_the_duration)
{
  /* 2023-11-14T22:13:20.123Z */
  arbor_event ev = {
      .time_ns = (int64_t)1700000000 * 1000000000 + 123456789,
      .kind = ARBOR_EV_PROC_STUCK,
      .level = ARBOR_LEVEL_WARN,
      .sup_name = "root",
      .sup = 0x10,
      .child_id = "root.busy loop",
      .child = 0x20,
      .worker = 3,
      .duration_ns = 150000000,
  };
  char *line;

  line = sink_line(arbor_event_sink_logfmt, &ev);
  cr_expect_str_eq(line, "time=2023-11-14T22:13:20.123Z level=warn "
                         "event=process_stuck sup=root sup_pid=0x10 "
                         "child=\"root.busy loop\" child_pid=0x20 reason=0 "
                         "reason_name=normal restarts=0 worker=3 "
                         "duration_ns=150000000\n");
  free(line);
  line = sink_line(arbor_event_sink_jsonl, &ev);
  cr_expect_str_eq(line,
                   "{\"time\":\"2023-11-14T22:13:20.123Z\",\"level\":\"warn\","
                   "\"event\":\"process_stuck\",\"sup\":\"root\","
                   "\"sup_pid\":\"0x10\",\"child\":\"root.busy loop\","
                   "\"child_pid\":\"0x20\",\"reason\":0,\"reason_name\":"
                   "\"normal\",\"restarts\":0,\"worker\":3,"
                   "\"duration_ns\":150000000}\n");
  free(line);
  /* Other kinds keep their lines as they were. */
  ev.kind = ARBOR_EV_START_FAILED;
  line = sink_line(arbor_event_sink_jsonl, &ev);
  cr_expect(strstr(line, "\"restarts\":0}\n") != NULL, "%s", line);
  cr_expect(strstr(line, "worker") == NULL, "%s", line);
  free(line);
  cr_expect_eq(arbor__event_level_of(ARBOR_EV_PROC_STUCK, 0), ARBOR_LEVEL_WARN);
  cr_expect_str_eq(arbor_event_name(ARBOR_EV_PROC_STUCK), "process_stuck");
}

/* ---- the LIFO handshake, on a scheduler whose threads never start ---------- */


Test(watchdog, the_watchdog_takes_the_lifo_task_and_the_owner_gets_the_slot_back)
{
  static struct arbor__sched s;
  static struct arbor__task t1, t2, t3;
  struct arbor__sched_opts o = {.workers = 2, .stack_cache = 4, .seed = 1};
  struct arbor__worker *w;

  if (!arbor__watchdog_membarrier())
    cr_skip_test("membarrier() is not available here");
  cr_assert_eq(arbor__sched_init(&s, &o, &dummy_hooks), 0);
  w = s.workers[0];
  arbor__task_init(&t1, 0, ARBOR__SLOT_NONE);
  arbor__task_init(&t2, 0, ARBOR__SLOT_NONE);
  arbor__task_init(&t3, 0, ARBOR__SLOT_NONE);
  arbor__tls_worker = w; /* this thread plays worker 0's owner */

  arbor__sched_submit(&s, &t1);
  cr_assert_eq(w->lifo, &t1);
  /* The watchdog's side: the task moves to the injection queue. */
  cr_assert_eq(arbor__watchdog_take_lifo(&s, w), &t1);
  cr_assert_null(w->lifo);
  cr_assert_eq(atomic_load(&w->lifo_fenced), 2);
  cr_assert_eq(atomic_load(&w->lifo_busy), 0);
  cr_assert_eq(atomic_load(&s.inject.len), 1);
  /* Until the scheduler loop reopens it, the owner keeps off the slot. */
  arbor__sched_submit(&s, &t2);
  cr_assert_null(w->lifo);
  cr_assert_eq(arbor__runq_pop_sp(w), &t2);
  cr_assert(!arbor__lifo_enter(w));
  cr_assert_eq(atomic_load(&w->lifo_busy), 0);
  cr_assert(arbor__lifo_reopen(w));
  cr_assert_eq(atomic_load(&w->lifo_fenced), 0);
  cr_assert(!arbor__lifo_reopen(w));
  arbor__sched_submit(&s, &t3);
  cr_assert_eq(w->lifo, &t3);
  cr_assert_eq(arbor__inject_pop_one(w), &t1);
  /* An empty slot is taken (and closed) just the same. */
  w->lifo = NULL;
  cr_assert_null(arbor__watchdog_take_lifo(&s, w));
  cr_assert_eq(atomic_load(&w->lifo_fenced), 2);
  cr_assert_eq(atomic_load(&s.inject.len), 0);

  arbor__tls_worker = NULL;
  arbor__sched_fini(&s);
}
