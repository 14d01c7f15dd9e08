/* runtime/rt.h -- the runtime object and the process record, shared by the
 * runtime/ files.  Never installed. */
#ifndef ARBOR_RUNTIME_RT_H
#define ARBOR_RUNTIME_RT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "arbor.h"
#include "runtime/timer.h"
#include "sched/sched.h"

/* Pid layout: | tag:8 | generation:32 | index:24 |.  The tag names the
 * runtime (so a pid of another runtime does not resolve here), the index
 * names a process record, and the generation counts the record's
 * incarnations: a record whose generation would wrap is retired, so a pid
 * is never reused during the runtime's life. */
#define ARBOR__PID_INDEX_BITS 24
#define ARBOR__PID_GEN_BITS 32
#define ARBOR__PID_MAX_INDEX ((uint32_t)1 << ARBOR__PID_INDEX_BITS)
#define ARBOR__CHUNK_BITS 12
#define ARBOR__CHUNK_SIZE ((uint32_t)1 << ARBOR__CHUNK_BITS)
#define ARBOR__NCHUNKS (ARBOR__PID_MAX_INDEX / ARBOR__CHUNK_SIZE)

static inline arbor_pid arbor__pid_make(uint8_t tag, uint32_t gen, uint32_t idx)
{
  return ((uint64_t)tag << 56) | ((uint64_t)gen << ARBOR__PID_INDEX_BITS) |
         (uint64_t)idx;
}
static inline uint8_t arbor__pid_tag(arbor_pid pid)
{
  return (uint8_t)(pid >> 56);
}
static inline uint32_t arbor__pid_index(arbor_pid pid)
{
  return (uint32_t)(pid & (ARBOR__PID_MAX_INDEX - 1));
}

/* A dotted name, immutable and shared by reference (a child that is given
 * no name of its own shares its parent's). */
struct arbor__name {
  _Atomic uint32_t refs;
  uint32_t len;
  char s[];
};

/* A message envelope.  Small bodies live inline in envelopes recycled per
 * worker; larger ones get one malloc for envelope and body together; owned
 * bodies (arbor_send_owned) are the sender's buffer and free function. */
#define ARBOR__ENV_INLINE 64
struct arbor__env {
  struct arbor__env *_Atomic next; /* mailbox link (see mailbox.c) */
  uint32_t tag;
  int reason;
  arbor_pid from;
  arbor_pid to; /* the addressee: a reused record drops what is not its own */
  uint64_t ref;
  void *data;
  size_t len;
  void (*free_fn)(void *data); /* owned bodies only */
  uint8_t pooled;              /* an inline envelope from a worker pool */
  /* The body of a non-owned message follows the envelope in memory (no
   * flexible array member, so an envelope can be the mailbox's stub). */
};

/* A mailbox (see mailbox.c): a stack of envelopes pushed by CAS, or one of
 * these tags. */
#define ARBOR__MB_EMPTY ((struct arbor__env *)0)
#define ARBOR__MB_BLOCKED ((struct arbor__env *)1)
#define ARBOR__MB_CLOSED ((struct arbor__env *)2)
struct arbor__mailbox {
  struct arbor__env *_Atomic head; /* written by every sender */
};
enum { ARBOR__PUSH_OK = 0, ARBOR__PUSH_WAKE = 1, ARBOR__PUSH_CLOSED = 2 };

struct arbor__store; /* sup_store.c */

struct arbor__link_set {
  arbor_pid *pids;
  uint32_t n, cap;
};

/* A monitor, kept both by the target (ref, watcher) and by the watcher
 * (ref, target). */
struct arbor__mon {
  uint64_t ref;
  arbor_pid pid;
};
struct arbor__mon_set {
  struct arbor__mon *v;
  uint32_t n, cap;
};

struct arbor__defer {
  void (*fn)(void *arg);
  void *arg;
};
#define ARBOR__DEFER_INLINE 2

/* Process flags. */
enum {
  ARBOR__P_EXITED = 1u << 0,   /* its exit reason is final */
  ARBOR__P_JOINABLE = 1u << 1, /* stays a zombie until arbor_wait() */
  ARBOR__P_REAPED = 1u << 2,   /* a wait collected the zombie */
  ARBOR__P_EXITING = 1u << 4,  /* running its defers: no more kill checks */
  ARBOR__P_TRAP = 1u << 5,     /* traps exits */
  ARBOR__P_ACKED = 1u << 6,    /* arbor_init_ack() has reported (supervisor.c) */
};

/* What a blocked process waits for (proc->waiting). */
enum {
  ARBOR__WAIT_NONE = 0,
  ARBOR__WAIT_MSG = 1,   /* a message, a timer or a kill wakes it */
  ARBOR__WAIT_TIMER = 2, /* only its timer or a kill wakes it (sleep) */
};

/* A process record.  Records are type-stable: they live in chunks that are
 * freed only with the runtime, so a stale pid may always be looked up (and
 * then fails the generation check) without touching freed memory. */
struct arbor__proc {
  /* Cache line 0: the scheduler's part.  (The record is line-aligned.) */
  alignas(64) struct arbor__task task;

  /* Cache line 1: what a message hop touches -- lookup, mailbox, the
   * receiver's private list and its wait checks. */
  /* The current pid, 0 while the record is free.  Release-stored after the
   * record is set up; pairs with the acquire in arbor__proc_ref(). */
  _Atomic uint64_t pid;
  arbor_rt *rt; /* set when the record is made, never changed */
  /* Messages.  The mailbox head is written by senders; the rest only by the
   * process itself (and by the exit path, once it cannot run again). */
  struct arbor__mailbox mbox;
  struct arbor__env *saved, *saved_tail; /* fetched, not yet received */
  struct arbor__env *current;            /* what the last recv returned */
  /* 0, or KILLED_BIT | (uint32_t)reason: set once, by the first exit signal
   * that ends the process.  SeqCst: see message.c and signal.c. */
  _Atomic uint64_t kill;
  _Atomic uint32_t flags;     /* ARBOR__P_* */
  _Atomic uint32_t wait_seq;  /* numbers each wait, for stale timers */

  /* Cache line 2 onwards: the rest. */
  _Atomic uint32_t fired_seq; /* the wait whose timer fired */
  /* ARBOR__WAIT_TIMER while sleeping: its timer or a kill swaps it back
   * to NONE and wakes it.  (A receive waits on the mailbox's BLOCKED tag.) */
  _Atomic uint32_t waiting;
  /* One reference for being alive (or a zombie) plus one per lookup in
   * progress; whoever drops the last one recycles the record.  0 = free. */
  _Atomic uint32_t refs;
  _Atomic int reason; /* exit reason, final once EXITED is set */
  uint32_t index;
  uint32_t gen; /* generation of the current or last incarnation */
  arbor_fn fn;
  void *arg;
  struct arbor__name *name; /* NULL: no name */
  struct arbor__defer *defers;
  uint32_t ndefers, capdefers;
  struct arbor__defer defer_inline[ARBOR__DEFER_INLINE];

  /* Links, monitors, registered name: under `lock`. */
  _Atomic uint32_t lock; /* a spinlock: held for a few instructions */
  uint8_t dead;          /* no more links or monitors */
  struct arbor__link_set links;
  struct arbor__mon_set monitors; /* who monitors this process */
  struct arbor__mon_set watching; /* whom this process monitors (owner) */
  char *regname;

  /* Supervision (supervisor.c): the supervisor that started this process
   * (0 if none), set before it can run; for a supervisor process, its
   * store (a counted reference) and its private state. */
  arbor_pid sup;
  struct arbor__store *store;
  void *sup_state;
};

#define ARBOR__KILLED_BIT ((uint64_t)1 << 32)

/* Records a worker may hand out, or has freed but not yet published: bits
 * of the word of the free set (records.c) that starts at index base. */
struct arbor__claim {
  uint32_t base;
  uint64_t mask;
};

/* What one worker keeps for itself, touched only by that worker. */
struct arbor__proc_cache {
  alignas(64) struct arbor__claim claim; /* records to spawn into */
  struct arbor__claim pend;              /* records ended here, unpublished */
  struct arbor__env *envs; /* free inline envelopes */
  unsigned nenvs;
  struct arbor__tentry *tfree; /* free timer entries */
  unsigned ntfree;
  /* This worker's share of the live count: processes spawned here, and
   * processes that ended here (or failed to spawn here).  Written only by
   * the worker, read by anyone (see arbor__rt_live_sum()). */
  _Atomic uint64_t spawned, ended;
  struct arbor__wheel wheel; /* this worker's timers */
};

struct arbor_rt {
  /* Set at create, read-only afterwards. */
  uint8_t tag;
  unsigned nworkers;
  struct arbor__sched sched;
  struct arbor__proc_cache *local; /* one per worker */

  /* The process table (records.c): chunks of records, made as indices
   * grow, and the free set, a two-level bitmap over the index space. */
  alignas(64) struct arbor__proc *_Atomic chunks[ARBOR__NCHUNKS];
  _Atomic uint32_t next_index; /* indices handed out: a multiple of 64 */
  pthread_mutex_t grow_lock;
  _Atomic uint64_t *free_words, *free_sums;
  pthread_mutex_t free_lock;   /* the claim of threads that are not workers */
  struct arbor__claim foreign; /* under free_lock */

  /* Processes spawned from threads that are not rt's workers (minus their
   * failed spawns): the shared part of the live count (see runtime.c). */
  alignas(64) _Atomic int64_t live;
  alignas(64) _Atomic int shutting_down;

  /* Life cycle: shutdown waits on life_cv for live to reach 0. */
  pthread_mutex_t stop_lock; /* serialises shutdowns */
  pthread_mutex_t life_lock;
  pthread_cond_t life_cv;
  int stopped; /* under stop_lock */

  /* arbor_wait(): waiters sleep here; exits broadcast. */
  pthread_mutex_t join_lock;
  pthread_cond_t join_cv;

  alignas(64) _Atomic int64_t dropped;  /* messages to dead processes */
  alignas(64) _Atomic uint64_t next_ref; /* monitor references */

  /* Registered names: a chained hash table under reg_lock. */
  pthread_mutex_t reg_lock;
  struct arbor__regent **reg;
  size_t nreg, capreg;

  /* Supervision events (sup_event.c): the sink, under event_lock. */
  pthread_mutex_t event_lock;
  arbor_event_sink event_sink;
  void *event_ud;
  int event_level;

  /* Timers: entries live in chunks, like process records. */
  struct arbor__tentry *_Atomic tchunks[ARBOR__NCHUNKS];
  _Atomic uint32_t tnext_index;
  pthread_mutex_t tlock;          /* tchunks growth, tfree, tinbox */
  struct arbor__tentry *tfree;    /* under tlock */
  struct arbor__tentry *tinbox;   /* from foreign threads, under tlock */
  _Atomic size_t ntinbox;
};

/* A timer entry (timers.c).  Type-stable, like process records: a stale
 * reference can always be looked up and fails its generation check. */
enum { ARBOR__T_RECV = 1, ARBOR__T_SEND = 2 };
struct arbor__tentry {
  struct arbor__timer t; /* first: the wheel hands this back */
  uint32_t index, gen;
  /* gen << 3 | is-send << 2 | state (free, pending, fired, cancelled);
   * firing and cancelling are CASes from pending, so exactly one wins. */
  _Atomic uint64_t state;
  uint8_t kind;
  uint16_t owner;           /* the worker whose wheel holds it */
  struct arbor__proc *proc; /* T_RECV: the waiting process */
  arbor_pid pid;            /* its pid (T_RECV) or the target (T_SEND) */
  uint32_t seq;             /* T_RECV: the wait it belongs to */
  /* T_SEND: the message.  Atomic: arbor_timer_cancel() reads it while
   * the owner may be reusing the entry (see there). */
  struct arbor__env *_Atomic env;
  struct arbor__tentry *next_free;
};

/* runtime.c */
/* Live runtimes by tag (see runtime.c); a slot is set while its runtime
 * lives. */
extern arbor_rt *_Atomic arbor__runtimes[256];
/* The live runtime a pid belongs to, or NULL.  Acquire: pairs with the
 * CAS that publishes a runtime in arbor_rt_create(). */
static inline arbor_rt *arbor__rt_of_pid(arbor_pid pid)
{
  return atomic_load_explicit(&arbor__runtimes[arbor__pid_tag(pid)],
                              memory_order_acquire);
}
/* The number of live processes: rt->live plus every worker's share. */
int64_t arbor__rt_live_sum(const arbor_rt *rt);
/* Count a process in (+1, at spawn) or out (-1, at exit or a failed
 * spawn), from worker w of rt, or w = -1 from any other thread (which only
 * spawns).  A worker writes only its own counters, with plain stores: no
 * RMW on a line that all workers would bounce between them.  Ordering
 * against shutting_down is the caller's (see runtime.c). */
static inline void arbor__live_add(arbor_rt *rt, int w, int64_t d)
{
  if (w >= 0) {
    _Atomic uint64_t *c = d > 0 ? &rt->local[w].spawned : &rt->local[w].ended;

    /* Release: an `ended` that a summer reads with acquire brings the
     * matching spawn's count with it (it happened before the process ran,
     * through the run queue), so a sum never counts an exit without its
     * spawn. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_release);
  } else {
    atomic_fetch_add_explicit(&rt->live, d, memory_order_relaxed);
  }
}

/* process.c */
extern const struct arbor__sched_hooks arbor__proc_hooks;
/* The process running on the calling thread, or NULL. */
static inline struct arbor__proc *arbor__proc_current(void)
{
  struct arbor__task *t = arbor__sched_current();

  return t != NULL ? arbor__container_of(t, struct arbor__proc, task) : NULL;
}
int arbor__proc_ref(arbor_rt *rt, arbor_pid pid, struct arbor__proc **out);
void arbor__proc_unref(struct arbor__proc *p);
void arbor__proc_wake_all(arbor_rt *rt);
void arbor__proc_table_fini(arbor_rt *rt);
/* records.c: the free set of records (see there).  init returns 0 or
 * ARBOR_ENOMEM.  alloc gives a free record (its chunk made) for worker w of
 * rt, or w = -1 from any other thread, or NULL when out of indices or
 * memory; free puts a torn-down record back; flush publishes what worker w
 * has gathered (on its own thread). */
int arbor__records_init(arbor_rt *rt);
void arbor__records_fini(arbor_rt *rt);
struct arbor__proc *arbor__record_alloc(arbor_rt *rt, int w);
void arbor__record_free(arbor_rt *rt, struct arbor__proc *p);
void arbor__records_flush(arbor_rt *rt, unsigned w);
_Noreturn void arbor__proc_die(struct arbor__proc *p, int reason);
void arbor__proc_checkpoint_slow(struct arbor__proc *p);
int arbor__local_worker(arbor_rt *rt);
/* The calling worker's index in rt, or -1; cheap when the caller is the
 * running process `self` (NULL if unknown or none). */
static inline int arbor__worker_of(arbor_rt *rt, struct arbor__proc *self)
{
  if (self != NULL && self->rt == rt)
    return self->task.worker;
  return arbor__local_worker(rt);
}
/* Stack a process must have left when it makes a runtime call; below it
 * the call ends the process with ARBOR_ESTACKOVERFLOW.  So the runtime's
 * own code (a few hundred bytes deep on any path) never runs into a guard
 * page, where an overflow could not be recovered from: a lock half taken,
 * a task half queued. */
#if defined(ARBOR_HAVE_ASAN) || defined(ARBOR_HAVE_TSAN)
/* Sanitizer runtimes run on the process's stack too, with big frames of
 * their own (ASan's __asan_handle_no_return, before the exit's final
 * switch, needs several KiB). */
#define ARBOR__STACK_RESERVE 8192
#else
#define ARBOR__STACK_RESERVE 4096
#endif

/* At every runtime call a process makes: end it here if it has been asked
 * to end (an exit signal, or shutdown), or if it is about to run out of
 * stack.  Reading the frame address costs nothing; the stack bounds are
 * on the task's line, which the call touches anyway. */
static inline void arbor__proc_checkpoint(struct arbor__proc *p)
{
  if (arbor__unlikely(
          atomic_load_explicit(&p->kill, memory_order_relaxed) != 0 ||
          atomic_load_explicit(&p->rt->shutting_down, memory_order_relaxed) ||
          (uintptr_t)__builtin_frame_address(0) -
                  (uintptr_t)p->task.stack.lo <
              ARBOR__STACK_RESERVE))
    arbor__proc_checkpoint_slow(p);
}

/* A process's spinlock (see signal.c for what it guards).  Acquire: pairs
 * with the release in arbor__proc_unlock().  Held, it is a runtime critical
 * section: a stack overflow meanwhile aborts (sched/fault.c). */
static inline void arbor__proc_lock(struct arbor__proc *p)
{
  arbor__crit_enter();
  while (atomic_exchange_explicit(&p->lock, 1, memory_order_acquire) != 0)
    while (atomic_load_explicit(&p->lock, memory_order_relaxed) != 0)
      ;
}

static inline void arbor__proc_unlock(struct arbor__proc *p)
{
  atomic_store_explicit(&p->lock, 0, memory_order_release);
  arbor__crit_exit();
}

/* Spawn with the supervisor field set before the child can run. */
int arbor__spawn_ex(arbor_rt *rt, arbor_pid *pid, arbor_fn fn, void *arg,
                    const arbor_spawn_opts *opts, arbor_pid sup);
/* arbor_send() without the check that refuses the runtime's own tags. */
int arbor__send_sys(arbor_pid to, uint32_t tag, const void *data, size_t len);

/* mailbox.c */
void arbor__mailbox_init(struct arbor__mailbox *mb);
/* Any thread: push e (see mailbox.c).  ARBOR__PUSH_OK; _CLOSED (the
 * envelope is still the caller's); or _WAKE: the owner was blocked, and the
 * caller's CAS took BLOCKED back (to EMPTY) instead of pushing, so the
 * caller now owns the owner's wakeup and must hand e over itself
 * (arbor__deliver()). */
static inline int arbor__mailbox_push_mp(struct arbor__mailbox *mb,
                                         struct arbor__env *e)
{
  struct arbor__env *old = atomic_load_explicit(&mb->head, memory_order_relaxed);

  for (;;) {
    if (old == ARBOR__MB_CLOSED)
      return ARBOR__PUSH_CLOSED;
    /* SeqCst on success: orders the CAS against the owner's CAS to BLOCKED
     * and the checks that follow it (message.c); its release publishes
     * the envelope, for the acquire exchange in arbor__mailbox_fetch_sc(). */
    if (old == ARBOR__MB_BLOCKED) {
      if (atomic_compare_exchange_weak_explicit(
              &mb->head, &old, ARBOR__MB_EMPTY, memory_order_seq_cst,
              memory_order_relaxed))
        return ARBOR__PUSH_WAKE;
      continue;
    }
    atomic_store_explicit(&e->next, old, memory_order_relaxed); /* EMPTY: NULL */
    if (atomic_compare_exchange_weak_explicit(
            &mb->head, &old, e, memory_order_seq_cst, memory_order_relaxed))
      return ARBOR__PUSH_OK;
  }
}
/* Owner: move everything pushed so far, in send order, onto first..last. */
void arbor__mailbox_fetch_sc(struct arbor__mailbox *mb,
                             struct arbor__env **first,
                             struct arbor__env **last);
/* Owner: EMPTY -> BLOCKED; false if something arrived first. */
/* Owner: EMPTY -> BLOCKED, false if something arrived.  SeqCst: the owner
 * then reads its kill word and timer (see message.c); a killer or timer
 * writes those and then tries to unblock. */
static inline bool arbor__mailbox_block_sc(struct arbor__mailbox *mb)
{
  struct arbor__env *expect = ARBOR__MB_EMPTY;

  return atomic_compare_exchange_strong_explicit(
      &mb->head, &expect, ARBOR__MB_BLOCKED, memory_order_seq_cst,
      memory_order_relaxed);
}
/* Anyone: BLOCKED -> EMPTY; true if this call claimed the wake. */
bool arbor__mailbox_unblock(struct arbor__mailbox *mb);
/* Exit: close, returning what was never fetched (a newest-first chain). */
struct arbor__env *arbor__mailbox_close(struct arbor__mailbox *mb);
#define ARBOR__ENV_POOL_MAX 4096 /* inline envelopes a worker keeps */
/* An envelope for a len-byte body: from worker w's pool when the body fits
 * inline (w: the calling worker's index in rt, or -1; see
 * arbor__worker_of()), else one malloc.  Inline: this is every send. */
static inline struct arbor__env *arbor__env_new(arbor_rt *rt, int w,
                                                size_t len)
{
  struct arbor__env *e;

  if (arbor__likely(len <= ARBOR__ENV_INLINE)) {
    if (arbor__likely(w >= 0 && rt->local[w].envs != NULL)) {
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
  e->to = 0;
  e->ref = 0;
  return e;
}

/* Free e (running an owned body's free function): back to worker w's pool
 * if it came from one and the pool has room, else free(). */
static inline void arbor__env_free(arbor_rt *rt, int w, struct arbor__env *e)
{
  if (e->free_fn != NULL)
    e->free_fn(e->data);
  if (arbor__likely(e->pooled && w >= 0 &&
                    rt->local[w].nenvs < ARBOR__ENV_POOL_MAX)) {
    struct arbor__proc_cache *c = &rt->local[w];

    atomic_store_explicit(&e->next, c->envs, memory_order_relaxed);
    c->envs = e;
    c->nenvs++;
    return;
  }
  free(e);
}
void arbor__mailbox_drain(arbor_rt *rt, struct arbor__proc *p);
/* Push e (addressed to pid `to`) to record p's mailbox; wake p if that push
 * claimed it; drop and count e if p's mailbox is closed.  w: the calling
 * worker's index or -1.  p need not be pinned (see mailbox.c).  Inline:
 * this is every send. */
static inline void arbor__deliver(struct arbor__proc *p, arbor_pid to,
                                  struct arbor__env *e, int w)
{
  e->to = to;
  switch (arbor__mailbox_push_mp(&p->mbox, e)) {
  case ARBOR__PUSH_WAKE:
    /* Our CAS took BLOCKED back: we are the one to wake it, and it is off
     * its stack (BLOCKED is only set after the switch away).  Until it runs
     * again nobody else touches its private list -- every other waker
     * (killer, timer, shutdown) needs the same CAS -- so the envelope goes
     * straight to the end of it, sparing the owner an exchange on its
     * mailbox.  Order holds: the owner blocked only after fetching
     * everything pushed before, and what is pushed after goes to the
     * mailbox, which the owner fetches after this list.  Whoever runs it
     * next sees the list through the run queue (arbor__sched_ready()). */
    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    if (p->saved_tail != NULL)
      atomic_store_explicit(&p->saved_tail->next, e, memory_order_relaxed);
    else
      p->saved = e;
    p->saved_tail = e;
    arbor__sched_ready(&p->rt->sched, &p->task);
    break;
  case ARBOR__PUSH_CLOSED:
    arbor__env_free(p->rt, w, e);
    atomic_fetch_add_explicit(&p->rt->dropped, 1, memory_order_relaxed);
    break;
  default:
    break;
  }
}

/* The record with index idx in rt's table, or NULL if its chunk is not
 * made yet.  Acquire: pairs with the release store of the chunk in
 * process.c; its records' fixed fields are visible. */
static inline struct arbor__proc *arbor__proc_slot(arbor_rt *rt, uint32_t idx)
{
  struct arbor__proc *chunk = atomic_load_explicit(
      &rt->chunks[idx >> ARBOR__CHUNK_BITS], memory_order_acquire);

  return chunk != NULL ? &chunk[idx & (ARBOR__CHUNK_SIZE - 1)] : NULL;
}

/* The record pid names, if it is that pid's right now (no reference is
 * taken: the answer may be stale, which arbor__deliver() tolerates). */
static inline struct arbor__proc *arbor__proc_peek(arbor_rt *rt,
                                                   arbor_pid pid)
{
  struct arbor__proc *p;

  if (arbor__pid_tag(pid) != rt->tag)
    return NULL;
  p = arbor__proc_slot(rt, arbor__pid_index(pid));
  /* Acquire: pairs with the release store of the pid in arbor_spawn(). */
  if (p == NULL || atomic_load_explicit(&p->pid, memory_order_acquire) != pid)
    return NULL;
  return p;
}

/* signal.c */
void arbor__proc_notify_exit(struct arbor__proc *p, int reason);
int arbor__spawn_link(struct arbor__proc *parent, struct arbor__proc *child,
                      bool link, uint64_t *monitor_ref);
void arbor__proc_wake_waiting(struct arbor__proc *p);
/* message.c: the park hook (see sched.h and message.c). */
bool arbor__proc_park(struct arbor__task *t);
void arbor__signals_fini(struct arbor__proc *p);
/* arbor_monitor() by `self` of a nonzero pid of its own runtime, without
 * the checkpoint: for callers that hold memory a call that does not return
 * would leak (sup_call.c checkpoints before it allocates). */
int arbor__monitor(struct arbor__proc *self, arbor_pid pid, uint64_t *ref);

/* registry.c */
void arbor__registry_init(arbor_rt *rt);
void arbor__registry_fini(arbor_rt *rt);
void arbor__registry_drop(arbor_rt *rt, const char *name, arbor_pid pid);

/* timers.c */
int arbor__timers_init(arbor_rt *rt);
void arbor__timers_fini(arbor_rt *rt);
uint64_t arbor__now_ms(void);
/* Arm a receive or sleep timeout on the calling worker's wheel; *gen and
 * *owner receive the entry's generation and that worker's index, which
 * disarm needs: once the timer has fired, its entry may be reused by
 * another worker, so disarm must not read the entry's fields to learn them. */
struct arbor__tentry *arbor__recv_timer_arm(struct arbor__proc *p,
                                            uint32_t seq, uint64_t deadline,
                                            uint32_t *gen, int *owner);
void arbor__recv_timer_disarm(struct arbor__proc *p, struct arbor__tentry *e,
                              uint32_t gen, int owner);
size_t arbor__timers_maintain(void *ud, unsigned w);
int64_t arbor__timers_deadline(void *ud, unsigned w);

/* name.c */
int arbor__name_make(const struct arbor__name *parent, const char *seg,
                     struct arbor__name **out);
static inline struct arbor__name *arbor__name_ref(struct arbor__name *n)
{
  if (n != NULL)
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
  return n;
}
void arbor__name_unref(struct arbor__name *n);

#endif /* ARBOR_RUNTIME_RT_H */
