/* bench/plot.c -- arbor-bench --plot FILE.svg: the results as a picture.
 *
 * One self-contained SVG (no script, no external font or style sheet), 800
 * px wide, in two panels:
 *  (a) the cost per operation of every case, one horizontal bar per
 *      workload, variant and worker count, on a log scale so that a 5 ns
 *      switch and a 500 ns restart both read, each bar labelled with its
 *      value and unit;
 *  (b) the scaling curves: x the workers, y the throughput relative to one
 *      worker (report.c's bench_speedup()), one line per series, and the
 *      ideal diagonal (speed-up = workers).  With a single worker count the
 *      panel says so instead of drawing an empty chart.
 * The title carries the machine line of the table's header.  The body is
 * written to a memory stream first, because the <svg> element must state
 * the height, which is known only once every row is laid out.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

#define WIDTH 800
#define MARGIN 16
#define CHAR_W 7.0 /* a generous average advance at 12 px sans-serif */
#define BAR_H 16
#define BAR_GAP 4
#define GROUP_GAP 10
#define MAX_BAR_COUNTS 8 /* more worker counts: bars for 1, 2^i, max only */
#define CHART_H 300

static const char *const palette[] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#000000", "#999933", "#882255", "#44AA99",
};
#define NPALETTE (sizeof(palette) / sizeof(palette[0]))

struct plot {
  FILE *out; /* the body, before the <svg> element is known */
  double y;  /* the next free line, top down */
  const struct bench_result *r;
  size_t n;
};

/* Text content or an attribute value, XML-escaped. */
static void xml_text(FILE *out, const char *s)
{
  for (; *s != '\0'; s++) {
    switch (*s) {
    case '&':
      fputs("&amp;", out);
      break;
    case '<':
      fputs("&lt;", out);
      break;
    case '>':
      fputs("&gt;", out);
      break;
    case '"':
      fputs("&quot;", out);
      break;
    case '\'':
      fputs("&apos;", out);
      break;
    default:
      /* Control characters are not allowed in XML 1.0 at all. */
      putc((unsigned char)*s < 0x20 ? ' ' : *s, out);
    }
  }
}

/* <text> at (x, y); attrs is inserted verbatim (font, anchor, colour). */
static void text(FILE *out, double x, double y, const char *attrs,
                 const char *s)
{
  fprintf(out, "<text x=\"%.1f\" y=\"%.1f\"%s%s>", x, y, *attrs ? " " : "",
          attrs);
  xml_text(out, s);
  fputs("</text>\n", out);
}

static double text_w(const char *s)
{
  return CHAR_W * (double)strlen(s);
}

/* A duration in ns with a unit that keeps it short and three significant
 * digits ("5.71 ns", "82.1 ns", "1.23 us"), or as few as it needs for a
 * tick label ("1 ns", "100 ns", "0.1 ns"). */
static void fmt_ns(char *buf, size_t cap, double ns, bool tick)
{
  static const char *const unit[] = {"ns", "\xc2\xb5s", "ms", "s"};
  unsigned u = 0;

  /* 999.6 would print as "1000": move up a unit before rounding does. */
  while (u < 3 && fabs(ns) >= (tick ? 1000 : 999.5)) {
    ns /= 1000;
    u++;
  }
  if (tick)
    snprintf(buf, cap, "%g %s", ns, unit[u]);
  else if (ns >= 99.95)
    snprintf(buf, cap, "%.0f %s", ns, unit[u]);
  else if (ns >= 9.995)
    snprintf(buf, cap, "%.1f %s", ns, unit[u]);
  else
    snprintf(buf, cap, "%.2f %s", ns, unit[u]);
}

/* "skynet" or "switch raw": a series' name in labels and legends, with its
 * parameters when the same workload and variant also ran with others. */
static void series_name(const struct plot *p, const struct bench_result *r,
                        char *buf, size_t cap)
{
  bool others = false;
  size_t len;

  for (size_t i = 0; i < p->n && !others; i++)
    others = p->r[i].c.wl == r->c.wl && p->r[i].c.variant == r->c.variant &&
             !bench_same_series(&p->r[i], r);
  if (r->c.variant->name != NULL)
    len =
        (size_t)snprintf(buf, cap, "%s %s", r->c.wl->name, r->c.variant->name);
  else
    len = (size_t)snprintf(buf, cap, "%s", r->c.wl->name);
  if (others && len + 1 < cap) {
    buf[len++] = ' ';
    bench_format_params(&r->c, false, buf + len, cap - len);
  }
}

static void header(struct plot *p, const struct bench_meta *m)
{
  char line[320];

  snprintf(line, sizeof(line), "arbor-bench: Arbor %s, profile %s", m->version,
           m->profile);
  text(p->out, MARGIN, 30, "font-size=\"18\" font-weight=\"bold\"", line);
  snprintf(line, sizeof(line), "%s, %u online CPUs; %s", m->cpu, m->online_cpus,
           m->kernel);
  text(p->out, MARGIN, 50, "fill=\"#444\"", line);
  snprintf(line, sizeof(line), "%s; %s; times are medians of the warm runs",
           m->date, m->build);
  text(p->out, MARGIN, 66, "fill=\"#444\"", line);
  p->y = 80;
}

/* ---- (a) cost per operation --------------------------------------------- */

static int cmp_unsigned(const void *a, const void *b)
{
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

  return (x > y) - (x < y);
}

/* The distinct worker counts of the cases that have a per-op figure, sorted;
 * returns how many (counts has room for n). */
static size_t bar_counts(const struct plot *p, unsigned *counts)
{
  size_t k = 0;

  for (size_t i = 0; i < p->n; i++) {
    bool seen = false;

    if (isnan(bench_per_op_ns(&p->r[i], NULL)))
      continue;
    for (size_t j = 0; j < k && !seen; j++)
      seen = counts[j] == p->r[i].c.sched;
    if (!seen)
      counts[k++] = p->r[i].c.sched;
  }
  qsort(counts, k, sizeof(*counts), cmp_unsigned);
  return k;
}

/* With many worker counts (the full profile on a large machine), one bar
 * each would make the panel unreadably long: keep 1, the powers of two and
 * the largest; the scaling panel still has them all. */
static bool count_shown(unsigned k, const unsigned *counts, size_t ncounts)
{
  return ncounts <= MAX_BAR_COUNTS || k == 1 || (k & (k - 1)) == 0 ||
         k == counts[ncounts - 1];
}

static const char *count_colour(unsigned k, const unsigned *counts,
                                size_t ncounts)
{
  size_t rank = 0;

  for (size_t j = 0; j < ncounts && counts[j] != k; j++)
    rank += count_shown(counts[j], counts, ncounts);
  return palette[rank % NPALETTE];
}

static void bar_label(const struct plot *p, const struct bench_result *r,
                      char *buf, size_t cap)
{
  char name[96];

  series_name(p, r, name, sizeof(name));
  snprintf(buf, cap, "%s, %u worker%s", name, r->c.sched,
           r->c.sched == 1 ? "" : "s");
}

static void bar_value(const struct bench_result *r, char *buf, size_t cap)
{
  const char *op;
  double ns = bench_per_op_ns(r, &op);
  char t[32];

  fmt_ns(t, sizeof(t), ns, false);
  snprintf(buf, cap, "%s/%s%s", t, op, r->ok ? "" : " FAIL");
}

static void panel_cost(struct plot *p)
{
  FILE *out = p->out;
  unsigned *counts = malloc((p->n > 0 ? p->n : 1) * sizeof(*counts));
  size_t ncounts, nbars = 0, nhidden = 0;
  double lo = INFINITY, hi = 0, label_w = 0, value_w = 0, x0, x1, y;
  double dlo, dhi;
  char buf[160], missing[400] = "";
  const struct bench_result *prev = NULL;
  size_t mlen = 0;

  if (counts == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  ncounts = bar_counts(p, counts);
  text(out, MARGIN, p->y + 24, "font-size=\"15\" font-weight=\"bold\"",
       "Cost per operation (log scale; shorter is faster)");
  p->y += 32;
  for (size_t i = 0; i < p->n; i++) {
    const struct bench_result *r = &p->r[i];
    double ns = bench_per_op_ns(r, NULL);

    if (isnan(ns) || ns <= 0) {
      /* Not a time per operation (memory) or no median (a failed case). */
      if (mlen < sizeof(missing))
        mlen += (size_t)snprintf(missing + mlen, sizeof(missing) - mlen,
                                 "%s%s sched=%u", mlen > 0 ? ", " : "",
                                 r->c.wl->name, r->c.sched);
      continue;
    }
    if (!count_shown(r->c.sched, counts, ncounts)) {
      nhidden++;
      continue;
    }
    nbars++;
    lo = ns < lo ? ns : lo;
    hi = ns > hi ? ns : hi;
    bar_label(p, r, buf, sizeof(buf));
    label_w = text_w(buf) > label_w ? text_w(buf) : label_w;
    bar_value(r, buf, sizeof(buf));
    value_w = text_w(buf) > value_w ? text_w(buf) : value_w;
  }
  if (nbars == 0) {
    text(out, MARGIN, p->y + 16, "fill=\"#444\"",
         "No case has a time per operation to show.");
    p->y += 28;
    free(counts);
    return;
  }

  /* Legend: one swatch per worker count drawn. */
  x0 = MARGIN;
  for (size_t j = 0; j < ncounts; j++) {
    if (!count_shown(counts[j], counts, ncounts))
      continue;
    snprintf(buf, sizeof(buf), "%u worker%s", counts[j],
             counts[j] == 1 ? "" : "s");
    fprintf(out,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" "
            "fill=\"%s\"/>\n",
            x0, p->y + 4, count_colour(counts[j], counts, ncounts));
    text(out, x0 + 16, p->y + 14, "", buf);
    x0 += 16 + text_w(buf) + 14;
  }
  p->y += 22;
  if (nhidden > 0) {
    snprintf(buf, sizeof(buf),
             "(%zu case%s at other worker counts left out here; the scaling "
             "chart has every count)",
             nhidden, nhidden == 1 ? "" : "s");
    text(out, MARGIN, p->y + 12, "fill=\"#444\"", buf);
    p->y += 18;
  }

  /* The scale: whole decades around the data, at least one, and half a
   * decade at least below the shortest bar so that it still shows. */
  dlo = floor(log10(lo));
  if (log10(lo) - dlo < 0.5)
    dlo--;
  dhi = ceil(log10(hi));
  if (dhi <= dlo)
    dhi = dlo + 1;
  label_w = label_w < 80 ? 80 : label_w > 280 ? 280 : label_w;
  value_w = value_w < 60 ? 60 : value_w > 220 ? 220 : value_w;
  x0 = MARGIN + label_w + 8;
  x1 = WIDTH - MARGIN - value_w - 6;
  y = p->y + 14; /* tick labels */
  for (double d = dlo; d <= dhi; d++) {
    double x = x0 + (d - dlo) / (dhi - dlo) * (x1 - x0);

    fmt_ns(buf, sizeof(buf), pow(10, d), true);
    text(out, x, y, "text-anchor=\"middle\" fill=\"#444\" font-size=\"11\"",
         buf);
  }
  p->y = y + 6;
  y = p->y;

  /* Bars: a gap between workloads (and variants); every bar's tooltip has
   * the case in full. */
  for (size_t i = 0; i < p->n; i++) {
    const struct bench_result *r = &p->r[i];
    double ns = bench_per_op_ns(r, NULL), w;
    char params[128], t[32];

    if (isnan(ns) || ns <= 0 || !count_shown(r->c.sched, counts, ncounts))
      continue;
    if (prev != NULL &&
        (prev->c.wl != r->c.wl || prev->c.variant != r->c.variant))
      y += GROUP_GAP;
    prev = r;
    w = (log10(ns) - dlo) / (dhi - dlo) * (x1 - x0);
    w = w < 2 ? 2 : w;
    bar_label(p, r, buf, sizeof(buf));
    text(out, x0 - 8, y + BAR_H - 4, "text-anchor=\"end\"", buf);
    bench_format_params(&r->c, true, params, sizeof(params));
    snprintf(t, sizeof(t), "%.3f", r->median_ms);
    fprintf(out,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" "
            "fill=\"%s\"%s><title>",
            x0, y, w, BAR_H, count_colour(r->c.sched, counts, ncounts),
            r->ok ? "" : " stroke=\"#C00\" stroke-width=\"2\"");
    xml_text(out, r->c.wl->name);
    fprintf(out, " sched=%u ", r->c.sched);
    xml_text(out, params);
    fprintf(out, ": median %s ms</title></rect>\n", t);
    bar_value(r, buf, sizeof(buf));
    text(out, x0 + w + 6, y + BAR_H - 4, r->ok ? "" : "fill=\"#C00\"", buf);
    y += BAR_H + BAR_GAP;
  }

  /* Decade grid lines over the bars' height, drawn last but thin and light
   * so that they stay behind the eye's attention. */
  for (double d = dlo; d <= dhi; d++) {
    double x = x0 + (d - dlo) / (dhi - dlo) * (x1 - x0);

    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#bbb\" stroke-width=\"0.7\"/>\n",
            x, p->y, x, y);
  }
  p->y = y + 4;
  if (mlen > 0) {
    snprintf(buf, sizeof(buf), "Not shown (no time per operation): %.100s%s",
             missing, mlen > 100 ? ", ..." : "");
    text(out, MARGIN, p->y + 12, "fill=\"#444\" font-size=\"11\"", buf);
    p->y += 18;
  }
  free(counts);
}

/* ---- (b) scaling -------------------------------------------------------- */

/* A step of 1, 2 or 5 times a power of ten giving at most `most` intervals
 * over [0, span]. */
static double nice_step(double span, int most)
{
  double step = pow(10, floor(log10(span / most)));

  while (span / step > most) {
    if (span / (2 * step) <= most)
      return 2 * step;
    if (span / (5 * step) <= most)
      return 5 * step;
    step *= 10;
  }
  return step;
}

/* The case the message names when there is no curve: one worker count run,
 * or several but never 1 and another for the same series. */
static void scaling_empty(struct plot *p)
{
  FILE *out = p->out;
  unsigned k = 0;
  bool several = false;
  char buf[200];

  for (size_t i = 0; i < p->n; i++) {
    if (i == 0)
      k = p->r[i].c.sched;
    several = several || p->r[i].c.sched != k;
  }
  if (!several)
    snprintf(buf, sizeof(buf),
             "Only one worker count was run (sched=%u), so there is no "
             "scaling curve to draw.",
             k);
  else
    snprintf(buf, sizeof(buf),
             "No timed workload ran (and passed its checks) both at 1 worker "
             "and at another count, so there is no scaling curve to draw.");
  text(out, MARGIN, p->y + 16, "", buf);
  text(out, MARGIN, p->y + 34, "fill=\"#444\"",
       "To draw one, run at several worker counts including 1, e.g. "
       "--workers=1,2,4 or --profile=full.");
  p->y += 46;
}

static void panel_scaling(struct plot *p)
{
  FILE *out = p->out;
  size_t *idx = malloc((p->n > 0 ? p->n : 1) * sizeof(*idx)), nseries = 0;
  unsigned kmax = 1;
  double ymax = 0, x0 = MARGIN + 52, x1 = WIDTH - MARGIN - 200, y0, y1, h;
  double xstep, ystep;
  char buf[160];

  if (idx == NULL) {
    bench_warn("out of memory");
    exit(1);
  }
  text(out, MARGIN, p->y + 30, "font-size=\"15\" font-weight=\"bold\"",
       "Scaling: throughput relative to 1 worker (higher is better)");
  p->y += 40;
  for (size_t i = 0; i < p->n; i++) {
    size_t k = bench_scaling_series(p->r, p->n, i, idx);

    for (size_t j = 0; j < k; j++) {
      double s = bench_speedup(p->r, p->n, idx[j]);

      kmax = p->r[idx[j]].c.sched > kmax ? p->r[idx[j]].c.sched : kmax;
      ymax = s > ymax ? s : ymax;
    }
    nseries += k > 0;
  }
  if (nseries == 0) {
    scaling_empty(p);
    free(idx);
    return;
  }

  text(out, MARGIN, p->y + 12, "fill=\"#444\"",
       "speed-up = median time at 1 worker / median time at k workers; "
       "the dashed line is the ideal (= k)");
  p->y += 22;
  ymax = ymax > kmax ? ymax : kmax;
  ystep = nice_step(ymax, 8);
  ymax = ceil(ymax / ystep) * ystep;
  xstep = kmax - 1 <= 16 ? 1 : nice_step(kmax - 1, 12);
  h = CHART_H;
  if (h < 18.0 * (double)nseries + 10)
    h = 18.0 * (double)nseries + 10;
  y0 = p->y + 8; /* top of the plot area */
  y1 = y0 + h;   /* its bottom, speed-up 0 */

#define SX(k) (x0 + ((double)(k)-1) / (double)(kmax - 1) * (x1 - x0))
#define SY(s) (y1 - (s) / ymax * h)
  /* Grid and axes. */
  for (double s = 0; s <= ymax + ystep / 2; s += ystep) {
    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"0.7\"/>\n",
            x0, SY(s), x1, SY(s), s == 0 ? "#444" : "#ddd");
    snprintf(buf, sizeof(buf), "%gx", s);
    text(out, x0 - 6, SY(s) + 4, "text-anchor=\"end\" font-size=\"11\"", buf);
  }
  /* x ticks: 1, then the multiples of the step (every count up to 17). */
  for (double k = 1; k <= kmax; k = k == 1 && xstep > 1 ? xstep : k + xstep) {
    double kk = k;

    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"0.7\"/>\n",
            SX(kk), y0, SX(kk), y1, kk == 1 ? "#444" : "#ddd");
    snprintf(buf, sizeof(buf), "%g", kk);
    text(out, SX(kk), y1 + 16, "text-anchor=\"middle\" font-size=\"11\"", buf);
  }
  text(out, (x0 + x1) / 2, y1 + 34, "text-anchor=\"middle\"", "workers");
  fprintf(out,
          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
          "transform=\"rotate(-90 %.1f %.1f)\">speed-up</text>\n",
          (double)MARGIN + 8, (y0 + y1) / 2, (double)MARGIN + 8, (y0 + y1) / 2);
  fprintf(out,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\">"
          "<title>ideal: speed-up = workers</title></line>\n",
          SX(1), SY(1.0), SX(kmax), SY((double)kmax));
  text(out, SX(kmax) - 4, SY((double)kmax) + 14,
       "text-anchor=\"end\" fill=\"#666\" font-size=\"11\"", "ideal");

  /* One line per series, a marker per point, the legend on the right with
   * the speed-up at the largest count. */
  nseries = 0;
  for (size_t i = 0; i < p->n; i++) {
    size_t k = bench_scaling_series(p->r, p->n, i, idx);
    const char *colour = palette[nseries % NPALETTE];
    const struct bench_result *last;
    char name[96];
    double ly;

    if (k == 0)
      continue;
    series_name(p, &p->r[i], name, sizeof(name));
    fprintf(out,
            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
            "points=\"",
            colour);
    for (size_t j = 0; j < k; j++)
      fprintf(out, "%s%.1f,%.1f", j > 0 ? " " : "", SX(p->r[idx[j]].c.sched),
              SY(bench_speedup(p->r, p->n, idx[j])));
    fprintf(out, "\"/>\n");
    for (size_t j = 0; j < k; j++) {
      double s = bench_speedup(p->r, p->n, idx[j]);

      fprintf(out,
              "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\">"
              "<title>",
              SX(p->r[idx[j]].c.sched), SY(s), colour);
      xml_text(out, name);
      fprintf(out, ": %.2fx at %u worker%s</title></circle>\n", s,
              p->r[idx[j]].c.sched, p->r[idx[j]].c.sched == 1 ? "" : "s");
    }
    last = &p->r[idx[k - 1]];
    ly = y0 + 8 + 18.0 * (double)nseries;
    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"2\"/>\n",
            x1 + 16, ly - 4, x1 + 36, ly - 4, colour);
    snprintf(buf, sizeof(buf), "%s: %.2fx at %u", name,
             bench_speedup(p->r, p->n, idx[k - 1]), last->c.sched);
    text(out, x1 + 42, ly, "", buf);
    nseries++;
  }
#undef SX
#undef SY
  p->y = y1 + 44;
  free(idx);
}

int bench_plot_svg(FILE *out, const struct bench_meta *m,
                   const struct bench_result *r, size_t n)
{
  struct plot p = {.r = r, .n = n};
  char *body = NULL;
  size_t len = 0;
  int saved;

  p.out = open_memstream(&body, &len);
  if (p.out == NULL)
    return -1;
  header(&p, m);
  panel_cost(&p);
  panel_scaling(&p);
  if (fclose(p.out) != 0) {
    saved = errno;
    free(body);
    errno = saved;
    return -1;
  }

  fprintf(out,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
          "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
          "font-size=\"12\">\n"
          "<title>arbor-bench results</title>\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
          WIDTH, ceil(p.y) + MARGIN, WIDTH, ceil(p.y) + MARGIN);
  fwrite(body, 1, len, out);
  fputs("</svg>\n", out);
  free(body);
  if (fflush(out) != 0 || ferror(out))
    return -1;
  return 0;
}
