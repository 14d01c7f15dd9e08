/* runtime/sup_event.c -- supervision events: levels, routing, built-in sinks.
 *
 * A supervisor fills in an arbor_event and calls arbor__sup_emit(), which
 * stamps it (CLOCK_REALTIME, the kind's level), reads the runtime's sink,
 * its user data and its level under rt->event_lock, and calls the sink after
 * releasing the lock: a slow sink never holds up arbor_rt_set_event_sink()
 * or another supervisor's emit, and a sink may itself call
 * arbor_rt_set_event_sink().  A sink that is replaced may still be running
 * (or about to run) for an event read just before the change; its user data
 * must stay valid until the runtime is destroyed or the program knows no
 * supervisor is emitting.  With no sink set, events at WARN and above go to
 * the logfmt sink on stderr.  The watchdog's ARBOR_EV_PROC_STUCK events
 * come through here too, from the watchdog thread (runtime.c).
 *
 * The built-in sinks build each line in a stack buffer and write it with a
 * single fwrite(), which holds the FILE's lock, so lines from supervisors on
 * different workers never interleave.  Nothing here allocates; there is no
 * memory to reclaim.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/sup.h"

/* A line under construction.  Longest realistic line: a 255-byte dotted
 * name and a 63-byte id (a 255-byte name for a stuck process), each escaped
 * at worst 6 bytes per byte in JSON, plus about 350 bytes of fields: under
 * 3.5 KiB.  Anything longer is cut (the newline is always kept). */
#define LINE_MAX_BYTES 4096

struct line {
  char b[LINE_MAX_BYTES];
  size_t n;
};

static void put(struct line *l, const char *s, size_t len)
{
  /* Keep one byte for the newline. */
  size_t room = sizeof(l->b) - 1 - l->n;

  if (len > room)
    len = room;
  memcpy(l->b + l->n, s, len);
  l->n += len;
}

static void put_str(struct line *l, const char *s)
{
  put(l, s, strlen(s));
}

static void put_char(struct line *l, char c)
{
  put(l, &c, 1);
}

__attribute__((format(printf, 2, 3))) static void putf(struct line *l,
                                                       const char *fmt, ...)
{
  char tmp[128];
  va_list ap;
  int n;

  va_start(ap, fmt);
  /* clang-analyzer 14 loses track of va_start here (a false positive). */
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
  va_end(ap);
  if (n > 0)
    put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void finish(struct line *l, void *ud)
{
  FILE *f = ud != NULL ? ud : stderr;

  l->b[l->n++] = '\n';
  /* One call per line: stdio locks the stream for its duration. */
  (void)fwrite(l->b, 1, l->n, f);
}

/* ---- names and levels --------------------------------------------------- */

const char *arbor_event_name(int kind)
{
  switch (kind) {
  case ARBOR_EV_CHILD_STARTED:
    return "child_started";
  case ARBOR_EV_CHILD_EXITED:
    return "child_exited";
  case ARBOR_EV_CHILD_RESTARTED:
    return "child_restarted";
  case ARBOR_EV_START_FAILED:
    return "start_failed";
  case ARBOR_EV_INTENSITY_EXCEEDED:
    return "intensity_exceeded";
  case ARBOR_EV_SHUTDOWN_BEGUN:
    return "shutdown_begun";
  case ARBOR_EV_SHUTDOWN_FINISHED:
    return "shutdown_finished";
  case ARBOR_EV_PROC_STUCK:
    return "process_stuck";
  default:
    return "unknown";
  }
}

static const char *level_name(int level)
{
  switch (level) {
  case ARBOR_LEVEL_DEBUG:
    return "debug";
  case ARBOR_LEVEL_INFO:
    return "info";
  case ARBOR_LEVEL_WARN:
    return "warn";
  case ARBOR_LEVEL_ERROR:
    return "error";
  default:
    return "unknown";
  }
}

int arbor__event_level_of(int kind, int reason)
{
  switch (kind) {
  case ARBOR_EV_CHILD_STARTED:
    return ARBOR_LEVEL_DEBUG;
  case ARBOR_EV_CHILD_EXITED:
    /* The same line OTP draws: normal and shutdown exits are not
     * failures, everything else (killed included) is. */
    return reason == ARBOR_NORMAL || reason == ARBOR_REASON_SHUTDOWN
               ? ARBOR_LEVEL_INFO
               : ARBOR_LEVEL_WARN;
  case ARBOR_EV_CHILD_RESTARTED:
  case ARBOR_EV_SHUTDOWN_BEGUN:
  case ARBOR_EV_SHUTDOWN_FINISHED:
    return ARBOR_LEVEL_INFO;
  case ARBOR_EV_START_FAILED:
  case ARBOR_EV_PROC_STUCK:
    return ARBOR_LEVEL_WARN;
  case ARBOR_EV_INTENSITY_EXCEEDED:
    return ARBOR_LEVEL_ERROR;
  default:
    return ARBOR_LEVEL_WARN; /* an unknown kind is worth seeing */
  }
}

/* ---- routing ------------------------------------------------------------ */

int arbor_rt_set_event_sink(arbor_rt *rt, arbor_event_sink sink, void *ud,
                            int level)
{
  if (rt == NULL || level < ARBOR_LEVEL_DEBUG || level > ARBOR_LEVEL_ERROR)
    return ARBOR_EINVAL;
  pthread_mutex_lock(&rt->event_lock);
  rt->event_sink = sink;
  /* NULL restores the default entirely: stderr, WARN. */
  rt->event_ud = sink != NULL ? ud : NULL;
  rt->event_level = sink != NULL ? level : ARBOR_LEVEL_WARN;
  pthread_mutex_unlock(&rt->event_lock);
  return 0;
}

void arbor__sup_emit(arbor_rt *rt, arbor_event *ev)
{
  struct timespec ts;
  arbor_event_sink sink;
  void *ud;
  int level;

  clock_gettime(CLOCK_REALTIME, &ts);
  ev->time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  ev->level = arbor__event_level_of(ev->kind, ev->reason);
  if (ev->sup_name == NULL)
    ev->sup_name = "";
  if (ev->child_id == NULL)
    ev->child_id = "";

  /* event_lock guards the three fields together, so a sink never sees
   * another sink's ud. */
  pthread_mutex_lock(&rt->event_lock);
  sink = rt->event_sink;
  ud = rt->event_ud;
  level = rt->event_level;
  pthread_mutex_unlock(&rt->event_lock);

  if (ev->level < level)
    return;
  if (sink == NULL)
    sink = arbor_event_sink_logfmt; /* ud is NULL: stderr */
  sink(ev, ud);
}

/* ---- formatting --------------------------------------------------------- */

/* ev->time_ns as 2026-11-21T09:00:00.123Z (UTC, milliseconds). */
static void put_time(struct line *l, int64_t ns)
{
  int64_t sec = ns / 1000000000, rem = ns % 1000000000;
  time_t t;
  struct tm tm;
  char tmp[64];

  if (rem < 0) { /* floor division, for times before 1970 */
    rem += 1000000000;
    sec--;
  }
  t = (time_t)sec;
  if (gmtime_r(&t, &tm) == NULL ||
      strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    putf(l, "%lld", (long long)ns);
    return;
  }
  put_str(l, tmp);
  putf(l, ".%03dZ", (int)(rem / 1000000));
}

/* A logfmt value: bare if it is a plain token, otherwise quoted, with
 * quotes, backslashes and control bytes escaped.  Bytes >= 0x80 pass
 * through (names are UTF-8). */
static void put_logfmt_value(struct line *l, const char *s)
{
  bool quote = *s == '\0';

  for (const unsigned char *p = (const unsigned char *)s; *p && !quote; p++)
    quote = *p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f;
  if (!quote) {
    put_str(l, s);
    return;
  }
  put_char(l, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      put_str(l, "\\\"");
      break;
    case '\\':
      put_str(l, "\\\\");
      break;
    case '\n':
      put_str(l, "\\n");
      break;
    case '\r':
      put_str(l, "\\r");
      break;
    case '\t':
      put_str(l, "\\t");
      break;
    default:
      if (*p < ' ' || *p == 0x7f)
        putf(l, "\\x%02x", *p);
      else
        put_char(l, (char)*p);
    }
  }
  put_char(l, '"');
}

/* The length of a valid UTF-8 sequence at p, or 0 if it is not one
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *p)
{
  unsigned char c = p[0];
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n;

  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef)
    n = 3;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 4;
  else
    return 0;
  if (c == 0xe0)
    lo = 0xa0;
  else if (c == 0xed)
    hi = 0x9f;
  else if (c == 0xf0)
    lo = 0x90;
  else if (c == 0xf4)
    hi = 0x8f;
  /* A NUL fails the range check, so this never reads past the string. */
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xbf)
      return 0;
  return n;
}

/* A JSON string: RFC 8259 escapes, and U+FFFD for each byte that is not
 * part of valid UTF-8, so the line is always valid JSON. */
static void put_json_string(struct line *l, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;

  put_char(l, '"');
  while (*p != '\0') {
    unsigned char c = *p;

    if (c >= 0x80) {
      size_t n = utf8_len(p);

      if (n == 0) {
        put_str(l, "\\ufffd");
        p++;
      } else {
        put(l, (const char *)p, n);
        p += n;
      }
      continue;
    }
    switch (c) {
    case '"':
      put_str(l, "\\\"");
      break;
    case '\\':
      put_str(l, "\\\\");
      break;
    case '\n':
      put_str(l, "\\n");
      break;
    case '\r':
      put_str(l, "\\r");
      break;
    case '\t':
      put_str(l, "\\t");
      break;
    case '\b':
      put_str(l, "\\b");
      break;
    case '\f':
      put_str(l, "\\f");
      break;
    default:
      if (c < ' ' || c == 0x7f)
        putf(l, "\\u%04x", c);
      else
        put_char(l, (char)c);
    }
    p++;
  }
  put_char(l, '"');
}

static const char *str_or_empty(const char *s)
{
  return s != NULL ? s : "";
}

void arbor_event_sink_logfmt(const arbor_event *ev, void *ud)
{
  struct line l;

  if (ev == NULL)
    return;
  l.n = 0;
  put_str(&l, "time=");
  put_time(&l, ev->time_ns);
  putf(&l, " level=%s event=%s sup=", level_name(ev->level),
       arbor_event_name(ev->kind));
  put_logfmt_value(&l, str_or_empty(ev->sup_name));
  putf(&l, " sup_pid=0x%llx child=", (unsigned long long)ev->sup);
  put_logfmt_value(&l, str_or_empty(ev->child_id));
  putf(&l, " child_pid=0x%llx reason=%d reason_name=%s restarts=%llu",
       (unsigned long long)ev->child, ev->reason, arbor_reason_name(ev->reason),
       (unsigned long long)ev->restarts);
  if (ev->kind == ARBOR_EV_PROC_STUCK)
    putf(&l, " worker=%d duration_ns=%lld", ev->worker,
         (long long)ev->duration_ns);
  finish(&l, ud);
}

/* Pids are strings ("0x..."): 64-bit integers lose precision as JSON
 * numbers in most parsers. */
void arbor_event_sink_jsonl(const arbor_event *ev, void *ud)
{
  struct line l;

  if (ev == NULL)
    return;
  l.n = 0;
  put_str(&l, "{\"time\":\"");
  put_time(&l, ev->time_ns);
  putf(&l,
       "\",\"level\":\"%s\",\"event\":\"%s\",\"sup\":", level_name(ev->level),
       arbor_event_name(ev->kind));
  put_json_string(&l, str_or_empty(ev->sup_name));
  putf(&l, ",\"sup_pid\":\"0x%llx\",\"child\":", (unsigned long long)ev->sup);
  put_json_string(&l, str_or_empty(ev->child_id));
  putf(&l,
       ",\"child_pid\":\"0x%llx\",\"reason\":%d,\"reason_name\":\"%s\","
       "\"restarts\":%llu",
       (unsigned long long)ev->child, ev->reason, arbor_reason_name(ev->reason),
       (unsigned long long)ev->restarts);
  if (ev->kind == ARBOR_EV_PROC_STUCK)
    putf(&l, ",\"worker\":%d,\"duration_ns\":%lld", ev->worker,
         (long long)ev->duration_ns);
  put_char(&l, '}');
  finish(&l, ud);
}
