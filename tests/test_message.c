/* test_message.c -- mailboxes: send and receive, order, selective receive,
 * timeouts, timers, names, and sending from outside the runtime. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static arbor_rt *rt;

static void setup(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
}

static void teardown(void)
{
  arbor_rt_destroy(rt);
}

static arbor_pid spawn_j(arbor_fn fn, void *arg)
{
  arbor_pid pid;

  cr_assert_eq(arbor_spawn(rt, &pid, fn, arg,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_JOINABLE}),
               0);
  return pid;
}

static int join(arbor_pid pid)
{
  int reason = -12345;

  cr_assert_eq(arbor_wait(rt, pid, -1, &reason), 0);
  return reason;
}

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- basics --------------------------------------------------------------- */

static int echo_once(void *arg)
{
  arbor_msg m;
  char buf[64];

  (void)arg;
  if (arbor_recv(&m, -1) != 0 || m.len > sizeof(buf))
    return 1;
  if (m.len > 0)
    memcpy(buf, m.data, m.len);
  if (arbor_send(m.from, m.tag + 1, buf, m.len) != 0)
    return 2;
  return 0;
}

static int asks(void *arg)
{
  arbor_pid peer = *(arbor_pid *)arg;
  char big[1000];
  arbor_msg m;

  memset(big, 'x', sizeof(big));
  /* The buffer is free on return: clobber it before the peer reads. */
  char small[] = "hello";
  if (arbor_send(peer, 7, small, sizeof(small)) != 0)
    return 1;
  memset(small, 0, sizeof(small));
  if (arbor_recv(&m, -1) != 0)
    return 2;
  if (m.tag != 8 || m.len != 6 || strcmp(m.data, "hello") != 0 ||
      m.from != peer)
    return 3;
  (void)big;
  return 0;
}

Test(message, send_copies_the_body_and_receive_sees_tag_sender_and_bytes,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid echo = spawn_j(echo_once, NULL);
  arbor_pid asker = spawn_j(asks, &echo);

  cr_expect_eq(join(asker), 0);
  cr_expect_eq(join(echo), 0);
}

static int big_receiver(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, -1) != 0 || m.len != 100000)
    return 1;
  for (size_t i = 0; i < m.len; i++)
    if (((const unsigned char *)m.data)[i] != (unsigned char)(i * 7))
      return 2;
  if (arbor_recv(&m, -1) != 0 || m.len != 0 || m.data != NULL || m.tag != 3)
    return 3;
  return 0;
}

Test(message, large_and_empty_bodies_arrive_intact, .init = setup,
     .fini = teardown, .timeout = 10)
{
  unsigned char *buf = malloc(100000);
  arbor_pid pid = spawn_j(big_receiver, NULL);

  for (size_t i = 0; i < 100000; i++)
    buf[i] = (unsigned char)(i * 7);
  cr_assert_eq(arbor_send(pid, 1, buf, 100000), 0);
  free(buf);
  cr_assert_eq(arbor_send(pid, 3, NULL, 0), 0);
  cr_expect_eq(join(pid), 0);
}

static atomic_int owned_freed;
static void count_free(void *p)
{
  free(p);
  atomic_fetch_add(&owned_freed, 1);
}

static int owned_receiver(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, -1) != 0 || strcmp(m.data, "owned") != 0)
    return 1;
  /* Still valid until the next receive. */
  if (atomic_load(&owned_freed) != 0)
    return 2;
  if (arbor_recv(&m, -1) != 0)
    return 3;
  return atomic_load(&owned_freed) == 1 ? 0 : 4;
}

Test(message, an_owned_body_is_freed_once_after_the_receiver_is_done,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid pid = spawn_j(owned_receiver, NULL);
  char *body = strdup("owned");

  atomic_store(&owned_freed, 0);
  cr_assert_eq(arbor_send_owned(pid, 1, body, 6, count_free), 0);
  cr_assert_eq(arbor_send(pid, 2, NULL, 0), 0);
  cr_expect_eq(join(pid), 0);
  cr_expect_eq(atomic_load(&owned_freed), 1);
}

Test(message, invalid_sends_are_rejected, .init = setup, .fini = teardown)
{
  arbor_pid pid = spawn_j(echo_once, NULL);
  char c = 0;

  cr_expect_eq(arbor_send(0, 1, &c, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(pid, ARBOR_TAG_EXIT, &c, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(pid, ARBOR_TAG_SYSTEM, &c, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(pid, 1, NULL, 5), ARBOR_EINVAL);
  cr_expect_eq(arbor_send(pid, 1, &c, ARBOR_MSG_MAX + 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_send_owned(pid, 1, &c, 1, NULL), ARBOR_EINVAL);
  /* A pid naming no live runtime. */
  cr_expect_eq(arbor_send(pid ^ (0x7full << 56), 1, &c, 1), ARBOR_ESRCH);
  cr_expect_eq(arbor_recv(NULL, 0), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_sleep(1), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_send_after(pid, 1, &c, 1, -1, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_timer_cancel(0), ARBOR_EINVAL);
  cr_assert_eq(arbor_send(pid, 1, &c, 1), 0);
  join(pid);
}

Test(message, sending_to_an_exited_process_is_dropped_and_counted,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid pid = spawn_j(echo_once, NULL);
  char c = 1;
  int64_t before;

  cr_assert_eq(arbor_send(pid, 1, &c, 1), 0);
  join(pid);
  before = arbor_rt_dropped(rt);
  cr_expect_eq(arbor_send(pid, 1, &c, 1), 0);
  cr_expect_eq(arbor_send(pid, 1, &c, 1), 0);
  cr_expect_eq(arbor_rt_dropped(rt), before + 2);
}

/* ---- order ------------------------------------------------------------------ */

#define FIFO_N 1000000

struct fifo {
  arbor_pid receiver;
  int id;
};

static int fifo_sender(void *arg)
{
  struct fifo *f = arg;

  for (uint32_t i = 0; i < FIFO_N; i++) {
    uint32_t v[2] = {(uint32_t)f->id, i};

    if (arbor_send(f->receiver, 1, v, sizeof(v)) != 0)
      return 1;
  }
  return 0;
}

static int fifo_receiver(void *arg)
{
  uint32_t next[2] = {0, 0};
  arbor_msg m;

  (void)arg;
  for (long n = 0; n < 2L * FIFO_N; n++) {
    uint32_t v[2];

    if (arbor_recv(&m, -1) != 0 || m.len != sizeof(v))
      return 1;
    memcpy(v, m.data, sizeof(v));
    /* Each sender's messages arrive in order: no loss, no duplicate. */
    if (v[0] > 1 || v[1] != next[v[0]])
      return 2;
    next[v[0]]++;
  }
  return next[0] == FIFO_N && next[1] == FIFO_N ? 0 : 3;
}

Test(message, two_senders_times_a_million_arrive_in_order_with_none_lost,
     .init = setup, .fini = teardown, .timeout = 120)
{
  arbor_pid r = spawn_j(fifo_receiver, NULL);
  struct fifo a = {r, 0}, b = {r, 1};
  arbor_pid sa = spawn_j(fifo_sender, &a);
  arbor_pid sb = spawn_j(fifo_sender, &b);

  cr_expect_eq(join(sa), 0);
  cr_expect_eq(join(sb), 0);
  cr_expect_eq(join(r), 0);
}

struct foreign {
  arbor_pid to;
  int id;
};

static void *foreign_sender(void *arg)
{
  struct foreign *f = arg;

  for (uint32_t i = 0; i < 100000; i++) {
    uint32_t v[2] = {(uint32_t)f->id, i};

    while (arbor_send(f->to, 1, v, sizeof(v)) != 0)
      ;
  }
  return NULL;
}

static int foreign_receiver(void *arg)
{
  uint32_t next[3] = {0, 0, 0};
  arbor_msg m;

  (void)arg;
  for (long n = 0; n < 300000; n++) {
    uint32_t v[2];

    if (arbor_recv(&m, -1) != 0)
      return 1;
    memcpy(v, m.data, sizeof(v));
    if (m.from != 0 || v[0] > 2 || v[1] != next[v[0]]++)
      return 2;
  }
  return 0;
}

Test(message, sends_from_foreign_threads_arrive_in_order_per_thread,
     .init = setup, .fini = teardown, .timeout = 60)
{
  arbor_pid r = spawn_j(foreign_receiver, NULL);
  struct foreign f[3] = {{r, 0}, {r, 1}, {r, 2}};
  pthread_t th[3];

  for (int i = 0; i < 3; i++)
    pthread_create(&th[i], NULL, foreign_sender, &f[i]);
  for (int i = 0; i < 3; i++)
    pthread_join(th[i], NULL);
  cr_expect_eq(join(r), 0);
}

/* ---- selective receive -------------------------------------------------------- */

static atomic_int go;

static int odd_tag(const arbor_msg *m, void *arg)
{
  (void)arg;
  return m->tag % 2 == 1;
}

static int selective(void *arg)
{
  arbor_msg m;
  uint32_t order[10];
  int n = 0;

  (void)arg;
  while (!atomic_load(&go))
    arbor_yield();
  /* Mailbox: tags 1..8.  Take tag 5 first, then the odd ones by predicate,
   * then everything else in order. */
  if (arbor_recv_tag(&m, 5, -1) != 0)
    return 100;
  order[n++] = m.tag;
  while (arbor_recv_match(&m, odd_tag, NULL, 0) == 0)
    order[n++] = m.tag;
  while (arbor_recv(&m, 0) == 0)
    order[n++] = m.tag;
  static const uint32_t want[] = {5, 1, 3, 7, 2, 4, 6, 8};
  if (n != 8)
    return 200 + n;
  for (int i = 0; i < 8; i++)
    if (order[i] != want[i])
      return 300 + i;
  return 0;
}

Test(message, selective_receive_keeps_the_messages_it_skips_in_order,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid pid;

  atomic_store(&go, 0);
  pid = spawn_j(selective, NULL);
  for (uint32_t t = 1; t <= 8; t++)
    cr_assert_eq(arbor_send(pid, t, &t, sizeof(t)), 0);
  atomic_store(&go, 1);
  cr_expect_eq(join(pid), 0);
}

/* ---- timeouts and timers ------------------------------------------------------ */

static int times_out(void *arg)
{
  int64_t ms = (int64_t)(intptr_t)arg, t0 = now_ms(), dt;
  arbor_msg m;

  if (arbor_recv(&m, ms) != ARBOR_ETIMEDOUT)
    return 1;
  dt = now_ms() - t0;
  /* Never early; generous above (shared, noisy machines). */
  if (dt < ms)
    return 2;
  if (dt > ms + 2000)
    return 3;
  if (arbor_recv(&m, 0) != ARBOR_ETIMEDOUT)
    return 4;
  return 0;
}

Test(message, receive_times_out_no_earlier_than_asked, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid a = spawn_j(times_out, (void *)(intptr_t)50);
  arbor_pid b = spawn_j(times_out, (void *)(intptr_t)1);
  arbor_pid c = spawn_j(times_out, (void *)(intptr_t)200);

  cr_expect_eq(join(a), 0);
  cr_expect_eq(join(b), 0);
  cr_expect_eq(join(c), 0);
}

static int sleeps(void *arg)
{
  int64_t ms = (int64_t)(intptr_t)arg, t0 = now_ms(), dt;
  arbor_msg m;

  if (arbor_sleep(ms) != 0)
    return 1;
  dt = now_ms() - t0;
  if (dt < ms || dt > ms + 2000)
    return 2;
  /* A message that came during the sleep waits in the mailbox. */
  if (arbor_recv(&m, 0) != 0 || m.tag != 9)
    return 3;
  return 0;
}

Test(message, sleep_lasts_at_least_as_asked_and_keeps_messages,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid pid = spawn_j(sleeps, (void *)(intptr_t)100);

  cr_assert_eq(arbor_send(pid, 9, NULL, 0), 0);
  cr_expect_eq(join(pid), 0);
}

/* When the 30 ms timer was armed: the receiver measures from there (it may
 * start before or after the arming process runs). */
static _Atomic int64_t armed_at;

static int waits_for_timer(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_recv(&m, 5000) != 0 || m.tag != 42)
    return 1;
  /* The message carries the happens-before edge from the arming. */
  if (now_ms() - atomic_load(&armed_at) < 30)
    return 2;
  /* The cancelled one never comes. */
  if (arbor_recv(&m, 150) != ARBOR_ETIMEDOUT)
    return 3;
  return 0;
}

static int arms_timers(void *arg)
{
  arbor_pid to = *(arbor_pid *)arg;
  arbor_timer t1, t2;
  int v = 1;

  atomic_store(&armed_at, now_ms());
  if (arbor_send_after(to, 42, &v, sizeof(v), 30, &t1) != 0)
    return 1;
  if (arbor_send_after(to, 43, &v, sizeof(v), 60, &t2) != 0)
    return 2;
  if (arbor_timer_cancel(t2) != 0)
    return 3;
  if (arbor_timer_cancel(t2) != ARBOR_ESRCH)
    return 4;
  return 0;
}

Test(message, send_after_delivers_later_and_a_cancelled_timer_never_does,
     .init = setup, .fini = teardown, .timeout = 30)
{
  arbor_pid r = spawn_j(waits_for_timer, NULL);
  arbor_pid a = spawn_j(arms_timers, &r);

  cr_expect_eq(join(a), 0);
  cr_expect_eq(join(r), 0, "the receiver failed (see its return codes)");
}

Test(message, send_after_from_a_foreign_thread_delivers, .init = setup,
     .fini = teardown, .timeout = 30)
{
  arbor_pid r = spawn_j(waits_for_timer, NULL);
  arbor_timer t1, t2;
  int v = 1;

  atomic_store(&armed_at, now_ms());
  cr_assert_eq(arbor_send_after(r, 42, &v, sizeof(v), 30, &t1), 0);
  cr_assert_eq(arbor_send_after(r, 43, &v, sizeof(v), 100, &t2), 0);
  cr_assert_eq(arbor_timer_cancel(t2), 0);
  cr_expect_eq(join(r), 0);
  /* Fired: too late to cancel. */
  cr_expect_eq(arbor_timer_cancel(t1), ARBOR_ESRCH);
}

/* A timeout that fires and a message that arrives at the same moment:
 * exactly one of them ends the wait, and the other is not lost either. */
static atomic_long race_msgs, race_timeouts;

static int racer(void *arg)
{
  long rounds = (long)(intptr_t)arg;
  arbor_msg m;

  for (long i = 0; i < rounds; i++) {
    int err = arbor_recv(&m, 1);

    if (err == 0)
      atomic_fetch_add(&race_msgs, 1);
    else if (err == ARBOR_ETIMEDOUT)
      atomic_fetch_add(&race_timeouts, 1);
    else
      return 1;
  }
  /* Every message sent is received exactly once in the end. */
  while (arbor_recv(&m, 50) == 0)
    atomic_fetch_add(&race_msgs, 1);
  return 0;
}

Test(message, a_timer_racing_a_message_wakes_the_receiver_once,
     .init = setup, .fini = teardown, .timeout = 60)
{
  const long rounds = 2000;
  arbor_pid pid;
  long sent = 0;
  struct timespec ns = {0, 900000}, gap = {0, 5000000};

  atomic_store(&race_msgs, 0);
  atomic_store(&race_timeouts, 0);
  pid = spawn_j(racer, (void *)(intptr_t)rounds);
  /* Send about once per timeout period, so message and timer often race
   * for the same wait; every tenth gap is five timeout periods long, so
   * some waits surely end by timeout whatever the machine's load. */
  while (arbor_alive(rt, pid) == 1 && sent < rounds) {
    if (arbor_send(pid, 1, NULL, 0) == 0)
      sent++;
    nanosleep(sent % 10 == 0 ? &gap : &ns, NULL);
  }
  cr_expect_eq(join(pid), 0);
  cr_expect_eq(atomic_load(&race_msgs), sent, "received %ld of %ld",
               atomic_load(&race_msgs), sent);
  cr_expect_gt(atomic_load(&race_timeouts), 0);
}

/* ---- names -------------------------------------------------------------------- */

static atomic_int server_ready;

static int named_server(void *arg)
{
  arbor_msg m;

  (void)arg;
  if (arbor_register("server", arbor_self()) != 0)
    return 1;
  if (arbor_register("other", arbor_self()) != ARBOR_EEXIST)
    return 2;
  /* Only now may the test unregister the name (or the check above would
   * race it). */
  atomic_store(&server_ready, 1);
  if (arbor_recv(&m, -1) != 0 || m.tag != 5)
    return 3;
  return 0;
}

static int registers_taken(void *arg)
{
  (void)arg;
  return arbor_register("server", arbor_self()) == ARBOR_EEXIST ? 0 : 1;
}

Test(message, names_resolve_while_alive_and_are_freed_on_exit,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid pid, found = 0, other;

  atomic_store(&server_ready, 0);
  pid = spawn_j(named_server, NULL);
  while (!atomic_load(&server_ready))
    sched_yield();
  cr_assert_eq(arbor_whereis(rt, "server", &found), 0);
  cr_expect_eq(found, pid);
  other = spawn_j(registers_taken, NULL);
  cr_expect_eq(join(other), 0);
  cr_assert_eq(arbor_send_name(rt, "server", 5, NULL, 0), 0);
  cr_expect_eq(join(pid), 0);
  cr_expect_eq(arbor_whereis(rt, "server", &found), ARBOR_ESRCH);
  cr_expect_eq(arbor_send_name(rt, "server", 5, NULL, 0), ARBOR_ESRCH);
  /* Free for the next process. */
  atomic_store(&server_ready, 0);
  pid = spawn_j(named_server, NULL);
  while (!atomic_load(&server_ready))
    sched_yield();
  cr_assert_eq(arbor_whereis(rt, "server", &found), 0);
  cr_expect_eq(found, pid);
  cr_expect_eq(arbor_unregister(rt, "server"), 0);
  cr_expect_eq(arbor_unregister(rt, "server"), ARBOR_ESRCH);
  cr_assert_eq(arbor_send(pid, 5, NULL, 0), 0);
  cr_expect_eq(join(pid), 0);
}

Test(message, bad_names_are_rejected, .init = setup, .fini = teardown)
{
  char longname[300];
  arbor_pid pid;

  memset(longname, 'n', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  pid = spawn_j(echo_once, NULL);
  cr_expect_eq(arbor_register(NULL, pid), ARBOR_EINVAL);
  cr_expect_eq(arbor_register("", pid), ARBOR_EINVAL);
  cr_expect_eq(arbor_register(longname, pid), ARBOR_ENAMETOOLONG);
  cr_expect_eq(arbor_register("x", 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(rt, "x", NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_whereis(NULL, "x", &pid), ARBOR_EINVAL);
  cr_assert_eq(arbor_send(pid, 1, NULL, 0), 0);
  join(pid);
  cr_expect_eq(arbor_register("late", pid), ARBOR_ESRCH);
}

/* Many processes sleeping 1 ms at a time on one worker: timers fire in the
 * same advance, their entries are freed and re-armed by whichever process
 * runs first.  A woken process must never disarm an entry that another
 * process has armed again (this once left a sleeper asleep forever). */
static atomic_long sleeps_done;

static int sleeps_often(void *arg)
{
  long n = (long)(intptr_t)arg;

  for (long i = 0; i < n; i++) {
    if (arbor_sleep(1) != 0)
      return 1;
    atomic_fetch_add(&sleeps_done, 1);
  }
  return 0;
}

static int sleeps_and_receives(void *arg)
{
  long n = (long)(intptr_t)arg;
  arbor_msg m;

  for (long i = 0; i < n; i++) {
    if (arbor_recv(&m, 1) != ARBOR_ETIMEDOUT)
      return 1;
    atomic_fetch_add(&sleeps_done, 1);
  }
  return 0;
}

Test(message, concurrent_sleepers_never_lose_a_timer, .timeout = 60)
{
  arbor_pid pids[12];

  atomic_store(&sleeps_done, 0);
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers =
                                                          1u + round}),
                 0);
    for (int i = 0; i < 12; i++)
      pids[i] = spawn_j(i % 3 == 0 ? sleeps_and_receives : sleeps_often,
                        (void *)(intptr_t)150);
    for (int i = 0; i < 12; i++)
      cr_expect_eq(join(pids[i]), 0);
    arbor_rt_destroy(rt);
  }
  cr_expect_eq(atomic_load(&sleeps_done), 2L * 12 * 150);
}
