/* stateful.c -- ash_flare's stateful supervisor: a key-value store owned by
 * a supervisor survives the restarts of its workers and its own restart.
 *
 *   root (one_for_one)
 *   `-- bank (one_for_one, store = 1, 10 restarts per 10 s)
 *       |-- teller    adds 10 to "balance" every 100 ms; crashes at every
 *       |             third deposit, and is restarted
 *       `-- auditor   reads "balance" and counts its own starts in "audits"
 *
 * Half way through, the bank supervisor itself is killed; root restarts it,
 * and the new incarnation finds the same store.  At the end the balance
 * holds every deposit ever made, across 4+ teller restarts and 1 bank
 * restart.
 *
 * Usage: stateful [--time-scale=X]  (1 is real time; the test runs 0.05).
 * Expected output:
 *   balance 300 after 30 deposits (teller restarts 9, bank restarts 1)
 */
#include <arbor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;
static long deposits;

/* Add `arg` (a long) to an integer value, creating it at 0. */
static int add(void *val, size_t *len, int exists, void *arg)
{
  long v = 0;

  if (exists && *len == sizeof(v))
    memcpy(&v, val, sizeof(v));
  v += *(const long *)arg;
  memcpy(val, &v, sizeof(v));
  *len = sizeof(v);
  return 1;
}

static int teller(void *arg)
{
  long ten = 10;

  (void)arg;
  if (arbor_init_ack(0) != 0)
    return 2;
  for (int n = 1;; n++) {
    if (arbor_sleep((int64_t)(100 * scale) + 1) != 0)
      return 2;
    /* sup 0: the store of the nearest supervisor that has one (bank). */
    if (arbor_store_update(0, "balance", sizeof(long), add, &ten) != 0)
      return 3;
    if (__atomic_add_fetch(&deposits, 1, __ATOMIC_RELAXED) >= 30)
      return 0; /* done: transient, so a normal exit is not restarted */
    if (n % 3 == 0)
      return 1; /* crash; the balance is safe in the store */
  }
}

static int auditor(void *arg)
{
  long one = 1;
  arbor_msg m;

  (void)arg;
  if (arbor_store_update(0, "audits", sizeof(long), add, &one) != 0)
    return 3;
  if (arbor_init_ack(0) != 0)
    return 2;
  while (arbor_recv(&m, -1) == 0)
    ;
  return 0;
}

static const arbor_child_spec bank_children[] = {
    {.id = "teller", .start = teller, .restart = ARBOR_TRANSIENT},
    {.id = "auditor", .start = auditor},
};
static const arbor_sup_spec bank = {
    .name = "bank",
    .strategy = ARBOR_ONE_FOR_ONE,
    .intensity = 10,
    .period_ms = 10000,
    .children = bank_children,
    .nchildren = 2,
    .store = 1,
};
static const arbor_child_spec root_children[] = {
    {.id = "bank", .type = ARBOR_SUPERVISOR, .sup = &bank},
};
static const arbor_sup_spec root_spec = {
    .name = "root",
    .strategy = ARBOR_ONE_FOR_ONE,
    .intensity = 5,
    .period_ms = 10000,
    .children = root_children,
    .nchildren = 1,
};

/* The bank supervisor's pid and its teller's restart count. */
static int bank_info(arbor_pid root, arbor_pid *bank_pid, uint64_t *restarts,
                     uint64_t *teller_restarts)
{
  arbor_child_info kids[2];
  int n = arbor_sup_which_children(root, kids, 1);

  if (n < 1)
    return n < 0 ? n : ARBOR_ESRCH;
  *bank_pid = kids[0].pid;
  *restarts = kids[0].restarts;
  n = arbor_sup_which_children(*bank_pid, kids, 2);
  if (n < 1)
    return n < 0 ? n : ARBOR_ESRCH;
  *teller_restarts = kids[0].restarts;
  return 0;
}

int main(int argc, char **argv)
{
  arbor_sup_error serr;
  uint64_t bank_restarts = 0, teller_restarts = 0, total_teller = 0;
  arbor_pid root, bank_pid = 0;
  long balance = 0;
  arbor_rt *rt;
  int err;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--time-scale=", 13) == 0)
      scale = atof(argv[i] + 13);
  }
  if (!(scale > 0)) {
    fprintf(stderr, "usage: %s [--time-scale=X]  (X > 0)\n", argv[0]);
    return EXIT_FAILURE;
  }
  err = arbor_rt_create(&rt, NULL);
  if (err == 0)
    err = arbor_sup_start(rt, &root_spec, &root, &serr);
  if (err < 0) {
    fprintf(stderr, "start: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  /* Half way, kill the bank supervisor: root restarts it, same store. */
  while (__atomic_load_n(&deposits, __ATOMIC_RELAXED) < 15) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  if ((err = bank_info(root, &bank_pid, &bank_restarts, &teller_restarts)) ==
      0)
    total_teller += teller_restarts;
  if (err == 0)
    err = arbor_kill(bank_pid, ARBOR_REASON_KILL);
  while (err == 0 && __atomic_load_n(&deposits, __ATOMIC_RELAXED) < 30) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  /* Give the last teller a moment to exit normally, then read the store
   * through the (new) bank supervisor. */
  if (err == 0)
    err = bank_info(root, &bank_pid, &bank_restarts, &teller_restarts);
  if (err == 0 &&
      (err = (int)arbor_store_get(bank_pid, "balance", &balance,
                                  sizeof(balance))) > 0)
    err = 0;
  if (err < 0) {
    fprintf(stderr, "stateful: %s\n", arbor_strerror(err));
    arbor_rt_destroy(rt);
    return EXIT_FAILURE;
  }
  total_teller += teller_restarts;
  printf("balance %ld after %ld deposits (teller restarts %llu, bank "
         "restarts %llu)\n",
         balance, deposits, (unsigned long long)total_teller,
         (unsigned long long)bank_restarts);
  err = arbor_sup_stop(root, -1);
  arbor_rt_destroy(rt);
  return balance == 10 * deposits && bank_restarts == 1 && err == 0
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}
