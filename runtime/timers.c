/* runtime/timers.c -- timer entries on the per-worker wheels: receive and
 * sleep timeouts, arbor_send_after() and its cancellation.
 *
 * Each worker owns a wheel (runtime/timer.c) and fires it from the
 * scheduler's maintain hook, every few ticks and before it parks; it parks
 * no longer than its next deadline.  A process arms its timeout on the wheel
 * of the worker it runs on.  If it is woken some other way and is still on
 * that worker, it unlinks the entry at once; if it has moved, the entry is
 * left to fire later and do nothing (lazy cancellation), because a wheel is
 * only ever touched by its own worker.
 *
 * Entries are type-stable records in chunks, like process records, with a
 * state word holding a generation: firing and cancelling are both CASes from
 * "pending", so exactly one of them wins, and a stale timer reference fails
 * the generation check.  Memory: an entry is put back on a free list only by
 * the worker whose wheel held it, after it fired or was found cancelled;
 * chunks are freed with the runtime.  arbor_send_after() from outside the
 * runtime puts its entry in an inbox that a worker moves to its own wheel.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/rt.h"

enum { T_FREE = 0, T_PENDING = 1, T_FIRED = 2, T_CANCELLED = 3 };
#define LOCAL_TFREE_MAX 1024

/* The state word: generation, whether it is an arbor_send_after() timer
 * (only those can be cancelled by reference), and the state. */
static uint64_t tstate(uint32_t gen, bool send, unsigned st)
{
  return ((uint64_t)gen << 3) | (send ? 4u : 0u) | st;
}

static uint64_t estate(const struct arbor__tentry *e, unsigned st)
{
  return tstate(e->gen, e->kind == ARBOR__T_SEND, st);
}

uint64_t arbor__now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- entry records ------------------------------------------------------- */

static struct arbor__tentry *tslot(arbor_rt *rt, uint32_t idx)
{
  /* Acquire: pairs with the release store in new_entry(). */
  struct arbor__tentry *chunk = atomic_load_explicit(
      &rt->tchunks[idx >> ARBOR__CHUNK_BITS], memory_order_acquire);

  return chunk != NULL ? &chunk[idx & (ARBOR__CHUNK_SIZE - 1)] : NULL;
}

static struct arbor__tentry *new_entry(arbor_rt *rt)
{
  uint32_t idx =
      atomic_fetch_add_explicit(&rt->tnext_index, 1, memory_order_relaxed);
  struct arbor__tentry *e, *chunk;

  if (idx >= ARBOR__PID_MAX_INDEX)
    return NULL;
  pthread_mutex_lock(&rt->tlock);
  e = tslot(rt, idx);
  if (e == NULL) {
    chunk = calloc(ARBOR__CHUNK_SIZE, sizeof(*chunk));
    if (chunk != NULL) {
      for (uint32_t i = 0; i < ARBOR__CHUNK_SIZE; i++)
        chunk[i].index = (idx & ~(ARBOR__CHUNK_SIZE - 1)) + i;
      /* Release: pairs with the acquire in tslot(). */
      atomic_store_explicit(&rt->tchunks[idx >> ARBOR__CHUNK_BITS], chunk,
                            memory_order_release);
      e = &chunk[idx & (ARBOR__CHUNK_SIZE - 1)];
    }
  }
  pthread_mutex_unlock(&rt->tlock);
  return e;
}

static struct arbor__tentry *entry_alloc(arbor_rt *rt, int w, uint8_t kind)
{
  struct arbor__tentry *e = NULL;

  if (w >= 0 && rt->local[w].tfree != NULL) {
    e = rt->local[w].tfree;
    rt->local[w].tfree = e->next_free;
    rt->local[w].ntfree--;
  } else {
    pthread_mutex_lock(&rt->tlock);
    e = rt->tfree;
    if (e != NULL)
      rt->tfree = e->next_free;
    pthread_mutex_unlock(&rt->tlock);
    if (e == NULL)
      e = new_entry(rt);
    if (e == NULL)
      return NULL;
  }
  e->gen++;
  memset(&e->t, 0, sizeof(e->t));
  e->kind = kind;
  e->proc = NULL;
  atomic_store_explicit(&e->env, NULL, memory_order_relaxed);
  return e;
}

/* Make a filled-in entry pending: only now can its reference resolve. */
static void entry_publish(struct arbor__tentry *e)
{
  /* Release: pairs with the acquire load in arbor_timer_cancel(), which
   * then reads this generation's message. */
  atomic_store_explicit(&e->state, estate(e, T_PENDING),
                        memory_order_release);
}

/* Only the worker whose wheel held the entry frees it. */
static void entry_free(arbor_rt *rt, int w, struct arbor__tentry *e)
{
  atomic_store_explicit(&e->state, estate(e, T_FREE), memory_order_relaxed);
  if (e->gen == UINT32_MAX)
    return; /* retired: its next reference would repeat an old one */
  if (w >= 0 && rt->local[w].ntfree < LOCAL_TFREE_MAX) {
    e->next_free = rt->local[w].tfree;
    rt->local[w].tfree = e;
    rt->local[w].ntfree++;
    return;
  }
  pthread_mutex_lock(&rt->tlock);
  e->next_free = rt->tfree;
  rt->tfree = e;
  pthread_mutex_unlock(&rt->tlock);
}

/* ---- firing ----------------------------------------------------------------- */

struct fire_ctx {
  arbor_rt *rt;
  int w;
};

static void fire(struct arbor__timer *t, void *ud)
{
  struct fire_ctx *c = ud;
  struct arbor__tentry *e = (struct arbor__tentry *)(void *)t;
  uint64_t expect = estate(e, T_PENDING);
  struct arbor__proc *p;

  /* Acq_rel: against arbor_timer_cancel()'s CAS; exactly one wins. */
  if (atomic_compare_exchange_strong_explicit(&e->state, &expect,
                                              estate(e, T_FIRED),
                                              memory_order_acq_rel,
                                              memory_order_acquire)) {
    if (e->kind == ARBOR__T_SEND) {
      struct arbor__env *env =
          atomic_load_explicit(&e->env, memory_order_relaxed);

      if ((p = arbor__proc_peek(c->rt, e->pid)) != NULL) {
        arbor__deliver(p, e->pid, env, c->w);
      } else {
        arbor__env_free(c->rt, c->w, env);
        atomic_fetch_add_explicit(&c->rt->dropped, 1, memory_order_relaxed);
      }
    } else {
      /* The process record is type-stable, so reading it is safe even if
       * it is gone; the pid and the wait number say whether this timer is
       * still the one it waits for. */
      p = e->proc;
      if (atomic_load_explicit(&p->pid, memory_order_acquire) == e->pid &&
          atomic_load_explicit(&p->wait_seq, memory_order_relaxed) == e->seq) {
        /* SeqCst: the store half of the handshake in message.c. */
        atomic_store_explicit(&p->fired_seq, e->seq, memory_order_seq_cst);
        arbor__proc_wake_waiting(p);
      }
    }
  }
  entry_free(c->rt, c->w, e);
}

/* Move timers armed from outside the runtime onto this worker's wheel. */
static void drain_inbox(arbor_rt *rt, unsigned w)
{
  struct arbor__tentry *e;

  if (atomic_load_explicit(&rt->ntinbox, memory_order_acquire) == 0)
    return;
  pthread_mutex_lock(&rt->tlock);
  e = rt->tinbox;
  rt->tinbox = NULL;
  atomic_store_explicit(&rt->ntinbox, 0, memory_order_relaxed);
  pthread_mutex_unlock(&rt->tlock);
  while (e != NULL) {
    struct arbor__tentry *next = e->next_free;

    arbor__wheel_insert(&rt->local[w].wheel, &e->t, e->t.deadline);
    e = next;
  }
}

size_t arbor__timers_maintain(void *ud, unsigned w)
{
  arbor_rt *rt = ud;
  struct arbor__wheel *wh = &rt->local[w].wheel;
  struct fire_ctx c = {rt, (int)w};
  uint64_t now;

  drain_inbox(rt, w);
  if (wh->count == 0)
    return 0;
  now = arbor__now_ms();
  if (now < arbor__wheel_next(wh))
    return 0;
  return arbor__wheel_advance(wh, now, fire, &c);
}

int64_t arbor__timers_deadline(void *ud, unsigned w)
{
  arbor_rt *rt = ud;
  struct arbor__wheel *wh = &rt->local[w].wheel;
  uint64_t next;

  drain_inbox(rt, w);
  next = arbor__wheel_next(wh);
  if (next == UINT64_MAX)
    return -1;
  return (int64_t)(next * 1000000u);
}

/* ---- receive and sleep timeouts ----------------------------------------------- */

struct arbor__tentry *arbor__recv_timer_arm(struct arbor__proc *p,
                                            uint32_t seq, uint64_t deadline,
                                            uint32_t *gen, int *owner)
{
  arbor_rt *rt = p->rt;
  int w = p->task.worker; /* p is the caller: it runs on this worker */
  struct arbor__tentry *e;

  e = entry_alloc(rt, w, ARBOR__T_RECV);
  if (e == NULL)
    return NULL;
  e->proc = p;
  e->pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
  e->seq = seq;
  e->owner = (uint16_t)w;
  *gen = e->gen;
  *owner = w;
  entry_publish(e);
  arbor__wheel_insert(&rt->local[w].wheel, &e->t, deadline);
  return e;
}

void arbor__recv_timer_disarm(struct arbor__proc *p, struct arbor__tentry *e,
                              uint32_t gen, int owner)
{
  arbor_rt *rt = p->rt;
  int w = p->task.worker;
  /* The generation and owner from arm time: once this timer fired, its
   * entry may have been freed and armed again by a process on any worker
   * (which writes e->owner), and that timer must not be touched. */
  uint64_t expect = tstate(gen, false, T_PENDING);

  if (w == owner) {
    /* Still on the wheel we armed it on: unlink it now (a fired one has
     * already been unlinked and freed by the wheel). */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) == expect) {
      arbor__wheel_remove(&rt->local[w].wheel, &e->t);
      entry_free(rt, w, e);
    }
    return;
  }
  /* Moved to another worker: the owner frees it when it comes due. */
  atomic_compare_exchange_strong_explicit(&e->state, &expect,
                                          tstate(gen, false, T_CANCELLED),
                                          memory_order_acq_rel,
                                          memory_order_relaxed);
}

/* ---- arbor_send_after --------------------------------------------------------- */

int arbor_send_after(arbor_pid to, uint32_t tag, const void *data, size_t len,
                     int64_t ms, arbor_timer *out)
{
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__tentry *e;
  struct arbor__env *env;
  arbor_rt *rt;
  int w;

  if (to == 0 || tag >= ARBOR_TAG_SYSTEM || (data == NULL && len > 0) ||
      len > ARBOR_MSG_MAX || ms < 0)
    return ARBOR_EINVAL;
  rt = arbor__rt_of_pid(to);
  if (rt == NULL)
    return ARBOR_ESRCH;
  w = arbor__worker_of(rt, self);
  env = arbor__env_new(rt, w, len);
  if (env == NULL)
    return ARBOR_ENOMEM;
  if (len > 0)
    memcpy(env->data, data, len);
  env->tag = tag;
  env->from =
      self != NULL ? atomic_load_explicit(&self->pid, memory_order_relaxed) : 0;
  e = entry_alloc(rt, w, ARBOR__T_SEND);
  if (e == NULL) {
    arbor__env_free(rt, w, env);
    return ARBOR_ENOMEM;
  }
  e->pid = to;
  atomic_store_explicit(&e->env, env, memory_order_relaxed);
  e->owner = (uint16_t)(w >= 0 ? w : 0);
  /* Complete before a reference, even a guessed one, can cancel it. */
  entry_publish(e);
  if (out != NULL)
    *out = arbor__pid_make(rt->tag, e->gen, e->index);
  if (w >= 0) {
    arbor__wheel_insert(&rt->local[w].wheel, &e->t,
                        arbor__now_ms() + 1 + (uint64_t)ms);
    return 0;
  }
  /* From outside: any worker may take it, and worker 0 is told to look (an
   * unpark is never lost: it leaves NOTIFIED if the worker is awake). */
  e->t.deadline = arbor__now_ms() + 1 + (uint64_t)ms;
  pthread_mutex_lock(&rt->tlock);
  e->next_free = rt->tinbox;
  rt->tinbox = e;
  atomic_fetch_add_explicit(&rt->ntinbox, 1, memory_order_release);
  pthread_mutex_unlock(&rt->tlock);
  arbor__sched_poke(&rt->sched, 0);
  return 0;
}

int arbor_timer_cancel(arbor_timer ref)
{
  arbor_rt *rt = arbor__rt_of_pid(ref);
  uint32_t gen = (uint32_t)(ref >> ARBOR__PID_INDEX_BITS);
  struct arbor__tentry *e;
  struct arbor__env *env;
  uint64_t expect = tstate(gen, true, T_PENDING);

  if (ref == 0)
    return ARBOR_EINVAL;
  if (rt == NULL)
    return ARBOR_ESRCH;
  e = tslot(rt, arbor__pid_index(ref));
  if (e == NULL)
    return ARBOR_ESRCH;
  /* The message is read before the CAS: once the CAS wins, fire() on the
   * owner frees the entry at once, and the owner may arm it again for
   * another timer (a receive timeout stores NULL here).  Acquire: pairs
   * with entry_publish(), so this is generation gen's message -- the field
   * changes only after the state leaves pending(gen), and then the CAS
   * below fails and the value is not used. */
  if (atomic_load_explicit(&e->state, memory_order_acquire) != expect)
    return ARBOR_ESRCH;
  env = atomic_load_explicit(&e->env, memory_order_relaxed);
  /* Acq_rel: against the CAS in fire(); exactly one wins, and the winner
   * owns the message.  The expected word names a send_after timer of this
   * generation, so no other timer can be cancelled by a forged reference. */
  if (!atomic_compare_exchange_strong_explicit(&e->state, &expect,
                                               tstate(gen, true, T_CANCELLED),
                                               memory_order_acq_rel,
                                               memory_order_relaxed))
    return ARBOR_ESRCH;
  arbor__env_free(rt, arbor__local_worker(rt), env);
  return 0;
}

/* ---- life cycle ------------------------------------------------------------------ */

int arbor__timers_init(arbor_rt *rt)
{
  uint64_t now = arbor__now_ms();

  pthread_mutex_init(&rt->tlock, NULL);
  for (unsigned w = 0; w < rt->nworkers; w++)
    arbor__wheel_init(&rt->local[w].wheel, now);
  return 0;
}

void arbor__timers_fini(arbor_rt *rt)
{
  /* Every worker has stopped: free the messages of pending timers, then the
   * chunks.  Wheels hold only entries, which live in the chunks. */
  for (uint32_t c = 0; c < ARBOR__NCHUNKS; c++) {
    struct arbor__tentry *chunk =
        atomic_load_explicit(&rt->tchunks[c], memory_order_relaxed);

    if (chunk == NULL)
      continue;
    for (uint32_t i = 0; i < ARBOR__CHUNK_SIZE; i++) {
      struct arbor__tentry *e = &chunk[i];

      if ((atomic_load_explicit(&e->state, memory_order_relaxed) & 3) ==
              T_PENDING &&
          e->kind == ARBOR__T_SEND &&
          atomic_load_explicit(&e->env, memory_order_relaxed) != NULL)
        arbor__env_free(rt, -1,
                        atomic_load_explicit(&e->env, memory_order_relaxed));
    }
    free(chunk);
  }
  pthread_mutex_destroy(&rt->tlock);
}
