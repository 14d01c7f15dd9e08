/* bench/report.c -- printing results: an aligned table, WORKLOADS.md's
 * RESULT lines, JSON and CSV, and the machine description they carry.
 *
 * The RESULT lines are a contract with the scripts that also read the Go and
 * Erlang programs' output (WORKLOADS.md, "Output"): keep their shape.
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
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
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

static void report_result(const struct bench_result *r, size_t n)
{
  char params[160], extras[320], t[32], cold[32], lo[32], hi[32];

  for (size_t i = 0; i < n; i++) {
    bench_format_params(&r[i].c, true, params, sizeof(params));
    format_extras(&r[i], true, extras, sizeof(extras));
    printf("RESULT arbor %s sched=%u %s time_ms=%s %s cold_ms=%s min_ms=%s "
           "max_ms=%s iters=%u\n",
           r[i].c.wl->name, r[i].c.sched, params,
           fmt_ms(t, sizeof(t), r[i].median_ms), extras,
           fmt_ms(cold, sizeof(cold), r[i].cold_ms),
           fmt_ms(lo, sizeof(lo), r[i].min_ms),
           fmt_ms(hi, sizeof(hi), r[i].max_ms), r[i].nwarm);
  }
}

/* ---- table ------------------------------------------------------------ */

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
/* Numbers are right-aligned so that their decimal points line up. */
static const bool col_right[NCOLS] = {false, false, true, false, true,
                                      true,  true,  true, false};

typedef char cell[96];

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

static void table_row(cell *c, const size_t *width)
{
  for (int k = 0; k < NCOLS; k++) {
    int w = (int)width[k];

    if (k == NCOLS - 1)
      printf("%s\n", c[k]); /* no trailing blanks */
    else if (col_right[k])
      printf("%*s  ", w, c[k]);
    else
      printf("%-*s  ", w, c[k]);
  }
}

static void report_table(const struct bench_meta *m,
                         const struct bench_result *r, size_t n)
{
  cell *cells = calloc(n + 1, sizeof(*cells) * NCOLS);
  size_t width[NCOLS], rule = 0;

  if (cells == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  printf("# arbor %s, %s; %s, %u online CPUs; %s; %s; profile %s\n", m->version,
         m->build, m->cpu, m->online_cpus, m->kernel, m->date, m->profile);
  for (int k = 0; k < NCOLS; k++) {
    snprintf(cells[k], sizeof(cell), "%s", col_title[k]);
    width[k] = strlen(col_title[k]);
  }
  for (size_t i = 0; i < n; i++) {
    cell *row = cells + (i + 1) * NCOLS;

    table_cells(&r[i], row);
    for (int k = 0; k < NCOLS; k++) {
      size_t len = strlen(row[k]);

      width[k] = len > width[k] ? len : width[k];
    }
  }
  for (int k = 0; k < NCOLS; k++)
    rule += width[k] + (k < NCOLS - 1 ? 2 : 0);
  for (size_t i = 0; i <= n; i++) {
    table_row(cells + i * NCOLS, width);
    if (i == 0) {
      for (size_t j = 0; j < rule; j++)
        putchar('-');
      putchar('\n');
    }
  }
  free(cells);
  for (size_t i = 0; i < n; i++) {
    char label[96];

    if (r[i].err == 0)
      continue;
    bench_case_label(&r[i].c, label, sizeof(label));
    printf("! %s: %s: %s (%s)\n", label, r[i].err_call,
           arbor_strerror(r[i].err), arbor_err_name(r[i].err));
  }
}

/* ---- JSON and CSV ----------------------------------------------------- */

static void json_string(const char *s)
{
  putchar('"');
  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;

    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

/* JSON has no NaN: a missing figure is null. */
static void json_ms(const char *key, double v)
{
  printf(", \"%s\": ", key);
  if (isnan(v))
    printf("null");
  else
    printf("%.3f", v);
}

static void report_json(const struct bench_meta *m,
                        const struct bench_result *r, size_t n)
{
  printf("[");
  for (size_t i = 0; i < n; i++) {
    const struct bench_case *c = &r[i].c;

    printf("%s\n  {\"workload\": ", i > 0 ? "," : "");
    json_string(c->wl->name);
    printf(", \"variant\": ");
    if (c->variant->name != NULL)
      json_string(c->variant->name);
    else
      printf("null");
    printf(", \"sched\": %u, \"params\": {", c->sched);
    for (unsigned k = 0; k < c->wl->nparams; k++)
      printf("%s\"%s\": %lld", k > 0 ? ", " : "", c->wl->params[k].key,
             (long long)c->param[k]);
    printf("}");
    json_ms("time_ms", r[i].median_ms);
    json_ms("cold_ms", r[i].cold_ms);
    json_ms("min_ms", r[i].min_ms);
    json_ms("max_ms", r[i].max_ms);
    printf(", \"iters\": %u, \"runs_ms\": [", r[i].nwarm);
    for (unsigned k = 0; k < r[i].nruns; k++) {
      if (isnan(r[i].runs[k].time_ms))
        printf("%snull", k > 0 ? ", " : "");
      else
        printf("%s%.3f", k > 0 ? ", " : "", r[i].runs[k].time_ms);
    }
    printf("], \"extras\": {");
    for (unsigned k = 0; k < r[i].x.n; k++)
      printf("%s\"%s\": %.*f", k > 0 ? ", " : "", r[i].x.item[k].key,
             r[i].x.item[k].prec, r[i].x.item[k].value);
    printf("}, \"ok\": %s, \"error\": ", r[i].ok ? "true" : "false");
    if (r[i].err != 0) {
      char msg[160];

      snprintf(msg, sizeof(msg), "%s: %s", r[i].err_call,
               arbor_strerror(r[i].err));
      json_string(msg);
    } else {
      printf("null");
    }
    printf(", \"arbor_version\": ");
    json_string(m->version);
    printf(", \"build\": ");
    json_string(m->build);
    printf(", \"cpu\": ");
    json_string(m->cpu);
    printf(", \"online_cpus\": %u, \"kernel\": ", m->online_cpus);
    json_string(m->kernel);
    printf(", \"date\": ");
    json_string(m->date);
    printf(", \"profile\": ");
    json_string(m->profile);
    printf("}");
  }
  printf("\n]\n");
}

/* A CSV field, quoted when it holds a separator, a quote or a line break. */
static void csv_field(const char *s, bool last)
{
  if (strpbrk(s, ",\"\n\r") == NULL) {
    fputs(s, stdout);
  } else {
    putchar('"');
    for (; *s != '\0'; s++) {
      if (*s == '"')
        putchar('"');
      putchar(*s);
    }
    putchar('"');
  }
  putchar(last ? '\n' : ',');
}

static void report_csv(const struct bench_meta *m, const struct bench_result *r,
                       size_t n)
{
  char params[160], extras[320], err[160], num[32];

  printf("workload,variant,sched,params,time_ms,cold_ms,min_ms,max_ms,iters,"
         "extras,ok,error,arbor_version,build,cpu,online_cpus,kernel,date,"
         "profile\n");
  for (size_t i = 0; i < n; i++) {
    const struct bench_case *c = &r[i].c;

    bench_format_params(c, false, params, sizeof(params));
    format_extras(&r[i], false, extras, sizeof(extras)); /* ok: own column */
    err[0] = '\0';
    if (r[i].err != 0)
      snprintf(err, sizeof(err), "%s: %s", r[i].err_call,
               arbor_strerror(r[i].err));
    csv_field(c->wl->name, false);
    csv_field(c->variant->name != NULL ? c->variant->name : "", false);
    snprintf(num, sizeof(num), "%u", c->sched);
    csv_field(num, false);
    csv_field(params, false);
    csv_field(fmt_ms(num, sizeof(num), r[i].median_ms), false);
    csv_field(fmt_ms(num, sizeof(num), r[i].cold_ms), false);
    csv_field(fmt_ms(num, sizeof(num), r[i].min_ms), false);
    csv_field(fmt_ms(num, sizeof(num), r[i].max_ms), false);
    snprintf(num, sizeof(num), "%u", r[i].nwarm);
    csv_field(num, false);
    csv_field(extras, false);
    csv_field(r[i].ok ? "1" : "0", false);
    csv_field(err, false);
    csv_field(m->version, false);
    csv_field(m->build, false);
    csv_field(m->cpu, false);
    snprintf(num, sizeof(num), "%u", m->online_cpus);
    csv_field(num, false);
    csv_field(m->kernel, false);
    csv_field(m->date, false);
    csv_field(m->profile, true);
  }
}

void bench_report(enum bench_format f, const struct bench_meta *m,
                  const struct bench_result *r, size_t n)
{
  switch (f) {
  case BENCH_FORMAT_TABLE:
    report_table(m, r, n);
    break;
  case BENCH_FORMAT_RESULT:
    report_result(r, n);
    break;
  case BENCH_FORMAT_JSON:
    report_json(m, r, n);
    break;
  case BENCH_FORMAT_CSV:
    report_csv(m, r, n);
    break;
  }
  fflush(stdout);
}
