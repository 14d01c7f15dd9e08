/* tests/test_bench_report.c -- arbor-bench's reports and plot (bench/report.c,
 * bench/plot.c), fed fixed results: no workload runs here.
 *
 * Checks the scaling ratios (median at 1 worker / median at k, only for a
 * series run at 1 and at another count), the scaling section of the table,
 * the CSV's and the JSON's shape (every row as wide as the header; the JSON
 * parsed by a small validator below), that --format=result stays RESULT lines
 * only, and that the SVG is well-formed XML (a small checker below: balanced
 * tags, quoted attributes, escaped text) holding each workload's label, the
 * machine line and one curve per scaling series.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

/* ---- fake workloads (never run: only their descriptions are read) ------- */

static const struct bench_param p_skynet[] = {{"size", 1000000, 10000, 2},
                                              {"div", 10, 10, 2}};
static const struct bench_param p_n[] = {{"n", 100000, 1000, 1}};
static const struct bench_variant v_plain[] = {{NULL, false, NULL}};
static const struct bench_variant v_switch[] = {{"yield", false, NULL},
                                                {"raw", true, NULL}};

static const struct bench_workload wl_skynet = {.name = "skynet",
                                                .params = p_skynet,
                                                .nparams = 2,
                                                .variants = v_plain,
                                                .nvariants = 1};
static const struct bench_workload wl_ring = {.name = "ring",
                                              .params = p_n,
                                              .nparams = 1,
                                              .variants = v_plain,
                                              .nvariants = 1};
static const struct bench_workload wl_spawn = {.name = "spawn",
                                               .params = p_n,
                                               .nparams = 1,
                                               .variants = v_plain,
                                               .nvariants = 1};
static const struct bench_workload wl_switch = {.name = "switch",
                                                .params = p_n,
                                                .nparams = 1,
                                                .variants = v_switch,
                                                .nvariants = 2,
                                                .max_sched = 1};
static const struct bench_workload wl_memory = {.name = "memory",
                                                .params = p_n,
                                                .nparams = 1,
                                                .variants = v_plain,
                                                .nvariants = 1,
                                                .one_run = true};

#define MAXR 32
static struct bench_result res[MAXR];
static struct bench_run runs[MAXR][3];
static size_t nres;

/* A result as bench_run_case() leaves it: a cold run, two warm runs around
 * the median, and the per-op extra bench_extra_per_op() would add. */
static size_t add(const struct bench_workload *wl, unsigned variant,
                  unsigned sched, int64_t p0, double median_ms, double ops,
                  const char *op)
{
  struct bench_result *r = &res[nres];

  cr_assert_lt(nres, MAXR);
  memset(r, 0, sizeof(*r));
  r->c = (struct bench_case){.wl = wl,
                             .variant = &wl->variants[variant],
                             .sched = sched,
                             .iters = wl->one_run ? 0 : 2,
                             .param = {p0, 10}};
  r->runs = runs[nres];
  r->runs[0] = (struct bench_run){.time_ms = median_ms * 1.5, .ok = true};
  r->runs[1] = (struct bench_run){.time_ms = median_ms * 0.9, .ok = true};
  r->runs[2] = (struct bench_run){.time_ms = median_ms * 1.1, .ok = true};
  r->nruns = wl->one_run ? 1 : 3;
  r->nwarm = wl->one_run ? 1 : 2;
  r->median_ms = median_ms;
  r->cold_ms = median_ms * 1.5;
  r->min_ms = median_ms * 0.9;
  r->max_ms = median_ms * 1.1;
  r->ok = true;
  strcpy(r->x.per_op, "-");
  if (op != NULL) {
    static char keys[MAXR][32];

    snprintf(keys[nres], sizeof(keys[nres]), "ns_per_%s", op);
    bench_extra_per_op(&r->x, keys[nres], op, median_ms, ops);
  } else if (wl->one_run) {
    bench_extra_add(&r->x, "bytes_per_proc_rss", 3100, 0);
  }
  return nres++;
}

static struct bench_meta meta = {
    .cpu = "Fake \"CPU\", 3 GHz <x> & co",
    .online_cpus = 4,
    .date = "2030-01-02T03:04:05Z",
    .kernel = "Linux 9.9",
    .version = "9.8.7",
    .profile = "full",
    .build = "optimised build",
};

/* skynet at 4, 1, 2 workers (out of order on purpose); ring at 1 and 2;
 * spawn at 2 and 4 only (no baseline); switch's two variants at 1 only;
 * memory (one_run) at 1 and 2; skynet with other parameters at 2 only. */
static size_t i_sky4, i_sky1, i_sky2, i_ring1, i_ring2, i_spawn2, i_spawn4,
    i_yield, i_raw, i_mem1, i_mem2, i_sky_other;

static void mixed(void)
{
  nres = 0;
  i_sky4 = add(&wl_skynet, 0, 4, 10000, 50.0, 1111111, "proc");
  i_sky1 = add(&wl_skynet, 0, 1, 10000, 100.0, 1111111, "proc");
  i_sky2 = add(&wl_skynet, 0, 2, 10000, 62.5, 1111111, "proc");
  i_ring1 = add(&wl_ring, 0, 1, 1000, 10.0, 100000, "hop");
  i_ring2 = add(&wl_ring, 0, 2, 1000, 20.0, 100000, "hop");
  i_spawn2 = add(&wl_spawn, 0, 2, 1000, 3.0, 1000, "spawn");
  i_spawn4 = add(&wl_spawn, 0, 4, 1000, 2.0, 1000, "spawn");
  i_yield = add(&wl_switch, 0, 1, 200000, 7.0, 200000, "switch");
  i_raw = add(&wl_switch, 1, 1, 200000, 1.0, 200000, "switch");
  i_mem1 = add(&wl_memory, 0, 1, 1000, 40.0, 0, NULL);
  i_mem2 = add(&wl_memory, 0, 2, 1000, 30.0, 0, NULL);
  i_sky_other = add(&wl_skynet, 0, 2, 1000, 5.0, 1111, "proc");
}

/* Everything at one worker count. */
static void single_count(void)
{
  nres = 0;
  add(&wl_skynet, 0, 1, 10000, 100.0, 1111111, "proc");
  add(&wl_ring, 0, 1, 1000, 10.0, 100000, "hop");
  add(&wl_switch, 1, 1, 200000, 1.0, 200000, "switch");
}

static char *render(enum bench_format f)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);

  cr_assert_not_null(out);
  bench_report(out, f, &meta, res, nres);
  cr_assert_eq(fclose(out), 0);
  return buf;
}

/* The SVG of res[0..nres); with BENCH_REPORT_SVG_DIR set, also kept there
 * as <name>.svg to look at. */
static char *plot(const char *name)
{
  char *buf = NULL, path[512];
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  const char *dir = getenv("BENCH_REPORT_SVG_DIR");

  cr_assert_not_null(out);
  cr_assert_eq(bench_plot_svg(out, &meta, res, nres), 0);
  cr_assert_eq(fclose(out), 0);
  if (dir != NULL) {
    snprintf(path, sizeof(path), "%s/%s.svg", dir, name);
    out = fopen(path, "w");
    cr_assert_not_null(out, "%s", path);
    fputs(buf, out);
    fclose(out);
  }
  return buf;
}

/* The line of text (from `from` on) that holds every one of the words;
 * copied into line.  Returns whether there is one. */
static bool find_line(const char *text, const char *const *words, size_t nwords,
                      char *line, size_t cap)
{
  while (*text != '\0') {
    size_t len = strcspn(text, "\n");
    bool all = true;

    snprintf(line, cap, "%.*s", (int)len, text);
    for (size_t k = 0; k < nwords && all; k++)
      all = strstr(line, words[k]) != NULL;
    if (all)
      return true;
    text += len + (text[len] == '\n');
  }
  return false;
}

static size_t count_of(const char *text, const char *needle)
{
  size_t k = 0;

  for (const char *p = strstr(text, needle); p != NULL;
       p = strstr(p + 1, needle))
    k++;
  return k;
}

/* ---- scaling ratios ----------------------------------------------------- */

Test(bench_report, speedup_ratios)
{
  mixed();
  cr_assert_float_eq(bench_speedup(res, nres, i_sky1), 1.0, 1e-12);
  cr_assert_float_eq(bench_speedup(res, nres, i_sky2), 1.6, 1e-12);
  cr_assert_float_eq(bench_speedup(res, nres, i_sky4), 2.0, 1e-12);
  cr_assert_float_eq(bench_speedup(res, nres, i_ring1), 1.0, 1e-12);
  cr_assert_float_eq(bench_speedup(res, nres, i_ring2), 0.5, 1e-12);
  /* No baseline, a single count, not timed for speed, other parameters. */
  cr_assert(isnan(bench_speedup(res, nres, i_spawn2)));
  cr_assert(isnan(bench_speedup(res, nres, i_spawn4)));
  cr_assert(isnan(bench_speedup(res, nres, i_yield)));
  cr_assert(isnan(bench_speedup(res, nres, i_raw)));
  cr_assert(isnan(bench_speedup(res, nres, i_mem1)));
  cr_assert(isnan(bench_speedup(res, nres, i_mem2)));
  cr_assert(isnan(bench_speedup(res, nres, i_sky_other)));
}

Test(bench_report, scaling_series_sorted_once)
{
  size_t idx[MAXR], k, total = 0;

  mixed();
  /* skynet's series opens at its first result (sched=4), sorted by workers. */
  k = bench_scaling_series(res, nres, i_sky4, idx);
  cr_assert_eq(k, 3);
  cr_assert_eq(idx[0], i_sky1);
  cr_assert_eq(idx[1], i_sky2);
  cr_assert_eq(idx[2], i_sky4);
  cr_assert_eq(bench_scaling_series(res, nres, i_sky1, idx), 0);
  cr_assert_eq(bench_scaling_series(res, nres, i_ring1, idx), 2);
  cr_assert_eq(idx[0], i_ring1);
  cr_assert_eq(idx[1], i_ring2);
  for (size_t i = 0; i < nres; i++)
    total += bench_scaling_series(res, nres, i, idx) > 0;
  cr_assert_eq(total, 2, "series: skynet and ring only, got %zu", total);
}

Test(bench_report, failed_cases_leave_the_series)
{
  size_t idx[MAXR];

  mixed();
  /* A failed baseline: no speed-up for anyone in the series. */
  res[i_ring1].ok = false;
  cr_assert(isnan(bench_speedup(res, nres, i_ring2)));
  cr_assert_eq(bench_scaling_series(res, nres, i_ring1, idx), 0);
  /* A failed member drops out; the rest keeps its figures. */
  res[i_sky2].ok = false;
  cr_assert(isnan(bench_speedup(res, nres, i_sky2)));
  cr_assert_float_eq(bench_speedup(res, nres, i_sky4), 2.0, 1e-12);
  cr_assert_eq(bench_scaling_series(res, nres, i_sky4, idx), 2);
  /* No median at all. */
  res[i_sky4].median_ms = NAN;
  cr_assert(isnan(bench_speedup(res, nres, i_sky4)));
  cr_assert_eq(bench_scaling_series(res, nres, i_sky4, idx), 0);
}

Test(bench_report, per_op_ns)
{
  const char *op = "x";

  mixed();
  cr_assert_float_eq(bench_per_op_ns(&res[i_ring2], &op), 200.0, 1e-9);
  cr_assert_str_eq(op, "hop");
  cr_assert(isnan(bench_per_op_ns(&res[i_mem1], &op)));
  cr_assert_null(op);
}

/* ---- table and RESULT lines --------------------------------------------- */

Test(bench_report, table_scaling_section)
{
  char *out, line[512];
  const char *scaling;

  mixed();
  out = render(BENCH_FORMAT_TABLE);
  scaling = strstr(out, "\n# scaling:");
  cr_assert_not_null(scaling, "no scaling section in:\n%s", out);
  cr_assert_not_null(strstr(out, "Fake \"CPU\", 3 GHz"), "%s", out);
  cr_assert(find_line(scaling,
                      (const char *[]){"skynet", " 4 ", "50.000", "2.00x", "4x",
                                       "50%"},
                      6, line, sizeof(line)),
            "%s", scaling);
  cr_assert(find_line(scaling,
                      (const char *[]){"skynet", " 2 ", "62.500", "1.60x",
                                       " 2x", "80%"},
                      6, line, sizeof(line)),
            "%s", scaling);
  cr_assert(find_line(scaling,
                      (const char *[]){"skynet", " 1 ", "100.000", "1.00x",
                                       " 1x", "100%"},
                      6, line, sizeof(line)),
            "%s", scaling);
  cr_assert(find_line(scaling,
                      (const char *[]){"ring", " 2 ", "0.50x", " 2x", "25%"}, 5,
                      line, sizeof(line)),
            "%s", scaling);
  /* Sorted by workers within the series. */
  cr_assert_lt(strstr(scaling, "100.000"), strstr(scaling, "62.500"));
  cr_assert_lt(strstr(scaling, "62.500"), strstr(scaling, "50.000"));
  /* Rows: 3 skynet + 2 ring, nothing else. */
  cr_assert_eq(count_of(scaling, "x  "), 5 * 2, "%s", scaling);
  cr_assert_null(strstr(scaling, "spawn"));
  cr_assert_null(strstr(scaling, "switch"));
  cr_assert_null(strstr(scaling, "memory"));
  cr_assert_null(strstr(scaling, "size=1000 "));
  free(out);
}

Test(bench_report, table_without_scaling)
{
  char *out;

  single_count();
  out = render(BENCH_FORMAT_TABLE);
  cr_assert_not_null(strstr(out, "skynet"));
  cr_assert_null(strstr(out, "scaling"), "%s", out);
  free(out);
}

Test(bench_report, result_lines_only)
{
  char *out, *line, *save = NULL;
  size_t lines = 0;

  mixed();
  out = render(BENCH_FORMAT_RESULT);
  for (line = strtok_r(out, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    cr_assert_eq(strncmp(line, "RESULT arbor ", 13), 0, "%s", line);
    lines++;
  }
  cr_assert_eq(lines, nres);
  free(out);
}

/* ---- CSV ---------------------------------------------------------------- */

/* Splits one CSV record (RFC 4180 quoting) starting at *p; stores up to
 * `max` unquoted fields in f and advances *p past the record's line break.
 * Returns the number of fields. */
static size_t csv_record(const char **p, char f[][256], size_t max)
{
  const char *s = *p;
  size_t n = 0;

  for (;;) {
    size_t len = 0;
    char *dst = n < max ? f[n] : NULL;

    if (*s == '"') {
      for (s++; !(*s == '"' && s[1] != '"'); s++) {
        cr_assert_neq(*s, '\0', "unterminated quote");
        if (*s == '"')
          s++;
        if (dst != NULL && len < 255)
          dst[len++] = *s;
      }
      s++;
    } else {
      for (; *s != ',' && *s != '\n' && *s != '\0'; s++) {
        cr_assert_neq(*s, '"', "quote in an unquoted field");
        if (dst != NULL && len < 255)
          dst[len++] = *s;
      }
    }
    if (dst != NULL)
      dst[len] = '\0';
    n++;
    if (*s == ',') {
      s++;
      continue;
    }
    cr_assert_eq(*s, '\n', "record not ended by a line break");
    *p = s + 1;
    return n;
  }
}

Test(bench_report, csv_shape)
{
  static char f[32][256], head[32][256];
  char *out;
  const char *p;
  size_t ncols, rows = 0;

  mixed();
  out = render(BENCH_FORMAT_CSV);
  p = out;
  ncols = csv_record(&p, head, 32);
  cr_assert_eq(ncols, 21, "header: %s", out);
  cr_assert_str_eq(head[0], "workload");
  cr_assert_str_eq(head[2], "sched");
  cr_assert_str_eq(head[4], "time_ms");
  cr_assert_str_eq(head[19], "speedup");
  cr_assert_str_eq(head[20], "ideal_speedup");
  while (*p != '\0') {
    size_t i = rows;

    cr_assert_eq(csv_record(&p, f, 32), ncols, "row %zu", rows);
    cr_assert_str_eq(f[0], res[i].c.wl->name);
    cr_assert_str_eq(f[14], meta.cpu); /* quoted, and back */
    if (i == i_sky2) {
      cr_assert_str_eq(f[2], "2");
      cr_assert_str_eq(f[3], "size=10000 div=10");
      cr_assert_str_eq(f[4], "62.500");
      cr_assert_str_eq(f[19], "1.600");
      cr_assert_str_eq(f[20], "2");
    } else if (i == i_ring1) {
      cr_assert_str_eq(f[19], "1.000");
      cr_assert_str_eq(f[20], "1");
    } else if (i == i_raw) {
      cr_assert_str_eq(f[1], "raw");
      cr_assert_str_eq(f[19], "");
      cr_assert_str_eq(f[20], "");
    } else if (i == i_spawn4 || i == i_mem2 || i == i_sky_other) {
      cr_assert_str_eq(f[19], "", "row %zu", i);
      cr_assert_str_eq(f[20], "", "row %zu", i);
    }
    rows++;
  }
  cr_assert_eq(rows, nres);
  free(out);
}

/* ---- JSON: a small validating parser ------------------------------------ */

struct json {
  const char *s;
  const char *err;
};

static bool json_value(struct json *j);

static void json_ws(struct json *j)
{
  while (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')
    j->s++;
}

static bool json_fail(struct json *j, const char *why)
{
  if (j->err == NULL)
    j->err = why;
  return false;
}

static bool json_str(struct json *j)
{
  if (*j->s != '"')
    return json_fail(j, "expected a string");
  for (j->s++; *j->s != '"'; j->s++) {
    if ((unsigned char)*j->s < 0x20)
      return json_fail(j, "control character in a string");
    if (*j->s == '\\') {
      j->s++;
      if (*j->s == 'u') {
        for (int k = 1; k <= 4; k++) {
          if (!isxdigit((unsigned char)j->s[k]))
            return json_fail(j, "bad \\u escape");
        }
        j->s += 4;
      } else if (strchr("\"\\/bfnrt", *j->s) == NULL || *j->s == '\0') {
        return json_fail(j, "bad escape");
      }
    }
  }
  j->s++;
  return true;
}

static bool json_num(struct json *j)
{
  const char *start = j->s;

  if (*j->s == '-')
    j->s++;
  if (*j->s == '0')
    j->s++;
  else if (isdigit((unsigned char)*j->s))
    while (isdigit((unsigned char)*j->s))
      j->s++;
  else
    return json_fail(j, "bad number");
  if (*j->s == '.') {
    j->s++;
    if (!isdigit((unsigned char)*j->s))
      return json_fail(j, "bad fraction");
    while (isdigit((unsigned char)*j->s))
      j->s++;
  }
  if (*j->s == 'e' || *j->s == 'E') {
    j->s++;
    if (*j->s == '+' || *j->s == '-')
      j->s++;
    if (!isdigit((unsigned char)*j->s))
      return json_fail(j, "bad exponent");
    while (isdigit((unsigned char)*j->s))
      j->s++;
  }
  return j->s > start;
}

/* An array or object: its members, separated by commas. */
static bool json_seq(struct json *j, char close, bool object, size_t *count)
{
  size_t n = 0;

  j->s++;
  json_ws(j);
  if (*j->s == close) {
    j->s++;
    *count = 0;
    return true;
  }
  for (;;) {
    json_ws(j);
    if (object) {
      if (!json_str(j))
        return false;
      json_ws(j);
      if (*j->s++ != ':')
        return json_fail(j, "expected ':'");
    }
    if (!json_value(j))
      return false;
    n++;
    json_ws(j);
    if (*j->s == ',') {
      j->s++;
      continue;
    }
    if (*j->s != close)
      return json_fail(j, "expected ',' or a closing bracket");
    j->s++;
    *count = n;
    return true;
  }
}

static bool json_value(struct json *j)
{
  size_t n;

  json_ws(j);
  switch (*j->s) {
  case '{':
    return json_seq(j, '}', true, &n);
  case '[':
    return json_seq(j, ']', false, &n);
  case '"':
    return json_str(j);
  case 't':
    return strncmp(j->s, "true", 4) == 0 ? (j->s += 4, true)
                                         : json_fail(j, "bad literal");
  case 'f':
    return strncmp(j->s, "false", 5) == 0 ? (j->s += 5, true)
                                          : json_fail(j, "bad literal");
  case 'n':
    return strncmp(j->s, "null", 4) == 0 ? (j->s += 4, true)
                                         : json_fail(j, "bad literal");
  default:
    return json_num(j);
  }
}

/* Validates a whole document that is an array; returns its length. */
static size_t json_array_len(const char *text)
{
  struct json j = {text, NULL};
  size_t n = 0;

  json_ws(&j);
  cr_assert_eq(*j.s, '[', "not an array");
  cr_assert(json_seq(&j, ']', false, &n), "invalid JSON (%s) at: %.60s",
            j.err != NULL ? j.err : "?", j.s);
  json_ws(&j);
  cr_assert_eq(*j.s, '\0', "trailing text: %.60s", j.s);
  return n;
}

/* The object of the array that starts with `"workload": "<wl>"` and has
 * "sched": <sched> and the given first parameter, as a string. */
static char *json_object(const char *text, const char *wl, unsigned sched,
                         const char *param)
{
  char head[64], sch[32];
  const char *p = text;

  snprintf(head, sizeof(head), "{\"workload\": \"%s\"", wl);
  snprintf(sch, sizeof(sch), "\"sched\": %u,", sched);
  while ((p = strstr(p, head)) != NULL) {
    size_t len = strcspn(p, "\n");
    char *obj = strndup(p, len);

    if (strstr(obj, sch) != NULL && strstr(obj, param) != NULL)
      return obj;
    free(obj);
    p += len;
  }
  cr_assert_fail("no %s sched=%u object in %s", wl, sched, text);
  return NULL;
}

Test(bench_report, json_shape)
{
  char *out, *o;

  mixed();
  /* Figures JSON cannot spell must come out as null. */
  res[i_spawn4].x.item[0].value = INFINITY;
  res[i_spawn2].median_ms = res[i_spawn2].min_ms = res[i_spawn2].max_ms = NAN;
  res[i_spawn2].runs[1].time_ms = NAN;
  res[i_spawn2].ok = false;
  res[i_spawn2].err = ARBOR_ENOMEM;
  res[i_spawn2].err_call = "arbor_spawn";
  out = render(BENCH_FORMAT_JSON);
  cr_assert_eq(json_array_len(out), nres, "%s", out);

  o = json_object(out, "skynet", 2, "\"size\": 10000");
  cr_assert_not_null(strstr(o, "\"time_ms\": 62.500"), "%s", o);
  cr_assert_not_null(strstr(o, "\"speedup\": 1.600, \"ideal_speedup\": 2,"),
                     "%s", o);
  cr_assert_not_null(strstr(o, "\"cpu\": \"Fake \\\"CPU\\\", 3 GHz"), "%s", o);
  free(o);
  o = json_object(out, "ring", 1, "\"n\": 1000");
  cr_assert_not_null(strstr(o, "\"speedup\": 1.000, \"ideal_speedup\": 1,"),
                     "%s", o);
  free(o);
  o = json_object(out, "skynet", 2, "\"size\": 1000,");
  cr_assert_not_null(strstr(o, "\"speedup\": null, \"ideal_speedup\": null,"),
                     "%s", o);
  free(o);
  o = json_object(out, "spawn", 2, "\"n\": 1000");
  cr_assert_not_null(strstr(o, "\"time_ms\": null"), "%s", o);
  cr_assert_not_null(strstr(o, "\"ok\": false"), "%s", o);
  free(o);
  o = json_object(out, "spawn", 4, "\"n\": 1000");
  cr_assert_not_null(strstr(o, "\"ns_per_spawn\": null"), "%s", o);
  free(o);
  free(out);
}

/* ---- SVG: a small well-formedness checker ------------------------------- */

static bool name_char(char c)
{
  return isalnum((unsigned char)c) || c == '-' || c == '_' || c == ':' ||
         c == '.';
}

/* An entity or character reference at s ('&'); returns its length or 0. */
static size_t xml_ref(const char *s)
{
  static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;",
                                    "&apos;"};

  for (size_t k = 0; k < 5; k++) {
    if (strncmp(s, ent[k], strlen(ent[k])) == 0)
      return strlen(ent[k]);
  }
  if (s[1] == '#') {
    size_t k = 2;

    while (isxdigit((unsigned char)s[k]) || s[k] == 'x')
      k++;
    return s[k] == ';' && k > 2 ? k + 1 : 0;
  }
  return 0;
}

/* Why text is not one well-formed XML element (after an optional
 * declaration) named root, or NULL when it is; counts the elements named
 * count_name. */
#define XML_CHECK(cond, ...)                   \
  do {                                         \
    if (!(cond)) {                             \
      snprintf(why, sizeof(why), __VA_ARGS__); \
      return why;                              \
    }                                          \
  } while (0)

static const char *xml_check(const char *text, const char *root,
                             const char *count_name, size_t *count)
{
  static char why[160];
  char stack[64][32];
  size_t depth = 0, roots = 0;
  const char *s = text;

  *count = 0;
  if (strncmp(s, "<?xml", 5) == 0) {
    s = strstr(s, "?>");
    XML_CHECK(s != NULL, "unterminated declaration");
    s += 2;
  }
  while (*s != '\0') {
    if (*s == '&') {
      size_t k = xml_ref(s);

      XML_CHECK(k > 0, "bare '&' in text at: %.40s", s);
      s += k;
      continue;
    }
    if (*s != '<') {
      XML_CHECK(depth > 0 || isspace((unsigned char)*s),
                "text outside the root at: %.40s", s);
      s++;
      continue;
    }
    if (strncmp(s, "<!--", 4) == 0) {
      s = strstr(s, "-->");
      XML_CHECK(s != NULL, "unterminated comment");
      s += 3;
      continue;
    }
    if (s[1] == '/') {
      size_t len = 0;

      s += 2;
      while (name_char(s[len]))
        len++;
      XML_CHECK(depth > 0, "closing tag with nothing open: %.40s", s);
      depth--;
      XML_CHECK(strlen(stack[depth]) == len &&
                    strncmp(stack[depth], s, len) == 0,
                "</%.*s> closes <%.31s>", (int)(len < 40 ? len : 40), s,
                stack[depth]);
      s += len;
      while (isspace((unsigned char)*s))
        s++;
      XML_CHECK(*s == '>', "bad closing tag at: %.40s", s);
      s++;
      continue;
    }
    /* A start tag: its name, attributes name="value", then > or />. */
    {
      size_t len = 0;
      char name[32];

      s++;
      while (name_char(s[len]))
        len++;
      XML_CHECK(len > 0 && len < sizeof(name), "bad tag name at: %.40s", s);
      snprintf(name, sizeof(name), "%.*s", (int)len, s);
      if (depth == 0) {
        roots++;
        XML_CHECK(strcmp(name, root) == 0, "root <%s>, not <%s>", name, root);
      }
      if (strcmp(name, count_name) == 0)
        (*count)++;
      s += len;
      for (;;) {
        char quote;

        while (isspace((unsigned char)*s))
          s++;
        if (*s == '>' || strncmp(s, "/>", 2) == 0)
          break;
        len = 0;
        while (name_char(s[len]))
          len++;
        XML_CHECK(len > 0, "bad attribute in <%s> at: %.40s", name, s);
        s += len;
        XML_CHECK(*s == '=', "attribute without value in <%s>", name);
        quote = *++s;
        XML_CHECK(quote == '"' || quote == '\'', "unquoted attribute in <%s>",
                  name);
        for (s++; *s != quote; s++) {
          XML_CHECK(*s != '\0' && *s != '<', "bad attribute value in <%s>",
                    name);
          XML_CHECK(*s != '&' || xml_ref(s) > 0,
                    "bare '&' in an attribute of <%s>", name);
        }
        s++;
        XML_CHECK(isspace((unsigned char)*s) || *s == '>' || *s == '/',
                  "attributes not separated in <%s>", name);
      }
      if (*s == '>') {
        XML_CHECK(depth < 64, "nested too deep");
        snprintf(stack[depth++], sizeof(stack[0]), "%s", name);
        s++;
      } else {
        s += 2;
      }
    }
  }
  XML_CHECK(depth == 0, "<%s> never closed", depth > 0 ? stack[depth - 1] : "");
  XML_CHECK(roots == 1, "%zu root elements", roots);
  return NULL;
}

/* Asserts that svg is well-formed; returns how many count_name elements. */
static size_t svg_check(const char *svg, const char *count_name)
{
  size_t k;
  const char *why = xml_check(svg, "svg", count_name, &k);

  cr_assert_null(why, "not well-formed: %s", why);
  return k;
}

Test(bench_report, svg_well_formed_with_labels)
{
  char *svg;
  size_t polylines, rects;

  mixed();
  svg = plot("mixed");
  polylines = svg_check(svg, "polyline");
  /* One curve per scaling series: skynet and ring. */
  cr_assert_eq(polylines, 2, "%zu curves", polylines);
  rects = svg_check(svg, "rect");
  /* The background, one legend swatch per worker count (1, 2, 4), one bar
   * per case with a time per operation (all but the two memory ones). */
  cr_assert_eq(rects, 1 + 3 + (nres - 2), "%zu rects", rects);
  cr_assert_not_null(strstr(svg, "width=\"800\""));
  /* The title: version, profile and the machine line, escaped. */
  cr_assert_not_null(strstr(svg, "Arbor 9.8.7, profile full"));
  cr_assert_not_null(
      strstr(svg, "Fake &quot;CPU&quot;, 3 GHz &lt;x&gt; &amp; co, 4 online "
                  "CPUs; Linux 9.9"),
      "%s", svg);
  cr_assert_not_null(strstr(svg, "2030-01-02T03:04:05Z"));
  /* Each workload's bars and their values with units. */
  cr_assert_not_null(strstr(svg, ">skynet size=10000 div=10, 1 worker<"));
  cr_assert_not_null(strstr(svg, ">skynet size=10000 div=10, 4 workers<"));
  cr_assert_not_null(strstr(svg, ">skynet size=1000 div=10, 2 workers<"));
  cr_assert_not_null(strstr(svg, ">ring, 2 workers<"));
  cr_assert_not_null(strstr(svg, ">spawn, 4 workers<"));
  cr_assert_not_null(strstr(svg, ">switch yield, 1 worker<"));
  cr_assert_not_null(strstr(svg, ">switch raw, 1 worker<"));
  cr_assert_not_null(strstr(svg, ">200 ns/hop<"), "%s", svg);
  cr_assert_not_null(strstr(svg, ">5.00 ns/switch<"), "%s", svg);
  cr_assert_not_null(strstr(svg, ">2.00 \xc2\xb5s/spawn<"), "%s", svg);
  /* memory has no time per operation: named, not drawn. */
  cr_assert_not_null(
      strstr(svg, "Not shown (no time per operation): memory sched=1, "
                  "memory sched=2"),
      "%s", svg);
  /* The curves' legend and the ideal. */
  cr_assert_not_null(strstr(svg, ">skynet size=10000 div=10: 2.00x at 4<"),
                     "%s", svg);
  cr_assert_not_null(strstr(svg, ">ring: 0.50x at 2<"), "%s", svg);
  cr_assert_not_null(strstr(svg, "ideal: speed-up = workers"));
  cr_assert_null(strstr(svg, "no scaling curve"));
  free(svg);
}

Test(bench_report, svg_single_worker_count)
{
  char *svg;
  size_t polylines;

  single_count();
  svg = plot("single");
  polylines = svg_check(svg, "polyline");
  cr_assert_eq(polylines, 0);
  cr_assert_not_null(strstr(svg, "Only one worker count was run (sched=1)"),
                     "%s", svg);
  cr_assert_not_null(strstr(svg, ">ring, 1 worker<"));
  free(svg);
}

Test(bench_report, svg_nothing_to_draw)
{
  char *svg;
  size_t polylines;

  nres = 0;
  add(&wl_memory, 0, 1, 1000, 40.0, 0, NULL);
  add(&wl_memory, 0, 2, 1000, 30.0, 0, NULL);
  svg = plot("nothing");
  polylines = svg_check(svg, "polyline");
  cr_assert_eq(polylines, 0);
  cr_assert_not_null(strstr(svg, "No case has a time per operation"));
  cr_assert_not_null(strstr(svg, "No timed workload ran"), "%s", svg);
  free(svg);
}

/* The checkers themselves must reject what they are there to catch. */
Test(bench_report, checkers_reject_malformed)
{
  size_t k;
  struct json j = {"[{\"a\": nan}]", NULL};

  cr_assert_null(xml_check("<svg><g/><text x=\"1\">a &amp; b</text></svg>",
                           "svg", "g", &k));
  cr_assert_eq(k, 1);
  cr_assert_not_null(xml_check("<svg><g></svg>", "svg", "g", &k));
  cr_assert_not_null(xml_check("<svg><g>", "svg", "g", &k));
  cr_assert_not_null(
      xml_check("<svg><text>a & b</text></svg>", "svg", "g", &k));
  cr_assert_not_null(xml_check("<svg x=1></svg>", "svg", "g", &k));
  cr_assert_not_null(xml_check("<svg></svg><svg></svg>", "svg", "g", &k));
  cr_assert_not(json_value(&j));
  j = (struct json){"{\"a\": 1,}", NULL};
  cr_assert_not(json_value(&j));
  j = (struct json){"{\"a\": [1, 2.5e3, \"\\u00b5\", true, null]}", NULL};
  cr_assert(json_value(&j), "%s", j.err);
}
