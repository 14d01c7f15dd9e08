/* runtime/rt.h -- the runtime object and the process record, shared by the
 * runtime/ files.  Never installed. */
#ifndef ARBOR_RUNTIME_RT_H
#define ARBOR_RUNTIME_RT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arbor.h"
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
  ARBOR__P_KILL = 1u << 3,     /* asked to end with kill_reason */
  ARBOR__P_EXITING = 1u << 4,  /* running its defers: no more kill checks */
};

/* A process record.  Records are type-stable: they live in chunks that are
 * freed only with the runtime, so a stale pid may always be looked up (and
 * then fails the generation check) without touching freed memory. */
struct arbor__proc {
  struct arbor__task task;
  arbor_rt *rt;
  uint32_t index;
  uint32_t gen; /* generation of the current or last incarnation */
  /* The current pid, 0 while the record is free.  Release-stored after the
   * record is set up; pairs with the acquire in arbor__proc_ref(). */
  _Atomic uint64_t pid;
  /* One reference for being alive (or a zombie) plus one per lookup in
   * progress; whoever drops the last one recycles the record.  0 = free. */
  _Atomic uint32_t refs;
  _Atomic uint32_t flags;  /* ARBOR__P_* */
  _Atomic int reason;      /* exit reason, final once EXITED is set */
  int kill_reason;         /* written before KILL is set */
  arbor_fn fn;
  void *arg;
  struct arbor__name *name; /* NULL: no name */
  struct arbor__defer *defers;
  uint32_t ndefers, capdefers;
  struct arbor__defer defer_inline[ARBOR__DEFER_INLINE];
  struct arbor__proc *next_free;
};

/* Free records kept by one worker, touched only by that worker. */
struct arbor__proc_cache {
  alignas(64) struct arbor__proc *head;
  unsigned n;
};

struct arbor_rt {
  /* Set at create, read-only afterwards. */
  uint8_t tag;
  unsigned nworkers;
  struct arbor__sched sched;
  struct arbor__proc_cache *local; /* one per worker */

  /* The process table: chunks of records, allocated as indices grow. */
  alignas(64) struct arbor__proc *_Atomic chunks[ARBOR__NCHUNKS];
  _Atomic uint32_t next_index;
  pthread_mutex_t grow_lock;
  pthread_mutex_t free_lock;
  struct arbor__proc *free; /* under free_lock */
  _Atomic size_t nfree;     /* written under free_lock; read as a hint */

  /* Live processes.  SeqCst: pairs with shutting_down (see shutdown). */
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
};

/* process.c */
extern const struct arbor__sched_hooks arbor__proc_hooks;
struct arbor__proc *arbor__proc_current(void);
int arbor__proc_ref(arbor_rt *rt, arbor_pid pid, struct arbor__proc **out);
void arbor__proc_unref(struct arbor__proc *p);
void arbor__proc_wake_all(arbor_rt *rt);
void arbor__proc_table_fini(arbor_rt *rt);

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
