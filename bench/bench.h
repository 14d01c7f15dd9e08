/* bench/bench.h -- arbor-bench: the workload interface, the registry and the
 * types shared by the runner and the reports.
 *
 * A workload (one wl_<name>.c file) describes its parameters and one or more
 * variants; each variant has a run function that performs one timed run and
 * checks its own result.  The runner (run.c) turns a workload, a variant, a
 * worker count and the parameter values into a "case", runs it once cold and
 * `iters` times warm on one runtime, and the reports (report.c) print the
 * results.  Adding a workload means one new file and one line in registry.c;
 * the semantics every workload must follow are those of
 * ../shared/bench/WORKLOADS.md (shared with the Go and Erlang programs).
 */
#ifndef ARBOR_BENCH_BENCH_H
#define ARBOR_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <arbor.h>

#define BENCH_MAX_PARAMS 4
#define BENCH_MAX_VARIANTS 4
#define BENCH_MAX_EXTRAS 8
#define BENCH_MAX_AUX 4

/* How long the runner waits for a workload's processes before it declares
 * the runtime hung.  Generous: a full-profile run on a slow machine must
 * never trip it. */
#define BENCH_HANG_MS ((int64_t)600 * 1000)

enum bench_profile {
  BENCH_PROFILE_DEFAULT = 0,
  BENCH_PROFILE_QUICK = 1,
  BENCH_PROFILE_FULL = 2,
};

/* One key=value parameter of a workload.  `sched`, `iters` and `variant` are
 * the runner's and never appear here. */
struct bench_param {
  const char *key;
  int64_t dflt;  /* the default and full profiles (WORKLOADS.md's table) */
  int64_t quick; /* the quick profile: small enough for CI */
  int64_t min;   /* smallest accepted value */
};

struct bench_case;
struct bench_run;
struct bench_result;
struct bench_extras;

struct bench_variant {
  /* NULL for the single variant of a workload that has no variants. */
  const char *name;
  /* Runs without a runtime: the runner then passes rt == NULL. */
  bool no_rt;
  /* One run.  Fills out->time_ms (the timed part only), out->ok (the
   * workload's own check) and, through bench_fail(), the first runtime call
   * that failed.  It must return only once every process it spawned is gone
   * (bench_quiesce()), because those processes point into its frame.  rt has
   * c->sched workers and may hold state from the previous run of the case. */
  void (*run)(const struct bench_case *c, arbor_rt *rt, struct bench_run *out);
};

struct bench_workload {
  const char *name;
  const char *summary; /* one line for --help and --list */
  const struct bench_param *params;
  unsigned nparams;
  const struct bench_variant *variants;
  unsigned nvariants;
  /* Largest worker count that makes sense; 0 means any.  Profiles skip the
   * larger counts and single-workload mode rejects them. */
  unsigned max_sched;
  /* A single cold run and no warm runs (for measurements that are not about
   * speed, such as memory). */
  bool one_run;
  /* Checks that go beyond bench_param.min; returns an error message or NULL.
   * p holds the values in the order of `params`.  May be NULL. */
  const char *(*validate)(const int64_t *p);
  /* Adds the extras (ns_per_<op>, ...) from the summary in r; see
   * bench_extra_add() and bench_extra_per_op(). */
  void (*summarize)(const struct bench_result *r, struct bench_extras *x);
};

/* What the runner runs: one workload variant at one worker count. */
struct bench_case {
  const struct bench_workload *wl;
  const struct bench_variant *variant;
  unsigned sched;
  unsigned iters;                  /* warm runs (0 for one_run workloads) */
  int64_t param[BENCH_MAX_PARAMS]; /* in the order of wl->params */
};

/* One run, filled by bench_variant.run. */
struct bench_run {
  double time_ms;
  bool ok;
  int err;                   /* first runtime call that failed, 0 if none */
  const char *err_call;      /* its name */
  double aux[BENCH_MAX_AUX]; /* workload-defined, e.g. an untimed setup */
};

struct bench_extra {
  const char *key; /* a string literal */
  double value;
  int prec; /* decimals printed */
};

struct bench_extras {
  struct bench_extra item[BENCH_MAX_EXTRAS];
  unsigned n;
  char per_op[48]; /* the table's per-op figure, e.g. "4.1 ns/switch" */
};

/* A case after it ran. */
struct bench_result {
  struct bench_case c;
  struct bench_run *runs; /* runs[0] is the cold run */
  unsigned nruns;         /* runs done (fewer than planned after an error) */
  unsigned nwarm;         /* runs the median is over */
  double median_ms, cold_ms, min_ms, max_ms; /* NaN when there is no run */
  bool ok;
  int err;
  const char *err_call;
  struct bench_extras x;
};

/* The machine and build, for report headers. */
struct bench_meta {
  char cpu[128];
  unsigned online_cpus;
  char date[32];    /* ISO 8601, UTC */
  char kernel[136]; /* uname: sysname release */
  const char *version;
  const char *profile;
  char build[48]; /* "optimised", or a warning that the numbers mean little */
};

enum bench_format {
  BENCH_FORMAT_TABLE = 0,
  BENCH_FORMAT_RESULT = 1,
  BENCH_FORMAT_JSON = 2,
  BENCH_FORMAT_CSV = 3,
};

/* registry.c */
extern const struct bench_workload *const bench_workloads[];
extern const unsigned bench_nworkloads;
const struct bench_workload *bench_workload_find(const char *name);

/* run.c */
void bench_progress_init(bool enabled);
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress_end(unsigned runs, double seconds);
void bench_run_case(const struct bench_case *c, unsigned index, unsigned ncases,
                    struct bench_result *r);
void bench_result_free(struct bench_result *r);
void bench_fail(struct bench_run *out, const char *call, int err);
int bench_quiesce(arbor_rt *rt);
_Noreturn void bench_hung(const char *what);
double bench_median(const double *v, size_t n);
void bench_extra_add(struct bench_extras *x, const char *key, double value,
                     int prec);
void bench_extra_per_op(struct bench_extras *x, const char *key, const char *op,
                        double ms, double count);

/* report.c */
void bench_meta_collect(struct bench_meta *m, const char *profile);
/* Prints r[0..n) to out in format f (--format=table adds the scaling
 * section after the table; result prints only RESULT lines). */
void bench_report(FILE *out, enum bench_format f, const struct bench_meta *m,
                  const struct bench_result *r, size_t n);
int bench_format_params(const struct bench_case *c, bool with_variant,
                        char *buf, size_t cap);
void bench_case_label(const struct bench_case *c, char *buf, size_t cap);
/* The time per operation in ns (the "ns_per_<op>" extra that
 * bench_extra_per_op() adds), *op naming the operation; NaN, *op NULL, when
 * the case has none (no median, or a workload not timed per operation). */
double bench_per_op_ns(const struct bench_result *r, const char **op);
/* Whether a and b differ only in their worker count (and iters): same
 * workload, variant and parameters.  Such results form a scaling series. */
bool bench_same_series(const struct bench_result *a,
                       const struct bench_result *b);
/* The scaling series that r[first] opens: when no earlier result is of the
 * same series and the series has a usable result (timed, ok, with a median)
 * at one worker and at another count, stores the indices of its usable
 * results in idx (room for n), sorted by worker count, and returns how many;
 * returns 0 otherwise. */
size_t bench_scaling_series(const struct bench_result *r, size_t n,
                            size_t first, size_t *idx);
/* Throughput of r[i] relative to one worker: the median of its series at one
 * worker divided by its own median (1.0 for the one-worker case itself).
 * NaN unless r[i] is a member of a series bench_scaling_series() reports. */
double bench_speedup(const struct bench_result *r, size_t n, size_t i);

/* plot.c */
/* Writes a self-contained SVG to out: the per-op cost of every case (log
 * scale) and the scaling curves with the ideal diagonal, titled with m.
 * Returns 0, or -1 when writing failed (errno tells why). */
int bench_plot_svg(FILE *out, const struct bench_meta *m,
                   const struct bench_result *r, size_t n);

/* The monotonic clock every workload times with, in nanoseconds. */
static inline int64_t bench_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double bench_ns_to_ms(int64_t ns)
{
  return (double)ns / 1e6;
}

#endif /* ARBOR_BENCH_BENCH_H */
