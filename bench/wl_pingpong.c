/* bench/wl_pingpong.c -- the pingpong workload: n round trips of a message
 * between two processes.
 *
 * WORKLOADS.md: "two processes; A sends i to B, B sends i back, A waits for
 * it before sending i+1; n round trips; both are processes of the runtime
 * (not a foreign thread)."  Extras: ns_per_rt = time / n.
 *
 * A is the measuring process.  It spawns B and waits for B's hello before
 * it starts the clock, so that B's spawn and first run stay outside the
 * timed part, which is exactly the n round trips.  Every reply must come
 * from B and carry the i that was sent; at the end B reports how many pings
 * it answered, which must be n.
 */
#include <stdatomic.h>
#include <string.h>

#include "bench/bench.h"

enum { P_N };

static const struct bench_param params[] = {
    {"n", 1000000, 20000, 1},
};

/* Message tags, all below ARBOR_TAG_SYSTEM. */
enum {
  TAG_HELLO = 1, /* B -> A: B is running (no body) */
  TAG_PING,      /* A -> B: int64_t i */
  TAG_PONG,      /* B -> A: the body of the ping, unchanged */
  TAG_STOP,      /* A -> B (no body) */
  TAG_COUNT,     /* B -> A: int64_t pings answered */
};

struct pingpong_state {
  /* Written by the runner before A is spawned. */
  int64_t n;
  /* Written by A before it spawns B. */
  arbor_pid a;
  /* First failed runtime call of either process; err_call is written only
   * by the process whose compare-exchange succeeded, and read by the runner
   * after both are gone. */
  atomic_int err;
  const char *err_call;
  /* Results, written by A and read by the runner after arbor_wait() has
   * seen A exit. */
  int64_t time_ns;
  bool ok;
};

static void note_err(struct pingpong_state *s, const char *call, int err)
{
  int none = 0;

  if (atomic_compare_exchange_strong_explicit(
          &s->err, &none, err, memory_order_relaxed, memory_order_relaxed))
    s->err_call = call;
}

/* B answers each ping with its own body.  If one of its calls fails, it
 * tells A with a COUNT of -1, so that A does not wait for a lost pong. */
static int process_b(void *arg)
{
  struct pingpong_state *s = arg;
  const int64_t failed = -1;
  int64_t answered = 0;
  arbor_msg msg;
  int err;

  err = arbor_send(s->a, TAG_HELLO, NULL, 0);
  if (err != 0) {
    note_err(s, "arbor_send (B)", err);
    goto fail;
  }
  for (;;) {
    err = arbor_recv(&msg, -1);
    if (err != 0) {
      note_err(s, "arbor_recv (B)", err);
      goto fail;
    }
    if (msg.tag == TAG_STOP)
      break;
    if (msg.tag != TAG_PING) {
      note_err(s, "unexpected message (B)", ARBOR_EINVAL);
      goto fail;
    }
    /* The timed path: one receive, one send. */
    answered++;
    err = arbor_send(msg.from, TAG_PONG, msg.data, msg.len);
    if (err != 0) {
      note_err(s, "arbor_send (B)", err);
      goto fail;
    }
  }
  err = arbor_send(s->a, TAG_COUNT, &answered, sizeof(answered));
  if (err != 0) {
    note_err(s, "arbor_send (B)", err);
    goto fail;
  }
  return 0;

fail:
  (void)arbor_send(s->a, TAG_COUNT, &failed, sizeof(failed));
  return err;
}

/* What recv_from_b() saw. */
enum { GOT_IT, B_ALIVE, B_GONE };

/* A receives a message and checks its tag and sender.  B_GONE: B's failure
 * report (a COUNT) arrived instead, and B has exited.  B_ALIVE: anything
 * else went wrong, and B still waits for a stop. */
static int recv_from_b(struct pingpong_state *s, arbor_pid b, uint32_t want,
                       arbor_msg *msg)
{
  int err = arbor_recv(msg, -1);

  if (err != 0) {
    note_err(s, "arbor_recv (A)", err);
    return B_ALIVE;
  }
  if (msg->tag == want && msg->from == b)
    return GOT_IT;
  if (msg->tag == TAG_COUNT && msg->from == b)
    return B_GONE;
  note_err(s, "unexpected message (A)", ARBOR_EINVAL);
  return B_ALIVE;
}

static int process_a(void *arg)
{
  struct pingpong_state *s = arg;
  int64_t bad = 0, answered = -1, t0, t1, v;
  arbor_pid b = 0;
  arbor_msg msg;
  int err, got;

  s->a = arbor_self();
  err = arbor_spawn(NULL, &b, process_b, s, NULL);
  if (err != 0) {
    note_err(s, "arbor_spawn", err);
    return 0;
  }
  got = recv_from_b(s, b, TAG_HELLO, &msg);
  if (got != GOT_IT)
    goto stop;

  t0 = bench_now_ns();
  for (int64_t i = 0; i < s->n; i++) {
    err = arbor_send(b, TAG_PING, &i, sizeof(i));
    if (err != 0) {
      note_err(s, "arbor_send (A)", err);
      goto stop;
    }
    got = recv_from_b(s, b, TAG_PONG, &msg);
    if (got != GOT_IT)
      goto stop;
    if (msg.len != sizeof(v)) {
      bad++;
      continue;
    }
    memcpy(&v, msg.data, sizeof(v));
    if (v != i)
      bad++;
  }
  t1 = bench_now_ns();
  s->time_ns = t1 - t0;

stop:
  /* Not timed.  B ends on the stop and reports its count. */
  if (got == B_GONE)
    return 0;
  err = arbor_send(b, TAG_STOP, NULL, 0);
  if (err != 0) {
    note_err(s, "arbor_send (A)", err);
    return 0;
  }
  if (recv_from_b(s, b, TAG_COUNT, &msg) != GOT_IT)
    return 0;
  if (msg.len == sizeof(answered))
    memcpy(&answered, msg.data, sizeof(answered));
  s->ok = got == GOT_IT && bad == 0 && answered == s->n;
  return 0;
}

static void run_pingpong(const struct bench_case *c, arbor_rt *rt,
                         struct bench_run *out)
{
  struct pingpong_state s = {.n = c->param[P_N]};
  arbor_pid pid = 0;
  int reason = -1, err;

  atomic_init(&s.err, 0);
  out->ok = false;
  err = arbor_spawn(rt, &pid, process_a, &s,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err < 0) {
    bench_fail(out, "arbor_spawn", err);
    return;
  }
  err = arbor_wait(rt, pid, BENCH_HANG_MS, &reason);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("pingpong: waiting for process A");
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  /* B points at s. */
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (atomic_load(&s.err) != 0)
    bench_fail(out, s.err_call, atomic_load(&s.err));
  if (out->err == 0) {
    out->time_ms = bench_ns_to_ms(s.time_ns);
    out->ok = reason == 0 && s.ok;
  }
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  bench_extra_per_op(x, "ns_per_rt", "rt", r->median_ms,
                     (double)r->c.param[P_N]);
}

static const struct bench_variant variants[] = {
    {NULL, false, run_pingpong},
};

const struct bench_workload bench_wl_pingpong = {
    .name = "pingpong",
    .summary = "two processes send a number back and forth n times",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .summarize = summarize,
};
