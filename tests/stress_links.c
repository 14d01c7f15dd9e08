/* stress_links.c -- a plain program (ThreadSanitizer runs it) that races
 * links, unlinks, monitors, demonitors, kills and exits, and checks that
 * every exit produced exactly the notifications Erlang's rules promise.
 *
 * Each round, the main thread spawns TARGETS joinable processes and each
 * of WATCHERS long-lived watchers spawns EXTRA more with ARBOR_SPAWN_LINK |
 * ARBOR_SPAWN_MONITOR; then all of them start at once:
 *  - targets link, unlink, monitor, demonitor, kill (untrappable, user,
 *    normal and shutdown reasons), message each other and yield, then
 *    return, arbor_exit() or wait to be killed; a third of them trap exits,
 *    so exits propagate along some links and are trapped on others;
 *  - watchers (which trap exits and are never killed) do the same to the
 *    targets, except exiting;
 *  - THREADS foreign threads kill and message random targets;
 *  - the main thread then kills whatever is left and collects every
 *    target's exit reason with arbor_wait(), which returns only after the
 *    exit's notifications were all delivered, and tells the watchers.
 * Checks, each failing the program with a message:
 *  - a watcher gets exactly one DOWN per monitor it did not demonitor,
 *    none for one it did (demonitor also removes one already delivered),
 *    and arbor_demonitor() of a monitor whose DOWN it took says ESRCH;
 *  - a watcher gets at most one EXIT per target, exactly one if its last
 *    successful call was a link, none if it never linked;
 *  - every DOWN (unless noproc) and EXIT carries the reason arbor_wait()
 *    reports;
 *  - targets see at most one DOWN per monitor and none after a demonitor;
 *  - nothing else ever arrives at a watcher.
 */
#include <arbor.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 1000
#define TARGETS 48
#define WATCHERS 3
#define EXTRA 4 /* per watcher */
#define NT (TARGETS + WATCHERS * EXTRA)
#define THREADS 2
#define WATCHER_OPS 64
#define TARGET_OPS 48
#define MAX_REFS (WATCHER_OPS + EXTRA)

enum { T_GO = 1, T_PING = 2, T_ROUND = 3, T_END = 4, T_QUIT = 5 };

static _Atomic arbor_pid tab[NT]; /* this round's targets */
static int truth[NT];             /* their exit reasons (main, then T_END) */
static atomic_int failed, chaos_on, quit;
static atomic_long downs, exits, demonitors, kills, links;

/* Watchers and the main thread meet here. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nready, ndone, nchecked;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
  va_list ap;

  flockfile(stderr);
  fputs("stress_links: FAILED: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  atomic_store(&failed, 1);
}

static uint64_t rnd(uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int random_reason(uint64_t *rng)
{
  switch (rnd(rng) % 4) {
  case 0:
    return ARBOR_REASON_KILL;
  case 1:
    return ARBOR_NORMAL;
  case 2:
    return ARBOR_REASON_SHUTDOWN;
  default:
    return 1000 + (int)(rnd(rng) % 100);
  }
}

static void bump(int *counter)
{
  pthread_mutex_lock(&mu);
  (*counter)++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static void await(int *counter, int want, const char *what)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 120;
  pthread_mutex_lock(&mu);
  while (*counter < want && !atomic_load(&failed))
    if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) {
      fail("timed out waiting for the watchers (%s)", what);
      break;
    }
  pthread_mutex_unlock(&mu);
}

/* ---- targets ------------------------------------------------------------- */

struct tref {
  uint64_t ref;
  bool live;
};

/* A target's own check of what reaches it. */
static void target_take(const arbor_msg *m, struct tref *refs, unsigned n)
{
  if (m->tag != ARBOR_TAG_DOWN)
    return;
  for (unsigned i = 0; i < n; i++) {
    if (refs[i].ref == m->ref) {
      if (!refs[i].live)
        fail("target %#" PRIx64 ": DOWN for ref %" PRIu64
             " after its DOWN or its demonitor",
             arbor_self(), m->ref);
      refs[i].live = false;
      return;
    }
  }
  fail("target %#" PRIx64 ": DOWN for unknown ref %" PRIu64, arbor_self(),
       m->ref);
}

static int target(void *arg)
{
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0xD1B54A32D192ED03ull;
  arbor_pid self = arbor_self();
  struct tref refs[TARGET_OPS];
  unsigned nrefs = 0, nops;
  arbor_msg m;

  rng ^= self;
  if (arbor_recv_tag(&m, T_GO, -1) != 0)
    return 1;
  if (rnd(&rng) % 3 == 0)
    arbor_trap_exit(1);
  nops = (unsigned)(rnd(&rng) % TARGET_OPS);
  for (unsigned i = 0; i < nops; i++) {
    arbor_pid p = atomic_load(&tab[rnd(&rng) % NT]);
    uint64_t ref;

    if (i % 2 == 1)
      arbor_yield(); /* interleave with the others */
    if (p == 0 || p == self)
      continue;
    switch (rnd(&rng) % 8) {
    case 0:
      arbor_link(p);
      break;
    case 1:
      arbor_unlink(p);
      break;
    case 2:
      if (arbor_monitor(p, &ref) == 0)
        refs[nrefs++] = (struct tref){ref, true};
      break;
    case 3:
      if (nrefs > 0) {
        struct tref *r = &refs[rnd(&rng) % nrefs];

        if (arbor_demonitor(r->ref) == 0)
          r->live = false;
      }
      break;
    case 4:
      arbor_kill(p, random_reason(&rng));
      break;
    case 5:
      arbor_send(p, T_PING, NULL, 0);
      break;
    case 6:
      arbor_yield();
      break;
    default:
      while (arbor_recv(&m, 0) == 0)
        target_take(&m, refs, nrefs);
    }
  }
  switch (rnd(&rng) % 4) {
  case 0:
    return 100 + (int)(rnd(&rng) % 100);
  case 1:
    return ARBOR_NORMAL;
  case 2:
    return arbor_exit(200 + (int)(rnd(&rng) % 100));
  default:
    for (;;) /* until killed */
      if (arbor_recv(&m, -1) == 0)
        target_take(&m, refs, nrefs);
  }
}

/* ---- watchers ------------------------------------------------------------ */

enum { L_NONE = 0, L_LINKED = 1, L_UNLINKED = 2 };
enum { R_LIVE = 0, R_DEMON = 1, R_DOWN = 2 };

struct watch {
  unsigned id;
  uint8_t link[NT];
  int nexit[NT], exit_reason[NT];
  struct {
    uint64_t ref;
    unsigned t;
    int state, reason;
  } refs[MAX_REFS];
  unsigned nrefs;
};

static int index_of(arbor_pid pid)
{
  for (int i = 0; i < NT; i++)
    if (atomic_load(&tab[i]) == pid)
      return i;
  return -1;
}

/* A notification (or the round's end, which returns true). */
static bool watch_take(struct watch *w, const arbor_msg *m)
{
  int t;

  switch (m->tag) {
  case ARBOR_TAG_DOWN:
    for (unsigned i = 0; i < w->nrefs; i++) {
      if (w->refs[i].ref != m->ref)
        continue;
      if (w->refs[i].state != R_LIVE || tab[w->refs[i].t] != m->from)
        fail("watcher %u: DOWN for ref %" PRIu64 " of %#" PRIx64
             " in state %d (a second DOWN, or after demonitor)",
             w->id, m->ref, m->from, w->refs[i].state);
      w->refs[i].state = R_DOWN;
      w->refs[i].reason = m->reason;
      atomic_fetch_add(&downs, 1);
      return false;
    }
    fail("watcher %u: DOWN for unknown ref %" PRIu64 " from %#" PRIx64, w->id,
         m->ref, m->from);
    return false;
  case ARBOR_TAG_EXIT:
    t = index_of(m->from);
    if (t < 0) {
      fail("watcher %u: EXIT from %#" PRIx64 ", not a target of this round",
           w->id, m->from);
      return false;
    }
    if (++w->nexit[t] > 1)
      fail("watcher %u: a second EXIT from target %d", w->id, t);
    w->exit_reason[t] = m->reason;
    atomic_fetch_add(&exits, 1);
    return false;
  case T_END:
    return true;
  case T_GO:
    fail("watcher %u: a second T_GO", w->id);
    return false;
  default:
    fail("watcher %u: unexpected message tag %#x", w->id, m->tag);
    return false;
  }
}

static void watch_op(struct watch *w, uint64_t *rng)
{
  unsigned t = (unsigned)(rnd(rng) % NT);
  arbor_pid p = atomic_load(&tab[t]);
  uint64_t ref;
  int e;

  switch (rnd(rng) % 6) {
  case 0:
    e = arbor_link(p);
    if (e == 0) {
      w->link[t] = L_LINKED;
      atomic_fetch_add(&links, 1);
    } else if (e != ARBOR_ESRCH) {
      fail("watcher %u: link: %s", w->id, arbor_err_name(e));
    }
    break;
  case 1:
    if (arbor_unlink(p) != 0)
      fail("watcher %u: unlink failed", w->id);
    if (w->link[t] == L_LINKED)
      w->link[t] = L_UNLINKED;
    break;
  case 2:
  case 3:
    if (w->nrefs < MAX_REFS && arbor_monitor(p, &ref) == 0) {
      w->refs[w->nrefs].ref = ref;
      w->refs[w->nrefs].t = t;
      w->refs[w->nrefs++].state = R_LIVE;
    }
    break;
  case 4:
    if (w->nrefs > 0) {
      unsigned i = (unsigned)(rnd(rng) % w->nrefs);

      e = arbor_demonitor(w->refs[i].ref);
      if (w->refs[i].state == R_LIVE && e == 0) {
        w->refs[i].state = R_DEMON;
        atomic_fetch_add(&demonitors, 1);
      } else if (w->refs[i].state != R_LIVE && e != ARBOR_ESRCH) {
        fail("watcher %u: demonitor of a finished monitor: %s", w->id,
             arbor_err_name(e));
      } else if (w->refs[i].state == R_LIVE && e != 0) {
        fail("watcher %u: demonitor of a live monitor: %s", w->id,
             arbor_err_name(e));
      }
    }
    break;
  default:
    arbor_kill(p, random_reason(rng));
    atomic_fetch_add(&kills, 1);
  }
}

static void watch_check(struct watch *w)
{
  for (unsigned i = 0; i < w->nrefs; i++) {
    unsigned t = w->refs[i].t;

    if (w->refs[i].state == R_LIVE)
      fail("watcher %u: no DOWN for ref %" PRIu64 " (target %u)", w->id,
           w->refs[i].ref, t);
    else if (w->refs[i].state == R_DOWN &&
             w->refs[i].reason != ARBOR_REASON_NOPROC &&
             w->refs[i].reason != truth[t])
      fail("watcher %u: DOWN of target %u said %d, it exited with %d", w->id, t,
           w->refs[i].reason, truth[t]);
  }
  for (unsigned t = 0; t < NT; t++) {
    if ((w->link[t] == L_LINKED && w->nexit[t] != 1) ||
        (w->link[t] == L_NONE && w->nexit[t] != 0))
      fail("watcher %u: %d EXITs from target %u, link state %u", w->id,
           w->nexit[t], t, w->link[t]);
    else if (w->nexit[t] == 1 && w->exit_reason[t] != truth[t])
      fail("watcher %u: EXIT of target %u said %d, it exited with %d", w->id, t,
           w->exit_reason[t], truth[t]);
  }
}

static int watcher(void *arg)
{
  unsigned id = (unsigned)(uintptr_t)arg;
  uint64_t rng = 0x5EED0000u + id;
  struct watch *w = malloc(sizeof(*w));
  arbor_msg m;

  if (w == NULL)
    return 1;
  arbor_trap_exit(1);
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      continue;
    if (m.tag == T_QUIT)
      break;
    if (m.tag != T_ROUND) {
      fail("watcher %u: tag %#x between rounds", id, m.tag);
      continue;
    }
    memset(w, 0, sizeof(*w));
    w->id = id;
    for (unsigned j = 0; j < EXTRA; j++) {
      unsigned t = TARGETS + id * EXTRA + j;
      arbor_pid p;
      uint64_t ref;

      if (arbor_spawn(NULL, &p, target, (void *)(uintptr_t)(t + 1),
                      &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK |
                                                   ARBOR_SPAWN_MONITOR |
                                                   ARBOR_SPAWN_JOINABLE,
                                          .monitor_ref = &ref}) != 0) {
        fail("watcher %u: spawn failed", id);
        continue;
      }
      atomic_store(&tab[t], p);
      w->link[t] = L_LINKED;
      w->refs[w->nrefs].ref = ref;
      w->refs[w->nrefs].t = t;
      w->refs[w->nrefs++].state = R_LIVE;
    }
    bump(&nready);
    /* Start with everyone else; exits of extras killed by the chaos threads
     * may come first. */
    for (;;) {
      if (arbor_recv(&m, -1) != 0)
        continue;
      if (m.tag == T_GO)
        break;
      if (watch_take(w, &m))
        fail("watcher %u: round ended early", id);
    }
    for (unsigned i = 0; i < WATCHER_OPS; i++) {
      while (arbor_recv(&m, 0) == 0)
        if (watch_take(w, &m))
          fail("watcher %u: round ended early", id);
      watch_op(w, &rng);
      arbor_yield();
    }
    bump(&ndone);
    /* Everything the round's exits owe us is here before T_END. */
    while (arbor_recv(&m, -1) != 0 || !watch_take(w, &m))
      ;
    watch_check(w);
    bump(&nchecked);
  }
  free(w);
  return 0;
}

/* ---- foreign threads ----------------------------------------------------- */

static void *chaos(void *arg)
{
  uint64_t rng = 0xC4A05u + (uintptr_t)arg;

  while (!atomic_load(&quit)) {
    arbor_pid p;

    if (!atomic_load(&chaos_on)) {
      struct timespec ts = {0, 100000};

      nanosleep(&ts, NULL);
      continue;
    }
    p = atomic_load(&tab[rnd(&rng) % NT]);
    if (p == 0)
      continue;
    if (rnd(&rng) % 2 == 0) {
      arbor_kill(p, random_reason(&rng));
      atomic_fetch_add(&kills, 1);
    } else {
      arbor_send(p, T_PING, NULL, 0);
    }
    if (rnd(&rng) % 4 == 0) {
      struct timespec ts = {0, 20000};

      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

int main(void)
{
  pthread_t th[THREADS];
  arbor_pid wp[WATCHERS];
  arbor_rt *rt;
  int reason;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}) != 0)
    return 2;
  for (unsigned i = 0; i < WATCHERS; i++)
    if (arbor_spawn(rt, &wp[i], watcher, (void *)(uintptr_t)i,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
      return 2;
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, chaos, (void *)i);

  for (int r = 0; r < ROUNDS && !atomic_load(&failed); r++) {
    for (unsigned t = 0; t < NT; t++)
      atomic_store(&tab[t], 0);
    for (unsigned t = 0; t < TARGETS; t++) {
      arbor_pid p;

      if (arbor_spawn(rt, &p, target, (void *)(uintptr_t)(r * NT + t + 1),
                      &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
        return 2;
      atomic_store(&tab[t], p);
    }
    for (unsigned i = 0; i < WATCHERS; i++)
      arbor_send(wp[i], T_ROUND, NULL, 0);
    await(&nready, (r + 1) * WATCHERS, "ready");
    atomic_store(&chaos_on, 1);
    for (unsigned t = 0; t < NT; t++)
      arbor_send(atomic_load(&tab[t]), T_GO, NULL, 0);
    for (unsigned i = 0; i < WATCHERS; i++)
      arbor_send(wp[i], T_GO, NULL, 0);
    await(&ndone, (r + 1) * WATCHERS, "ops");
    atomic_store(&chaos_on, 0);
    /* End the stragglers, then learn how each target really ended: a
     * wait returns once the exit's notifications are all delivered. */
    for (unsigned t = 0; t < NT; t++)
      arbor_kill(atomic_load(&tab[t]), ARBOR_REASON_KILL);
    for (unsigned t = 0; t < NT; t++) {
      if (arbor_wait(rt, atomic_load(&tab[t]), 60000, &truth[t]) != 0) {
        fail("round %d: target %u did not end", r, t);
        break;
      }
    }
    for (unsigned i = 0; i < WATCHERS; i++)
      arbor_send(wp[i], T_END, NULL, 0);
    await(&nchecked, (r + 1) * WATCHERS, "checks");
  }

  atomic_store(&quit, 1);
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  for (unsigned i = 0; i < WATCHERS; i++) {
    arbor_send(wp[i], T_QUIT, NULL, 0);
    if (arbor_wait(rt, wp[i], 60000, &reason) != 0 || reason != 0)
      fail("watcher %u did not end cleanly", i);
  }
  if (atomic_load(&failed)) {
    fflush(stderr);
    _exit(1);
  }
  arbor_rt_destroy(rt);
  printf("stress_links: ok (%d rounds of %d targets: %ld links, %ld monitors' "
         "DOWNs, %ld demonitors, %ld EXITs, %ld kills)\n",
         ROUNDS, NT, atomic_load(&links), atomic_load(&downs),
         atomic_load(&demonitors), atomic_load(&exits), atomic_load(&kills));
  return 0;
}
