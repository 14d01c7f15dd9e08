/* runtime/supervisor.c -- supervisors: the supervisor process, its child
 * table, restart strategies, restart intensity and ordered shutdown.
 *
 * A supervisor is a process running arbor__sup_body(): it traps exits,
 * starts its static children in order, reports "started" (or the failure)
 * to whoever started it, and then serves one mailbox: ARBOR_TAG_EXIT from a
 * child (restart by policy and strategy), ARBOR_TAG_EXIT from its parent
 * (stop), and management requests (sup_call.c).  Everything below runs in
 * that one process, so the supervisor's state needs no locks.
 *
 * Starting a child.  The child is spawned linked, with proc->sup = our pid,
 * so it cannot die unobserved; a worker calls arbor_init_ack(), which sends
 * ARBOR__TAG_INIT_ACK to proc->sup once (ARBOR__P_ACKED makes later calls
 * no-ops).  We wait by selective receive for that ack, the child's EXIT,
 * our parent's EXIT or a stop request -- nothing else, so every other
 * message stays queued in order.  A stop that arrives meanwhile aborts the
 * start: the child is stopped under its shutdown spec and the supervisor
 * shuts down (a slow init cannot hold a shutdown up).  A nested supervisor
 * acks once all its own static children have acked.
 *
 * Exits.  Every EXIT of a child incarnation is consumed exactly once: by
 * the main loop (the child ended on its own), or by the stop that caused it
 * (stop_pid() waits for the EXIT of that pid).  Children are found by pid
 * (a hash), so an EXIT from any pid that is not a current child -- a
 * replaced incarnation, an unrelated linked process -- is ignored, as OTP
 * does; that is what makes ash_flare's stale-exit bug (P9) impossible.
 * Only our parent's EXIT (for a root started from a thread, an exit signal
 * sent from outside any process, from = 0) stops us.
 *
 * Restarts follow OTP exactly: permanent always, transient unless the
 * reason is ARBOR_NORMAL or ARBOR_REASON_SHUTDOWN, temporary never (and the
 * record goes).  one_for_all and rest_for_one stop the others (the tail) in
 * reverse start order, drop temporary ones, and start every remaining child
 * of the group in start order, including ones that had been terminated.
 * Stops we cause are never failures and are never counted.  Each restart
 * (not each child of a group) is counted in a sliding window of monotonic
 * milliseconds, stored as (ms, count) buckets so that it costs O(1)
 * amortised and at most min(intensity, period_ms) + 1 buckets of memory
 * whatever the rate; more than `intensity` restarts within `period_ms`
 * (OTP's inclusive rule: a restart at now - period still counts) make the
 * supervisor stop everything and exit with ARBOR_REASON_SHUTDOWN.  A start
 * that fails during a restart leaves the child RESTARTING and is tried
 * again once the mailbox is empty (OTP's try_again), each try counted.
 *
 * Specs are deep-copied once, into one allocation per tree (the root's
 * start) or per dynamic child (start_child), together with a store for
 * every supervisor spec that asks for one.  A nested supervisor reads its
 * spec from its ancestors' copy and copies nothing: a supervisor exits only
 * after all its children are gone -- even when killed, because its defer
 * then stops them in order -- so a copy always outlives its readers, and a
 * store lives as long as its spec (across every restart of its owner).
 *
 * Memory: the supervisor's state is freed by its own defer, which also
 * stops any child still running (killed, or the runtime shutting down) and
 * drops the store reference held through proc->store, clearing that field
 * under arbor__proc_lock() first as sup_store.c requires.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sup.h"

/* ---- spec copies ----------------------------------------------------------- */

struct sspec;

/* A child spec as the supervisor keeps it: defaults resolved. */
struct cspec {
  char id[ARBOR_ID_MAX];
  const char *seg; /* the process name segment (see copy_child()) */
  arbor_fn start;
  void *arg;
  int restart;
  int shutdown_ms; /* > 0, ARBOR_SHUTDOWN_BRUTAL or ARBOR_SHUTDOWN_INFINITY */
  int type;
  int significant;
  size_t stack_size;
  const struct sspec *sup; /* ARBOR_SUPERVISOR children */
};

struct sspec {
  const char *name; /* NULL: none */
  int strategy;
  int intensity; /* resolved: see resolve() */
  int period_ms;
  int auto_shutdown;
  size_t nchildren;
  struct cspec *children;
  struct arbor__store *store; /* the spec's reference; NULL: no store */
};

/* One allocation: this header, then the nodes, then the strings. */
struct arbor__sup_tree {
  struct sspec *sup;   /* arbor_sup_start() */
  struct cspec *child; /* arbor_sup_start_child() */
};

/* A bump allocator run twice: to measure (base NULL), then to fill. */
struct bump {
  char *base;
  size_t off;
  bool nomem; /* a store could not be made */
};

static void *bump(struct bump *b, size_t size, size_t align)
{
  void *p;

  b->off = (b->off + align - 1) & ~(align - 1);
  p = b->base != NULL ? b->base + b->off : NULL;
  b->off += size;
  return p;
}

static const char *bump_str(struct bump *b, const char *s)
{
  size_t n = strlen(s) + 1;
  char *p = bump(b, n, 1);

  if (p != NULL)
    memcpy(p, s, n);
  return p;
}

/* Whether s names anything once sanitised (see arbor_spawn_opts.name). */
static bool has_name_char(const char *s)
{
  for (; *s != '\0'; s++)
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
        (*s >= '0' && *s <= '9'))
      return true;
  return false;
}

static struct sspec *copy_sup(struct bump *b, const arbor_sup_spec *s);

static void copy_child(struct bump *b, struct cspec *d,
                       const arbor_child_spec *c)
{
  const struct sspec *nested = NULL;
  const char *seg = NULL;
  int sd = c->shutdown_ms;

  if (c->type == ARBOR_SUPERVISOR) {
    nested = copy_sup(b, c->sup);
    /* A nested supervisor is named by its own spec if that names it. */
    if (c->sup->name != NULL && has_name_char(c->sup->name))
      seg = nested != NULL ? nested->name : NULL;
  }
  if (sd == ARBOR_SHUTDOWN_DEFAULT)
    sd = c->type == ARBOR_SUPERVISOR ? ARBOR_SHUTDOWN_INFINITY : 5000;
  if (d == NULL)
    return;
  memset(d, 0, sizeof(*d));
  /* Validated: shorter than ARBOR_ID_MAX. */
  memcpy(d->id, c->id, strlen(c->id) + 1);
  /* An id with no name characters would not make a process name. */
  d->seg = seg != NULL ? seg : has_name_char(c->id) ? d->id : "child";
  d->start = c->start;
  d->arg = c->arg;
  d->restart = c->restart;
  d->shutdown_ms = sd;
  d->type = c->type;
  d->significant = c->significant != 0;
  d->stack_size = c->stack_size;
  d->sup = nested;
}

/* Intensity and period: both 0 is OTP's 1 per 5 s; a period of 0 with some
 * intensity is 5 s; an intensity of 0 with a period allows no restart. */
static void resolve(const arbor_sup_spec *s, int *intensity, int *period)
{
  *intensity = s->intensity;
  *period = s->period_ms;
  if (*intensity == 0 && *period == 0)
    *intensity = 1;
  if (*period == 0)
    *period = 5000;
}

static struct sspec *copy_sup(struct bump *b, const arbor_sup_spec *s)
{
  struct sspec *d = bump(b, sizeof(*d), _Alignof(struct sspec));
  struct cspec *kids =
      bump(b, s->nchildren * sizeof(*kids), _Alignof(struct cspec));
  const char *name = s->name != NULL ? bump_str(b, s->name) : NULL;

  if (d != NULL) {
    d->name = name;
    d->strategy = s->strategy;
    resolve(s, &d->intensity, &d->period_ms);
    d->auto_shutdown = s->auto_shutdown;
    d->nchildren = s->nchildren;
    d->children = kids;
    d->store = NULL;
    if (s->store) {
      d->store = arbor__store_new();
      if (d->store == NULL)
        b->nomem = true;
    }
  }
  for (size_t i = 0; i < s->nchildren; i++)
    copy_child(b, kids != NULL ? &kids[i] : NULL, &s->children[i]);
  return d;
}

static void unref_stores(const struct sspec *s)
{
  if (s == NULL)
    return;
  if (s->store != NULL)
    arbor__store_unref(s->store);
  for (size_t i = 0; i < s->nchildren; i++)
    unref_stores(s->children[i].sup);
}

void arbor__sup_tree_free(struct arbor__sup_tree *t)
{
  if (t == NULL)
    return;
  unref_stores(t->sup);
  if (t->child != NULL)
    unref_stores(t->child->sup);
  free(t);
}

/* Copy a validated spec (sup_call.c validates).  0 or ARBOR_ENOMEM. */
static int tree_copy(const arbor_sup_spec *s, const arbor_child_spec *c,
                     struct arbor__sup_tree **out)
{
  struct bump b = {NULL, 0, false};
  struct arbor__sup_tree *t;

  bump(&b, sizeof(*t), _Alignof(struct arbor__sup_tree));
  if (s != NULL)
    copy_sup(&b, s);
  else
    copy_child(&b, bump(&b, sizeof(struct cspec), _Alignof(struct cspec)), c);
  t = malloc(b.off);
  if (t == NULL)
    return ARBOR_ENOMEM;
  b = (struct bump){(char *)t, 0, false};
  t = bump(&b, sizeof(*t), _Alignof(struct arbor__sup_tree));
  t->sup = NULL;
  t->child = NULL;
  if (s != NULL) {
    t->sup = copy_sup(&b, s);
  } else {
    t->child = bump(&b, sizeof(struct cspec), _Alignof(struct cspec));
    copy_child(&b, t->child, c);
  }
  if (b.nomem) {
    arbor__sup_tree_free(t);
    return ARBOR_ENOMEM;
  }
  *out = t;
  return 0;
}

int arbor__sup_tree_copy(const arbor_sup_spec *spec,
                         struct arbor__sup_tree **out)
{
  return tree_copy(spec, NULL, out);
}

int arbor__sup_child_copy(const arbor_child_spec *spec,
                          struct arbor__sup_tree **out)
{
  return tree_copy(NULL, spec, out);
}

/* ---- the supervisor's state -------------------------------------------------- */

struct child {
  const struct cspec *spec;
  struct arbor__sup_tree *own; /* a dynamic child's spec copy, else NULL */
  arbor_pid pid;               /* 0 unless running */
  int state;                   /* enum arbor_child_state */
  bool retry;                  /* a failed restart is to be tried again */
  uint64_t restarts;
};

/* Restarts counted in one millisecond. */
struct bucket {
  uint64_t ms;
  uint64_t n;
};

struct arbor__sup {
  arbor_rt *rt;
  struct arbor__proc *self;
  arbor_pid pid;
  arbor_pid parent; /* whose EXIT stops us (0: outside any process) */
  const struct sspec *spec;
  struct arbor__sup_tree *tree; /* a root's own copy of its tree */
  struct arbor__sup_req *boot;  /* a root's start request, until answered */
  struct arbor__store *store;   /* the reference behind self->store */

  /* Children in start order; static records live in `statics`. */
  struct child **v;
  size_t n, cap;
  struct child *statics;
  /* Running children by pid: open addressing, linear probing, no
   * tombstones; sized with `cap` so an insert never needs to grow it. */
  struct child **ht;
  size_t htmask;

  /* The restart window: a ring of buckets, oldest at whead. */
  struct bucket *win;
  size_t wcap, whead, wlen;
  uint64_t wsum;

  size_t nretry;          /* children with retry set */
  arbor_pid starting;     /* a child between spawn and its ack, or 0 */
  const struct cspec *starting_spec;
  bool stopping;          /* leave the main loop and shut down */
  int stop_reason;
};

static void emit(struct arbor__sup *st, int kind, const struct child *c,
                 arbor_pid pid, int reason)
{
  arbor_event ev = {
      .kind = kind,
      .sup_name = st->self->name != NULL ? st->self->name->s : "",
      .sup = st->pid,
      .child_id = c != NULL ? c->spec->id : "",
      .child = pid,
      .reason = reason,
      .restarts = c != NULL ? c->restarts : 0,
  };

  arbor__sup_emit(st->rt, &ev);
}

/* A system message from the calling process.  Like signal.c's system
 * envelopes, there is no caller to give an allocation failure to (a lost
 * ack would hang the supervisor): abort. */
static void post_sys(arbor_rt *rt, arbor_pid to, uint32_t tag, int reason,
                     const void *data, size_t len)
{
  struct arbor__proc *self = arbor__proc_current(), *p;
  int w = arbor__worker_of(rt, self);
  struct arbor__env *e = arbor__env_new(rt, w, len);

  arbor__assert(e != NULL);
  if (len > 0)
    memcpy(e->data, data, len);
  e->tag = tag;
  e->reason = reason;
  /* Relaxed: our own pid, set before we ever ran. */
  e->from = atomic_load_explicit(&self->pid, memory_order_relaxed);
  p = arbor__proc_peek(rt, to);
  if (p == NULL) {
    arbor__env_free(rt, w, e);
    /* Relaxed: a statistic, as in message.c. */
    atomic_fetch_add_explicit(&rt->dropped, 1, memory_order_relaxed);
    return;
  }
  arbor__deliver(p, to, e, w);
}

/* ---- the pid hash ---------------------------------------------------------- */

static size_t ht_home(arbor_pid pid, size_t mask)
{
  return (size_t)((pid * 0x9E3779B97F4A7C15u) >> 32) & mask;
}

static struct child *ht_find(const struct arbor__sup *st, arbor_pid pid)
{
  for (size_t i = ht_home(pid, st->htmask); st->ht[i] != NULL;
       i = (i + 1) & st->htmask)
    if (st->ht[i]->pid == pid)
      return st->ht[i];
  return NULL;
}

static void ht_put(struct arbor__sup *st, struct child *c)
{
  size_t i = ht_home(c->pid, st->htmask);

  while (st->ht[i] != NULL)
    i = (i + 1) & st->htmask;
  st->ht[i] = c;
}

/* Remove c (by its pid) and shift later entries of the run back, so that
 * no probe sequence is broken. */
static void ht_del(struct arbor__sup *st, struct child *c)
{
  size_t mask = st->htmask, i = ht_home(c->pid, mask), j;

  while (st->ht[i] != c) {
    if (st->ht[i] == NULL)
      return;
    i = (i + 1) & mask;
  }
  st->ht[i] = NULL;
  for (j = (i + 1) & mask; st->ht[j] != NULL; j = (j + 1) & mask) {
    size_t k = ht_home(st->ht[j]->pid, mask);

    /* Leave the entry if its home lies cyclically in (i, j]. */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    st->ht[i] = st->ht[j];
    st->ht[j] = NULL;
    i = j;
  }
}

/* Make room for `want` child records (v and the hash).  0 or ENOMEM. */
static int reserve(struct arbor__sup *st, size_t want)
{
  size_t cap = st->cap, hsize = 16;
  struct child **v, **ht;

  if (want <= st->cap)
    return 0;
  while (cap < want)
    cap = cap < 8 ? 8 : cap * 2;
  while (hsize < cap * 2)
    hsize *= 2;
  v = realloc(st->v, cap * sizeof(*v));
  if (v == NULL)
    return ARBOR_ENOMEM;
  st->v = v;
  ht = calloc(hsize, sizeof(*ht));
  if (ht == NULL)
    return ARBOR_ENOMEM;
  if (st->ht != NULL) {
    struct child **old = st->ht;
    size_t oldsize = st->htmask + 1;

    st->ht = ht;
    st->htmask = hsize - 1;
    for (size_t i = 0; i < oldsize; i++)
      if (old[i] != NULL)
        ht_put(st, old[i]);
    free(old);
  } else {
    st->ht = ht;
    st->htmask = hsize - 1;
  }
  st->cap = cap;
  return 0;
}

static struct child *find_id(const struct arbor__sup *st, const char *id)
{
  for (size_t i = 0; i < st->n; i++)
    if (strcmp(st->v[i]->spec->id, id) == 0)
      return st->v[i];
  return NULL;
}

static size_t index_of(const struct arbor__sup *st, const struct child *c)
{
  size_t i = 0;

  while (st->v[i] != c)
    i++;
  return i;
}

static void free_record(struct child *c)
{
  if (c->own != NULL) {
    arbor__sup_tree_free(c->own);
    free(c);
  }
}

/* Forget a child that is not running. */
static void remove_child(struct arbor__sup *st, struct child *c)
{
  size_t i = index_of(st, c);

  if (c->retry) {
    c->retry = false;
    st->nretry--;
  }
  memmove(&st->v[i], &st->v[i + 1], (st->n - i - 1) * sizeof(st->v[0]));
  st->n--;
  free_record(c);
}

/* ---- the restart window ---------------------------------------------------- */

/* Count a restart now; false if that makes more than `intensity` within
 * the period. */
static bool restart_allowed(struct arbor__sup *st)
{
  uint64_t now = arbor__now_ms(), period = (uint64_t)st->spec->period_ms;
  struct bucket *last;

  while (st->wlen > 0 && st->win[st->whead].ms + period < now) {
    st->wsum -= st->win[st->whead].n;
    st->whead = (st->whead + 1) % st->wcap;
    st->wlen--;
  }
  last = st->wlen > 0 ? &st->win[(st->whead + st->wlen - 1) % st->wcap] : NULL;
  if (last == NULL || last->ms != now) {
    if (st->wlen == st->wcap) {
      size_t cap = st->wcap > 0 ? st->wcap * 2 : 4;
      struct bucket *w = malloc(cap * sizeof(*w));

      if (w != NULL) {
        for (size_t i = 0; i < st->wlen; i++)
          w[i] = st->win[(st->whead + i) % st->wcap];
        free(st->win);
        st->win = w;
        st->wcap = cap;
        st->whead = 0;
      }
    }
    if (st->wlen < st->wcap) {
      last = &st->win[(st->whead + st->wlen++) % st->wcap];
      last->ms = now;
      last->n = 0;
    }
    /* Otherwise (no memory) the restart joins the newest bucket: it then
     * leaves the window a little early, which only matters when memory is
     * already exhausted. */
  }
  arbor__assert(last != NULL); /* wcap >= 4 from sup_init on */
  last->n++;
  st->wsum++;
  return st->wsum <= (uint64_t)st->spec->intensity;
}

/* ---- starting and stopping children ---------------------------------------- */

enum { START_OK = 0, START_FAILED = 1, START_ABORTED = 2 };

/* The exit reason after arbor_sup_stop(): normal, as OTP's supervisor:stop,
 * so that a process linked to the supervisor (the one that started it) is
 * not taken down by asking for an orderly stop. */
#define STOP_REASON ARBOR_NORMAL

struct start_wait {
  arbor_pid child, parent;
};

static int match_start(const arbor_msg *m, void *arg)
{
  const struct start_wait *w = arg;

  switch (m->tag) {
  case ARBOR__TAG_INIT_ACK:
    return m->from == w->child;
  case ARBOR_TAG_EXIT:
    return m->from == w->child || m->from == w->parent;
  case ARBOR__TAG_SUP_CALL:
    return arbor__sup_call_is_stop(m);
  default:
    return 0;
  }
}

static int match_exit(const arbor_msg *m, void *arg)
{
  return m->tag == ARBOR_TAG_EXIT && m->from == *(const arbor_pid *)arg;
}

/* Stop `pid` under its shutdown spec and consume its EXIT; returns its exit
 * reason.  A child that ignores ARBOR_REASON_SHUTDOWN is killed when its
 * timeout passes; one that cannot be killed (it never makes a runtime call)
 * keeps us waiting, as it keeps arbor_rt_shutdown() waiting. */
static int stop_pid(arbor_pid pid, const struct cspec *cs)
{
  int sd = cs->shutdown_ms;
  arbor_msg m;
  int err;

  (void)arbor_kill(pid, sd == ARBOR_SHUTDOWN_BRUTAL ? ARBOR_REASON_KILL
                                                    : ARBOR_REASON_SHUTDOWN);
  err = arbor_recv_match(&m, match_exit, &pid, sd > 0 ? sd : -1);
  if (err != 0) { /* the timeout, or no memory for its timer */
    (void)arbor_kill(pid, ARBOR_REASON_KILL);
    while (arbor_recv_match(&m, match_exit, &pid, -1) != 0)
      ;
  }
  return m.reason;
}

/* Stop a running child (a stop we cause: never counted). */
static void stop_child(struct arbor__sup *st, struct child *c)
{
  arbor_pid pid = c->pid;
  int reason;

  if (pid == 0)
    return;
  reason = stop_pid(pid, c->spec);
  ht_del(st, c);
  c->pid = 0;
  c->state = ARBOR_CHILD_UNDEFINED;
  emit(st, ARBOR_EV_CHILD_EXITED, c, pid, reason);
}

/* Stop every running child, last started first. */
static void stop_all(struct arbor__sup *st)
{
  for (size_t i = st->n; i-- > 0;)
    stop_child(st, st->v[i]);
}

static int start_failed(struct arbor__sup *st, struct child *c, int reason,
                        const char *inner, arbor_sup_error *err)
{
  emit(st, ARBOR_EV_START_FAILED, c, 0, reason);
  if (err != NULL) {
    size_t n = strlen(c->spec->id);

    memset(err, 0, sizeof(*err));
    err->field = NULL;
    err->child = (long)index_of(st, c);
    memcpy(err->id, c->spec->id, n + 1);
    /* Inside a nested supervisor: "sub.leaf", cut to fit. */
    if (inner != NULL && inner[0] != '\0' && n + 2 < ARBOR_ID_MAX) {
      size_t k = strnlen(inner, ARBOR_ID_MAX - n - 2);

      err->id[n] = '.';
      memcpy(err->id + n + 1, inner, k);
      err->id[n + 1 + k] = '\0';
    }
    err->reason = reason;
  }
  return START_FAILED;
}

/* Start one incarnation of c and wait for its init.  START_OK (c running),
 * START_FAILED (*err filled), or START_ABORTED (a stop came meanwhile:
 * st->stopping is set). */
static int start_one(struct arbor__sup *st, struct child *c, bool restart,
                     arbor_sup_error *err)
{
  const struct cspec *cs = c->spec;
  arbor_spawn_opts o = {.name = cs->seg,
                        .stack_size = cs->stack_size,
                        .flags = ARBOR_SPAWN_LINK};
  bool sup = cs->type == ARBOR_SUPERVISOR;
  struct start_wait w = {0, st->parent};
  char inner[ARBOR_ID_MAX];
  arbor_msg m;
  int e;

  e = arbor__spawn_ex(st->rt, &w.child, sup ? arbor__sup_body : cs->start,
                      sup ? (void *)cs->sup : cs->arg, &o, st->pid);
  if (e < 0)
    return start_failed(st, c, e, NULL, err);
  /* If we are killed from here on, our defer stops it (see sup_cleanup). */
  st->starting = w.child;
  st->starting_spec = cs;
  while (arbor_recv_match(&m, match_start, &w, -1) != 0)
    ;
  if (m.tag == ARBOR__TAG_INIT_ACK && m.reason == 0) {
    st->starting = 0;
    c->pid = w.child;
    c->state = ARBOR_CHILD_RUNNING;
    ht_put(st, c);
    if (restart)
      c->restarts++;
    emit(st, restart ? ARBOR_EV_CHILD_RESTARTED : ARBOR_EV_CHILD_STARTED, c,
         w.child, 0);
    return START_OK;
  }
  if (m.tag == ARBOR__TAG_INIT_ACK) {
    /* Init failed: the child should be returning; make sure it is gone and
     * its EXIT consumed.  A nested supervisor says which of its children
     * failed. */
    int reason = m.reason;

    inner[0] = '\0';
    if (m.len > 0 && m.len <= sizeof(inner)) {
      memcpy(inner, m.data, m.len);
      inner[m.len - 1] = '\0';
    }
    (void)stop_pid(w.child, cs);
    st->starting = 0;
    return start_failed(st, c, reason, inner, err);
  }
  if (m.from == w.child) {
    st->starting = 0;
    return start_failed(st, c, m.reason, NULL, err);
  }
  /* Our parent's EXIT or a stop request: give up the start. */
  st->stopping = true;
  st->stop_reason = m.tag == ARBOR_TAG_EXIT ? m.reason : STOP_REASON;
  (void)stop_pid(w.child, cs);
  st->starting = 0;
  return START_ABORTED;
}

static bool should_restart(const struct child *c, int reason)
{
  switch (c->spec->restart) {
  case ARBOR_PERMANENT:
    return true;
  case ARBOR_TRANSIENT:
    return reason != ARBOR_NORMAL && reason != ARBOR_REASON_SHUTDOWN;
  default:
    return false;
  }
}

static void begin_stop(struct arbor__sup *st, int reason)
{
  if (!st->stopping) {
    st->stopping = true;
    st->stop_reason = reason;
  }
}

static void mark_retry(struct arbor__sup *st, struct child *c)
{
  c->state = ARBOR_CHILD_RESTARTING;
  if (!c->retry) {
    c->retry = true;
    st->nretry++;
  }
}

/* Restart children v[from..n) after `failed` exited: stop the running ones
 * in reverse start order, drop temporary ones, start the rest in order. */
static void restart_group(struct arbor__sup *st, size_t from)
{
  size_t i, k;

  for (i = st->n; i-- > from;)
    stop_child(st, st->v[i]);
  for (i = k = from; i < st->n; i++) {
    struct child *c = st->v[i];

    if (c->spec->restart == ARBOR_TEMPORARY) {
      if (c->retry) {
        c->retry = false;
        st->nretry--;
      }
      free_record(c);
    } else {
      /* The whole group restarts now; a retry is marked again below for
       * the one child whose start fails, if any. */
      if (c->retry) {
        c->retry = false;
        st->nretry--;
      }
      c->state = ARBOR_CHILD_RESTARTING;
      st->v[k++] = c;
    }
  }
  st->n = k;
  for (i = from; i < st->n; i++) {
    struct child *c = st->v[i];

    switch (start_one(st, c, true, NULL)) {
    case START_OK:
      break;
    case START_FAILED:
      /* OTP's try_again: the group is restarted again from this child
       * later, and that counts as a restart.  The rest wait, RESTARTING. */
      mark_retry(st, c);
      return;
    default:
      return;
    }
  }
}

/* c has exited (or failed to restart) and is to be restarted. */
static void restart(struct arbor__sup *st, struct child *c, int reason)
{
  if (!restart_allowed(st)) {
    emit(st, ARBOR_EV_INTENSITY_EXCEEDED, c, 0, reason);
    begin_stop(st, ARBOR_REASON_SHUTDOWN);
    return;
  }
  switch (st->spec->strategy) {
  case ARBOR_ONE_FOR_ALL:
    restart_group(st, 0);
    break;
  case ARBOR_REST_FOR_ONE:
    restart_group(st, index_of(st, c));
    break;
  default:
    if (start_one(st, c, true, NULL) == START_OK) {
      if (c->retry) {
        c->retry = false;
        st->nretry--;
      }
    } else if (!st->stopping) {
      mark_retry(st, c);
    }
    break;
  }
}

/* OTP's auto_shutdown, after significant child c ended and stays ended. */
static void auto_shutdown(struct arbor__sup *st)
{
  if (st->spec->auto_shutdown == ARBOR_AUTO_ALL_SIGNIFICANT) {
    for (size_t i = 0; i < st->n; i++) {
      const struct child *c = st->v[i];

      if (c->spec->significant &&
          (c->pid != 0 || c->state == ARBOR_CHILD_RESTARTING))
        return;
    }
  } else if (st->spec->auto_shutdown != ARBOR_AUTO_ANY_SIGNIFICANT) {
    return;
  }
  begin_stop(st, ARBOR_REASON_SHUTDOWN);
}

/* A child ended on its own. */
static void child_exited(struct arbor__sup *st, struct child *c, int reason)
{
  arbor_pid pid = c->pid;
  bool significant;

  ht_del(st, c);
  c->pid = 0;
  emit(st, ARBOR_EV_CHILD_EXITED, c, pid, reason);
  if (should_restart(c, reason)) {
    c->state = ARBOR_CHILD_RESTARTING;
    restart(st, c, reason);
    return;
  }
  c->state = ARBOR_CHILD_UNDEFINED;
  significant = c->spec->significant;
  if (c->spec->restart == ARBOR_TEMPORARY)
    remove_child(st, c);
  if (significant)
    auto_shutdown(st);
}

/* Try again the restarts that failed (the mailbox is empty). */
static void retry_restarts(struct arbor__sup *st)
{
  for (size_t i = 0; i < st->n && !st->stopping; i++) {
    struct child *c = st->v[i];

    if (c->retry) {
      restart(st, c, 0);
      return; /* the table may have changed: one at a time */
    }
  }
}

/* ---- management operations (called by sup_call.c in the main loop) ------- */

static void info_of(const struct child *c, arbor_child_info *out)
{
  memset(out, 0, sizeof(*out));
  memcpy(out->id, c->spec->id, sizeof(out->id));
  out->pid = c->pid;
  out->state = c->pid != 0                            ? ARBOR_CHILD_RUNNING
               : c->state == ARBOR_CHILD_RESTARTING ? ARBOR_CHILD_RESTARTING
                                                      : ARBOR_CHILD_UNDEFINED;
  out->type = c->spec->type;
  out->restart = c->spec->restart;
  out->shutdown_ms = c->spec->shutdown_ms;
  out->significant = c->spec->significant;
  out->restarts = c->restarts;
}

int arbor__sup_op_start_child(struct arbor__sup *st, struct arbor__sup_tree *t,
                              arbor_pid *pid, arbor_sup_error *err)
{
  struct child *c;
  int r;

  if (find_id(st, t->child->id) != NULL) {
    arbor__sup_tree_free(t);
    return ARBOR_EEXIST;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL || reserve(st, st->n + 1) < 0) {
    free(c);
    arbor__sup_tree_free(t);
    return ARBOR_ENOMEM;
  }
  c->spec = t->child;
  c->own = t;
  c->state = ARBOR_CHILD_UNDEFINED;
  st->v[st->n++] = c;
  r = start_one(st, c, false, err);
  if (r == START_OK) {
    *pid = c->pid;
    return 0;
  }
  remove_child(st, c);
  return r == START_FAILED ? ARBOR_ESTART : ARBOR_ESRCH;
}

int arbor__sup_op_terminate(struct arbor__sup *st, const char *id)
{
  struct child *c = find_id(st, id);

  if (c == NULL)
    return ARBOR_ENOENT;
  stop_child(st, c);
  if (c->retry) {
    c->retry = false;
    st->nretry--;
  }
  c->state = ARBOR_CHILD_UNDEFINED;
  if (c->spec->restart == ARBOR_TEMPORARY)
    remove_child(st, c);
  return 0;
}

int arbor__sup_op_restart(struct arbor__sup *st, const char *id,
                          arbor_pid *pid, arbor_sup_error *err)
{
  struct child *c = find_id(st, id);
  int r;

  if (c == NULL)
    return ARBOR_ENOENT;
  if (c->pid != 0 || c->state == ARBOR_CHILD_RESTARTING)
    return ARBOR_EBUSY;
  r = start_one(st, c, false, err);
  if (r == START_OK) {
    *pid = c->pid;
    return 0;
  }
  return r == START_FAILED ? ARBOR_ESTART : ARBOR_ESRCH;
}

int arbor__sup_op_delete(struct arbor__sup *st, const char *id)
{
  struct child *c = find_id(st, id);

  if (c == NULL)
    return ARBOR_ENOENT;
  if (c->pid != 0 || c->state == ARBOR_CHILD_RESTARTING)
    return ARBOR_EBUSY;
  remove_child(st, c);
  return 0;
}

int arbor__sup_op_which(struct arbor__sup *st, arbor_child_info *out,
                        size_t cap)
{
  for (size_t i = 0; i < st->n && i < cap; i++)
    info_of(st->v[i], &out[i]);
  return st->n > INT32_MAX ? INT32_MAX : (int)st->n;
}

int arbor__sup_op_count(struct arbor__sup *st, arbor_child_counts *out)
{
  arbor_child_counts k = {0, 0, 0, 0};

  for (size_t i = 0; i < st->n; i++) {
    const struct child *c = st->v[i];

    k.specs++;
    k.active += c->pid != 0;
    if (c->spec->type == ARBOR_SUPERVISOR)
      k.supervisors++;
    else
      k.workers++;
  }
  *out = k;
  return 0;
}

int arbor__sup_op_get(struct arbor__sup *st, const char *id,
                      arbor_child_info *out)
{
  const struct child *c = find_id(st, id);

  if (c == NULL)
    return ARBOR_ENOENT;
  info_of(c, out);
  return 0;
}

void arbor__sup_op_stop(struct arbor__sup *st)
{
  begin_stop(st, STOP_REASON);
}

/* ---- the supervisor process ------------------------------------------------ */

/* The defer: whatever way the supervisor ends, its children are gone
 * before it is (a kill or the runtime's shutdown interrupts the body, but
 * not this: a process running its defers is not interrupted again). */
static void sup_cleanup(void *arg)
{
  struct arbor__sup *st = arg;
  struct arbor__proc *self = st->self;
  bool running = st->starting != 0;

  for (size_t i = 0; i < st->n && !running; i++)
    running = st->v[i]->pid != 0;
  if (running) {
    /* Relaxed: the exit path that brought us here read it with acquire on
     * this same thread (arbor__proc_checkpoint_slow()). */
    uint64_t k = atomic_load_explicit(&self->kill, memory_order_relaxed);
    int reason = k != 0 ? (int)(uint32_t)k : ARBOR_REASON_SHUTDOWN;

    emit(st, ARBOR_EV_SHUTDOWN_BEGUN, NULL, 0, reason);
    if (st->starting != 0)
      (void)stop_pid(st->starting, st->starting_spec);
    stop_all(st);
    emit(st, ARBOR_EV_SHUTDOWN_FINISHED, NULL, 0, reason);
  }
  if (st->boot != NULL)
    arbor__sup_req_release(st->boot); /* the starter sees us exit */
  if (st->store != NULL) {
    /* Clear the field before dropping its reference (sup_store.c). */
    arbor__proc_lock(self);
    self->store = NULL;
    arbor__proc_unlock(self);
    arbor__store_unref(st->store);
  }
  self->sup_state = NULL;
  for (size_t i = 0; i < st->n; i++)
    free_record(st->v[i]);
  free(st->statics);
  free(st->v);
  free(st->ht);
  free(st->win);
  arbor__sup_tree_free(st->tree);
  free(st);
}

static int match_boot(const arbor_msg *m, void *arg)
{
  (void)arg;
  return arbor__sup_call_is_boot(m);
}

/* Report the end of our static start to whoever started us. */
static void report_start(struct arbor__sup *st, int rc,
                         const arbor_sup_error *err)
{
  if (st->boot != NULL) {
    struct arbor__sup_req *r = st->boot;

    st->boot = NULL;
    /* A failed root exits: unlink a starting process first, so that our
     * exit does not take it down (it learns of the failure by the reply). */
    if (rc != 0 && st->parent != 0)
      (void)arbor_unlink(st->parent);
    arbor__sup_boot_reply(r, rc, err);
  } else if (rc == 0) {
    post_sys(st->rt, st->parent, ARBOR__TAG_INIT_ACK, 0, NULL, 0);
  } else if (err != NULL) {
    /* Which child of ours failed, for our parent's error. */
    post_sys(st->rt, st->parent, ARBOR__TAG_INIT_ACK,
             err->reason != 0 ? err->reason : ARBOR_ESTART, err->id,
             strlen(err->id) + 1);
  } else {
    post_sys(st->rt, st->parent, ARBOR__TAG_INIT_ACK, rc, NULL, 0);
  }
}

/* Allocate the state and the tables for `spec`; NULL if out of memory. */
static struct arbor__sup *sup_new(struct arbor__proc *self,
                                  const struct sspec *spec)
{
  struct arbor__sup *st = calloc(1, sizeof(*st));

  if (st == NULL)
    return NULL;
  st->rt = self->rt;
  st->self = self;
  st->pid = atomic_load_explicit(&self->pid, memory_order_relaxed); /* ours */
  st->spec = spec;
  st->wcap = 4;
  st->win = malloc(st->wcap * sizeof(*st->win));
  st->statics = calloc(spec->nchildren > 0 ? spec->nchildren : 1,
                       sizeof(*st->statics));
  if (st->win == NULL || st->statics == NULL ||
      reserve(st, spec->nchildren > 0 ? spec->nchildren : 1) < 0) {
    free(st->win);
    free(st->statics);
    free(st->v);
    free(st->ht);
    free(st);
    return NULL;
  }
  return st;
}

int arbor__sup_body(void *arg)
{
  struct arbor__proc *self = arbor__proc_current();
  const struct sspec *spec = arg;
  struct arbor__sup_req *boot = NULL;
  struct arbor__sup *st;
  arbor_pid parent = self->sup;
  arbor_sup_error err;
  arbor_msg m;
  int reason;

  if (spec == NULL) {
    /* A root: its spec comes in the start request, which owns the copy
     * (and frees it if we never get this far) until we take it.  Nothing
     * between the take and arbor_defer() can end this process. */
    struct arbor__sup_tree *t;

    while (arbor_recv_match(&m, match_boot, NULL, -1) != 0)
      ;
    boot = arbor__sup_boot_hold(&m, &parent);
    t = arbor__sup_boot_take(boot);
    st = sup_new(self, t->sup);
    if (st == NULL) {
      arbor__sup_tree_free(t);
      arbor__sup_boot_reply(boot, ARBOR_ENOMEM, NULL);
      return ARBOR_ENOMEM;
    }
    st->tree = t;
    st->boot = boot;
    spec = t->sup;
  } else {
    st = sup_new(self, spec);
    if (st == NULL) {
      post_sys(self->rt, parent, ARBOR__TAG_INIT_ACK, ARBOR_ENOMEM, NULL, 0);
      return ARBOR_ENOMEM;
    }
  }
  st->parent = parent;
  /* The first defer is stored inline, so this does not fail in practice. */
  if (arbor_defer(sup_cleanup, st) < 0) {
    sup_cleanup(st);
    return ARBOR_ENOMEM;
  }
  (void)arbor_trap_exit(1);
  self->sup_state = st;
  if (spec->store != NULL) {
    arbor__store_ref(spec->store);
    st->store = spec->store;
    arbor__proc_lock(self);
    self->store = spec->store;
    arbor__proc_unlock(self);
  }

  for (size_t i = 0; i < spec->nchildren; i++) {
    struct child *c = &st->statics[i];
    int r;

    c->spec = &spec->children[i];
    c->state = ARBOR_CHILD_UNDEFINED;
    st->v[st->n++] = c;
    r = start_one(st, c, false, &err);
    if (r != START_OK) {
      /* Roll back in reverse order, then fail (OTP: the supervisor's start
       * fails and it exits with reason shutdown). */
      stop_all(st);
      if (r == START_ABORTED) {
        /* Our parent, which stops us, expects no answer; a starter does. */
        memset(&err, 0, sizeof(err));
        err.child = (long)i;
        memcpy(err.id, c->spec->id, sizeof(err.id));
        err.reason = st->stop_reason;
        if (st->boot != NULL)
          report_start(st, ARBOR_ESTART, &err);
        return st->stop_reason;
      }
      report_start(st, ARBOR_ESTART, &err);
      return ARBOR_REASON_SHUTDOWN;
    }
  }
  report_start(st, 0, NULL);

  while (!st->stopping) {
    int e = arbor_recv(&m, st->nretry > 0 ? 0 : -1);

    if (e == ARBOR_ETIMEDOUT) {
      retry_restarts(st);
      continue;
    }
    if (e != 0)
      continue;
    if (m.tag == ARBOR_TAG_EXIT) {
      struct child *c;

      if (m.from == st->parent) {
        begin_stop(st, m.reason);
      } else if ((c = ht_find(st, m.from)) != NULL) {
        child_exited(st, c, m.reason);
      }
      /* Any other EXIT is from no current child: ignored. */
    } else if (m.tag == ARBOR__TAG_SUP_CALL) {
      arbor__sup_call_serve(st, &m);
    }
    /* Stale acks and anything sent with arbor_send() are dropped. */
  }
  reason = st->stop_reason;
  emit(st, ARBOR_EV_SHUTDOWN_BEGUN, NULL, 0, reason);
  stop_all(st);
  emit(st, ARBOR_EV_SHUTDOWN_FINISHED, NULL, 0, reason);
  return reason;
}

/* ---- arbor_init_ack --------------------------------------------------------- */

int arbor_init_ack(int reason)
{
  struct arbor__proc *p = arbor__proc_current();

  if (p == NULL)
    return ARBOR_ENOTPROC;
  /* Only a worker started by a supervisor, and only once: its supervisor
   * waits for exactly one ack (or its exit) right after spawning it.
   * Relaxed: only the process itself reads or writes this bit. */
  if (p->sup == 0 || p->fn == arbor__sup_body ||
      (atomic_fetch_or_explicit(&p->flags, ARBOR__P_ACKED,
                                memory_order_relaxed) &
       ARBOR__P_ACKED))
    return 0;
  post_sys(p->rt, p->sup, ARBOR__TAG_INIT_ACK, reason, NULL, 0);
  return 0;
}
