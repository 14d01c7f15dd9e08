/* bench/main.c -- arbor-bench: command line, profiles and the plan of cases.
 *
 * Two modes.  Profile mode (no workload, several, or --only) runs every
 * selected workload at the profile's worker counts and prints a table.
 * Single-workload mode (exactly one workload name, optionally followed by
 * key=value parameters) is the interface other tools drive, as they drive
 * the Go and Erlang programs: it prints only that workload's RESULT lines.
 * Exit status: 0 when every case reported ok=1, 1 otherwise, 2 for usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

#define MAX_WORKERS 256 /* arbor_rt_opts.workers' limit */
#define MAX_ITERS 100000

static const char *const profile_name[] = {"default", "quick", "full"};
static const unsigned profile_iters[] = {2, 1, 5};
static const char *const format_name[] = {"table", "result", "json", "csv"};

struct options {
  enum bench_profile profile;
  enum bench_format format;
  bool format_set;
  unsigned iters; /* 0: the profile's */
  unsigned workers[MAX_WORKERS];
  unsigned nworkers; /* 0: the profile's */
  bool only[64];     /* by registry index */
  bool only_set;
  int progress;     /* -1: the mode's default */
  const char *plot; /* --plot FILE.svg, or NULL */
  const char *names[64];
  unsigned nnames;
  const char *kv[64];
  unsigned nkv;
};

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void usage_error(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, "arbor-bench: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'arbor-bench --help'.\n");
  exit(2);
}

static void help(void)
{
  printf(
      "Usage: arbor-bench [OPTION...] [WORKLOAD...]\n"
      "       arbor-bench [OPTION...] WORKLOAD [KEY=VALUE...]\n"
      "\n"
      "Runs the Arbor benchmark workloads of WORKLOADS.md.  With no workload, "
      "or with\n"
      "--only or several names, runs a profile and prints a table.  With "
      "exactly one\n"
      "workload name, runs just that workload and prints only its RESULT "
      "lines, e.g.\n"
      "    arbor-bench spawn n=100000 sched=2 iters=2\n"
      "Keys: the workload's parameters (below), sched=<workers>, "
      "iters=<warm runs>,\n"
      "variant=<name> (workloads with variants).  Omitted keys take the "
      "profile's\n"
      "defaults; sched defaults to the online CPUs (1 for switch).\n"
      "\n"
      "Options:\n"
      "  --profile=NAME  default: each workload at sched=1 and sched=<online "
      "CPUs>,\n"
      "                  1 cold + 2 warm runs, WORKLOADS.md's parameters;\n"
      "                  quick: small parameters and 1 warm run (CI);\n"
      "                  full: sched=1,2,...,<online CPUs>, 5 warm runs\n"
      "  --workers=LIST  worker counts, e.g. 1,2 (overrides the profile's)\n"
      "  --iters=N       warm runs per case (overrides the profile's)\n"
      "  --only=LIST     workloads to run, e.g. switch,spawn\n"
      "  --format=FMT    table (profiles), result (single workload), json, "
      "csv;\n"
      "                  table, json and csv add the scaling figures "
      "(below)\n"
      "  --plot=FILE     also draw the results as an SVG picture in FILE: "
      "the cost\n"
      "                  per operation of every case and the scaling "
      "curves\n"
      "  --progress, --quiet\n"
      "                  force the progress line on stderr on or off (default: "
      "on\n"
      "                  for profiles, off for a single workload)\n"
      "  --list          list the workloads and their parameters\n"
      "  -h, --help      this text\n"
      "\n"
      "Times are the median of the warm runs, measured inside the program "
      "with\n"
      "CLOCK_MONOTONIC; creating and destroying the runtime is not timed.  "
      "Every\n"
      "workload checks its own result (ok=1); the exit status is 1 if any "
      "did not\n"
      "or a runtime call failed.\n"
      "\n"
      "Scaling: for each workload (and variant) run at 1 worker and at "
      "other\n"
      "counts, the throughput at k workers relative to 1 worker, median_1 "
      "/\n"
      "median_k (ideal: k).  The table prints it after the results; json "
      "and csv\n"
      "give it per case as speedup and ideal_speedup (null or empty "
      "elsewhere).\n"
      "\n"
      "Workloads:\n");
  for (unsigned i = 0; i < bench_nworkloads; i++)
    printf("  %-9s %s\n", bench_workloads[i]->name,
           bench_workloads[i]->summary);
}

/* Whether variant=<name> can pick one of wl's variants.  A variant named
 * NULL is the default one (memory's plain receive beside its hibernate):
 * it is reported without a variant key and cannot be picked by name. */
static bool named_variants(const struct bench_workload *wl)
{
  for (unsigned k = 0; k < wl->nvariants; k++)
    if (wl->variants[k].name != NULL)
      return true;
  return false;
}

static bool variant_is(const struct bench_variant *v, const char *name)
{
  return v->name != NULL && strcmp(v->name, name) == 0;
}

static void list(void)
{
  for (unsigned i = 0; i < bench_nworkloads; i++) {
    const struct bench_workload *wl = bench_workloads[i];

    printf("%s:", wl->name);
    for (unsigned k = 0; k < wl->nparams; k++)
      printf(" %s=%lld (quick %lld)", wl->params[k].key,
             (long long)wl->params[k].dflt, (long long)wl->params[k].quick);
    if (wl->nvariants > 1 || wl->variants[0].name != NULL) {
      printf("; variants:");
      for (unsigned k = 0; k < wl->nvariants; k++)
        printf(" %s", wl->variants[k].name != NULL ? wl->variants[k].name
                                                   : "(default)");
    }
    if (wl->max_sched != 0)
      printf("; at most %u worker(s)", wl->max_sched);
    printf("\n");
  }
}

/* A decimal integer in [min, max], all of s. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
  char *end;
  long long v;

  if (*s == '\0' || *s == ' ' || *s == '+')
    return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static unsigned parse_uint_opt(const char *opt, const char *v, unsigned max)
{
  int64_t x;

  if (!parse_i64(v, 1, max, &x)) {
    fprintf(stderr, "arbor-bench: %s: '%s' is not a number in 1..%u\n", opt, v,
            max);
    exit(2);
  }
  return (unsigned)x;
}

static const struct bench_workload *find_or_die(const char *name)
{
  const struct bench_workload *wl = bench_workload_find(name);

  if (wl == NULL) {
    fprintf(stderr, "arbor-bench: unknown workload '%s' (known:", name);
    for (unsigned i = 0; i < bench_nworkloads; i++)
      fprintf(stderr, " %s", bench_workloads[i]->name);
    fprintf(stderr, ")\n");
    exit(2);
  }
  return wl;
}

static unsigned wl_index(const struct bench_workload *wl)
{
  unsigned i = 0;

  while (bench_workloads[i] != wl)
    i++;
  return i;
}

/* A comma-separated list, each item handed to fn. */
static void split_list(const char *opt, const char *v, struct options *o,
                       void (*fn)(const char *opt, const char *item,
                                  struct options *o))
{
  char buf[512], *save = NULL;

  if (strlen(v) >= sizeof(buf) || *v == '\0')
    usage_error("%s: empty or too long", opt);
  strcpy(buf, v);
  for (char *t = strtok_r(buf, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save))
    fn(opt, t, o);
}

static void add_worker(const char *opt, const char *item, struct options *o)
{
  if (o->nworkers == MAX_WORKERS)
    usage_error("%s: too many worker counts", opt);
  o->workers[o->nworkers++] = parse_uint_opt(opt, item, MAX_WORKERS);
}

static void add_only(const char *opt, const char *item, struct options *o)
{
  (void)opt;
  o->only[wl_index(find_or_die(item))] = true;
  o->only_set = true;
}

static unsigned pick(const char *opt, const char *v, const char *const *names,
                     unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    if (strcmp(v, names[i]) == 0)
      return i;
  }
  fprintf(stderr, "arbor-bench: %s: unknown value '%s' (one of:", opt, v);
  for (unsigned i = 0; i < n; i++)
    fprintf(stderr, " %s", names[i]);
  fprintf(stderr, ")\n");
  exit(2);
}

static void parse_args(int argc, char **argv, struct options *o)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    char opt[32];
    size_t len;

    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      exit(0);
    }
    if (strcmp(a, "--list") == 0) {
      list();
      exit(0);
    }
    if (strcmp(a, "--progress") == 0 || strcmp(a, "--quiet") == 0) {
      o->progress = a[2] == 'p';
      continue;
    }
    if (a[0] != '-') {
      if (strchr(a, '=') != NULL) {
        if (o->nkv == sizeof(o->kv) / sizeof(o->kv[0]))
          usage_error("too many parameters at '%s'", a);
        o->kv[o->nkv++] = a;
      } else {
        if (o->nnames == sizeof(o->names) / sizeof(o->names[0]))
          usage_error("too many workload names at '%s'", a);
        o->names[o->nnames++] = a;
      }
      continue;
    }
    /* --opt=value or --opt value. */
    len = strcspn(a, "=");
    if (strncmp(a, "--", 2) != 0 || len >= sizeof(opt))
      usage_error("unknown option '%s'", a);
    memcpy(opt, a, len);
    opt[len] = '\0';
    if (a[len] == '=')
      v = a + len + 1;
    else if (i + 1 < argc)
      v = argv[++i];
    else
      usage_error("%s needs a value", opt);

    if (strcmp(opt, "--profile") == 0)
      o->profile = (enum bench_profile)pick(opt, v, profile_name, 3);
    else if (strcmp(opt, "--format") == 0) {
      o->format = (enum bench_format)pick(opt, v, format_name, 4);
      o->format_set = true;
    } else if (strcmp(opt, "--iters") == 0)
      o->iters = parse_uint_opt(opt, v, MAX_ITERS);
    else if (strcmp(opt, "--workers") == 0) {
      o->nworkers = 0;
      split_list(opt, v, o, add_worker);
    } else if (strcmp(opt, "--only") == 0) {
      split_list(opt, v, o, add_only);
    } else if (strcmp(opt, "--plot") == 0) {
      if (*v == '\0')
        usage_error("--plot needs a file name");
      o->plot = v;
    } else
      usage_error("unknown option '%s'", opt);
  }
}

/* ---- the plan ---------------------------------------------------------- */

struct plan {
  struct bench_case *cases;
  unsigned n, cap;
};

static void plan_add(struct plan *p, const struct bench_case *c)
{
  if (p->n == p->cap) {
    p->cap = p->cap != 0 ? 2 * p->cap : 16;
    p->cases = realloc(p->cases, p->cap * sizeof(*p->cases));
    if (p->cases == NULL) {
      fprintf(stderr, "arbor-bench: out of memory\n");
      exit(1);
    }
  }
  p->cases[p->n++] = *c;
}

static void profile_workers(const struct options *o, unsigned online,
                            unsigned *w, unsigned *n)
{
  *n = 0;
  if (o->nworkers != 0) {
    memcpy(w, o->workers, o->nworkers * sizeof(*w));
    *n = o->nworkers;
  } else if (o->profile == BENCH_PROFILE_FULL) {
    for (unsigned k = 1; k <= online && k <= MAX_WORKERS; k++)
      w[(*n)++] = k;
  } else {
    w[(*n)++] = 1;
    if (online > 1)
      w[(*n)++] = online < MAX_WORKERS ? online : MAX_WORKERS;
  }
}

/* One case per variant (all, or just `variant`) and worker count. */
static void add_cases(struct plan *p, const struct bench_workload *wl,
                      const char *variant, const unsigned *workers,
                      unsigned nworkers, unsigned iters, const int64_t *param)
{
  for (unsigned v = 0; v < wl->nvariants; v++) {
    if (variant != NULL && !variant_is(&wl->variants[v], variant))
      continue;
    for (unsigned k = 0; k < nworkers; k++) {
      struct bench_case c = {.wl = wl,
                             .variant = &wl->variants[v],
                             .sched = workers[k],
                             .iters = wl->one_run ? 0 : iters};

      if (wl->max_sched != 0 && workers[k] > wl->max_sched)
        continue;
      memcpy(c.param, param, sizeof(c.param));
      plan_add(p, &c);
    }
  }
}

static void default_params(const struct bench_workload *wl,
                           enum bench_profile profile, int64_t *param)
{
  for (unsigned k = 0; k < wl->nparams; k++)
    param[k] = profile == BENCH_PROFILE_QUICK ? wl->params[k].quick
                                              : wl->params[k].dflt;
}

static void plan_profile(const struct options *o, unsigned online,
                         struct plan *p)
{
  unsigned workers[MAX_WORKERS], nworkers;
  unsigned iters = o->iters != 0 ? o->iters : profile_iters[o->profile];

  profile_workers(o, online, workers, &nworkers);
  for (unsigned i = 0; i < bench_nworkloads; i++) {
    const struct bench_workload *wl = bench_workloads[i];
    int64_t param[BENCH_MAX_PARAMS] = {0};
    unsigned before = p->n;

    if (o->only_set && !o->only[i])
      continue;
    default_params(wl, o->profile, param);
    add_cases(p, wl, NULL, workers, nworkers, iters, param);
    if (p->n == before)
      fprintf(stderr,
              "arbor-bench: %s skipped: it runs on at most %u worker(s), "
              "none of the worker counts asked for\n",
              wl->name, wl->max_sched);
  }
}

/* A bad key=value: the message, then the keys the workload knows. */
static _Noreturn void param_error(const struct bench_workload *wl,
                                  const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static _Noreturn void param_error(const struct bench_workload *wl,
                                  const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, "arbor-bench: %s: ", wl->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (keys:");
  for (unsigned k = 0; k < wl->nparams; k++)
    fprintf(stderr, " %s", wl->params[k].key);
  fprintf(stderr, " sched iters%s)\n", named_variants(wl) ? " variant" : "");
  exit(2);
}

static void plan_single(const struct options *o, unsigned online,
                        struct plan *p)
{
  const struct bench_workload *wl = find_or_die(o->names[0]);
  int64_t param[BENCH_MAX_PARAMS] = {0}, x;
  unsigned workers[MAX_WORKERS], nworkers = 0;
  unsigned iters = o->iters != 0 ? o->iters : profile_iters[o->profile];
  const char *variant = NULL, *why;
  bool seen[BENCH_MAX_PARAMS + 3] = {false};

  default_params(wl, o->profile, param);
  for (unsigned i = 0; i < o->nkv; i++) {
    const char *kv = o->kv[i], *v = strchr(kv, '=') + 1;
    size_t klen = (size_t)(v - 1 - kv);
    unsigned slot = BENCH_MAX_PARAMS + 3;

    if (klen == 5 && strncmp(kv, "sched", 5) == 0) {
      if (!parse_i64(v, 1, MAX_WORKERS, &x))
        param_error(wl, "bad '%s': sched must be 1..%d", kv, MAX_WORKERS);
      workers[0] = (unsigned)x;
      nworkers = 1;
      slot = BENCH_MAX_PARAMS;
    } else if (klen == 5 && strncmp(kv, "iters", 5) == 0) {
      if (!parse_i64(v, 1, MAX_ITERS, &x))
        param_error(wl, "bad '%s': iters must be 1..%d", kv, MAX_ITERS);
      iters = (unsigned)x;
      slot = BENCH_MAX_PARAMS + 1;
    } else if (klen == 7 && strncmp(kv, "variant", 7) == 0 &&
               named_variants(wl)) {
      unsigned k = 0;

      while (k < wl->nvariants && !variant_is(&wl->variants[k], v))
        k++;
      if (k == wl->nvariants)
        param_error(wl, "unknown variant in '%s'", kv);
      variant = v;
      slot = BENCH_MAX_PARAMS + 2;
    } else {
      for (unsigned k = 0; k < wl->nparams; k++) {
        if (strlen(wl->params[k].key) != klen ||
            strncmp(kv, wl->params[k].key, klen) != 0)
          continue;
        if (!parse_i64(v, wl->params[k].min, INT64_MAX, &x))
          param_error(wl, "bad '%s': %s must be an integer >= %lld", kv,
                      wl->params[k].key, (long long)wl->params[k].min);
        param[k] = x;
        slot = k;
      }
      if (slot == BENCH_MAX_PARAMS + 3)
        param_error(wl, "unknown parameter '%.*s'", (int)klen, kv);
    }
    if (seen[slot])
      param_error(wl, "'%.*s' given twice", (int)klen, kv);
    seen[slot] = true;
  }
  why = wl->validate != NULL ? wl->validate(param) : NULL;
  if (why != NULL) {
    fprintf(stderr, "arbor-bench: %s: %s\n", wl->name, why);
    exit(2);
  }

  if (nworkers == 0 && o->nworkers != 0) {
    memcpy(workers, o->workers, o->nworkers * sizeof(*workers));
    nworkers = o->nworkers;
  } else if (nworkers == 0) {
    workers[0] = wl->max_sched == 1 ? 1 : online;
    nworkers = 1;
  }
  for (unsigned k = 0; k < nworkers; k++) {
    if (wl->max_sched != 0 && workers[k] > wl->max_sched) {
      fprintf(stderr,
              "arbor-bench: %s runs on at most %u worker(s); sched=%u "
              "asked for\n",
              wl->name, wl->max_sched, workers[k]);
      exit(2);
    }
  }
  add_cases(p, wl, variant, workers, nworkers, iters, param);
}

int main(int argc, char **argv)
{
  struct options o = {.progress = -1};
  struct plan plan = {NULL, 0, 0};
  struct bench_result *results;
  struct bench_meta meta;
  FILE *plot = NULL;
  bool single, all_ok = true;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int64_t start;
  unsigned runs = 0;

  parse_args(argc, argv, &o);
  single = o.nnames == 1 && !o.only_set;
  if (o.nkv > 0 && !single)
    usage_error("%s: key=value parameters need exactly one workload name "
                "(and no --only)",
                o.kv[0]);
  if (single) {
    plan_single(&o, online > 0 ? (unsigned)online : 1, &plan);
  } else {
    for (unsigned i = 0; i < o.nnames; i++)
      add_only("workload", o.names[i], &o);
    plan_profile(&o, online > 0 ? (unsigned)online : 1, &plan);
  }
  if (!o.format_set)
    o.format = single ? BENCH_FORMAT_RESULT : BENCH_FORMAT_TABLE;
  if (plan.n == 0) {
    fprintf(stderr, "arbor-bench: nothing to run\n");
    return 2;
  }

  /* Opened before the runs, so that a bad path fails now rather than after
   * minutes of benchmarking. */
  if (o.plot != NULL && (plot = fopen(o.plot, "w")) == NULL) {
    fprintf(stderr, "arbor-bench: --plot: cannot write %s: %s\n", o.plot,
            strerror(errno));
    return 2;
  }
  bench_meta_collect(&meta, profile_name[o.profile]);
  results = calloc(plan.n, sizeof(*results));
  if (results == NULL) {
    fprintf(stderr, "arbor-bench: out of memory\n");
    return 1;
  }
  bench_progress_init(o.progress >= 0 ? o.progress == 1 : !single);
  start = bench_now_ns();
  for (unsigned i = 0; i < plan.n; i++) {
    bench_run_case(&plan.cases[i], i, plan.n, &results[i]);
    runs += results[i].nruns;
    all_ok = all_ok && results[i].ok;
  }
  bench_progress_end(runs, (double)(bench_now_ns() - start) / 1e9);

  bench_report(stdout, o.format, &meta, results, plan.n);
  if (plot != NULL) {
    int err = bench_plot_svg(plot, &meta, results, plan.n);

    if (fclose(plot) != 0)
      err = -1;
    if (err < 0) {
      fprintf(stderr, "arbor-bench: --plot: writing %s failed: %s\n", o.plot,
              strerror(errno));
      all_ok = false;
    } else if (o.progress >= 0 ? o.progress == 1 : !single) {
      fprintf(stderr, "arbor-bench: plot written to %s\n", o.plot);
    }
  }
  for (unsigned i = 0; i < plan.n; i++)
    bench_result_free(&results[i]);
  free(results);
  free(plan.cases);
  return all_ok ? 0 : 1;
}
