/* stress_restart.c -- a plain program (ThreadSanitizer runs it): a restart
 * storm.  Three supervisors (one_for_one, one_for_all, rest_for_one) under
 * a root each restart KIDS children as fast as they can: half of the
 * incarnations exit right after their init ack (normal or abnormal
 * returns, arbor_exit), the others wait until THREADS foreign threads kill
 * them (ARBOR_REASON_KILL, shutdown or a user reason) or a group restart
 * stops them; a third trap exits.  One thread also restarts, terminates
 * and lists children, racing the restarts.  After TARGET restarts the
 * children calm down, and then:
 *  - every pid named by a started or restarted event is named by exactly
 *    one exited event, after the tree is stopped, with a reason the child
 *    chose, a thread sent, or a supervisor's stop;
 *  - each restarted event's count is the previous one plus one, and
 *    arbor_sup_which_children() reports the same counts;
 *  - per child, the children's own count of init acks equals started +
 *    restarted events (nothing stops a supervisor mid-start here);
 *  - no start fails, no supervisor exceeds its intensity, and the root's
 *    children are never restarted.
 * Exits non-zero with a message on any difference.
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

#define SUPS 3
#define KIDS 5
#define THREADS 2
#define TARGET 100000
#define NBUCKETS 1024
#define MAX_KILLS 4

static atomic_int failed, calm, stop_threads, final_stop;
static atomic_long restarts_total;
static arbor_pid root;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
  va_list ap;

  flockfile(stderr);
  fputs("stress_restart: FAILED: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  atomic_store(&failed, 1);
}

static _Noreturn void die(void)
{
  fflush(stderr);
  _exit(1);
}

static uint64_t rnd(uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- what is known of each child incarnation (under lk) ------------------ */

enum { F_STARTED = 1, F_CALM = 2 /* waits to be ended */, F_INTENT = 4 };

struct kid {
  struct kid *next;
  arbor_pid pid;
  unsigned s, k, flags, nkills;
  int intent, kills[MAX_KILLS];
};

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static struct kid *table[NBUCKETS];
static struct {
  long acks, started, restarted, exited, rcur;
} cnt[SUPS][KIDS];
static arbor_pid sup_pid[SUPS];
static long root_started, root_exited;

static struct kid **slot_of(arbor_pid pid)
{
  struct kid **pp =
      &table[((pid * 0x9E3779B97F4A7C15ull) >> 54) & (NBUCKETS - 1)];

  while (*pp != NULL && (*pp)->pid != pid)
    pp = &(*pp)->next;
  return pp;
}

static bool reason_ok(const struct kid *c, int reason)
{
  if (reason == ARBOR_REASON_SHUTDOWN || reason == ARBOR_REASON_KILLED)
    return true; /* a supervisor's stop */
  if ((c->flags & F_INTENT) && reason == c->intent)
    return true;
  for (unsigned i = 0; i < c->nkills; i++)
    if (c->kills[i] == reason)
      return true;
  return false;
}

/* ---- events -------------------------------------------------------------- */

static void root_event(const arbor_event *ev)
{
  unsigned s;

  if (sscanf(ev->child_id, "s%u", &s) != 1 || s >= SUPS) {
    if (ev->kind != ARBOR_EV_SHUTDOWN_BEGUN &&
        ev->kind != ARBOR_EV_SHUTDOWN_FINISHED)
      fail("root: event %s for '%s'", arbor_event_name(ev->kind), ev->child_id);
    return;
  }
  if (ev->kind == ARBOR_EV_CHILD_STARTED && !atomic_load(&final_stop)) {
    root_started++;
    sup_pid[s] = ev->child;
  } else if (ev->kind == ARBOR_EV_CHILD_EXITED && atomic_load(&final_stop) &&
             ev->child == sup_pid[s] && ev->reason == ARBOR_REASON_SHUTDOWN) {
    root_exited++;
  } else {
    fail("root: unexpected %s for %s (reason %d)", arbor_event_name(ev->kind),
         ev->child_id, ev->reason);
  }
}

static void sup_event(const arbor_event *ev, unsigned s)
{
  struct kid **pp, *c;
  unsigned k;

  switch (ev->kind) {
  case ARBOR_EV_SHUTDOWN_BEGUN:
  case ARBOR_EV_SHUTDOWN_FINISHED:
    if (!atomic_load(&final_stop))
      fail("s%u shut down", s);
    return;
  case ARBOR_EV_CHILD_STARTED:
  case ARBOR_EV_CHILD_RESTARTED:
  case ARBOR_EV_CHILD_EXITED:
    break;
  default:
    fail("s%u: unexpected %s (reason %d)", s, arbor_event_name(ev->kind),
         ev->reason);
    return;
  }
  if (sscanf(ev->child_id, "c%u", &k) != 1 || k >= KIDS) {
    fail("s%u: event for '%s'", s, ev->child_id);
    return;
  }
  pp = slot_of(ev->child);
  c = *pp;
  if (c == NULL || c->s != s || c->k != k) {
    fail("s%u: %s for c%u %#" PRIx64 ", which never acked there", s,
         arbor_event_name(ev->kind), k, ev->child);
    return;
  }
  if (ev->kind == ARBOR_EV_CHILD_EXITED) {
    if (!(c->flags & F_STARTED))
      fail("s%u: c%u %#" PRIx64 " exited before its start was reported", s, k,
           ev->child);
    else if (!reason_ok(c, ev->reason))
      fail("s%u: c%u %#" PRIx64 " exited with %d, which nobody chose", s, k,
           ev->child, ev->reason);
    cnt[s][k].exited++;
    *pp = c->next; /* a second exited event will find nothing */
    free(c);
    return;
  }
  if (c->flags & F_STARTED) {
    fail("s%u: c%u %#" PRIx64 " started twice", s, k, ev->child);
    return;
  }
  c->flags |= F_STARTED;
  if (ev->kind == ARBOR_EV_CHILD_STARTED) {
    cnt[s][k].started++;
  } else {
    cnt[s][k].restarted++;
    atomic_fetch_add(&restarts_total, 1);
    if ((long)ev->restarts != ++cnt[s][k].rcur)
      fail("s%u: c%u restarted with count %" PRIu64 ", expected %ld", s, k,
           ev->restarts, cnt[s][k].rcur);
  }
}

static void sink(const arbor_event *ev, void *ud)
{
  unsigned s;

  (void)ud;
  pthread_mutex_lock(&lk);
  if (strcmp(ev->sup_name, "root") == 0)
    root_event(ev);
  else if (sscanf(ev->sup_name, "root.s%u", &s) == 1 && s < SUPS)
    sup_event(ev, s);
  else
    fail("event from '%s'", ev->sup_name);
  pthread_mutex_unlock(&lk);
}

/* ---- children ------------------------------------------------------------ */

struct slot {
  unsigned s, k;
};
static struct slot slots[SUPS][KIDS];

static int intend(struct kid *c, int reason)
{
  pthread_mutex_lock(&lk);
  c->flags |= F_INTENT;
  c->intent = reason;
  pthread_mutex_unlock(&lk);
  return reason;
}

static int child(void *arg)
{
  const struct slot *sl = arg;
  arbor_pid self = arbor_self();
  uint64_t rng = self * 0xD1B54A32D192ED03ull;
  struct kid *c = calloc(1, sizeof(*c));
  arbor_msg m;

  if (c == NULL)
    return 1;
  c->pid = self;
  c->s = sl->s;
  c->k = sl->k;
  pthread_mutex_lock(&lk);
  *slot_of(self) = c;
  cnt[sl->s][sl->k].acks++;
  pthread_mutex_unlock(&lk);
  if (rnd(&rng) % 3 == 0)
    arbor_trap_exit(1);
  arbor_init_ack(0);
  if (!atomic_load(&calm)) {
    switch (rnd(&rng) % 8) {
    case 0:
      return intend(c, ARBOR_NORMAL);
    case 1:
      return intend(c, 100 + (int)(rnd(&rng) % 100));
    case 2:
      return arbor_exit(intend(c, 200 + (int)(rnd(&rng) % 100)));
    case 3:
      return arbor_exit(intend(c, ARBOR_NORMAL));
    default:
      break; /* wait for a kill or a stop */
    }
  }
  /* From here on it never ends on its own. */
  pthread_mutex_lock(&lk);
  c->flags |= F_CALM;
  pthread_mutex_unlock(&lk);
  for (;;)
    if (arbor_recv(&m, -1) == 0 && m.tag == ARBOR_TAG_EXIT)
      return intend(c, m.reason); /* trapped: end with its reason */
}

/* ---- foreign threads ----------------------------------------------------- */

static void *storm(void *arg)
{
  uintptr_t id = (uintptr_t)arg;
  uint64_t rng = 0xABCD + id;
  arbor_child_info sups[SUPS], kids[KIDS];

  while (!atomic_load(&stop_threads) && !atomic_load(&failed)) {
    unsigned s = (unsigned)(rnd(&rng) % SUPS), nrun = 0;
    arbor_pid victim = 0;
    int n, reason;

    if (arbor_sup_which_children(root, sups, SUPS) != SUPS) {
      fail("root lost a child");
      break;
    }
    n = arbor_sup_which_children(sups[s].pid, kids, KIDS);
    if (n != KIDS) {
      fail("s%u: which_children: %d", s, n);
      break;
    }
    if (id == 1 && rnd(&rng) % 4 == 0) {
      /* Management racing the restarts: none of it counts as a restart. */
      char cid[8];
      arbor_pid pid;
      int e;

      snprintf(cid, sizeof(cid), "c%u", (unsigned)(rnd(&rng) % KIDS));
      e = rnd(&rng) % 3 == 0 ? arbor_sup_terminate_child(sups[s].pid, cid)
                             : arbor_sup_restart_child(sups[s].pid, cid, &pid);
      if (e != 0 && e != ARBOR_EBUSY)
        fail("s%u: terminate/restart %s: %s", s, cid, arbor_err_name(e));
      continue;
    }
    for (int i = 0; i < KIDS; i++)
      if (kids[i].pid != 0 && rnd(&rng) % ++nrun == 0)
        victim = kids[i].pid;
    if (victim == 0)
      continue;
    switch (rnd(&rng) % 3) {
    case 0:
      reason = ARBOR_REASON_SHUTDOWN;
      break;
    case 1:
      reason = 900 + (int)(rnd(&rng) % 100);
      break;
    default:
      reason = ARBOR_REASON_KILL;
    }
    if (reason > 0) {
      struct kid *c;

      pthread_mutex_lock(&lk);
      c = *slot_of(victim);
      if (c != NULL && c->nkills < MAX_KILLS)
        c->kills[c->nkills++] = reason;
      else
        reason = ARBOR_REASON_KILL;
      pthread_mutex_unlock(&lk);
    }
    arbor_kill(victim, reason);
  }
  return NULL;
}

/* ---- the end ------------------------------------------------------------- */

static arbor_pid sup_of(unsigned s)
{
  arbor_pid p;

  pthread_mutex_lock(&lk);
  p = sup_pid[s];
  pthread_mutex_unlock(&lk);
  return p;
}

/* Every child waiting to be ended or stopped for good, none being
 * restarted: with the threads gone, nothing changes any more. */
static bool still(void)
{
  arbor_child_info kids[KIDS];

  for (unsigned s = 0; s < SUPS; s++) {
    int n = arbor_sup_which_children(sup_of(s), kids, KIDS);

    if (n != KIDS) {
      fail("s%u: which_children: %d", s, n);
      die();
    }
    for (int i = 0; i < n; i++) {
      struct kid *c;
      bool ok;

      if (kids[i].state == ARBOR_CHILD_RESTARTING)
        return false;
      if (kids[i].pid == 0)
        continue;
      pthread_mutex_lock(&lk);
      c = *slot_of(kids[i].pid);
      ok = c != NULL && (c->flags & F_CALM);
      pthread_mutex_unlock(&lk);
      if (!ok)
        return false;
    }
  }
  return true;
}

int main(void)
{
  static const int restart[KIDS] = {ARBOR_PERMANENT, ARBOR_PERMANENT,
                                    ARBOR_TRANSIENT, ARBOR_PERMANENT,
                                    ARBOR_TRANSIENT};
  static const int shutdown[KIDS] = {ARBOR_SHUTDOWN_BRUTAL, 1000,
                                     ARBOR_SHUTDOWN_BRUTAL,
                                     ARBOR_SHUTDOWN_INFINITY, 1000};
  static char kid_ids[KIDS][8], sup_ids[SUPS][8];
  static arbor_child_spec kid_specs[SUPS][KIDS], sup_kids[SUPS];
  static arbor_sup_spec sup_specs[SUPS];
  arbor_sup_spec root_spec;
  arbor_child_info kids[KIDS];
  pthread_t th[THREADS];
  arbor_sup_error err;
  arbor_rt *rt;
  int reason, e;
  long left = 0;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}) != 0)
    return 2;
  arbor_rt_set_event_sink(rt, sink, NULL, ARBOR_LEVEL_DEBUG);
  for (unsigned k = 0; k < KIDS; k++)
    snprintf(kid_ids[k], sizeof(kid_ids[k]), "c%u", k);
  for (unsigned s = 0; s < SUPS; s++) {
    snprintf(sup_ids[s], sizeof(sup_ids[s]), "s%u", s);
    for (unsigned k = 0; k < KIDS; k++) {
      slots[s][k] = (struct slot){s, k};
      kid_specs[s][k] = (arbor_child_spec){.id = kid_ids[k],
                                           .start = child,
                                           .arg = &slots[s][k],
                                           .restart = restart[k],
                                           .shutdown_ms = shutdown[k]};
    }
    sup_specs[s] = (arbor_sup_spec){.name = sup_ids[s],
                                    .strategy = (int)s,
                                    .intensity = 1000000,
                                    .period_ms = 1000,
                                    .children = kid_specs[s],
                                    .nchildren = KIDS};
    sup_kids[s] = (arbor_child_spec){
        .id = sup_ids[s], .type = ARBOR_SUPERVISOR, .sup = &sup_specs[s]};
  }
  root_spec = (arbor_sup_spec){.name = "root",
                               .strategy = ARBOR_ONE_FOR_ONE,
                               .children = sup_kids,
                               .nchildren = SUPS};
  if ((e = arbor_sup_start(rt, &root_spec, &root, &err)) != 0) {
    fail("arbor_sup_start: %s", arbor_err_name(e));
    die();
  }
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, storm, (void *)i);
  while (atomic_load(&restarts_total) < TARGET && !atomic_load(&failed)) {
    struct timespec ts = {0, 2000000};

    nanosleep(&ts, NULL);
  }
  atomic_store(&stop_threads, 1);
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  if (atomic_load(&failed))
    die();

  /* Calm: let the restarts in flight finish, then compare. */
  atomic_store(&calm, 1);
  for (int tries = 0; !still(); tries++) {
    struct timespec ts = {0, 2000000};

    if (tries > 60000 || atomic_load(&failed)) {
      fail("the supervisors did not settle");
      die();
    }
    nanosleep(&ts, NULL);
  }
  for (unsigned s = 0; s < SUPS; s++) {
    int n = arbor_sup_which_children(sup_of(s), kids, KIDS);

    pthread_mutex_lock(&lk);
    for (int i = 0; i < n; i++) {
      unsigned k = (unsigned)(kids[i].id[1] - '0');

      if ((long)kids[i].restarts != cnt[s][k].rcur)
        fail("s%u: %s has restarted %" PRIu64 " times, events say %ld", s,
             kids[i].id, kids[i].restarts, cnt[s][k].rcur);
    }
    pthread_mutex_unlock(&lk);
  }
  atomic_store(&final_stop, 1);
  if (arbor_sup_stop(root, 60000) != 0 ||
      arbor_wait(rt, root, 60000, &reason) != 0 || reason != ARBOR_NORMAL) {
    fail("the tree did not stop cleanly");
    die();
  }

  pthread_mutex_lock(&lk);
  for (unsigned b = 0; b < NBUCKETS; b++)
    for (struct kid *c = table[b]; c != NULL; c = c->next, left++)
      fail("c%u of s%u %#" PRIx64 " (flags %#x): no exited event", c->k, c->s,
           c->pid, c->flags);
  for (unsigned s = 0; s < SUPS; s++) {
    for (unsigned k = 0; k < KIDS; k++) {
      long st = cnt[s][k].started + cnt[s][k].restarted;

      if (cnt[s][k].acks != st || cnt[s][k].exited != st)
        fail("s%u c%u: %ld acks, %ld started + restarted, %ld exited", s, k,
             cnt[s][k].acks, st, cnt[s][k].exited);
    }
  }
  if (root_started != SUPS || root_exited != SUPS)
    fail("root: %ld started, %ld exited", root_started, root_exited);
  pthread_mutex_unlock(&lk);
  if (atomic_load(&failed) || left != 0)
    die();
  arbor_rt_destroy(rt);
  printf("stress_restart: ok (%ld restarts", atomic_load(&restarts_total));
  for (unsigned s = 0; s < SUPS; s++) {
    long r = 0;

    for (unsigned k = 0; k < KIDS; k++)
      r += cnt[s][k].restarted;
    printf("%s s%u %ld", s == 0 ? ":" : ",", s, r);
  }
  printf(")\n");
  return 0;
}
