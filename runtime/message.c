/* runtime/message.c -- sending, receiving (plain, by tag, by predicate) and
 * sleeping.
 *
 * Blocking.  A receiver that finds nothing switches away
 * (arbor__sched_park()); then, off its stack, arbor__proc_park() swaps its
 * mailbox from EMPTY to BLOCKED (one CAS; if it fails, something arrived
 * and the receiver runs again) and only then checks its kill word and its
 * timer once more.  A sender whose push replaces BLOCKED wakes it; a killer
 * or the receive's timer writes its word and then tries to swap BLOCKED
 * back to EMPTY, and wakes it if that succeeds.  All of these are SeqCst on
 * the one mailbox word or in a store-then-CAS / CAS-then-load pattern, so
 * no wakeup is lost, and exactly one party wakes the receiver: a timer and
 * a message racing for the same wait resolve to one wake.  Since BLOCKED is
 * only ever set once the receiver is off its stack, whoever takes it back
 * can enqueue the receiver at once (arbor__sched_ready()).  A sleep does
 * the same with its `waiting` word.
 *
 * Exactly one enqueue per wait: each BLOCKED (or TIMER) is taken back by
 * exactly one party -- a waker, which enqueues, or the parking worker
 * itself, which requeues -- and a process runs again only after its wait
 * was taken back.  The parking worker may still be checking the kill word
 * after a waker has already woken the process, which may by then be
 * running, or waiting again, elsewhere; those checks read atomics of a
 * type-stable record, and a take-back that hits a later wait is that
 * wait's one take-back (the process is off its stack then too), so a late
 * check costs at most a spurious wake, which every wait tolerates.
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

static inline bool matches(const struct matcher *mt, const struct arbor__env *e)
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
static inline struct arbor__env *take(struct arbor__proc *p, const struct matcher *mt)
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
      fetched = true;
      /* Most looks find nothing new (a receive before it parks): spare
       * them the call.  EMPTY, BLOCKED and CLOSED are the three lowest
       * values. */
      if ((uintptr_t)atomic_load_explicit(&p->mbox.head,
                                          memory_order_relaxed) <=
          (uintptr_t)ARBOR__MB_CLOSED)
        return NULL;
      arbor__mailbox_fetch_sc(&p->mbox, &p->saved, &p->saved_tail);
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

/* park_arg (on the task's line, which the park touches anyway): what the
 * process waits for, and whether the wait has a timer.  Without one its
 * fired_seq cannot match, and the park reads no other line of the record
 * than the two a hop touches anyway. */
enum { PARK_MSG = 1, PARK_TIMER = 2, PARK_HAS_TIMER = 4 };

static bool stop_waiting(struct arbor__proc *p, uint32_t seq, bool has_timer)
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
         (has_timer &&
          atomic_load_explicit(&p->fired_seq, memory_order_seq_cst) == seq);
}

bool arbor__proc_park(struct arbor__task *t)
{
  struct arbor__proc *p = arbor__container_of(t, struct arbor__proc, task);
  /* Read while the process is surely off its stack and unclaimable: this
   * wait's kind and number. */
  uint32_t arg = t->park_arg;
  uint32_t seq = atomic_load_explicit(&p->wait_seq, memory_order_relaxed);
  bool has_timer = (arg & PARK_HAS_TIMER) != 0;

  if (arg & PARK_MSG) {
    /* Release (SeqCst) on success: publishes the switch away to whoever
     * takes BLOCKED back (a sender's push, a killer's or timer's unblock). */
    if (!arbor__mailbox_block_sc(&p->mbox))
      return false; /* something arrived: run it again */
    if (!stop_waiting(p, seq, has_timer))
      return true;
    /* A kill or the timer came first.  If we take BLOCKED back, it is ours
     * to run again; if not, a waker already has it. */
    return !arbor__mailbox_unblock(&p->mbox);
  }
  /* A sleep.  SeqCst: as the mailbox CAS above; pairs with the exchange of
   * a timer or killer in arbor__proc_wake_waiting() or timers.c. */
  atomic_store_explicit(&p->waiting, ARBOR__WAIT_TIMER, memory_order_seq_cst);
  if (!stop_waiting(p, seq, true))
    return true;
  return atomic_exchange_explicit(&p->waiting, ARBOR__WAIT_NONE,
                                  memory_order_acq_rel) == ARBOR__WAIT_NONE;
}

/* Wait for a message, the timer of wait p->wait_seq if `has_timer`, or a
 * kill, hibernated if `hib`.  Returns at once if one of those has already
 * happened. */
static void wait_msg(struct arbor__proc *p, bool hib, bool has_timer)
{
  p->task.park_arg = PARK_MSG | (has_timer ? PARK_HAS_TIMER : 0);
  if (hib)
    arbor__sched_hibernate();
  else
    arbor__sched_park();
  arbor__proc_checkpoint(p);
}

/* Wait for the timer of wait p->wait_seq or a kill (messages wait). */
static void wait_timer(struct arbor__proc *p)
{
  p->task.park_arg = PARK_TIMER | PARK_HAS_TIMER;
  arbor__sched_park();
  arbor__proc_checkpoint(p);
}

/* The start of a receive or a hibernation, after the checkpoint: the
 * envelope the last receive returned is done with, and a new wait gets its
 * own number, so that no earlier wait's fired timer counts for it. */
static inline uint32_t wait_begin(struct arbor__proc *p)
{
  uint32_t seq;

  if (p->current != NULL) {
    arbor__env_free(p->rt, p->task.worker, p->current);
    p->current = NULL;
  }
  seq = atomic_load_explicit(&p->wait_seq, memory_order_relaxed) + 1;
  atomic_store_explicit(&p->wait_seq, seq, memory_order_relaxed);
  return seq;
}

/* Inlined into each receive, so that a plain arbor_recv() is compiled
 * with the matcher known (it matches anything). */
static inline __attribute__((always_inline)) int
recv_core(arbor_msg *msg, const struct matcher *mt, int64_t timeout_ms)
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
  seq = wait_begin(p);
  for (;;) {
    e = take(p, mt);
    if (e != NULL)
      break;
    /* Only this wait's own timer can have fired for seq: without one, the
     * record's third line (fired_seq) stays out of the hop. */
    if (timeout_ms == 0 ||
        (timer != NULL &&
         atomic_load_explicit(&p->fired_seq, memory_order_acquire) == seq)) {
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
    wait_msg(p, false, timer != NULL);
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

/* Hibernation: a receive that waits with its stack released (see
 * arbor__sched_hibernate()), and takes nothing.  It waits for any message,
 * including one a selective receive passed over, as Erlang's hibernate
 * does; it frees the last received envelope first, so that a sleeping
 * process holds no more than its record and the live part of its stack. */
static int match_none(const arbor_msg *m, void *arg)
{
  (void)m;
  (void)arg;
  return 0;
}

int arbor_hibernate(void)
{
  static const struct matcher none = {2, 0, match_none, NULL};
  struct arbor__proc *p = arbor__proc_current();

  if (p == NULL)
    return ARBOR_ENOTPROC;
  arbor__proc_checkpoint(p);
  (void)wait_begin(p);
  for (;;) {
    /* Takes nothing: fetches what has arrived, and drops what was sent to
     * an earlier incarnation of the record, which must not wake us. */
    (void)take(p, &none);
    if (p->saved != NULL)
      break;
    wait_msg(p, true, false);
  }
  spend(p);
  return 0;
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
    wait_timer(p);
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
static inline void post(arbor_rt *rt, int w, arbor_pid to,
                        struct arbor__env *e)
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

static inline __attribute__((always_inline)) int
send_copy(arbor_pid to, uint32_t tag, const void *data, size_t len,
          arbor_rt *rt);

/* Copy a message body.  Most are a few words: copy those inline, with two
 * overlapping moves, instead of calling memcpy. */
static inline void copy_body(void *dst, const void *src, size_t len)
{
  char *d = dst;
  const char *s = src;

  if (len >= 8 && len <= 16) {
    uint64_t a, b;

    memcpy(&a, s, 8);
    memcpy(&b, s + len - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + len - 8, &b, 8);
  } else if (len >= 4 && len < 8) {
    uint32_t a, b;

    memcpy(&a, s, 4);
    memcpy(&b, s + len - 4, 4);
    memcpy(d, &a, 4);
    memcpy(d + len - 4, &b, 4);
  } else if (len > 0) {
    memcpy(d, s, len);
  }
}

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

static inline __attribute__((always_inline)) int
send_copy(arbor_pid to, uint32_t tag, const void *data, size_t len,
          arbor_rt *rt)
{
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__env *e;
  int w;

  arbor__stack_slot_prefetch(&rt->sched.stacks, arbor__pid_index(to));
  if (self != NULL)
    arbor__proc_checkpoint(self);
  w = arbor__worker_of(rt, self);
  e = arbor__env_new(rt, w, len);
  if (e == NULL)
    return ARBOR_ENOMEM;
  copy_body(e->data, data, len);
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
  /* A process asked to end ends here, only once the buffer is the
   * runtime's: a call that does not return cannot hand it back. */
  if (self != NULL)
    arbor__proc_checkpoint(self);
  sent(self);
  return 0;
}

int64_t arbor_rt_dropped(const arbor_rt *rt)
{
  if (rt == NULL)
    return ARBOR_EINVAL;
  return atomic_load_explicit(&rt->dropped, memory_order_relaxed);
}
