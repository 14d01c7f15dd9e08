/* bench/wl_skynet.c -- the skynet workload: a tree of size + size/div + ...
 * + 1 processes sums the numbers 0 .. size-1.
 *
 * WORKLOADS.md: "a root process is spawned with (num=0, size); a process
 * with size 1 sends num to its parent and exits; otherwise it spawns div
 * children with (num + i·size/div, size/div), receives div replies, sends
 * their sum to its parent and exits.  The sum must equal size·(size-1)/2.
 * Time: from spawning the root to receiving its sum."  Extras: sum, procs,
 * ns_per_proc = time / procs (ok is the runner's).
 *
 * The root's parent is a process of the runtime (the measurer), so its sum
 * arrives as a message like every other reply, and spawning the root is the
 * first thing inside the timed part.  A parent passes each child a pointer
 * to that child's slot of an array in the parent's own stack frame, so no
 * process costs a heap allocation: the parent returns only after all its
 * children have replied, and each child copies its slot before anything
 * else.  Every process counts itself in a per-worker counter (a relaxed
 * increment of a line that the other workers do not write, so it costs a
 * few cycles); the measurer adds the counters up after the root's sum has
 * arrived, which happens after every process's increment, and the count
 * must equal the size of the tree.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

enum { P_SIZE, P_DIV };

static const struct bench_param params[] = {
    {"size", 1000000, 10000, 1},
    {"div", 10, 10, 2},
};

/* Children whose slots live in the parent's frame; a larger div puts them
 * in one heap array per parent (never in the default profile). */
#define INLINE_DIV 16
/* arbor_rt_opts.workers' limit. */
#define MAX_WORKERS 256

enum { TAG_SUM = 1 }; /* child -> parent: int64_t */

struct per_worker {
  alignas(64) atomic_uint_fast64_t procs;
};

struct skynet_state {
  /* Written by the runner before the measurer is spawned. */
  int64_t size, div;
  /* First failed runtime call of any process; err_call is written only by
   * the process whose compare-exchange succeeded, and read by the runner
   * after every process is gone. */
  atomic_int err;
  const char *err_call;
  struct per_worker count[MAX_WORKERS];
  /* Results, written by the measurer and read by the runner after
   * arbor_wait() has seen it exit. */
  int64_t time_ns, sum;
  uint64_t procs;
};

/* What a parent hands one child: valid until the child replies. */
struct skynet_arg {
  int64_t num, size;
  arbor_pid parent;
  struct skynet_state *s;
};

static void note_err(struct skynet_state *s, const char *call, int err)
{
  int none = 0;

  if (atomic_compare_exchange_strong_explicit(
          &s->err, &none, err, memory_order_relaxed, memory_order_relaxed))
    s->err_call = call;
}

/* Receive one child's number.  On failure the sum is wrong and the error is
 * recorded; the caller goes on, so that the tree still completes. */
static int64_t recv_sum(struct skynet_state *s)
{
  arbor_msg msg;
  int64_t v = 0;
  int err = arbor_recv(&msg, -1);

  if (err != 0)
    note_err(s, "arbor_recv", err);
  else if (msg.tag != TAG_SUM || msg.len != sizeof(v))
    note_err(s, "unexpected message", ARBOR_EINVAL);
  else
    memcpy(&v, msg.data, sizeof(v));
  return v;
}

static int skynet(void *arg)
{
  /* Copied first: *arg lives in the parent's frame. */
  const struct skynet_arg me = *(const struct skynet_arg *)arg;
  struct skynet_state *s = me.s;
  struct skynet_arg inline_kids[INLINE_DIV], *kids = inline_kids;
  int64_t sum = 0, spawned = 0, div = s->div, step;
  arbor_pid self;
  int w = arbor_worker(), err;

  atomic_fetch_add_explicit(&s->count[w >= 0 && w < MAX_WORKERS ? w : 0].procs,
                            1, memory_order_relaxed);
  if (me.size == 1) {
    sum = me.num;
    goto reply;
  }

  if (div > INLINE_DIV) {
    kids = malloc((size_t)div * sizeof(*kids));
    if (kids == NULL) {
      note_err(s, "malloc", ARBOR_ENOMEM);
      goto reply;
    }
  }
  step = me.size / div;
  self = arbor_self();
  for (; spawned < div; spawned++) {
    kids[spawned] = (struct skynet_arg){
        .num = me.num + spawned * step,
        .size = step,
        .parent = self,
        .s = s,
    };
    err = arbor_spawn(NULL, NULL, skynet, &kids[spawned], NULL);
    if (err != 0) {
      note_err(s, "arbor_spawn", err);
      break;
    }
  }
  /* Only after every child has replied may kids[] go away. */
  for (int64_t i = 0; i < spawned; i++)
    sum += recv_sum(s);
  if (kids != inline_kids)
    free(kids);

reply:
  err = arbor_send(me.parent, TAG_SUM, &sum, sizeof(sum));
  if (err != 0)
    note_err(s, "arbor_send", err);
  return 0;
}

static int measurer(void *arg)
{
  struct skynet_state *s = arg;
  struct skynet_arg root = {
      .num = 0, .size = s->size, .parent = arbor_self(), .s = s};
  int64_t t0, t1, sum;
  uint64_t procs = 0;
  int err;

  t0 = bench_now_ns();
  err = arbor_spawn(NULL, NULL, skynet, &root, NULL);
  if (err != 0) {
    note_err(s, "arbor_spawn (root)", err);
    return 0;
  }
  sum = recv_sum(s);
  t1 = bench_now_ns();

  /* Every process counted itself before its reply, and every reply
   * precedes its parent's: all the increments happened before the root's
   * sum arrived. */
  for (unsigned i = 0; i < MAX_WORKERS; i++)
    procs += atomic_load_explicit(&s->count[i].procs, memory_order_relaxed);
  s->time_ns = t1 - t0;
  s->sum = sum;
  s->procs = procs;
  return 0;
}

/* size + size/div + ... + 1, for a size that is a power of div. */
static uint64_t tree_size(int64_t size, int64_t div)
{
  uint64_t n = 0;

  for (; size > 1; size /= div)
    n += (uint64_t)size;
  return n + 1;
}

static void run_skynet(const struct bench_case *c, arbor_rt *rt,
                       struct bench_run *out)
{
  /* Too large for the runner's stack frame to be comfortable (16 KiB of
   * counters), and it must be zeroed anyway. */
  struct skynet_state *s = aligned_alloc(64, sizeof(*s));
  int64_t size = c->param[P_SIZE], expected;
  arbor_pid pid = 0;
  int reason = -1, err;

  out->ok = false;
  if (s == NULL) {
    bench_fail(out, "aligned_alloc", ARBOR_ENOMEM);
    return;
  }
  memset(s, 0, sizeof(*s));
  s->size = size;
  s->div = c->param[P_DIV];
  atomic_init(&s->err, 0);
  for (unsigned i = 0; i < MAX_WORKERS; i++)
    atomic_init(&s->count[i].procs, 0);

  err = arbor_spawn(rt, &pid, measurer, s,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE});
  if (err < 0) {
    bench_fail(out, "arbor_spawn", err);
    goto free_state;
  }
  err = arbor_wait(rt, pid, BENCH_HANG_MS, &reason);
  if (err == ARBOR_ETIMEDOUT)
    bench_hung("skynet: waiting for the measuring process");
  if (err < 0)
    bench_fail(out, "arbor_wait", err);
  /* The last processes of the tree may still be leaving, and they point
   * at *s. */
  err = bench_quiesce(rt);
  if (err < 0)
    bench_fail(out, "arbor_rt_live", err);
  if (atomic_load(&s->err) != 0)
    bench_fail(out, s->err_call, atomic_load(&s->err));
  if (out->err == 0) {
    /* size·(size-1)/2, halving the even factor first. */
    expected = size % 2 == 0 ? size / 2 * (size - 1) : (size - 1) / 2 * size;
    out->time_ms = bench_ns_to_ms(s->time_ns);
    out->aux[0] = (double)s->sum;
    out->aux[1] = (double)s->procs;
    out->ok = reason == 0 && s->sum == expected &&
              s->procs == tree_size(size, c->param[P_DIV]);
  }

free_state:
  free(s);
}

static const char *validate(const int64_t *p)
{
  int64_t size = p[P_SIZE];

  /* Otherwise size/div rounds down, and the tree either misses numbers or
   * never reaches size 1. */
  while (size > 1 && size % p[P_DIV] == 0)
    size /= p[P_DIV];
  if (size != 1)
    return "size must be a power of div";
  /* The sum must fit in 64 bits. */
  if (p[P_SIZE] > ((int64_t)1 << 31))
    return "size must be at most 2^31";
  return NULL;
}

static void summarize(const struct bench_result *r, struct bench_extras *x)
{
  const struct bench_run *shown = &r->runs[r->nruns - 1];

  /* The last run's sum and count, unless a run got them wrong: then the
   * first wrong one, so that the line shows what failed the check. */
  for (unsigned i = 0; i < r->nruns; i++) {
    if (!r->runs[i].ok) {
      shown = &r->runs[i];
      break;
    }
  }
  bench_extra_add(x, "sum", shown->aux[0], 0);
  bench_extra_add(x, "procs", shown->aux[1], 0);
  bench_extra_per_op(x, "ns_per_proc", "proc", r->median_ms,
                     (double)tree_size(r->c.param[P_SIZE], r->c.param[P_DIV]));
}

static const struct bench_variant variants[] = {
    {NULL, false, run_skynet},
};

const struct bench_workload bench_wl_skynet = {
    .name = "skynet",
    .summary = "a tree of processes (div children each) sums 0..size-1",
    .params = params,
    .nparams = sizeof(params) / sizeof(params[0]),
    .variants = variants,
    .nvariants = sizeof(variants) / sizeof(variants[0]),
    .validate = validate,
    .summarize = summarize,
};
