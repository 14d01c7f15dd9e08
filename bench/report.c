/* bench/report.c -- printing results: an aligned table, WORKLOADS.md's
 * RESULT lines, JSON and CSV, the machine description they carry, and the
 * scaling figures (throughput at k workers relative to one worker) that the
 * table, the JSON, the CSV and the plot (plot.c) share.
 *
 * The RESULT lines are a contract with the scripts that also read the Go and
 * Erlang programs' output (WORKLOADS.md, "Output"): keep their shape, and
 * print nothing else in that format.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench/bench.h"

/* The CPU model: "model name" on x86, which other architectures lack. */
static void read_cpu_model(char *buf, size_t cap)
{
  char line[256];
  FILE *f = fopen("/proc/cpuinfo", "r");

  snprintf(buf, cap, "unknown CPU");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    char *colon = strchr(line, ':');

    if (strncmp(line, "model name", 10) != 0 || colon == NULL)
      continue;
    colon += strspn(colon + 1, " \t") + 1;
    colon[strcspn(colon, "\n")] = '\0';
    snprintf(buf, cap, "%s", colon);
    break;
  }
  fclose(f);
}

void bench_meta_collect(struct bench_meta *m, const char *profile)
{
  struct utsname u;
  time_t now = time(NULL);
  struct tm tm;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);

  memset(m, 0, sizeof(*m));
  read_cpu_model(m->cpu, sizeof(m->cpu));
  m->online_cpus = cpus > 0 ? (unsigned)cpus : 1;
  gmtime_r(&now, &tm);
  strftime(m->date, sizeof(m->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (uname(&u) == 0)
    snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
  m->version = ARBOR_VERSION_STRING;
  m->profile = profile;
  /* The runner is built with the library's flags, so this tells whether the
   * numbers come from a build worth measuring. */
/* gcc defines __SANITIZE_*__; clang answers through __has_feature. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BENCH_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||          \
    defined(BENCH_SANITIZED)
  snprintf(m->build, sizeof(m->build), "SANITIZER BUILD, not comparable");
#elif !defined(__OPTIMIZE__)
  snprintf(m->build, sizeof(m->build), "UNOPTIMISED BUILD, not comparable");
#elif defined(ARBOR_CTX_UCONTEXT)
  snprintf(m->build, sizeof(m->build), "optimised build, ucontext switch");
#else
  snprintf(m->build, sizeof(m->build), "optimised build");
#endif
}

int bench_format_params(const struct bench_case *c, bool with_variant,
                        char *buf, size_t cap)
{
  size_t len = 0;

  buf[0] = '\0';
  if (with_variant && c->variant->name != NULL)
    len += (size_t)snprintf(buf, cap, "variant=%s", c->variant->name);
  for (unsigned i = 0; i < c->wl->nparams && len < cap; i++) {
    len +=
        (size_t)snprintf(buf + len, cap - len, "%s%s=%lld", len > 0 ? " " : "",
                         c->wl->params[i].key, (long long)c->param[i]);
  }
  return (int)len;
}

/* "switch sched=1 variant=raw": names a case in messages. */
void bench_case_label(const struct bench_case *c, char *buf, size_t cap)
{
  if (c->variant->name != NULL)
    snprintf(buf, cap, "%s sched=%u variant=%s", c->wl->name, c->sched,
             c->variant->name);
  else
    snprintf(buf, cap, "%s sched=%u", c->wl->name, c->sched);
}

/* ---- per-op figures and scaling ---------------------------------------- */

double bench_per_op_ns(const struct bench_result *r, const char **op)
{
  if (op != NULL)
    *op = NULL;
  if (!isfinite(r->median_ms))
    return NAN;
  /* bench_extra_per_op() names its extra "ns_per_<op>" (WORKLOADS.md's
   * extras all follow that pattern). */
  for (unsigned i = 0; i < r->x.n; i++) {
    const char *key = r->x.item[i].key;

    if (strncmp(key, "ns_per_", 7) != 0 || key[7] == '\0')
      continue;
    if (!isfinite(r->x.item[i].value))
      return NAN;
    if (op != NULL)
      *op = key + 7;
    return r->x.item[i].value;
  }
  return NAN;
}

bool bench_same_series(const struct bench_result *a,
                       const struct bench_result *b)
{
  if (a->c.wl != b->c.wl || a->c.variant != b->c.variant)
    return false;
  for (unsigned k = 0; k < a->c.wl->nparams; k++) {
    if (a->c.param[k] != b->c.param[k])
      return false;
  }
  return true;
}

/* A result that can take part in a speed-up: a timed workload (not a
 * one_run measurement such as memory), whose own checks passed, with a
 * median.  A failed case's time may come from work left undone. */
static bool usable(const struct bench_result *r)
{
  return !r->c.wl->one_run && r->ok && isfinite(r->median_ms) &&
         r->median_ms > 0;
}

size_t bench_scaling_series(const struct bench_result *r, size_t n,
                            size_t first, size_t *idx)
{
  size_t k = 0;
  bool base = false, other = false;

  for (size_t j = 0; j < first; j++) {
    if (bench_same_series(&r[j], &r[first]))
      return 0; /* counted with an earlier result */
  }
  for (size_t j = first; j < n; j++) {
    size_t at;

    if (!usable(&r[j]) || !bench_same_series(&r[j], &r[first]))
      continue;
    base = base || r[j].c.sched == 1;
    other = other || r[j].c.sched != 1;
    /* Insertion sort by workers, stable: a repeated count keeps its order. */
    for (at = k; at > 0 && r[idx[at - 1]].c.sched > r[j].c.sched; at--)
      idx[at] = idx[at - 1];
    idx[at] = j;
    k++;
  }
  return base && other ? k : 0;
}

double bench_speedup(const struct bench_result *r, size_t n, size_t i)
{
  const struct bench_result *base = NULL;
  bool other = false;

  if (!usable(&r[i]))
    return NAN;
  for (size_t j = 0; j < n; j++) {
    if (!usable(&r[j]) || !bench_same_series(&r[j], &r[i]))
      continue;
    if (r[j].c.sched == 1 && base == NULL)
      base = &r[j];
    other = other || r[j].c.sched != 1;
  }
  if (base == NULL || !other)
    return NAN;
  return base->median_ms / r[i].median_ms;
}

/* ---- RESULT lines -------------------------------------------------------- */

/* Milliseconds with three decimals, as WORKLOADS.md wants, or "nan" when a
 * failed case has no such figure. */
static const char *fmt_ms(char *buf, size_t cap, double v)
{
  if (isnan(v))
    snprintf(buf, cap, "nan");
  else
    snprintf(buf, cap, "%.3f", v);
  return buf;
}

/* The extras as "key=value" words, then ok=0/1 when with_ok. */
static void format_extras(const struct bench_result *r, bool with_ok, char *buf,
                          size_t cap)
{
  size_t len = 0;

  buf[0] = '\0';
  for (unsigned i = 0; i < r->x.n && len < cap; i++) {
    const struct bench_extra *e = &r->x.item[i];

    len += (size_t)snprintf(buf + len, cap - len, "%s%s=%.*f",
                            len > 0 ? " " : "", e->key, e->prec, e->value);
  }
  if (with_ok && len < cap)
    snprintf(buf + len, cap - len, "%sok=%d", len > 0 ? " " : "",
             r->ok ? 1 : 0);
}

static void report_result(FILE *out, const struct bench_result *r, size_t n)
{
  char params[160], extras[320], t[32], cold[32], lo[32], hi[32];

  for (size_t i = 0; i < n; i++) {
    bench_format_params(&r[i].c, true, params, sizeof(params));
    format_extras(&r[i], true, extras, sizeof(extras));
    fprintf(out,
            "RESULT arbor %s sched=%u %s time_ms=%s %s cold_ms=%s min_ms=%s "
            "max_ms=%s iters=%u\n",
            r[i].c.wl->name, r[i].c.sched, params,
            fmt_ms(t, sizeof(t), r[i].median_ms), extras,
            fmt_ms(cold, sizeof(cold), r[i].cold_ms),
            fmt_ms(lo, sizeof(lo), r[i].min_ms),
            fmt_ms(hi, sizeof(hi), r[i].max_ms), r[i].nwarm);
  }
}

/* ---- table ------------------------------------------------------------ */

typedef char cell[96];

/* An aligned table: cells holds (nrows + 1) rows of ncols cells, the first
 * row being the titles; right[k] right-aligns column k, so that the
 * decimal points of its numbers line up. */
static void print_table(FILE *out, int ncols, const bool *right, cell *cells,
                        size_t nrows)
{
  size_t width[16] = {0}, rule = 0;

  for (size_t i = 0; i <= nrows; i++) {
    for (int k = 0; k < ncols; k++) {
      size_t len = strlen(cells[i * (size_t)ncols + (size_t)k]);

      width[k] = len > width[k] ? len : width[k];
    }
  }
  for (int k = 0; k < ncols; k++)
    rule += width[k] + (k < ncols - 1 ? 2 : 0);
  for (size_t i = 0; i <= nrows; i++) {
    cell *c = cells + i * (size_t)ncols;

    for (int k = 0; k < ncols; k++) {
      int w = (int)width[k];

      if (k == ncols - 1 && !right[k])
        fprintf(out, "%s\n", c[k]); /* no trailing blanks */
      else if (k == ncols - 1)
        fprintf(out, "%*s\n", w, c[k]);
      else if (right[k])
        fprintf(out, "%*s  ", w, c[k]);
      else
        fprintf(out, "%-*s  ", w, c[k]);
    }
    if (i == 0) {
      for (size_t j = 0; j < rule; j++)
        putc('-', out);
      putc('\n', out);
    }
  }
}

static cell *cells_alloc(size_t nrows, int ncols, const char *const *title)
{
  cell *cells = calloc((nrows + 1) * (size_t)ncols, sizeof(*cells));

  if (cells == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  for (int k = 0; k < ncols; k++)
    snprintf(cells[k], sizeof(cell), "%s", title[k]);
  return cells;
}

enum {
  COL_WL,
  COL_VAR,
  COL_SCHED,
  COL_PARAMS,
  COL_MED,
  COL_COLD,
  COL_RANGE,
  COL_PEROP,
  COL_OK,
  NCOLS
};

static const char *const col_title[NCOLS] = {
    "workload",  "variant",      "workers", "params", "median (ms)",
    "cold (ms)", "min-max (ms)", "per op",  "ok"};
static const bool col_right[NCOLS] = {false, false, true, false, true,
                                      true,  true,  true, false};

static void table_cells(const struct bench_result *r, cell *c)
{
  char a[32], b[32];

  snprintf(c[COL_WL], sizeof(cell), "%s", r->c.wl->name);
  snprintf(c[COL_VAR], sizeof(cell), "%s",
           r->c.variant->name != NULL ? r->c.variant->name : "-");
  snprintf(c[COL_SCHED], sizeof(cell), "%u", r->c.sched);
  bench_format_params(&r->c, false, c[COL_PARAMS], sizeof(cell));
  fmt_ms(c[COL_MED], sizeof(cell), r->median_ms);
  fmt_ms(c[COL_COLD], sizeof(cell), r->cold_ms);
  snprintf(c[COL_RANGE], sizeof(cell), "%s-%s", fmt_ms(a, sizeof(a), r->min_ms),
           fmt_ms(b, sizeof(b), r->max_ms));
  snprintf(c[COL_PEROP], sizeof(cell), "%s", r->x.per_op);
  snprintf(c[COL_OK], sizeof(cell), "%s", r->ok ? "yes" : "FAIL");
}

enum {
  SCOL_WL,
  SCOL_VAR,
  SCOL_PARAMS,
  SCOL_SCHED,
  SCOL_MED,
  SCOL_SPEEDUP,
  SCOL_IDEAL,
  SCOL_EFF,
  NSCOLS
};

static const char *const scol_title[NSCOLS] = {
    "workload",    "variant",  "params", "workers",
    "median (ms)", "speed-up", "ideal",  "efficiency"};
static const bool scol_right[NSCOLS] = {false, false, false, true,
                                        true,  true,  true,  true};

/* The scaling section: for each workload, variant and parameter set run at
 * one worker and at least one other count, the throughput at k workers
 * relative to one worker (median_1 / median_k), next to the ideal k. */
static void report_scaling(FILE *out, const struct bench_result *r, size_t n)
{
  size_t *idx = malloc((n > 0 ? n : 1) * sizeof(*idx)), rows = 0;
  cell *cells = cells_alloc(n, NSCOLS, scol_title);

  if (idx == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) {
    size_t k = bench_scaling_series(r, n, i, idx);

    for (size_t j = 0; j < k; j++) {
      const struct bench_result *p = &r[idx[j]];
      cell *c = cells + (rows + 1) * NSCOLS;
      double s = bench_speedup(r, n, idx[j]);

      snprintf(c[SCOL_WL], sizeof(cell), "%s", p->c.wl->name);
      snprintf(c[SCOL_VAR], sizeof(cell), "%s",
               p->c.variant->name != NULL ? p->c.variant->name : "-");
      bench_format_params(&p->c, false, c[SCOL_PARAMS], sizeof(cell));
      snprintf(c[SCOL_SCHED], sizeof(cell), "%u", p->c.sched);
      fmt_ms(c[SCOL_MED], sizeof(cell), p->median_ms);
      snprintf(c[SCOL_SPEEDUP], sizeof(cell), "%.2fx", s);
      snprintf(c[SCOL_IDEAL], sizeof(cell), "%ux", p->c.sched);
      snprintf(c[SCOL_EFF], sizeof(cell), "%.0f%%", 100 * s / p->c.sched);
      rows++;
    }
  }
  if (rows > 0) {
    fprintf(out, "\n# scaling: throughput at k workers relative to 1 worker "
                 "(median at 1 / median at k; ideal = k)\n");
    print_table(out, NSCOLS, scol_right, cells, rows);
  }
  free(cells);
  free(idx);
}

static void report_table(FILE *out, const struct bench_meta *m,
                         const struct bench_result *r, size_t n)
{
  cell *cells = cells_alloc(n, NCOLS, col_title);

  fprintf(out, "# arbor %s, %s; %s, %u online CPUs; %s; %s; profile %s\n",
          m->version, m->build, m->cpu, m->online_cpus, m->kernel, m->date,
          m->profile);
  for (size_t i = 0; i < n; i++)
    table_cells(&r[i], cells + (i + 1) * NCOLS);
  print_table(out, NCOLS, col_right, cells, n);
  free(cells);
  for (size_t i = 0; i < n; i++) {
    char label[96];

    if (r[i].err == 0)
      continue;
    bench_case_label(&r[i].c, label, sizeof(label));
    fprintf(out, "! %s: %s: %s (%s)\n", label, r[i].err_call,
            arbor_strerror(r[i].err), arbor_err_name(r[i].err));
  }
  report_scaling(out, r, n);
}

/* ---- JSON and CSV ----------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
  putc('"', out);
  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;

    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(out, "\\u%04x", ch);
    else
      putc(ch, out);
  }
  putc('"', out);
}

/* JSON has no NaN or infinity: a missing figure is null. */
static void json_number(FILE *out, double v, int prec)
{
  if (!isfinite(v))
    fprintf(out, "null");
  else
    fprintf(out, "%.*f", prec, v);
}

static void json_ms(FILE *out, const char *key, double v)
{
  fprintf(out, ", \"%s\": ", key);
  json_number(out, v, 3);
}

/* An array of one object per case.  "speedup" is median_1 / median of the
 * case, over the case of the same workload, variant and parameters run at
 * one worker, and "ideal_speedup" its worker count; both are null unless
 * that series ran at one worker and at least one other count. */
static void report_json(FILE *out, const struct bench_meta *m,
                        const struct bench_result *r, size_t n)
{
  fprintf(out, "[");
  for (size_t i = 0; i < n; i++) {
    const struct bench_case *c = &r[i].c;
    double s = bench_speedup(r, n, i);

    fprintf(out, "%s\n  {\"workload\": ", i > 0 ? "," : "");
    json_string(out, c->wl->name);
    fprintf(out, ", \"variant\": ");
    if (c->variant->name != NULL)
      json_string(out, c->variant->name);
    else
      fprintf(out, "null");
    fprintf(out, ", \"sched\": %u, \"params\": {", c->sched);
    for (unsigned k = 0; k < c->wl->nparams; k++)
      fprintf(out, "%s\"%s\": %lld", k > 0 ? ", " : "", c->wl->params[k].key,
              (long long)c->param[k]);
    fprintf(out, "}");
    json_ms(out, "time_ms", r[i].median_ms);
    json_ms(out, "cold_ms", r[i].cold_ms);
    json_ms(out, "min_ms", r[i].min_ms);
    json_ms(out, "max_ms", r[i].max_ms);
    fprintf(out, ", \"iters\": %u, \"runs_ms\": [", r[i].nwarm);
    for (unsigned k = 0; k < r[i].nruns; k++) {
      fprintf(out, "%s", k > 0 ? ", " : "");
      json_number(out, r[i].runs[k].time_ms, 3);
    }
    fprintf(out, "], \"extras\": {");
    for (unsigned k = 0; k < r[i].x.n; k++) {
      fprintf(out, "%s\"%s\": ", k > 0 ? ", " : "", r[i].x.item[k].key);
      json_number(out, r[i].x.item[k].value, r[i].x.item[k].prec);
    }
    fprintf(out, "}, \"speedup\": ");
    json_number(out, s, 3);
    if (isnan(s))
      fprintf(out, ", \"ideal_speedup\": null");
    else
      fprintf(out, ", \"ideal_speedup\": %u", c->sched);
    fprintf(out, ", \"ok\": %s, \"error\": ", r[i].ok ? "true" : "false");
    if (r[i].err != 0) {
      char msg[160];

      snprintf(msg, sizeof(msg), "%s: %s", r[i].err_call,
               arbor_strerror(r[i].err));
      json_string(out, msg);
    } else {
      fprintf(out, "null");
    }
    fprintf(out, ", \"arbor_version\": ");
    json_string(out, m->version);
    fprintf(out, ", \"build\": ");
    json_string(out, m->build);
    fprintf(out, ", \"cpu\": ");
    json_string(out, m->cpu);
    fprintf(out, ", \"online_cpus\": %u, \"kernel\": ", m->online_cpus);
    json_string(out, m->kernel);
    fprintf(out, ", \"date\": ");
    json_string(out, m->date);
    fprintf(out, ", \"profile\": ");
    json_string(out, m->profile);
    fprintf(out, "}");
  }
  fprintf(out, "\n]\n");
}

/* A CSV field, quoted when it holds a separator, a quote or a line break. */
static void csv_field(FILE *out, const char *s, bool last)
{
  if (strpbrk(s, ",\"\n\r") == NULL) {
    fputs(s, out);
  } else {
    putc('"', out);
    for (; *s != '\0'; s++) {
      if (*s == '"')
        putc('"', out);
      putc(*s, out);
    }
    putc('"', out);
  }
  putc(last ? '\n' : ',', out);
}

/* One row per case; the last two columns are the scaling figures of the
 * JSON's "speedup" and "ideal_speedup", empty where those are null. */
static void report_csv(FILE *out, const struct bench_meta *m,
                       const struct bench_result *r, size_t n)
{
  char params[160], extras[320], err[160], num[32];

  fprintf(out, "workload,variant,sched,params,time_ms,cold_ms,min_ms,max_ms,"
               "iters,extras,ok,error,arbor_version,build,cpu,online_cpus,"
               "kernel,date,profile,speedup,ideal_speedup\n");
  for (size_t i = 0; i < n; i++) {
    const struct bench_case *c = &r[i].c;
    double s = bench_speedup(r, n, i);

    bench_format_params(c, false, params, sizeof(params));
    format_extras(&r[i], false, extras, sizeof(extras)); /* ok: own column */
    err[0] = '\0';
    if (r[i].err != 0)
      snprintf(err, sizeof(err), "%s: %s", r[i].err_call,
               arbor_strerror(r[i].err));
    csv_field(out, c->wl->name, false);
    csv_field(out, c->variant->name != NULL ? c->variant->name : "", false);
    snprintf(num, sizeof(num), "%u", c->sched);
    csv_field(out, num, false);
    csv_field(out, params, false);
    csv_field(out, fmt_ms(num, sizeof(num), r[i].median_ms), false);
    csv_field(out, fmt_ms(num, sizeof(num), r[i].cold_ms), false);
    csv_field(out, fmt_ms(num, sizeof(num), r[i].min_ms), false);
    csv_field(out, fmt_ms(num, sizeof(num), r[i].max_ms), false);
    snprintf(num, sizeof(num), "%u", r[i].nwarm);
    csv_field(out, num, false);
    csv_field(out, extras, false);
    csv_field(out, r[i].ok ? "1" : "0", false);
    csv_field(out, err, false);
    csv_field(out, m->version, false);
    csv_field(out, m->build, false);
    csv_field(out, m->cpu, false);
    snprintf(num, sizeof(num), "%u", m->online_cpus);
    csv_field(out, num, false);
    csv_field(out, m->kernel, false);
    csv_field(out, m->date, false);
    csv_field(out, m->profile, false);
    num[0] = '\0';
    if (!isnan(s))
      snprintf(num, sizeof(num), "%.3f", s);
    csv_field(out, num, false);
    num[0] = '\0';
    if (!isnan(s))
      snprintf(num, sizeof(num), "%u", c->sched);
    csv_field(out, num, true);
  }
}

void bench_report(FILE *out, enum bench_format f, const struct bench_meta *m,
                  const struct bench_result *r, size_t n)
{
  switch (f) {
  case BENCH_FORMAT_TABLE:
    report_table(out, m, r, n);
    break;
  case BENCH_FORMAT_RESULT:
    report_result(out, r, n);
    break;
  case BENCH_FORMAT_JSON:
    report_json(out, m, r, n);
    break;
  case BENCH_FORMAT_CSV:
    report_csv(out, m, r, n);
    break;
  }
  fflush(out);
}
