/* runtime/records.c -- the process table: record chunks, and which records
 * are free, handed out lowest index first.
 *
 * Why lowest first.  A process's record, and its stack (sched/ places the
 * stack of the record with index i at a fixed address, i strides up an
 * arena), are where a message hop to it misses.  When a burst of processes
 * is spawned, giving them ascending indices gives their records and stacks
 * ascending, evenly spaced addresses, which the CPU's stride prefetchers
 * and page walks follow; free lists in the order of the last exits, across
 * two workers, scrambled them, and a ring of 10,000 processes ran at a
 * third of its speed on 2 workers for it.
 *
 * The free set is a two-level bitmap over the index space:
 *  - words[i] bit b: record 64·i + b is free (the last incarnation is torn
 *    down) and nobody has claimed it;
 *  - sums[j] bit k: words[64·j + k] may be nonzero.
 * A worker claims a whole word at a time (an exchange with 0) and hands
 * out its bits from the lowest, without atomics; a refill takes the lowest
 * nonzero word, or 64 fresh indices when there is none.  A worker gathers
 * the records that end on it per word and publishes them with one fetch_or
 * when it moves to another word, when a word's bits are all gathered, before
 * it refills, and before it sleeps (the maintain hook), so at most 64
 * records per worker are out of sight.  Threads that are not workers claim
 * and publish under free_lock, one record at a time.
 *
 * Ordering.  A record is torn down (recycle() in process.c) before its bit
 * is published with a release fetch_or; the claim's acquire exchange makes
 * that teardown visible to the spawner.  The summary: a publisher that
 * turns a word from 0 to nonzero then sets the word's summary bit
 * (release); a refill that finds a summary bit over an empty word clears it
 * (acq_rel) and looks at the word again (acquire).  If the publisher's set
 * came first in the summary's order, the clear synchronises with it and the
 * second look sees the word's new bits; if it came after, the bit stays.
 * Either way a nonzero word never hides behind a clear summary bit.
 *
 * Memory.  Records are never freed before the runtime is destroyed (they
 * are type-stable: a stale pid can always be looked up and fails its
 * generation check).  The bitmaps cover the whole index space but are
 * calloc()ed: their pages are touched only where indices are in use.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

#define WORD_BITS 64
#define NWORDS (ARBOR__PID_MAX_INDEX / WORD_BITS)
#define NSUMS (NWORDS / WORD_BITS)

int arbor__records_init(arbor_rt *rt)
{
  rt->free_words = calloc(NWORDS, sizeof(*rt->free_words));
  rt->free_sums = calloc(NSUMS, sizeof(*rt->free_sums));
  if (rt->free_words == NULL || rt->free_sums == NULL) {
    free((void *)rt->free_words);
    free((void *)rt->free_sums);
    return ARBOR_ENOMEM;
  }
  pthread_mutex_init(&rt->grow_lock, NULL);
  pthread_mutex_init(&rt->free_lock, NULL);
  return 0;
}

void arbor__records_fini(arbor_rt *rt)
{
  pthread_mutex_destroy(&rt->free_lock);
  pthread_mutex_destroy(&rt->grow_lock);
  free((void *)rt->free_words);
  free((void *)rt->free_sums);
}

/* Make sure the chunk holding index idx exists.  false: out of memory. */
static bool chunk_make(arbor_rt *rt, uint32_t idx)
{
  struct arbor__proc *chunk;
  bool ok = true;

  if (arbor__proc_slot(rt, idx) != NULL)
    return true;
  pthread_mutex_lock(&rt->grow_lock);
  if (arbor__proc_slot(rt, idx) == NULL) {
    /* Cache-line aligned, so each record's hot lines are its own. */
    chunk = aligned_alloc(64, ARBOR__CHUNK_SIZE * sizeof(*chunk));
    if (chunk != NULL) {
      memset(chunk, 0, ARBOR__CHUNK_SIZE * sizeof(*chunk));
      /* index and rt never change afterwards: a record belongs to one
       * runtime, and may be read at any time by whoever looked it up. */
      for (uint32_t i = 0; i < ARBOR__CHUNK_SIZE; i++) {
        chunk[i].index = (idx & ~(ARBOR__CHUNK_SIZE - 1)) + i;
        chunk[i].rt = rt;
      }
      /* Release: pairs with the acquire in arbor__proc_slot(). */
      atomic_store_explicit(&rt->chunks[idx >> ARBOR__CHUNK_BITS], chunk,
                            memory_order_release);
    } else {
      ok = false;
    }
  }
  pthread_mutex_unlock(&rt->grow_lock);
  return ok;
}

/* Publish free records: bits `mask` of word wi (see the top of the file). */
static void publish(arbor_rt *rt, uint32_t wi, uint64_t mask)
{
  /* Release: the records' teardown, for whoever claims them. */
  uint64_t old =
      atomic_fetch_or_explicit(&rt->free_words[wi], mask, memory_order_release);

  if (old == 0)
    atomic_fetch_or_explicit(&rt->free_sums[wi / WORD_BITS],
                             (uint64_t)1 << (wi % WORD_BITS),
                             memory_order_release);
}

static void flush(arbor_rt *rt, struct arbor__claim *pend)
{
  if (pend->mask != 0) {
    publish(rt, pend->base / WORD_BITS, pend->mask);
    pend->mask = 0;
  }
}

void arbor__records_flush(arbor_rt *rt, unsigned w)
{
  flush(rt, &rt->local[w].pend);
}

/* Claim the lowest word with free records, else 64 fresh indices.  false:
 * the index space or memory is exhausted. */
static bool refill(arbor_rt *rt, struct arbor__claim *claim)
{
  uint32_t n = atomic_load_explicit(&rt->next_index, memory_order_relaxed);
  uint32_t nsums = (n + WORD_BITS * WORD_BITS - 1) / (WORD_BITS * WORD_BITS);
  uint32_t base;

  for (uint32_t j = 0; j < nsums && j < NSUMS; j++) {
    uint64_t s = atomic_load_explicit(&rt->free_sums[j], memory_order_relaxed);

    while (s != 0) {
      uint32_t k = (uint32_t)__builtin_ctzll(s);
      uint32_t wi = j * WORD_BITS + k;
      uint64_t bit = (uint64_t)1 << k;
      /* Acquire: pairs with publish(); the records are torn down. */
      uint64_t m = atomic_exchange_explicit(&rt->free_words[wi], 0,
                                            memory_order_acquire);

      if (m == 0) {
        /* Stale summary: clear it, then look again (top of the file). */
        atomic_fetch_and_explicit(&rt->free_sums[j], ~bit,
                                  memory_order_acq_rel);
        m = atomic_exchange_explicit(&rt->free_words[wi], 0,
                                     memory_order_acquire);
      }
      if (m != 0) {
        *claim = (struct arbor__claim){wi * WORD_BITS, m};
        return true;
      }
      s &= s - 1;
    }
  }
  /* None free: 64 fresh indices, all in one chunk (64 divides its size).
   * Once the space is used up, look before adding, so that failed tries
   * leave next_index at most 64 per thread past the end (never wrapping). */
  if (n >= ARBOR__PID_MAX_INDEX)
    return false;
  base = atomic_fetch_add_explicit(&rt->next_index, WORD_BITS,
                                   memory_order_relaxed);
  if (base >= ARBOR__PID_MAX_INDEX)
    return false;
  if (!chunk_make(rt, base)) {
    /* Lost until the runtime is destroyed: 64 indices, under memory
     * pressure.  A later refill makes the chunk if memory comes back. */
    return false;
  }
  *claim = (struct arbor__claim){base, ~(uint64_t)0};
  return true;
}

static struct arbor__proc *take(arbor_rt *rt, struct arbor__claim *claim)
{
  uint32_t b = (uint32_t)__builtin_ctzll(claim->mask);

  claim->mask &= claim->mask - 1;
  return arbor__proc_slot(rt, claim->base + b);
}

struct arbor__proc *arbor__record_alloc(arbor_rt *rt, int w)
{
  struct arbor__proc *p = NULL;

  if (w >= 0) {
    struct arbor__proc_cache *c = &rt->local[w];

    if (arbor__likely(c->claim.mask != 0))
      return take(rt, &c->claim);
    /* Our own exits first become visible, so the refill can find them. */
    flush(rt, &c->pend);
    return refill(rt, &c->claim) ? take(rt, &c->claim) : NULL;
  }
  pthread_mutex_lock(&rt->free_lock);
  if (rt->foreign.mask != 0 || refill(rt, &rt->foreign))
    p = take(rt, &rt->foreign);
  pthread_mutex_unlock(&rt->free_lock);
  return p;
}

void arbor__record_free(arbor_rt *rt, struct arbor__proc *p)
{
  uint32_t wi = p->index / WORD_BITS;
  uint64_t bit = (uint64_t)1 << (p->index % WORD_BITS);
  int w;

  if (p->gen == UINT32_MAX)
    return; /* retired: its next pid would repeat an old one */
  w = arbor__local_worker(rt);
  if (w < 0) {
    publish(rt, wi, bit);
    return;
  }
  /* No critical section (fault.c) needed: this runs in an exit path, on the
   * worker's own stack or, after a hand-off, on the next process's stack
   * while `pending` is set, where the fault handler never ends a process. */
  struct arbor__claim *pend = &rt->local[w].pend;

  if (pend->mask != 0 && pend->base != wi * WORD_BITS)
    flush(rt, pend);
  pend->base = wi * WORD_BITS;
  pend->mask |= bit;
  if (pend->mask == ~(uint64_t)0)
    flush(rt, pend); /* nothing more can join it */
}
