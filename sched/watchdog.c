/* sched/watchdog.c -- the stuck-task watchdog: one thread per scheduler that
 * notices a worker stuck in one task, reports the task once, and makes sure
 * nothing runnable stays queued behind it.
 *
 * Detection, after Go's sysmon.  A task that makes runtime calls switches
 * within ARBOR__BUDGET of them, and every switch bumps its worker's n_runs
 * in prepare(); so "no runtime call for T" shows up as "n_runs has not moved
 * for T while a task is running".  Every T/4 the thread samples each
 * worker's (n_runs, current) pair with relaxed loads, as sysmon reads
 * schedtick: a worker whose pair has stayed the same, with a task in it,
 * since a sample at least T ago is stuck.  That is a report once per
 * episode (the stuck() hook), and a rescue at every sample until it ends.
 * The owner pays nothing for this: it already counted runs.  A stale or
 * torn pair cannot make a report by itself: it would have to stay visible,
 * unchanged, for a whole threshold.  The reported duration is the time
 * since the first sample that saw the pair, so it is at least T and at most
 * one period short of the truth.  The wall clock counts: a worker blocked
 * in a system call, or descheduled by the kernel, is stuck all the same.
 *
 * Rescue.  The worker's ring is stealable, and its owner, stuck, pushes
 * nothing more to it except through runtime calls that also wake thieves;
 * but the other workers may all be asleep, since a push that found someone
 * searching woke nobody, and fairness pushes wake nobody at all.  So at
 * every sample of a stuck worker whose ring (or the injection queue) holds
 * work, the watchdog wakes a sleeper (arbor__idle_notify(), a no-op if a
 * worker is searching).  The LIFO slot is not stealable: the owner reads and
 * writes it with plain accesses, and must not pay an atomic RMW or a fence
 * for it on the message-hop path.  The watchdog takes it over with an
 * asymmetric Dekker handshake (the light/heavy barrier pair of Folly's
 * AsymmetricMemoryBarrier and liburcu's membarrier flavour):
 *
 *   owner (arbor__lifo_enter/leave)     watchdog (arbor__watchdog_take_lifo)
 *   busy = 1                   (Wo)     fenced = 1                    (Ww)
 *   compiler barrier                    membarrier()                  (B1)
 *   if fenced != 0 (Ro): keep off       while busy != 0 (Rw): wait
 *   ... the slot ...                    membarrier()                  (B2)
 *   compiler barrier                    take the slot's task
 *   busy = 0                            fenced = 2, release           (W2)
 *
 * B1 runs a full barrier on every CPU that runs a thread of this process
 * (MEMBARRIER_CMD_PRIVATE_EXPEDITED; a thread that is not running passes
 * one when it is scheduled again), at some instruction boundary of the
 * owner, and full barriers on the watchdog before and after.  If that
 * boundary falls before Wo, then Ro comes after the owner's barrier, which
 * came after Ww was visible: Ro reads 1 and the owner keeps off the slot.
 * If it falls after Wo, then Wo is visible when B1 returns: Rw reads 1 and
 * the watchdog waits until the owner is done.  Either way, the two never
 * use the slot at once: Wo pairs with Rw, Ww with Ro, through B1.  The
 * watchdog may read busy == 0 from an access that ended after B1 while the
 * slot write before it is not yet visible (not on x86, but on a weaker
 * machine): B2 makes everything the owner did before that store visible
 * before the watchdog reads the slot.  Every access the owner begins after
 * B1 reads fenced != 0 and keeps off the slot: a woken task goes to its
 * ring instead (stealable, and the push wakes a thief), and a blocking task
 * does not hand off, so the owner next goes through its scheduler loop,
 * which is where it puts fenced back from 2 to 0 (arbor__lifo_reopen(); its
 * acquire pairs with W2, so the watchdog's write of the slot happens before
 * the owner's next access).  Until then the watchdog leaves the worker's
 * slot alone: it only starts a take when fenced == 0.
 *
 * Without membarrier (kernels before 4.14, sandboxes that filter the call)
 * the watchdog still reports and wakes thieves but never touches a LIFO
 * slot.  (Valgrind 3.19 passes the call through; it runs one thread at a
 * time anyway.)  ThreadSanitizer does not understand membarrier
 * either: ARBOR__TSAN_RELEASE/ACQUIRE (sched/worker.h) tell it about the
 * edge the handshake makes, from the owner's last slot access to the take.
 *
 * Memory: struct arbor__watchdog is allocated by arbor__watchdog_start(),
 * its thread joined by arbor__watchdog_stop() (first thing in
 * arbor__sched_stop(), so it never waits on a worker that has left), and it
 * is freed by arbor__watchdog_fini().  The task pointers it samples are
 * only handed to the stuck() hook, whose owner (runtime/) keeps tasks
 * type-stable; the tasks it takes from a LIFO slot are runnable tasks,
 * which nobody frees.
 */
#include "sched/worker.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__) && defined(SYS_membarrier)
#include <linux/membarrier.h>
#define HAVE_MEMBARRIER 1
#endif

/* What the watchdog thread remembers of one worker. */
struct wd_seen {
  uint64_t runs;             /* n_runs at the last sample */
  struct arbor__task *task;  /* current at the last sample */
  int64_t since;             /* when that pair was first seen */
  bool reported;             /* this episode has been reported */
};

struct arbor__watchdog {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cv; /* CLOCK_MONOTONIC: destroy wakes the thread with it */
  bool stop;         /* under lock */
  bool running;      /* the thread was started and not yet joined */
  bool take_lifo;    /* membarrier works and there are thieves */
  int64_t period_ns;
  _Atomic uint64_t scans; /* completed samples, for tests */
  struct wd_seen seen[];  /* per worker; the watchdog thread only */
};

/* ---- membarrier ------------------------------------------------------- */

static pthread_once_t mb_once = PTHREAD_ONCE_INIT;
static bool mb_ok;                /* written once, inside mb_once */
static atomic_bool mb_test_off;   /* arbor__watchdog_test_no_membarrier() */
static atomic_bool mb_failed;     /* a barrier failed: never rely on it */

#if defined(HAVE_MEMBARRIER)
static long sys_membarrier(int cmd)
{
  return syscall(SYS_membarrier, cmd, 0, 0);
}
#endif

static void mb_init(void)
{
#if defined(HAVE_MEMBARRIER)
  long cmds = sys_membarrier(MEMBARRIER_CMD_QUERY);

  /* Registration is per process and cannot be undone; registering again
   * (another runtime, another library) is harmless. */
  mb_ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
          sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
#endif
}

bool arbor__watchdog_membarrier(void)
{
  /* pthread_once orders mb_init's write before our read. */
  pthread_once(&mb_once, mb_init);
  return mb_ok && !atomic_load_explicit(&mb_test_off, memory_order_relaxed) &&
         !atomic_load_explicit(&mb_failed, memory_order_relaxed);
}

void arbor__watchdog_test_no_membarrier(bool off)
{
  atomic_store_explicit(&mb_test_off, off, memory_order_relaxed);
}

/* The heavy barrier: a full fence here and on every running thread of the
 * process.  The C11 fences around it make the watchdog's side of the
 * argument at the top of the file hold for the compiler as well. */
static bool heavy_barrier(void)
{
  long r;

  atomic_thread_fence(memory_order_seq_cst);
#if defined(HAVE_MEMBARRIER)
  r = sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
#else
  r = -1;
#endif
  atomic_thread_fence(memory_order_seq_cst);
  return r == 0;
}

/* ---- the LIFO handshake -------------------------------------------------- */

bool arbor__lifo_reopen(struct arbor__worker *w)
{
  /* Acquire: pairs with the release store of 2 in
   * arbor__watchdog_take_lifo(); its write of the slot happens before our
   * next access to it. */
  if (atomic_load_explicit(&w->lifo_fenced, memory_order_acquire) != 2)
    return false;
  /* Relaxed: the watchdog starts another take only after it reads this 0,
   * and everything it needs from us then goes through the handshake. */
  atomic_store_explicit(&w->lifo_fenced, 0, memory_order_relaxed);
  return true;
}

struct arbor__task *arbor__watchdog_take_lifo(struct arbor__sched *s,
                                              struct arbor__worker *w)
{
  struct arbor__task *t;

  arbor__assert(atomic_load_explicit(&w->lifo_fenced, memory_order_relaxed) ==
                0);
  /* Ww.  Relaxed: B1's fences order it. */
  atomic_store_explicit(&w->lifo_fenced, 1, memory_order_relaxed);
  if (!heavy_barrier())
    goto fail;
  /* Rw.  The owner's accesses are a few instructions long; if its thread
   * was preempted inside one, let it run. */
  while (atomic_load_explicit(&w->lifo_busy, memory_order_relaxed) != 0)
    sched_yield();
  if (!heavy_barrier()) /* B2 */
    goto fail;
  ARBOR__TSAN_ACQUIRE(&w->lifo_busy);
  t = w->lifo;
  w->lifo = NULL;
  /* W2.  Release: pairs with the acquire in arbor__lifo_reopen(). */
  atomic_store_explicit(&w->lifo_fenced, 2, memory_order_release);
  if (t != NULL) {
    /* As a push from a foreign thread: the task is RUNNABLE, and was
     * published to the owner (by a wake or a spawn) before it went into
     * the slot; B2 and the queue's mutex carry that to whoever pops it. */
    arbor__inject_push(s, &t, 1);
    arbor__idle_notify(s);
  }
  return t;

fail:
  /* A barrier failed (it cannot once registered, but be safe): we cannot
   * know what the owner did with the slot, so we leave it alone, hand it
   * back, and never try again.  The owner may have kept off it meanwhile,
   * which is harmless; we wrote nothing it reads but fenced. */
  atomic_store_explicit(&mb_failed, true, memory_order_relaxed);
  atomic_store_explicit(&w->lifo_fenced, 0, memory_order_relaxed);
  return NULL;
}

/* ---- the thread ------------------------------------------------------------ */

static int64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Worker w is stuck: make sure what is queued behind it can run elsewhere. */
static void rescue(struct arbor__sched *s, struct arbor__watchdog *wd,
                   struct arbor__worker *w)
{
  if (wd->take_lifo &&
      atomic_load_explicit(&w->lifo_fenced, memory_order_relaxed) == 0 &&
      arbor__watchdog_membarrier())
    (void)arbor__watchdog_take_lifo(s, w);
  if (arbor__runq_has_work(w) ||
      atomic_load_explicit(&s->inject.len, memory_order_relaxed) != 0)
    arbor__idle_notify(s);
}

static void scan(struct arbor__sched *s, struct arbor__watchdog *wd)
{
  int64_t now = now_ns();

  for (unsigned i = 0; i < s->nworkers; i++) {
    struct arbor__worker *w = s->workers[i];
    struct wd_seen *e = &wd->seen[i];
    /* Relaxed, both: see "Detection" at the top of the file. */
    uint64_t runs = atomic_load_explicit(&w->n_runs, memory_order_relaxed);
    struct arbor__task *t =
        atomic_load_explicit(&w->current, memory_order_relaxed);

    if (runs != e->runs || t != e->task) {
      *e = (struct wd_seen){.runs = runs, .task = t, .since = now};
      continue;
    }
    if (t == NULL || now - e->since < s->watchdog_ns)
      continue;
    /* Rescue first: the queued tasks should not wait for a slow sink. */
    if (s->nworkers > 1)
      rescue(s, wd, w);
    if (!e->reported) {
      e->reported = true;
      if (s->hooks.stuck != NULL)
        s->hooks.stuck(s->hooks.ud, t, i, now - e->since);
    }
  }
  atomic_store_explicit(
      &wd->scans, atomic_load_explicit(&wd->scans, memory_order_relaxed) + 1,
      memory_order_relaxed);
}

static void *watchdog_main(void *arg)
{
  struct arbor__sched *s = arg;
  struct arbor__watchdog *wd = s->watchdog;

  pthread_mutex_lock(&wd->lock);
  while (!wd->stop) {
    int64_t until = now_ns() + wd->period_ns;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000),
                          .tv_nsec = (long)(until % 1000000000)};

    /* A spurious wakeup only makes one sample early. */
    (void)pthread_cond_timedwait(&wd->cv, &wd->lock, &ts);
    if (wd->stop)
      break;
    pthread_mutex_unlock(&wd->lock);
    scan(s, wd);
    pthread_mutex_lock(&wd->lock);
  }
  pthread_mutex_unlock(&wd->lock);
  return NULL;
}

bool arbor__sched_stuck_confirm(struct arbor__sched *s, unsigned w,
                                const struct arbor__task *t)
{
  struct arbor__worker *wk = s->workers[w];
  const struct wd_seen *e = &s->watchdog->seen[w];

  /* The caller read t's identity after the sample that found it stuck; if
   * w has not switched since, that identity is the stuck run's.  Relaxed,
   * as the samples: a task that ended in between has moved either word. */
  return atomic_load_explicit(&wk->current, memory_order_relaxed) == t &&
         atomic_load_explicit(&wk->n_runs, memory_order_relaxed) == e->runs;
}

int arbor__watchdog_start(struct arbor__sched *s)
{
  struct arbor__watchdog *wd;
  pthread_condattr_t ca;

  if (s->watchdog_ns <= 0)
    return 0;
  wd = calloc(1, sizeof(*wd) + s->nworkers * sizeof(wd->seen[0]));
  if (wd == NULL)
    return -ENOMEM;
  pthread_mutex_init(&wd->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&wd->cv, &ca);
  pthread_condattr_destroy(&ca);
  /* A quarter of the threshold: a stuck worker is seen within 1.25 T. */
  wd->period_ns = s->watchdog_ns / 4 > 0 ? s->watchdog_ns / 4 : 1;
  /* With one worker there is nobody to hand the slot to. */
  wd->take_lifo = s->nworkers > 1 && arbor__watchdog_membarrier();
  s->watchdog = wd;
  if (pthread_create(&wd->thread, NULL, watchdog_main, s) != 0)
    return -EAGAIN; /* the caller stops the workers; fini frees wd */
  wd->running = true;
  pthread_setname_np(wd->thread, "arbor-watchdog");
  return 0;
}

void arbor__watchdog_stop(struct arbor__sched *s)
{
  struct arbor__watchdog *wd = s->watchdog;

  if (wd == NULL || !wd->running)
    return;
  pthread_mutex_lock(&wd->lock);
  wd->stop = true;
  pthread_cond_signal(&wd->cv);
  pthread_mutex_unlock(&wd->lock);
  pthread_join(wd->thread, NULL);
  wd->running = false;
}

void arbor__watchdog_fini(struct arbor__sched *s)
{
  struct arbor__watchdog *wd = s->watchdog;

  if (wd == NULL)
    return;
  arbor__watchdog_stop(s);
  pthread_cond_destroy(&wd->cv);
  pthread_mutex_destroy(&wd->lock);
  free(wd);
  s->watchdog = NULL;
}

uint64_t arbor__watchdog_scans(const struct arbor__sched *s)
{
  return s->watchdog != NULL
             ? atomic_load_explicit(&s->watchdog->scans, memory_order_relaxed)
             : 0;
}
