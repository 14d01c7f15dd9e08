/* sched/park.c -- putting idle workers to sleep and waking them, without
 * lost wakeups and without a thundering herd.
 *
 * Two layers, both from Tokio:
 *  - a parker per worker: one futex word, EMPTY / PARKED / NOTIFIED.  An
 *    unpark that comes before the park leaves NOTIFIED behind, and the park
 *    consumes it and returns at once, so an unpark is never lost.
 *  - the idle state: how many workers are searching for work and how many
 *    are awake, packed in one word, plus the list of sleepers.  Whoever
 *    pushes stealable work wakes a sleeper only when nobody is searching (a
 *    searcher will find the work); the last searcher that finds work wakes
 *    another one; the last searcher that gives up re-checks every queue
 *    before it sleeps.  These are StoreLoad handoffs (push, then read the
 *    state; change the state, then read the queues), so both sides use
 *    SeqCst: acquire/release is not enough.
 *
 * Memory: the sleeper array is allocated at init with room for every
 * worker and freed with the scheduler; nothing here is reclaimed concurrently.
 */
#include "sched/worker.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SEARCHING_MASK 0xffffu
#define UNPARKED_ONE (1u << 16)

static void futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline)
{
  struct timespec ts, *tsp = NULL;

  if (deadline >= 0) {
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
   * spurious wakeup does not stretch the total wait. */
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
          val, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake(_Atomic uint32_t *word)
{
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1,
          NULL, NULL, 0);
}

static int64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void arbor__park(struct arbor__worker *w, int64_t deadline_ns)
{
  uint32_t expect = ARBOR__PARK_NOTIFIED;

  /* Acquire: pairs with the release exchange in arbor__unpark(), so that
   * whatever the waker published before unparking us is visible. */
  if (atomic_compare_exchange_strong_explicit(&w->park_state, &expect,
                                              ARBOR__PARK_EMPTY,
                                              memory_order_acquire,
                                              memory_order_relaxed))
    return;
  expect = ARBOR__PARK_EMPTY;
  if (!atomic_compare_exchange_strong_explicit(&w->park_state, &expect,
                                               ARBOR__PARK_PARKED,
                                               memory_order_acq_rel,
                                               memory_order_acquire)) {
    /* A notification arrived in between: consume it. */
    atomic_exchange_explicit(&w->park_state, ARBOR__PARK_EMPTY,
                             memory_order_acquire);
    return;
  }
  arbor__count(&w->n_parks);
  while (atomic_load_explicit(&w->park_state, memory_order_acquire) ==
         ARBOR__PARK_PARKED) {
    if (deadline_ns >= 0 && now_ns() >= deadline_ns)
      break;
    futex_wait(&w->park_state, ARBOR__PARK_PARKED, deadline_ns);
  }
  /* Acquire: pairs with the release in arbor__unpark(). */
  atomic_exchange_explicit(&w->park_state, ARBOR__PARK_EMPTY,
                           memory_order_acquire);
}

void arbor__unpark(struct arbor__worker *w)
{
  /* Release, and an exchange even if already NOTIFIED: the parker's acquire
   * must see what we published (Tokio's park.rs makes the same point). */
  if (atomic_exchange_explicit(&w->park_state, ARBOR__PARK_NOTIFIED,
                               memory_order_release) == ARBOR__PARK_PARKED)
    futex_wake(&w->park_state);
}

bool arbor__idle_to_searching(struct arbor__worker *w)
{
  struct arbor__idle *idle = &w->sched->idle;
  uint32_t st;

  if (w->searching)
    return true;
  /* At most half the workers search at once, so a burst of work does not
   * wake a herd of spinners. */
  st = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if (2 * (st & SEARCHING_MASK) >= w->sched->nworkers)
    return false;
  atomic_fetch_add_explicit(&idle->state, 1, memory_order_seq_cst);
  w->searching = true;
  return true;
}

void arbor__idle_from_searching(struct arbor__worker *w)
{
  uint32_t prev;

  if (!w->searching)
    return;
  w->searching = false;
  /* SeqCst: pairs with the fence in arbor__idle_notify(). */
  prev = atomic_fetch_sub_explicit(&w->sched->idle.state, 1,
                                   memory_order_seq_cst);
  /* The last searcher found work: there may be more, and nobody is looking
   * for it any more, so wake another worker to search. */
  if ((prev & SEARCHING_MASK) == 1)
    arbor__idle_notify(w->sched);
}

bool arbor__idle_to_parked(struct arbor__worker *w)
{
  struct arbor__idle *idle = &w->sched->idle;
  uint32_t dec = UNPARKED_ONE + (w->searching ? 1u : 0u);
  uint32_t prev;
  bool last;

  pthread_mutex_lock(&idle->lock);
  /* SeqCst: pairs with the fence in arbor__idle_notify(); after this, a
   * pusher either sees us gone or we see its work in the re-check. */
  prev = atomic_fetch_sub_explicit(&idle->state, dec, memory_order_seq_cst);
  last = w->searching && (prev & SEARCHING_MASK) == 1;
  idle->sleepers[idle->nsleepers++] = w->index;
  w->in_sleepers = true;
  pthread_mutex_unlock(&idle->lock);
  w->searching = false;
  return last;
}

void arbor__idle_from_parked(struct arbor__worker *w)
{
  struct arbor__idle *idle = &w->sched->idle;

  pthread_mutex_lock(&idle->lock);
  if (w->in_sleepers) {
    /* Woken by a deadline, by shutdown or spuriously: nobody counted us
     * back in, so do it ourselves. */
    for (unsigned i = 0; i < idle->nsleepers; i++) {
      if (idle->sleepers[i] == w->index) {
        idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
        break;
      }
    }
    w->in_sleepers = false;
    atomic_fetch_add_explicit(&idle->state, UNPARKED_ONE,
                              memory_order_seq_cst);
    w->searching = false;
  } else {
    /* arbor__idle_notify() counted us as awake and searching. */
    w->searching = true;
  }
  pthread_mutex_unlock(&idle->lock);
}

void arbor__idle_notify(struct arbor__sched *s)
{
  struct arbor__idle *idle = &s->idle;
  struct arbor__worker *sleeper = NULL;
  uint32_t st;

  /* StoreLoad: the push our caller just made must be visible before we read
   * the idle state.  Pairs with the SeqCst RMWs in arbor__idle_to_parked()
   * and arbor__idle_from_searching(). */
  atomic_thread_fence(memory_order_seq_cst);
  st = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if ((st & SEARCHING_MASK) != 0 || (st >> 16) >= s->nworkers)
    return;
  pthread_mutex_lock(&idle->lock);
  st = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if ((st & SEARCHING_MASK) == 0 && (st >> 16) < s->nworkers &&
      idle->nsleepers > 0) {
    sleeper = s->workers[idle->sleepers[--idle->nsleepers]];
    sleeper->in_sleepers = false;
    /* It wakes up awake and searching. */
    atomic_fetch_add_explicit(&idle->state, 1 + UNPARKED_ONE,
                              memory_order_seq_cst);
  }
  pthread_mutex_unlock(&idle->lock);
  if (sleeper != NULL)
    arbor__unpark(sleeper);
}

bool arbor__sched_has_work(struct arbor__sched *s)
{
  if (atomic_load_explicit(&s->inject.len, memory_order_seq_cst) != 0)
    return true;
  for (unsigned i = 0; i < s->nworkers; i++)
    if (arbor__runq_has_work(s->workers[i]))
      return true;
  return false;
}
