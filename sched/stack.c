/* sched/stack.c -- process stacks: the slot arena, guarded mappings, slabs,
 * caches, pool.
 *
 * Design.  A stack for a task with an arena slot, of the pool's default
 * size, is the slot's own (see sched/stack.h): its region is mapped (under
 * pool->lock, once per ARBOR__ARENA_SLOTS slots) and published in
 * pool->arena[] with a release store, and the slot is activated at its
 * first use (one mprotect, outside the lock, in GUARDED and AUTO modes).
 * A slot's state byte is written only by the worker running the task that
 * owns the slot; ownership passes from one task to the next through
 * runtime/'s recycling of process records, and from worker to worker
 * through the run queues, both release/acquire, so the bytes are plain
 * (neighbouring bytes are distinct memory locations: no race).
 * Everything else is handed out from the caller's per-worker cache (no
 * lock, LIFO), else from the pool's free lists (under pool->lock), else
 * made: a guarded mapping of its own (two VMAs), or a stack carved from a
 * slab.  Guarded stacks and activated guarded slots are limited
 * process-wide by a budget derived from vm.max_map_count, counted in one
 * atomic shared by every pool, because running out of VMAs makes every
 * later mmap in the process fail (malloc, pthread_create), not just ours.
 * The pool keeps one LIFO array per stack size; the default size lives in
 * pool->free, other sizes in pool->classes, scanned linearly because a
 * program uses only a handful of sizes.  Each size also has its own slab
 * being carved (`carving`), so carving never searches.
 *
 * Memory.  An arena region costs address space only (272 MiB for 4096
 * default stacks) and one VMA; an activated slot keeps the pages its tasks
 * touched, like a cached stack, and in GUARDED and AUTO modes two VMAs and
 * a unit of the guard budget, until the pool is destroyed.  Slots are
 * runtime/'s record indices, and a record is made only when no free one is
 * left, so the activated slots are about as many as the most processes
 * that were ever alive at once.
 *
 * Reclamation.  Nothing is reference counted; a stack has exactly one owner
 * at a time (a process, a cache, the pool or an arena slot), and the
 * owner's thread or the pool lock is what makes moving it safe.
 *  - An arena stack never leaves its slot.  A discarded (overflowed)
 *    guarded one is made PROT_NONE again and its pages dropped at once,
 *    which gives its VMAs and budget unit back; the slot is marked broken
 *    and never used again.  Regions, with the Valgrind registrations and
 *    budget units of their active slots, go in arbor__stack_pool_fini.
 *  - A guarded stack is unmapped (with its guard page, after its Valgrind
 *    registration is dropped) by arbor__stack_free when the pool already
 *    holds guarded_cap guarded stacks, by arbor__stack_discard at once, and
 *    by arbor__stack_pool_fini for those the pool holds.  The global count is
 *    decremented only after munmap succeeded, so it never undercounts VMAs.
 *  - A slab stack is never unmapped alone: its memory, and its Valgrind
 *    registration (kept in its slab record), go when pool_fini unmaps the
 *    slab.  A discarded slab stack is simply forgotten until then.
 *  - Caches hand their stacks back to the pool in arbor__stack_cache_fini,
 *    which must run before arbor__stack_pool_fini.
 * System calls that map or unmap one guarded stack, or activate a slot, run
 * outside the pool lock; mapping a slab or a region runs under it, but only
 * once per many stacks.
 *
 * Hibernation (arbor__stack_hibernate) keeps a stack's mapping and owner and
 * only empties it: the live part goes to a malloc()ed copy owned by the
 * task, freed when arbor__stack_restore puts it back.
 */
#include "sched/stack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sched/ctx.h" /* only for ARBOR_HAVE_ASAN, detected there */

#if defined(ARBOR_HAVE_ASAN)
#include <sanitizer/asan_interface.h>
/* A process may end without returning from its frames, so ASan's poisoning
 * of them outlives it; the next user of the memory must start clean. */
#define STACK_UNPOISON(lo, n) ASAN_UNPOISON_MEMORY_REGION((lo), (n))
#else
#define STACK_UNPOISON(lo, n) ((void)(lo), (void)(n))
#endif

#if defined(ARBOR_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
/* Valgrind takes `end` inclusively; lo + size is where the stack pointer of
 * a fresh stack starts, so it belongs in the range. */
#define VG_REGISTER(lo, n) VALGRIND_STACK_REGISTER((lo), (char *)(lo) + (n))
#define VG_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define VG_REGISTER(lo, n) ((void)(lo), (void)(n), 0u)
#define VG_DEREGISTER(id) ((void)(id))
#endif

#define SLAB_BYTES ((size_t)8 * 1024 * 1024) /* preferred slab size */
#define SLAB_MIN_STACKS 64                   /* ...unless that is fewer */
/* No slab beyond 1 GiB unless one stack needs it: with overcommit mode 2 the
 * kernel ignores MAP_NORESERVE and charges the whole slab at once. */
#define SLAB_MAX_BYTES ((size_t)1024 * 1024 * 1024)
#define POOL_GUARDED_CAP 16384 /* guarded stacks a pool keeps for reuse */
#define MAP_COUNT_DEFAULT 65530
/* VMAs left to the rest of the program: libraries, malloc arenas, thread
 * stacks, other users of mmap. */
#define MAP_COUNT_RESERVE ((uint64_t)8192)

#define STACK_MAP_FLAGS \
  (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK)

struct arbor__stack_slab {
  struct arbor__stack_slab *next; /* pool->slabs, newest first */
  char *base;
  size_t bytes;
  size_t nstacks, ncarved; /* stacks of pool-chosen size; carved from base up */
#if defined(ARBOR_HAVE_VALGRIND)
  unsigned vg[]; /* ids of the carved stacks, deregistered at pool_fini */
#endif
};

/* Pooled stacks of one size other than the default. */
struct arbor__stack_class {
  size_t size;
  struct arbor__stack *items;
  size_t n, cap;
  struct arbor__stack_slab *carving; /* slab stacks of this size come from */
};

/* Arena slot states. */
enum {
  SLOT_UNTOUCHED = 0, /* never used (fresh calloc) */
  SLOT_ACTIVE = 1,    /* usable: read-write, Valgrind-registered */
  SLOT_BROKEN = 2,    /* overflowed: never used again */
};

/* The bookkeeping of one arena region (its memory is in pool->arena[]). */
struct arbor__arena_region {
  uint8_t state[ARBOR__ARENA_SLOTS]; /* SLOT_*, see the top of the file */
#if defined(ARBOR_HAVE_VALGRIND)
  unsigned vg[ARBOR__ARENA_SLOTS]; /* ids of active slots' stacks */
#endif
};

/* Where the pool keeps stacks of one size: pointers into either the
 * default-size fields of the pool or one class.  Valid until the lock is
 * dropped (pool->classes may move when a class is added). */
struct freelist {
  struct arbor__stack **items;
  size_t *n, *cap;
  struct arbor__stack_slab **carving;
};

/* Relaxed everywhere: the counts publish no data; the CAS in guard_reserve()
 * alone is what keeps the total within the budget. */
static atomic_uint_least64_t guarded_live;    /* process-wide */
static atomic_uint_least64_t budget_override; /* test hook; 0: derived */
static uint64_t budget_derived; /* written once, inside budget_once */
static pthread_once_t budget_once = PTHREAD_ONCE_INIT;

static size_t page_size(void)
{
  long p = sysconf(_SC_PAGESIZE);

  return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t size, size_t page)
{
  return (size + page - 1) & ~(page - 1);
}

static void budget_init(void)
{
  FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
  uint64_t max = MAP_COUNT_DEFAULT;
  char line[32], *end;

  if (f != NULL) {
    if (fgets(line, sizeof(line), f) != NULL) {
      unsigned long long v = strtoull(line, &end, 10);

      if (end != line && v > 0)
        max = (uint64_t)v;
    }
    (void)fclose(f); /* read-only: nothing to lose */
  }
  /* A guarded stack is two VMAs.  A limit too small for the reserve still
   * gets some guarded stacks, a quarter of it. */
  budget_derived =
      max > 2 * MAP_COUNT_RESERVE ? (max - MAP_COUNT_RESERVE) / 2 : max / 4;
}

uint64_t arbor__stack_guard_budget(void)
{
  uint64_t o = atomic_load_explicit(&budget_override, memory_order_relaxed);

  if (o != 0)
    return o;
  /* pthread_once orders budget_init's write before our read. */
  pthread_once(&budget_once, budget_init);
  return budget_derived;
}

void arbor__stack_set_guard_budget(uint64_t budget)
{
  atomic_store_explicit(&budget_override, budget, memory_order_relaxed);
}

/* Take one unit of the guard budget, or fail without changing the count. */
static bool guard_reserve(void)
{
  uint64_t budget = arbor__stack_guard_budget();
  uint64_t cur = atomic_load_explicit(&guarded_live, memory_order_relaxed);

  do {
    if (cur >= budget)
      return false;
  } while (!atomic_compare_exchange_weak_explicit(&guarded_live, &cur, cur + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed));
  return true;
}

/* Map a guarded stack.  Caller holds no lock. */
static int guarded_map(struct arbor__stack_pool *pool, size_t size,
                       struct arbor__stack *out)
{
  size_t page = pool->page;
  char *base;

  if (!guard_reserve())
    return -ENOMEM;
  base =
      mmap(NULL, size + page, PROT_READ | PROT_WRITE, STACK_MAP_FLAGS, -1, 0);
  if (base == MAP_FAILED)
    goto fail_map;
  /* Fails with ENOMEM when the split would exceed vm.max_map_count. */
  if (mprotect(base, page, PROT_NONE) != 0)
    goto fail_guard;

  out->lo = base + page;
  out->size = size;
  out->kind = ARBOR__STACK_GUARDED;
  out->vg_id = VG_REGISTER(out->lo, size);
  pthread_mutex_lock(&pool->lock);
  pool->mapped_guarded++;
  pthread_mutex_unlock(&pool->lock);
  return 0;

fail_guard:
  munmap(base, size + page);
fail_map:
  atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
  return -ENOMEM;
}

/* Unmap a guarded stack and its guard.  The caller has already taken it out
 * of pool->mapped_guarded (under the lock) and holds no lock now. */
static void guarded_unmap(const struct arbor__stack_pool *pool,
                          const struct arbor__stack *st)
{
  VG_DEREGISTER(st->vg_id);
  /* A later mmap may reuse these addresses; leave no poison behind. */
  STACK_UNPOISON(st->lo, st->size);
  /* If munmap failed the VMAs would still exist, so keep counting them. */
  if (munmap((char *)st->lo - pool->page, st->size + pool->page) == 0)
    atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
}

static struct arbor__stack_slab *slab_map(size_t size)
{
  struct arbor__stack_slab *s;
  size_t n = SLAB_BYTES / size;
  size_t extra = 0;

  if (n < SLAB_MIN_STACKS)
    n = SLAB_MIN_STACKS;
  if (n > SLAB_MAX_BYTES / size)
    n = SLAB_MAX_BYTES / size; /* >= 1: size <= ARBOR__STACK_MAX */
#if defined(ARBOR_HAVE_VALGRIND)
  extra = n * sizeof(s->vg[0]);
#endif
  s = malloc(sizeof(*s) + extra);
  if (s == NULL)
    return NULL;
  s->bytes = n * size;
  s->base =
      mmap(NULL, s->bytes, PROT_READ | PROT_WRITE, STACK_MAP_FLAGS, -1, 0);
  if (s->base == MAP_FAILED) {
    free(s);
    return NULL;
  }
  /* With THP "always" on older kernels, touching the top of one stack could
   * fault in a 2 MiB page spanning 32 stacks, multiplying RSS.  (Since Linux
   * 6.7 MAP_STACK implies this.)  Best effort: failure changes nothing. */
  (void)madvise(s->base, s->bytes, MADV_NOHUGEPAGE);
  s->nstacks = n;
  s->ncarved = 0;
  return s;
}

/* Find the free list for `size`, adding an empty class if `create`.
 * Returns 0, -ENOENT (no such class) or -ENOMEM.  Under pool->lock. */
static int pool_list(struct arbor__stack_pool *pool, size_t size, bool create,
                     struct freelist *fl)
{
  struct arbor__stack_class *c;
  size_t i;

  if (size == pool->default_size) {
    *fl = (struct freelist){&pool->free, &pool->nfree, &pool->capfree,
                            &pool->carving};
    return 0;
  }
  for (i = 0; i < pool->nclasses; i++) {
    if (pool->classes[i].size == size)
      goto found;
  }
  if (!create)
    return -ENOENT;
  if (pool->nclasses == pool->capclasses) {
    size_t cap = pool->capclasses != 0 ? 2 * pool->capclasses : 4;
    c = realloc(pool->classes, cap * sizeof(*c));
    if (c == NULL)
      return -ENOMEM;
    pool->classes = c;
    pool->capclasses = cap;
  }
  i = pool->nclasses++;
  pool->classes[i] = (struct arbor__stack_class){.size = size};
found:
  c = &pool->classes[i];
  *fl = (struct freelist){&c->items, &c->n, &c->cap, &c->carving};
  return 0;
}

/* Keep st in the pool.  Returns false when the caller must unmap it: a
 * guarded stack beyond the cap, or one there is no memory to list.  A slab
 * stack that cannot be listed stays in its slab until pool_fini.  Under
 * pool->lock. */
static bool pool_put_locked(struct arbor__stack_pool *pool,
                            const struct arbor__stack *st)
{
  bool guarded = st->kind == ARBOR__STACK_GUARDED;
  struct freelist fl;

  if (guarded && pool->pooled_guarded >= pool->guarded_cap)
    goto reject;
  if (pool_list(pool, st->size, true, &fl) != 0)
    goto reject;
  if (*fl.n == *fl.cap) {
    size_t cap = *fl.cap != 0 ? 2 * *fl.cap : 16;
    struct arbor__stack *items = realloc(*fl.items, cap * sizeof(*items));
    if (items == NULL)
      goto reject;
    *fl.items = items;
    *fl.cap = cap;
  }
  (*fl.items)[(*fl.n)++] = *st;
  pool->pooled_guarded += guarded;
  return true;

reject:
  if (!guarded)
    return true;
  pool->mapped_guarded--;
  return false;
}

/* Pop the most recently pooled stack of `size`.  Under pool->lock. */
static bool pool_take_locked(struct arbor__stack_pool *pool, size_t size,
                             struct arbor__stack *out)
{
  struct freelist fl;

  if (pool_list(pool, size, false, &fl) != 0 || *fl.n == 0)
    return false;
  *out = (*fl.items)[--*fl.n];
  pool->pooled_guarded -= out->kind == ARBOR__STACK_GUARDED;
  return true;
}

/* Carve a fresh slab stack, mapping a new slab if needed.  Under pool->lock:
 * the slab mmap is one call per SLAB_BYTES, so holding the lock is cheaper
 * than the bookkeeping needed to drop it. */
static int slab_carve_locked(struct arbor__stack_pool *pool, size_t size,
                             struct arbor__stack *out)
{
  struct arbor__stack_slab *s;
  struct freelist fl;
  int err;

  err = pool_list(pool, size, true, &fl);
  if (err != 0)
    return err;
  s = *fl.carving;
  if (s == NULL || s->ncarved == s->nstacks) {
    s = slab_map(size);
    if (s == NULL)
      return -ENOMEM;
    s->next = pool->slabs;
    pool->slabs = s;
    *fl.carving = s;
  }
  /* No canary is written: fresh anonymous memory is zero, and not touching
   * the bottom page keeps it out of RSS. */
  out->lo = s->base + s->ncarved * size;
  out->size = size;
  out->kind = ARBOR__STACK_SLAB;
  out->vg_id = VG_REGISTER(out->lo, size);
#if defined(ARBOR_HAVE_VALGRIND)
  s->vg[s->ncarved] = out->vg_id;
#endif
  s->ncarved++;
  pool->mapped_slab++;
  return 0;
}

int arbor__stack_pool_init(struct arbor__stack_pool *pool, int mode,
                           size_t size)
{
  size_t page = page_size();
  int err;

  if (pool == NULL || mode < ARBOR__STACK_MODE_AUTO ||
      mode > ARBOR__STACK_MODE_SLAB)
    return -EINVAL;
  if (size == 0)
    size = ARBOR__STACK_DEFAULT;
  if (size < ARBOR__STACK_MIN || size > ARBOR__STACK_MAX)
    return -EINVAL;
  /* memset, not a compound literal: the pool is large (the arena's
   * tables), and an unoptimised build would put a copy on the stack. */
  memset(pool, 0, sizeof(*pool));
  pool->mode = mode;
  pool->default_size = round_up(size, page);
  pool->page = page;
  pool->guarded_cap = POOL_GUARDED_CAP;
  if (pool->default_size <= ARBOR__ARENA_MAX_STACK)
    pool->stride = pool->default_size + page;
  err = pthread_mutex_init(&pool->lock, NULL);
  return -err;
}

/* Unmap the guarded stacks of one free list; slab ones go with their slab. */
static void fini_list(struct arbor__stack_pool *pool,
                      struct arbor__stack *items, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (items[i].kind == ARBOR__STACK_GUARDED) {
      pool->mapped_guarded--;
      guarded_unmap(pool, &items[i]);
    }
  }
  free(items);
}

/* Unmap every arena region; give back the budget of its active slots. */
static void fini_arena(struct arbor__stack_pool *pool)
{
  size_t bytes = (size_t)ARBOR__ARENA_SLOTS * pool->stride;

  for (uint32_t r = 0; r < ARBOR__ARENA_REGIONS; r++) {
    char *base = atomic_load_explicit(&pool->arena[r], memory_order_relaxed);
    struct arbor__arena_region *m = pool->arena_meta[r];
    uint64_t guarded = 0;

    if (base == NULL)
      continue;
    for (uint32_t i = 0; i < ARBOR__ARENA_SLOTS; i++) {
      if (m->state[i] != SLOT_ACTIVE)
        continue;
#if defined(ARBOR_HAVE_VALGRIND)
      VG_DEREGISTER(m->vg[i]);
#endif
      /* Slot by slot, not the whole region: unpoisoning writes ASan's
       * shadow, which for a whole region would be 34 MiB. */
      STACK_UNPOISON(base + (size_t)i * pool->stride + pool->page,
                     pool->default_size);
      guarded += pool->mode != ARBOR__STACK_MODE_SLAB;
    }
    if (munmap(base, bytes) == 0)
      atomic_fetch_sub_explicit(&guarded_live, guarded, memory_order_relaxed);
    free(m);
  }
}

void arbor__stack_pool_fini(struct arbor__stack_pool *pool)
{
  struct arbor__stack_slab *next;
  uint64_t mapped_guarded, mapped_slab;
  size_t default_size, page;
  int mode;

  if (pool == NULL)
    return;
  /* No lock: the pool's owner guarantees no other thread uses it now. */
  fini_arena(pool);
  fini_list(pool, pool->free, pool->nfree);
  for (size_t i = 0; i < pool->nclasses; i++)
    fini_list(pool, pool->classes[i].items, pool->classes[i].n);
  free(pool->classes);
  for (struct arbor__stack_slab *s = pool->slabs; s != NULL; s = next) {
    next = s->next;
#if defined(ARBOR_HAVE_VALGRIND)
    for (size_t i = 0; i < s->ncarved; i++)
      VG_DEREGISTER(s->vg[i]);
#endif
    STACK_UNPOISON(s->base, s->bytes);
    munmap(s->base, s->bytes);
    free(s);
  }
  pthread_mutex_destroy(&pool->lock);
  /* The counters stay: a non-zero mapped_guarded now means guarded stacks
   * were never given back.  (arena_active goes: the arena's stacks need no
   * giving back.) */
  mode = pool->mode;
  default_size = pool->default_size;
  page = pool->page;
  mapped_guarded = pool->mapped_guarded;
  mapped_slab = pool->mapped_slab;
  memset(pool, 0, sizeof(*pool));
  pool->mode = mode;
  pool->default_size = default_size;
  pool->page = page;
  pool->mapped_guarded = mapped_guarded;
  pool->mapped_slab = mapped_slab;
}

size_t arbor__stack_round(const struct arbor__stack_pool *pool, size_t size)
{
  size_t page = pool != NULL ? pool->page : page_size();

  if (size == 0)
    return pool != NULL ? pool->default_size
                        : round_up(ARBOR__STACK_DEFAULT, page);
  if (size < ARBOR__STACK_MIN || size > ARBOR__STACK_MAX)
    return 0;
  return round_up(size, page); /* stays <= MAX: MAX is a page multiple */
}

int arbor__stack_alloc(struct arbor__stack_pool *pool,
                       struct arbor__stack_cache *cache, size_t size,
                       struct arbor__stack *out)
{
  struct arbor__stack st;
  int err;

  if (pool == NULL || out == NULL || size == 0 ||
      arbor__stack_round(pool, size) != size)
    return -EINVAL;
  if (cache != NULL && cache->n > 0 && size == pool->default_size) {
    /* LIFO: the stack freed last is the likeliest to be in CPU caches. */
    *out = cache->items[--cache->n];
    return 0;
  }
  pthread_mutex_lock(&pool->lock);
  err = pool_take_locked(pool, size, &st) ? 0 : -ENOMEM;
  if (err != 0 && pool->mode == ARBOR__STACK_MODE_SLAB)
    err = slab_carve_locked(pool, size, &st);
  pthread_mutex_unlock(&pool->lock);
  if (err != 0 && pool->mode != ARBOR__STACK_MODE_SLAB) {
    /* Outside the lock: mmap plus mprotect is two system calls. */
    err = guarded_map(pool, size, &st);
    if (err != 0 && pool->mode == ARBOR__STACK_MODE_AUTO) {
      /* Out of budget or the mapping failed: in AUTO mode an unguarded
       * stack is better than a failed spawn. */
      pthread_mutex_lock(&pool->lock);
      err = slab_carve_locked(pool, size, &st);
      pthread_mutex_unlock(&pool->lock);
    }
  }
  if (err == 0)
    *out = st;
  return err;
}

static bool stack_valid(const struct arbor__stack *st)
{
  return st != NULL && st->lo != NULL && st->size != 0 &&
         (st->kind == ARBOR__STACK_GUARDED || st->kind == ARBOR__STACK_SLAB);
}

/* Move the k oldest (coldest) cached stacks to the pool under one lock. */
static void cache_spill(struct arbor__stack_pool *pool,
                        struct arbor__stack_cache *cache, unsigned k)
{
  unsigned nunmap = 0;
  unsigned i;

  pthread_mutex_lock(&pool->lock);
  for (i = 0; i < k; i++) {
    /* Rejected stacks are packed at the front of the spilled range, which is
     * free to reuse, and unmapped once the lock is dropped. */
    if (!pool_put_locked(pool, &cache->items[i]))
      cache->items[nunmap++] = cache->items[i];
  }
  pthread_mutex_unlock(&pool->lock);
  for (i = 0; i < nunmap; i++)
    guarded_unmap(pool, &cache->items[i]);
  memmove(cache->items, cache->items + k,
          (cache->n - k) * sizeof(*cache->items));
  cache->n -= k;
}

void arbor__stack_free(struct arbor__stack_pool *pool,
                       struct arbor__stack_cache *cache,
                       const struct arbor__stack *st)
{
  bool kept;

  if (pool == NULL || !stack_valid(st))
    return;
  /* The scheduler checks at every switch, but a slab stack with a dirty
   * canary must never reach another process, which would be blamed for an
   * overflow it did not cause. */
  if (!arbor__stack_check(st, (const char *)st->lo + st->size)) {
    arbor__stack_discard(pool, st);
    return;
  }
  STACK_UNPOISON(st->lo, st->size);
  if (cache != NULL && cache->cap > 0 && st->size == pool->default_size) {
    /* Spilling half, not one, leaves room for a burst of exits and takes
     * the lock once per cap/2 frees instead of once per free. */
    if (cache->n == cache->cap)
      cache_spill(pool, cache, (cache->cap + 1) / 2);
    cache->items[cache->n++] = *st;
    return;
  }
  pthread_mutex_lock(&pool->lock);
  kept = pool_put_locked(pool, st);
  pthread_mutex_unlock(&pool->lock);
  if (!kept)
    guarded_unmap(pool, st);
}

void arbor__stack_discard(struct arbor__stack_pool *pool,
                          const struct arbor__stack *st)
{
  if (pool == NULL || !stack_valid(st))
    return;
  if (st->kind == ARBOR__STACK_GUARDED) {
    pthread_mutex_lock(&pool->lock);
    pool->mapped_guarded--;
    pthread_mutex_unlock(&pool->lock);
    guarded_unmap(pool, st);
  }
  /* A slab stack is just dropped: listed nowhere, it cannot be handed out
   * again, and pool_fini unmaps it (and deregisters it) with its slab. */
}

/* ---- the arena ----------------------------------------------------------- */

static char *slot_lo(const struct arbor__stack_pool *pool, char *base,
                     uint32_t slot)
{
  return base + (size_t)(slot & (ARBOR__ARENA_SLOTS - 1)) * pool->stride +
         pool->page;
}

/* The region of slot, and its bookkeeping in *m; NULL if the pool has no
 * arena, the slot is beyond it or its region is not mapped. */
static char *arena_find(const struct arbor__stack_pool *pool, uint32_t slot,
                        struct arbor__arena_region **m)
{
  uint32_t r = slot >> ARBOR__ARENA_BITS;
  char *base;

  if (slot >= ARBOR__ARENA_SLOT_LIMIT || pool->stride == 0)
    return NULL;
  /* Acquire: pairs with the release in region_map(), for arena_meta[r]. */
  base = atomic_load_explicit(&pool->arena[r], memory_order_acquire);
  if (base != NULL)
    *m = pool->arena_meta[r];
  return base;
}

/* Map slot's region unless another thread has; as arena_find() otherwise.
 * Under pool->lock, taken here: once per region, and the mmap of a
 * PROT_NONE region touches no memory. */
static char *region_map(struct arbor__stack_pool *pool, uint32_t slot,
                        struct arbor__arena_region **m)
{
  uint32_t r = slot >> ARBOR__ARENA_BITS;
  size_t bytes = (size_t)ARBOR__ARENA_SLOTS * pool->stride;
  int prot =
      pool->mode == ARBOR__STACK_MODE_SLAB ? PROT_READ | PROT_WRITE : PROT_NONE;
  struct arbor__arena_region *meta = NULL;
  char *base;

  if (atomic_load_explicit(&pool->arena_off, memory_order_relaxed))
    return NULL;
  pthread_mutex_lock(&pool->lock);
  /* Relaxed: it is only stored to under the lock we hold. */
  base = atomic_load_explicit(&pool->arena[r], memory_order_relaxed);
  if (base != NULL) {
    meta = pool->arena_meta[r];
    goto out;
  }
  meta = calloc(1, sizeof(*meta)); /* every slot SLOT_UNTOUCHED */
  if (meta == NULL)
    goto out; /* a later spawn may retry */
  base = mmap(NULL, bytes, prot, STACK_MAP_FLAGS, -1, 0);
  if (base == MAP_FAILED) {
    /* Out of address space (a 39-bit aarch64 kernel), of VMAs, or, for a
     * read-write SLAB region, of commit under strict overcommit.  The pool
     * path serves from now on. */
    free(meta);
    base = NULL;
    atomic_store_explicit(&pool->arena_off, true, memory_order_relaxed);
    goto out;
  }
  /* As for a slab (see slab_map()); in GUARDED and AUTO modes it also keeps
   * the flags of the region's VMAs alike, so that they merge again when a
   * slot is made PROT_NONE. */
  (void)madvise(base, bytes, MADV_NOHUGEPAGE);
  pool->arena_meta[r] = meta;
  /* Release: publishes arena_meta[r]; pairs with the acquire in
   * arena_find(). */
  atomic_store_explicit(&pool->arena[r], base, memory_order_release);
out:
  pthread_mutex_unlock(&pool->lock);
  if (base != NULL)
    *m = meta;
  return base;
}

/* A slot's first use: make its stack usable.  false (and the slot left
 * untouched, for a later task to try again) past the guard budget or if
 * mprotect fails. */
static bool slot_activate(struct arbor__stack_pool *pool,
                          struct arbor__arena_region *m, uint32_t i, char *lo)
{
  if (pool->mode != ARBOR__STACK_MODE_SLAB) {
    if (!guard_reserve())
      return false;
    /* The page below lo stays PROT_NONE: the guard.  Fails with ENOMEM when
     * the split would exceed vm.max_map_count. */
    if (mprotect(lo, pool->default_size, PROT_READ | PROT_WRITE) != 0) {
      atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
      return false;
    }
  }
  /* In SLAB mode nothing to do: the region is read-write, and fresh memory
   * is zero, canary included. */
#if defined(ARBOR_HAVE_VALGRIND)
  m->vg[i] = VG_REGISTER(lo, pool->default_size);
#endif
  pthread_mutex_lock(&pool->lock);
  pool->arena_active++;
  pthread_mutex_unlock(&pool->lock);
  m->state[i] = SLOT_ACTIVE;
  return true;
}

int arbor__stack_alloc_slot(struct arbor__stack_pool *pool,
                            struct arbor__stack_cache *cache, size_t size,
                            uint32_t slot, struct arbor__stack *out)
{
  uint32_t i = slot & (ARBOR__ARENA_SLOTS - 1);
  struct arbor__arena_region *m;
  char *base, *lo;

  if (pool == NULL || out == NULL || size != pool->default_size ||
      slot >= ARBOR__ARENA_SLOT_LIMIT || pool->stride == 0)
    goto pool_path;
  base = arena_find(pool, slot, &m);
  if (base == NULL && (base = region_map(pool, slot, &m)) == NULL)
    goto pool_path;
  lo = slot_lo(pool, base, slot);
  if (m->state[i] == SLOT_BROKEN ||
      (m->state[i] == SLOT_UNTOUCHED && !slot_activate(pool, m, i, lo)))
    goto pool_path;
  out->lo = lo;
  out->size = pool->default_size;
  out->kind = pool->mode == ARBOR__STACK_MODE_SLAB ? ARBOR__STACK_SLAB
                                                   : ARBOR__STACK_GUARDED;
#if defined(ARBOR_HAVE_VALGRIND)
  out->vg_id = m->vg[i];
#else
  out->vg_id = 0;
#endif
  return 0;

pool_path:
  /* In GUARDED mode past the budget this fails with -ENOMEM as it should,
   * unless the pool still holds a guarded stack. */
  return arbor__stack_alloc(pool, cache, size, out);
}

/* The bookkeeping of slot's region if st is slot's arena stack, else NULL:
 * the address alone tells, since nothing else is ever mapped there. */
static struct arbor__arena_region *
arena_of(const struct arbor__stack_pool *pool, uint32_t slot,
         const struct arbor__stack *st)
{
  struct arbor__arena_region *m;
  char *base = arena_find(pool, slot, &m);

  return base != NULL && st->lo == slot_lo(pool, base, slot) ? m : NULL;
}

void arbor__stack_free_slot(struct arbor__stack_pool *pool,
                            struct arbor__stack_cache *cache, uint32_t slot,
                            const struct arbor__stack *st)
{
  if (pool == NULL || !stack_valid(st))
    return;
  if (arena_of(pool, slot, st) == NULL) {
    arbor__stack_free(pool, cache, st);
    return;
  }
  /* As in arbor__stack_free(): the next task with this slot must not be
   * blamed for an overflow it did not cause. */
  if (!arbor__stack_check(st, (const char *)st->lo + st->size)) {
    arbor__stack_discard_slot(pool, slot, st);
    return;
  }
  /* Its pages stay: the next task with this slot is likely to need them. */
  STACK_UNPOISON(st->lo, st->size);
}

void arbor__stack_discard_slot(struct arbor__stack_pool *pool, uint32_t slot,
                               const struct arbor__stack *st)
{
  uint32_t i = slot & (ARBOR__ARENA_SLOTS - 1);
  struct arbor__arena_region *m;

  if (pool == NULL || !stack_valid(st))
    return;
  m = arena_of(pool, slot, st);
  if (m == NULL) {
    arbor__stack_discard(pool, st);
    return;
  }
  /* Broken for good: simpler than proving a remapped slot clean, and an
   * overflow is rare enough that the pool can serve this slot's tasks. */
  m->state[i] = SLOT_BROKEN;
  pthread_mutex_lock(&pool->lock);
  pool->arena_active--;
  pthread_mutex_unlock(&pool->lock);
#if defined(ARBOR_HAVE_VALGRIND)
  VG_DEREGISTER(m->vg[i]);
#endif
  STACK_UNPOISON(st->lo, st->size);
  /* A slab one keeps its memory until pool_fini, as a discarded slab stack
   * does.  A guarded one gives back its pages, then its two VMAs (PROT_NONE
   * again, it merges with the guard pages around it) and its budget unit;
   * if mprotect failed the VMAs would still exist, so keep counting them. */
  if (st->kind != ARBOR__STACK_GUARDED)
    return;
  (void)madvise(st->lo, st->size, MADV_DONTNEED);
  if (mprotect(st->lo, st->size, PROT_NONE) == 0)
    atomic_fetch_sub_explicit(&guarded_live, 1, memory_order_relaxed);
}

int arbor__stack_cache_init(struct arbor__stack_cache *cache, unsigned cap)
{
  struct arbor__stack *items;

  if (cache == NULL)
    return -EINVAL;
  items = cap > 0 ? calloc(cap, sizeof(*items)) : NULL;
  if (cap > 0 && items == NULL)
    return -ENOMEM;
  *cache = (struct arbor__stack_cache){.items = items, .cap = cap};
  return 0;
}

void arbor__stack_cache_fini(struct arbor__stack_pool *pool,
                             struct arbor__stack_cache *cache)
{
  if (cache == NULL)
    return;
  if (pool != NULL && cache->n > 0)
    cache_spill(pool, cache, cache->n);
  free(cache->items);
  *cache = (struct arbor__stack_cache){0};
}

/* ---- hibernation --------------------------------------------------------- */

/* Copy n bytes between a suspended stack and a heap buffer.  In ASan builds
 * the live part of a stack holds the poisoned redzones of its frames, which
 * must travel with the rest: the copy is uninstrumented, word by word, and
 * volatile keeps the compiler from turning the loop back into a memcpy()
 * call, which ASan would check.  Both ends are 16-byte aligned (a saved
 * stack pointer, a page boundary, a malloc()ed block). */
#if defined(ARBOR_HAVE_ASAN)
__attribute__((no_sanitize("address"))) static void
stack_copy(void *dst, const void *src, size_t n)
{
  volatile uint64_t *d = dst;
  const volatile uint64_t *s = src;

  for (size_t i = 0; i < n / sizeof(*d); i++)
    d[i] = s[i];
}
#else
static void stack_copy(void *dst, const void *src, size_t n)
{
  memcpy(dst, src, n);
}
#endif

int arbor__stack_hibernate(const struct arbor__stack *st, const void *sp,
                           void **buf)
{
  size_t n = (size_t)((const char *)st->lo + st->size - (const char *)sp);
  void *b = malloc(n);

  if (b == NULL)
    return -ENOMEM;
  stack_copy(b, sp, n);
  /* Every page, not just the live ones: those the task touched deeper down
   * before are dead now and cost as much.  Both ends are page boundaries.
   * A failure (none is expected on a private anonymous mapping of our own)
   * leaves the pages as they were, and restoring then rewrites what they
   * already hold. */
  (void)madvise(st->lo, st->size, MADV_DONTNEED);
  *buf = b;
  return 0;
}

void arbor__stack_restore(const struct arbor__stack *st, const void *sp,
                          void *buf)
{
  size_t n = (size_t)((const char *)st->lo + st->size - (const char *)sp);

  stack_copy((char *)st->lo + st->size - n, buf, n);
  free(buf);
}
