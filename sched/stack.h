/* sched/stack.h -- process stacks: the slot arena, guarded mappings, slabs,
 * per-worker caches.
 *
 * Two kinds of stack:
 *  - guarded: a PROT_NONE guard page right below it, so an overflow faults
 *    (sched/fault.c).  Each costs two kernel mappings (VMAs);
 *    vm.max_map_count (65530 by default) therefore allows only ~32k of them
 *    per process, and a process-wide budget keeps us within it.
 *  - slab: no guard page.  The lowest ARBOR__STACK_CANARY bytes are never
 *    used by the process and must stay zero (fresh anonymous memory is
 *    zero, so writing no canary keeps an untouched bottom page out of RSS);
 *    arbor__stack_check() looks at them, and at the saved stack pointer, at
 *    every switch away from the process.
 *
 * Where they come from, in order:
 *  - the arena, for stacks of the pool's default size whose task has a slot
 *    (runtime/ uses the process record's index).  Slot s always gets the
 *    stack at the same address, base(s >> ARBOR__ARENA_BITS) + (s & mask) *
 *    stride + one page, stride being the default size plus a guard page: a
 *    ring of processes with neighbouring indices walks its stacks in address
 *    order, which the TLB and the hardware prefetchers reward, and a
 *    sender can prefetch a receiver's stack top (arbor__stack_slot_top()).
 *    A region of ARBOR__ARENA_SLOTS slots is one PROT_NONE, MAP_NORESERVE
 *    mapping made the first time one of its slots is needed (no memory,
 *    one VMA).  A slot is activated at its first use: in GUARDED and AUTO
 *    modes its stack is made read-write (two more VMAs and one unit of the
 *    guard budget, as a guarded stack); in SLAB mode the whole region is
 *    read-write from the start (one VMA, no guard pages) and its stacks are
 *    slab ones.  An activated slot stays so: at a task's exit its stack
 *    goes nowhere and keeps the pages the task touched, ready for the next
 *    task with the slot.  The arena's memory is thus bounded by the largest
 *    number of processes that were ever alive at once (what per-worker
 *    caches would keep too); it is returned only when the pool is
 *    destroyed.  An overflowed slot is broken: its pages and guard budget
 *    are given back and later tasks with that slot use the pool.
 *  - else a cache (one per worker, touched only by its owner) of recently
 *    freed stacks of the default size, so that a spawn after an exit makes
 *    no system call;
 *  - else the pool, which keeps freed stacks of every size (up to
 *    guarded_cap guarded ones; every slab one, since they cost no mapping);
 *  - else a new guarded mapping of its own (MAP_NORESERVE), or a stack
 *    carved from a large shared slab mapping.  Slab stacks are only
 *    unmapped when the pool is destroyed.
 * Whatever the arena cannot serve (another size, no slot, a region that
 * could not be mapped, the guard budget used up in AUTO mode) falls back to
 * the rest unchanged.
 */
#ifndef ARBOR_SCHED_STACK_H
#define ARBOR_SCHED_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARBOR__STACK_DEFAULT ((size_t)64 * 1024)
#define ARBOR__STACK_MIN ((size_t)16 * 1024)
#define ARBOR__STACK_MAX ((size_t)1024 * 1024 * 1024)
#define ARBOR__STACK_CANARY 64 /* bytes at the bottom of a slab stack */
/* A task with no stack arena slot: its stack comes from the pool. */
#define ARBOR__SLOT_NONE UINT32_MAX
/* Slots per arena region: 4096, as many as runtime/'s chunks of process
 * records.  One region of default (64 KiB) stacks is 272 MiB of address
 * space, mapped once per 4096 slots, and the pool's two tables of regions
 * covering every slot below ARBOR__ARENA_SLOT_LIMIT take 32 KiB each.
 * Larger regions would reserve more address space than small programs need
 * (a concern on 39-bit aarch64 kernels, and in SLAB mode under strict
 * overcommit, which charges the whole region); smaller ones would make the
 * tables grow. */
#define ARBOR__ARENA_BITS 12
#define ARBOR__ARENA_SLOTS ((uint32_t)1 << ARBOR__ARENA_BITS)
/* Slots at or above this use the pool: runtime/'s record indices have 24
 * bits. */
#define ARBOR__ARENA_SLOT_LIMIT ((uint32_t)1 << 24)
#define ARBOR__ARENA_REGIONS (ARBOR__ARENA_SLOT_LIMIT >> ARBOR__ARENA_BITS)
/* Pools whose default stack is larger have no arena: a region would take
 * more than 4 GiB of address space. */
#define ARBOR__ARENA_MAX_STACK ((size_t)1024 * 1024)

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

struct arbor__stack_slab;   /* private to stack.c */
struct arbor__stack_class;  /* private to stack.c */
struct arbor__arena_region; /* private to stack.c */

struct arbor__stack_pool {
  pthread_mutex_t lock;
  int mode;            /* enum arbor__stack_mode */
  size_t default_size; /* page-rounded */
  size_t page;
  /* Bytes per arena slot, default_size plus a guard page; 0 when the pool
   * has no arena.  Set at init. */
  size_t stride;
  /* The arena's regions by slot >> ARBOR__ARENA_BITS, NULL until mapped.
   * Each is set once, under lock, by a release store that also publishes
   * arena_meta[]; pairs with the acquire loads in stack.c.  (The hint
   * arbor__stack_slot_top() loads it relaxed: it dereferences nothing.) */
  char *_Atomic arena[ARBOR__ARENA_REGIONS];
  /* Under lock: */
  struct arbor__stack *free; /* pooled stacks of default_size (LIFO array) */
  size_t nfree, capfree;
  struct arbor__stack_slab *slabs; /* every slab ever mapped */
  /* Stacks outside the arena: */
  uint64_t mapped_guarded; /* guarded stacks currently mapped */
  uint64_t mapped_slab;    /* slab stacks carved so far */
  /* Arena slots activated and not broken: guarded ones hold a unit of the
   * guard budget each, slab ones (SLAB mode) nothing. */
  uint64_t arena_active;
  /* Private to stack.c, under lock: */
  struct arbor__stack_class *classes; /* pooled stacks of other sizes */
  size_t nclasses, capclasses;
  struct arbor__stack_slab *carving; /* slab default-size stacks come from */
  uint64_t pooled_guarded;           /* guarded stacks among the pooled */
  uint64_t guarded_cap; /* most guarded stacks pooled; set by init */
  /* Set when a region could not be mapped: the arena makes no new region
   * after that (one failed mmap per spawn would cost more than it gives).
   * Relaxed: it publishes nothing. */
  _Atomic bool arena_off;
  /* Private to stack.c: per-region slot states, written under lock before
   * arena[] publishes them. */
  struct arbor__arena_region *arena_meta[ARBOR__ARENA_REGIONS];
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

/* As arbor__stack_alloc(), but a default-size stack for a task with a
 * slot (not ARBOR__SLOT_NONE) comes from the arena when it can: the slot's
 * own stack, activated if this is its first use.  Returns the same.  Give
 * the stack back with arbor__stack_free_slot() or
 * arbor__stack_discard_slot(), with the same slot.  The caller owns the
 * slot: no other live task of the pool may use it at the same time. */
int arbor__stack_alloc_slot(struct arbor__stack_pool *pool,
                            struct arbor__stack_cache *cache, size_t size,
                            uint32_t slot, struct arbor__stack *out);

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

/* As arbor__stack_free() and arbor__stack_discard(), for a stack from
 * arbor__stack_alloc_slot() with the same slot.  An arena stack stays with
 * its slot (its canary is checked and its ASan poison cleared, as in
 * arbor__stack_free()); a discarded one breaks the slot, whose later tasks
 * then use the pool.  Other stacks go the usual way. */
void arbor__stack_free_slot(struct arbor__stack_pool *pool,
                            struct arbor__stack_cache *cache, uint32_t slot,
                            const struct arbor__stack *st);
void arbor__stack_discard_slot(struct arbor__stack_pool *pool, uint32_t slot,
                               const struct arbor__stack *st);

/* A hint: the address one past the top of slot's arena stack, if slot's
 * region is mapped, else NULL; for a sender to prefetch the line below it,
 * where a suspended receiver's stack is hot.  The slot may not be activated
 * (its memory is PROT_NONE: a prefetch of it is harmless, an access is
 * not), or its task may have a stack from the pool: never write or read
 * through it.  Any thread; two loads and a multiply. */
static inline const void *
arbor__stack_slot_top(const struct arbor__stack_pool *pool, uint32_t slot)
{
  const char *base;

  if (slot >= ARBOR__ARENA_SLOT_LIMIT)
    return NULL;
  base = atomic_load_explicit(&pool->arena[slot >> ARBOR__ARENA_BITS],
                              memory_order_relaxed);
  if (base == NULL)
    return NULL;
  return base + ((size_t)(slot & (ARBOR__ARENA_SLOTS - 1)) + 1) * pool->stride;
}

/* A message is about to go to the task with this slot: start fetching the
 * top of its stack, where its outermost frames are -- for an actor, its
 * main loop's locals, which it touches first when its receive returns.
 * The lines just above its saved stack pointer come later, when it is
 * made runnable (arbor__sched_ready()).  Issued at the start of the send,
 * the fetch (and its page walk) overlaps with the rest of the send and of
 * the sender's own switch away: in a ring of 10,000 processes, where every
 * hop's lines are cold, it takes a tenth off each hop.  A hint only. */
#define ARBOR__STACK_TOP_PREFETCH 3 /* lines */
static inline void arbor__stack_slot_prefetch(const struct arbor__stack_pool *pool,
                                              uint32_t slot)
{
  const char *top = arbor__stack_slot_top(pool, slot);

  if (top != NULL) {
    for (int i = 1; i <= ARBOR__STACK_TOP_PREFETCH; i++)
      __builtin_prefetch(top - (ptrdiff_t)64 * i);
  }
}

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
