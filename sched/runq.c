/* sched/runq.c -- per-worker run queues and the global injection queue.
 *
 * Each worker owns a 256-slot ck_ring used SPMC: only the owner enqueues
 * (so a thief puts what it steals into its *own* ring), while the owner and
 * thieves dequeue from the same end with a CAS.  ck has no work-stealing
 * deque, so a steal is up to half the victim's ring taken one
 * ck_ring_trydequeue_spmc() at a time; a failed try means "contended or
 * empty, look elsewhere", never "retry forever".  When a ring is full, half
 * of it plus the new task move to the injection queue in one locked batch
 * (Go's runqputslow, Tokio's push_overflow).
 *
 * Memory reclamation: the rings and the injection array hold pointers to
 * tasks, and tasks are owned
 * by runtime/, which recycles a task only after it reached DONE on the
 * worker that ran it; a task in a ring is RUNNABLE, so no ring ever holds a
 * pointer to freed memory.  The ring buffers live inside the workers and are
 * freed after every worker thread has been joined.
 */
#include "sched/worker.h"

#include <ck_pr.h>
#include <stdlib.h>

#if defined(ARBOR_HAVE_TSAN)
#include <sanitizer/tsan_interface.h>
/* ck_ring's synchronisation is inline asm that ThreadSanitizer cannot see,
 * so tell it what the ring does: a push releases the task, and the pop or
 * steal that takes it acquires it. */
#define TSAN_RELEASE(t) __tsan_release(t)
#define TSAN_ACQUIRE(t) __tsan_acquire(t)
#else
#define TSAN_RELEASE(t) ((void)(t))
#define TSAN_ACQUIRE(t) ((void)(t))
#endif

/* Under q->lock: make room for n more.  Out of memory here has no caller
 * to report to (a worker making a process runnable): abort, as the
 * scheduler loop does. */
static void inject_reserve(struct arbor__inject *q, size_t len, size_t n)
{
  size_t cap = q->cap != 0 ? q->cap : 256;
  struct arbor__task **buf;

  while (cap < len + n)
    cap *= 2;
  if (cap == q->cap)
    return;
  buf = malloc(cap * sizeof(*buf));
  arbor__assert(buf != NULL);
  /* Unwrap the old contents to the front of the new array. */
  for (size_t i = 0; i < len; i++)
    buf[i] = q->buf[(q->head + i) & (q->cap - 1)];
  free(q->buf);
  q->buf = buf;
  q->cap = cap;
  q->head = 0;
}

void arbor__inject_push(struct arbor__sched *s, struct arbor__task *const *v,
                        size_t n)
{
  struct arbor__inject *q = &s->inject;
  size_t len;

  pthread_mutex_lock(&q->lock);
  len = atomic_load_explicit(&q->len, memory_order_relaxed);
  inject_reserve(q, len, n);
  for (size_t i = 0; i < n; i++)
    q->buf[(q->head + len + i) & (q->cap - 1)] = v[i];
  /* Relaxed: len is only a hint for the lock-free empty check; the mutex
   * orders the array itself.  Whoever pushed follows up with
   * arbor__idle_notify(), whose fence orders this store before the read of
   * the idle state. */
  atomic_store_explicit(&q->len, len + n, memory_order_relaxed);
  pthread_mutex_unlock(&q->lock);
}

void arbor__inject_fini(struct arbor__sched *s)
{
  free(s->inject.buf);
  s->inject.buf = NULL;
  s->inject.cap = 0;
}

/* Take up to `max` tasks: the first is returned, the rest go to w's ring.
 * Never takes more than the ring can hold, so the ring cannot overflow back
 * into this queue while we hold its lock. */
static struct arbor__task *inject_pop(struct arbor__worker *w, size_t max)
{
  struct arbor__inject *q = &w->sched->inject;
  struct arbor__task *first;
  size_t len, take, room;

  if (atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
    return NULL;
  pthread_mutex_lock(&q->lock);
  len = atomic_load_explicit(&q->len, memory_order_relaxed);
  if (len == 0) {
    pthread_mutex_unlock(&q->lock);
    return NULL;
  }
  /* A fair share, as Tokio does: len / workers + 1, bounded by the caller
   * and by the free room of our ring (thieves only ever shrink it, so this
   * bound is safe). */
  take = len / w->sched->nworkers + 1;
  room = (ARBOR__RING_SIZE - 1) - ck_ring_size(&w->ring);
  if (take > max)
    take = max;
  if (take > room + 1)
    take = room + 1;
  if (take > len)
    take = len;
  first = q->buf[q->head];
  for (size_t i = 1; i < take; i++) {
    struct arbor__task *t = q->buf[(q->head + i) & (q->cap - 1)];
    bool ok;

    TSAN_RELEASE(t);
    ok = ck_ring_enqueue_spmc(&w->ring, w->ring_buf, t);
    arbor__assert(ok);
  }
  q->head = (q->head + take) & (q->cap - 1);
  atomic_store_explicit(&q->len, len - take, memory_order_relaxed);
  pthread_mutex_unlock(&q->lock);
  arbor__count(&w->n_injects);
  return first;
}

struct arbor__task *arbor__inject_pop_batch(struct arbor__worker *w)
{
  return inject_pop(w, ARBOR__RING_SIZE / 2);
}

struct arbor__task *arbor__inject_pop_one(struct arbor__worker *w)
{
  return inject_pop(w, 1);
}

/* The ring is full: move its older half and t to the injection queue. */
static void overflow(struct arbor__worker *w, struct arbor__task *t)
{
  struct arbor__task *batch[ARBOR__RING_SIZE / 2 + 1];
  size_t n = 0;
  void *p;

  while (n < ARBOR__RING_SIZE / 2 &&
         ck_ring_dequeue_spmc(&w->ring, w->ring_buf, &p)) {
    TSAN_ACQUIRE(p);
    batch[n++] = p;
  }
  batch[n++] = t;
  arbor__inject_push(w->sched, batch, n);
}

void arbor__runq_push_quiet_sp(struct arbor__worker *w, struct arbor__task *t)
{
  TSAN_RELEASE(t);
  if (arbor__unlikely(!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, t)))
    overflow(w, t);
}

void arbor__runq_push_sp(struct arbor__worker *w, struct arbor__task *t)
{
  /* Only a push onto an empty ring looks for a worker to wake (Go's
   * wakep() on new work, not on every push): while the ring holds work a
   * previous push already did, and the wakeup it caused, or the searcher it
   * found, is still after that work -- a searcher that gives up re-checks
   * every ring before it sleeps (park.c).  The notify's fence and its read
   * of the idle state's shared line were a sixth of spawn's time on 2
   * workers, paid on every spawn that displaced the LIFO slot. */
  bool was_empty = ck_ring_size(&w->ring) == 0;

  arbor__runq_push_quiet_sp(w, t);
  /* With one worker nobody else could take it. */
  if (was_empty && w->sched->nworkers > 1)
    arbor__idle_notify(w->sched);
}

struct arbor__task *arbor__runq_pop_sp(struct arbor__worker *w)
{
  void *p;

  if (ck_ring_dequeue_spmc(&w->ring, w->ring_buf, &p)) {
    TSAN_ACQUIRE(p);
    return p;
  }
  return NULL;
}

struct arbor__task *arbor__runq_steal_mc(struct arbor__worker *thief,
                                         struct arbor__worker *victim)
{
  struct arbor__task *first = NULL;
  unsigned n = ck_ring_size(&victim->ring);
  unsigned got = 0, fails = 0;
  void *p;

  if (n == 0)
    return NULL;
  n -= n / 2; /* half, rounded up */
  while (got < n && fails < 2) {
    if (!ck_ring_trydequeue_spmc(&victim->ring, victim->ring_buf, &p)) {
      /* Contended (or drained meanwhile): one more try, then move on. */
      fails++;
      continue;
    }
    TSAN_ACQUIRE(p);
    if (first == NULL) {
      first = p;
    } else {
      TSAN_RELEASE(p);
      /* Our ring is empty when we steal, so this cannot fail; be safe. */
      if (!ck_ring_enqueue_spmc(&thief->ring, thief->ring_buf, p))
        overflow(thief, p);
    }
    got++;
  }
  if (got > 0)
    atomic_store_explicit(
        &thief->n_steals,
        atomic_load_explicit(&thief->n_steals, memory_order_relaxed) + got,
        memory_order_relaxed);
  return first;
}

bool arbor__runq_has_work(const struct arbor__worker *w)
{
  return ck_ring_size(&w->ring) != 0;
}
