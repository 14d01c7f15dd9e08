/* runtime/signal.c -- links, monitors, exit signals and their delivery.
 *
 * Erlang's rules.  When a process exits with reason R:
 *  - each linked process gets an exit signal R: one that traps exits gets
 *    an ARBOR_TAG_EXIT message; otherwise a normal signal is ignored and any
 *    other ends it with R;
 *  - each monitoring process gets one ARBOR_TAG_DOWN message.
 * arbor_kill() sends a signal as if from the caller; ARBOR_REASON_KILL
 * cannot be trapped and ends the target with ARBOR_REASON_KILLED, which is
 * what its own links then see.
 *
 * Ending a process is cooperative: the first signal that ends it sets its
 * `kill` word (once) and wakes it if it waits in receive or sleep; it then
 * ends in that call, or at its next runtime call if it is running.
 *
 * Locking: each process has a spinlock over its link set, its monitors,
 * its registered name and its `dead` flag; it is held for a few
 * instructions and never while taking another, except link/unlink, which
 * take two in index order.  The exit path marks the process dead and moves
 * its sets out under its own lock, then visits each peer under the peer's
 * lock alone, so it can never be part of a cycle.  A link signal is
 * delivered while holding the peer's lock, and only if the peer still has
 * the link: an arbor_unlink() that returned first means no signal.  DOWN
 * messages are pushed while holding the exiting process's lock, so an
 * arbor_demonitor() either removes the monitor before (no DOWN) or finds the
 * DOWN already in its mailbox and removes it.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

/* ---- the small sets ------------------------------------ */

static int links_add(struct arbor__link_set *s, arbor_pid pid)
{
  for (uint32_t i = 0; i < s->n; i++)
    if (s->pids[i] == pid)
      return 0;
  if (s->n == s->cap) {
    uint32_t cap = s->cap != 0 ? s->cap * 2 : 4;
    arbor_pid *v = realloc(s->pids, cap * sizeof(*v));

    if (v == NULL)
      return ARBOR_ENOMEM;
    s->pids = v;
    s->cap = cap;
  }
  s->pids[s->n++] = pid;
  return 0;
}

static bool links_del(struct arbor__link_set *s, arbor_pid pid)
{
  for (uint32_t i = 0; i < s->n; i++) {
    if (s->pids[i] == pid) {
      s->pids[i] = s->pids[--s->n];
      return true;
    }
  }
  return false;
}

static int mons_add(struct arbor__mon_set *s, uint64_t ref, arbor_pid pid)
{
  if (s->n == s->cap) {
    uint32_t cap = s->cap != 0 ? s->cap * 2 : 4;
    struct arbor__mon *v = realloc(s->v, cap * sizeof(*v));

    if (v == NULL)
      return ARBOR_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (struct arbor__mon){ref, pid};
  return 0;
}

/* Remove the monitor `ref`; its pid goes to *pid.  Order is kept, so DOWN
 * messages go out in the order the monitors were made. */
static bool mons_del(struct arbor__mon_set *s, uint64_t ref, arbor_pid *pid)
{
  for (uint32_t i = 0; i < s->n; i++) {
    if (s->v[i].ref == ref) {
      if (pid != NULL)
        *pid = s->v[i].pid;
      memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
      s->n--;
      return true;
    }
  }
  return false;
}

/* ---- delivering signals --------------------------------------------------- */

void arbor__proc_wake_waiting(struct arbor__proc *p)
{
  /* Whoever takes a wait back wakes the process: a receive's BLOCKED tag
   * (a sender may take it too) or a sleep's `waiting` word.  SeqCst: pairs
   * with the process's CAS or store before it checks its kill word and
   * timer (message.c), so it either sees what we wrote or we see it wait. */
  if (arbor__mailbox_unblock(&p->mbox) ||
      atomic_exchange_explicit(&p->waiting, ARBOR__WAIT_NONE,
                               memory_order_seq_cst) != ARBOR__WAIT_NONE)
    arbor__sched_ready(&p->rt->sched, &p->task);
}

/* End p with reason (the first such signal wins). */
static void end_proc(struct arbor__proc *p, int reason)
{
  uint64_t expect = 0;

  /* SeqCst: pairs with the receiver's seq_cst store of `waiting` and load of
   * `kill` before it blocks (a Dekker handshake): it either sees the kill, or
   * we see it waiting and wake it. */
  if (atomic_compare_exchange_strong_explicit(
          &p->kill, &expect, ARBOR__KILLED_BIT | (uint32_t)reason,
          memory_order_seq_cst, memory_order_relaxed))
    arbor__proc_wake_waiting(p);
}

static struct arbor__env *system_env(arbor_rt *rt, uint32_t tag,
                                     arbor_pid from, int reason, uint64_t ref)
{
  struct arbor__env *e = arbor__env_new(rt, arbor__local_worker(rt), 0);

  /* No caller to report an allocation failure to (an exit path, a signal
   * from a dying process): the scheduler's rule is to abort. */
  arbor__assert(e != NULL);
  e->tag = tag;
  e->from = from;
  e->reason = reason;
  e->ref = ref;
  return e;
}

/* An exit signal `reason` from `from` reaches p.  `untrappable` only for
 * ARBOR_REASON_KILL sent by arbor_kill(). */
static void signal_exit(struct arbor__proc *p, arbor_pid from, int reason,
                        bool untrappable)
{
  if (untrappable) {
    end_proc(p, ARBOR_REASON_KILLED);
  } else if (atomic_load_explicit(&p->flags, memory_order_acquire) &
             ARBOR__P_TRAP) {
    arbor__deliver(p, atomic_load_explicit(&p->pid, memory_order_relaxed),
                   system_env(p->rt, ARBOR_TAG_EXIT, from, reason, 0),
                   arbor__local_worker(p->rt));
  } else if (reason != ARBOR_NORMAL) {
    end_proc(p, reason);
  }
}

/* ---- the exit path ------------------------------------------------------------ */

void arbor__proc_notify_exit(struct arbor__proc *p, int reason)
{
  arbor_rt *rt = p->rt;
  arbor_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
  struct arbor__link_set links;
  struct arbor__mon_set watching;
  char *name;

  arbor__proc_lock(p);
  p->dead = 1;
  links = p->links;
  p->links = (struct arbor__link_set){0};
  name = p->regname;
  p->regname = NULL;
  for (uint32_t i = 0; i < p->monitors.n; i++) {
    struct arbor__proc *w;

    if (arbor__proc_ref(rt, p->monitors.v[i].pid, &w) == 0) {
      arbor__deliver(w, p->monitors.v[i].pid,
                     system_env(rt, ARBOR_TAG_DOWN, self, reason,
                                p->monitors.v[i].ref),
                     arbor__local_worker(rt));
      arbor__proc_unref(w);
    }
  }
  p->monitors.n = 0;
  arbor__proc_unlock(p);

  for (uint32_t i = 0; i < links.n; i++) {
    struct arbor__proc *peer;

    if (arbor__proc_ref(rt, links.pids[i], &peer) != 0)
      continue;
    arbor__proc_lock(peer);
    if (links_del(&peer->links, self))
      signal_exit(peer, self, reason, false);
    arbor__proc_unlock(peer);
    arbor__proc_unref(peer);
  }
  free(links.pids);

  /* The monitors this process held on others go with it. */
  watching = p->watching;
  for (uint32_t i = 0; i < watching.n; i++) {
    struct arbor__proc *t;

    if (arbor__proc_ref(rt, watching.v[i].pid, &t) != 0)
      continue;
    arbor__proc_lock(t);
    mons_del(&t->monitors, watching.v[i].ref, NULL);
    arbor__proc_unlock(t);
    arbor__proc_unref(t);
  }
  p->watching.n = 0;

  if (name != NULL) {
    arbor__registry_drop(rt, name, self);
    free(name);
  }
}

void arbor__signals_fini(struct arbor__proc *p)
{
  free(p->links.pids);
  free(p->monitors.v);
  free(p->watching.v);
  free(p->regname);
  p->links = (struct arbor__link_set){0};
  p->monitors = p->watching = (struct arbor__mon_set){0};
  p->regname = NULL;
}

/* ---- spawn with link or monitor ------------------------------------------------- */

int arbor__spawn_link(struct arbor__proc *parent, struct arbor__proc *child,
                      bool link, uint64_t *monitor_ref)
{
  arbor_pid cpid = atomic_load_explicit(&child->pid, memory_order_relaxed);
  arbor_pid ppid = atomic_load_explicit(&parent->pid, memory_order_relaxed);
  uint64_t ref = 0;
  int err = 0;

  /* The child is not visible to anyone yet: only the parent needs its lock. */
  if (link) {
    err = links_add(&child->links, ppid);
    if (err < 0)
      return err;
    arbor__proc_lock(parent);
    err = links_add(&parent->links, cpid);
    arbor__proc_unlock(parent);
    if (err < 0) {
      child->links.n = 0;
      return err;
    }
  }
  if (monitor_ref != NULL) {
    ref = atomic_fetch_add_explicit(&parent->rt->next_ref, 1,
                                    memory_order_relaxed) + 1;
    err = mons_add(&child->monitors, ref, ppid);
    if (err == 0)
      err = mons_add(&parent->watching, ref, cpid);
    if (err < 0) {
      child->monitors.n = 0;
      if (link) {
        arbor__proc_lock(parent);
        links_del(&parent->links, cpid);
        arbor__proc_unlock(parent);
        child->links.n = 0;
      }
      return err;
    }
    *monitor_ref = ref;
  }
  return 0;
}

/* ---- the public calls --------------------------------------------------------- */

int arbor_link(arbor_pid pid)
{
  struct arbor__proc *self = arbor__proc_current(), *peer, *a, *b;
  arbor_pid me;
  int err;

  if (self == NULL)
    return ARBOR_ENOTPROC;
  me = atomic_load_explicit(&self->pid, memory_order_relaxed);
  if (pid == 0 || pid == me)
    return ARBOR_EINVAL;
  arbor__proc_checkpoint(self);
  err = arbor__proc_ref(self->rt, pid, &peer);
  if (err < 0)
    return err;
  /* Two locks, always in index order. */
  a = self->index < peer->index ? self : peer;
  b = a == self ? peer : self;
  arbor__proc_lock(a);
  arbor__proc_lock(b);
  if (peer->dead) {
    err = ARBOR_ESRCH;
  } else {
    err = links_add(&self->links, pid);
    if (err == 0) {
      err = links_add(&peer->links, me);
      if (err < 0)
        links_del(&self->links, pid);
    }
  }
  arbor__proc_unlock(b);
  arbor__proc_unlock(a);
  arbor__proc_unref(peer);
  return err;
}

int arbor_unlink(arbor_pid pid)
{
  struct arbor__proc *self = arbor__proc_current(), *peer, *a, *b;
  arbor_pid me;

  if (self == NULL)
    return ARBOR_ENOTPROC;
  me = atomic_load_explicit(&self->pid, memory_order_relaxed);
  if (pid == 0 || pid == me)
    return ARBOR_EINVAL;
  if (arbor__proc_ref(self->rt, pid, &peer) != 0) {
    arbor__proc_lock(self);
    links_del(&self->links, pid);
    arbor__proc_unlock(self);
    return 0;
  }
  a = self->index < peer->index ? self : peer;
  b = a == self ? peer : self;
  arbor__proc_lock(a);
  arbor__proc_lock(b);
  links_del(&self->links, pid);
  links_del(&peer->links, me);
  arbor__proc_unlock(b);
  arbor__proc_unlock(a);
  arbor__proc_unref(peer);
  return 0;
}

int arbor_monitor(arbor_pid pid, uint64_t *ref_out)
{
  struct arbor__proc *self = arbor__proc_current();

  if (self == NULL)
    return ARBOR_ENOTPROC;
  if (pid == 0 || ref_out == NULL)
    return ARBOR_EINVAL;
  if (arbor__rt_of_pid(pid) != self->rt)
    return ARBOR_EOTHERRT;
  arbor__proc_checkpoint(self);
  return arbor__monitor(self, pid, ref_out);
}

int arbor__monitor(struct arbor__proc *self, arbor_pid pid, uint64_t *ref_out)
{
  struct arbor__proc *t;
  arbor_pid me;
  uint64_t ref;
  int err;

  me = atomic_load_explicit(&self->pid, memory_order_relaxed);
  ref = atomic_fetch_add_explicit(&self->rt->next_ref, 1,
                                  memory_order_relaxed) + 1;
  err = mons_add(&self->watching, ref, pid);
  if (err < 0)
    return err;
  if (arbor__proc_ref(self->rt, pid, &t) == 0) {
    arbor__proc_lock(t);
    if (!t->dead) {
      err = mons_add(&t->monitors, ref, me);
      arbor__proc_unlock(t);
      arbor__proc_unref(t);
      if (err < 0) {
        mons_del(&self->watching, ref, NULL);
        return err;
      }
      *ref_out = ref;
      return 0;
    }
    arbor__proc_unlock(t);
    arbor__proc_unref(t);
  }
  /* Not alive: an immediate DOWN, as Erlang gives. */
  arbor__deliver(self, me,
                 system_env(self->rt, ARBOR_TAG_DOWN, pid, ARBOR_REASON_NOPROC,
                            ref),
                 self->task.worker);
  *ref_out = ref;
  return 0;
}

/* Remove a DOWN for `ref` from the calling process's mailbox, if there. */
static void flush_down(struct arbor__proc *p, uint64_t ref)
{
  struct arbor__env *e, *prev = NULL;

  /* Fetch everything that has arrived into the private list, then look. */
  arbor__mailbox_fetch_sc(&p->mbox, &p->saved, &p->saved_tail);
  for (e = p->saved; e != NULL;
       prev = e, e = atomic_load_explicit(&e->next, memory_order_relaxed)) {
    if (e->tag == ARBOR_TAG_DOWN && e->ref == ref) {
      struct arbor__env *next =
          atomic_load_explicit(&e->next, memory_order_relaxed);

      if (prev != NULL)
        atomic_store_explicit(&prev->next, next, memory_order_relaxed);
      else
        p->saved = next;
      if (p->saved_tail == e)
        p->saved_tail = prev;
      arbor__env_free(p->rt, p->task.worker, e);
      return;
    }
  }
}

int arbor_demonitor(uint64_t ref)
{
  struct arbor__proc *self = arbor__proc_current(), *t;
  arbor_pid target;

  if (self == NULL)
    return ARBOR_ENOTPROC;
  if (!mons_del(&self->watching, ref, &target))
    return ARBOR_ESRCH;
  if (arbor__proc_ref(self->rt, target, &t) == 0) {
    bool removed;

    arbor__proc_lock(t);
    removed = mons_del(&t->monitors, ref, NULL);
    arbor__proc_unlock(t);
    arbor__proc_unref(t);
    if (removed)
      return 0;
  }
  /* It fired already: its DOWN is in our mailbox (pushed under the target's
   * lock, which we just took), so take it out. */
  flush_down(self, ref);
  return 0;
}

/* A received DOWN ends its monitor. */
void arbor__monitor_fired(struct arbor__proc *p, uint64_t ref);
void arbor__monitor_fired(struct arbor__proc *p, uint64_t ref)
{
  mons_del(&p->watching, ref, NULL);
}

int arbor_trap_exit(int on)
{
  struct arbor__proc *self = arbor__proc_current();
  uint32_t prev;

  if (self == NULL)
    return ARBOR_ENOTPROC;
  /* Release: a signal sender that sees the flag sees it set by us. */
  if (on)
    prev = atomic_fetch_or_explicit(&self->flags, ARBOR__P_TRAP,
                                    memory_order_acq_rel);
  else
    prev = atomic_fetch_and_explicit(&self->flags, ~(uint32_t)ARBOR__P_TRAP,
                                     memory_order_acq_rel);
  return (prev & ARBOR__P_TRAP) != 0;
}

int arbor_kill(arbor_pid pid, int reason)
{
  struct arbor__proc *self = arbor__proc_current(), *t;
  arbor_pid from = 0;
  arbor_rt *rt;

  if (pid == 0)
    return ARBOR_EINVAL;
  rt = arbor__rt_of_pid(pid);
  if (rt == NULL)
    return ARBOR_ESRCH;
  if (self != NULL)
    from = atomic_load_explicit(&self->pid, memory_order_relaxed);
  if (arbor__proc_ref(rt, pid, &t) != 0)
    return 0; /* already gone: nothing to do */
  if (self != NULL && t == self && reason == ARBOR_NORMAL &&
      !(atomic_load_explicit(&t->flags, memory_order_relaxed) &
        ARBOR__P_TRAP)) {
    /* Erlang: exit(self(), normal) ends the caller normally. */
    end_proc(t, ARBOR_NORMAL);
  } else {
    signal_exit(t, from, reason, reason == ARBOR_REASON_KILL);
  }
  arbor__proc_unref(t);
  if (self != NULL)
    arbor__proc_checkpoint(self);
  return 0;
}
