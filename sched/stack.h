/* sched/stack.h -- process stacks: guarded mappings, slabs, per-worker caches.
 *
 * Two kinds of stack:
 *  - guarded: a mapping of its own, MAP_NORESERVE, with a PROT_NONE guard
 *    page below it.  It costs two kernel mappings (VMAs); vm.max_map_count
 *    (65530 by default) therefore allows only ~32k of them per process.
 *  - slab: carved from a large shared mapping, no guard page.  The lowest
 *    ARBOR__STACK_CANARY bytes are never used by the process and must stay
 *    zero (fresh anonymous memory is zero, so writing no canary keeps an
 *    untouched bottom page out of RSS); arbor__stack_check() looks at them,
 *    and at the saved stack pointer, at every switch away from the process.
 *
 * A pool (one per runtime) maps and unmaps; a cache (one per worker, touched
 * only by its owner) keeps recently freed stacks of the pool's default size
 * so that a spawn after an exit makes no system call.  Stacks of other sizes,
 * and default-size stacks that overflow a cache, go back to the pool, which
 * keeps up to guarded_cap guarded stacks and unmaps those beyond; it keeps
 * every freed slab stack, since they cost no mapping.  Slab stacks are only
 * unmapped when the pool is destroyed.
 */
#ifndef ARBOR_SCHED_STACK_H
#define ARBOR_SCHED_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARBOR__STACK_DEFAULT ((size_t)64 * 1024)
#define ARBOR__STACK_MIN ((size_t)16 * 1024)
#define ARBOR__STACK_MAX ((size_t)1024 * 1024 * 1024)
#define ARBOR__STACK_CANARY 64 /* bytes at the bottom of a slab stack */
/* A task with no stack arena slot: its stack comes from the pool. */
#define ARBOR__SLOT_NONE UINT32_MAX

enum arbor__stack_kind {
  ARBOR__STACK_NONE = 0,
  ARBOR__STACK_GUARDED = 1,
  ARBOR__STACK_SLAB = 2,
};

/* Modes; the values match the public enum arbor_stack_mode. */
enum arbor__stack_mode {
  ARBOR__STACK_MODE_AUTO = 0,
  ARBOR__STACK_MODE_GUARDED = 1,
  ARBOR__STACK_MODE_SLAB = 2,
};

struct arbor__stack {
  void *lo;       /* lowest usable address (above the guard page) */
  size_t size;    /* usable bytes; the stack grows down from lo + size */
  uint32_t kind;  /* enum arbor__stack_kind */
  unsigned vg_id; /* Valgrind stack id, 0 when not running under Valgrind */
};

struct arbor__stack_slab;  /* private to stack.c */
struct arbor__stack_class; /* private to stack.c */

struct arbor__stack_pool {
  pthread_mutex_t lock;
  int mode;            /* enum arbor__stack_mode */
  size_t default_size; /* page-rounded */
  size_t page;
  /* Under lock: */
  struct arbor__stack *free; /* pooled stacks of default_size (LIFO array) */
  size_t nfree, capfree;
  struct arbor__stack_slab *slabs; /* every slab ever mapped */
  uint64_t mapped_guarded;         /* guarded stacks currently mapped */
  uint64_t mapped_slab;            /* slab stacks carved so far */
  /* Private to stack.c, under lock: */
  struct arbor__stack_class *classes; /* pooled stacks of other sizes */
  size_t nclasses, capclasses;
  struct arbor__stack_slab *carving; /* slab default-size stacks come from */
  uint64_t pooled_guarded;           /* guarded stacks among the pooled */
  uint64_t guarded_cap; /* most guarded stacks pooled; set by init */
};

struct arbor__stack_cache {
  struct arbor__stack *items;
  unsigned n, cap;
};

/* Set up a pool.  size is the default stack size (0: 64 KiB), rounded up to
 * pages.  Returns 0, -EINVAL (bad mode or size) or -ENOMEM. */
int arbor__stack_pool_init(struct arbor__stack_pool *pool, int mode,
                           size_t size);

/* Unmap every stack the pool holds and every slab.  Every stack handed out
 * must have been freed (or discarded) before. */
void arbor__stack_pool_fini(struct arbor__stack_pool *pool);

/* Round a requested size (0: the pool's default) to the size actually used.
 * Returns 0 for a size out of [ARBOR__STACK_MIN, ARBOR__STACK_MAX]. */
size_t arbor__stack_round(const struct arbor__stack_pool *pool, size_t size);

/* Get a stack of `size` bytes (already rounded), from the cache if one is
 * given and holds one, else from the pool, else freshly mapped.  In AUTO
 * mode a guarded stack is mapped while the process-wide count of guarded
 * stacks is below the budget derived from vm.max_map_count, and a slab stack
 * after that (or if the guarded mapping fails).  GUARDED mode respects the
 * same budget: past it, or if the mapping fails, it returns -ENOMEM.
 * Returns 0, -EINVAL (size not as returned by arbor__stack_round, or a NULL
 * pool or out) or -ENOMEM; *out is untouched on failure. */
int arbor__stack_alloc(struct arbor__stack_pool *pool,
                       struct arbor__stack_cache *cache, size_t size,
                       struct arbor__stack *out);

/* Give a stack back: to the cache (if given and the stack has the default
 * size; a full cache first moves its older half to the pool), else to the
 * pool, else unmap it (guarded only, beyond the pool's guarded_cap).  A slab
 * stack whose canary is no longer zero is discarded instead. */
void arbor__stack_free(struct arbor__stack_pool *pool,
                       struct arbor__stack_cache *cache,
                       const struct arbor__stack *st);

/* A stack that overflowed must not be reused: a guarded one is unmapped; a
 * slab one is never handed out again and goes when the pool is destroyed. */
void arbor__stack_discard(struct arbor__stack_pool *pool,
                          const struct arbor__stack *st);

/* Per-worker cache; cap 0 disables caching. */
int arbor__stack_cache_init(struct arbor__stack_cache *cache, unsigned cap);
/* Hand every cached stack back to the pool (or unmap), then free the cache. */
void arbor__stack_cache_fini(struct arbor__stack_pool *pool,
                             struct arbor__stack_cache *cache);

/* Overflow check at a switch away from a process: false if the saved stack
 * pointer sp is below lo + ARBOR__STACK_CANARY (either kind) or, for slab
 * stacks, if the canary bytes are no longer zero.  sp may be NULL when it is
 * unknown (a final switch, or the ucontext back end). */
_Static_assert(ARBOR__STACK_CANARY == 8 * sizeof(uint64_t),
               "arbor__stack_check reads the canary as eight words");
static inline bool arbor__stack_check(const struct arbor__stack *st,
                                      const void *sp)
{
  const uint64_t *c = (const uint64_t *)st->lo;

  if (sp != NULL &&
      (const char *)sp < (const char *)st->lo + ARBOR__STACK_CANARY)
    return false;
  if (st->kind != ARBOR__STACK_SLAB)
    return true;
  return (c[0] | c[1] | c[2] | c[3] | c[4] | c[5] | c[6] | c[7]) == 0;
}

/* Hibernation (arbor_hibernate()).  Copy the live part [sp, top) of a
 * suspended task's stack, where sp is its saved stack pointer, into a
 * right-sized malloc()ed buffer (*buf), and give every page of the stack
 * back to the kernel (MADV_DONTNEED: the pages read as zero until touched,
 * so a slab stack's canary stays zero).  Returns 0, or -ENOMEM with *buf
 * untouched and the stack as it was.  The stack must not be in use by
 * anyone until arbor__stack_restore(): what is read there meanwhile is
 * zero, and what is written is lost. */
int arbor__stack_hibernate(const struct arbor__stack *st, const void *sp,
                           void **buf);
/* Undo arbor__stack_hibernate(): copy buf back to [sp, top), at the same
 * address, and free it. */
void arbor__stack_restore(const struct arbor__stack *st, const void *sp,
                          void *buf);

/* Process-wide number of guarded stacks allowed at once (from
 * vm.max_map_count, leaving room for the rest of the program). */
uint64_t arbor__stack_guard_budget(void);

/* Test hook: replace that budget (0 restores the derived one), so tests can
 * exhaust it without mapping ~32k stacks.  Already mapped stacks stay. */
void arbor__stack_set_guard_budget(uint64_t budget);

#endif /* ARBOR_SCHED_STACK_H */
