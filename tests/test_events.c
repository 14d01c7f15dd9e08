/* tests/test_events.c -- white-box tests of runtime/sup_event.c (events and
 * sinks) and runtime/sup_dump.c (tree dumps).
 *
 * Events are emitted straight through arbor__sup_emit(), with no supervisor.
 * The built-in sinks write to memory streams and are compared byte for
 * byte, at a fixed time.  The dump formatter is compiled a second time in
 * this file against a fake management API (see "Dumps of a fake tree"), so
 * its exact output is tested without supervisors; the test of a dump of a
 * real tree is compiled only once runtime/supervisor.c exists, and reports
 * itself as skipped until then.
 */
#include "runtime/sup.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static arbor_rt *rt;

static void setup(void)
{
  arbor_rt_opts o = {.workers = 2};

  cr_assert_eq(arbor_rt_create(&rt, &o), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a sink that records ------------------------------------------------- */

#define REC_MAX 64

struct rec {
  pthread_mutex_t lock;
  unsigned n;
  arbor_event ev[REC_MAX]; /* strings point into the arrays below */
  char sup_name[REC_MAX][ARBOR_NAME_MAX];
  char child_id[REC_MAX][ARBOR_ID_MAX];
  void *ud[REC_MAX];
};

static struct rec rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record(const arbor_event *ev, void *ud)
{
  pthread_mutex_lock(&rec.lock);
  if (rec.n < REC_MAX) {
    unsigned i = rec.n++;

    rec.ev[i] = *ev;
    snprintf(rec.sup_name[i], ARBOR_NAME_MAX, "%s", ev->sup_name);
    snprintf(rec.child_id[i], ARBOR_ID_MAX, "%s", ev->child_id);
    rec.ev[i].sup_name = rec.sup_name[i];
    rec.ev[i].child_id = rec.child_id[i];
    rec.ud[i] = ud;
  }
  pthread_mutex_unlock(&rec.lock);
}

static int64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void emit(int kind, int reason)
{
  arbor_event ev = {.kind = kind,
                    .sup_name = "root",
                    .sup = 1,
                    .child_id = "c",
                    .child = 2,
                    .reason = reason};

  arbor__sup_emit(rt, &ev);
}

/* ---- emit and routing ---------------------------------------------------- */

Test(events, a_custom_sink_receives_every_field)
{
  int ud;
  arbor_event ev = {.kind = ARBOR_EV_CHILD_EXITED,
                    .level = 99, /* overwritten */
                    .time_ns = 5,
                    .sup_name = "root.telemetry",
                    .sup = 0x123456789abcdefull,
                    .child_id = "collector",
                    .child = 0xfedcba987654321ull,
                    .reason = 7,
                    .restarts = 3};
  int64_t before, after;

  cr_assert_eq(arbor_rt_set_event_sink(rt, record, &ud, ARBOR_LEVEL_DEBUG), 0);
  before = now_ns();
  arbor__sup_emit(rt, &ev);
  after = now_ns();

  cr_assert_eq(rec.n, 1);
  cr_assert_eq(rec.ud[0], &ud);
  cr_assert_eq(rec.ev[0].kind, ARBOR_EV_CHILD_EXITED);
  cr_assert_eq(rec.ev[0].level, ARBOR_LEVEL_WARN);
  cr_assert(rec.ev[0].time_ns >= before && rec.ev[0].time_ns <= after,
            "time %lld not in [%lld, %lld]", (long long)rec.ev[0].time_ns,
            (long long)before, (long long)after);
  cr_assert_str_eq(rec.ev[0].sup_name, "root.telemetry");
  cr_assert_eq(rec.ev[0].sup, 0x123456789abcdefull);
  cr_assert_str_eq(rec.ev[0].child_id, "collector");
  cr_assert_eq(rec.ev[0].child, 0xfedcba987654321ull);
  cr_assert_eq(rec.ev[0].reason, 7);
  cr_assert_eq(rec.ev[0].restarts, 3);
  /* The caller's record was stamped too. */
  cr_assert_eq(ev.time_ns, rec.ev[0].time_ns);
  cr_assert_eq(ev.level, ARBOR_LEVEL_WARN);
}

Test(events, missing_names_reach_the_sink_as_empty_strings)
{
  arbor_event ev = {.kind = ARBOR_EV_SHUTDOWN_BEGUN, .sup = 1};

  cr_assert_eq(arbor_rt_set_event_sink(rt, record, NULL, ARBOR_LEVEL_DEBUG), 0);
  arbor__sup_emit(rt, &ev);
  cr_assert_eq(rec.n, 1);
  cr_assert_str_eq(rec.ev[0].sup_name, "");
  cr_assert_str_eq(rec.ev[0].child_id, "");
}

Test(events, each_kind_has_its_level)
{
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_CHILD_STARTED, 0),
               ARBOR_LEVEL_DEBUG);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_CHILD_EXITED, ARBOR_NORMAL),
               ARBOR_LEVEL_INFO);
  cr_assert_eq(
      arbor__event_level_of(ARBOR_EV_CHILD_EXITED, ARBOR_REASON_SHUTDOWN),
      ARBOR_LEVEL_INFO);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_CHILD_EXITED, 1),
               ARBOR_LEVEL_WARN);
  cr_assert_eq(
      arbor__event_level_of(ARBOR_EV_CHILD_EXITED, ARBOR_REASON_KILLED),
      ARBOR_LEVEL_WARN);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_CHILD_RESTARTED, 1),
               ARBOR_LEVEL_INFO);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_START_FAILED, 1),
               ARBOR_LEVEL_WARN);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_INTENSITY_EXCEEDED, 0),
               ARBOR_LEVEL_ERROR);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_SHUTDOWN_BEGUN, 0),
               ARBOR_LEVEL_INFO);
  cr_assert_eq(arbor__event_level_of(ARBOR_EV_SHUTDOWN_FINISHED, 0),
               ARBOR_LEVEL_INFO);
  cr_assert_eq(arbor__event_level_of(42, 0), ARBOR_LEVEL_WARN);
}

/* Emit one of each, and return which kinds (bit per kind) got through. */
static unsigned passed_at(int level)
{
  unsigned bits = 0;

  rec.n = 0;
  cr_assert_eq(arbor_rt_set_event_sink(rt, record, NULL, level), 0);
  emit(ARBOR_EV_CHILD_STARTED, 0);
  emit(ARBOR_EV_CHILD_EXITED, ARBOR_NORMAL);
  emit(ARBOR_EV_CHILD_RESTARTED, 1);
  emit(ARBOR_EV_START_FAILED, 1);
  emit(ARBOR_EV_INTENSITY_EXCEEDED, ARBOR_REASON_SHUTDOWN);
  for (unsigned i = 0; i < rec.n; i++)
    bits |= 1u << rec.ev[i].kind;
  return bits;
}

Test(events, the_sink_gets_only_events_at_or_above_its_level)
{
  const unsigned all =
      1u << ARBOR_EV_CHILD_STARTED | 1u << ARBOR_EV_CHILD_EXITED |
      1u << ARBOR_EV_CHILD_RESTARTED | 1u << ARBOR_EV_START_FAILED |
      1u << ARBOR_EV_INTENSITY_EXCEEDED;

  cr_assert_eq(passed_at(ARBOR_LEVEL_DEBUG), all);
  cr_assert_eq(passed_at(ARBOR_LEVEL_INFO),
               all & ~(1u << ARBOR_EV_CHILD_STARTED));
  cr_assert_eq(passed_at(ARBOR_LEVEL_WARN),
               1u << ARBOR_EV_START_FAILED | 1u << ARBOR_EV_INTENSITY_EXCEEDED);
  cr_assert_eq(passed_at(ARBOR_LEVEL_ERROR), 1u << ARBOR_EV_INTENSITY_EXCEEDED);
}

Test(events, set_event_sink_rejects_bad_arguments)
{
  cr_assert_eq(arbor_rt_set_event_sink(NULL, record, NULL, ARBOR_LEVEL_INFO),
               ARBOR_EINVAL);
  cr_assert_eq(arbor_rt_set_event_sink(rt, record, NULL, -1), ARBOR_EINVAL);
  cr_assert_eq(arbor_rt_set_event_sink(rt, record, NULL, ARBOR_LEVEL_ERROR + 1),
               ARBOR_EINVAL);
  cr_assert_eq(arbor_rt_set_event_sink(rt, NULL, NULL, 7), ARBOR_EINVAL);
  /* A failed call changed nothing: still the default (stderr at WARN),
   * so the recorder sees nothing. */
  rec.n = 0;
  emit(ARBOR_EV_CHILD_RESTARTED, 0);
  cr_assert_eq(rec.n, 0);
}

/* Run fn with fd 2 sent to a temporary file; return what was written. */
static char *capture_stderr(void (*fn)(void))
{
  FILE *tmp = tmpfile();
  int saved = dup(2);
  long n;
  char *s;

  cr_assert(tmp != NULL && saved >= 0);
  fflush(stderr);
  cr_assert_eq(dup2(fileno(tmp), 2), 2);
  fn();
  fflush(stderr);
  cr_assert_eq(dup2(saved, 2), 2);
  close(saved);
  n = ftell(tmp);
  cr_assert_geq(n, 0);
  s = calloc(1, (size_t)n + 1);
  cr_assert_not_null(s);
  rewind(tmp);
  cr_assert_eq(fread(s, 1, (size_t)n, tmp), (size_t)n);
  fclose(tmp);
  return s;
}

static void default_sink_events(void)
{
  emit(ARBOR_EV_CHILD_STARTED, 0);      /* debug: filtered */
  emit(ARBOR_EV_CHILD_EXITED, 0);       /* info: filtered */
  emit(ARBOR_EV_START_FAILED, 1);       /* warn */
  emit(ARBOR_EV_INTENSITY_EXCEEDED, 0); /* error */
}

Test(events, the_default_sink_writes_logfmt_to_stderr_at_warn)
{
  static const char line1[] =
      " level=warn event=start_failed sup=root sup_pid=0x1 child=c "
      "child_pid=0x2 reason=1 reason_name=user restarts=0\n";
  int ud;
  char *out;
  const char *p;

  /* Set a sink, then go back to the default: ud and level are reset. */
  cr_assert_eq(arbor_rt_set_event_sink(rt, record, &ud, ARBOR_LEVEL_DEBUG), 0);
  cr_assert_eq(arbor_rt_set_event_sink(rt, NULL, &ud, ARBOR_LEVEL_DEBUG), 0);
  out = capture_stderr(default_sink_events);
  cr_assert_eq(rec.n, 0);

  p = out;
  cr_assert_eq(strncmp(p, "time=", 5), 0, "got: %s", out);
  p = strchr(p, ' ');
  cr_assert_not_null(p);
  cr_assert_eq(strncmp(p, line1, strlen(line1)), 0, "got: %s", out);
  p = strchr(p, '\n') + 1;
  cr_assert_eq(strncmp(p, "time=", 5), 0, "got: %s", out);
  p = strstr(p, " level=error event=intensity_exceeded ");
  cr_assert_not_null(p, "got: %s", out);
  p = strchr(p, '\n');
  cr_assert(p != NULL && p[1] == '\0', "got: %s", out);
  free(out);
}

/* A sink that changes the sink: deadlocks if called under event_lock. */
static void reentrant_sink(const arbor_event *ev, void *ud)
{
  (void)ev;
  *(int *)ud = arbor_rt_set_event_sink(rt, record, NULL, ARBOR_LEVEL_DEBUG);
}

Test(events, the_sink_runs_without_the_lock_held, .timeout = 10)
{
  int r = 1;

  cr_assert_eq(
      arbor_rt_set_event_sink(rt, reentrant_sink, &r, ARBOR_LEVEL_DEBUG), 0);
  emit(ARBOR_EV_CHILD_STARTED, 0);
  cr_assert_eq(r, 0);
  emit(ARBOR_EV_CHILD_STARTED, 0);
  cr_assert_eq(rec.n, 1);
}

/* ---- the built-in sinks -------------------------------------------------- */

/* 2026-11-21T09:00:00.123Z */
#define T0 (1795251600LL * 1000000000 + 123456789)

static char *fmt_event(void (*sink)(const arbor_event *, void *),
                       const arbor_event *ev)
{
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);

  cr_assert_not_null(f);
  sink(ev, f);
  cr_assert_eq(fclose(f), 0);
  return s;
}

static const arbor_event sample = {.time_ns = T0,
                                   .kind = ARBOR_EV_CHILD_EXITED,
                                   .level = ARBOR_LEVEL_WARN,
                                   .sup_name = "root.telemetry",
                                   .sup = 0x1000002,
                                   .child_id = "collector",
                                   .child = 0x2000005,
                                   .reason = ARBOR_REASON_KILLED,
                                   .restarts = 3};

Test(events, logfmt_lines_are_exact)
{
  arbor_event ev = sample;
  char *s = fmt_event(arbor_event_sink_logfmt, &ev);

  cr_assert_str_eq(s, "time=2026-11-21T09:00:00.123Z level=warn "
                      "event=child_exited sup=root.telemetry "
                      "sup_pid=0x1000002 child=collector child_pid=0x2000005 "
                      "reason=-5002 reason_name=killed restarts=3\n");
  free(s);

  /* Values with spaces, quotes, '=', backslashes or control bytes are
   * quoted and escaped; empty ones are "". */
  ev.kind = ARBOR_EV_SHUTDOWN_FINISHED;
  ev.level = ARBOR_LEVEL_INFO;
  ev.sup_name = "a b=c";
  ev.child_id = "say \"hi\"\\\n\t\x01";
  ev.child = 0;
  ev.reason = ARBOR_REASON_SHUTDOWN;
  ev.restarts = 0;
  s = fmt_event(arbor_event_sink_logfmt, &ev);
  cr_assert_str_eq(s,
                   "time=2026-11-21T09:00:00.123Z level=info "
                   "event=shutdown_finished sup=\"a b=c\" "
                   "sup_pid=0x1000002 child=\"say \\\"hi\\\"\\\\\\n\\t\\x01\" "
                   "child_pid=0x0 reason=-5001 reason_name=shutdown "
                   "restarts=0\n");
  free(s);

  ev.child_id = "";
  s = fmt_event(arbor_event_sink_logfmt, &ev);
  cr_assert_not_null(strstr(s, " child=\"\" child_pid=0x0 "), "got: %s", s);
  free(s);
}

Test(events, jsonl_lines_are_exact_and_escaped)
{
  arbor_event ev = sample;
  char *s = fmt_event(arbor_event_sink_jsonl, &ev);

  cr_assert_str_eq(s,
                   "{\"time\":\"2026-11-21T09:00:00.123Z\",\"level\":\"warn\","
                   "\"event\":\"child_exited\",\"sup\":\"root.telemetry\","
                   "\"sup_pid\":\"0x1000002\",\"child\":\"collector\","
                   "\"child_pid\":\"0x2000005\",\"reason\":-5002,"
                   "\"reason_name\":\"killed\",\"restarts\":3}\n");
  free(s);

  /* Quotes, backslashes, control bytes; valid UTF-8 (é) kept, an invalid
   * byte (0xff) and a truncated sequence (0xc3 at the end) replaced. */
  ev.sup_name = "q\"b\\n\nt\tc\x01\x7f";
  ev.child_id = "caf\xc3\xa9 \xff!\xc3";
  ev.reason = ARBOR_EINVAL;
  s = fmt_event(arbor_event_sink_jsonl, &ev);
  cr_assert_str_eq(s,
                   "{\"time\":\"2026-11-21T09:00:00.123Z\",\"level\":\"warn\","
                   "\"event\":\"child_exited\","
                   "\"sup\":\"q\\\"b\\\\n\\nt\\tc\\u0001\\u007f\","
                   "\"sup_pid\":\"0x1000002\","
                   "\"child\":\"caf\xc3\xa9 \\ufffd!\\ufffd\","
                   "\"child_pid\":\"0x2000005\",\"reason\":-22,"
                   "\"reason_name\":\"ARBOR_EINVAL\",\"restarts\":3}\n");
  free(s);
}

Test(events, times_before_1970_are_formatted)
{
  arbor_event ev = sample;
  char *s;

  ev.time_ns = -1; /* 1969-12-31T23:59:59.999Z */
  s = fmt_event(arbor_event_sink_logfmt, &ev);
  cr_assert_eq(strncmp(s, "time=1969-12-31T23:59:59.999Z ", 30), 0, "got: %s",
               s);
  free(s);
}

Test(events, an_overlong_line_is_cut_but_keeps_its_newline)
{
  static char name[6000];
  arbor_event ev = sample;
  char *s;

  memset(name, 'n', sizeof(name) - 1);
  ev.sup_name = name;
  s = fmt_event(arbor_event_sink_jsonl, &ev);
  cr_assert_leq(strlen(s), 4096);
  cr_assert_eq(s[strlen(s) - 1], '\n');
  cr_assert_eq(strchr(s, '\n'), s + strlen(s) - 1);
  free(s);
}

#define LINE_THREADS 4
#define LINES_EACH 2000

static FILE *shared_out;

static void *emitter(void *arg)
{
  char name[96];
  arbor_event ev = sample;

  snprintf(name, sizeof(name), "sup%d.%s", (int)(intptr_t)arg,
           "with a long tail to make lines longer than a few bytes");
  ev.sup_name = name;
  for (int i = 0; i < LINES_EACH; i++) {
    ev.restarts = (uint64_t)i;
    arbor_event_sink_jsonl(&ev, shared_out);
  }
  return NULL;
}

Test(events, lines_from_concurrent_emitters_never_interleave)
{
  pthread_t t[LINE_THREADS];
  char line[1024];
  unsigned count[LINE_THREADS] = {0};

  shared_out = tmpfile();
  cr_assert_not_null(shared_out);
  /* A small buffer makes a torn line likely if writes were split. */
  setvbuf(shared_out, NULL, _IOFBF, 64);
  for (int i = 0; i < LINE_THREADS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, emitter, (void *)(intptr_t)i), 0);
  for (int i = 0; i < LINE_THREADS; i++)
    cr_assert_eq(pthread_join(t[i], NULL), 0);
  rewind(shared_out);
  while (fgets(line, sizeof(line), shared_out) != NULL) {
    int who;
    size_t n = strlen(line);

    cr_assert(n > 2 && line[0] == '{' && line[n - 2] == '}' &&
                  line[n - 1] == '\n',
              "torn line: %s", line);
    cr_assert_eq(sscanf(strstr(line, "\"sup\":\"sup"), "\"sup\":\"sup%d", &who),
                 1, "line: %s", line);
    cr_assert(who >= 0 && who < LINE_THREADS);
    count[who]++;
  }
  fclose(shared_out);
  for (int i = 0; i < LINE_THREADS; i++)
    cr_assert_eq(count[i], LINES_EACH);
}

Test(events, every_kind_has_a_name)
{
  static const char *const names[] = {
      "child_started",     "child_exited",       "child_restarted",
      "start_failed",      "intensity_exceeded", "shutdown_begun",
      "shutdown_finished", "process_stuck",
  };

  for (int k = 0; k < 8; k++)
    cr_assert_str_eq(arbor_event_name(k), names[k]);
  cr_assert_str_eq(arbor_event_name(-1), "unknown");
  cr_assert_str_eq(arbor_event_name(8), "unknown");
}

/* ---- dumps of a fake tree ------------------------------------------------
 * runtime/sup_dump.c uses only arbor_sup_which_children(), arbor_name() and
 * arbor__rt_of_pid().  Here it is compiled a second time with those names
 * (and its own) renamed, so this copy runs against the table below; the
 * real arbor_sup_dump() in arbor_objects is untouched. */

static int fake_which_children(arbor_pid sup, arbor_child_info *out,
                               size_t cap);
static int fake_name(arbor_rt *r, arbor_pid pid, char *buf, size_t cap);
static arbor_rt *fake_rt_of_pid(arbor_pid pid);
int64_t fake_sup_dump(arbor_pid sup, int format, char *buf, size_t cap);

#define arbor_sup_which_children fake_which_children
#define arbor_name fake_name
#define arbor__rt_of_pid fake_rt_of_pid
#define arbor_sup_dump fake_sup_dump
#include "runtime/sup_dump.c"
#undef arbor_sup_which_children
#undef arbor_name
#undef arbor__rt_of_pid
#undef arbor_sup_dump

#define W ARBOR_WORKER
#define S ARBOR_SUPERVISOR
#define RUN ARBOR_CHILD_RUNNING
#define RST ARBOR_CHILD_RESTARTING
#define UND ARBOR_CHILD_UNDEFINED

struct fake_sup {
  arbor_pid pid;
  const char *name;
  size_t n;
  arbor_child_info kids[8];
};

static const struct fake_sup fakes[] = {
    {0x100,
     "root",
     4,
     {{"db", 0x101, RUN, W, 0, 0, 0, 0},
      {"telemetry", 0x102, RUN, S, 0, 0, 0, 2},
      {"admin", 0x103, RUN, S, 0, 0, 0, 0},
      {"old", 0, UND, W, 0, 0, 0, 1}}},
    {0x102,
     "root.telemetry",
     2,
     {{"collector", 0, RST, W, 0, 0, 0, 3},
      {"flusher", 0x105, RUN, W, 0, 0, 0, 0}}},
    /* 0x107 is not in the table: it "exited" after admin listed it. */
    {0x103,
     "root.admin",
     2,
     {{"we\"ird\n", 0x106, RUN, W, 0, 0, 0, 0},
      {"gone", 0x107, RUN, S, 0, 0, 0, 0}}},
    {.pid = 0x200, .name = ""},
};

static unsigned wide_n = 40; /* children of the "wide" root, 0x300 */

static int fake_which_children(arbor_pid sup, arbor_child_info *out, size_t cap)
{
  if (sup == 0x300) {
    for (size_t i = 0; i < wide_n && i < cap; i++) {
      memset(&out[i], 0, sizeof(out[i]));
      snprintf(out[i].id, sizeof(out[i].id), "c%zu", i);
      out[i].pid = 0x1000 + i;
    }
    return (int)wide_n;
  }
  for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++) {
    if (fakes[i].pid != sup)
      continue;
    for (size_t j = 0; j < fakes[i].n && j < cap; j++)
      out[j] = fakes[i].kids[j];
    return (int)fakes[i].n;
  }
  return ARBOR_ESRCH;
}

static int fake_name(arbor_rt *r, arbor_pid pid, char *buf, size_t cap)
{
  (void)r;
  if (pid == 0x300)
    return snprintf(buf, cap, "wide");
  for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++)
    if (fakes[i].pid == pid)
      return snprintf(buf, cap, "%s", fakes[i].name);
  return ARBOR_ESRCH;
}

static arbor_rt *fake_rt_of_pid(arbor_pid pid)
{
  return pid != 0 ? rt : NULL;
}

static const char fake_text[] =
    "root (pid 0x100, supervisor, running)\n"
    "├── db (pid 0x101, worker, running, restarts 0)\n"
    "├── telemetry (pid 0x102, supervisor, running, restarts 2)\n"
    "│   ├── collector (pid -, worker, restarting, restarts 3)\n"
    "│   └── flusher (pid 0x105, worker, running, restarts 0)\n"
    "├── admin (pid 0x103, supervisor, running, restarts 0)\n"
    "│   ├── we\"ird? (pid 0x106, worker, running, restarts 0)\n"
    "│   └── gone (pid 0x107, supervisor, running, restarts 0)\n"
    "│       └── (children unavailable: ARBOR_ESRCH)\n"
    "└── old (pid -, worker, undefined, restarts 1)\n";

static const char fake_dot[] =
    "digraph arbor {\n"
    "  node [fontname=\"monospace\"];\n"
    "  n0 [label=\"root\\npid 0x100\\nsupervisor, running\", shape=box];\n"
    "  n1 [label=\"db\\npid 0x101\\nworker, running\\nrestarts 0\", "
    "shape=ellipse];\n"
    "  n0 -> n1;\n"
    "  n2 [label=\"telemetry\\npid 0x102\\nsupervisor, running\\nrestarts 2\", "
    "shape=box];\n"
    "  n0 -> n2;\n"
    "  n3 [label=\"collector\\npid -\\nworker, restarting\\nrestarts 3\", "
    "shape=ellipse, color=orange];\n"
    "  n2 -> n3;\n"
    "  n4 [label=\"flusher\\npid 0x105\\nworker, running\\nrestarts 0\", "
    "shape=ellipse];\n"
    "  n2 -> n4;\n"
    "  n5 [label=\"admin\\npid 0x103\\nsupervisor, running\\nrestarts 0\", "
    "shape=box];\n"
    "  n0 -> n5;\n"
    "  n6 [label=\"we\\\"ird?\\npid 0x106\\nworker, running\\nrestarts 0\", "
    "shape=ellipse];\n"
    "  n5 -> n6;\n"
    "  n7 [label=\"gone\\npid 0x107\\nsupervisor, running\\nrestarts 0\", "
    "shape=box];\n"
    "  n5 -> n7;\n"
    "  n8 [label=\"ARBOR_ESRCH\", shape=plaintext];\n"
    "  n7 -> n8;\n"
    "  n9 [label=\"old\\npid -\\nworker, undefined\\nrestarts 1\", "
    "shape=ellipse, style=dashed, color=gray50];\n"
    "  n0 -> n9;\n"
    "}\n";

Test(events, dump_text_of_a_fake_tree_is_exact)
{
  char buf[2048];

  cr_assert_eq(fake_sup_dump(0x100, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               (int64_t)strlen(fake_text));
  cr_assert_str_eq(buf, fake_text);
}

Test(events, dump_dot_of_a_fake_tree_is_exact)
{
  char buf[4096];

  cr_assert_eq(fake_sup_dump(0x100, ARBOR_DUMP_DOT, buf, sizeof(buf)),
               (int64_t)strlen(fake_dot));
  cr_assert_str_eq(buf, fake_dot);
}

/* Whether s[0..n) ends on a whole UTF-8 character. */
static bool whole_utf8(const char *s, size_t n)
{
  size_t i = n, need;
  unsigned char lead;

  while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
    i--;
  if (i == 0)
    return n == 0;
  lead = (unsigned char)s[i - 1];
  need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return (i - 1) + need == n;
}

Test(events, dump_truncates_safely_at_every_size)
{
  const size_t len = strlen(fake_text);
  char buf[2048];

  /* Just the length. */
  cr_assert_eq(fake_sup_dump(0x100, ARBOR_DUMP_TEXT, NULL, 0), (int64_t)len);
  for (size_t cap = 1; cap <= len + 2; cap++) {
    size_t got;

    memset(buf, '@', sizeof(buf));
    cr_assert_eq(fake_sup_dump(0x100, ARBOR_DUMP_TEXT, buf, cap), (int64_t)len);
    got = strlen(buf);
    cr_assert_lt(got, cap, "cap %zu", cap);
    /* A prefix, short of cap-1 by at most a partial character. */
    cr_assert_geq(got + 3, cap - 1 < len ? cap - 1 : len, "cap %zu", cap);
    cr_assert_eq(memcmp(buf, fake_text, got), 0, "cap %zu", cap);
    cr_assert(whole_utf8(buf, got), "cap %zu cut a character", cap);
    cr_assert_eq(buf[cap], '@', "cap %zu: wrote past the buffer", cap);
  }
}

Test(events, dump_errors_leave_the_buffer_untouched)
{
  char buf[16] = "untouched";

  cr_assert_eq(fake_sup_dump(0, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               ARBOR_EINVAL);
  cr_assert_eq(fake_sup_dump(0x100, 2, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_assert_eq(fake_sup_dump(0x100, -1, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_assert_eq(fake_sup_dump(0x100, ARBOR_DUMP_TEXT, NULL, 1), ARBOR_EINVAL);
  cr_assert_eq(fake_sup_dump(0x999, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               ARBOR_ESRCH);
  cr_assert_eq(fake_sup_dump(0x999, ARBOR_DUMP_DOT, buf, sizeof(buf)),
               ARBOR_ESRCH);
  cr_assert_str_eq(buf, "untouched");
}

Test(events, dump_handles_many_children_and_no_name)
{
  char buf[4096];
  int64_t n;
  unsigned lines = 0;

  n = fake_sup_dump(0x300, ARBOR_DUMP_TEXT, buf, sizeof(buf));
  cr_assert_gt(n, 0);
  cr_assert_lt(n, (int64_t)sizeof(buf));
  for (const char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
    lines++;
  cr_assert_eq(lines, 1 + wide_n);
  cr_assert_not_null(strstr(buf, "├── c0 (pid 0x1000, worker, running, "
                                 "restarts 0)\n"));
  cr_assert_not_null(strstr(buf, "└── c39 (pid 0x1027, worker, running, "
                                 "restarts 0)\n"));

  n = fake_sup_dump(0x200, ARBOR_DUMP_TEXT, buf, sizeof(buf));
  cr_assert_str_eq(buf, "(unnamed) (pid 0x200, supervisor, running)\n");
  cr_assert_eq(n, (int64_t)strlen(buf));
}

/* ---- a dump of a real tree ------------------------------------------------
 */

#if defined(__has_include)
#if __has_include("runtime/supervisor.c")
#define HAVE_SUPERVISOR 1
#endif
#endif

#ifdef HAVE_SUPERVISOR

static int real_worker(void *arg)
{
  arbor_msg m;

  (void)arg;
  (void)arbor_init_ack(0);
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return 0;
}

static const arbor_child_spec inner_kids[] = {
    {.id = "a", .start = real_worker},
    {.id = "b", .start = real_worker},
};
static const arbor_sup_spec inner_spec = {
    .name = "inner", .children = inner_kids, .nchildren = 2};
static const arbor_child_spec root_kids[] = {
    {.id = "w1", .start = real_worker},
    {.id = "inner", .type = ARBOR_SUPERVISOR, .sup = &inner_spec},
};
static const arbor_sup_spec root_spec = {
    .name = "root", .children = root_kids, .nchildren = 2};

Test(events, dump_of_a_running_tree)
{
  arbor_sup_error err = {0};
  arbor_pid sup = 0;
  char buf[4096], want[128];
  int64_t n;
  const char *p;
  unsigned edges = 0;

  cr_assert_eq(arbor_sup_start(rt, &root_spec, &sup, &err), 0,
               "start failed: field %s child %ld id %s reason %d",
               err.field ? err.field : "-", err.child, err.id, err.reason);

  n = arbor_sup_dump(sup, ARBOR_DUMP_TEXT, buf, sizeof(buf));
  cr_assert_gt(n, 0);
  cr_assert_eq(n, (int64_t)strlen(buf));
  snprintf(want, sizeof(want), "root (pid 0x%llx, supervisor, running)\n",
           (unsigned long long)sup);
  cr_assert_eq(strncmp(buf, want, strlen(want)), 0, "got:\n%s", buf);
  p = strstr(buf, "├── w1 (pid 0x");
  cr_assert_not_null(p, "got:\n%s", buf);
  cr_assert_not_null(strstr(p, ", worker, running, restarts 0)\n"));
  p = strstr(buf, "└── inner (pid 0x");
  cr_assert_not_null(p, "got:\n%s", buf);
  cr_assert_not_null(strstr(p, ", supervisor, running, restarts 0)\n"
                               "    ├── a (pid 0x"),
                     "got:\n%s", buf);
  cr_assert_not_null(strstr(p, "    └── b (pid 0x"), "got:\n%s", buf);

  n = arbor_sup_dump(sup, ARBOR_DUMP_DOT, buf, sizeof(buf));
  cr_assert_eq(n, (int64_t)strlen(buf));
  cr_assert_eq(strncmp(buf, "digraph arbor {\n", 16), 0, "got:\n%s", buf);
  for (p = buf; (p = strstr(p, " -> ")) != NULL; p++)
    edges++;
  cr_assert_eq(edges, 4, "got:\n%s", buf);

  cr_assert_eq(arbor_sup_stop(sup, 10000), 0);
  cr_assert_eq(arbor_sup_dump(sup, ARBOR_DUMP_TEXT, buf, sizeof(buf)),
               ARBOR_ESRCH);
}

#else

Test(events, dump_of_a_running_tree)
{
  cr_skip_test("runtime/supervisor.c is not there yet: no real tree to dump");
}

#endif
