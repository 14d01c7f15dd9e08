/* runtime/message.c -- sending, receiving (plain, by tag, by predicate) and
 * sleeping.
 *
 * Blocking.  A receiver that finds nothing swaps its mailbox from EMPTY to
 * BLOCKED (one CAS; if it fails, something arrived) and only then checks
 * its kill word and its timer once more before it parks.  A sender whose
 * push replaces BLOCKED wakes it; a killer or the receive's timer writes
 * its word and then tries to swap BLOCKED back to EMPTY, and wakes it if
 * that succeeds.  All of these are SeqCst on the one mailbox word or in a
 * store-then-CAS / CAS-then-load pattern, so no wakeup is lost, and exactly
 * one party wakes the receiver: a timer and a message racing for the same
 * wait resolve to one wake.
 *
 * Selective receive leaves the messages it skips, in order, in the
 * process's private list (`saved`), which every receive looks at first, so
 * messages from one sender are always taken in the order they were sent.
 */
#include <string.h>

#include "runtime/rt.h"

void arbor__monitor_fired(struct arbor__proc *p, uint64_t ref);

struct matcher {
  int kind; /* 0 any, 1 by tag, 2 by predicate */
  uint32_t tag;
  arbor_match_fn fn;
  void *arg;
};

static void view(const struct arbor__env *e, arbor_msg *m)
{
  m->tag = e->tag;
  m->reason = e->reason;
  m->from = e->from;
  m->ref = e->ref;
  m->data = e->len > 0 ? e->data : NULL;
  m->len = e->len;
}

static bool matches(const struct matcher *mt, const struct arbor__env *e)
{
  arbor_msg m;

  switch (mt->kind) {
  case 0:
    return true;
  case 1:
    return e->tag == mt->tag;
  default:
    view(e, &m);
    return mt->fn(&m, mt->arg) != 0;
  }
}

/* The first matching message addressed to this incarnation: look through
 * the private list, fetching what has arrived when it runs out. */
static struct arbor__env *take(struct arbor__proc *p, const struct matcher *mt)
{
  arbor_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
  struct arbor__env *e, *prev = NULL;
  bool fetched = false;

  for (;;) {
    e = prev != NULL ? atomic_load_explicit(&prev->next, memory_order_relaxed)
                     : p->saved;
    if (e == NULL) {
      if (fetched)
        return NULL;
      arbor__mailbox_fetch_sc(&p->mbox, &p->saved, &p->saved_tail);
      fetched = true;
      continue;
    }
    if (e->to != self || matches(mt, e)) {
      struct arbor__env *next =
          atomic_load_explicit(&e->next, memory_order_relaxed);

      if (prev != NULL)
        atomic_store_explicit(&prev->next, next, memory_order_relaxed);
      else
        p->saved = next;
      if (p->saved_tail == e)
        p->saved_tail = prev;
      if (e->to == self)
        return e;
      /* Sent to an earlier incarnation of this record: not ours. */
      arbor__env_free(p->rt, p->task.worker, e);
      atomic_fetch_add_explicit(&p->rt->dropped, 1, memory_order_relaxed);
      continue;
    }
    prev = e;
  }
}

/* Spend one unit of the process's budget; yield when it is used up. */
static void spend(struct arbor__proc *p)
{
  if (arbor__unlikely(--p->task.budget == 0)) {
    arbor__sched_yield();
    arbor__proc_checkpoint(p);
  }
}

static bool stop_waiting(struct arbor__proc *p, uint32_t seq)
{
  /* A process running its defers is already ending: kills and shutdown no
   * longer interrupt it, so a defer may still wait for messages. */
  bool ending = atomic_load_explicit(&p->flags, memory_order_relaxed) &
                ARBOR__P_EXITING;

  /* SeqCst loads: the second half of the handshakes described at the top
   * of this file. */
  return (!ending &&
          (atomic_load_explicit(&p->kill, memory_order_seq_cst) != 0 ||
           atomic_load_explicit(&p->rt->shutting_down,
                                memory_order_seq_cst))) ||
         atomic_load_explicit(&p->fired_seq, memory_order_seq_cst) == seq;
}

/* Wait for a message, the timer of wait `seq`, or a kill.  Returns at once
 * if one of those has already happened. */
static void wait_msg(struct arbor__proc *p, uint32_t seq)
{
  if (!arbor__mailbox_block_sc(&p->mbox))
    return; /* something arrived */
  if (!stop_waiting(p, seq))
    arbor__sched_block();
  /* Take BLOCKED back if nobody did (we did not park, or a spurious
   * return).  Usually the waker did: look before paying for a CAS. */
  if (atomic_load_explicit(&p->mbox.head, memory_order_relaxed) ==
      ARBOR__MB_BLOCKED)
    arbor__mailbox_unblock(&p->mbox);
  arbor__proc_checkpoint(p);
}

/* Wait for the timer of wait `seq` or a kill (messages wait). */
static void wait_timer(struct arbor__proc *p, uint32_t seq)
{
  /* SeqCst: as the mailbox CAS in wait_msg(). */
  atomic_store_explicit(&p->waiting, ARBOR__WAIT_TIMER, memory_order_seq_cst);
  if (!stop_waiting(p, seq))
    arbor__sched_block();
  if (atomic_load_explicit(&p->waiting, memory_order_relaxed) !=
      ARBOR__WAIT_NONE)
    atomic_exchange_explicit(&p->waiting, ARBOR__WAIT_NONE,
                             memory_order_acq_rel);
  arbor__proc_checkpoint(p);
}

static int recv_core(arbor_msg *msg, const struct matcher *mt,
                     int64_t timeout_ms)
{
  struct arbor__proc *p = arbor__proc_current();
  struct arbor__tentry *timer = NULL;
  struct arbor__env *e;
  uint32_t seq, tgen = 0;
  int err = 0, towner = -1;

  if (p == NULL)
    return ARBOR_ENOTPROC;
  if (msg == NULL)
    return ARBOR_EINVAL;
  arbor__proc_checkpoint(p);
  if (p->current != NULL) {
    arbor__env_free(p->rt, p->task.worker, p->current);
    p->current = NULL;
  }
  seq = atomic_load_explicit(&p->wait_seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&p->wait_seq, seq, memory_order_relaxed);
  for (;;) {
    e = take(p, mt);
    if (e != NULL)
      break;
    if (timeout_ms == 0 ||
        atomic_load_explicit(&p->fired_seq, memory_order_acquire) == seq) {
      err = ARBOR_ETIMEDOUT;
      break;
    }
    if (timeout_ms > 0 && timer == NULL) {
      timer = arbor__recv_timer_arm(
          p, seq, arbor__now_ms() + 1 + (uint64_t)timeout_ms, &tgen, &towner);
      if (timer == NULL) {
        err = ARBOR_ENOMEM;
        break;
      }
    }
    wait_msg(p, seq);
  }
  if (timer != NULL)
    arbor__recv_timer_disarm(p, timer, tgen, towner);
  if (err != 0)
    return err;
  p->current = e;
  view(e, msg);
  if (e->tag == ARBOR_TAG_DOWN)
    arbor__monitor_fired(p, e->ref);
  spend(p);
  return 0;
}

int arbor_recv(arbor_msg *msg, int64_t timeout_ms)
{
  struct matcher mt = {0, 0, NULL, NULL};

  return recv_core(msg, &mt, timeout_ms);
}

int arbor_recv_tag(arbor_msg *msg, uint32_t tag, int64_t timeout_ms)
{
  struct matcher mt = {1, tag, NULL, NULL};

  return recv_core(msg, &mt, timeout_ms);
}

int arbor_recv_match(arbor_msg *msg, arbor_match_fn match, void *arg,
                     int64_t timeout_ms)
{
  struct matcher mt = {2, 0, match, arg};

  if (match == NULL)
    return arbor__proc_current() != NULL ? ARBOR_EINVAL : ARBOR_ENOTPROC;
  return recv_core(msg, &mt, timeout_ms);
}

int arbor_sleep(int64_t ms)
{
  struct arbor__proc *p = arbor__proc_current();
  struct arbor__tentry *timer;
  uint32_t seq, tgen;
  int towner;

  if (p == NULL)
    return ARBOR_ENOTPROC;
  if (ms < 0)
    return ARBOR_EINVAL;
  arbor__proc_checkpoint(p);
  if (ms == 0)
    return arbor_yield();
  seq = atomic_load_explicit(&p->wait_seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&p->wait_seq, seq, memory_order_relaxed);
  timer = arbor__recv_timer_arm(p, seq, arbor__now_ms() + 1 + (uint64_t)ms,
                                &tgen, &towner);
  if (timer == NULL)
    return ARBOR_ENOMEM;
  while (atomic_load_explicit(&p->fired_seq, memory_order_acquire) != seq)
    wait_timer(p, seq);
  arbor__recv_timer_disarm(p, timer, tgen, towner);
  return 0;
}

/* ---- sending ------------------------------------------------------------------ */

static int check_send(arbor_pid to, uint32_t tag, const void *data,
                      size_t len, arbor_rt **rt)
{
  if (to == 0 || tag >= ARBOR_TAG_SYSTEM || (data == NULL && len > 0) ||
      len > ARBOR_MSG_MAX)
    return ARBOR_EINVAL;
  *rt = arbor__rt_of_pid(to);
  return *rt != NULL ? 0 : ARBOR_ESRCH;
}

/* Hand e to `to`, or drop it if `to` has exited.  No reference is taken:
 * see mailbox.c for why a stale lookup is harmless. */
static void post(arbor_rt *rt, int w, arbor_pid to, struct arbor__env *e)
{
  struct arbor__proc *p = arbor__proc_peek(rt, to);

  if (p == NULL) {
    arbor__env_free(rt, w, e);
    atomic_fetch_add_explicit(&rt->dropped, 1, memory_order_relaxed);
    return;
  }
  arbor__deliver(p, to, e, w);
}

static void sent(struct arbor__proc *self)
{
  if (self != NULL)
    spend(self);
}

static int send_copy(arbor_pid to, uint32_t tag, const void *data, size_t len,
                     arbor_rt *rt);

int arbor_send(arbor_pid to, uint32_t tag, const void *data, size_t len)
{
  arbor_rt *rt;
  int err = check_send(to, tag, data, len, &rt);

  if (err < 0)
    return err;
  return send_copy(to, tag, data, len, rt);
}

int arbor__send_sys(arbor_pid to, uint32_t tag, const void *data, size_t len)
{
  arbor_rt *rt;

  if (to == 0 || (data == NULL && len > 0) || len > ARBOR_MSG_MAX)
    return ARBOR_EINVAL;
  rt = arbor__rt_of_pid(to);
  if (rt == NULL)
    return ARBOR_ESRCH;
  return send_copy(to, tag, data, len, rt);
}

static int send_copy(arbor_pid to, uint32_t tag, const void *data, size_t len,
                     arbor_rt *rt)
{
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__env *e;
  int w;

  if (self != NULL)
    arbor__proc_checkpoint(self);
  w = arbor__worker_of(rt, self);
  e = arbor__env_new(rt, w, len);
  if (e == NULL)
    return ARBOR_ENOMEM;
  if (len > 0)
    memcpy(e->data, data, len);
  e->tag = tag;
  e->from =
      self != NULL ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
  post(rt, w, to, e);
  sent(self);
  return 0;
}

int arbor_send_owned(arbor_pid to, uint32_t tag, void *data, size_t len,
                     void (*free_fn)(void *data))
{
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__env *e;
  arbor_rt *rt;
  int w, err;

  err = check_send(to, tag, data, len, &rt);
  if (err < 0)
    return err;
  if (data != NULL && free_fn == NULL)
    return ARBOR_EINVAL;
  if (self != NULL)
    arbor__proc_checkpoint(self);
  w = arbor__worker_of(rt, self);
  e = arbor__env_new(rt, w, 0);
  if (e == NULL)
    return ARBOR_ENOMEM;
  e->data = data;
  e->len = len;
  e->free_fn = data != NULL ? free_fn : NULL;
  e->tag = tag;
  e->from =
      self != NULL ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
  post(rt, w, to, e);
  sent(self);
  return 0;
}

int64_t arbor_rt_dropped(const arbor_rt *rt)
{
  if (rt == NULL)
    return ARBOR_EINVAL;
  return atomic_load_explicit(&rt->dropped, memory_order_relaxed);
}
