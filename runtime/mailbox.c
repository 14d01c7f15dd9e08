/* runtime/mailbox.c -- mailboxes and envelopes.
 *
 * A mailbox is one word, `head`, that senders CAS and the owner exchanges,
 * as in CAF's lifo_inbox: it holds either a stack of envelopes (newest
 * first) or a tag -- EMPTY, BLOCKED (the owner waits for a message) or
 * CLOSED (the owner has exited).  A sender that finds BLOCKED does not
 * push: its CAS takes BLOCKED back to EMPTY, which makes it the one that
 * wakes the owner, and it appends its envelope to the owner's private list
 * itself (arbor__deliver()), so the owner wakes with the message already
 * fetched -- one atomic exchange fewer per message hop.  A sender that
 * finds CLOSED drops its message.  The owner takes the whole
 * stack with one exchange and reverses it onto the end of its private FIFO
 * list, so messages from one sender are received in the order they were
 * sent; selective receive simply leaves unmatched envelopes in that list.
 *
 * Senders do not pin the receiving process record.  Records are
 * type-stable (process.c), so a sender that looked up a pid can always
 * touch the record; if the process exited and the record was reused in the
 * meantime, the push lands in the new incarnation's mailbox, whose owner
 * drops every envelope not addressed to its own pid (`to`), and at worst
 * wakes it spuriously, which every wait tolerates.
 *
 * Memory: an envelope belongs to its sender until the CAS that publishes
 * it, then to the mailbox's owner, which frees it after use or at exit
 * (the exit path closes the mailbox and frees what it held).  Envelopes for
 * bodies up to ARBOR__ENV_INLINE bytes come from the calling worker's free
 * list and go back to the freeing worker's (bounded); bigger ones are one
 * malloc each.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"


void arbor__mailbox_init(struct arbor__mailbox *mb)
{
  atomic_store_explicit(&mb->head, ARBOR__MB_EMPTY, memory_order_relaxed);
}

void arbor__mailbox_fetch_sc(struct arbor__mailbox *mb,
                             struct arbor__env **first,
                             struct arbor__env **last)
{
  struct arbor__env *h = atomic_load_explicit(&mb->head, memory_order_relaxed);
  struct arbor__env *fifo = NULL, *tail;

  if (h == ARBOR__MB_EMPTY || h == ARBOR__MB_BLOCKED || h == ARBOR__MB_CLOSED)
    return;
  /* Acquire: pairs with the senders' CAS; their envelopes are complete. */
  h = atomic_exchange_explicit(&mb->head, ARBOR__MB_EMPTY,
                               memory_order_acquire);
  /* Newest first: reverse onto a FIFO chain and append it. */
  tail = h;
  while (h != NULL) {
    struct arbor__env *next =
        atomic_load_explicit(&h->next, memory_order_relaxed);

    atomic_store_explicit(&h->next, fifo, memory_order_relaxed);
    fifo = h;
    h = next;
  }
  if (*last != NULL)
    atomic_store_explicit(&(*last)->next, fifo, memory_order_relaxed);
  else
    *first = fifo;
  *last = tail;
}

bool arbor__mailbox_unblock(struct arbor__mailbox *mb)
{
  struct arbor__env *expect = ARBOR__MB_BLOCKED;

  /* SeqCst: the other half of the handshake in arbor__mailbox_block_sc(). */
  return atomic_compare_exchange_strong_explicit(
      &mb->head, &expect, ARBOR__MB_EMPTY, memory_order_seq_cst,
      memory_order_relaxed);
}

struct arbor__env *arbor__mailbox_close(struct arbor__mailbox *mb)
{
  /* Acquire: we take whatever was pushed before. */
  struct arbor__env *h = atomic_exchange_explicit(&mb->head, ARBOR__MB_CLOSED,
                                                  memory_order_acquire);

  return h == ARBOR__MB_EMPTY || h == ARBOR__MB_BLOCKED ||
                 h == ARBOR__MB_CLOSED
             ? NULL
             : h;
}

static void free_chain(arbor_rt *rt, int w, struct arbor__env *e)
{
  while (e != NULL) {
    struct arbor__env *next =
        atomic_load_explicit(&e->next, memory_order_relaxed);

    arbor__env_free(rt, w, e);
    e = next;
  }
}

/* At exit: close the mailbox (later sends are dropped and counted) and free
 * the envelope last received, the ones passed over, and the ones never
 * fetched. */
void arbor__mailbox_drain(arbor_rt *rt, struct arbor__proc *p)
{
  int w = arbor__local_worker(rt);

  if (p->current != NULL) {
    arbor__env_free(rt, w, p->current);
    p->current = NULL;
  }
  free_chain(rt, w, p->saved);
  p->saved = p->saved_tail = NULL;
  free_chain(rt, w, arbor__mailbox_close(&p->mbox));
}
