/* runtime/mailbox.c -- mailboxes (an intrusive MPSC queue) and envelopes.
 *
 * The queue is Vyukov's intrusive node-based MPSC queue.  A sender links its
 * envelope with one atomic exchange of `head` and then a store of the
 * previous node's `next`: wait-free, one RMW per send.  The owner pops at
 * `tail` without any RMW except when the queue runs down to its last node,
 * when it re-pushes the stub.  Between a sender's exchange and its link the
 * queue looks "not empty, but nothing to pop yet"; the owner treats that as
 * "try again", never as empty, so it does not block while a message is on
 * its way (arbor__mailbox_quiet_sc()).
 *
 * Memory: only the owner pops, and it frees envelopes after it is done with
 * them, so no producer can touch a freed envelope: a producer only touches
 * its own envelope and the previous head, which cannot have been popped yet
 * because its `next` was still NULL.  After the process has exited, its
 * record is recycled only once every sender that looked it up has dropped
 * its reference (see process.c), so the mailbox is drained for the last
 * time when no sender can still push.
 *
 * Envelopes for bodies up to ARBOR__ENV_INLINE bytes come from the calling
 * worker's free list and go back to the freeing worker's (bounded); bigger
 * ones are one malloc each.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#define ENV_POOL_MAX 4096 /* inline envelopes a worker keeps */

void arbor__mailbox_init(struct arbor__mailbox *mb)
{
  atomic_store_explicit(&mb->stub.next, NULL, memory_order_relaxed);
  atomic_store_explicit(&mb->head, &mb->stub, memory_order_relaxed);
  mb->tail = &mb->stub;
}

void arbor__mailbox_push_mp(struct arbor__mailbox *mb, struct arbor__env *e)
{
  struct arbor__env *prev;

  atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
  /* SeqCst: the receiver stores `waiting` and then reads `head` (Dekker):
   * either it sees this push, or our read of `waiting` after it sees the
   * receiver waiting.  On x86 the exchange is a full barrier anyway. */
  prev = atomic_exchange_explicit(&mb->head, e, memory_order_seq_cst);
  /* Release: pairs with the acquire load of `next` in pop; publishes the
   * envelope's contents. */
  atomic_store_explicit(&prev->next, e, memory_order_release);
}

struct arbor__env *arbor__mailbox_pop_sc(struct arbor__mailbox *mb)
{
  struct arbor__env *tail = mb->tail;
  struct arbor__env *next =
      atomic_load_explicit(&tail->next, memory_order_acquire);

  if (tail == &mb->stub) {
    if (next == NULL)
      return NULL;
    mb->tail = next;
    tail = next;
    next = atomic_load_explicit(&next->next, memory_order_acquire);
  }
  if (next != NULL) {
    mb->tail = next;
    return tail;
  }
  /* tail is the last linked node.  If a sender has swapped head but not
   * linked yet, wait for it by reporting nothing for now. */
  if (tail != atomic_load_explicit(&mb->head, memory_order_acquire))
    return NULL;
  arbor__mailbox_push_mp(mb, &mb->stub);
  next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (next != NULL) {
    mb->tail = next;
    return tail;
  }
  return NULL;
}

bool arbor__mailbox_quiet_sc(struct arbor__mailbox *mb)
{
  /* SeqCst: pairs with the exchange in push (see there). */
  return mb->tail == &mb->stub &&
         atomic_load_explicit(&mb->head, memory_order_seq_cst) == &mb->stub;
}

struct arbor__env *arbor__env_new(arbor_rt *rt, int w, size_t len)
{
  struct arbor__env *e;

  if (len <= ARBOR__ENV_INLINE) {
    if (w >= 0 && rt->local[w].envs != NULL) {
      struct arbor__proc_cache *c = &rt->local[w];

      e = c->envs;
      c->envs = atomic_load_explicit(&e->next, memory_order_relaxed);
      c->nenvs--;
    } else {
      e = malloc(sizeof(*e) + ARBOR__ENV_INLINE);
      if (e == NULL)
        return NULL;
    }
    e->pooled = 1;
  } else {
    e = malloc(sizeof(*e) + len);
    if (e == NULL)
      return NULL;
    e->pooled = 0;
  }
  e->data = len > 0 ? (void *)(e + 1) : NULL;
  e->len = len;
  e->free_fn = NULL;
  e->tag = 0;
  e->reason = 0;
  e->from = 0;
  e->ref = 0;
  return e;
}

void arbor__env_free(arbor_rt *rt, int w, struct arbor__env *e)
{
  if (e->free_fn != NULL)
    e->free_fn(e->data);
  if (e->pooled) {
    if (w >= 0 && rt->local[w].nenvs < ENV_POOL_MAX) {
      struct arbor__proc_cache *c = &rt->local[w];

      atomic_store_explicit(&e->next, c->envs, memory_order_relaxed);
      c->envs = e;
      c->nenvs++;
      return;
    }
  }
  free(e);
}

void arbor__deliver(struct arbor__proc *p, struct arbor__env *e)
{
  uint32_t expect = ARBOR__WAIT_MSG;

  arbor__mailbox_push_mp(&p->mbox, e);
  /* SeqCst load: the other half of the Dekker pairing in push.  Only a
   * receiver waiting for messages is woken, and only by the one party that
   * swaps `waiting` back to NONE. */
  if (atomic_load_explicit(&p->waiting, memory_order_seq_cst) ==
          ARBOR__WAIT_MSG &&
      atomic_compare_exchange_strong_explicit(&p->waiting, &expect,
                                              ARBOR__WAIT_NONE,
                                              memory_order_acq_rel,
                                              memory_order_relaxed))
    arbor__sched_wake(&p->rt->sched, &p->task);
}

/* Free whatever a process left behind: the envelope it last received, the
 * ones it passed over, and everything in the queue.  At exit the process no
 * longer pops, so the exit path may, while senders still push; what arrives
 * after that is freed when the record is recycled, and counted as dropped
 * (`count`): it was sent to a process that had exited. */
void arbor__mailbox_drain(arbor_rt *rt, struct arbor__proc *p, bool count)
{
  struct arbor__env *e;
  int64_t n = 0;
  int w = arbor__local_worker(rt);

  if (p->current != NULL) {
    arbor__env_free(rt, w, p->current);
    p->current = NULL;
  }
  while ((e = p->saved) != NULL) {
    p->saved = atomic_load_explicit(&e->next, memory_order_relaxed);
    arbor__env_free(rt, w, e);
  }
  p->saved_tail = NULL;
  while ((e = arbor__mailbox_pop_sc(&p->mbox)) != NULL) {
    arbor__env_free(rt, w, e);
    n++;
  }
  if (count && n > 0)
    atomic_fetch_add_explicit(&rt->dropped, n, memory_order_relaxed);
}
