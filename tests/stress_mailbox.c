/* stress_mailbox.c -- a plain program (ThreadSanitizer runs it) that
 * hammers messaging: many senders (processes and foreign threads) into one
 * mailbox with per-sender order checked, receive timeouts racing sends,
 * and link/monitor/kill races.  Exits non-zero on any lost, duplicated or
 * reordered message, or a wrong number of exit notifications. */
#include <arbor.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SENDERS 4        /* processes */
#define THREADS 2        /* foreign threads */
#define PER_SENDER 50000
#define VICTIMS 2000

static arbor_pid sink;
static atomic_long failures;

static int sender(void *arg)
{
  uint32_t id = (uint32_t)(intptr_t)arg;

  for (uint32_t i = 0; i < PER_SENDER; i++) {
    uint32_t v[2] = {id, i};

    if (arbor_send(sink, 1, v, sizeof(v)) != 0)
      atomic_fetch_add(&failures, 1);
  }
  return 0;
}

static void *thread_sender(void *arg)
{
  sender(arg);
  return NULL;
}

static int receiver(void *arg)
{
  uint32_t next[SENDERS + THREADS] = {0};
  long total = (long)(SENDERS + THREADS) * PER_SENDER, got = 0;
  arbor_msg m;

  (void)arg;
  while (got < total) {
    uint32_t v[2];
    /* A short timeout races the senders on purpose. */
    int err = arbor_recv(&m, 1);

    if (err == ARBOR_ETIMEDOUT)
      continue;
    if (err != 0 || m.len != sizeof(v))
      return 1;
    memcpy(v, m.data, sizeof(v));
    if (v[0] >= SENDERS + THREADS || v[1] != next[v[0]]) {
      fprintf(stderr, "stress_mailbox: sender %u sent %u, expected %u\n",
              v[0], v[1], v[0] < SENDERS + THREADS ? next[v[0]] : 0);
      return 2;
    }
    next[v[0]]++;
    got++;
  }
  return 0;
}

/* ---- link / monitor / kill races ---------------------------------------- */

static int victim(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, -1) != 0)
    return 1;
  return 3;
}

static int watcher(void *arg)
{
  long exits = 0, downs = 0;
  arbor_msg m;

  (void)arg;
  arbor_trap_exit(1);
  for (int i = 0; i < VICTIMS; i++) {
    arbor_pid v;
    uint64_t ref;

    if (arbor_spawn(NULL, &v, victim, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK |
                                                 ARBOR_SPAWN_MONITOR,
                                        .monitor_ref = &ref}) != 0)
      return 1;
    /* Race: a kill, a message and (sometimes) an unlink at once. */
    switch (i % 3) {
    case 0:
      arbor_kill(v, 7);
      break;
    case 1:
      arbor_send(v, 1, NULL, 0);
      arbor_kill(v, ARBOR_REASON_KILL);
      break;
    default:
      arbor_send(v, 1, NULL, 0);
      break;
    }
  }
  /* Exactly one EXIT and one DOWN per victim. */
  while (exits < VICTIMS || downs < VICTIMS) {
    if (arbor_recv(&m, 5000) != 0)
      break;
    if (m.tag == ARBOR_TAG_EXIT)
      exits++;
    else if (m.tag == ARBOR_TAG_DOWN)
      downs++;
  }
  if (arbor_recv(&m, 100) == 0)
    return 2; /* a duplicate notification */
  return exits == VICTIMS && downs == VICTIMS ? 0 : 3;
}

int main(void)
{
  pthread_t th[THREADS];
  arbor_pid r, w, s[SENDERS];
  int reason;
  arbor_rt *rt;

  if (arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}) != 0)
    return 2;
  if (arbor_spawn(rt, &r, receiver, NULL,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
    return 2;
  sink = r;
  for (int i = 0; i < SENDERS; i++)
    if (arbor_spawn(rt, &s[i], sender, (void *)(intptr_t)i, NULL) != 0)
      return 2;
  for (int i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, thread_sender, (void *)(intptr_t)(SENDERS + i));
  if (arbor_spawn(rt, &w, watcher, NULL,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}) != 0)
    return 2;
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  if (arbor_wait(rt, r, -1, &reason) != 0 || reason != 0) {
    fprintf(stderr, "stress_mailbox: receiver failed (%d)\n", reason);
    return 1;
  }
  if (arbor_wait(rt, w, -1, &reason) != 0 || reason != 0) {
    fprintf(stderr, "stress_mailbox: watcher failed (%d)\n", reason);
    return 1;
  }
  arbor_rt_destroy(rt);
  if (atomic_load(&failures) != 0)
    return 1;
  printf("stress_mailbox: ok (%d messages in order, %d link/monitor races)\n",
         (SENDERS + THREADS) * PER_SENDER, VICTIMS);
  return 0;
}
