/* sched/worker.h -- a worker's private state, shared by the sched/ files. */
#ifndef ARBOR_SCHED_WORKER_H
#define ARBOR_SCHED_WORKER_H

#include <ck_ring.h>

#include "sched/sched.h"

#define ARBOR__RING_SIZE 256 /* a power of two; 255 usable */
#define ARBOR__LIFO_MAX 3    /* LIFO runs in a row (Tokio) */
#define ARBOR__GLOBAL_INTERVAL 61 /* ticks between injection queue checks */

/* Parker states, one futex word per worker. */
enum { ARBOR__PARK_EMPTY = 0, ARBOR__PARK_PARKED = 1, ARBOR__PARK_NOTIFIED = 2 };

struct arbor__worker {
  /* Set once at init, read-only afterwards. */
  unsigned index;
  struct arbor__sched *sched;

  /* Written only by the owning thread (but for lifo_fenced, and lifo of a
   * stuck worker: see below). */
  alignas(64) struct arbor__ctx sched_ctx; /* the worker's own stack */
  /* The running task, NULL in the scheduler loop.  Atomic, always relaxed,
   * only because the watchdog samples it. */
  struct arbor__task *_Atomic current;
  struct arbor__task *pending; /* handed off from; finished by `current` */
  struct arbor__task *lifo; /* not stealable; see arbor__lifo_enter() */
  unsigned lifo_runs;       /* LIFO runs in a row */
  /* The LIFO-slot handshake with the watchdog (sched/watchdog.c): busy is 1
   * while the owner touches `lifo`; fenced is 0 (the slot is the owner's),
   * 1 (the watchdog is taking it) or 2 (taken; the owner puts it back to 0
   * in its scheduler loop). */
  _Atomic uint32_t lifo_busy;
  _Atomic uint32_t lifo_fenced;
  uint32_t tick;
  bool searching;
  uint64_t rng;
  struct arbor__stack_cache stack_cache;
  /* Counters: written by the owner with relaxed stores, read by anyone. */
  _Atomic uint64_t n_runs, n_spawns, n_steals, n_injects, n_parks, n_lifo;
  _Atomic uint64_t n_timers;

  /* The run queue: the owner enqueues; the owner and thieves dequeue. */
  alignas(64) ck_ring_t ring;
  ck_ring_buffer_t ring_buf[ARBOR__RING_SIZE];

  /* Written by wakers. */
  alignas(64) _Atomic uint32_t park_state; /* futex word */
  bool in_sleepers; /* under sched->idle.lock */
};

/* The worker of the calling thread (any scheduler), or NULL. */
extern _Thread_local struct arbor__worker *arbor__tls_worker
    __attribute__((tls_model("initial-exec")));

#if defined(ARBOR_HAVE_TSAN)
#include <sanitizer/tsan_interface.h>
/* ThreadSanitizer does not know membarrier(): these tell it what the LIFO
 * handshake (sched/watchdog.c) guarantees, that every owner access to the
 * slot before the watchdog saw lifo_busy == 0 happens before its take. */
#define ARBOR__TSAN_RELEASE(p) __tsan_release(p)
#define ARBOR__TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define ARBOR__TSAN_RELEASE(p) ((void)(p))
#define ARBOR__TSAN_ACQUIRE(p) ((void)(p))
#endif

/* The owner brackets every access to w->lifo with arbor__lifo_enter() and
 * arbor__lifo_leave(), so that the watchdog can take the task out of the
 * slot of a stuck worker.  Two plain stores and a load on the owner's own
 * cache line, and compiler-only fences: the watchdog's membarrier() supplies
 * the hardware fence when, and only when, it is needed (the argument is at
 * the top of sched/watchdog.c).  false: the watchdog has the slot; do not
 * touch w->lifo, and do not call arbor__lifo_leave(). */
static inline bool arbor__lifo_enter(struct arbor__worker *w)
{
  atomic_store_explicit(&w->lifo_busy, 1, memory_order_relaxed);
  /* Compiler-only: the store above stays before the load below in program
   * order, which is all the light side of the handshake needs. */
  atomic_signal_fence(memory_order_seq_cst);
  if (arbor__likely(atomic_load_explicit(&w->lifo_fenced,
                                         memory_order_relaxed) == 0))
    return true;
  atomic_store_explicit(&w->lifo_busy, 0, memory_order_relaxed);
  return false;
}

static inline void arbor__lifo_leave(struct arbor__worker *w)
{
  ARBOR__TSAN_RELEASE(&w->lifo_busy);
  /* Compiler-only: every access to the slot stays before the store. */
  atomic_signal_fence(memory_order_seq_cst);
  atomic_store_explicit(&w->lifo_busy, 0, memory_order_relaxed);
}

/* Owner-only counter increment: one writer, so no RMW is needed. */
static inline void arbor__count(_Atomic uint64_t *c)
{
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* runq.c */
void arbor__inject_push(struct arbor__sched *s, struct arbor__task *const *v,
                        size_t n);
void arbor__inject_fini(struct arbor__sched *s);
struct arbor__task *arbor__inject_pop_batch(struct arbor__worker *w);
struct arbor__task *arbor__inject_pop_one(struct arbor__worker *w);
/* Push and, if other workers could help, wake one. */
void arbor__runq_push_sp(struct arbor__worker *w, struct arbor__task *t);
/* Push without waking anyone (the pusher will run it soon itself). */
void arbor__runq_push_quiet_sp(struct arbor__worker *w, struct arbor__task *t);
struct arbor__task *arbor__runq_pop_sp(struct arbor__worker *w);
struct arbor__task *arbor__runq_steal_mc(struct arbor__worker *thief,
                                         struct arbor__worker *victim);
bool arbor__runq_has_work(const struct arbor__worker *w);

/* park.c */
void arbor__park(struct arbor__worker *w, int64_t deadline_ns);
void arbor__unpark(struct arbor__worker *w);
bool arbor__idle_to_searching(struct arbor__worker *w);
void arbor__idle_from_searching(struct arbor__worker *w);
bool arbor__idle_to_parked(struct arbor__worker *w);
void arbor__idle_from_parked(struct arbor__worker *w);
void arbor__idle_notify(struct arbor__sched *s);
bool arbor__sched_has_work(struct arbor__sched *s);

/* watchdog.c */
/* Start the watchdog thread if s->watchdog_ns > 0.  0, -ENOMEM or -EAGAIN. */
int arbor__watchdog_start(struct arbor__sched *s);
/* Stop and join it (a no-op if it is not running); fini frees it. */
void arbor__watchdog_stop(struct arbor__sched *s);
void arbor__watchdog_fini(struct arbor__sched *s);
/* Scheduler loop of w only: if the watchdog has finished taking w's LIFO
 * slot (lifo_fenced == 2), give the slot back to the owner; true if it
 * did. */
bool arbor__lifo_reopen(struct arbor__worker *w);
/* The watchdog's side of the handshake: take the task out of w's LIFO slot
 * and push it to the injection queue (and wake a worker).  Returns it, or
 * NULL if the slot was empty.  Needs arbor__watchdog_membarrier(), and
 * w->lifo_fenced == 0; from one thread at a time (the watchdog, or a
 * white-box test). */
struct arbor__task *arbor__watchdog_take_lifo(struct arbor__sched *s,
                                              struct arbor__worker *w);
/* Whether membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is usable (it is
 * registered at the first call).  Without it the watchdog reports and
 * wakes thieves but leaves LIFO slots alone. */
bool arbor__watchdog_membarrier(void);
/* Test hooks: pretend membarrier() is missing (process-wide), and count the
 * watchdog's scans. */
void arbor__watchdog_test_no_membarrier(bool off);
uint64_t arbor__watchdog_scans(const struct arbor__sched *s);

#endif /* ARBOR_SCHED_WORKER_H */
