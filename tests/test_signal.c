/* test_signal.c -- links, monitors, trap_exit and kill: Erlang's table, one
 * test per row, and exactly one notification per link and monitor. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

static arbor_rt *rt;

static void setup(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2}), 0);
}

static void setup1(void)
{
  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
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

/* A process that ends with the reason it is told, when told. */
static int ends_when_told(void *arg)
{
  arbor_msg m;
  int reason;

  (void)arg;
  if (arbor_recv_tag(&m, 1, -1) != 0)
    return -1;
  memcpy(&reason, m.data, sizeof(reason));
  return reason;
}

static void tell_end(arbor_pid pid, int reason)
{
  cr_assert_eq(arbor_send(pid, 1, &reason, sizeof(reason)), 0);
}

/* Scenario: a watcher (trapping or not) links to a target, tells it to end
 * with `reason`, and reports what it saw. */
struct scen {
  int trap, reason;
  arbor_pid target;
  /* results */
  int got_exit, exit_reason;
  arbor_pid exit_from;
};

static int linked_watcher(void *arg)
{
  struct scen *s = arg;
  arbor_msg m;

  arbor_trap_exit(s->trap);
  if (arbor_link(s->target) != 0)
    return -100;
  tell_end(s->target, s->reason);
  /* Wait for its end to show up (as a message, or by ending us). */
  while (arbor_alive(NULL, s->target) == 1)
    arbor_yield();
  if (arbor_recv_tag(&m, ARBOR_TAG_EXIT, 200) == 0) {
    s->got_exit++;
    s->exit_reason = m.reason;
    s->exit_from = m.from;
  }
  if (arbor_recv_tag(&m, ARBOR_TAG_EXIT, 50) == 0)
    s->got_exit++; /* a duplicate would be a bug */
  return 77;
}

Test(signal, a_normal_exit_does_not_kill_a_linked_process, .init = setup,
     .fini = teardown, .timeout = 10)
{
  struct scen s = {.trap = 0, .reason = ARBOR_NORMAL};
  arbor_pid w;

  s.target = spawn_j(ends_when_told, NULL);
  w = spawn_j(linked_watcher, &s);
  cr_expect_eq(join(w), 77);
  cr_expect_eq(join(s.target), ARBOR_NORMAL);
  cr_expect_eq(s.got_exit, 0);
}

Test(signal, an_abnormal_exit_kills_a_linked_process_with_the_same_reason,
     .init = setup, .fini = teardown, .timeout = 10)
{
  struct scen s = {.trap = 0, .reason = 13};
  arbor_pid w;

  s.target = spawn_j(ends_when_told, NULL);
  w = spawn_j(linked_watcher, &s);
  cr_expect_eq(join(w), 13);
  cr_expect_eq(join(s.target), 13);
}

Test(signal, a_trapping_process_gets_an_exit_message_for_a_normal_exit,
     .init = setup, .fini = teardown, .timeout = 10)
{
  struct scen s = {.trap = 1, .reason = ARBOR_NORMAL};
  arbor_pid w;

  s.target = spawn_j(ends_when_told, NULL);
  w = spawn_j(linked_watcher, &s);
  cr_expect_eq(join(w), 77);
  cr_expect_eq(s.got_exit, 1);
  cr_expect_eq(s.exit_reason, ARBOR_NORMAL);
  cr_expect_eq(s.exit_from, s.target);
  join(s.target);
}

Test(signal, a_trapping_process_gets_an_exit_message_for_an_abnormal_exit,
     .init = setup, .fini = teardown, .timeout = 10)
{
  struct scen s = {.trap = 1, .reason = 21};
  arbor_pid w;

  s.target = spawn_j(ends_when_told, NULL);
  w = spawn_j(linked_watcher, &s);
  cr_expect_eq(join(w), 77);
  cr_expect_eq(s.got_exit, 1);
  cr_expect_eq(s.exit_reason, 21);
  cr_expect_eq(s.exit_from, s.target);
  join(s.target);
}

/* ---- kill ------------------------------------------------------------------- */

static atomic_int trapper_ready;

static int traps_and_waits(void *arg)
{
  arbor_msg m;

  (void)arg;
  arbor_trap_exit(1);
  atomic_store(&trapper_ready, 1);
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      return -1;
    if (m.tag == ARBOR_TAG_EXIT && m.reason == 99)
      return 99; /* saw a trappable signal as a message */
  }
}

Test(signal, the_kill_reason_cannot_be_trapped_and_ends_with_killed,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t;

  atomic_store(&trapper_ready, 0);
  t = spawn_j(traps_and_waits, NULL);
  while (!atomic_load(&trapper_ready))
    sched_yield();
  cr_assert_eq(arbor_kill(t, ARBOR_REASON_KILL), 0);
  cr_expect_eq(join(t), ARBOR_REASON_KILLED);
}

Test(signal, a_trappable_kill_becomes_an_exit_message_from_the_killer,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t;

  atomic_store(&trapper_ready, 0);
  t = spawn_j(traps_and_waits, NULL);
  while (!atomic_load(&trapper_ready))
    sched_yield();
  /* From outside: the message is from pid 0. */
  cr_assert_eq(arbor_kill(t, 99), 0);
  cr_expect_eq(join(t), 99);
}

Test(signal, an_abnormal_kill_ends_a_process_that_does_not_trap,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL);

  cr_assert_eq(arbor_kill(t, 31), 0);
  cr_expect_eq(join(t), 31);
}

Test(signal, a_normal_kill_is_ignored_by_a_process_that_does_not_trap,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL);

  cr_assert_eq(arbor_kill(t, ARBOR_NORMAL), 0);
  cr_expect_eq(arbor_wait(rt, t, 100, NULL), ARBOR_ETIMEDOUT);
  tell_end(t, 4);
  cr_expect_eq(join(t), 4);
}

static int killed_links(void *arg)
{
  arbor_pid *victim = arg;
  arbor_msg m;

  arbor_trap_exit(1);
  if (arbor_link(*victim) != 0)
    return -1;
  cr_assert_eq(arbor_kill(*victim, ARBOR_REASON_KILL), 0);
  if (arbor_recv_tag(&m, ARBOR_TAG_EXIT, 5000) != 0)
    return -2;
  return m.from == *victim ? m.reason : -3;
}

Test(signal, killed_reaches_linked_processes_as_a_trappable_killed,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid victim = spawn_j(traps_and_waits, NULL);
  arbor_pid w = spawn_j(killed_links, &victim);

  cr_expect_eq(join(w), ARBOR_REASON_KILLED);
  cr_expect_eq(join(victim), ARBOR_REASON_KILLED);
}

static int exits_self_normally(void *arg)
{
  (void)arg;
  arbor_kill(arbor_self(), ARBOR_NORMAL);
  return 55; /* not reached */
}

Test(signal, a_normal_exit_signal_to_oneself_ends_the_caller_normally,
     .init = setup, .fini = teardown, .timeout = 10)
{
  cr_expect_eq(join(spawn_j(exits_self_normally, NULL)), ARBOR_NORMAL);
}

/* ---- kill takes effect: blocked, sleeping, running ------------------------------ */

static atomic_int defers_ran, started;
static void note_defer(void *arg)
{
  (void)arg;
  atomic_fetch_add(&defers_ran, 1);
}

static int blocks_forever(void *arg)
{
  arbor_msg m;

  (void)arg;
  cr_assert_eq(arbor_defer(note_defer, NULL), 0);
  atomic_fetch_add(&started, 1);
  if (arbor_recv_tag(&m, 12345, -1) != 0)
    return -2;
  return -1;
}

static int sleeps_long(void *arg)
{
  (void)arg;
  cr_assert_eq(arbor_defer(note_defer, NULL), 0);
  atomic_fetch_add(&started, 1);
  arbor_sleep(1000000);
  return -1;
}

static volatile unsigned long busy_sink;

static int runs_busy(void *arg)
{
  unsigned long x = 0;

  (void)arg;
  cr_assert_eq(arbor_defer(note_defer, NULL), 0);
  atomic_fetch_add(&started, 1);
  for (;;) {
    for (int i = 0; i < 10000; i++)
      x += (unsigned long)i;
    busy_sink = x;
    arbor_yield();
  }
}

static void kill_one(arbor_fn fn)
{
  arbor_pid t;

  atomic_store(&defers_ran, 0);
  atomic_store(&started, 0);
  t = spawn_j(fn, NULL);
  while (!atomic_load(&started))
    sched_yield();
  cr_assert_eq(arbor_kill(t, 17), 0);
  cr_expect_eq(join(t), 17);
  cr_expect_eq(atomic_load(&defers_ran), 1);
}

Test(signal, killing_a_blocked_process_takes_effect_at_once, .init = setup,
     .fini = teardown, .timeout = 10)
{
  kill_one(blocks_forever);
}

Test(signal, killing_a_sleeping_process_takes_effect_at_once, .init = setup,
     .fini = teardown, .timeout = 10)
{
  kill_one(sleeps_long);
}

Test(signal, killing_a_running_process_takes_effect_at_its_next_call,
     .init = setup, .fini = teardown, .timeout = 10)
{
  kill_one(runs_busy);
}

/* ---- monitors --------------------------------------------------------------------- */

static int monitors_one(void *arg)
{
  arbor_pid target = *(arbor_pid *)arg;
  uint64_t r1, r2;
  arbor_msg m;
  int downs = 0;

  if (arbor_monitor(target, &r1) != 0 || arbor_monitor(target, &r2) != 0)
    return -1;
  if (r1 == r2)
    return -2;
  tell_end(target, 8);
  /* Monitors stack: two monitors, two DOWNs, each with its reference. */
  while (arbor_recv_tag(&m, ARBOR_TAG_DOWN, 300) == 0) {
    if (m.from != target || m.reason != 8 || (m.ref != r1 && m.ref != r2))
      return -3;
    downs++;
  }
  return downs;
}

Test(signal, a_monitor_gets_one_down_with_pid_reference_and_reason,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL);
  arbor_pid w = spawn_j(monitors_one, &t);

  cr_expect_eq(join(w), 2);
  cr_expect_eq(join(t), 8);
}

static int monitors_dead(void *arg)
{
  arbor_pid dead = *(arbor_pid *)arg;
  uint64_t ref;
  arbor_msg m;

  if (arbor_monitor(dead, &ref) != 0)
    return -1;
  if (arbor_recv(&m, 1000) != 0)
    return -2;
  if (m.tag != ARBOR_TAG_DOWN || m.ref != ref || m.from != dead ||
      m.reason != ARBOR_REASON_NOPROC)
    return -3;
  /* The monitor is over: demonitoring it now finds nothing. */
  return arbor_demonitor(ref) == ARBOR_ESRCH ? 0 : -4;
}

Test(signal, monitoring_a_dead_process_gives_an_immediate_noproc_down,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL), w;

  tell_end(t, 0);
  join(t);
  w = spawn_j(monitors_dead, &t);
  cr_expect_eq(join(w), 0);
}

static int demonitors(void *arg)
{
  arbor_pid target = *(arbor_pid *)arg;
  uint64_t ref, ref2;
  arbor_msg m;

  /* Demonitor before the exit: no DOWN. */
  if (arbor_monitor(target, &ref) != 0 || arbor_demonitor(ref) != 0)
    return -1;
  /* Demonitor after the exit, before receiving: the DOWN is removed. */
  if (arbor_monitor(target, &ref2) != 0)
    return -2;
  tell_end(target, 3);
  while (arbor_alive(NULL, target) == 1)
    arbor_yield();
  if (arbor_demonitor(ref2) != 0)
    return -3;
  if (arbor_recv(&m, 200) != ARBOR_ETIMEDOUT)
    return -4;
  return 0;
}

Test(signal, demonitor_before_or_after_the_exit_leaves_no_down,
     .init = setup, .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL);
  arbor_pid w = spawn_j(demonitors, &t);

  cr_expect_eq(join(w), 0);
  join(t);
}

/* ---- links: unlink, dead targets ----------------------------------------------------- */

static int unlinks(void *arg)
{
  arbor_pid target = *(arbor_pid *)arg;
  arbor_msg m;

  if (arbor_link(target) != 0 || arbor_link(target) != 0)
    return -1;
  if (arbor_unlink(target) != 0)
    return -2;
  tell_end(target, 66);
  while (arbor_alive(NULL, target) == 1)
    arbor_yield();
  /* Still alive, and no message either. */
  arbor_trap_exit(1);
  return arbor_recv(&m, 100) == ARBOR_ETIMEDOUT ? 0 : -3;
}

Test(signal, after_unlink_an_exit_sends_no_signal, .init = setup,
     .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL);
  arbor_pid w = spawn_j(unlinks, &t);

  cr_expect_eq(join(w), 0);
  cr_expect_eq(join(t), 66);
}

static int links_dead(void *arg)
{
  arbor_pid dead = *(arbor_pid *)arg;

  if (arbor_link(dead) != ARBOR_ESRCH)
    return -1;
  if (arbor_link(arbor_self()) != ARBOR_EINVAL || arbor_link(0) != ARBOR_EINVAL)
    return -2;
  return 0;
}

Test(signal, linking_to_a_dead_process_fails_with_esrch, .init = setup,
     .fini = teardown, .timeout = 10)
{
  arbor_pid t = spawn_j(ends_when_told, NULL), w;

  tell_end(t, 0);
  join(t);
  w = spawn_j(links_dead, &t);
  cr_expect_eq(join(w), 0);
  cr_expect_eq(arbor_link(t), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_monitor(t, NULL), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_trap_exit(1), ARBOR_ENOTPROC);
}

/* ---- spawn with link or monitor is atomic ----------------------------------------------- */

static int dies_at_once(void *arg)
{
  return (int)(intptr_t)arg;
}

static int spawn_links_trapping(void *arg)
{
  arbor_pid child;
  arbor_msg m;

  (void)arg;
  arbor_trap_exit(1);
  if (arbor_spawn(NULL, &child, dies_at_once, (void *)(intptr_t)5,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}) != 0)
    return -1;
  if (arbor_recv(&m, 2000) != 0 || m.tag != ARBOR_TAG_EXIT || m.from != child)
    return -2;
  return m.reason;
}

Test(signal, spawn_link_sees_a_child_that_dies_at_once, .init = setup,
     .fini = teardown, .timeout = 10)
{
  cr_expect_eq(join(spawn_j(spawn_links_trapping, NULL)), 5);
}

static int spawn_links_plain(void *arg)
{
  arbor_pid child;

  (void)arg;
  if (arbor_spawn(NULL, &child, dies_at_once, (void *)(intptr_t)6,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}) != 0)
    return -1;
  for (;;)
    arbor_yield(); /* ended here by the child's exit signal */
}

Test(signal, spawn_link_child_dying_at_once_takes_a_plain_parent_with_it,
     .init = setup, .fini = teardown, .timeout = 10)
{
  cr_expect_eq(join(spawn_j(spawn_links_plain, NULL)), 6);
}

static int spawn_monitors(void *arg)
{
  arbor_pid child;
  uint64_t ref = 0;
  arbor_msg m;

  (void)arg;
  if (arbor_spawn(NULL, &child, dies_at_once, (void *)(intptr_t)9,
                  &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                      .monitor_ref = &ref}) != 0)
    return -1;
  if (ref == 0)
    return -2;
  if (arbor_recv(&m, 2000) != 0 || m.tag != ARBOR_TAG_DOWN || m.ref != ref ||
      m.from != child)
    return -3;
  return m.reason;
}

Test(signal, spawn_monitor_sees_a_child_that_dies_at_once, .init = setup,
     .fini = teardown, .timeout = 10)
{
  cr_expect_eq(join(spawn_j(spawn_monitors, NULL)), 9);
}

Test(signal, spawn_link_and_monitor_need_a_process, .init = setup,
     .fini = teardown)
{
  uint64_t ref;

  cr_expect_eq(arbor_spawn(rt, NULL, dies_at_once, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}),
               ARBOR_ENOTPROC);
  cr_expect_eq(arbor_spawn(rt, NULL, dies_at_once, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR,
                                               .monitor_ref = &ref}),
               ARBOR_ENOTPROC);
  cr_expect_eq(arbor_spawn(rt, NULL, dies_at_once, NULL,
                           &(arbor_spawn_opts){.flags = ARBOR_SPAWN_MONITOR}),
               ARBOR_EINVAL);
}

/* ---- exactly one notification, whatever the cause ------------------------------------ */

enum { BY_RETURN, BY_EXIT, BY_KILL, BY_UNTRAPPABLE, BY_KILL_BEFORE_START };

static int target_by(void *arg)
{
  int how = (int)(intptr_t)arg;
  arbor_msg m;

  if (how == BY_RETURN)
    return 1;
  if (how == BY_EXIT)
    arbor_exit(2);
  if (arbor_recv(&m, -1) != 0) /* waits to be killed */
    return -2;
  return -1;
}

static int counts_notifications(void *arg)
{
  int counts[5][2] = {{0}};
  arbor_pid pids[5];
  uint64_t refs[5];
  arbor_msg m;

  (void)arg;
  arbor_trap_exit(1);
  for (int how = 0; how < 5; how++)
    if (arbor_spawn(NULL, &pids[how], target_by, (void *)(intptr_t)how,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK |
                                                 ARBOR_SPAWN_MONITOR,
                                        .monitor_ref = &refs[how]}) != 0)
      return -1;
  /* Killed before it could run: this process has not yielded yet on a
   * single worker. */
  arbor_kill(pids[BY_KILL_BEFORE_START], 4);
  arbor_kill(pids[BY_KILL], 3);
  arbor_kill(pids[BY_UNTRAPPABLE], ARBOR_REASON_KILL);
  while (arbor_recv(&m, 300) == 0) {
    for (int how = 0; how < 5; how++) {
      if (m.from != pids[how])
        continue;
      if (m.tag == ARBOR_TAG_EXIT)
        counts[how][0]++;
      else if (m.tag == ARBOR_TAG_DOWN && m.ref == refs[how])
        counts[how][1]++;
    }
  }
  for (int how = 0; how < 5; how++)
    if (counts[how][0] != 1 || counts[how][1] != 1)
      return 100 + how * 10 + counts[how][0] * 3 + counts[how][1];
  return 0;
}

Test(signal, every_exit_gives_exactly_one_notification_per_link_and_monitor,
     .init = setup1, .fini = teardown, .timeout = 10)
{
  cr_expect_eq(join(spawn_j(counts_notifications, NULL)), 0);
}

/* Shutdown ends processes too, and their links still fire: a trapping
 * process that outlives the others during shutdown records what it got. */
static atomic_int shutdown_exits;

static void count_pending_exits(void *arg)
{
  arbor_msg m;

  (void)arg;
  /* A defer may still receive: the children end (shutdown woke them) and
   * their links fire while we wait here. */
  while (atomic_load(&shutdown_exits) < 10 &&
         arbor_recv_tag(&m, ARBOR_TAG_EXIT, 5000) == 0)
    if (m.reason == ARBOR_REASON_SHUTDOWN)
      atomic_fetch_add(&shutdown_exits, 1);
}

static int shut_child(void *arg)
{
  arbor_msg m;

  (void)arg;
  atomic_fetch_add(&started, 1);
  if (arbor_recv(&m, -1) != 0)
    return -2;
  return 0;
}

static int trapping_parent(void *arg)
{
  (void)arg;
  arbor_trap_exit(1);
  /* Before the children start: the test may begin shutdown as soon as
   * they have. */
  cr_assert_eq(arbor_defer(count_pending_exits, NULL), 0);
  for (int i = 0; i < 10; i++)
    if (arbor_spawn(NULL, NULL, shut_child, NULL,
                    &(arbor_spawn_opts){.flags = ARBOR_SPAWN_LINK}) != 0)
      return -1;
  while (atomic_load(&started) < 10)
    arbor_yield();
  /* Keep running until shutdown ends us; the defer counts the EXITs. */
  for (;;)
    arbor_yield();
}

Test(signal, shutdown_fires_links_with_reason_shutdown, .init = setup1,
     .timeout = 10)
{
  atomic_store(&started, 0);
  atomic_store(&shutdown_exits, 0);
  cr_assert_eq(arbor_spawn(rt, NULL, trapping_parent, NULL, NULL), 0);
  while (atomic_load(&started) < 10)
    sched_yield();
  arbor_rt_destroy(rt);
  cr_expect_eq(atomic_load(&shutdown_exits), 10);
}
