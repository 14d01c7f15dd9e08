/* runtime/sup_call.c -- supervisor management calls: spec validation, the
 * requests a caller sends a supervisor process and the replies it waits
 * for, and the public entry points (arbor_sup_start() and the rest).
 *
 * A request is a heap object sent as an owned ARBOR__TAG_SUP_CALL message.
 * It is reference-counted: the message holds one reference, dropped by the
 * envelope's free function however the envelope goes (received and done
 * with, dropped because the supervisor had exited, or freed with its
 * mailbox at exit); the supervisor takes one while it works on the request
 * (it receives other messages meanwhile, which frees the envelope); a
 * thread caller holds one while it waits.  A spec copy travelling in a
 * request (start, start_child) is freed with it unless the supervisor took
 * it, so nothing leaks if the supervisor never gets to it.
 *
 * Waiting, without polling:
 *  - A caller that is a process of the supervisor's runtime monitors the
 *    supervisor and waits, by selective receive, for the reply (tagged
 *    ARBOR__TAG_SUP_REPLY, carrying the monitor's reference and the result
 *    by value) or for the DOWN: ARBOR_ESRCH.  Results never point into the
 *    caller's memory, since a caller can be killed while it waits.
 *  - Any other thread holds a reference on the supervisor's process record
 *    and waits on the runtime's join_cv for the request's `done` or for the
 *    record's EXITED flag.  The supervisor writes the result straight into
 *    the caller's variables (the caller is blocked until `done`) and sets
 *    `done` under join_lock; an exit broadcasts join_cv by itself whenever a
 *    reference other than the process's own is held (process.c), so a
 *    supervisor that dies before answering always wakes its callers.  This
 *    is the "future" of the design, with the runtime's mutex and condvar.
 *
 * A process that has been asked to end ends at its next runtime call.  For
 * these calls that is their first step (checkpoint()), before anything is
 * allocated; after it they make no runtime call that could end the caller
 * (arbor__monitor() does not check) until the request belongs to its
 * message, so a caller that is ended never leaves a request or a spec copy
 * behind.  (arbor_sup_dump() holds lists across several calls: a defer
 * frees them if it is ended in one; see sup_dump.c.)
 *
 * A call that could only wait forever fails at once with ARBOR_EDEADLK:
 * one made by the supervisor itself (an event sink runs in it), or by one
 * of its workers before its init ack (the supervisor is blocked on that).
 *
 * Stopping (arbor_sup_stop) is a request too, answered by the supervisor's
 * exit: the caller waits for the DOWN or for EXITED, without reaping a
 * joinable root.  Exit signals from processes other than a supervisor's
 * parent are ignored, as in OTP, so arbor_kill(sup, ARBOR_REASON_SHUTDOWN)
 * from a stranger is not a way to stop one.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/sup.h"

/* ---- validation ------------------------------------------------------------- */

/* Nesting deeper than this is refused: it also stops a spec that contains
 * itself. */
#define MAX_DEPTH 32

/* arbor_sup_error.field is a static string: one per field and per place
 * the spec can sit (a child: given to start_child, a supervisor's child, a
 * child of start_child's nested spec, deeper; a supervisor: the root,
 * start_child's nested spec, deeper). */
#define CHILD_FIELDS(X)                                                        \
  X(C_ID_NULL, "id: NULL")                                                     \
  X(C_ID_EMPTY, "id: empty")                                                   \
  X(C_ID_LONG, "id: too long")                                                 \
  X(C_ID_DUP, "id: duplicate")                                                 \
  X(C_START_NULL, "start: NULL for a worker")                                  \
  X(C_START_SUP, "start: set for a supervisor")                                \
  X(C_SUP_NULL, "sup: NULL for a supervisor")                                  \
  X(C_SUP_WORKER, "sup: set for a worker")                                     \
  X(C_SUP_DEEP, "sup: nested too deep (does a spec contain itself?)")          \
  X(C_RESTART, "restart: not an arbor_restart")                                \
  X(C_SHUTDOWN, "shutdown_ms: negative but not BRUTAL or INFINITY")            \
  X(C_TYPE, "type: not an arbor_child_type")                                   \
  X(C_SIGNIFICANT, "significant: a permanent child cannot be significant")     \
  X(C_STACK, "stack_size: out of range")
#define SUP_FIELDS(X)                                                          \
  X(S_NAME, "name: nothing left once sanitised")                               \
  X(S_NAME_LONG, "name: too long")                                             \
  X(S_STRATEGY, "strategy: not an arbor_strategy")                             \
  X(S_INTENSITY, "intensity: negative")                                        \
  X(S_PERIOD, "period_ms: negative")                                           \
  X(S_AUTO, "auto_shutdown: not an arbor_auto_shutdown")                       \
  X(S_CHILDREN, "children: NULL with nchildren > 0")

#define ENUM_(name, text) name,
enum { CHILD_FIELDS(ENUM_) NCHILD_FIELDS };
enum { SUP_FIELDS(ENUM_) NSUP_FIELDS };
#undef ENUM_
#define CTEXT_(name, text)                                                     \
  {text, "children[]." text, "sup->children[]." text,                          \
   "children[].sup->children[]." text},
#define STEXT_(name, text) {text, "sup->" text, "children[].sup->" text},
static const char *const child_field[NCHILD_FIELDS][4] = {
    CHILD_FIELDS(CTEXT_)};
static const char *const sup_field[NSUP_FIELDS][3] = {SUP_FIELDS(STEXT_)};
#undef CTEXT_
#undef STEXT_

struct where {
  int sup;   /* index into sup_field[][] */
  int child; /* index into child_field[][] for its children */
};

static int bad(arbor_sup_error *err, const char *field, long child)
{
  err->field = field;
  err->child = child;
  return ARBOR_EBADSPEC;
}

static bool has_name_char(const char *s)
{
  for (; *s != '\0'; s++)
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
        (*s >= '0' && *s <= '9'))
      return true;
  return false;
}

static int check_sup(const arbor_sup_spec *s, struct where at, int depth,
                     arbor_sup_error *err);

/* A child in context `ctx` (index into child_field[][]), index i or -1. */
static int check_child(const arbor_child_spec *c, int ctx, long i, int depth,
                       arbor_sup_error *err)
{
  size_t n;

  if (c->id == NULL)
    return bad(err, child_field[C_ID_NULL][ctx], i);
  n = strnlen(c->id, ARBOR_ID_MAX);
  if (n == 0)
    return bad(err, child_field[C_ID_EMPTY][ctx], i);
  if (n >= ARBOR_ID_MAX)
    return bad(err, child_field[C_ID_LONG][ctx], i);
  if (c->restart < ARBOR_PERMANENT || c->restart > ARBOR_TEMPORARY)
    return bad(err, child_field[C_RESTART][ctx], i);
  if (c->shutdown_ms < 0 && c->shutdown_ms != ARBOR_SHUTDOWN_BRUTAL &&
      c->shutdown_ms != ARBOR_SHUTDOWN_INFINITY)
    return bad(err, child_field[C_SHUTDOWN][ctx], i);
  if (c->significant && c->restart == ARBOR_PERMANENT)
    return bad(err, child_field[C_SIGNIFICANT][ctx], i);
  if (c->stack_size != 0 &&
      (c->stack_size < ARBOR__STACK_MIN || c->stack_size > ARBOR__STACK_MAX))
    return bad(err, child_field[C_STACK][ctx], i);
  if (c->type == ARBOR_WORKER) {
    if (c->start == NULL)
      return bad(err, child_field[C_START_NULL][ctx], i);
    if (c->sup != NULL)
      return bad(err, child_field[C_SUP_WORKER][ctx], i);
    return 0;
  }
  if (c->type != ARBOR_SUPERVISOR)
    return bad(err, child_field[C_TYPE][ctx], i);
  if (c->start != NULL)
    return bad(err, child_field[C_START_SUP][ctx], i);
  if (c->sup == NULL)
    return bad(err, child_field[C_SUP_NULL][ctx], i);
  if (depth >= MAX_DEPTH)
    return bad(err, child_field[C_SUP_DEEP][ctx], i);
  /* The nested spec: from start_child's own spec it is "sup->", from
   * anywhere else "children[].sup->". */
  return check_sup(c->sup,
                   ctx == 0 ? (struct where){1, 2} : (struct where){2, 3},
                   depth + 1, err);
}

static int check_sup(const arbor_sup_spec *s, struct where at, int depth,
                     arbor_sup_error *err)
{
  int e;

  if (s->name != NULL) {
    if (strnlen(s->name, ARBOR_NAME_MAX) >= ARBOR_NAME_MAX)
      return bad(err, sup_field[S_NAME_LONG][at.sup], -1);
    if (!has_name_char(s->name))
      return bad(err, sup_field[S_NAME][at.sup], -1);
  }
  if (s->strategy < ARBOR_ONE_FOR_ONE || s->strategy > ARBOR_REST_FOR_ONE)
    return bad(err, sup_field[S_STRATEGY][at.sup], -1);
  if (s->intensity < 0)
    return bad(err, sup_field[S_INTENSITY][at.sup], -1);
  if (s->period_ms < 0)
    return bad(err, sup_field[S_PERIOD][at.sup], -1);
  if (s->auto_shutdown < ARBOR_AUTO_NEVER ||
      s->auto_shutdown > ARBOR_AUTO_ALL_SIGNIFICANT)
    return bad(err, sup_field[S_AUTO][at.sup], -1);
  if (s->nchildren > 0 && s->children == NULL)
    return bad(err, sup_field[S_CHILDREN][at.sup], -1);
  for (size_t i = 0; i < s->nchildren; i++) {
    e = check_child(&s->children[i], at.child, (long)i, depth, err);
    if (e < 0)
      return e;
    for (size_t j = 0; j < i; j++)
      if (strcmp(s->children[j].id, s->children[i].id) == 0)
        return bad(err, child_field[C_ID_DUP][at.child], (long)i);
  }
  return 0;
}

/* ---- requests ------------------------------------------------------------------ */

enum {
  OP_BOOT, /* a root's start: carries its spec, answered once it started */
  OP_STOP,
  OP_START_CHILD,
  OP_TERMINATE,
  OP_RESTART,
  OP_DELETE,
  OP_WHICH,
  OP_COUNT,
  OP_GET,
};

/* What a call returns.  Also the head of a reply message's body, which an
 * OP_WHICH reply follows with its entries. */
struct result {
  int rc;
  arbor_pid pid;
  arbor_sup_error err;
  arbor_child_counts counts;
  arbor_child_info info;
  size_t n; /* OP_WHICH: entries that follow in a reply message */
};

struct arbor__sup_req {
  /* Acq_rel decrements: the last holder sees every write of the others
   * (the supervisor's take of `tree`) before it frees. */
  _Atomic uint32_t refs;
  int op;
  char id[ARBOR_ID_MAX];
  size_t cap;                   /* OP_WHICH: entries wanted */
  struct arbor__sup_tree *tree; /* OP_BOOT, OP_START_CHILD, until taken */
  arbor_pid from;               /* a process to reply to; 0: a thread */
  uint64_t ref;                 /* its monitor of the supervisor */
  /* A thread caller's: where the result goes, and `done`, which is
   * written and read under rt->join_lock. */
  struct result *out;
  arbor_child_info *list;
  int done;
};

static struct arbor__sup_req *req_new(int op)
{
  struct arbor__sup_req *r = calloc(1, sizeof(*r));

  if (r != NULL) {
    atomic_init(&r->refs, 1);
    r->op = op;
  }
  return r;
}

static void req_hold(struct arbor__sup_req *r)
{
  /* Relaxed: the holder already has a reference (the envelope's), so the
   * count cannot reach 0 meanwhile; the release decrements order the rest. */
  atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void arbor__sup_req_release(struct arbor__sup_req *r)
{
  if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
    arbor__sup_tree_free(r->tree);
    free(r);
  }
}

static void req_msg_free(void *data)
{
  arbor__sup_req_release(data);
}

/* Hand e to pid `to`, or drop it (freeing it, so its free function runs)
 * if `to` has exited. */
static void post(arbor_rt *rt, int w, arbor_pid to, struct arbor__env *e)
{
  struct arbor__proc *p = arbor__proc_peek(rt, to);

  if (p == NULL) {
    arbor__env_free(rt, w, e);
    /* Relaxed: a statistic, as in message.c. */
    atomic_fetch_add_explicit(&rt->dropped, 1, memory_order_relaxed);
    return;
  }
  arbor__deliver(p, to, e, w);
}

/* Send r to the supervisor with the message's reference (the caller's
 * one).  0, or ARBOR_ENOMEM with r still the caller's. */
static int post_req(arbor_rt *rt, arbor_pid sup, struct arbor__sup_req *r)
{
  struct arbor__proc *self = arbor__proc_current();
  int w = arbor__worker_of(rt, self);
  struct arbor__env *e = arbor__env_new(rt, w, 0);

  if (e == NULL)
    return ARBOR_ENOMEM;
  e->tag = ARBOR__TAG_SUP_CALL;
  e->data = r;
  e->len = sizeof(*r);
  e->free_fn = req_msg_free;
  if (self != NULL && self->rt == rt) /* relaxed: our own pid */
    e->from = atomic_load_explicit(&self->pid, memory_order_relaxed);
  post(rt, w, sup, e);
  return 0;
}

/* From the supervisor: answer r with res (and, for OP_WHICH, the k entries
 * at v, which for a thread caller are already in its buffer). */
static void reply(struct arbor__sup_req *r, const struct result *res,
                  const arbor_child_info *v, size_t k)
{
  struct arbor__proc *self = arbor__proc_current();
  arbor_rt *rt = self->rt;
  struct arbor__env *e;
  int w = self->task.worker;

  if (r->from == 0) {
    *r->out = *res;
    pthread_mutex_lock(&rt->join_lock);
    r->done = 1;
    pthread_cond_broadcast(&rt->join_cv);
    pthread_mutex_unlock(&rt->join_lock);
    return;
  }
  e = arbor__env_new(rt, w, sizeof(*res) + k * sizeof(*v));
  if (e != NULL) {
    struct result *body = e->data;

    arbor__assert(body != NULL); /* the length is at least sizeof(*res) */
    *body = *res;
    body->n = k;
    if (k > 0)
      memcpy(body + 1, v, k * sizeof(*v));
  } else {
    /* A small answer instead; if even that cannot be had there is no one
     * to report to (as with signal.c's envelopes): abort. */
    e = arbor__env_new(rt, w, sizeof(*res));
    arbor__assert(e != NULL);
    memset(e->data, 0, sizeof(*res));
    ((struct result *)e->data)->rc = ARBOR_ENOMEM;
  }
  e->tag = ARBOR__TAG_SUP_REPLY;
  e->ref = r->ref;
  e->from = atomic_load_explicit(&self->pid, memory_order_relaxed); /* ours */
  post(rt, w, r->from, e);
}

/* OP_WHICH: the entries go straight into a thread caller's buffer, or into
 * a scratch array copied into the reply. */
static void serve_which(struct arbor__sup *st, struct arbor__sup_req *r)
{
  struct result res;
  arbor_child_info *v = r->list;
  size_t k;

  memset(&res, 0, sizeof(res));
  res.rc = arbor__sup_op_which(st, NULL, 0);
  k = (size_t)res.rc < r->cap ? (size_t)res.rc : r->cap;
  if (r->from != 0 && k > 0) {
    v = malloc(k * sizeof(*v));
    if (v == NULL) {
      res.rc = ARBOR_ENOMEM;
      k = 0;
    }
  }
  if (k > 0)
    (void)arbor__sup_op_which(st, v, k);
  reply(r, &res, v, k);
  if (r->from != 0)
    free(v);
}

void arbor__sup_call_serve(struct arbor__sup *st, const arbor_msg *m)
{
  /* The envelope is ours (we received it); the request lives on through
   * our reference even once the envelope is freed by a later receive. */
  struct arbor__sup_req *r = (struct arbor__sup_req *)(uintptr_t)m->data;
  struct arbor__sup_tree *t;
  struct result res;

  memset(&res, 0, sizeof(res));
  req_hold(r);
  switch (r->op) {
  case OP_STOP:
    arbor__sup_op_stop(st);
    arbor__sup_req_release(r);
    return; /* answered by our exit */
  case OP_WHICH:
    serve_which(st, r);
    arbor__sup_req_release(r);
    return;
  case OP_START_CHILD:
    t = r->tree;
    r->tree = NULL;
    res.rc = arbor__sup_op_start_child(st, t, &res.pid, &res.err);
    break;
  case OP_TERMINATE:
    res.rc = arbor__sup_op_terminate(st, r->id);
    break;
  case OP_RESTART:
    res.rc = arbor__sup_op_restart(st, r->id, &res.pid, &res.err);
    break;
  case OP_DELETE:
    res.rc = arbor__sup_op_delete(st, r->id);
    break;
  case OP_COUNT:
    res.rc = arbor__sup_op_count(st, &res.counts);
    break;
  case OP_GET:
    res.rc = arbor__sup_op_get(st, r->id, &res.info);
    break;
  default: /* a start request for a supervisor that has started */
    res.rc = ARBOR_EINVAL;
    break;
  }
  reply(r, &res, NULL, 0);
  arbor__sup_req_release(r);
}

bool arbor__sup_call_is_stop(const arbor_msg *m)
{
  return m->tag == ARBOR__TAG_SUP_CALL &&
         ((const struct arbor__sup_req *)m->data)->op == OP_STOP;
}

bool arbor__sup_call_is_boot(const arbor_msg *m)
{
  return m->tag == ARBOR__TAG_SUP_CALL &&
         ((const struct arbor__sup_req *)m->data)->op == OP_BOOT;
}

struct arbor__sup_req *arbor__sup_boot_hold(const arbor_msg *m,
                                            arbor_pid *starter)
{
  struct arbor__sup_req *r = (struct arbor__sup_req *)(uintptr_t)m->data;

  req_hold(r);
  *starter = r->from;
  return r;
}

struct arbor__sup_tree *arbor__sup_boot_take(struct arbor__sup_req *r)
{
  struct arbor__sup_tree *t = r->tree;

  r->tree = NULL;
  return t;
}

void arbor__sup_boot_reply(struct arbor__sup_req *r, int rc,
                           const arbor_sup_error *err)
{
  struct result res;

  memset(&res, 0, sizeof(res));
  res.rc = rc;
  if (err != NULL)
    res.err = *err;
  reply(r, &res, NULL, 0);
  arbor__sup_req_release(r);
}

/* ---- the caller's side ---------------------------------------------------------- */

/* The live supervisor `sup`, with a reference the caller drops. */
static int lookup(arbor_pid sup, arbor_rt **rt, struct arbor__proc **p)
{
  int err;

  if (sup == 0)
    return ARBOR_EINVAL;
  *rt = arbor__rt_of_pid(sup);
  if (*rt == NULL)
    return ARBOR_ESRCH;
  err = arbor__proc_ref(*rt, sup, p);
  if (err < 0)
    return ARBOR_ESRCH;
  /* fn is set before the pid is published and never changes during an
   * incarnation; the acquire in arbor__proc_ref() makes it visible.  The
   * flags load is acquire like every EXITED check (pairs with the fetch_or
   * in the exit path), though here it is only a fast refusal. */
  if ((*p)->fn != arbor__sup_body ||
      (atomic_load_explicit(&(*p)->flags, memory_order_acquire) &
       ARBOR__P_EXITED)) {
    arbor__proc_unref(*p);
    return ARBOR_ESRCH;
  }
  return 0;
}

/* End the calling process here if it has been asked to end (see the top of
 * the file): the first step of every public call. */
static void checkpoint(void)
{
  struct arbor__proc *self = arbor__proc_current();

  if (self != NULL)
    arbor__proc_checkpoint(self);
}

/* Whether the calling process would wait for supervisor p forever: p is
 * itself, or p is waiting for our init ack (we are its worker and have not
 * acked yet).  ACKED is only written by ourselves: relaxed. */
static bool would_deadlock(const struct arbor__proc *self,
                           const struct arbor__proc *p, arbor_pid sup)
{
  return p == self ||
         (self->sup == sup && self->fn != arbor__sup_body &&
          !(atomic_load_explicit(&self->flags, memory_order_relaxed) &
            ARBOR__P_ACKED));
}

struct reply_wait {
  uint64_t ref;
};

static int match_reply(const arbor_msg *m, void *arg)
{
  const struct reply_wait *w = arg;

  return (m->tag == ARBOR__TAG_SUP_REPLY || m->tag == ARBOR_TAG_DOWN) &&
         m->ref == w->ref;
}

/* A process caller: monitor, send, wait for the reply or the DOWN.
 * Consumes r. */
static int call_proc(struct arbor__proc *self, arbor_rt *rt, arbor_pid sup,
                     struct arbor__sup_req *r, struct result *res,
                     arbor_child_info *list)
{
  struct reply_wait w;
  const struct result *body;
  arbor_msg m;
  int err;

  err = arbor__monitor(self, sup, &w.ref);
  if (err < 0) {
    arbor__sup_req_release(r);
    return err;
  }
  r->from = arbor_self();
  r->ref = w.ref;
  err = post_req(rt, sup, r);
  if (err < 0) {
    (void)arbor_demonitor(w.ref);
    arbor__sup_req_release(r);
    return err;
  }
  while (arbor_recv_match(&m, match_reply, &w, -1) != 0)
    ;
  if (m.tag == ARBOR_TAG_DOWN)
    return ARBOR_ESRCH;
  body = m.data;
  *res = *body;
  if (list != NULL && body->n > 0)
    memcpy(list, body + 1, body->n * sizeof(*list));
  (void)arbor_demonitor(w.ref);
  return res->rc;
}

/* A thread caller (see the top of the file).  Consumes r and the reference
 * on p. */
static int call_thread(arbor_rt *rt, struct arbor__proc *p, arbor_pid sup,
                       struct arbor__sup_req *r, struct result *res,
                       arbor_child_info *list)
{
  int done;

  if (arbor__sched_self() == &rt->sched) {
    /* A worker thread of rt outside any process (an event sink): the
     * supervisor may need this very worker to answer. */
    arbor__proc_unref(p);
    arbor__sup_req_release(r);
    return ARBOR_EDEADLK;
  }
  r->out = res;
  r->list = list;
  /* Relaxed: nobody else sees r before the send, whose CAS publishes it
   * (release, paired with the supervisor's fetch in the mailbox). */
  atomic_store_explicit(&r->refs, 2, memory_order_relaxed);
  if (post_req(rt, sup, r) < 0) {
    atomic_store_explicit(&r->refs, 1, memory_order_relaxed);
    arbor__proc_unref(p);
    arbor__sup_req_release(r);
    return ARBOR_ENOMEM;
  }
  pthread_mutex_lock(&rt->join_lock);
  /* Acquire: pairs with the fetch_or of EXITED in the exit path. */
  while (!r->done && !(atomic_load_explicit(&p->flags, memory_order_acquire) &
                       ARBOR__P_EXITED))
    pthread_cond_wait(&rt->join_cv, &rt->join_lock);
  done = r->done;
  pthread_mutex_unlock(&rt->join_lock);
  arbor__proc_unref(p);
  arbor__sup_req_release(r);
  return done ? res->rc : ARBOR_ESRCH;
}

/* Ask supervisor `sup` (consumes r); the answer goes to *res, and for
 * OP_WHICH up to r->cap entries to list. */
static int call(arbor_pid sup, struct arbor__sup_req *r, struct result *res,
                arbor_child_info *list)
{
  struct arbor__proc *self = arbor__proc_current(), *p;
  arbor_rt *rt;
  int err = lookup(sup, &rt, &p);

  if (err < 0) {
    arbor__sup_req_release(r);
    return err;
  }
  if (self != NULL && self->rt == rt) {
    bool stuck = would_deadlock(self, p, sup);

    arbor__proc_unref(p);
    if (stuck) {
      arbor__sup_req_release(r);
      return ARBOR_EDEADLK;
    }
    return call_proc(self, rt, sup, r, res, list);
  }
  /* A thread, or a process of another runtime (it blocks its worker). */
  return call_thread(rt, p, sup, r, res, list);
}

/* A request naming a child by id. */
static int call_id(arbor_pid sup, int op, const char *id, struct result *res)
{
  struct arbor__sup_req *r;
  size_t n;

  checkpoint();
  if (id == NULL)
    return ARBOR_EINVAL;
  n = strnlen(id, ARBOR_ID_MAX);
  if (n == 0 || n >= ARBOR_ID_MAX) {
    struct arbor__proc *p;
    arbor_rt *rt;
    int err = lookup(sup, &rt, &p); /* a dead supervisor still says so */

    if (err < 0)
      return err;
    arbor__proc_unref(p);
    return ARBOR_ENOENT;
  }
  r = req_new(op);
  if (r == NULL)
    return ARBOR_ENOMEM;
  memcpy(r->id, id, n + 1);
  return call(sup, r, res, NULL);
}

/* ---- the public calls ------------------------------------------------------------ */

/* The start request for spec: its copy travels in it.  0 or ENOMEM. */
static int boot_request(const arbor_sup_spec *spec, struct arbor__sup_req **out)
{
  struct arbor__sup_tree *t;
  struct arbor__sup_req *r;
  int rc = arbor__sup_tree_copy(spec, &t);

  if (rc < 0)
    return rc;
  r = req_new(OP_BOOT);
  if (r == NULL) {
    arbor__sup_tree_free(t);
    return ARBOR_ENOMEM;
  }
  r->tree = t;
  *out = r;
  return 0;
}

int arbor_sup_start(arbor_rt *rt, const arbor_sup_spec *spec, arbor_pid *pid,
                    arbor_sup_error *err)
{
  struct arbor__proc *self = arbor__proc_current(), *p;
  arbor_sup_error e = {NULL, -1, "", 0};
  struct arbor__sup_req *r;
  struct result res;
  arbor_pid spid;
  int rc;

  checkpoint();
  if (rt == NULL)
    rt = self != NULL ? self->rt : NULL;
  if (rt == NULL || spec == NULL)
    return ARBOR_EINVAL;
  rc = check_sup(spec, (struct where){0, 1}, 0, &e);
  if (rc < 0) {
    if (err != NULL)
      *err = e;
    return rc;
  }
  memset(&res, 0, sizeof(res));

  if (self != NULL && self->rt == rt) {
    /* Linked to the caller, and monitored for the wait.  The spawn comes
     * before the request exists: it may end the caller (see the top of
     * the file), and nothing from here to the post can. */
    struct reply_wait w;
    arbor_msg m;

    rc = arbor__spawn_ex(rt, &spid, arbor__sup_body, NULL,
                         &(arbor_spawn_opts){.name = spec->name,
                                             .flags = ARBOR_SPAWN_LINK |
                                                      ARBOR_SPAWN_MONITOR,
                                             .monitor_ref = &w.ref},
                         0);
    if (rc < 0)
      return rc;
    rc = boot_request(spec, &r);
    if (rc == 0) {
      r->from = arbor_self();
      r->ref = w.ref;
      rc = post_req(rt, spid, r);
      if (rc < 0)
        arbor__sup_req_release(r);
    }
    if (rc < 0) {
      /* The root waits for a request that cannot come: end it. */
      (void)arbor_unlink(spid);
      (void)arbor_demonitor(w.ref);
      (void)arbor_kill(spid, ARBOR_REASON_KILL);
      return ARBOR_ENOMEM;
    }
    while (arbor_recv_match(&m, match_reply, &w, -1) != 0)
      ;
    if (m.tag == ARBOR_TAG_DOWN) {
      res.rc = ARBOR_ESTART;
      res.err.child = -1;
      res.err.reason = m.reason;
    } else {
      res = *(const struct result *)m.data;
    }
    (void)arbor_demonitor(w.ref);
  } else {
    /* A root for the embedding program: joinable, waited for as in
     * call_thread(). */
    if (arbor__sched_self() == &rt->sched)
      return ARBOR_EDEADLK;
    rc = boot_request(spec, &r);
    if (rc < 0)
      return rc;
    rc = arbor__spawn_ex(
        rt, &spid, arbor__sup_body, NULL,
        &(arbor_spawn_opts){.name = spec->name, .flags = ARBOR_SPAWN_JOINABLE},
        0);
    if (rc < 0) {
      arbor__sup_req_release(r);
      return rc;
    }
    /* A joinable process stays until reaped: this cannot fail. */
    rc = arbor__proc_ref(rt, spid, &p);
    arbor__assert(rc == 0);
    rc = call_thread(rt, p, spid, r, &res, NULL);
    if (rc == ARBOR_ESRCH) {
      /* It exited without answering (killed, or the runtime stops). */
      res.rc = ARBOR_ESTART;
      res.err.child = -1;
      res.err.reason = ARBOR_ESRCH;
    }
    if (res.rc != 0) {
      int reason;

      /* Nobody else knows this pid: collect it. */
      if (arbor_wait(rt, spid, -1, &reason) == 0 && rc == ARBOR_ESRCH)
        res.err.reason = reason;
    }
  }
  /* Relaxed: only chooses which error to report. */
  if (res.rc == ARBOR_ESTART &&
      atomic_load_explicit(&rt->shutting_down, memory_order_relaxed))
    res.rc = ARBOR_ESHUTDOWN;
  if (res.rc == 0) {
    if (pid != NULL)
      *pid = spid;
  } else if (res.rc == ARBOR_ESTART && err != NULL) {
    *err = res.err;
    err->field = NULL;
  }
  return res.rc;
}

int arbor_sup_stop(arbor_pid sup, int64_t timeout_ms)
{
  struct arbor__proc *self = arbor__proc_current(), *p;
  struct arbor__sup_req *r;
  struct timespec deadline;
  arbor_rt *rt;
  int err;

  checkpoint(); /* before the lookup's reference and the request */
  err = lookup(sup, &rt, &p);
  if (err < 0)
    return err;
  r = req_new(OP_STOP);
  if (r == NULL) {
    arbor__proc_unref(p);
    return ARBOR_ENOMEM;
  }
  if (self != NULL && self->rt == rt) {
    bool stuck = would_deadlock(self, p, sup);
    uint64_t ref;
    arbor_msg m;

    arbor__proc_unref(p);
    if (stuck) {
      arbor__sup_req_release(r);
      return ARBOR_EDEADLK;
    }
    err = arbor__monitor(self, sup, &ref);
    if (err == 0)
      err = post_req(rt, sup, r);
    else
      ref = 0;
    if (err < 0) {
      if (ref != 0)
        (void)arbor_demonitor(ref);
      arbor__sup_req_release(r);
      return err;
    }
    err = arbor_recv_match(&m, match_reply, &(struct reply_wait){ref},
                           timeout_ms);
    if (err < 0)
      (void)arbor_demonitor(ref);
    return err;
  }
  if (arbor__sched_self() == &rt->sched) {
    arbor__proc_unref(p);
    arbor__sup_req_release(r);
    return ARBOR_EDEADLK;
  }
  if (post_req(rt, sup, r) < 0) {
    arbor__proc_unref(p);
    arbor__sup_req_release(r);
    return ARBOR_ENOMEM;
  }
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline); /* join_cv's clock */
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&rt->join_lock);
  /* Acquire: pairs with the fetch_or of EXITED in the exit path.  We hold
   * a reference, so that exit broadcasts join_cv. */
  while (!(atomic_load_explicit(&p->flags, memory_order_acquire) &
           ARBOR__P_EXITED)) {
    if (timeout_ms == 0 ||
        (timeout_ms > 0 && pthread_cond_timedwait(&rt->join_cv, &rt->join_lock,
                                                  &deadline) != 0 &&
         !(atomic_load_explicit(&p->flags, memory_order_acquire) &
           ARBOR__P_EXITED))) {
      err = ARBOR_ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait(&rt->join_cv, &rt->join_lock);
  }
  pthread_mutex_unlock(&rt->join_lock);
  arbor__proc_unref(p);
  return err;
}

int arbor_sup_start_child(arbor_pid sup, const arbor_child_spec *spec,
                          arbor_pid *child, arbor_sup_error *err)
{
  arbor_sup_error e = {NULL, -1, "", 0};
  struct arbor__sup_tree *t;
  struct arbor__sup_req *r;
  struct result res;
  int rc;

  checkpoint();
  if (spec == NULL)
    rc = bad(&e, "spec: NULL", -1);
  else
    rc = check_child(spec, 0, -1, 0, &e);
  if (rc < 0) {
    if (err != NULL)
      *err = e;
    return rc;
  }
  rc = arbor__sup_child_copy(spec, &t);
  if (rc < 0)
    return rc;
  r = req_new(OP_START_CHILD);
  if (r == NULL) {
    arbor__sup_tree_free(t);
    return ARBOR_ENOMEM;
  }
  r->tree = t;
  memset(&res, 0, sizeof(res));
  rc = call(sup, r, &res, NULL);
  if (rc == 0 && child != NULL)
    *child = res.pid;
  if (rc == ARBOR_ESTART && err != NULL)
    *err = res.err;
  return rc;
}

int arbor_sup_terminate_child(arbor_pid sup, const char *id)
{
  struct result res;

  return call_id(sup, OP_TERMINATE, id, &res);
}

int arbor_sup_restart_child(arbor_pid sup, const char *id, arbor_pid *child)
{
  struct result res;
  int rc = call_id(sup, OP_RESTART, id, &res);

  if (rc == 0 && child != NULL)
    *child = res.pid;
  return rc;
}

int arbor_sup_delete_child(arbor_pid sup, const char *id)
{
  struct result res;

  return call_id(sup, OP_DELETE, id, &res);
}

int arbor_sup_which_children(arbor_pid sup, arbor_child_info *out, size_t cap)
{
  struct arbor__sup_req *r;
  struct result res;

  checkpoint();
  if (out == NULL && cap > 0)
    return ARBOR_EINVAL;
  r = req_new(OP_WHICH);
  if (r == NULL)
    return ARBOR_ENOMEM;
  r->cap = cap;
  return call(sup, r, &res, out);
}

int arbor_sup_count_children(arbor_pid sup, arbor_child_counts *out)
{
  struct arbor__sup_req *r;
  struct result res;
  int rc;

  checkpoint();
  if (out == NULL)
    return ARBOR_EINVAL;
  r = req_new(OP_COUNT);
  if (r == NULL)
    return ARBOR_ENOMEM;
  rc = call(sup, r, &res, NULL);
  if (rc == 0)
    *out = res.counts;
  return rc;
}

int arbor_sup_get_childspec(arbor_pid sup, const char *id,
                            arbor_child_info *out)
{
  struct result res;
  int rc;

  if (out == NULL)
    return ARBOR_EINVAL;
  rc = call_id(sup, OP_GET, id, &res);
  if (rc == 0)
    *out = res.info;
  return rc;
}
