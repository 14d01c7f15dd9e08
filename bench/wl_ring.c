/* bench/wl_ring.c -- the ring workload: a token goes n·m hops around a ring
 * of n processes.
 *
 * WORKLOADS.md: "n processes, each knowing the pid of the next (the last
 * knows the first).  Setting the ring up is not timed (report it as
 * setup_ms).  A token carrying the counter n·m is sent to member 0; a member
 * receiving counter c > 0 sends c-1 to the next member; the member receiving
 * 0 notifies the measuring process.  Time: from sending the token to the
 * notification."  Extras: setup_ms, hops (= n·m), ns_per_hop = time / hops.
 *
 * The measuring process is a process of the runtime (the measurer), so the
 * notification is a message like every hop.  It spawns the members, sends
 * each one its successor and waits until every member has acknowledged it:
 * when the clock starts, every member has run, knows its successor and is
 * waiting for a message, so the timed part is hops and nothing else.  After
 * the notification the measurer stops each member; a member answers the stop
 * with the number of tokens it received, which must add up to n·m + 1 (the
 * counters n·m down to 0), and the 0 must have reached member 0.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

enum { P_N, P_M };

static const struct bench_param params[] = {
    {"n", 10000, 1000, 1},
    {"m", 1000, 100, 1},
};

/* Message tags, all below ARBOR_TAG_SYSTEM. */
enum {
  TAG_SETUP = 1, /* measurer -> member: struct ring_setup */
  TAG_READY,     /* member -> measurer: the setup arrived (no body) */
  TAG_TOKEN,     /* member -> member (first: measurer -> 0): int64_t c */
  TAG_DONE,      /* member -> measurer: int64_t, 0 or DONE_FAILED */
  TAG_STOP,      /* measurer -> member (no body) */
  TAG_COUNT,     /* member -> measurer: int64_t tokens received */
};

/* The body of a DONE sent by a member whose runtime call failed: the token
 * is lost, and the measurer must not wait for it. */
#define DONE_FAILED ((int64_t)-1)

struct ring_setup {
  arbor_pid next;
};

struct ring_state {
  /* Written by the runner before the measurer is spawned. */
  int64_t n, m;
  arbor_pid *pid; /* n entries, filled by the measurer */
  /* Written by the measurer before it spawns the members. */
  arbor_pid measurer;
  /* First failed runtime call of any process; err_call is written only by
   * the process whose compare-exchange succeeded, and read by the runner
   * after every process is gone. */
  atomic_int err;
  const char *err_call;
  /* Results, written by the measurer and read by the runner after
   * arbor_wait() has seen it exit. */
  int64_t setup_ns, time_ns;
  bool ok;
};

static void note_err(struct ring_state *s, const char *call, int err)
{
  int none = 0;

  if (atomic_compare_exchange_strong_explicit(
          &s->err, &none, err, memory_order_relaxed, memory_order_relaxed))
    s->err_call = call;
}

/* A member's runtime call failed: record it and tell the measurer, which
 * would otherwise wait for a lost token or acknowledgement. */
static int member_fail(struct ring_state *s, const char *call, int err)
{
  const int64_t failed = DONE_FAILED;

  note_err(s, call, err);
  (void)arbor_send(s->measurer, TAG_DONE, &failed, sizeof(failed));
  return err;
}

static int member(void *arg)
{
  struct ring_state *s = arg;
  arbor_pid next = 0;
  int64_t seen = 0, c;
  arbor_msg msg;
  int err;

  for (;;) {
    err = arbor_recv(&msg, -1);
    if (err != 0)
      return member_fail(s, "arbor_recv (member)", err);
    switch (msg.tag) {
    case TAG_TOKEN:
      /* The timed path: one receive, one send. */
      seen++;
      if (msg.len != sizeof(c))
        return member_fail(s, "token of the wrong size", ARBOR_EINVAL);
      memcpy(&c, msg.data, sizeof(c));
      if (c > 0) {
        c--;
        err = arbor_send(next, TAG_TOKEN, &c, sizeof(c));
      } else {
        err = arbor_send(s->measurer, TAG_DONE, &c, sizeof(c));
      }
      if (err != 0)
        return member_fail(s, "arbor_send (member)", err);
      break;
    case TAG_SETUP: {
      struct ring_setup setup;

      if (msg.len != sizeof(setup))
        return member_fail(s, "setup of the wrong size", ARBOR_EINVAL);
      memcpy(&setup, msg.data, sizeof(setup));
      next = setup.next;
      err = arbor_send(s->measurer, TAG_READY, NULL, 0);
      if (err != 0)
        return member_fail(s, "arbor_send (member)", err);
      break;
    }
    case TAG_STOP:
      err = arbor_send(s->measurer, TAG_COUNT, &seen, sizeof(seen));
      if (err != 0)
        return member_fail(s, "arbor_send (member)", err);
      return 0;
    default:
      return member_fail(s, "unexpected message (member)", ARBOR_EINVAL);
    }
  }
}

/* Receive one message with tag `want`, or a member's DONE_FAILED (then
 * returns 1).  Anything else is a failure too. */
static int measurer_recv(struct ring_state *s, uint32_t want, arbor_msg *msg)
{
  int64_t v;
  int err = arbor_recv(msg, -1);

  if (err != 0) {
    note_err(s, "arbor_recv (measurer)", err);
    return 1;
  }
  if (msg->tag == want)
    return 0;
  if (msg->tag == TAG_DONE && msg->len == sizeof(v)) {
    memcpy(&v, msg->data, sizeof(v));
    if (v == DONE_FAILED)
      return 1; /* the member has recorded its error */
  }
  note_err(s, "unexpected message (measurer)", ARBOR_EINVAL);
  return 1;
}

static int measurer(void *arg)
{
  struct ring_state *s = arg;
  const int64_t n = s->n, hops = s->n * s->m;
  int64_t spawned = 0, stopped = 0, total = 0, t0, t1, v;
  arbor_pid done_from = 0;
  arbor_msg msg;
  int err;

  s->measurer = arbor_self();

  /* Set-up: spawn, tell each member its successor, wait for all of them. */
  t0 = bench_now_ns();
  for (; spawned < n; spawned++) {
    err = arbor_spawn(NULL, &s->pid[spawned], member, s, NULL);
    if (err != 0) {
      note_err(s, "arbor_spawn", err);
      goto stop;
    }
  }
  for (int64_t i = 0; i < n; i++) {
    struct ring_setup setup = {.next = s->pid[(i + 1) % n]};

    err = arbor_send(s->pid[i], TAG_SETUP, &setup, sizeof(setup));
    if (err != 0) {
      note_err(s, "arbor_send (setup)", err);
      goto stop;
    }
  }
  for (int64_t i = 0; i < n; i++) {
    if (measurer_recv(s, TAG_READY, &msg) != 0)
      goto stop;
  }
  t1 = bench_now_ns();
  s->setup_ns = t1 - t0;

  /* The timed part. */
  t0 = bench_now_ns();
  err = arbor_send(s->pid[0], TAG_TOKEN, &hops, sizeof(hops));
  if (err != 0) {
    note_err(s, "arbor_send (token)", err);
    goto stop;
  }
  if (measurer_recv(s, TAG_DONE, &msg) != 0)
    goto stop;
  t1 = bench_now_ns();
  s->time_ns = t1 - t0;
  done_from = msg.from;
  if (msg.len != sizeof(v)) {
    note_err(s, "notification of the wrong size", ARBOR_EINVAL);
    goto stop;
  }
  memcpy(&v, msg.data, sizeof(v));
  if (v != 0)
    goto stop; /* DONE_FAILED: the member has recorded its error */

stop:
  /* Not timed.  Every member that exists is stopped, whatever happened
   * above; a member that has already failed and exited just drops the
   * stop, and its count is not waited for. */
  for (int64_t i = 0; i < spawned; i++) {
    err = arbor_send(s->pid[i], TAG_STOP, NULL, 0);
    if (err != 0)
      note_err(s, "arbor_send (stop)", err);
    else
      stopped++;
  }
  if (atomic_load_explicit(&s->err, memory_order_relaxed) != 0)
    return 0;
  for (int64_t i = 0; i < stopped; i++) {
    if (measurer_recv(s, TAG_COUNT, &msg) != 0)
      return 0;
    if (msg.len != sizeof(v)) {
      note_err(s, "count of the wrong size", ARBOR_EINVAL);
      return 0;
    }
    memcpy(&v, msg.data, sizeof(v));
    total += v;
  }
  /* Counter values n·m, n·m - 1, ..., 0 were each received once, and 0
   * after exactly n·m hops from member 0, which is member 0 again. */
  s->ok = stopped == n && total == hops + 1 && done_from == s->pid[0];
  return 0;
}

static void run_ring(const struct bench_case *c, arbor_rt *rt,
                     struct bench_run *out)
{
  struct ring_state s = {.n = c->param[P_N], .m = c->param[P_M]};
  arbor_pid pid = 0;
  int reason = -1, err;

  atomic_init(&s.err, 0);
  out->ok = false;
  s.pid = calloc((size_t)s.n, sizeof(*s.pid));
  if (s.pid == NULL) {
    bench_fail(out, "calloc", ARBOR_ENOMEM);
    return;
  }
  err = arbor_spawn(rt, &pid, measurer, &s,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err < 0) {
    bench_fail(out, "arbor_spawn", err);
    goto free_pids;
  }
  err = arbor_wait(rt, pid, BENCH_HANG_MS, &reason);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("ring: waiting for the measuring process");
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  /* The members point at s. */
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (atomic_load(&s.err) != 0)
    bench_fail(out, s.err_call, atomic_load(&s.err));
  if (out->err == 0) {
    out->time_ms = bench_ns_to_ms(s.time_ns);
    out->aux[0] = bench_ns_to_ms(s.setup_ns);
    out->ok = reason == 0 && s.ok;
  }

free_pids:
  free(s.pid);
}

static const char *validate(const int64_t *p)
{
  /* The token's counter. */
  if (p[P_M] > INT64_MAX / p[P_N])
    return "n*m must fit in 64 bits";
  return NULL;
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  double hops = (double)r->c.param[P_N] * (double)r->c.param[P_M];
  unsigned first = r->nruns - r->nwarm;
  double *setup = malloc(r->nwarm * sizeof(*setup));

  /* setup_ms: the median over the same warm runs as time_ms (summarize is
   * only called when there is at least one). */
  if (setup != NULL) {
    for (unsigned i = 0; i < r->nwarm; i++)
      setup[i] = r->runs[first + i].aux[0];
    bench_extra_add(x, "setup_ms", bench_median(setup, r->nwarm), 3);
    free(setup);
  }
  bench_extra_add(x, "hops", hops, 0);
  bench_extra_per_op(x, "ns_per_hop", "hop", r->median_ms, hops);
}

static const struct bench_variant variants[] = {
    {NULL, false, run_ring},
};

const struct bench_workload bench_wl_ring = {
    .name = "ring",
    .summary = "a token goes n*m hops around a ring of n processes",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .validate = validate,
    .summarize = summarize,
};
