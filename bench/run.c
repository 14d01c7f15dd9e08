/* bench/run.c -- running one case: its runtime, its runs, progress and
 * summary statistics.
 *
 * One runtime serves every run of a case: the cold run is the first one on a
 * fresh runtime (stacks not yet mapped, caches empty), the warm runs reuse it,
 * as a Go or Erlang program timing a loop in one process does.  Creating and
 * destroying the runtime is never timed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

static struct {
  bool on;
  bool tty;
  bool shown;      /* a \r line is on screen and not yet ended */
  size_t last_len; /* its length, to blank what a shorter line leaves */
} progress;

void bench_progress_init(bool enabled)
{
  progress.on = enabled;
  progress.tty = isatty(STDERR_FILENO) == 1;
}

/* End the updating line so that whatever follows starts on its own line. */
static void progress_break(void)
{
  if (progress.shown) {
    fputc('\n', stderr);
    progress.shown = false;
    progress.last_len = 0;
  }
}

static void progress_line(const char *line)
{
  size_t len = strlen(line);

  if (!progress.on)
    return;
  if (!progress.tty) {
    fprintf(stderr, "arbor-bench: %s\n", line);
    return;
  }
  fprintf(stderr, "\r%s", line);
  if (progress.last_len > len)
    fprintf(stderr, "%*s", (int)(progress.last_len - len), "");
  fflush(stderr);
  progress.shown = true;
  progress.last_len = len;
}

void bench_progress_end(unsigned runs, double seconds)
{
  char line[96];

  snprintf(line, sizeof(line), "done: %u runs in %.2f s", runs, seconds);
  progress_line(line);
  progress_break();
}

void bench_warn(const char *fmt, ...)
{
  va_list ap;

  progress_break();
  fputs("arbor-bench: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

_Noreturn void bench_hung(const char *what)
{
  bench_warn("%s after %lld s: the runtime looks hung; giving up", what,
             (long long)(BENCH_HANG_MS / 1000));
  /* Processes may still point into our frames, so no clean-up can be safe:
   * leave without running atexit handlers or destroying the runtime. */
  fflush(NULL);
  _Exit(3);
}

void bench_fail(struct bench_run *out, const char *call, int err)
{
  if (out->err == 0) {
    out->err = err;
    out->err_call = call;
  }
  out->ok = false;
}

int bench_quiesce(arbor_rt *rt)
{
  const struct timespec nap = {.tv_sec = 0, .tv_nsec = 100 * 1000};
  int64_t deadline = bench_now_ns() + BENCH_HANG_MS * 1000000;

  for (;;) {
    int64_t live = arbor_rt_live(rt);

    if (live <= 0)
      return (int)live;
    if (bench_now_ns() > deadline)
      bench_hung("waiting for the processes of a run to exit");
    nanosleep(&nap, NULL);
  }
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

double bench_median(const double *v, size_t n)
{
  double *s, m;

  if (n == 0)
    return NAN;
  s = malloc(n * sizeof(*s));
  if (s == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  memcpy(s, v, n * sizeof(*s));
  qsort(s, n, sizeof(*s), cmp_double);
  m = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  free(s);
  return m;
}

void bench_extra_add(struct bench_extras *x, const char *key, double value,
                     int prec)
{
  if (x->n == BENCH_MAX_EXTRAS) {
    bench_warn("too many extras; dropping %s (raise BENCH_MAX_EXTRAS)", key);
    return;
  }
  x->item[x->n++] = (struct bench_extra){key, value, prec};
}

void bench_extra_per_op(struct bench_extras *x, const char *key, const char *op,
                        double ms, double count)
{
  double ns = ms * 1e6 / count;

  bench_extra_add(x, key, ns, 3);
  if (ns >= 100000)
    snprintf(x->per_op, sizeof(x->per_op), "%.1f us/%s", ns / 1000, op);
  else
    snprintf(x->per_op, sizeof(x->per_op), "%.1f ns/%s", ns, op);
}

/* Cold = the first run; median, min and max over the warm runs (over the
 * single run of a one_run workload). */
static void summarize(struct bench_result *r)
{
  unsigned first = r->c.wl->one_run ? 0 : 1;
  unsigned nwarm = r->nruns > first ? r->nruns - first : 0;
  double *warm = malloc((nwarm > 0 ? nwarm : 1) * sizeof(*warm));

  if (warm == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  r->cold_ms = r->nruns > 0 ? r->runs[0].time_ms : NAN;
  r->min_ms = r->max_ms = NAN;
  for (unsigned i = 0; i < nwarm; i++) {
    warm[i] = r->runs[first + i].time_ms;
    if (i == 0 || warm[i] < r->min_ms)
      r->min_ms = warm[i];
    if (i == 0 || warm[i] > r->max_ms)
      r->max_ms = warm[i];
  }
  r->nwarm = nwarm;
  r->median_ms = bench_median(warm, nwarm);
  free(warm);

  strcpy(r->x.per_op, "-");
  if (!isnan(r->median_ms) && r->c.wl->summarize != NULL)
    r->c.wl->summarize(r, &r->x);
}

static void show(const struct bench_case *c, unsigned index, unsigned ncases,
                 unsigned k, unsigned nruns)
{
  char params[128], line[256];

  bench_format_params(c, true, params, sizeof(params));
  snprintf(line, sizeof(line), "[%u/%u] %s sched=%u %s: run %u/%u (%s)",
           index + 1, ncases, c->wl->name, c->sched, params, k + 1, nruns,
           k == 0 ? "cold" : "warm");
  progress_line(line);
}

void bench_run_case(const struct bench_case *c, unsigned index, unsigned ncases,
                    struct bench_result *r)
{
  unsigned planned = c->wl->one_run ? 1 : c->iters + 1;
  arbor_rt *rt = NULL;
  char label[96];
  int err;

  bench_case_label(c, label, sizeof(label));
  memset(r, 0, sizeof(*r));
  r->c = *c;
  r->runs = calloc(planned, sizeof(*r->runs));
  if (r->runs == NULL) {
    bench_warn("out of memory");
    exit(1);
  }

  if (!c->variant->no_rt) {
    err = arbor_rt_create(&rt, &(arbor_rt_opts){.workers = c->sched});
    if (err < 0) {
      r->err = err;
      r->err_call = "arbor_rt_create";
      goto done;
    }
    if (arbor_rt_workers(rt) != (int)c->sched) {
      /* A number labelled sched=N must have been measured with N workers. */
      r->err = ARBOR_EINVAL;
      r->err_call = "arbor_rt_workers (worker count differs from sched)";
      goto done;
    }
  }

  for (unsigned k = 0; k < planned; k++) {
    struct bench_run *run = &r->runs[k];

    show(c, index, ncases, k, planned);
    run->time_ms = NAN;
    c->variant->run(c, rt, run);
    r->nruns++;
    if (run->err != 0) {
      r->err = run->err;
      r->err_call = run->err_call;
      break;
    }
    if (!run->ok)
      bench_warn("%s: run %u/%u failed its own check (ok=0)", label, k + 1,
                 planned);
  }

done:
  arbor_rt_destroy(rt);
  if (r->err != 0)
    bench_warn("%s: %s: %s (%s)", label, r->err_call, arbor_strerror(r->err),
               arbor_err_name(r->err));
  r->ok = r->err == 0 && r->nruns == planned;
  for (unsigned k = 0; k < r->nruns; k++)
    r->ok = r->ok && r->runs[k].ok;
  summarize(r);
}

void bench_result_free(struct bench_result *r)
{
  free(r->runs);
  r->runs = NULL;
}
