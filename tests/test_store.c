/* tests/test_store.c -- white-box tests of runtime/sup_store.c (the store).
 *
 * No supervisor is needed: a test spawns plain processes, then plays the
 * part of supervisor.c by hanging a store on a process record (proc->store,
 * under the record's spinlock, as the owner must) and taking it off again
 * before the process exits.  Processes spawned with arbor__spawn_ex() get a
 * proc->sup chain, which is how the sup = 0 lookups are tested.  The
 * reference-counting tests rely on ASan (use after free) and LSan (a store
 * never freed) in the sanitizer build.
 */
#include "runtime/sup.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG_STOP 1

static arbor_rt *rt;
static struct arbor__store *store; /* the test's own reference */
static arbor_pid holder;           /* a process whose ->store is `store` */

/* A process that waits for TAG_STOP. */
static int idle(void *arg)
{
  arbor_msg m;

  (void)arg;
  for (;;) {
    if (arbor_recv(&m, -1) != 0)
      return 1;
    if (m.tag == TAG_STOP)
      return 0;
  }
}

static arbor_pid spawn_under(arbor_fn fn, void *arg, arbor_pid sup)
{
  arbor_spawn_opts o = {.flags = ARBOR_SPAWN_JOINABLE};
  arbor_pid pid = 0;

  cr_assert_eq(arbor__spawn_ex(rt, &pid, fn, arg, &o, sup), 0);
  return pid;
}

/* Replace pid's store by s (whose reference the record takes over; NULL to
 * clear) and drop the old one: what supervisor.c does. */
static void swap_store(arbor_pid pid, struct arbor__store *s)
{
  struct arbor__proc *p;
  struct arbor__store *old;

  cr_assert_eq(arbor__proc_ref(rt, pid, &p), 0);
  arbor__proc_lock(p);
  old = p->store;
  p->store = s;
  arbor__proc_unlock(p);
  arbor__proc_unref(p);
  arbor__store_unref(old);
}

static void attach(arbor_pid pid, struct arbor__store *s)
{
  arbor__store_ref(s);
  swap_store(pid, s);
}

static int stop(arbor_pid pid)
{
  int reason = -1;

  cr_assert_eq(arbor_send(pid, TAG_STOP, NULL, 0), 0);
  cr_assert_eq(arbor_wait(rt, pid, 10000, &reason), 0);
  return reason;
}

static void setup(void)
{
  arbor_rt_opts o = {.workers = 2};

  cr_assert_eq(arbor_rt_create(&rt, &o), 0);
  store = arbor__store_new();
  cr_assert_not_null(store);
  holder = spawn_under(idle, NULL, 0);
  attach(holder, store);
}

static void teardown(void)
{
  swap_store(holder, NULL);
  cr_assert_eq(stop(holder), 0);
  arbor__store_unref(store);
  arbor_rt_destroy(rt);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

/* ---- semantics and errors ------------------------------------------------ */

Test(store, set_then_get_copies_the_value_out)
{
  char buf[16];

  cr_assert_eq(arbor_store_set(holder, "greeting", "hello", 5), 0);
  memset(buf, '#', sizeof(buf));
  cr_assert_eq(arbor_store_get(holder, "greeting", buf, sizeof(buf)), 5);
  cr_assert_arr_eq(buf, "hello#", 6);

  /* A short buffer gets a prefix; the full length comes back. */
  memset(buf, '#', sizeof(buf));
  cr_assert_eq(arbor_store_get(holder, "greeting", buf, 2), 5);
  cr_assert_arr_eq(buf, "he##", 4);
  /* No buffer at all: just the length. */
  cr_assert_eq(arbor_store_get(holder, "greeting", NULL, 0), 5);
  cr_assert_eq(arbor_store_size(holder), 1);
}

Test(store, missing_key_is_enoent_and_leaves_buf_untouched)
{
  char buf[4] = "abc";

  cr_assert_eq(arbor_store_get(holder, "nope", buf, sizeof(buf)), ARBOR_ENOENT);
  cr_assert_str_eq(buf, "abc");
  cr_assert_eq(arbor_store_delete(holder, "nope"), ARBOR_ENOENT);
  cr_assert_eq(arbor_store_set(holder, "yes", "1", 1), 0);
  cr_assert_eq(arbor_store_delete(holder, "yes"), 0);
  cr_assert_eq(arbor_store_delete(holder, "yes"), ARBOR_ENOENT);
  cr_assert_eq(arbor_store_get(holder, "yes", buf, sizeof(buf)), ARBOR_ENOENT);
  cr_assert_eq(arbor_store_size(holder), 0);
}

Test(store, overwrite_keeps_one_key_and_size_counts_keys)
{
  char big[300], buf[300];

  memset(big, 'x', sizeof(big));
  cr_assert_eq(arbor_store_size(holder), 0);
  cr_assert_eq(arbor_store_set(holder, "a", "1", 1), 0);
  cr_assert_eq(arbor_store_set(holder, "b", "22", 2), 0);
  cr_assert_eq(arbor_store_size(holder), 2);
  /* Longer, then much shorter, then the same length: still one key. */
  cr_assert_eq(arbor_store_set(holder, "a", big, sizeof(big)), 0);
  cr_assert_eq(arbor_store_get(holder, "a", buf, sizeof(buf)), 300);
  cr_assert_arr_eq(buf, big, sizeof(big));
  cr_assert_eq(arbor_store_set(holder, "a", "yz", 2), 0);
  cr_assert_eq(arbor_store_get(holder, "a", buf, sizeof(buf)), 2);
  cr_assert_arr_eq(buf, "yz", 2);
  cr_assert_eq(arbor_store_set(holder, "a", "AB", 2), 0);
  cr_assert_eq(arbor_store_get(holder, "a", buf, sizeof(buf)), 2);
  cr_assert_arr_eq(buf, "AB", 2);
  cr_assert_eq(arbor_store_size(holder), 2);
  cr_assert_eq(arbor_store_delete(holder, "a"), 0);
  cr_assert_eq(arbor_store_size(holder), 1);
  cr_assert_eq(arbor_store_get(holder, "b", buf, sizeof(buf)), 2);
}

static int noop_update(void *val, size_t *len, int exists, void *arg)
{
  (void)val, (void)len, (void)exists, (void)arg;
  return 0;
}

Test(store, bad_arguments_are_einval)
{
  char key63[64], key64[65], buf[4];

  memset(key63, 'k', 63);
  key63[63] = '\0';
  memset(key64, 'k', 64);
  key64[64] = '\0';

  cr_assert_eq(arbor_store_set(holder, NULL, "v", 1), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_set(holder, "", "v", 1), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_set(holder, key64, "v", 1), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_set(holder, key63, "v", 1), 0);
  cr_assert_eq(arbor_store_get(holder, key63, buf, sizeof(buf)), 1);
  cr_assert_eq(arbor_store_get(holder, key64, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_get(holder, NULL, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_get(holder, key63, NULL, 1), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_delete(holder, ""), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_delete(holder, key64), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_set(holder, "k", NULL, 1), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_update(holder, "k", 8, NULL, NULL), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_update(holder, key64, 8, noop_update, NULL),
               ARBOR_EINVAL);
  /* Failed calls changed nothing. */
  cr_assert_eq(arbor_store_size(holder), 1);
  cr_assert_eq(arbor_store_get(holder, "k", NULL, 0), ARBOR_ENOENT);
  /* Argument errors come before the lookup. */
  cr_assert_eq(arbor_store_set(0, NULL, "v", 1), ARBOR_EINVAL);
}

Test(store, no_store_is_esrch)
{
  arbor_pid plain = spawn_under(idle, NULL, 0), gone;
  char buf[4];

  cr_assert_eq(arbor_store_set(plain, "k", "v", 1), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_get(plain, "k", buf, sizeof(buf)), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_delete(plain, "k"), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_update(plain, "k", 4, noop_update, NULL),
               ARBOR_ESRCH);
  cr_assert_eq(arbor_store_size(plain), ARBOR_ESRCH);
  cr_assert_null(arbor__store_find(plain));
  /* An exited process, a pid of no runtime, and sup = 0 outside any
   * process. */
  gone = spawn_under(idle, NULL, 0);
  cr_assert_eq(stop(gone), 0);
  cr_assert_eq(arbor_store_size(gone), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_size(arbor__pid_make(0xfe, 1, 1)), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_size(0), ARBOR_ESRCH);
  cr_assert_eq(arbor_store_set(0, "k", "v", 1), ARBOR_ESRCH);
  cr_assert_null(arbor__store_find(0));
  cr_assert_eq(stop(plain), 0);
}

Test(store, empty_and_one_megabyte_values)
{
  const size_t mb = (size_t)1 << 20;
  unsigned char *big = malloc(mb), *out = malloc(mb);
  char c = '#';

  cr_assert(big != NULL && out != NULL);
  for (size_t i = 0; i < mb; i++)
    big[i] = (unsigned char)(i * 2654435761u >> 13);

  /* An empty value is a value, not a missing key. */
  cr_assert_eq(arbor_store_set(holder, "empty", NULL, 0), 0);
  cr_assert_eq(arbor_store_get(holder, "empty", &c, 1), 0);
  cr_assert_eq(c, '#');
  cr_assert_eq(arbor_store_size(holder), 1);

  cr_assert_eq(arbor_store_set(holder, "big", big, mb), 0);
  cr_assert_eq(arbor_store_get(holder, "big", out, mb), (int64_t)mb);
  cr_assert_eq(memcmp(big, out, mb), 0);
  /* Shrink to one byte and grow back. */
  cr_assert_eq(arbor_store_set(holder, "big", "z", 1), 0);
  cr_assert_eq(arbor_store_get(holder, "big", out, mb), 1);
  cr_assert_eq(out[0], 'z');
  cr_assert_eq(arbor_store_set(holder, "big", big, mb), 0);
  memset(out, 0, mb);
  cr_assert_eq(arbor_store_get(holder, "big", out, mb), (int64_t)mb);
  cr_assert_eq(memcmp(big, out, mb), 0);
  cr_assert_eq(arbor_store_size(holder), 2);
  free(big);
  free(out);
}

/* ---- update -------------------------------------------------------------- */

/* What the callback saw, and what it should do. */
struct upd {
  int ret;         /* 1, 0, -1 or anything */
  const char *put; /* the value to write (ret 1), or NULL */
  size_t put_len;
  int seen_exists;
  size_t seen_len;
  char seen[64];
  unsigned calls;
};

static int do_update(void *val, size_t *len, int exists, void *arg)
{
  struct upd *u = arg;

  u->calls++;
  u->seen_exists = exists;
  u->seen_len = *len;
  memcpy(u->seen, val, *len < sizeof(u->seen) ? *len : sizeof(u->seen));
  if (u->put != NULL) {
    memcpy(val, u->put, u->put_len);
    *len = u->put_len;
  }
  return u->ret;
}

Test(store, update_creates_modifies_leaves_and_deletes)
{
  struct upd u = {.ret = 1, .put = "one", .put_len = 3};
  char buf[16];

  /* Create: an absent key is shown as exists 0, length 0. */
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(u.calls, 1);
  cr_assert_eq(u.seen_exists, 0);
  cr_assert_eq(u.seen_len, 0);
  cr_assert_eq(arbor_store_get(holder, "k", buf, sizeof(buf)), 3);
  cr_assert_arr_eq(buf, "one", 3);
  cr_assert_eq(arbor_store_size(holder), 1);

  /* Modify: the callback sees the current value. */
  u = (struct upd){.ret = 1, .put = "three", .put_len = 5};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(u.seen_exists, 1);
  cr_assert_eq(u.seen_len, 3);
  cr_assert_arr_eq(u.seen, "one", 3);
  cr_assert_eq(arbor_store_get(holder, "k", buf, sizeof(buf)), 5);
  cr_assert_arr_eq(buf, "three", 5);

  /* Leave: whatever it scribbled is thrown away. */
  u = (struct upd){.ret = 0, .put = "XXXXXXXX", .put_len = 8};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(arbor_store_get(holder, "k", buf, sizeof(buf)), 5);
  cr_assert_arr_eq(buf, "three", 5);

  /* A bad return or a length beyond the buffer: EINVAL, no change. */
  u = (struct upd){.ret = 2, .put = "bad", .put_len = 3};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u),
               ARBOR_EINVAL);
  u = (struct upd){.ret = 1, .put = "0123456789abcdefXYZ", .put_len = 19};
  cr_assert_eq(arbor_store_update(holder, "k", 19, do_update, &u), 0);
  u = (struct upd){.ret = 1};
  /* The callback claims more than max(cap, current) bytes. */
  u.put = "0123456789abcdefXYZ!", u.put_len = 20;
  cr_assert_eq(arbor_store_update(holder, "k", 4, do_update, &u), ARBOR_EINVAL);
  cr_assert_eq(arbor_store_get(holder, "k", buf, sizeof(buf)), 19);
  cr_assert_arr_eq(buf, "0123456789abcdef", 16);

  /* A value longer than cap is still shown whole. */
  u = (struct upd){.ret = 0};
  cr_assert_eq(arbor_store_update(holder, "k", 4, do_update, &u), 0);
  cr_assert_eq(u.seen_len, 19);
  cr_assert_arr_eq(u.seen, "0123456789abcdefXYZ", 19);

  /* Delete, and delete of an absent key is a no-op. */
  u = (struct upd){.ret = -1};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(arbor_store_get(holder, "k", buf, sizeof(buf)), ARBOR_ENOENT);
  cr_assert_eq(arbor_store_size(holder), 0);
  u = (struct upd){.ret = -1};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(u.seen_exists, 0);
  cr_assert_eq(arbor_store_size(holder), 0);
  /* Returning 0 for an absent key creates nothing. */
  u = (struct upd){.ret = 0, .put = "x", .put_len = 1};
  cr_assert_eq(arbor_store_update(holder, "k", 16, do_update, &u), 0);
  cr_assert_eq(arbor_store_size(holder), 0);
}

/* Appends one byte per call: exercises the heap buffer (cap > 256). */
static int append(void *val, size_t *len, int exists, void *arg)
{
  (void)exists;
  ((unsigned char *)val)[*len] = (unsigned char)(uintptr_t)arg;
  *len += 1;
  return 1;
}

Test(store, update_grows_a_value_past_the_stack_buffer)
{
  unsigned char buf[1000];

  for (unsigned i = 0; i < 1000; i++)
    cr_assert_eq(arbor_store_update(holder, "log", 1000, append,
                                    (void *)(uintptr_t)(i & 0xff)),
                 0);
  cr_assert_eq(arbor_store_get(holder, "log", buf, sizeof(buf)), 1000);
  for (unsigned i = 0; i < 1000; i++)
    cr_assert_eq(buf[i], i & 0xff);
}

static int incr(void *val, size_t *len, int exists, void *arg)
{
  uint64_t v = 0;

  (void)arg;
  if (exists)
    memcpy(&v, val, sizeof(v));
  v++;
  memcpy(val, &v, sizeof(v));
  *len = sizeof(v);
  return 1;
}

static uint64_t get_u64(arbor_pid sup, const char *key)
{
  uint64_t v = 0;

  cr_assert_eq(arbor_store_get(sup, key, &v, sizeof(v)), (int64_t)sizeof(v));
  return v;
}

#define INCR_THREADS 4
#define INCR_EACH 100000

static void *incr_thread(void *arg)
{
  char other[16];

  (void)arg;
  for (int i = 0; i < INCR_EACH; i++) {
    if (arbor_store_update(holder, "counter", sizeof(uint64_t), incr, NULL) !=
        0)
      return (void *)1;
    /* Traffic on other keys of every shard at the same time. */
    if (i % 16 == 0) {
      snprintf(other, sizeof(other), "o%d", (i / 16) % 512);
      if (arbor_store_set(holder, other, &i, sizeof(i)) != 0)
        return (void *)2;
    }
  }
  return NULL;
}

Test(store, update_is_atomic_under_contention)
{
  pthread_t t[INCR_THREADS];
  void *r;

  for (int i = 0; i < INCR_THREADS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, incr_thread, NULL), 0);
  for (int i = 0; i < INCR_THREADS; i++) {
    cr_assert_eq(pthread_join(t[i], &r), 0);
    cr_assert_null(r, "thread %d failed at step %p", i, r);
  }
  cr_assert_eq(get_u64(holder, "counter"), (uint64_t)INCR_THREADS * INCR_EACH);
  cr_assert_eq(arbor_store_size(holder), 1 + 512);
}

/* A supervised process (its proc->sup is holder) that counts through its
 * nearest store, found with sup = 0. */
static int incr_proc(void *arg)
{
  int n = (int)(intptr_t)arg;

  for (int i = 0; i < n; i++) {
    if (arbor_store_update(0, "pcounter", sizeof(uint64_t), incr, NULL) != 0)
      return 100;
    if (i % 64 == 0)
      (void)arbor_yield();
  }
  return 0;
}

Test(store, processes_update_their_supervisors_store_atomically)
{
  arbor_pid p[8];
  int reason;

  for (int i = 0; i < 8; i++)
    p[i] = spawn_under(incr_proc, (void *)(intptr_t)20000, holder);
  for (int i = 0; i < 8; i++) {
    cr_assert_eq(arbor_wait(rt, p[i], 60000, &reason), 0);
    cr_assert_eq(reason, 0);
  }
  cr_assert_eq(get_u64(holder, "pcounter"), 8u * 20000);
}

#define MANY 100000

Test(store, many_keys_across_shards_with_growth)
{
  char key[32];
  uint32_t v;

  for (uint32_t i = 0; i < MANY; i++) {
    snprintf(key, sizeof(key), "key-%u", i);
    cr_assert_eq(arbor_store_set(holder, key, &i, sizeof(i)), 0);
  }
  cr_assert_eq(arbor_store_size(holder), MANY);
  for (uint32_t i = 0; i < MANY; i++) {
    snprintf(key, sizeof(key), "key-%u", i);
    cr_assert_eq(arbor_store_get(holder, key, &v, sizeof(v)), 4);
    cr_assert_eq(v, i);
  }
  for (uint32_t i = 0; i < MANY; i += 2) {
    snprintf(key, sizeof(key), "key-%u", i);
    cr_assert_eq(arbor_store_delete(holder, key), 0);
  }
  cr_assert_eq(arbor_store_size(holder), MANY / 2);
  for (uint32_t i = 0; i < MANY; i++) {
    snprintf(key, sizeof(key), "key-%u", i);
    if (i % 2 == 0) {
      cr_assert_eq(arbor_store_get(holder, key, &v, sizeof(v)), ARBOR_ENOENT);
    } else {
      cr_assert_eq(arbor_store_get(holder, key, &v, sizeof(v)), 4);
      cr_assert_eq(v, i);
    }
  }
}

/* Every store call from inside a callback is refused, not deadlocked;
 * size takes no shard lock and is allowed. */
static int reenter(void *val, size_t *len, int exists, void *arg)
{
  int *res = arg;
  char b[8];

  (void)val, (void)len, (void)exists;
  res[0] = (int)arbor_store_get(holder, "r", b, sizeof(b));
  res[1] = arbor_store_set(holder, "r", "x", 1);
  res[2] = arbor_store_set(holder, "elsewhere", "x", 1);
  res[3] = arbor_store_delete(holder, "r");
  res[4] = arbor_store_update(holder, "elsewhere", 8, noop_update, NULL);
  res[5] = (int)arbor_store_size(holder);
  return 0;
}

Test(store, store_calls_inside_a_callback_are_refused, .timeout = 10)
{
  int res[6];

  cr_assert_eq(arbor_store_set(holder, "r", "v", 1), 0);
  cr_assert_eq(arbor_store_update(holder, "r", 8, reenter, res), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(res[i], ARBOR_EINVAL, "call %d returned %d", i, res[i]);
  cr_assert_eq(res[5], 1);
  /* And the flag is cleared afterwards. */
  cr_assert_eq(arbor_store_set(holder, "elsewhere", "y", 1), 0);
}

/* ---- references and lookup ----------------------------------------------- */

Test(store, store_outlives_its_owner_while_referenced)
{
  struct arbor__store *s = arbor__store_find(holder);
  arbor_pid next;
  char buf[8];

  cr_assert_eq(s, store);
  cr_assert_eq(arbor_store_set(holder, "kept", "v1", 2), 0);
  /* The owner drops every reference it has (record, then spec)... */
  swap_store(holder, NULL);
  arbor__store_unref(store);
  store = NULL;
  cr_assert_eq(arbor_store_size(holder), ARBOR_ESRCH);
  /* ...and the finder's reference keeps it alive for the next incarnation
   * (what a supervisor restarted by its parent gets). */
  next = spawn_under(idle, NULL, 0);
  attach(next, s);
  cr_assert_eq(arbor_store_get(next, "kept", buf, sizeof(buf)), 2);
  cr_assert_arr_eq(buf, "v1", 2);
  /* Hand the test's reference back so teardown works as usual. */
  store = s;
  swap_store(next, NULL);
  cr_assert_eq(stop(next), 0);
  attach(holder, store);
}

/* proc->sup chain: holder (store) <- mid (no store) <- leaf. */
struct chain_check {
  struct arbor__store *want;
  const char *key;
};

static int chain_leaf(void *arg)
{
  struct chain_check *c = arg;
  struct arbor__store *s = arbor__store_find(0);
  int bad = s != c->want;

  arbor__store_unref(s);
  if (bad)
    return 10;
  if (c->want == NULL)
    return arbor_store_set(0, c->key, "x", 1) == ARBOR_ESRCH ? 0 : 11;
  return arbor_store_set(0, c->key, "leaf", 4) == 0 ? 0 : 12;
}

static int join(arbor_pid pid)
{
  int reason = -1;

  cr_assert_eq(arbor_wait(rt, pid, 10000, &reason), 0);
  return reason;
}

Test(store, sup_zero_finds_the_nearest_store_up_the_chain)
{
  struct chain_check c = {.want = store, .key = "from_leaf"};
  struct arbor__store *inner;
  arbor_pid mid = spawn_under(idle, NULL, holder), leaf;
  char buf[8];

  /* Two levels up, through a supervisor without a store. */
  leaf = spawn_under(chain_leaf, &c, mid);
  cr_assert_eq(join(leaf), 0);
  cr_assert_eq(arbor_store_get(holder, "from_leaf", buf, sizeof(buf)), 4);

  /* The nearest store wins. */
  inner = arbor__store_new();
  cr_assert_not_null(inner);
  attach(mid, inner);
  c = (struct chain_check){.want = inner, .key = "inner_key"};
  leaf = spawn_under(chain_leaf, &c, mid);
  cr_assert_eq(join(leaf), 0);
  cr_assert_eq(arbor_store_get(mid, "inner_key", buf, sizeof(buf)), 4);
  cr_assert_eq(arbor_store_get(holder, "inner_key", buf, sizeof(buf)),
               ARBOR_ENOENT);
  swap_store(mid, NULL);
  arbor__store_unref(inner);

  /* No supervisor at all, or one that has exited: no store. */
  c = (struct chain_check){.want = NULL, .key = "k"};
  leaf = spawn_under(chain_leaf, &c, 0);
  cr_assert_eq(join(leaf), 0);
  cr_assert_eq(stop(mid), 0);
  leaf = spawn_under(chain_leaf, &c, mid);
  cr_assert_eq(join(leaf), 0);
}

/* A supervisor process reaches its own store with sup = 0. */
static int own_store(void *arg)
{
  struct arbor__proc *self = arbor__proc_current();
  struct arbor__store *s = arbor__store_new(), *old;
  int ret;

  (void)arg;
  if (s == NULL)
    return 20;
  arbor__proc_lock(self);
  self->store = s;
  arbor__proc_unlock(self);
  ret = arbor_store_set(0, "mine", "1", 1) == 0 && arbor_store_size(0) == 1
            ? 0
            : 21;
  arbor__proc_lock(self);
  old = self->store;
  self->store = NULL;
  arbor__proc_unlock(self);
  arbor__store_unref(old);
  return ret;
}

Test(store, a_supervisor_finds_its_own_store)
{
  cr_assert_eq(join(spawn_under(own_store, NULL, holder)), 0);
  /* It did not fall through to its parent's. */
  cr_assert_eq(arbor_store_size(holder), 0);
}

/* One thread keeps replacing holder's store (each old one freed at once
 * unless a finder holds it); others keep finding and using it.  Under ASan
 * a finder that could see a freed store would be a use after free. */
static _Atomic int swapping;

static void *finder_thread(void *arg)
{
  (void)arg;
  while (atomic_load(&swapping)) {
    struct arbor__store *s = arbor__store_find(holder);
    int64_t r;

    if (s == NULL)
      return (void *)1;
    arbor__store_unref(s);
    r = arbor_store_set(holder, "k", "v", 1);
    if (r != 0)
      return (void *)2;
    r = arbor_store_get(holder, "k", NULL, 0);
    if (r != 1 && r != ARBOR_ENOENT)
      return (void *)3;
  }
  return NULL;
}

Test(store, finders_race_with_the_owner_replacing_the_store)
{
  pthread_t t[2];
  void *r;

  atomic_store(&swapping, 1);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, finder_thread, NULL), 0);
  for (int i = 0; i < 20000; i++) {
    struct arbor__store *s = arbor__store_new();

    cr_assert_not_null(s);
    swap_store(holder, s);
  }
  atomic_store(&swapping, 0);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(pthread_join(t[i], &r), 0);
    cr_assert_null(r, "finder %d failed: %p", i, r);
  }
  attach(holder, store);
}

/* ---- with real supervisors ------------------------------------------------
 */

#if defined(__has_include)
#if __has_include("runtime/supervisor.c")
#define HAVE_SUPERVISOR 1
#endif
#endif

#ifdef HAVE_SUPERVISOR

/* Counts its boots in its supervisor's store; crashes until the third. */
static int booter(void *arg)
{
  uint64_t boots = 0;
  arbor_msg m;

  (void)arg;
  if (arbor_store_update(0, "boots", sizeof(boots), incr, NULL) != 0) {
    (void)arbor_init_ack(1);
    return 1;
  }
  (void)arbor_init_ack(0);
  if (arbor_store_get(0, "boots", &boots, sizeof(boots)) != sizeof(boots))
    return 2;
  if (boots < 3)
    return 1;
  for (;;)
    if (arbor_recv(&m, -1) != 0)
      return 0;
}

static const arbor_child_spec booter_spec[] = {
    {.id = "booter", .start = booter, .restart = ARBOR_PERMANENT},
};
static const arbor_sup_spec stateful = {.name = "stateful",
                                        .intensity = 10,
                                        .period_ms = 5000,
                                        .children = booter_spec,
                                        .nchildren = 1,
                                        .store = 1};
static const arbor_child_spec stateful_child[] = {
    {.id = "stateful", .type = ARBOR_SUPERVISOR, .sup = &stateful},
};
static const arbor_sup_spec top = {.name = "top",
                                   .intensity = 10,
                                   .period_ms = 5000,
                                   .children = stateful_child,
                                   .nchildren = 1};

/* Poll sup's "boots" until it is `want` (or 5 s pass). */
static uint64_t wait_boots(arbor_pid sup, uint64_t want)
{
  uint64_t v = 0;

  for (int i = 0; i < 500; i++) {
    if (arbor_store_get(sup, "boots", &v, sizeof(v)) == sizeof(v) && v >= want)
      break;
    nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
  }
  return v;
}

Test(store, survives_worker_restarts_and_its_supervisors_restart)
{
  arbor_sup_error err = {0};
  arbor_child_info info;
  arbor_pid root = 0, inner, inner2 = 0;

  cr_assert_eq(arbor_sup_start(rt, &top, &root, &err), 0,
               "start failed: field %s child %ld id %s reason %d",
               err.field ? err.field : "-", err.child, err.id, err.reason);
  cr_assert_eq(arbor_store_size(root), ARBOR_ESRCH, "top has no store");
  cr_assert_eq(arbor_sup_which_children(root, &info, 1), 1);
  inner = info.pid;
  cr_assert_neq(inner, 0);
  /* Two crashes, two restarts: the count lives on in the store. */
  cr_assert_eq(wait_boots(inner, 3), 3);
  cr_assert_eq(arbor_sup_which_children(inner, &info, 1), 1);
  cr_assert_eq(info.restarts, 2);

  /* Kill the stateful supervisor: top starts a new incarnation, which
   * gets the same store, so the worker's fourth boot counts on. */
  cr_assert_eq(arbor_kill(inner, ARBOR_REASON_KILL), 0);
  for (int i = 0; i < 500 && (inner2 == 0 || inner2 == inner); i++) {
    if (arbor_sup_which_children(root, &info, 1) == 1)
      inner2 = info.pid;
    nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
  }
  cr_assert(inner2 != 0 && inner2 != inner, "not restarted");
  cr_assert_eq(wait_boots(inner2, 4), 4);
  cr_assert_eq(arbor_store_size(inner2), 1);
  /* Workers reach it with sup = 0; the test thread names it. */
  cr_assert_eq(arbor_store_size(inner), ARBOR_ESRCH, "old incarnation");
  cr_assert_eq(arbor_sup_stop(root, 10000), 0);
  cr_assert_eq(arbor_store_size(inner2), ARBOR_ESRCH);
}

#else

Test(store, survives_worker_restarts_and_its_supervisors_restart)
{
  cr_skip_test("runtime/supervisor.c is not there yet: no real supervisor");
}

#endif
