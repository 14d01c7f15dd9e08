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

  /* Written only by the owning thread. */
  alignas(64) struct arbor__ctx sched_ctx; /* the worker's own stack */
  struct arbor__task *current;
  struct arbor__task *pending; /* handed off from; finished by `current` */
  struct arbor__task *lifo; /* not stealable */
  unsigned lifo_runs;       /* LIFO runs in a row */
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

#endif /* ARBOR_SCHED_WORKER_H */
