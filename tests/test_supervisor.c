/* test_supervisor.c -- supervisors, black box: strategies, restart
 * policies, intensity, escalation, shutdown, start, live management,
 * auto_shutdown and spec validation.  One test per property; each records
 * and asserts the order of starts and stops, counts and pids.
 *
 * Technique (from the Saluki suites): wait on "reached its own state"
 * conditions with a bounded poll, never on fixed sleeps, except where the
 * property is about time (intensity periods, shutdown timeouts). */
#include <arbor.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TMO .timeout = 30.0

static arbor_rt *rt;

/* ---- a log of what the workers did, in order ------------------------------ */

#define LOG_MAX 8192
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_v[LOG_MAX][40];
static int log_n;

static void log_add(const char *what, const char *name)
{
  pthread_mutex_lock(&log_lock);
  if (log_n < LOG_MAX)
    snprintf(log_v[log_n++], sizeof(log_v[0]), "%s:%s", what, name);
  pthread_mutex_unlock(&log_lock);
}

static int log_len(void)
{
  pthread_mutex_lock(&log_lock);
  int n = log_n;
  pthread_mutex_unlock(&log_lock);
  return n;
}

static int log_count(const char *entry)
{
  int k = 0;

  pthread_mutex_lock(&log_lock);
  for (int i = 0; i < log_n; i++)
    k += strcmp(log_v[i], entry) == 0;
  pthread_mutex_unlock(&log_lock);
  return k;
}

/* The entries from index `from` on, space-separated. */
static const char *log_since(int from)
{
  static char buf[LOG_MAX * 8];
  size_t n = 0;

  buf[0] = '\0';
  pthread_mutex_lock(&log_lock);
  for (int i = from; i < log_n && n + 48 < sizeof(buf); i++)
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i > from ? " " : "",
                          log_v[i]);
  pthread_mutex_unlock(&log_lock);
  return buf;
}

/* ---- events ------------------------------------------------------------------- */

#define EV_MAX 8192
struct ev {
  int kind;
  char id[ARBOR_ID_MAX];
  arbor_pid child;
  int reason;
  uint64_t restarts;
};
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ev ev_v[EV_MAX];
static int ev_n;

static void sink(const arbor_event *e, void *ud)
{
  (void)ud;
  pthread_mutex_lock(&ev_lock);
  if (ev_n < EV_MAX) {
    struct ev *x = &ev_v[ev_n++];

    x->kind = e->kind;
    snprintf(x->id, sizeof(x->id), "%s", e->child_id);
    x->child = e->child;
    x->reason = e->reason;
    x->restarts = e->restarts;
  }
  pthread_mutex_unlock(&ev_lock);
}

/* Events of `kind` for child `id` ("" for supervisor-wide ones). */
static int ev_count(int kind, const char *id)
{
  int k = 0;

  pthread_mutex_lock(&ev_lock);
  for (int i = 0; i < ev_n; i++)
    k += ev_v[i].kind == kind && strcmp(ev_v[i].id, id) == 0;
  pthread_mutex_unlock(&ev_lock);
  return k;
}

/* The reason of the last event of `kind` for `id`, or -99999. */
static int ev_reason(int kind, const char *id)
{
  int r = -99999;

  pthread_mutex_lock(&ev_lock);
  for (int i = 0; i < ev_n; i++)
    if (ev_v[i].kind == kind && strcmp(ev_v[i].id, id) == 0)
      r = ev_v[i].reason;
  pthread_mutex_unlock(&ev_lock);
  return r;
}

/* ---- fixtures and helpers ----------------------------------------------------- */

static void setup(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, sink, NULL, ARBOR_LEVEL_DEBUG), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* Poll a condition for up to 10 s. */
#define WAIT_FOR(cond)                                                         \
  do {                                                                         \
    int64_t until_ = now_ms() + 10000;                                         \
    while (!(cond) && now_ms() < until_)                                       \
      sleep_ms(1);                                                             \
    cr_assert((cond), "timed out waiting for: %s", #cond);                    \
  } while (0)

/* Tags the test sends to workers. */
#define CMD_EXIT 1 /* body: int reason; exit with it */
#define CMD_SPIN 2 /* body: int reason; spin 50 ms with no runtime call, exit */

enum { RUN = 0, EXIT_NOW = 1 };

/* What a worker does; one per child, shared by its incarnations. */
struct beh {
  const char *name;
  int mode;             /* RUN: obey commands; EXIT_NOW: exit after init */
  int reason;           /* EXIT_NOW, die_before_ack: the exit reason */
  int fail_from;        /* starts fail_from..fail_to (1-based) fail init */
  int fail_to;
  int init_reason;      /* ... with this reason */
  int die_before_ack;   /* exit with `reason` before acking */
  int trap;             /* trap exits: an EXIT message ends it... */
  int ignore;           /* ...unless it ignores them */
  int exit_delay_ms;    /* ...after this long (it sleeps) */
  int init_sleep_ms;    /* sleep before acking */
  atomic_int starts;
  atomic_int acked;
  atomic_int stops;
  _Atomic arbor_pid pid;       /* the latest incarnation */
  _Atomic arbor_pid exit_from; /* who sent the EXIT message it saw */
  atomic_int exit_seen;        /* that message's reason */
};

static void on_stop(void *arg)
{
  struct beh *b = arg;

  log_add("stop", b->name);
  atomic_fetch_add(&b->stops, 1);
}

static int spin_ms(int ms)
{
  int64_t until = now_ms() + ms;
  volatile int x = 0;

  while (now_ms() < until)
    x++;
  return x;
}

static int worker(void *arg)
{
  struct beh *b = arg;
  int n = atomic_fetch_add(&b->starts, 1) + 1;
  arbor_msg m;
  int r;

  atomic_store(&b->pid, arbor_self());
  log_add("start", b->name);
  if (arbor_defer(on_stop, b) != 0)
    return -1;
  if (b->trap)
    arbor_trap_exit(1);
  if (b->die_before_ack)
    return b->reason;
  if (b->fail_from > 0 && n >= b->fail_from && n <= b->fail_to) {
    arbor_init_ack(b->init_reason);
    return b->init_reason;
  }
  if (b->init_sleep_ms > 0)
    arbor_sleep(b->init_sleep_ms);
  atomic_fetch_add(&b->acked, 1);
  arbor_init_ack(0);
  if (b->mode == EXIT_NOW)
    return b->reason;
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      continue;
    if (m.tag == CMD_EXIT || m.tag == CMD_SPIN) {
      memcpy(&r, m.data, sizeof(r));
      if (m.tag == CMD_SPIN)
        (void)spin_ms(50);
      return r;
    }
    if (m.tag == ARBOR_TAG_EXIT) {
      atomic_store(&b->exit_from, m.from);
      atomic_store(&b->exit_seen, m.reason);
      if (b->ignore)
        continue;
      if (b->exit_delay_ms > 0)
        arbor_sleep(b->exit_delay_ms);
      return m.reason;
    }
  }
}

static arbor_pid start_root(const arbor_sup_spec *s)
{
  arbor_sup_error e = {0};
  arbor_pid pid = 0;
  int err = arbor_sup_start(rt, s, &pid, &e);

  cr_assert_eq(err, 0, "arbor_sup_start: %s (field %s, child %ld, id %s, %d)",
               arbor_err_name(err), e.field ? e.field : "-", e.child, e.id,
               e.reason);
  cr_assert_neq(pid, 0);
  return pid;
}

/* Stop a root from this thread, reap it, return its exit reason (normal,
 * as OTP's supervisor:stop). */
static int stop_root(arbor_pid root)
{
  int reason = -12345;

  cr_assert_eq(arbor_sup_stop(root, -1), 0);
  cr_assert_eq(arbor_wait(rt, root, 10000, &reason), 0);
  return reason;
}

/* Reap a root that ends by itself. */
static int join(arbor_pid root)
{
  int reason = -12345;

  cr_assert_eq(arbor_wait(rt, root, 10000, &reason), 0);
  return reason;
}

static arbor_child_info info(arbor_pid sup, const char *id)
{
  arbor_child_info i;
  int err = arbor_sup_get_childspec(sup, id, &i);

  cr_assert_eq(err, 0, "get_childspec(%s): %s", id, arbor_err_name(err));
  return i;
}

static arbor_pid pid_of(arbor_pid sup, const char *id)
{
  return info(sup, id).pid;
}

static int state_of(arbor_pid sup, const char *id)
{
  arbor_child_info i;
  int err = arbor_sup_get_childspec(sup, id, &i);

  return err == 0 ? i.state : err;
}

static void tell(arbor_pid pid, int tag, int reason)
{
  cr_assert_eq(arbor_send(pid, (uint32_t)tag, &reason, sizeof(reason)), 0);
}

/* A process that monitors a pid and keeps the DOWN's reason. */
struct watch {
  arbor_pid target;
  atomic_int ready, done, reason;
};

static int watcher(void *arg)
{
  struct watch *w = arg;
  uint64_t ref;
  arbor_msg m;

  if (arbor_monitor(w->target, &ref) != 0)
    return -1;
  atomic_store(&w->ready, 1);
  while (arbor_recv_tag(&m, ARBOR_TAG_DOWN, -1) != 0)
    ;
  atomic_store(&w->reason, m.reason);
  atomic_store(&w->done, 1);
  return 0;
}

static void watch(struct watch *w, arbor_pid target)
{
  w->target = target;
  cr_assert_eq(arbor_spawn(rt, NULL, watcher, w, NULL), 0);
  WAIT_FOR(atomic_load(&w->ready));
}

/* WORKER("id", &beh) or WORKER("id", &beh, .restart = ...). */
#define WORKER(id_, ...) {.id = (id_), .start = worker, .arg = __VA_ARGS__}
#define NKIDS(a) (sizeof(a) / sizeof((a)[0]))

TestSuite(supervisor, .init = setup, .fini = teardown);

/* ---- strategies --------------------------------------------------------------- */

Test(supervisor, one_for_one_restarts_only_the_failed_child, TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b),
                             WORKER("c", &c)};
  arbor_sup_spec s = {.name = "root", .intensity = 5, .period_ms = 5000,
                      .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s), old_b = pid_of(root, "b");
  int mark = log_len();

  cr_assert_str_eq(log_since(0), "start:a start:b start:c");
  tell(old_b, CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&b.acked) == 2);
  cr_assert_str_eq(log_since(mark), "stop:b start:b");
  cr_assert_neq(pid_of(root, "b"), old_b);
  cr_assert_eq(info(root, "b").restarts, 1);
  cr_assert_eq(info(root, "a").restarts, 0);
  cr_assert_eq(atomic_load(&a.starts), 1);
  cr_assert_eq(atomic_load(&c.starts), 1);
  cr_assert_eq(ev_count(ARBOR_EV_CHILD_RESTARTED, "b"), 1);
  cr_assert_eq(ev_reason(ARBOR_EV_CHILD_EXITED, "b"), 9);
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
}

Test(supervisor, one_for_all_stops_the_others_in_reverse_then_starts_all,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b),
                             WORKER("c", &c)};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s), pa = pid_of(root, "a"),
            pc = pid_of(root, "c");
  int mark = log_len();

  tell(pid_of(root, "b"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&c.acked) == 2);
  cr_assert_str_eq(log_since(mark),
                   "stop:b stop:c stop:a start:a start:b start:c");
  cr_assert_neq(pid_of(root, "a"), pa);
  cr_assert_neq(pid_of(root, "c"), pc);
  cr_assert_eq(info(root, "a").restarts, 1);
  cr_assert_eq(info(root, "b").restarts, 1);
  cr_assert_eq(info(root, "c").restarts, 1);
  /* The siblings were stopped by the supervisor: shutdown, not a crash. */
  cr_assert_eq(ev_reason(ARBOR_EV_CHILD_EXITED, "a"), ARBOR_REASON_SHUTDOWN);
  stop_root(root);
}

Test(supervisor, rest_for_one_restarts_the_failed_child_and_the_later_ones,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c"},
             d = {.name = "d"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b), WORKER("c", &c),
                             WORKER("d", &d)};
  arbor_sup_spec s = {.strategy = ARBOR_REST_FOR_ONE, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 4};
  arbor_pid root = start_root(&s), pa = pid_of(root, "a");
  int mark = log_len();

  tell(pid_of(root, "b"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&d.acked) == 2);
  cr_assert_str_eq(log_since(mark),
                   "stop:b stop:d stop:c start:b start:c start:d");
  cr_assert_eq(pid_of(root, "a"), pa);
  cr_assert_eq(atomic_load(&a.starts), 1);
  cr_assert_eq(info(root, "a").restarts, 0);
  cr_assert_eq(info(root, "d").restarts, 1);
  stop_root(root);
}

Test(supervisor, group_restart_drops_temporary_children, TMO)
{
  struct beh a = {.name = "a"}, t = {.name = "t"}, c = {.name = "c"};
  arbor_child_spec kids[] = {WORKER("a", &a),
                             WORKER("t", &t, .restart = ARBOR_TEMPORARY),
                             WORKER("c", &c)};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);
  arbor_child_info v[4];
  int mark = log_len();

  tell(pid_of(root, "c"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&c.acked) == 2);
  cr_assert_str_eq(log_since(mark), "stop:c stop:t stop:a start:a start:c");
  cr_assert_eq(atomic_load(&t.starts), 1);
  cr_assert_eq(arbor_sup_which_children(root, v, 4), 2);
  cr_assert_str_eq(v[0].id, "a");
  cr_assert_str_eq(v[1].id, "c");
  cr_assert_eq(arbor_sup_get_childspec(root, "t", &v[2]), ARBOR_ENOENT);
  stop_root(root);
}

Test(supervisor, group_restart_restarts_a_transient_child_that_had_ended,
     TMO)
{
  struct beh a = {.name = "a"}, x = {.name = "x"};
  arbor_child_spec kids[] = {WORKER("x", &x, .restart = ARBOR_TRANSIENT),
                             WORKER("a", &a)};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "x"), CMD_EXIT, ARBOR_NORMAL);
  WAIT_FOR(state_of(root, "x") == ARBOR_CHILD_UNDEFINED);
  cr_assert_eq(atomic_load(&x.starts), 1);
  tell(pid_of(root, "a"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&a.acked) == 2);
  /* OTP: a group restart starts every non-temporary child of the group. */
  cr_assert_eq(atomic_load(&x.starts), 2);
  cr_assert_eq(state_of(root, "x"), ARBOR_CHILD_RUNNING);
  stop_root(root);
}

Test(supervisor, one_for_all_restarts_each_child_exactly_once_per_failure,
     TMO)
{
  struct beh b[4] = {{.name = "w0"}, {.name = "w1"}, {.name = "w2"},
                     {.name = "w3"}};
  arbor_child_spec kids[] = {WORKER("w0", &b[0]), WORKER("w1", &b[1]),
                             WORKER("w2", &b[2]), WORKER("w3", &b[3])};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 4};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;

  tell(pid_of(root, "w2"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&b[3].acked) == 2);
  /* A synchronous call: every pending exit has been handled by now. */
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(k.active, 4);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(atomic_load(&b[i].starts), 2, "w%d", i);
    cr_assert_eq(atomic_load(&b[i].stops), 1, "w%d", i);
  }
  stop_root(root);
}

Test(supervisor, group_restart_restarts_a_nested_supervisor, TMO)
{
  struct beh inner = {.name = "inner"}, w = {.name = "w"};
  arbor_child_spec sub_kids[] = {WORKER("inner", &inner)};
  arbor_sup_spec sub = {.name = "sub", .children = sub_kids, .nchildren = 1};
  arbor_child_spec kids[] = {
      {.id = "sub", .type = ARBOR_SUPERVISOR, .sup = &sub}, WORKER("w", &w)};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s), psub = pid_of(root, "sub");
  int mark = log_len();

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&w.acked) == 2);
  cr_assert_str_eq(log_since(mark), "stop:w stop:inner start:inner start:w");
  cr_assert_neq(pid_of(root, "sub"), psub);
  cr_assert_eq(info(root, "sub").restarts, 1);
  cr_assert_eq(pid_of(pid_of(root, "sub"), "inner"), atomic_load(&inner.pid));
  stop_root(root);
}

/* ---- restart policies ----------------------------------------------------------- */

static void policy_case(int restart, int reason, bool restarted)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w, .restart = restart)};
  arbor_sup_spec s = {.intensity = 5, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s), p1 = pid_of(root, "w");
  arbor_child_counts k;

  tell(p1, CMD_EXIT, reason);
  if (restarted) {
    WAIT_FOR(atomic_load(&w.acked) == 2);
    cr_assert_neq(pid_of(root, "w"), p1);
    cr_assert_eq(info(root, "w").restarts, 1);
  } else if (restart == ARBOR_TEMPORARY) {
    WAIT_FOR(state_of(root, "w") == ARBOR_ENOENT);
  } else {
    WAIT_FOR(state_of(root, "w") == ARBOR_CHILD_UNDEFINED);
    cr_assert_eq(pid_of(root, "w"), 0);
  }
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(k.active, restarted ? 1 : 0);
  cr_assert_eq(atomic_load(&w.starts), restarted ? 2 : 1);
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
}

Test(supervisor, permanent_child_is_restarted_after_a_normal_exit, TMO)
{
  policy_case(ARBOR_PERMANENT, ARBOR_NORMAL, true);
}
Test(supervisor, permanent_child_is_restarted_after_a_crash, TMO)
{
  policy_case(ARBOR_PERMANENT, 7, true);
}
Test(supervisor, permanent_child_is_restarted_after_a_shutdown_exit, TMO)
{
  policy_case(ARBOR_PERMANENT, ARBOR_REASON_SHUTDOWN, true);
}
Test(supervisor, transient_child_is_not_restarted_after_a_normal_exit, TMO)
{
  policy_case(ARBOR_TRANSIENT, ARBOR_NORMAL, false);
}
Test(supervisor, transient_child_is_restarted_after_a_crash, TMO)
{
  policy_case(ARBOR_TRANSIENT, 7, true);
}
Test(supervisor, transient_child_is_not_restarted_after_a_shutdown_exit,
     TMO)
{
  policy_case(ARBOR_TRANSIENT, ARBOR_REASON_SHUTDOWN, false);
}
Test(supervisor, temporary_child_is_not_restarted_after_a_normal_exit, TMO)
{
  policy_case(ARBOR_TEMPORARY, ARBOR_NORMAL, false);
}
Test(supervisor, temporary_child_is_not_restarted_after_a_crash, TMO)
{
  policy_case(ARBOR_TEMPORARY, 7, false);
}
Test(supervisor, temporary_child_is_not_restarted_after_a_shutdown_exit,
     TMO)
{
  policy_case(ARBOR_TEMPORARY, ARBOR_REASON_SHUTDOWN, false);
}

Test(supervisor, transient_child_killed_is_restarted, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w, .restart = ARBOR_TRANSIENT)};
  arbor_sup_spec s = {.intensity = 5, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  cr_assert_eq(arbor_kill(pid_of(root, "w"), ARBOR_REASON_KILL), 0);
  WAIT_FOR(atomic_load(&w.acked) == 2);
  cr_assert_eq(ev_reason(ARBOR_EV_CHILD_EXITED, "w"), ARBOR_REASON_KILLED);
  stop_root(root);
}

Test(supervisor, exits_that_are_not_restarted_do_not_consume_intensity, TMO)
{
  struct beh t = {.name = "t"}, x = {.name = "x"}, a = {.name = "a"};
  arbor_child_spec kids[] = {WORKER("t", &t, .restart = ARBOR_TEMPORARY),
                             WORKER("x", &x, .restart = ARBOR_TRANSIENT),
                             WORKER("a", &a)};
  /* No restart allowed at all. */
  arbor_sup_spec s = {.intensity = 0, .period_ms = 5000, .children = kids,
                      .nchildren = 3};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "t"), CMD_EXIT, 9);
  tell(pid_of(root, "x"), CMD_EXIT, ARBOR_NORMAL);
  WAIT_FOR(state_of(root, "t") == ARBOR_ENOENT &&
           state_of(root, "x") == ARBOR_CHILD_UNDEFINED);
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(atomic_load(&a.starts), 1);
  stop_root(root);
}

Test(supervisor, supervisor_idles_when_all_temporary_children_exit, TMO)
{
  struct beh t1 = {.name = "t1", .mode = EXIT_NOW},
             t2 = {.name = "t2", .mode = EXIT_NOW, .reason = 3};
  arbor_child_spec kids[] = {WORKER("t1", &t1, .restart = ARBOR_TEMPORARY),
                             WORKER("t2", &t2, .restart = ARBOR_TEMPORARY)};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;

  WAIT_FOR(arbor_sup_count_children(root, &k) == 0 && k.specs == 0);
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(atomic_load(&t1.starts) + atomic_load(&t2.starts), 2);
  stop_root(root);
}

/* ---- intensity ---------------------------------------------------------------- */

Test(supervisor, second_restart_within_the_period_stops_the_supervisor,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"}, w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b),
                             WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 1, .period_ms = 200, .children = kids,
                      .nchildren = 3};
  arbor_pid root = start_root(&s);
  int mark;

  tell(pid_of(root, "w"), CMD_EXIT, 9); /* t0: allowed */
  WAIT_FOR(atomic_load(&w.acked) == 2);
  mark = log_len();
  tell(pid_of(root, "w"), CMD_EXIT, 9); /* t0+: one too many */
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_str_eq(log_since(mark), "stop:w stop:b stop:a");
  cr_assert_eq(atomic_load(&w.starts), 2);
  cr_assert_eq(ev_count(ARBOR_EV_INTENSITY_EXCEEDED, "w"), 1);
  cr_assert_eq(ev_count(ARBOR_EV_SHUTDOWN_FINISHED, ""), 1);
}

Test(supervisor, restarts_outside_the_period_are_forgotten, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 1, .period_ms = 200, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  for (int i = 2; i <= 4; i++) {
    tell(pid_of(root, "w"), CMD_EXIT, 9);
    WAIT_FOR(atomic_load(&w.acked) == i);
    sleep_ms(260); /* the property is about time: let the period pass */
  }
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(info(root, "w").restarts, 3);
  stop_root(root);
}

Test(supervisor, intensity_zero_stops_at_the_first_failure, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 0, .period_ms = 1000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&w.starts), 1);
}

Test(supervisor, default_intensity_is_one_restart_per_five_seconds, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&w.acked) == 2);
  tell(pid_of(root, "w"), CMD_EXIT, 9);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&w.starts), 2);
}

Test(supervisor, calls_fail_once_the_supervisor_gave_up, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 0, .period_ms = 1000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(arbor_sup_count_children(root, &k), ARBOR_ESRCH);
  cr_assert_eq(arbor_sup_start_child(root, &kids[0], NULL, NULL), ARBOR_ESRCH);
}

Test(supervisor, escalation_goes_two_levels_up, TMO)
{
  struct beh leafw = {.name = "leafw"}, top = {.name = "top"};
  arbor_child_spec leaf_kids[] = {WORKER("leafw", &leafw)};
  arbor_sup_spec leaf = {.name = "leaf", .intensity = 0, .period_ms = 5000,
                         .children = leaf_kids, .nchildren = 1};
  arbor_child_spec mid_kids[] = {
      {.id = "leaf", .type = ARBOR_SUPERVISOR, .sup = &leaf}};
  arbor_sup_spec mid = {.name = "mid", .intensity = 0, .period_ms = 5000,
                        .children = mid_kids, .nchildren = 1};
  arbor_child_spec kids[] = {WORKER("top", &top),
                             {.id = "mid", .type = ARBOR_SUPERVISOR,
                              .sup = &mid}};
  arbor_sup_spec s = {.name = "root", .intensity = 5, .period_ms = 5000,
                      .children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s), pmid = pid_of(root, "mid");
  arbor_pid pleaf = pid_of(pmid, "leaf");
  char name[ARBOR_NAME_MAX];

  cr_assert_gt(arbor_name(rt, pid_of(pleaf, "leafw"), name, sizeof(name)), 0);
  cr_assert_str_eq(name, "root.mid.leaf.leafw");
  tell(pid_of(pleaf, "leafw"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&leafw.acked) == 2);
  /* leaf gave up (intensity 0), so did mid, and root restarted mid. */
  WAIT_FOR(info(root, "mid").restarts == 1);
  cr_assert_neq(pid_of(root, "mid"), pmid);
  cr_assert_eq(arbor_alive(rt, pmid), 0);
  cr_assert_eq(arbor_alive(rt, pleaf), 0);
  cr_assert_eq(ev_count(ARBOR_EV_INTENSITY_EXCEEDED, "leafw"), 1);
  cr_assert_eq(ev_count(ARBOR_EV_INTENSITY_EXCEEDED, "leaf"), 1);
  cr_assert_eq(ev_reason(ARBOR_EV_CHILD_EXITED, "mid"), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&top.starts), 1);
  /* The new subtree has its own, empty history. */
  cr_assert_eq(info(pid_of(root, "mid"), "leaf").restarts, 0);
  stop_root(root);
}

Test(supervisor, a_restarted_subtree_starts_with_an_empty_history, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec sub_kids[] = {WORKER("w", &w)};
  arbor_sup_spec sub = {.intensity = 1, .period_ms = 5000,
                        .children = sub_kids, .nchildren = 1};
  arbor_child_spec kids[] = {{.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub}};
  arbor_sup_spec s = {.intensity = 5, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(atomic_load(&w.pid), CMD_EXIT, 9); /* sub restarts w: 1 of 1 */
  WAIT_FOR(atomic_load(&w.acked) == 2);
  tell(atomic_load(&w.pid), CMD_EXIT, 9); /* too many: sub escalates */
  WAIT_FOR(info(root, "sub").restarts == 1 && atomic_load(&w.acked) == 3);
  tell(atomic_load(&w.pid), CMD_EXIT, 9); /* the new sub may restart it */
  WAIT_FOR(atomic_load(&w.acked) == 4);
  cr_assert_eq(info(root, "sub").restarts, 1);
  stop_root(root);
}

/* ---- stale exits (ash_flare's P9) ---------------------------------------------- */

/* Links itself to a supervisor, then exits with the reason it is told. */
static int linker(void *arg)
{
  arbor_pid sup = *(arbor_pid *)arg;
  arbor_msg m;
  int r;

  if (arbor_link(sup) != 0)
    return -1;
  while (arbor_recv_tag(&m, CMD_EXIT, -1) != 0)
    ;
  memcpy(&r, m.data, sizeof(r));
  return r;
}

Test(supervisor, an_exit_from_a_process_that_is_no_child_is_ignored, TMO)
{
  struct beh a = {.name = "a"};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.intensity = 0, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s), l;
  int reason = -1;

  cr_assert_eq(arbor_spawn(rt, &l, linker, &root,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  tell(l, CMD_EXIT, 42); /* it links first, then exits: an abnormal EXIT */
  cr_assert_eq(arbor_wait(rt, l, 10000, &reason), 0);
  cr_assert_eq(reason, 42);
  /* Its exit is complete, so the EXIT is queued before this call: once
   * the call is answered, the EXIT has been handled. */
  cr_assert_eq(pid_of(root, "a"), atomic_load(&a.pid));
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(atomic_load(&a.starts), 1);
  stop_root(root);
}

Test(supervisor, a_sibling_crashing_during_a_group_restart_is_not_a_second_failure,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b)};
  arbor_sup_spec s = {.strategy = ARBOR_ONE_FOR_ALL, .intensity = 5,
                      .period_ms = 5000, .children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;

  /* a spins without runtime calls and then crashes by itself, while the
   * supervisor is stopping it for b's failure. */
  tell(pid_of(root, "a"), CMD_SPIN, 8);
  tell(pid_of(root, "b"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&a.acked) == 2 && atomic_load(&b.acked) == 2);
  sleep_ms(100); /* a second (spurious) group restart would happen now */
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(atomic_load(&a.starts), 2);
  cr_assert_eq(atomic_load(&b.starts), 2);
  cr_assert_eq(info(root, "a").restarts, 1);
  cr_assert_eq(ev_count(ARBOR_EV_CHILD_RESTARTED, "a"), 1);
  stop_root(root);
}

/* ---- shutdown ----------------------------------------------------------------- */

Test(supervisor, shutdown_kills_a_child_that_ignores_it_after_the_timeout,
     TMO)
{
  struct beh w = {.name = "w", .trap = 1, .ignore = 1};
  arbor_child_spec kids[] = {WORKER("w", &w, .shutdown_ms = 150)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  struct watch wt = {0};
  int64_t t0;

  watch(&wt, pid_of(root, "w"));
  t0 = now_ms();
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
  cr_assert_geq(now_ms() - t0, 150);
  cr_assert_eq(atomic_load(&w.exit_seen), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&w.exit_from), root);
  WAIT_FOR(atomic_load(&wt.done));
  cr_assert_eq(atomic_load(&wt.reason), ARBOR_REASON_KILLED);
  cr_assert_eq(atomic_load(&w.stops), 1); /* its defers ran */
}

Test(supervisor, a_trapping_child_gets_shutdown_as_an_exit_message, TMO)
{
  struct beh w = {.name = "w", .trap = 1, .exit_delay_ms = 50};
  arbor_child_spec kids[] = {WORKER("w", &w, .shutdown_ms = 5000)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  struct watch wt = {0};

  watch(&wt, pid_of(root, "w"));
  stop_root(root);
  WAIT_FOR(atomic_load(&wt.done));
  cr_assert_eq(atomic_load(&wt.reason), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&w.exit_from), root);
}

Test(supervisor, brutal_shutdown_kills_at_once, TMO)
{
  struct beh w = {.name = "w", .trap = 1, .ignore = 1};
  arbor_child_spec kids[] = {
      WORKER("w", &w, .shutdown_ms = ARBOR_SHUTDOWN_BRUTAL)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  struct watch wt = {0};
  int64_t t0;

  watch(&wt, pid_of(root, "w"));
  t0 = now_ms();
  stop_root(root);
  cr_assert_lt(now_ms() - t0, 1000);
  WAIT_FOR(atomic_load(&wt.done));
  cr_assert_eq(atomic_load(&wt.reason), ARBOR_REASON_KILLED);
  cr_assert_eq(atomic_load(&w.exit_seen), 0); /* it never saw a message */
}

Test(supervisor, infinity_shutdown_waits_as_long_as_it_takes, TMO)
{
  struct beh w = {.name = "w", .trap = 1, .exit_delay_ms = 300};
  arbor_child_spec kids[] = {
      WORKER("w", &w, .shutdown_ms = ARBOR_SHUTDOWN_INFINITY)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  struct watch wt = {0};
  int64_t t0;

  watch(&wt, pid_of(root, "w"));
  t0 = now_ms();
  stop_root(root);
  cr_assert_geq(now_ms() - t0, 300);
  cr_assert_eq(atomic_load(&wt.reason), ARBOR_REASON_SHUTDOWN);
}

Test(supervisor, stop_is_in_reverse_start_order_depth_first, TMO)
{
  struct beh a = {.name = "a"}, x = {.name = "x"}, y = {.name = "y"},
             b = {.name = "b"};
  arbor_child_spec sub_kids[] = {WORKER("x", &x), WORKER("y", &y)};
  arbor_sup_spec sub = {.name = "sub", .children = sub_kids, .nchildren = 2};
  arbor_child_spec kids[] = {WORKER("a", &a),
                             {.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub},
                             WORKER("b", &b)};
  arbor_sup_spec s = {.name = "root", .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);
  int mark = log_len();

  cr_assert_str_eq(log_since(0), "start:a start:x start:y start:b");
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
  /* All of it before the root's own exit was reported. */
  cr_assert_str_eq(log_since(mark), "stop:b stop:y stop:x stop:a");
  cr_assert_eq(log_count("stop:a"), 1);
  cr_assert_eq(ev_count(ARBOR_EV_SHUTDOWN_BEGUN, ""), 2);
  cr_assert_eq(ev_count(ARBOR_EV_SHUTDOWN_FINISHED, ""), 2);
}

Test(supervisor, a_killed_supervisor_still_stops_its_children_in_order, TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b)};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);
  int mark = log_len();

  cr_assert_eq(arbor_kill(root, ARBOR_REASON_KILL), 0);
  cr_assert_eq(join(root), ARBOR_REASON_KILLED);
  cr_assert_str_eq(log_since(mark), "stop:b stop:a");
}

struct owner {
  arbor_sup_spec *spec;
  _Atomic arbor_pid sup;
  atomic_int rc;
  int exit_with;
};

/* Starts a supervisor from inside a process, then waits for "exit". */
static int owner_proc(void *arg)
{
  struct owner *o = arg;
  arbor_pid sup = 0;
  arbor_msg m;
  int rc = arbor_sup_start(NULL, o->spec, &sup, NULL);

  atomic_store(&o->sup, sup);
  atomic_store(&o->rc, rc == 0 ? 1 : rc);
  if (rc != 0)
    return 0;
  while (arbor_recv_tag(&m, CMD_EXIT, -1) != 0)
    ;
  return o->exit_with;
}

Test(supervisor, a_supervisor_started_by_a_process_stops_when_it_exits, TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b)};
  arbor_sup_spec s = {.name = "sup", .children = kids, .nchildren = 2};
  struct owner o = {.spec = &s, .exit_with = 42};
  struct watch wt = {0};
  arbor_pid op;
  char name[ARBOR_NAME_MAX];

  cr_assert_eq(arbor_spawn(rt, &op, owner_proc, &o,
                           &(arbor_spawn_opts){.name = "owner"}),
               0);
  WAIT_FOR(atomic_load(&o.rc) != 0);
  cr_assert_eq(atomic_load(&o.rc), 1);
  cr_assert_gt(arbor_name(rt, atomic_load(&a.pid), name, sizeof(name)), 0);
  cr_assert_str_eq(name, "owner.sup.a");
  watch(&wt, atomic_load(&o.sup));
  tell(op, CMD_EXIT, 0);
  WAIT_FOR(atomic_load(&wt.done));
  cr_assert_eq(atomic_load(&wt.reason), 42);
  cr_assert_eq(atomic_load(&a.stops) + atomic_load(&b.stops), 2);
}

/* ---- start ------------------------------------------------------------------ */

Test(supervisor, a_failed_static_start_rolls_back_in_reverse_and_says_why,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"},
             c = {.name = "c", .fail_from = 1, .fail_to = 99, .init_reason = 77},
             d = {.name = "d"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b), WORKER("c", &c),
                             WORKER("d", &d)};
  arbor_sup_spec s = {.children = kids, .nchildren = 4};
  arbor_sup_error e = {0};
  arbor_pid pid = 0;

  cr_assert_eq(arbor_sup_start(rt, &s, &pid, &e), ARBOR_ESTART);
  cr_assert_eq(pid, 0);
  cr_assert_str_eq(e.id, "c");
  cr_assert_eq(e.reason, 77);
  cr_assert_eq(e.child, 2);
  cr_assert_str_eq(log_since(0),
                   "start:a start:b start:c stop:c stop:b stop:a");
  cr_assert_eq(atomic_load(&d.starts), 0);
  cr_assert_eq(ev_reason(ARBOR_EV_START_FAILED, "c"), 77);
  WAIT_FOR(arbor_rt_live(rt) == 0);
}

Test(supervisor, a_nested_start_failure_names_the_path, TMO)
{
  struct beh a = {.name = "a"},
             x = {.name = "x", .fail_from = 1, .fail_to = 99, .init_reason = 5};
  arbor_child_spec sub_kids[] = {WORKER("x", &x)};
  arbor_sup_spec sub = {.children = sub_kids, .nchildren = 1};
  arbor_child_spec kids[] = {WORKER("a", &a),
                             {.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub}};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};
  arbor_sup_error e = {0};

  cr_assert_eq(arbor_sup_start(rt, &s, NULL, &e), ARBOR_ESTART);
  cr_assert_str_eq(e.id, "sub.x");
  cr_assert_eq(e.reason, 5);
  cr_assert_eq(e.child, 1);
  cr_assert_str_eq(log_since(0), "start:a start:x stop:x stop:a");
}

Test(supervisor, a_child_that_exits_before_its_ack_fails_the_start, TMO)
{
  struct beh a = {.name = "a", .die_before_ack = 1, .reason = 13};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_sup_error e = {0};

  cr_assert_eq(arbor_sup_start(rt, &s, NULL, &e), ARBOR_ESTART);
  cr_assert_str_eq(e.id, "a");
  cr_assert_eq(e.reason, 13);
}

Test(supervisor, a_failed_start_from_a_process_leaves_the_caller_alive, TMO)
{
  struct beh a = {.name = "a", .fail_from = 1, .fail_to = 9, .init_reason = 3};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  struct owner o = {.spec = &s};
  arbor_pid op;
  int reason = -1;

  cr_assert_eq(arbor_spawn(rt, &op, owner_proc, &o,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  cr_assert_eq(arbor_wait(rt, op, 10000, &reason), 0);
  cr_assert_eq(reason, 0);
  cr_assert_eq(atomic_load(&o.rc), ARBOR_ESTART);
  /* It returned 0 by itself: the failed supervisor's exit did not kill it. */
  WAIT_FOR(arbor_rt_live(rt) == 0);
}

Test(supervisor, start_from_a_process_returns_after_every_ack, TMO)
{
  struct beh a = {.name = "a", .init_sleep_ms = 30}, b = {.name = "b"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b)};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};
  struct owner o = {.spec = &s};
  arbor_pid op;

  cr_assert_eq(arbor_spawn(rt, &op, owner_proc, &o, NULL), 0);
  WAIT_FOR(atomic_load(&o.rc) != 0);
  cr_assert_eq(atomic_load(&o.rc), 1);
  cr_assert_eq(atomic_load(&a.acked) + atomic_load(&b.acked), 2);
  /* An orderly stop exits normally: the linked owner lives on. */
  cr_assert_eq(arbor_sup_stop(atomic_load(&o.sup), -1), 0);
  cr_assert_eq(arbor_alive(rt, op), 1);
  tell(op, CMD_EXIT, 0);
}

struct starter {
  arbor_pid sup;
  arbor_child_spec *spec;
  atomic_int rc;
};

static int start_child_proc(void *arg)
{
  struct starter *st = arg;

  atomic_store(&st->rc, 1000 + arbor_sup_start_child(st->sup, st->spec, NULL,
                                                     NULL));
  return 0;
}

Test(supervisor, a_stop_during_a_slow_init_completes_promptly, TMO)
{
  struct beh slow = {.name = "slow", .init_sleep_ms = 20000};
  arbor_child_spec cs = WORKER("slow", &slow);
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);
  struct starter st = {.sup = root, .spec = &cs};
  int64_t t0;

  cr_assert_eq(arbor_spawn(rt, NULL, start_child_proc, &st, NULL), 0);
  WAIT_FOR(atomic_load(&slow.starts) == 1);
  t0 = now_ms();
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
  cr_assert_lt(now_ms() - t0, 2000);
  WAIT_FOR(atomic_load(&st.rc) != 0);
  cr_assert_eq(atomic_load(&st.rc), 1000 + ARBOR_ESRCH);
  cr_assert_eq(atomic_load(&slow.stops), 1);
}

/* ---- restarts that fail to start ------------------------------------------------- */

Test(supervisor, a_failed_restart_is_retried_until_it_starts, TMO)
{
  struct beh w = {.name = "w", .fail_from = 2, .fail_to = 3, .init_reason = 4};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 10, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&w.acked) == 2);
  cr_assert_eq(atomic_load(&w.starts), 4); /* ok, fail, fail, ok */
  cr_assert_eq(state_of(root, "w"), ARBOR_CHILD_RUNNING);
  cr_assert_eq(info(root, "w").restarts, 1);
  cr_assert_eq(ev_count(ARBOR_EV_START_FAILED, "w"), 2);
  stop_root(root);
}

Test(supervisor, each_retry_of_a_failed_restart_counts_toward_intensity,
     TMO)
{
  /* The restart and two retries: three restarts, one more than allowed. */
  struct beh w = {.name = "w", .fail_from = 2, .fail_to = 99, .init_reason = 4};
  arbor_child_spec kids[] = {WORKER("w", &w)};
  arbor_sup_spec s = {.intensity = 2, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "w"), CMD_EXIT, 9);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&w.starts), 3);
  cr_assert_eq(ev_count(ARBOR_EV_START_FAILED, "w"), 2);
  cr_assert_eq(ev_count(ARBOR_EV_INTENSITY_EXCEEDED, "w"), 1);
}

/* ---- management ---------------------------------------------------------------- */

Test(supervisor, start_child_waits_for_init_and_appends_in_order, TMO)
{
  struct beh a = {.name = "a"}, d = {.name = "d", .init_sleep_ms = 20};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s), pid = 0;
  arbor_child_spec cs = WORKER("d", &d, .restart = ARBOR_TRANSIENT);
  arbor_child_info v[4];

  cr_assert_eq(arbor_sup_start_child(root, &cs, &pid, NULL), 0);
  cr_assert_eq(atomic_load(&d.acked), 1);
  cr_assert_eq(pid, atomic_load(&d.pid));
  cr_assert_eq(arbor_sup_which_children(root, v, 4), 2);
  cr_assert_str_eq(v[0].id, "a");
  cr_assert_str_eq(v[1].id, "d");
  cr_assert_eq(v[1].pid, pid);
  cr_assert_eq(v[1].state, ARBOR_CHILD_RUNNING);
  cr_assert_eq(v[1].restart, ARBOR_TRANSIENT);
  cr_assert_eq(v[1].type, ARBOR_WORKER);
  cr_assert_eq(v[1].shutdown_ms, 5000);
  /* Dynamic children are supervised like static ones. */
  tell(pid, CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&d.acked) == 2);
  cr_assert_eq(info(root, "d").restarts, 1);
  cr_assert_str_eq(log_since(0), "start:a start:d stop:d start:d");
  stop_root(root);
  cr_assert_str_eq(log_since(4), "stop:d stop:a");
}

Test(supervisor, start_child_refuses_a_duplicate_id, TMO)
{
  struct beh a = {.name = "a"}, d = {.name = "d"};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  arbor_child_spec dup = WORKER("a", &d), cs = WORKER("d", &d);

  cr_assert_eq(arbor_sup_start_child(root, &dup, NULL, NULL), ARBOR_EEXIST);
  cr_assert_eq(arbor_sup_start_child(root, &cs, NULL, NULL), 0);
  cr_assert_eq(arbor_sup_start_child(root, &cs, NULL, NULL), ARBOR_EEXIST);
  cr_assert_eq(atomic_load(&d.starts), 1);
  stop_root(root);
}

Test(supervisor, start_child_init_failure_adds_nothing, TMO)
{
  struct beh d = {.name = "d", .fail_from = 1, .fail_to = 9, .init_reason = 6};
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s), pid = 99;
  arbor_child_spec cs = WORKER("d", &d);
  arbor_sup_error e = {0};
  arbor_child_counts k;

  cr_assert_eq(arbor_sup_start_child(root, &cs, &pid, &e), ARBOR_ESTART);
  cr_assert_eq(pid, 99);
  cr_assert_str_eq(e.id, "d");
  cr_assert_eq(e.reason, 6);
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(k.specs, 0);
  cr_assert_eq(atomic_load(&d.starts), 1); /* not retried */
  stop_root(root);
}

Test(supervisor, terminate_keeps_the_spec_and_restart_child_starts_it, TMO)
{
  struct beh a = {.name = "a"};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  /* Intensity 0: a terminate that counted as a failure would stop it. */
  arbor_sup_spec s = {.intensity = 0, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s), p1 = pid_of(root, "a"), p2 = 0;

  cr_assert_eq(arbor_sup_restart_child(root, "a", &p2), ARBOR_EBUSY);
  cr_assert_eq(arbor_sup_delete_child(root, "a"), ARBOR_EBUSY);
  cr_assert_eq(arbor_sup_terminate_child(root, "a"), 0);
  cr_assert_eq(atomic_load(&a.stops), 1);
  cr_assert_eq(state_of(root, "a"), ARBOR_CHILD_UNDEFINED);
  cr_assert_eq(pid_of(root, "a"), 0);
  cr_assert_eq(arbor_sup_terminate_child(root, "a"), 0); /* again: no-op */
  cr_assert_eq(arbor_sup_restart_child(root, "a", &p2), 0);
  cr_assert_neq(p2, p1);
  cr_assert_eq(p2, pid_of(root, "a"));
  cr_assert_eq(info(root, "a").restarts, 0);
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(ev_reason(ARBOR_EV_CHILD_EXITED, "a"), ARBOR_REASON_SHUTDOWN);
  stop_root(root);
}

Test(supervisor, terminating_a_temporary_child_forgets_it, TMO)
{
  struct beh t = {.name = "t"};
  arbor_child_spec kids[] = {WORKER("t", &t, .restart = ARBOR_TEMPORARY)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);

  cr_assert_eq(arbor_sup_terminate_child(root, "t"), 0);
  cr_assert_eq(state_of(root, "t"), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_restart_child(root, "t", NULL), ARBOR_ENOENT);
  stop_root(root);
}

Test(supervisor, delete_child_forgets_a_terminated_child, TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b)};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);
  arbor_child_info v[2];

  cr_assert_eq(arbor_sup_terminate_child(root, "a"), 0);
  cr_assert_eq(arbor_sup_delete_child(root, "a"), 0);
  cr_assert_eq(arbor_sup_delete_child(root, "a"), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_which_children(root, v, 2), 1);
  cr_assert_str_eq(v[0].id, "b");
  /* The id is free again. */
  cr_assert_eq(arbor_sup_start_child(root, &kids[0], NULL, NULL), 0);
  cr_assert_eq(arbor_sup_which_children(root, v, 2), 2);
  cr_assert_str_eq(v[1].id, "a");
  stop_root(root);
}

Test(supervisor, unknown_ids_are_enoent, TMO)
{
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);
  arbor_child_info i;
  char longid[ARBOR_ID_MAX + 8];

  memset(longid, 'x', sizeof(longid) - 1);
  longid[sizeof(longid) - 1] = '\0';
  cr_assert_eq(arbor_sup_terminate_child(root, "nope"), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_restart_child(root, "nope", NULL), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_delete_child(root, "nope"), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_get_childspec(root, "nope", &i), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_get_childspec(root, longid, &i), ARBOR_ENOENT);
  cr_assert_eq(arbor_sup_terminate_child(root, NULL), ARBOR_EINVAL);
  stop_root(root);
}

static void all_calls_fail_with(arbor_pid sup, int code)
{
  struct beh d = {.name = "d"};
  arbor_child_spec cs = WORKER("d", &d);
  arbor_child_info i;
  arbor_child_counts k;

  cr_assert_eq(arbor_sup_start_child(sup, &cs, NULL, NULL), code);
  cr_assert_eq(arbor_sup_terminate_child(sup, "d"), code);
  cr_assert_eq(arbor_sup_restart_child(sup, "d", NULL), code);
  cr_assert_eq(arbor_sup_delete_child(sup, "d"), code);
  cr_assert_eq(arbor_sup_which_children(sup, &i, 1), code);
  cr_assert_eq(arbor_sup_count_children(sup, &k), code);
  cr_assert_eq(arbor_sup_get_childspec(sup, "d", &i), code);
  cr_assert_eq(arbor_sup_stop(sup, -1), code);
  cr_assert_eq(atomic_load(&d.starts), 0);
}

Test(supervisor, every_call_on_a_dead_supervisor_is_esrch, TMO)
{
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);

  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
  all_calls_fail_with(root, ARBOR_ESRCH);
}

Test(supervisor, a_zombie_root_is_no_supervisor, TMO)
{
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);

  cr_assert_eq(arbor_sup_stop(root, -1), 0);
  /* Exited but not reaped yet. */
  all_calls_fail_with(root, ARBOR_ESRCH);
  cr_assert_eq(join(root), ARBOR_NORMAL);
}

static int idle_proc(void *arg)
{
  arbor_msg m;

  (void)arg;
  while (arbor_recv_tag(&m, CMD_EXIT, -1) != 0)
    ;
  return 0;
}

Test(supervisor, a_process_that_is_no_supervisor_is_esrch, TMO)
{
  arbor_pid p;

  cr_assert_eq(arbor_spawn(rt, &p, idle_proc, NULL, NULL), 0);
  all_calls_fail_with(p, ARBOR_ESRCH);
  all_calls_fail_with(0, ARBOR_EINVAL);
  tell(p, CMD_EXIT, 0);
}

/* Every call again, from a process. */
struct dead_calls {
  arbor_pid sup;
  atomic_int done;
  int rc[8];
};

static int dead_calls_proc(void *arg)
{
  struct dead_calls *dc = arg;
  struct beh d = {.name = "d"};
  arbor_child_spec cs = WORKER("d", &d);
  arbor_child_info i;
  arbor_child_counts k;

  dc->rc[0] = arbor_sup_start_child(dc->sup, &cs, NULL, NULL);
  dc->rc[1] = arbor_sup_terminate_child(dc->sup, "d");
  dc->rc[2] = arbor_sup_restart_child(dc->sup, "d", NULL);
  dc->rc[3] = arbor_sup_delete_child(dc->sup, "d");
  dc->rc[4] = arbor_sup_which_children(dc->sup, &i, 1);
  dc->rc[5] = arbor_sup_count_children(dc->sup, &k);
  dc->rc[6] = arbor_sup_get_childspec(dc->sup, "d", &i);
  dc->rc[7] = arbor_sup_stop(dc->sup, -1);
  atomic_store(&dc->done, 1);
  return 0;
}

Test(supervisor, every_call_from_a_process_on_a_dead_supervisor_is_esrch,
     TMO)
{
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);
  struct dead_calls dc = {.sup = root};

  stop_root(root);
  cr_assert_eq(arbor_spawn(rt, NULL, dead_calls_proc, &dc, NULL), 0);
  WAIT_FOR(atomic_load(&dc.done));
  for (int i = 0; i < 8; i++)
    cr_assert_eq(dc.rc[i], ARBOR_ESRCH, "call %d: %d", i, dc.rc[i]);
}

/* Management from a process: the reply path. */
struct mgmt {
  arbor_pid sup;
  atomic_int done;
  int rc[6];
  arbor_child_counts k;
  arbor_child_info v[3];
  arbor_pid started;
};

static int mgmt_proc(void *arg)
{
  struct mgmt *g = arg;
  static struct beh d = {.name = "d"};
  arbor_child_spec cs = WORKER("d", &d);

  g->rc[0] = arbor_sup_start_child(g->sup, &cs, &g->started, NULL);
  g->rc[1] = arbor_sup_which_children(g->sup, g->v, 3);
  g->rc[2] = arbor_sup_count_children(g->sup, &g->k);
  g->rc[3] = arbor_sup_terminate_child(g->sup, "d");
  g->rc[4] = arbor_sup_delete_child(g->sup, "d");
  g->rc[5] = arbor_sup_stop(g->sup, -1);
  atomic_store(&g->done, 1);
  return 0;
}

Test(supervisor, management_calls_work_from_a_process, TMO)
{
  struct beh a = {.name = "a"};
  arbor_child_spec kids[] = {WORKER("a", &a)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);
  struct mgmt g = {.sup = root};

  cr_assert_eq(arbor_spawn(rt, NULL, mgmt_proc, &g, NULL), 0);
  WAIT_FOR(atomic_load(&g.done));
  cr_assert_eq(g.rc[0], 0);
  cr_assert_neq(g.started, 0);
  cr_assert_eq(g.rc[1], 2);
  cr_assert_str_eq(g.v[1].id, "d");
  cr_assert_eq(g.v[1].pid, g.started);
  cr_assert_eq(g.rc[2], 0);
  cr_assert_eq(g.k.active, 2);
  cr_assert_eq(g.rc[3], 0);
  cr_assert_eq(g.rc[4], 0);
  cr_assert_eq(g.rc[5], 0);
  cr_assert_eq(join(root), ARBOR_NORMAL);
}

Test(supervisor, count_children_counts_specs_active_supervisors_workers,
     TMO)
{
  struct beh a = {.name = "a"}, b = {.name = "b"}, x = {.name = "x"};
  arbor_child_spec sub_kids[] = {WORKER("x", &x)};
  arbor_sup_spec sub = {.children = sub_kids, .nchildren = 1};
  arbor_child_spec kids[] = {WORKER("a", &a), WORKER("b", &b),
                             {.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub}};
  arbor_sup_spec s = {.children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;
  arbor_child_info i;

  cr_assert_eq(arbor_sup_terminate_child(root, "b"), 0);
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(k.specs, 3);
  cr_assert_eq(k.active, 2);
  cr_assert_eq(k.supervisors, 1);
  cr_assert_eq(k.workers, 2);
  i = info(root, "sub");
  cr_assert_eq(i.type, ARBOR_SUPERVISOR);
  cr_assert_eq(i.shutdown_ms, ARBOR_SHUTDOWN_INFINITY);
  cr_assert_eq(i.restart, ARBOR_PERMANENT);
  stop_root(root);
}

Test(supervisor, which_children_fills_up_to_cap_and_returns_the_total, TMO)
{
  struct beh b[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
  arbor_child_spec kids[] = {WORKER("a", &b[0]), WORKER("b", &b[1]),
                             WORKER("c", &b[2])};
  arbor_sup_spec s = {.children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);
  arbor_child_info v[3];

  memset(v, 0, sizeof(v));
  cr_assert_eq(arbor_sup_which_children(root, v, 2), 3);
  cr_assert_str_eq(v[0].id, "a");
  cr_assert_str_eq(v[1].id, "b");
  cr_assert_eq(v[2].id[0], '\0');
  cr_assert_eq(arbor_sup_which_children(root, NULL, 0), 3);
  cr_assert_eq(arbor_sup_which_children(root, NULL, 1), ARBOR_EINVAL);
  stop_root(root);
}

Test(supervisor, dynamic_children_are_not_capped, .timeout = 120.0)
{
  enum { N = 2048 };
  static struct beh b[N];
  static char ids[N][16];
  arbor_sup_spec s = {.name = "pool"};
  arbor_pid root = start_root(&s);
  arbor_child_counts k;
  static arbor_child_info v[N];
  int mark;

  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof(ids[i]), "w%d", i);
    b[i].name = ids[i];
    arbor_child_spec cs = WORKER(ids[i], &b[i], .restart = ARBOR_TEMPORARY);

    cr_assert_eq(arbor_sup_start_child(root, &cs, NULL, NULL), 0, "%d", i);
  }
  cr_assert_eq(arbor_sup_count_children(root, &k), 0);
  cr_assert_eq(k.specs, N);
  cr_assert_eq(k.active, N);
  cr_assert_eq(arbor_sup_which_children(root, v, N), N);
  for (int i = 0; i < N; i++)
    cr_assert_str_eq(v[i].id, ids[i]);
  /* One crashes: it alone goes. */
  tell(v[100].pid, CMD_EXIT, 9);
  WAIT_FOR(arbor_sup_count_children(root, &k) == 0 && k.specs == N - 1);
  mark = log_len();
  cr_assert_eq(stop_root(root), ARBOR_NORMAL);
  cr_assert_eq(log_len() - mark, N - 1);
  /* Last started, first stopped. */
  cr_assert_str_eq(log_since(log_len() - 3), "stop:w2 stop:w1 stop:w0");
  cr_assert_eq(atomic_load(&b[N - 1].stops), 1);
}

Test(supervisor, stop_times_out_while_a_child_takes_forever, TMO)
{
  struct beh w = {.name = "w", .trap = 1, .ignore = 1};
  arbor_child_spec kids[] = {
      WORKER("w", &w, .shutdown_ms = ARBOR_SHUTDOWN_INFINITY)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);

  cr_assert_eq(arbor_sup_stop(root, 100), ARBOR_ETIMEDOUT);
  cr_assert_eq(arbor_alive(rt, root), 1);
  cr_assert_eq(atomic_load(&w.exit_seen), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(arbor_kill(atomic_load(&w.pid), ARBOR_REASON_KILL), 0);
  cr_assert_eq(join(root), ARBOR_NORMAL);
}

/* ---- auto_shutdown ---------------------------------------------------------- */

Test(supervisor, any_significant_stops_when_a_significant_child_ends, TMO)
{
  struct beh a = {.name = "a"}, x = {.name = "x"};
  arbor_child_spec kids[] = {
      WORKER("a", &a),
      WORKER("x", &x, .restart = ARBOR_TRANSIENT, .significant = 1)};
  arbor_sup_spec s = {.auto_shutdown = ARBOR_AUTO_ANY_SIGNIFICANT,
                      .children = kids, .nchildren = 2};
  arbor_pid root = start_root(&s);
  int mark = log_len();

  tell(pid_of(root, "x"), CMD_EXIT, ARBOR_NORMAL);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_str_eq(log_since(mark), "stop:x stop:a");
}

Test(supervisor, a_significant_child_that_is_restarted_does_not_stop_it,
     TMO)
{
  struct beh x = {.name = "x"};
  arbor_child_spec kids[] = {
      WORKER("x", &x, .restart = ARBOR_TRANSIENT, .significant = 1)};
  arbor_sup_spec s = {.auto_shutdown = ARBOR_AUTO_ANY_SIGNIFICANT,
                      .intensity = 5, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "x"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&x.acked) == 2);
  cr_assert_eq(arbor_alive(rt, root), 1);
  stop_root(root);
}

Test(supervisor, a_non_significant_exit_does_not_auto_shutdown, TMO)
{
  struct beh a = {.name = "a"}, x = {.name = "x"}, t = {.name = "t"};
  arbor_child_spec kids[] = {
      WORKER("a", &a),
      WORKER("x", &x, .restart = ARBOR_TRANSIENT, .significant = 1),
      WORKER("t", &t, .restart = ARBOR_TEMPORARY)};
  arbor_sup_spec s = {.auto_shutdown = ARBOR_AUTO_ANY_SIGNIFICANT,
                      .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "t"), CMD_EXIT, ARBOR_NORMAL);
  WAIT_FOR(state_of(root, "t") == ARBOR_ENOENT);
  cr_assert_eq(arbor_alive(rt, root), 1);
  stop_root(root);
}

Test(supervisor, all_significant_waits_for_the_last_one, TMO)
{
  struct beh a = {.name = "a"}, x = {.name = "x"}, y = {.name = "y"};
  arbor_child_spec kids[] = {
      WORKER("a", &a),
      WORKER("x", &x, .restart = ARBOR_TEMPORARY, .significant = 1),
      WORKER("y", &y, .restart = ARBOR_TRANSIENT, .significant = 1)};
  arbor_sup_spec s = {.auto_shutdown = ARBOR_AUTO_ALL_SIGNIFICANT,
                      .children = kids, .nchildren = 3};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "x"), CMD_EXIT, 3);
  WAIT_FOR(state_of(root, "x") == ARBOR_ENOENT);
  cr_assert_eq(arbor_alive(rt, root), 1);
  tell(pid_of(root, "y"), CMD_EXIT, ARBOR_NORMAL);
  cr_assert_eq(join(root), ARBOR_REASON_SHUTDOWN);
  cr_assert_eq(atomic_load(&a.stops), 1);
}

Test(supervisor, auto_never_ignores_significant_children, TMO)
{
  struct beh x = {.name = "x"};
  arbor_child_spec kids[] = {
      WORKER("x", &x, .restart = ARBOR_TEMPORARY, .significant = 1)};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);

  tell(pid_of(root, "x"), CMD_EXIT, 0);
  WAIT_FOR(state_of(root, "x") == ARBOR_ENOENT);
  cr_assert_eq(arbor_alive(rt, root), 1);
  stop_root(root);
}

/* ---- spec validation ---------------------------------------------------------- */

static int dummy(void *arg)
{
  (void)arg;
  arbor_init_ack(0);
  return 0;
}

static void expect_bad(const arbor_sup_spec *s, const char *field, long child)
{
  arbor_sup_error e = {.field = NULL, .child = -7};
  arbor_pid pid = 0;

  cr_assert_eq(arbor_sup_start(rt, s, &pid, &e), ARBOR_EBADSPEC);
  cr_assert_eq(pid, 0);
  cr_assert_not_null(e.field);
  cr_assert_str_eq(e.field, field);
  cr_assert_eq(e.child, child, "%s: child %ld", field, e.child);
  cr_assert_eq(arbor_rt_live(rt), 0); /* nothing started */
}

#define BAD_CHILD(test, field, ...)                                            \
  Test(supervisor, test, TMO)                                                  \
  {                                                                            \
    arbor_child_spec kids[] = {{.id = "ok", .start = dummy}, __VA_ARGS__};     \
    arbor_sup_spec s = {.children = kids, .nchildren = 2};                     \
    expect_bad(&s, field, 1);                                                  \
  }

BAD_CHILD(spec_rejects_a_null_id, "children[].id: NULL", {.id = NULL, .start = dummy})
BAD_CHILD(spec_rejects_an_empty_id, "children[].id: empty", {.id = "", .start = dummy})
BAD_CHILD(spec_rejects_a_duplicate_id, "children[].id: duplicate", {.id = "ok", .start = dummy})
BAD_CHILD(spec_rejects_a_worker_without_start,
          "children[].start: NULL for a worker", {.id = "c1"})
BAD_CHILD(spec_rejects_a_supervisor_child_with_start,
          "children[].start: set for a supervisor",
          {.id = "c1", .start = dummy, .type = ARBOR_SUPERVISOR})
BAD_CHILD(spec_rejects_a_bad_restart, "children[].restart: not an arbor_restart",
          {.id = "c1", .start = dummy, .restart = 3})
BAD_CHILD(spec_rejects_a_bad_type, "children[].type: not an arbor_child_type",
          {.id = "c1", .start = dummy, .type = 2})
BAD_CHILD(spec_rejects_a_bad_shutdown,
          "children[].shutdown_ms: negative but not BRUTAL or INFINITY",
          {.id = "c1", .start = dummy, .shutdown_ms = -3})
BAD_CHILD(spec_rejects_a_significant_permanent_child,
          "children[].significant: a permanent child cannot be significant",
          {.id = "c1", .start = dummy, .significant = 1})
BAD_CHILD(spec_rejects_a_tiny_stack, "children[].stack_size: out of range",
          {.id = "c1", .start = dummy, .stack_size = 100})
BAD_CHILD(spec_rejects_a_worker_with_a_sup_spec,
          "children[].sup: set for a worker",
          {.id = "c1", .start = dummy, .sup = &(arbor_sup_spec){0}})

Test(supervisor, spec_rejects_a_too_long_id, TMO)
{
  char id[ARBOR_ID_MAX + 1];
  arbor_child_spec kids[] = {{.id = id, .start = dummy}};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};

  memset(id, 'i', ARBOR_ID_MAX);
  id[ARBOR_ID_MAX] = '\0';
  expect_bad(&s, "children[].id: too long", 0);
  id[ARBOR_ID_MAX - 1] = '\0'; /* the longest that fits is fine */
  arbor_sup_stop(start_root(&s), -1);
}

Test(supervisor, spec_rejects_a_supervisor_child_without_a_spec, TMO)
{
  arbor_child_spec kids[] = {{.id = "s", .type = ARBOR_SUPERVISOR}};
  arbor_sup_spec s = {.children = kids, .nchildren = 1};

  expect_bad(&s, "children[].sup: NULL for a supervisor", 0);
}

Test(supervisor, spec_rejects_bad_supervisor_fields, TMO)
{
  arbor_child_spec kids[] = {{.id = "a", .start = dummy}};

  expect_bad(&(arbor_sup_spec){.strategy = 3}, "strategy: not an arbor_strategy",
             -1);
  expect_bad(&(arbor_sup_spec){.intensity = -1}, "intensity: negative", -1);
  expect_bad(&(arbor_sup_spec){.period_ms = -1}, "period_ms: negative", -1);
  expect_bad(&(arbor_sup_spec){.auto_shutdown = 3},
             "auto_shutdown: not an arbor_auto_shutdown", -1);
  expect_bad(&(arbor_sup_spec){.nchildren = 2},
             "children: NULL with nchildren > 0", -1);
  expect_bad(&(arbor_sup_spec){.name = "--", .children = kids, .nchildren = 1},
             "name: nothing left once sanitised", -1);
  cr_assert_eq(arbor_sup_start(rt, NULL, NULL, NULL), ARBOR_EINVAL);
}

Test(supervisor, spec_errors_inside_nested_specs_are_found_first, TMO)
{
  static struct beh a = {.name = "a"};
  arbor_child_spec inner[] = {{.id = "x", .start = dummy},
                              {.id = "y", .start = dummy},
                              {.id = "x", .start = dummy}};
  arbor_sup_spec sub = {.children = inner, .nchildren = 3};
  arbor_child_spec kids[] = {WORKER("a", &a),
                             {.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub}};
  arbor_sup_spec s = {.children = kids, .nchildren = 2};

  expect_bad(&s, "children[].sup->children[].id: duplicate", 2);
  cr_assert_eq(atomic_load(&a.starts), 0);
}

Test(supervisor, a_spec_that_contains_itself_is_rejected, TMO)
{
  static arbor_sup_spec loop;
  static arbor_child_spec kids[] = {
      {.id = "again", .type = ARBOR_SUPERVISOR, .sup = &loop}};

  loop = (arbor_sup_spec){.children = kids, .nchildren = 1};
  expect_bad(&loop,
             "children[].sup->children[].sup: nested too deep (does a spec "
             "contain itself?)",
             0);
}

Test(supervisor, start_child_validates_its_spec, TMO)
{
  arbor_sup_spec s = {0};
  arbor_pid root = start_root(&s);
  arbor_sup_error e = {0};
  arbor_child_spec cs = {.id = "c", .start = dummy, .restart = 7};
  arbor_child_spec nested = {.id = "n",
                             .type = ARBOR_SUPERVISOR,
                             .sup = &(arbor_sup_spec){.intensity = -2}};

  cr_assert_eq(arbor_sup_start_child(root, &cs, NULL, &e), ARBOR_EBADSPEC);
  cr_assert_str_eq(e.field, "restart: not an arbor_restart");
  cr_assert_eq(e.child, -1);
  cr_assert_eq(arbor_sup_start_child(root, &nested, NULL, &e),
               ARBOR_EBADSPEC);
  cr_assert_str_eq(e.field, "sup->intensity: negative");
  cr_assert_eq(arbor_sup_start_child(root, NULL, NULL, &e), ARBOR_EBADSPEC);
  stop_root(root);
}

Test(supervisor, specs_are_copied_at_start, TMO)
{
  struct beh a = {.name = "a"};
  char id[8] = "a";
  arbor_child_spec kids[] = {{.id = id, .start = worker, .arg = &a}};
  arbor_sup_spec s = {.name = "root", .children = kids, .nchildren = 1};
  arbor_pid root = start_root(&s);

  /* The caller's spec may change or go: the supervisor has its copy. */
  strcpy(id, "zz");
  kids[0].start = NULL;
  s.nchildren = 0;
  tell(pid_of(root, "a"), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&a.acked) == 2);
  cr_assert_eq(state_of(root, "zz"), ARBOR_ENOENT);
  stop_root(root);
}

/* ---- init_ack ------------------------------------------------------------------ */

static int acker(void *arg)
{
  atomic_int *rc = arg;

  atomic_store(rc, 100 + arbor_init_ack(0));
  return 0;
}

Test(supervisor, init_ack_is_a_no_op_outside_supervision, TMO)
{
  atomic_int rc = 0;

  cr_assert_eq(arbor_init_ack(0), ARBOR_ENOTPROC);
  cr_assert_eq(arbor_spawn(rt, NULL, acker, &rc, NULL), 0);
  WAIT_FOR(atomic_load(&rc) == 100);
}

struct asker {
  arbor_pid sup;
  atomic_int rc;
};

static int asks_before_ack(void *arg)
{
  struct asker *a = arg;
  arbor_child_counts k;

  /* Its supervisor waits for this worker's ack: the call cannot work. */
  atomic_store(&a->rc, 100 + arbor_sup_count_children(a->sup, &k));
  arbor_init_ack(0);
  return 0;
}

Test(supervisor, a_worker_asking_its_supervisor_before_its_ack_gets_edeadlk,
     TMO)
{
  struct asker a = {0};
  arbor_sup_spec s = {0};
  arbor_child_spec cs = {.id = "w", .start = asks_before_ack, .arg = &a,
                         .restart = ARBOR_TEMPORARY};

  a.sup = start_root(&s);
  cr_assert_eq(arbor_sup_start_child(a.sup, &cs, NULL, NULL), 0);
  cr_assert_eq(atomic_load(&a.rc), 100 + ARBOR_EDEADLK);
  stop_root(a.sup);
}

/* ---- the store across restarts ------------------------------------------------ */

static int counting_worker(void *arg)
{
  struct beh *b = arg;
  int64_t n = 0;
  int rc = (int)arbor_store_get(0, "starts", &n, sizeof(n));

  if (rc < 0 && rc != ARBOR_ENOENT)
    return rc;
  n++;
  if (arbor_store_set(0, "starts", &n, sizeof(n)) != 0)
    return -1;
  return worker(b);
}

Test(supervisor, the_store_survives_child_and_supervisor_restarts, TMO)
{
  struct beh w = {.name = "w"};
  arbor_child_spec sub_kids[] = {{.id = "w", .start = counting_worker,
                                  .arg = &w}};
  arbor_sup_spec sub = {.name = "sub", .intensity = 0, .period_ms = 5000,
                        .store = 1, .children = sub_kids, .nchildren = 1};
  arbor_child_spec kids[] = {{.id = "sub", .type = ARBOR_SUPERVISOR,
                              .sup = &sub}};
  arbor_sup_spec s = {.intensity = 5, .period_ms = 5000, .children = kids,
                      .nchildren = 1};
  arbor_pid root = start_root(&s), psub = pid_of(root, "sub");
  int64_t n = 0;

  cr_assert_eq(arbor_store_get(psub, "starts", &n, sizeof(n)), sizeof(n));
  cr_assert_eq(n, 1);
  /* sub gives up at once and root restarts it: the store stays. */
  tell(atomic_load(&w.pid), CMD_EXIT, 9);
  WAIT_FOR(atomic_load(&w.acked) == 2);
  cr_assert_neq(pid_of(root, "sub"), psub);
  cr_assert_eq(arbor_store_get(pid_of(root, "sub"), "starts", &n, sizeof(n)),
               sizeof(n));
  cr_assert_eq(n, 2);
  stop_root(root);
}
