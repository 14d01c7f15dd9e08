/* fuzz_api.c -- a libFuzzer target: each input is a program of API calls.
 *
 * Every input gets two fresh runtimes: `rt` (1 or 2 workers, by the first
 * byte) and `rt2` (1 worker, with one long-lived process), so pids of
 * another live runtime are always at hand and an input never depends on the
 * ones before it.  The rest of the input is a sequence of operations, each
 * an opcode byte followed by its arguments; a missing byte reads as 0, so
 * every byte string is a valid program.
 *
 * Calls are made from two places.  The fuzzer's own thread runs the program
 * until an ENTER opcode; it then spawns a joinable "driver" process, which
 * goes on with the program from the same cursor (so calls that need a
 * process are made from one) until a LEAVE opcode, the end, or its own end
 * (killed, exited, linked to a crash), and the thread waits for it and
 * carries on.  Only one of them runs the program at a time (the spawn and
 * the wait order their accesses to the shared state below).
 *
 * One operation (DOOM, with two workers) has a killer on the other worker
 * send the driver an exit signal while the driver spins outside the
 * runtime, so the operation after it is the call the driver ends in: every
 * call is fuzzed as the one a process is cancelled in, too.
 *
 * Arguments that name processes come from a table holding live, exited,
 * zombie and bogus pids (0, all ones, another runtime's, a neighbour of a
 * real one, eight random bytes); timer and monitor references likewise.
 * Each call's return value is checked against the codes its documentation
 * in arbor.h lists: anything else aborts, as a crash does.  At the end of
 * an input both runtimes are destroyed, which ends every process, and the
 * target checks that every buffer handed over with arbor_send_owned() was
 * freed exactly once and that every defer ran; LeakSanitizer checks the
 * rest.
 *
 * With one worker and fixed seeds, an input replays the same way (timers
 * aside: they follow the clock, and only a few short ones exist); set
 * FUZZ_API_TRACE=1 to see each call and what it returned.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DARBOR_SANITIZE=address,undefined
 *        -DARBOR_FUZZ=ON, target fuzz_api; run on tests/fuzz_corpus, whose
 * seeds are small programs: messages (sends, receives, a linked and
 * monitored child killed under a trapping driver), supervisor (a tree with
 * a store, managed from the thread and from a driver), timers_names,
 * shutdown_destroy (calls after each), links, bad_specs.
 */
#include <arbor.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the program being run ------------------------------------------------ */

static const uint8_t *prog;
static size_t prog_len, pc;

static uint8_t u8(void)
{
  return pc < prog_len ? prog[pc++] : 0;
}

static uint64_t u64(void)
{
  uint64_t v = 0;

  for (int i = 0; i < 8; i++)
    v = v << 8 | u8();
  return v;
}

static bool at_end(void)
{
  return pc >= prog_len;
}

/* ---- checking return codes ----------------------------------------------- */

static const char *current_op = "?";
static bool trace; /* FUZZ_API_TRACE set: print each call and its result */

static _Noreturn void fail(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, "fuzz_api: op %s at byte %zu: ", current_op, pc);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

/* rc must be one of the listed codes (the list ends with 1, which is not
 * an error code; nonnegative results are checked by the caller). */
#define END 1
static void allowed(const char *what, int64_t rc, ...)
{
  va_list ap;
  int code;

  if (trace)
    fprintf(stderr, "  %s -> %lld %s\n", what, (long long)rc,
            rc < 0 ? arbor_err_name((int)rc) : "");
  if (rc >= 0)
    return;
  va_start(ap, rc);
  while ((code = va_arg(ap, int)) != END) {
    if (rc == code) {
      va_end(ap);
      return;
    }
  }
  va_end(ap);
  fail("%s returned %lld (%s), which its documentation does not list",
       what, (long long)rc, arbor_err_name((int)rc));
}

static void nonneg_or(const char *what, int64_t rc, int64_t max)
{
  if (rc > max)
    fail("%s returned %lld, more than %lld", what, (long long)rc,
         (long long)max);
}

/* ---- state shared by the thread and the driver --------------------------- */

static arbor_rt *rt, *rt2; /* rt is NULL once the program destroys it */
static arbor_pid other_pid; /* a live process of rt2 */

#define NPIDS 16
static arbor_pid pids[NPIDS];
#define NREFS 8
static arbor_timer timers[NREFS];
static uint64_t mons[NREFS];

/* Buffers handed to arbor_send_owned() and defers registered and run. */
static atomic_long owned_made, owned_freed;
static atomic_long defers_made, defers_run;
static atomic_long sink_events;
static FILE *devnull;

/* A payload big enough for every length the fuzzer picks. */
static uint8_t payload[(size_t)1 << 17];

enum { IN_THREAD = 0, IN_PROC = 1 };

static void put_pid(arbor_pid pid)
{
  pids[u8() % NPIDS] = pid;
}

/* A pid to act on. */
static arbor_pid pick_pid(void)
{
  uint8_t b = u8();
  arbor_pid p;

  if (b < 0xe0)
    return pids[b % NPIDS];
  switch (b & 0x7) {
  case 0:
    return 0;
  case 1:
    return arbor_self(); /* 0 in the thread */
  case 2:
    return other_pid;
  case 3:
    return u64();
  case 4:
    return UINT64_MAX;
  case 5: /* a neighbour: another index, or another generation */
    p = pids[u8() % NPIDS];
    return (u8() & 1) ? p + 1 : p ^ ((uint64_t)1 << 24);
  case 6:
    return pids[0] & 0xff00000000ffffffull; /* generation 0 */
  default:
    p = (uint64_t)u8() << 56; /* a runtime's tag, or none */
    return p | (u64() >> 8);
  }
}

static arbor_rt *pick_rt(void)
{
  switch (u8() & 3) {
  case 0:
  case 1:
    return rt; /* maybe NULL: destroyed */
  case 2:
    return rt2;
  default:
    return NULL; /* the caller's, inside a process */
  }
}

static const char *pick_name(void)
{
  static char long255[256], long256[257];

  if (long255[0] == '\0') {
    memset(long255, 'n', 255);
    memset(long256, 'n', 256);
  }
  switch (u8() & 7) {
  case 0:
    return "a";
  case 1:
    return "b";
  case 2:
    return "svc";
  case 3:
    return "";
  case 4:
    return NULL;
  case 5:
    return long255;
  case 6:
    return long256;
  default:
    return "..--..";
  }
}

static const char *pick_key(void)
{
  static char long63[64], long64[65];

  if (long63[0] == '\0') {
    memset(long63, 'k', 63);
    memset(long64, 'k', 64);
  }
  switch (u8() & 7) {
  case 0:
  case 1:
    return "k";
  case 2:
    return "k2";
  case 3:
    return "";
  case 4:
    return NULL;
  case 5:
    return long63;
  case 6:
    return long64;
  default:
    return "k3";
  }
}

static const char *pick_id(void)
{
  static char long63[64], long64[65];

  if (long63[0] == '\0') {
    memset(long63, 'i', 63);
    memset(long64, 'i', 64);
  }
  switch (u8() & 7) {
  case 0:
  case 1:
    return "a";
  case 2:
    return "b";
  case 3:
    return "c";
  case 4:
    return NULL;
  case 5:
    return "";
  case 6:
    return long63;
  default:
    return long64;
  }
}

static int64_t pick_timeout(void)
{
  switch (u8() & 7) {
  case 0:
  case 1:
    return 0;
  case 2:
    return 1;
  case 3:
    return 2;
  case 4:
    return -1; /* only where something is sure to come */
  case 5:
    return INT64_MIN;
  case 6:
    return INT64_MAX;
  default:
    return 3;
  }
}

static int pick_reason(void)
{
  switch (u8() & 7) {
  case 0:
    return ARBOR_NORMAL;
  case 1:
    return ARBOR_REASON_KILL;
  case 2:
    return ARBOR_REASON_SHUTDOWN;
  case 3:
    return ARBOR_REASON_KILLED;
  case 4:
    return 1 + (u8() & 3);
  case 5:
    return -1 - (int)u8();
  case 6:
    return (int)(int32_t)(uint32_t)u64();
  default:
    return 7;
  }
}

static size_t pick_len(void)
{
  switch (u8() & 7) {
  case 0:
    return 0;
  case 1:
    return 1 + (u8() & 15);
  case 2:
    return 64;
  case 3:
    return 65;
  case 4:
    return 100000;
  case 5:
    return ARBOR_MSG_MAX + 1;
  case 6:
    return SIZE_MAX;
  default:
    return u8();
  }
}

static uint32_t pick_tag(void)
{
  switch (u8() & 3) {
  case 0:
    return 1; /* "stop" for the receiving bodies below */
  case 1:
    return ARBOR_TAG_SYSTEM + (u8() & 0xff);
  case 2:
    return ARBOR_TAG_EXIT;
  default:
    return 2 + (u8() & 7);
  }
}

/* ---- process bodies -------------------------------------------------------- */

/* A body's behaviour: low 3 bits pick it, the rest is its reason. */
enum {
  B_RETURN = 0,   /* return the reason at once */
  B_RECV = 1,     /* receive until tag 1 (return its first byte) or an EXIT */
  B_TRAP = 2,     /* as B_RECV, trapping exits */
  B_SLEEP = 3,    /* sleep 1 ms, then return */
  B_NOACK = 4,    /* supervised: exit without acknowledging */
  B_FAILACK = 5,  /* supervised: acknowledge a failure, return it */
  B_CRASH = 6,    /* acknowledge, then return the reason (a crash if != 0) */
  B_STORE = 7,    /* acknowledge, use the nearest store, then as B_RECV */
};

static int recv_loop(void)
{
  arbor_msg m;

  for (;;) {
    /* -1: only an exit signal, a message or shutdown ends the wait. */
    if (arbor_recv(&m, -1) != 0)
      return 99;
    if (m.tag == ARBOR_TAG_EXIT)
      return m.reason;
    if (m.tag == 1)
      return m.len > 0 ? *(const uint8_t *)m.data : 0;
  }
}

static int body(void *arg)
{
  uintptr_t a = (uintptr_t)arg;
  int reason = (int)(a >> 3);
  int64_t rc;
  char buf[8];

  switch (a & 7) {
  case B_RETURN:
    return reason;
  case B_RECV:
    (void)arbor_init_ack(0);
    return recv_loop();
  case B_TRAP:
    (void)arbor_trap_exit(1);
    (void)arbor_init_ack(0);
    return recv_loop();
  case B_SLEEP:
    (void)arbor_init_ack(0);
    (void)arbor_sleep(1);
    return reason;
  case B_NOACK:
    return reason != 0 ? reason : 3;
  case B_FAILACK:
    (void)arbor_init_ack(reason != 0 ? reason : 4);
    return reason != 0 ? reason : 4;
  case B_CRASH:
    (void)arbor_init_ack(0);
    (void)arbor_yield();
    return reason;
  default:
    (void)arbor_init_ack(0);
    rc = arbor_store_set(0, "k", "v", 1);
    allowed("arbor_store_set", rc, ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_ESRCH,
            END);
    rc = arbor_store_get(0, "k", buf, sizeof(buf));
    allowed("arbor_store_get", rc, ARBOR_ENOENT, ARBOR_EINVAL, ARBOR_ESRCH,
            END);
    return recv_loop();
  }
}

static void *pick_body_arg(void)
{
  uint8_t b = u8();

  return (void *)(uintptr_t)((b & 7) | (uintptr_t)((b >> 3) & 3) << 3);
}

/* ---- supervisor specs -------------------------------------------------------- */

/* Specs live in a static arena, rebuilt for each call (they are copied). */
#define MAX_SPEC_CHILDREN 4
#define MAX_SPECS 4
static arbor_sup_spec sup_specs[MAX_SPECS];
static arbor_child_spec child_specs[MAX_SPECS][MAX_SPEC_CHILDREN];
static int nspecs;

static arbor_sup_spec *build_sup(int depth);

static void build_child(arbor_child_spec *c, int depth)
{
  uint8_t b = u8(), t = u8();

  memset(c, 0, sizeof(*c));
  c->id = pick_id();
  c->restart = (b & 3) == 3 ? ((u8() & 1) ? 3 : -1) : (b & 3);
  switch ((b >> 2) & 7) {
  case 0:
    c->shutdown_ms = ARBOR_SHUTDOWN_DEFAULT;
    break;
  case 1:
    c->shutdown_ms = ARBOR_SHUTDOWN_BRUTAL;
    break;
  case 2:
    c->shutdown_ms = ARBOR_SHUTDOWN_INFINITY;
    break;
  case 3:
    c->shutdown_ms = -3;
    break;
  case 4:
    c->shutdown_ms = 1;
    break;
  default:
    c->shutdown_ms = 20;
    break;
  }
  c->significant = (b >> 5) & 1;
  switch ((b >> 6) & 3) {
  case 0:
  case 1:
    c->stack_size = 0;
    break;
  case 2:
    c->stack_size = 16 * 1024;
    break;
  default:
    c->stack_size = (u8() & 1) ? 100 : ((size_t)2 << 30);
    break;
  }
  switch (t & 7) {
  case 0: /* a nested supervisor, or a cycle */
    c->type = ARBOR_SUPERVISOR;
    c->sup = (t & 8) && nspecs > 0 ? &sup_specs[0] : build_sup(depth + 1);
    break;
  case 1: /* bad: a supervisor with a body */
    c->type = ARBOR_SUPERVISOR;
    c->start = body;
    c->sup = (t & 8) ? build_sup(depth + 1) : NULL;
    break;
  case 2: /* bad: a worker with a nested spec, or no body */
    c->type = ARBOR_WORKER;
    c->start = (t & 8) ? body : NULL;
    c->sup = (t & 8) ? build_sup(depth + 1) : NULL;
    break;
  case 3: /* bad type */
    c->type = (t & 8) ? 2 : -1;
    c->start = body;
    break;
  default:
    c->type = ARBOR_WORKER;
    c->start = body;
    c->arg = pick_body_arg();
    break;
  }
}

static arbor_sup_spec *build_sup(int depth)
{
  arbor_sup_spec *s;
  uint8_t b, n;
  int me;

  if (nspecs >= MAX_SPECS || depth > 3)
    return NULL; /* a NULL nested spec: EBADSPEC */
  me = nspecs++;
  s = &sup_specs[me];
  memset(s, 0, sizeof(*s));
  b = u8();
  n = u8();
  s->name = (b & 1) ? pick_name() : NULL;
  s->strategy = (b >> 1) & 3;           /* 3 is invalid */
  s->intensity = ((b >> 3) & 3) - 1;    /* -1 is invalid */
  s->period_ms = ((b >> 5) & 1) ? 50 : ((b >> 6) & 1) ? -1 : 0;
  s->auto_shutdown = (n >> 4) & 3;      /* 3 is invalid */
  s->store = (n >> 6) & 1;
  s->nchildren = n & 7;
  if (s->nchildren > MAX_SPEC_CHILDREN) {
    /* NULL children with nchildren > 0, or just fewer. */
    s->nchildren = (n & 8) ? 2 : 0;
    s->children = NULL;
    return s;
  }
  for (size_t i = 0; i < s->nchildren; i++)
    build_child(&child_specs[me][i], depth);
  s->children = s->nchildren > 0 ? child_specs[me] : NULL;
  return s;
}

/* ---- sinks and callbacks ------------------------------------------------------ */

static void quiet_sink(const arbor_event *ev, void *ud)
{
  (void)ev;
  (void)ud;
  atomic_fetch_add(&sink_events, 1);
}

/* A sink that calls back into its supervisor: every such call must fail
 * with ARBOR_EDEADLK (the sink runs inside the supervisor), never hang. */
static void nosy_sink(const arbor_event *ev, void *ud)
{
  arbor_child_counts k;
  int rc;

  (void)ud;
  atomic_fetch_add(&sink_events, 1);
  rc = arbor_sup_count_children(ev->sup, &k);
  if (rc != ARBOR_EDEADLK)
    fail("arbor_sup_count_children from a sink returned %d", rc);
}

/* The buffer of the arbor_send_owned() call in progress, and whether it
 * was freed during the call.  (Other buffers may be freed meanwhile, by the
 * other worker, so a count would not do.) */
static void *_Atomic owned_watch;
static atomic_int owned_watch_freed;

static void owned_free(void *p)
{
  if (p != NULL && p == atomic_load(&owned_watch))
    atomic_store(&owned_watch_freed, 1);
  atomic_fetch_add(&owned_freed, 1);
  free(p);
}

static void count_defer(void *arg)
{
  (void)arg;
  atomic_fetch_add(&defers_run, 1);
}

static int match_any_odd(const arbor_msg *m, void *arg)
{
  (void)arg;
  return (m->tag & 1) != 0;
}

static int update_fn(void *val, size_t *len, int exists, void *arg)
{
  uint8_t how = (uint8_t)(uintptr_t)arg;
  char buf[4];

  (void)exists;
  switch (how & 7) {
  case 0:
    return 0;
  case 1:
    return -1;
  case 2:
    return 2; /* a bug in the callback: ARBOR_EINVAL */
  case 3:
    *len = SIZE_MAX; /* past the buffer: ARBOR_EINVAL */
    return 1;
  case 4: /* store calls from a callback fail, except size */
    if (arbor_store_get(0, "k", buf, sizeof(buf)) != ARBOR_EINVAL ||
        arbor_store_set(0, "k", "x", 1) != ARBOR_EINVAL)
      fail("a store call inside an update callback did not fail");
    (void)arbor_store_size(0);
    return 0;
  default:
    if (*len > 0)
      ((char *)val)[0] ^= 1;
    return 1;
  }
}

/* ---- the operations ------------------------------------------------------------- */

enum {
  OP_ENTER, OP_LEAVE, OP_SPAWN, OP_SEND, OP_SEND_OWNED, OP_SEND_NAME,
  OP_RECV, OP_SLEEP, OP_YIELD, OP_EXIT, OP_DEFER, OP_NAME, OP_ALIVE,
  OP_WAIT, OP_REGISTER, OP_UNREGISTER, OP_WHEREIS, OP_LINK, OP_UNLINK,
  OP_MONITOR, OP_DEMONITOR, OP_TRAP, OP_KILL, OP_SEND_AFTER, OP_CANCEL,
  OP_SUP_START, OP_SUP_STOP, OP_START_CHILD, OP_CHILD_ID_OP, OP_WHICH,
  OP_COUNT, OP_STORE, OP_SINK, OP_DUMP, OP_STATS, OP_SHUTDOWN, OP_DESTROY,
  OP_INIT_ACK, OP_SELF, OP_STRINGS, OP_DOOM,
  NOPS
};

static const char *const op_names[NOPS] = {
    "enter", "leave", "spawn", "send", "send_owned", "send_name", "recv",
    "sleep", "yield", "exit", "defer", "name", "alive", "wait", "register",
    "unregister", "whereis", "link", "unlink", "monitor", "demonitor", "trap",
    "kill", "send_after", "cancel", "sup_start", "sup_stop", "start_child",
    "child_id_op", "which", "count", "store", "sink", "dump", "stats",
    "shutdown", "destroy", "init_ack", "self", "strings", "doom",
};

static void op_spawn(int where)
{
  arbor_spawn_opts o = {0};
  uint64_t mref = 0;
  uint8_t f = u8();
  arbor_pid pid = 0;
  arbor_rt *r = pick_rt();
  void *arg = pick_body_arg();
  int rc;

  o.flags = f & 7;
  if (f & 0x80)
    o.flags |= 1u << (8 + (u8() & 15)); /* an unknown flag */
  o.monitor_ref = (f & 8) ? NULL : &mref;
  o.name = (f & 0x10) ? pick_name() : NULL;
  o.stack_size = (f & 0x20) ? ((f & 0x40) ? 100 : 32 * 1024) : 0;
  rc = arbor_spawn(r, &pid, (u8() & 15) == 0 ? NULL : body, arg, &o);
  allowed("arbor_spawn", rc, ARBOR_EINVAL, ARBOR_ENAMETOOLONG, ARBOR_ENOMEM,
          ARBOR_ESHUTDOWN, ARBOR_ENOTPROC, END);
  if (rc == 0) {
    put_pid(pid);
    if ((o.flags & ARBOR_SPAWN_MONITOR) && mref != 0)
      mons[u8() % NREFS] = mref;
  } else if (pid != 0 || mref != 0) {
    fail("a failed arbor_spawn wrote its out-parameters");
  }
  (void)where;
}

static void op_send(void)
{
  arbor_pid to = pick_pid();
  uint32_t tag = pick_tag();
  size_t len = pick_len();
  bool null = (u8() & 3) == 0;
  int rc;

  rc = arbor_send(to, tag, null ? NULL : payload,
                  len <= sizeof(payload) || null ? len : ARBOR_MSG_MAX + 1);
  allowed("arbor_send", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM, END);
}

static void op_send_owned(void)
{
  arbor_pid to = pick_pid();
  uint32_t tag = pick_tag();
  uint8_t b = u8();
  size_t len = (b & 1) ? 0 : 1 + (b >> 4);
  void *buf = (b & 2) ? NULL : malloc(len > 0 ? len : 1);
  int rc;

  if (buf != NULL) {
    memset(buf, 1, len > 0 ? len : 1);
    atomic_fetch_add(&owned_made, 1);
  }
  atomic_store(&owned_watch_freed, 0);
  atomic_store(&owned_watch, buf);
  if (b & 4)
    len = ARBOR_MSG_MAX + 1;
  rc = arbor_send_owned(to, tag, buf, buf == NULL && (b & 8) ? 3 : len,
                        (b & 0x20) ? NULL : owned_free);
  allowed("arbor_send_owned", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM,
          END);
  atomic_store(&owned_watch, NULL);
  if (rc < 0 && buf != NULL) {
    /* On failure the caller still owns it, and it was not freed. */
    if (atomic_load(&owned_watch_freed))
      fail("a failed arbor_send_owned freed the buffer");
    owned_free(buf);
  } else if (rc == 0 && buf != NULL && (b & 0x20)) {
    fail("arbor_send_owned took a buffer without a free function");
  }
}

static void op_recv(int where)
{
  arbor_msg m, *mp = (u8() & 7) == 0 ? NULL : &m;
  uint8_t kind = u8();
  int64_t t = pick_timeout();
  int rc;

  /* Nothing is sure to come: never wait forever. */
  if (t < 0 || t > 3)
    t = where == IN_PROC ? 2 : t;
  memset(&m, 0xa5, sizeof(m));
  switch (kind % 3) {
  case 0:
    rc = arbor_recv(mp, t);
    break;
  case 1:
    rc = arbor_recv_tag(mp, pick_tag(), t);
    break;
  default:
    rc = arbor_recv_match(mp, (kind & 8) ? NULL : match_any_odd, NULL, t);
    break;
  }
  allowed("arbor_recv", rc, ARBOR_ETIMEDOUT, ARBOR_EINVAL, ARBOR_ENOTPROC,
          ARBOR_ENOMEM, END);
  if (rc < 0 && mp != NULL) {
    arbor_msg z;

    memset(&z, 0xa5, sizeof(z));
    if (memcmp(&z, &m, sizeof(m)) != 0)
      fail("a failed receive wrote its message");
  }
  if (rc == 0 && (where != IN_PROC || (m.len > 0 && m.data == NULL)))
    fail("a receive succeeded outside a process or with no body");
}

static void op_wait(int where)
{
  int reason = 12345;
  arbor_rt *r = pick_rt();
  arbor_pid pid = pick_pid();
  int64_t t = pick_timeout();
  int rc;

  if (t < 0 || t > 3)
    t = 1; /* a live process need not end */
  rc = arbor_wait(r, pid, t, &reason);
  allowed("arbor_wait", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_EOTHERRT,
          ARBOR_ETIMEDOUT, ARBOR_EDEADLK, END);
  if (rc < 0 && reason != 12345)
    fail("a failed arbor_wait wrote the reason");
  if (where == IN_PROC && r != NULL && r == arbor_rt_current() &&
      rc != ARBOR_EDEADLK)
    fail("arbor_wait from a worker of its runtime returned %d", rc);
}

static void op_register(void)
{
  const char *name = pick_name();
  int rc = arbor_register(name, pick_pid());

  allowed("arbor_register", rc, ARBOR_EINVAL, ARBOR_ENAMETOOLONG, ARBOR_ESRCH,
          ARBOR_EEXIST, ARBOR_ENOMEM, END);
}

static void op_whereis(void)
{
  arbor_pid pid = 777;
  arbor_rt *r = pick_rt();
  const char *name = pick_name();
  int rc = arbor_whereis(r, name, (u8() & 7) == 0 ? NULL : &pid);

  allowed("arbor_whereis", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENAMETOOLONG,
          END);
  if (rc < 0 && pid != 777)
    fail("a failed arbor_whereis wrote the pid");
  if (rc == 0)
    put_pid(pid);
}

static void op_sup_start(void)
{
  arbor_sup_error err;
  arbor_sup_spec *spec;
  arbor_rt *r = pick_rt();
  arbor_pid pid = 0;
  uint8_t b = u8();
  int rc;

  nspecs = 0;
  spec = (b & 7) == 0 ? NULL : build_sup(0);
  memset(&err, 0, sizeof(err));
  rc = arbor_sup_start(r, spec, &pid, (b & 8) ? NULL : &err);
  allowed("arbor_sup_start", rc, ARBOR_EINVAL, ARBOR_EBADSPEC, ARBOR_ESTART,
          ARBOR_ENOMEM, ARBOR_ESHUTDOWN, ARBOR_EDEADLK, ARBOR_ENAMETOOLONG,
          END);
  if (rc == ARBOR_EBADSPEC && !(b & 8) && err.field == NULL)
    fail("EBADSPEC without a field");
  if (rc == 0)
    put_pid(pid);
  else if (pid != 0)
    fail("a failed arbor_sup_start wrote the pid");
}

static void op_start_child(void)
{
  static arbor_child_spec spec; /* its nested specs use the arena */
  arbor_child_spec *c = &spec;
  arbor_sup_error err;
  arbor_pid sup = pick_pid(), child = 0;
  uint8_t b = u8();
  int rc;

  nspecs = 0;
  build_child(c, 1);
  rc = arbor_sup_start_child(sup, (b & 7) == 0 ? NULL : c, &child,
                             (b & 8) ? NULL : &err);
  allowed("arbor_sup_start_child", rc, ARBOR_EBADSPEC, ARBOR_EEXIST,
          ARBOR_ESTART, ARBOR_ESRCH, ARBOR_EINVAL, ARBOR_ENOMEM,
          ARBOR_EDEADLK, END);
  if (rc == 0)
    put_pid(child);
  else if (child != 0)
    fail("a failed arbor_sup_start_child wrote the pid");
}

static void op_child_id_op(void)
{
  arbor_pid sup = pick_pid(), child = 0;
  const char *id = pick_id();
  arbor_child_info info;
  int rc;

  memset(&info, 0x5a, sizeof(info));
  switch (u8() & 3) {
  case 0:
    rc = arbor_sup_terminate_child(sup, id);
    allowed("arbor_sup_terminate_child", rc, ARBOR_ENOENT, ARBOR_ESRCH,
            ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_EDEADLK, END);
    break;
  case 1:
    rc = arbor_sup_restart_child(sup, id, &child);
    allowed("arbor_sup_restart_child", rc, ARBOR_EBUSY, ARBOR_ENOENT,
            ARBOR_ESTART, ARBOR_ESRCH, ARBOR_EINVAL, ARBOR_ENOMEM,
            ARBOR_EDEADLK, END);
    if (rc == 0)
      put_pid(child);
    else if (child != 0)
      fail("a failed arbor_sup_restart_child wrote the pid");
    break;
  case 2:
    rc = arbor_sup_delete_child(sup, id);
    allowed("arbor_sup_delete_child", rc, ARBOR_EBUSY, ARBOR_ENOENT,
            ARBOR_ESRCH, ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_EDEADLK, END);
    break;
  default:
    rc = arbor_sup_get_childspec(sup, id, (u8() & 7) == 0 ? NULL : &info);
    allowed("arbor_sup_get_childspec", rc, ARBOR_ENOENT, ARBOR_EINVAL,
            ARBOR_ESRCH, ARBOR_ENOMEM, ARBOR_EDEADLK, END);
    if (rc < 0) {
      arbor_child_info z;

      memset(&z, 0x5a, sizeof(z));
      if (memcmp(&z, &info, sizeof(info)) != 0)
        fail("a failed arbor_sup_get_childspec wrote its output");
    }
    break;
  }
}

static void op_which(void)
{
  arbor_child_info v[4];
  arbor_pid sup = pick_pid();
  uint8_t b = u8();
  size_t cap = b & 7;
  arbor_child_info *out = (b & 8) ? NULL : v;
  int rc;

  if (cap > 4)
    cap = 4;
  memset(v, 0x5a, sizeof(v));
  rc = arbor_sup_which_children(sup, out, cap);
  allowed("arbor_sup_which_children", rc, ARBOR_EINVAL, ARBOR_ESRCH,
          ARBOR_ENOMEM, ARBOR_EDEADLK, END);
  if (rc >= 0 && out != NULL) {
    arbor_child_info z;

    memset(&z, 0x5a, sizeof(z));
    /* Entries past the count (or the cap) are untouched. */
    for (size_t i = (size_t)rc < cap ? (size_t)rc : cap; i < 4; i++)
      if (memcmp(&z, &v[i], sizeof(z)) != 0)
        fail("arbor_sup_which_children wrote past what it returned");
  }
}

static void op_store(void)
{
  arbor_pid sup = (u8() & 1) ? 0 : pick_pid();
  const char *key = pick_key();
  uint8_t b = u8();
  char buf[16];
  int64_t rc;

  memset(buf, 0x5a, sizeof(buf));
  switch (b & 7) {
  case 0:
  case 1:
    rc = arbor_store_get(sup, key, (b & 8) ? NULL : buf,
                         (b & 0x10) ? 0 : sizeof(buf));
    allowed("arbor_store_get", rc, ARBOR_ENOENT, ARBOR_EINVAL, ARBOR_ESRCH,
            END);
    if (rc < 0)
      for (size_t i = 0; i < sizeof(buf); i++)
        if ((uint8_t)buf[i] != 0x5a)
          fail("a failed arbor_store_get wrote the buffer");
    break;
  case 2:
  case 3:
    rc = arbor_store_set(sup, key, (b & 8) ? NULL : payload,
                         (b & 0x10) ? 0 : 1 + (b >> 5));
    allowed("arbor_store_set", rc, ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_ESRCH,
            END);
    break;
  case 4:
    rc = arbor_store_delete(sup, key);
    allowed("arbor_store_delete", rc, ARBOR_ENOENT, ARBOR_EINVAL, ARBOR_ESRCH,
            END);
    break;
  case 5:
  case 6:
    rc = arbor_store_update(sup, key, (b & 0x10) ? 0 : 8,
                            (b & 8) ? NULL : update_fn,
                            (void *)(uintptr_t)(b >> 5));
    allowed("arbor_store_update", rc, ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_ESRCH,
            END);
    break;
  default:
    rc = arbor_store_size(sup);
    allowed("arbor_store_size", rc, ARBOR_ESRCH, END);
    break;
  }
}

static void op_sink(void)
{
  uint8_t b = u8();
  arbor_rt *r = pick_rt();
  arbor_event_sink sink;
  void *ud = NULL;
  int rc;

  switch (b & 3) {
  case 0:
    sink = quiet_sink;
    break;
  case 1:
    sink = nosy_sink;
    break;
  case 2:
    sink = arbor_event_sink_logfmt;
    ud = devnull;
    break;
  default:
    /* (No NULL sink: the default writes to stderr.) */
    sink = arbor_event_sink_jsonl;
    ud = devnull;
    break;
  }
  rc = arbor_rt_set_event_sink(r, sink, ud, (int)((b >> 2) & 7) - 1);
  allowed("arbor_rt_set_event_sink", rc, ARBOR_EINVAL, END);
}

static void op_dump(void)
{
  static char buf[4096];
  arbor_pid sup = pick_pid();
  uint8_t b = u8();
  size_t cap = (b & 3) == 0 ? 0 : (b & 3) == 1 ? 1 : (b & 3) == 2 ? 40 : 4096;
  int64_t rc;

  rc = arbor_sup_dump(sup, (b >> 2) & 3, (b & 0x10) ? NULL : buf, cap);
  allowed("arbor_sup_dump", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM,
          ARBOR_EDEADLK, END);
  if (rc >= 0 && cap > 0 && !(b & 0x10) && strlen(buf) >= cap)
    fail("arbor_sup_dump overran its buffer");
}

static void op_strings(void)
{
  int v = (int)(int32_t)(uint32_t)u64();
  arbor_event ev;

  if (arbor_strerror(v) == NULL || arbor_err_name(v) == NULL ||
      arbor_reason_name(v) == NULL || arbor_event_name(v) == NULL)
    fail("a name function returned NULL");
  memset(&ev, 0, sizeof(ev));
  ev.kind = v;
  ev.level = (int)u8() - 128;
  ev.time_ns = (int64_t)u64();
  ev.reason = v;
  ev.sup_name = (u8() & 1) ? "sup \"x\"\n\xff\xc3" : NULL;
  ev.child_id = (u8() & 1) ? "\x01id=\\" : NULL;
  arbor_event_sink_logfmt(&ev, devnull);
  arbor_event_sink_jsonl(&ev, devnull);
  arbor_event_sink_logfmt(NULL, devnull);
  arbor_event_sink_jsonl(NULL, devnull);
}

/* OP_DOOM: the driver is asked to end while it runs -- an exit signal
 * arrives from the other worker while the driver makes no runtime call --
 * so that the next operation is the call it ends in, which must not leak
 * or break anything. */
static _Atomic arbor_pid doom_target;
static atomic_int doom_done;

static int killer(void *arg)
{
  (void)arbor_kill(atomic_load(&doom_target), (int)(intptr_t)arg);
  atomic_store(&doom_done, 1);
  return 0;
}

static void op_doom(int where)
{
  int reason = pick_reason();
  struct timespec t0, t;

  /* With one worker the killer could only run once the driver yields. */
  if (where != IN_PROC || arbor_rt_workers(arbor_rt_current()) < 2)
    return;
  atomic_store(&doom_done, 0);
  atomic_store(&doom_target, arbor_self());
  /* The second spawn pushes the killer out of this worker's LIFO slot,
   * where the other worker can steal it. */
  if (arbor_spawn(NULL, NULL, killer, (void *)(intptr_t)reason, NULL) != 0 ||
      arbor_spawn(NULL, NULL, body, (void *)(uintptr_t)B_RETURN, NULL) != 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    sched_yield(); /* the thread's, not the runtime's: no checkpoint */
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (!atomic_load(&doom_done) &&
           (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
               50000000L);
}

static int driver(void *arg);

static void op_enter(void)
{
  arbor_pid pid;
  int reason, rc;

  if (rt == NULL)
    return;
  rc = arbor_spawn(rt, &pid, driver, NULL,
                   &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE,
                                       .name = "driver"});
  allowed("arbor_spawn", rc, ARBOR_ESHUTDOWN, ARBOR_ENOMEM, END);
  if (rc < 0)
    return;
  rc = arbor_wait(rt, pid, -1, &reason);
  if (rc != 0)
    fail("arbor_wait for the driver returned %d", rc);
  put_pid(pid);
}

/* One operation.  Returns false to leave the driver. */
static bool step(int where)
{
  uint8_t op = u8() % NOPS;
  int64_t rc;
  char buf[64];
  arbor_worker_stats st[3];
  arbor_pid pid;
  int reason;

  current_op = op_names[op];
  if (trace)
    fprintf(stderr, "%s: %s\n", where == IN_PROC ? "proc" : "thread",
            current_op);
  switch (op) {
  case OP_ENTER:
    if (where == IN_THREAD)
      op_enter();
    break;
  case OP_LEAVE:
    return where == IN_THREAD;
  case OP_SPAWN:
    op_spawn(where);
    break;
  case OP_SEND:
    op_send();
    break;
  case OP_SEND_OWNED:
    op_send_owned();
    break;
  case OP_SEND_NAME: {
    arbor_rt *r = pick_rt();
    const char *name = pick_name();
    uint32_t tag = pick_tag();

    rc = arbor_send_name(r, name, tag, payload, u8() & 15);
    allowed("arbor_send_name", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM,
            ARBOR_ENAMETOOLONG, END);
    break;
  }
  case OP_RECV:
    op_recv(where);
    break;
  case OP_SLEEP:
    rc = arbor_sleep((u8() & 1) ? -1 - (int64_t)u8() : (int64_t)(u8() & 3));
    allowed("arbor_sleep", rc, ARBOR_EINVAL, ARBOR_ENOTPROC, ARBOR_ENOMEM,
            END);
    break;
  case OP_YIELD:
    rc = arbor_yield();
    allowed("arbor_yield", rc, ARBOR_ENOTPROC, END);
    break;
  case OP_EXIT:
    rc = arbor_exit(pick_reason());
    if (rc != ARBOR_ENOTPROC || where == IN_PROC)
      fail("arbor_exit returned %lld", (long long)rc);
    break;
  case OP_DEFER: {
    bool null = (u8() & 3) == 0;

    rc = arbor_defer(null ? NULL : count_defer, NULL);
    allowed("arbor_defer", rc, ARBOR_EINVAL, ARBOR_ENOMEM, ARBOR_ENOTPROC,
            END);
    if (rc == 0)
      atomic_fetch_add(&defers_made, 1);
    break;
  }
  case OP_NAME: {
    arbor_rt *r = pick_rt();
    uint8_t b = u8();

    memset(buf, 0x5a, sizeof(buf));
    rc = arbor_name(r, pick_pid(), (b & 1) ? NULL : buf, (b >> 1) & 63);
    allowed("arbor_name", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_EOTHERRT, END);
    if (rc < 0 && (uint8_t)buf[0] != 0x5a)
      fail("a failed arbor_name wrote the buffer");
    break;
  }
  case OP_ALIVE: {
    arbor_rt *r = pick_rt();

    rc = arbor_alive(r, pick_pid());
    allowed("arbor_alive", rc, ARBOR_EINVAL, ARBOR_EOTHERRT, END);
    nonneg_or("arbor_alive", rc, 1);
    break;
  }
  case OP_WAIT:
    op_wait(where);
    break;
  case OP_REGISTER:
    op_register();
    break;
  case OP_UNREGISTER: {
    arbor_rt *r = pick_rt();

    rc = arbor_unregister(r, pick_name());
    allowed("arbor_unregister", rc, ARBOR_EINVAL, ARBOR_ESRCH,
            ARBOR_ENAMETOOLONG, END);
    break;
  }
  case OP_WHEREIS:
    op_whereis();
    break;
  case OP_LINK:
    rc = arbor_link(pick_pid());
    allowed("arbor_link", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_EOTHERRT,
            ARBOR_ENOMEM, ARBOR_ENOTPROC, END);
    break;
  case OP_UNLINK:
    rc = arbor_unlink(pick_pid());
    allowed("arbor_unlink", rc, ARBOR_EINVAL, ARBOR_ENOTPROC, END);
    break;
  case OP_MONITOR: {
    uint64_t ref = 0;
    arbor_pid target = pick_pid();

    rc = arbor_monitor(target, (u8() & 7) == 0 ? NULL : &ref);
    allowed("arbor_monitor", rc, ARBOR_EINVAL, ARBOR_EOTHERRT, ARBOR_ENOMEM,
            ARBOR_ENOTPROC, END);
    if (rc == 0)
      mons[u8() % NREFS] = ref;
    else if (ref != 0)
      fail("a failed arbor_monitor wrote the reference");
    break;
  }
  case OP_DEMONITOR: {
    uint8_t b = u8();

    rc = arbor_demonitor(b >= 0xf0 ? u64() : mons[b % NREFS]);
    allowed("arbor_demonitor", rc, ARBOR_ESRCH, ARBOR_ENOTPROC, END);
    break;
  }
  case OP_TRAP:
    rc = arbor_trap_exit((int)(int8_t)u8());
    allowed("arbor_trap_exit", rc, ARBOR_ENOTPROC, END);
    nonneg_or("arbor_trap_exit", rc, 1);
    break;
  case OP_KILL:
    pid = pick_pid();
    rc = arbor_kill(pid, pick_reason());
    allowed("arbor_kill", rc, ARBOR_EINVAL, ARBOR_ESRCH, END);
    break;
  case OP_SEND_AFTER: {
    arbor_timer t = 0;
    arbor_pid to = pick_pid();
    uint8_t b = u8();
    int64_t ms = (b & 1) ? (int64_t)((b >> 1) & 3)
                 : (b & 2) ? INT64_MAX
                           : -1;

    rc = arbor_send_after(to, pick_tag(), (b & 8) ? NULL : payload,
                          (b & 0x10) ? 0 : ((b & 0x20) ? 70 : 3), ms,
                          (b & 0x40) ? NULL : &t);
    allowed("arbor_send_after", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ENOMEM,
            END);
    if (rc == 0 && t != 0)
      timers[u8() % NREFS] = t;
    else if (rc < 0 && t != 0)
      fail("a failed arbor_send_after wrote the timer");
    break;
  }
  case OP_CANCEL: {
    uint8_t b = u8();

    rc = arbor_timer_cancel(b >= 0xf0 ? u64() : timers[b % NREFS]);
    allowed("arbor_timer_cancel", rc, ARBOR_ESRCH, ARBOR_EINVAL, END);
    break;
  }
  case OP_SUP_START:
    op_sup_start();
    break;
  case OP_SUP_STOP: {
    arbor_pid sup = pick_pid();
    int64_t t = pick_timeout();

    if (where == IN_PROC && (t < 0 || t > 3))
      t = 3;
    rc = arbor_sup_stop(sup, t);
    allowed("arbor_sup_stop", rc, ARBOR_EINVAL, ARBOR_ESRCH, ARBOR_ETIMEDOUT,
            ARBOR_ENOMEM, ARBOR_EDEADLK, END);
    break;
  }
  case OP_START_CHILD:
    op_start_child();
    break;
  case OP_CHILD_ID_OP:
    op_child_id_op();
    break;
  case OP_WHICH:
    op_which();
    break;
  case OP_COUNT: {
    arbor_child_counts k = {-1, -1, -1, -1};
    arbor_pid sup = pick_pid();

    rc = arbor_sup_count_children(sup, (u8() & 7) == 0 ? NULL : &k);
    allowed("arbor_sup_count_children", rc, ARBOR_EINVAL, ARBOR_ESRCH,
            ARBOR_ENOMEM, ARBOR_EDEADLK, END);
    if (rc < 0 && k.specs != -1)
      fail("a failed arbor_sup_count_children wrote its output");
    break;
  }
  case OP_STORE:
    op_store();
    break;
  case OP_SINK:
    op_sink();
    break;
  case OP_DUMP:
    op_dump();
    break;
  case OP_STATS: {
    arbor_rt *r = pick_rt();
    uint8_t b = u8();

    rc = arbor_rt_stats(r, (b & 1) ? NULL : st, (b >> 1) & 3);
    allowed("arbor_rt_stats", rc, ARBOR_EINVAL, END);
    nonneg_or("arbor_rt_stats", rc, 3);
    rc = arbor_rt_live(r);
    allowed("arbor_rt_live", rc, ARBOR_EINVAL, END);
    rc = arbor_rt_workers(r);
    allowed("arbor_rt_workers", rc, ARBOR_EINVAL, END);
    rc = arbor_rt_dropped(r);
    allowed("arbor_rt_dropped", rc, ARBOR_EINVAL, END);
    break;
  }
  case OP_SHUTDOWN: {
    arbor_rt *r = pick_rt();

    if (r == rt2)
      r = rt; /* rt2 stays up: its process is everyone's "other" pid */
    rc = arbor_rt_shutdown(r);
    allowed("arbor_rt_shutdown", rc, ARBOR_EINVAL, ARBOR_EDEADLK, END);
    if (where == IN_PROC && r != NULL && rc != ARBOR_EDEADLK)
      fail("arbor_rt_shutdown from a worker returned %lld", (long long)rc);
    break;
  }
  case OP_DESTROY:
    if (where == IN_PROC) {
      arbor_rt_destroy(arbor_rt_current()); /* a no-op from inside */
      if (arbor_rt_current() == NULL || arbor_rt_live(rt) < 1)
        fail("arbor_rt_destroy from inside did something");
    } else if (u8() & 1) {
      arbor_rt_destroy(rt);
      rt = NULL;
    }
    break;
  case OP_INIT_ACK:
    rc = arbor_init_ack(pick_reason());
    allowed("arbor_init_ack", rc, ARBOR_ENOTPROC, END);
    break;
  case OP_SELF:
    pid = arbor_self();
    if ((where == IN_PROC) != (pid != 0) ||
        (where == IN_PROC) != (arbor_worker() >= 0) ||
        (where == IN_PROC) != (arbor_rt_current() != NULL))
      fail("arbor_self, arbor_worker or arbor_rt_current is wrong");
    reason = arbor_worker();
    if (where == IN_PROC && reason >= arbor_rt_workers(rt))
      fail("arbor_worker returned %d", reason);
    break;
  case OP_DOOM:
    op_doom(where);
    break;
  default:
    op_strings();
    break;
  }
  return true;
}

static int driver(void *arg)
{
  (void)arg;
  pids[0] = arbor_self();
  while (!at_end())
    if (!step(IN_PROC))
      break;
  return 0;
}

/* ---- one input ----------------------------------------------------------------- */

static int other_body(void *arg)
{
  (void)arg;
  (void)arbor_trap_exit(1);
  for (;;) {
    arbor_msg m;

    /* Ends only with the runtime (or an untrappable kill). */
    if (arbor_recv(&m, -1) != 0)
      return 0;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  trace = getenv("FUZZ_API_TRACE") != NULL;
  devnull = fopen("/dev/null", "w");
  if (devnull == NULL)
    abort();
  memset(payload, 0x42, sizeof(payload));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  arbor_pid zombie = 0, dead = 0;
  unsigned workers;
  int reason;

  if (size == 0)
    return 0;
  prog = data;
  prog_len = size;
  pc = 0;
  workers = 1 + (u8() & 1);
  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = workers, .seed = 1}) !=
          0 ||
      arbor_rt_create(&rt2, &(arbor_rt_opts){.workers = 1, .seed = 2}) != 0)
    abort();
  (void)arbor_rt_set_event_sink(rt, quiet_sink, NULL, ARBOR_LEVEL_DEBUG);
  (void)arbor_rt_set_event_sink(rt2, quiet_sink, NULL, ARBOR_LEVEL_DEBUG);
  atomic_store(&owned_made, 0);
  atomic_store(&owned_freed, 0);
  atomic_store(&defers_made, 0);
  atomic_store(&defers_run, 0);
  memset(pids, 0, sizeof(pids));
  memset(timers, 0, sizeof(timers));
  memset(mons, 0, sizeof(mons));

  /* The table starts with another runtime's process, a zombie, a reaped
   * process and a few bogus pids. */
  if (arbor_spawn(rt2, &other_pid, other_body, NULL, NULL) != 0 ||
      arbor_spawn(rt, &zombie, body, (void *)(uintptr_t)(B_RETURN | 5 << 3),
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0 ||
      arbor_spawn(rt, &dead, body, (void *)(uintptr_t)B_RETURN,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0 ||
      arbor_wait(rt, dead, -1, &reason) != 0)
    abort();
  pids[1] = other_pid;
  pids[2] = zombie;
  pids[3] = dead;
  pids[4] = UINT64_MAX;
  pids[5] = dead + 1;

  while (!at_end())
    (void)step(IN_THREAD);

  current_op = "cleanup";
  arbor_rt_destroy(rt);
  arbor_rt_destroy(rt2);
  rt = rt2 = NULL;
  if (atomic_load(&owned_freed) != atomic_load(&owned_made))
    fail("%ld owned buffers made, %ld freed", atomic_load(&owned_made),
         atomic_load(&owned_freed));
  if (atomic_load(&defers_run) != atomic_load(&defers_made))
    fail("%ld defers registered, %ld ran", atomic_load(&defers_made),
         atomic_load(&defers_run));
  return 0;
}
