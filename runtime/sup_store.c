/* runtime/sup_store.c -- a supervisor's shared key-value store.
 *
 * A store is a hash map from short string keys (1..ARBOR_ID_MAX-1 bytes) to
 * byte strings, split into NSHARDS shards by the top bits of the key's hash.
 * Each shard is a mutex over a chained hash table that doubles when it holds
 * more entries than buckets (a failed doubling just keeps the smaller
 * table).  Every operation touches one shard, so operations on keys of
 * different shards never wait for each other, and arbor_store_update() runs
 * its callback with only that key's shard locked; that is what makes a
 * read-modify-write of one key atomic.  The number of keys is an atomic
 * counter beside the shards, so arbor_store_size() locks nothing.
 *
 * Memory.  An entry (key and value in one allocation) belongs to its shard
 * and is only read or written under the shard's mutex, so it is freed (on
 * delete, on a replacement that does not fit, or with the store) while no
 * one else can hold it; values are copied in and out, never lent.  The store
 * itself is reference-counted (see runtime/sup.h for who holds references):
 * every arbor_store_* call holds one while it works, so a store outlives a
 * supervisor that exits in the middle of a call, and the last unref frees
 * it.  A finder takes its reference while it holds the process record that
 * points at the store (arbor__proc_ref()) *and* that record's spinlock; the
 * owner (supervisor.c) must therefore change proc->store only under
 * arbor__proc_lock(), and drop the record's reference only after clearing
 * the field: then a finder either takes its reference before the clear, or
 * sees NULL.
 *
 * Re-entrancy.  A callback that called back into a store could deadlock on
 * its own shard (ash_flare's undocumented DashMap hazard) or on another
 * store's shard held by a thread waiting for ours.  arbor.h forbids it, and
 * every arbor_store_* call that could lock a shard returns ARBOR_EINVAL when
 * made from inside a callback on the same thread, instead of deadlocking.
 */
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sup.h"

#define NSHARDS 16
#define SHARD_BITS 4
#define MIN_BUCKETS 8
/* Update callbacks see a stack buffer up to this size, a heap one above. */
#define UPDATE_STACK 256

/* Key and value in one allocation: key[klen] is a NUL, the value follows. */
struct entry {
  struct entry *next; /* bucket chain */
  uint64_t hash;
  size_t vlen; /* current value length */
  size_t vcap; /* room for the value in this allocation */
  uint8_t klen;
  char key[];
};

struct shard {
  /* Guards everything below and every entry reachable from it. */
  alignas(64) pthread_mutex_t lock;
  struct entry **buckets; /* NULL until the first insert */
  size_t nbuckets;        /* 0 or a power of two */
  size_t n;               /* entries */
};

struct arbor__store {
  /* References (see runtime/sup.h).  The decrement is acq_rel: the last
   * holder sees every write the others made before it frees. */
  alignas(64) _Atomic uint32_t refs;
  /* Keys in all shards; changed under the shard lock of the key concerned,
   * read with no lock.  Relaxed: a snapshot count publishes nothing. */
  _Atomic int64_t count;
  struct shard shards[NSHARDS];
};

/* Set while this thread runs an update callback (see "Re-entrancy"). */
static _Thread_local bool in_callback;

/* ---- hashing and entries --------------------------------------------- */

/* FNV-1a, then a 64-bit finaliser (from splitmix64) so that both the top
 * bits (shard) and the low bits (bucket) depend on every byte. */
static uint64_t hash_key(const char *key, size_t len)
{
  uint64_t h = 0xcbf29ce484222325u;

  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 0x100000001b3u;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9u;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebu;
  h ^= h >> 31;
  return h;
}

static unsigned char *value_of(struct entry *e)
{
  return (unsigned char *)e->key + e->klen + 1;
}

/* The key's length, or -1 if it is NULL, empty or too long. */
static int key_len(const char *key)
{
  size_t n;

  if (key == NULL)
    return -1;
  n = strnlen(key, ARBOR_ID_MAX);
  return n == 0 || n >= ARBOR_ID_MAX ? -1 : (int)n;
}

static struct entry *entry_new(const char *key, size_t klen, uint64_t hash,
                               const void *val, size_t vlen)
{
  struct entry *e;

  if (vlen > SIZE_MAX - sizeof(*e) - ARBOR_ID_MAX)
    return NULL;
  e = malloc(sizeof(*e) + klen + 1 + vlen);
  if (e == NULL)
    return NULL;
  e->next = NULL;
  e->hash = hash;
  e->vlen = vlen;
  e->vcap = vlen;
  e->klen = (uint8_t)klen;
  memcpy(e->key, key, klen);
  e->key[klen] = '\0';
  if (vlen > 0)
    memcpy(value_of(e), val, vlen);
  return e;
}

/* Whether a new value of vlen bytes should overwrite e's in place: it must
 * fit, and a large allocation is not kept for a much smaller value. */
static bool fits(const struct entry *e, size_t vlen)
{
  return vlen <= e->vcap && (e->vcap <= 64 || vlen >= e->vcap / 4);
}

/* ---- shards (caller holds sh->lock) ---------------------------------- */

static struct shard *shard_of(struct arbor__store *s, uint64_t hash)
{
  return &s->shards[hash >> (64 - SHARD_BITS)];
}

/* The link that points at key's entry (or the NULL ending its chain). */
static struct entry **lookup(struct shard *sh, const char *key, size_t klen,
                             uint64_t hash)
{
  struct entry **pp;

  if (sh->nbuckets == 0)
    return NULL;
  for (pp = &sh->buckets[hash & (sh->nbuckets - 1)]; *pp != NULL;
       pp = &(*pp)->next) {
    struct entry *e = *pp;

    if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
      break;
  }
  return pp;
}

/* Double the table (or create it).  Failure is harmless once a table
 * exists: the chains just grow longer. */
static bool grow(struct shard *sh)
{
  size_t nb = sh->nbuckets == 0 ? MIN_BUCKETS : sh->nbuckets * 2;
  struct entry **b;

  if (nb > SIZE_MAX / sizeof(*b))
    return false;
  b = calloc(nb, sizeof(*b));
  if (b == NULL)
    return false;
  for (size_t i = 0; i < sh->nbuckets; i++) {
    struct entry *e = sh->buckets[i];

    while (e != NULL) {
      struct entry *next = e->next;
      size_t j = e->hash & (nb - 1);

      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(sh->buckets);
  sh->buckets = b;
  sh->nbuckets = nb;
  return true;
}

/* Set key to val[0..vlen): overwrite in place where it fits, otherwise put
 * a new entry in the old one's place (or at its chain's head). */
static int shard_put(struct arbor__store *s, struct shard *sh,
                     struct entry **pp, const char *key, size_t klen,
                     uint64_t hash, const void *val, size_t vlen)
{
  struct entry *e = pp != NULL ? *pp : NULL, *ne;

  if (e != NULL && fits(e, vlen)) {
    if (vlen > 0)
      memmove(value_of(e), val, vlen);
    e->vlen = vlen;
    return 0;
  }
  ne = entry_new(key, klen, hash, val, vlen);
  if (ne == NULL)
    return ARBOR_ENOMEM;
  if (e != NULL) {
    ne->next = e->next;
    *pp = ne;
    free(e);
    return 0;
  }
  if (sh->n >= sh->nbuckets && !grow(sh) && sh->nbuckets == 0) {
    free(ne);
    return ARBOR_ENOMEM;
  }
  pp = &sh->buckets[hash & (sh->nbuckets - 1)];
  ne->next = *pp;
  *pp = ne;
  sh->n++;
  atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
  return 0;
}

static void shard_remove(struct arbor__store *s, struct shard *sh,
                         struct entry **pp)
{
  struct entry *e = *pp;

  *pp = e->next;
  free(e);
  sh->n--;
  atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
}

/* ---- life cycle ------------------------------------------------------- */

struct arbor__store *arbor__store_new(void)
{
  struct arbor__store *s =
      aligned_alloc(alignof(struct arbor__store), sizeof(struct arbor__store));
  int i;

  if (s == NULL)
    return NULL;
  memset(s, 0, sizeof(*s));
  for (i = 0; i < NSHARDS; i++) {
    if (pthread_mutex_init(&s->shards[i].lock, NULL) != 0)
      goto fail_mutex;
  }
  atomic_init(&s->refs, 1);
  atomic_init(&s->count, 0);
  return s;

fail_mutex:
  while (i-- > 0)
    pthread_mutex_destroy(&s->shards[i].lock);
  free(s);
  return NULL;
}

void arbor__store_ref(struct arbor__store *s)
{
  /* Relaxed: the caller already holds a reference (or holds the record
   * that does, under its lock), so the count cannot reach 0 meanwhile. */
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void arbor__store_unref(struct arbor__store *s)
{
  if (s == NULL)
    return;
  /* Acq_rel: pairs with the other holders' decrements, so whoever frees
   * sees every entry they wrote. */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (int i = 0; i < NSHARDS; i++) {
    struct shard *sh = &s->shards[i];

    for (size_t j = 0; j < sh->nbuckets; j++) {
      struct entry *e = sh->buckets[j];

      while (e != NULL) {
        struct entry *next = e->next;

        free(e);
        e = next;
      }
    }
    free(sh->buckets);
    pthread_mutex_destroy(&sh->lock);
  }
  free(s);
}

/* p's store with a new reference, or NULL.  The caller keeps p from being
 * recycled (it is the running process, or holds an arbor__proc_ref()); the
 * record's spinlock keeps its owner from dropping the store under us. */
static struct arbor__store *take(struct arbor__proc *p)
{
  struct arbor__store *s;

  arbor__proc_lock(p);
  s = p->store;
  if (s != NULL)
    arbor__store_ref(s);
  arbor__proc_unlock(p);
  return s;
}

struct arbor__store *arbor__store_find(arbor_pid sup)
{
  struct arbor__proc *self, *p;
  struct arbor__store *s;
  arbor_pid next;

  if (sup != 0) {
    arbor_rt *rt = arbor__rt_of_pid(sup);

    if (rt == NULL || arbor__proc_ref(rt, sup, &p) != 0)
      return NULL;
    s = take(p);
    arbor__proc_unref(p);
    return s;
  }

  /* The nearest supervisor with a store: the caller itself if it is one,
   * then up the chain.  proc->sup is set before a process can run and never
   * changes during its incarnation, so it can be read under the reference
   * alone.  Parents are older than their children, so the walk ends; it
   * also ends (NULL) where a supervisor on the way has already exited. */
  self = arbor__proc_current();
  if (self == NULL)
    return NULL;
  s = take(self);
  next = self->sup;
  while (s == NULL && next != 0) {
    if (arbor__proc_ref(self->rt, next, &p) != 0)
      break;
    s = take(p);
    next = p->sup;
    arbor__proc_unref(p);
  }
  return s;
}

/* ---- the public calls -------------------------------------------------- */

/* Check the arguments every call shares and find the store.  Returns 0 with
 * *out referenced, or an error. */
static int begin(arbor_pid sup, const char *key, int *klen,
                 struct arbor__store **out)
{
  *klen = key_len(key);
  if (*klen < 0 || in_callback)
    return ARBOR_EINVAL;
  *out = arbor__store_find(sup);
  return *out != NULL ? 0 : ARBOR_ESRCH;
}

int64_t arbor_store_get(arbor_pid sup, const char *key, void *buf, size_t cap)
{
  struct arbor__store *s;
  struct shard *sh;
  struct entry **pp;
  uint64_t h;
  int64_t ret;
  int klen, err;

  if (buf == NULL && cap > 0)
    return ARBOR_EINVAL;
  err = begin(sup, key, &klen, &s);
  if (err != 0)
    return err;
  h = hash_key(key, (size_t)klen);
  sh = shard_of(s, h);
  pthread_mutex_lock(&sh->lock);
  pp = lookup(sh, key, (size_t)klen, h);
  if (pp != NULL && *pp != NULL) {
    struct entry *e = *pp;

    if (cap > 0 && e->vlen > 0)
      memcpy(buf, value_of(e), e->vlen < cap ? e->vlen : cap);
    ret = (int64_t)e->vlen;
  } else {
    ret = ARBOR_ENOENT;
  }
  pthread_mutex_unlock(&sh->lock);
  arbor__store_unref(s);
  return ret;
}

int arbor_store_set(arbor_pid sup, const char *key, const void *val, size_t len)
{
  struct arbor__store *s;
  struct shard *sh;
  uint64_t h;
  int klen, err;

  if (val == NULL && len > 0)
    return ARBOR_EINVAL;
  err = begin(sup, key, &klen, &s);
  if (err != 0)
    return err;
  h = hash_key(key, (size_t)klen);
  sh = shard_of(s, h);
  pthread_mutex_lock(&sh->lock);
  err = shard_put(s, sh, lookup(sh, key, (size_t)klen, h), key, (size_t)klen, h,
                  val, len);
  pthread_mutex_unlock(&sh->lock);
  arbor__store_unref(s);
  return err;
}

int arbor_store_delete(arbor_pid sup, const char *key)
{
  struct arbor__store *s;
  struct shard *sh;
  struct entry **pp;
  uint64_t h;
  int klen, err;

  err = begin(sup, key, &klen, &s);
  if (err != 0)
    return err;
  h = hash_key(key, (size_t)klen);
  sh = shard_of(s, h);
  pthread_mutex_lock(&sh->lock);
  pp = lookup(sh, key, (size_t)klen, h);
  if (pp != NULL && *pp != NULL) {
    shard_remove(s, sh, pp);
    err = 0;
  } else {
    err = ARBOR_ENOENT;
  }
  pthread_mutex_unlock(&sh->lock);
  arbor__store_unref(s);
  return err;
}

/* The callback works on a copy, so "leave the key as it was" (0), an
 * out-of-range length and ENOMEM all leave the stored value untouched.  The
 * copy holds max(cap, current length) bytes: a value longer than cap is
 * shown whole rather than cut.  Any other return than 1, 0 or -1, or a
 * length beyond the buffer, is a bug in the callback: ARBOR_EINVAL, and
 * nothing changes. */
int arbor_store_update(arbor_pid sup, const char *key, size_t cap,
                       int (*fn)(void *val, size_t *len, int exists, void *arg),
                       void *arg)
{
  alignas(max_align_t) unsigned char local[UPDATE_STACK];
  unsigned char *buf = local;
  struct arbor__store *s;
  struct shard *sh;
  struct entry **pp, *e;
  size_t len, bufcap;
  uint64_t h;
  int klen, err, r;

  if (fn == NULL)
    return ARBOR_EINVAL;
  err = begin(sup, key, &klen, &s);
  if (err != 0)
    return err;
  h = hash_key(key, (size_t)klen);
  sh = shard_of(s, h);
  pthread_mutex_lock(&sh->lock);
  pp = lookup(sh, key, (size_t)klen, h);
  e = pp != NULL ? *pp : NULL;
  len = e != NULL ? e->vlen : 0;
  bufcap = cap > len ? cap : len;
  if (bufcap > sizeof(local)) {
    buf = malloc(bufcap);
    if (buf == NULL) {
      err = ARBOR_ENOMEM;
      goto out;
    }
  }
  if (len > 0)
    memcpy(buf, value_of(e), len);

  in_callback = true;
  r = fn(buf, &len, e != NULL, arg);
  in_callback = false;

  if (r == 1 && len <= bufcap) {
    err = shard_put(s, sh, pp, key, (size_t)klen, h, buf, len);
  } else if (r == -1) {
    if (e != NULL)
      shard_remove(s, sh, pp);
    err = 0;
  } else {
    err = r == 0 ? 0 : ARBOR_EINVAL;
  }
  if (buf != local)
    free(buf);
out:
  pthread_mutex_unlock(&sh->lock);
  arbor__store_unref(s);
  return err;
}

int64_t arbor_store_size(arbor_pid sup)
{
  /* No shard lock is taken, so this is safe inside an update callback. */
  struct arbor__store *s = arbor__store_find(sup);
  int64_t n;

  if (s == NULL)
    return ARBOR_ESRCH;
  n = atomic_load_explicit(&s->count, memory_order_relaxed);
  arbor__store_unref(s);
  return n;
}
