/* tests/test_stack.c -- white-box tests of sched/stack.c (guarded and slab
 * stacks, caches, the pool, the guard budget, the slot arena).
 *
 * Criterion runs every test in a process of its own, so the process-wide
 * count of guarded stacks starts at zero in each test and a lowered guard
 * budget (arbor__stack_set_guard_budget) cannot leak into another test.
 * VMAs are counted as lines of /proc/self/maps.
 */
#include "sched/stack.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(TEST_ASAN)
#include <sanitizer/asan_interface.h>

/* The guard-page test needs its SIGSEGV to kill the test process, not to be
 * turned into an ASan report and exit(1).  ASAN_OPTIONS, when set, still
 * overrides this. */
__attribute__((visibility("default"))) const char *__asan_default_options(void)
{
  return "handle_segv=0";
}
#endif
#if defined(ARBOR_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#endif

#define KIB ((size_t)1024)
/* VMAs the allocator may add meanwhile (ASan maps big blocks of its own and
 * keeps freed ones in quarantine); far below what a leak of stacks shows. */
#define MAPS_SLACK 32

static size_t count_maps(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  size_t n = 0;
  int c;

  cr_assert_not_null(f);
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

static size_t page(void)
{
  return (size_t)sysconf(_SC_PAGESIZE);
}

static void pool_init(struct arbor__stack_pool *pool, int mode)
{
  cr_assert_eq(arbor__stack_pool_init(pool, mode, 0), 0);
}

static struct arbor__stack alloc_ok(struct arbor__stack_pool *pool,
                                    struct arbor__stack_cache *cache,
                                    size_t size)
{
  struct arbor__stack st;

  cr_assert_eq(arbor__stack_alloc(pool, cache, size, &st), 0);
  cr_assert_not_null(st.lo);
  cr_assert_eq(st.size, size);
  return st;
}

static void *top(const struct arbor__stack *st)
{
  return (char *)st->lo + st->size;
}

static int by_lo(const void *a, const void *b)
{
  uintptr_t x = (uintptr_t)((const struct arbor__stack *)a)->lo;
  uintptr_t y = (uintptr_t)((const struct arbor__stack *)b)->lo;

  return (x > y) - (x < y);
}

Test(stack, default_size_is_64_kib_and_sizes_round_up_to_whole_pages)
{
  struct arbor__stack_pool pool;
  size_t p = page();

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_expect_eq(pool.default_size, 64 * KIB);
  cr_expect_eq(arbor__stack_round(&pool, 0), 64 * KIB);
  cr_expect_eq(arbor__stack_round(NULL, 0), 64 * KIB);
  cr_expect_eq(arbor__stack_round(&pool, 16 * KIB), 16 * KIB);
  cr_expect_eq(arbor__stack_round(&pool, 16 * KIB + 1), 16 * KIB + p);
  cr_expect_eq(arbor__stack_round(&pool, 100000), (100000 + p - 1) / p * p);
  arbor__stack_pool_fini(&pool);

  cr_assert_eq(arbor__stack_pool_init(&pool, ARBOR__STACK_MODE_SLAB, 70000), 0);
  cr_expect_eq(pool.default_size, (70000 + p - 1) / p * p);
  cr_expect_eq(arbor__stack_round(&pool, 0), pool.default_size);
  arbor__stack_pool_fini(&pool);
}

Test(stack, sizes_below_16_kib_or_above_1_gib_are_rejected)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st = {.lo = &pool};

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_expect_eq(arbor__stack_round(&pool, 1), 0);
  cr_expect_eq(arbor__stack_round(&pool, 16 * KIB - 1), 0);
  cr_expect_eq(arbor__stack_round(&pool, ARBOR__STACK_MAX + 1), 0);
  cr_expect_eq(arbor__stack_round(&pool, SIZE_MAX), 0);
  cr_expect_eq(arbor__stack_round(&pool, ARBOR__STACK_MAX), ARBOR__STACK_MAX);

  /* Bad sizes and modes fail cleanly everywhere else too. */
  cr_expect_eq(arbor__stack_alloc(&pool, NULL, 0, &st), -EINVAL);
  cr_expect_eq(arbor__stack_alloc(&pool, NULL, 64 * KIB + 1, &st), -EINVAL);
  cr_expect_eq(arbor__stack_alloc(&pool, NULL, 4 * KIB, &st), -EINVAL);
  cr_expect_eq(arbor__stack_alloc(&pool, NULL, 64 * KIB, NULL), -EINVAL);
  cr_expect_eq(st.lo, &pool, "a failed alloc leaves *out untouched");
  arbor__stack_pool_fini(&pool);

  cr_expect_eq(arbor__stack_pool_init(&pool, 0, 8 * KIB), -EINVAL);
  cr_expect_eq(arbor__stack_pool_init(&pool, 0, ARBOR__STACK_MAX + 1), -EINVAL);
  cr_expect_eq(arbor__stack_pool_init(&pool, 3, 0), -EINVAL);
  cr_expect_eq(arbor__stack_pool_init(&pool, -1, 0), -EINVAL);
  cr_expect_eq(arbor__stack_pool_init(NULL, 0, 0), -EINVAL);
  cr_expect_eq(arbor__stack_cache_init(NULL, 4), -EINVAL);
}

Test(stack, writing_one_byte_below_a_guarded_stack_hits_the_guard_page,
     .signal = SIGSEGV)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  st = alloc_ok(&pool, NULL, pool.default_size);
  cr_assert_eq(st.kind, ARBOR__STACK_GUARDED);
  ((volatile char *)st.lo)[-1] = 1;
  cr_assert_fail("the write below lo did not fault");
}

Test(stack, a_guarded_or_slab_stack_can_be_written_end_to_end)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;
  int modes[] = {ARBOR__STACK_MODE_GUARDED, ARBOR__STACK_MODE_SLAB};

  for (size_t m = 0; m < 2; m++) {
    pool_init(&pool, modes[m]);
    st = alloc_ok(&pool, NULL, pool.default_size);
    cr_expect_eq(st.kind, modes[m] == ARBOR__STACK_MODE_GUARDED
                              ? ARBOR__STACK_GUARDED
                              : ARBOR__STACK_SLAB);
    cr_expect_eq((uintptr_t)st.lo % page(), 0);
    memset(st.lo, 0xa5, st.size);
    cr_expect_eq(((unsigned char *)st.lo)[0], 0xa5);
    cr_expect_eq(((unsigned char *)st.lo)[st.size - 1], 0xa5);
    /* The canary area was written, so the slab stack must go. */
    arbor__stack_discard(&pool, &st);
    arbor__stack_pool_fini(&pool);
  }
}

Test(stack, a_freed_stack_comes_back_from_the_cache_without_a_new_mapping)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack a, b, c;
  uint64_t mapped;
  size_t maps;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  cr_assert_eq(arbor__stack_cache_init(&cache, 4), 0);
  a = alloc_ok(&pool, &cache, pool.default_size);
  mapped = pool.mapped_guarded;
  maps = count_maps();
  arbor__stack_free(&pool, &cache, &a);
  cr_expect_eq(cache.n, 1);
  c = alloc_ok(&pool, &cache, pool.default_size);
  cr_expect_eq(c.lo, a.lo);
  cr_expect_eq(pool.mapped_guarded, mapped);
  cr_expect_eq(count_maps(), maps);

  /* LIFO: the stack freed last comes out first. */
  b = alloc_ok(&pool, &cache, pool.default_size);
  mapped = pool.mapped_guarded;
  arbor__stack_free(&pool, &cache, &a);
  arbor__stack_free(&pool, &cache, &b);
  cr_expect_eq(alloc_ok(&pool, &cache, pool.default_size).lo, b.lo);
  cr_expect_eq(alloc_ok(&pool, &cache, pool.default_size).lo, a.lo);
  cr_expect_eq(pool.mapped_guarded, mapped);

  arbor__stack_free(&pool, &cache, &a);
  arbor__stack_free(&pool, &cache, &b);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
  cr_expect_eq(pool.mapped_guarded, 0);
}

Test(stack, a_full_cache_moves_its_older_half_to_the_pool_at_once)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack st[9];
  uint64_t mapped;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  for (int i = 0; i < 9; i++)
    st[i] = alloc_ok(&pool, &cache, pool.default_size);
  mapped = pool.mapped_guarded;
  for (int i = 0; i < 8; i++)
    arbor__stack_free(&pool, &cache, &st[i]);
  cr_expect_eq(cache.n, 8);
  cr_expect_eq(pool.nfree, 0);

  arbor__stack_free(&pool, &cache, &st[8]);
  cr_expect_eq(cache.n, 5);
  cr_expect_eq(pool.nfree, 4);
  /* The four freed first (the coldest) went to the pool. */
  for (int i = 0; i < 4; i++)
    cr_expect_eq(cache.items[i].lo, st[4 + i].lo);
  cr_expect_eq(cache.items[4].lo, st[8].lo);
  for (int i = 0; i < 4; i++)
    cr_expect_eq(pool.free[i].lo, st[i].lo);

  /* Drain the cache, then the pool serves without mapping. */
  for (int i = 0; i < 9; i++)
    st[i] = alloc_ok(&pool, &cache, pool.default_size);
  cr_expect_eq(pool.mapped_guarded, mapped);
  cr_expect_eq(pool.nfree, 0);
  for (int i = 0; i < 9; i++)
    arbor__stack_free(&pool, &cache, &st[i]);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
}

Test(stack, cache_fini_hands_every_cached_stack_to_the_pool)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack st[5];

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  for (int i = 0; i < 5; i++)
    st[i] = alloc_ok(&pool, &cache, pool.default_size);
  for (int i = 0; i < 5; i++)
    arbor__stack_free(&pool, &cache, &st[i]);
  arbor__stack_cache_fini(&pool, &cache);
  cr_expect_eq(cache.n, 0);
  cr_expect_eq(pool.nfree, 5);
  cr_expect_eq(pool.mapped_guarded, 5);
  cr_expect_eq(alloc_ok(&pool, NULL, pool.default_size).lo, st[4].lo);
  arbor__stack_free(&pool, NULL, &st[4]);
  arbor__stack_pool_fini(&pool);
}

Test(stack,
     the_pool_keeps_a_bounded_number_of_guarded_stacks_and_unmaps_the_rest,
     .timeout = 60)
{
  struct arbor__stack_pool pool;
  struct arbor__stack *st;
  size_t n, extra = 200, start, full, freed;

  start = count_maps();
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  n = (size_t)pool.guarded_cap + extra;
  st = calloc(n, sizeof(*st));
  cr_assert_not_null(st);
  for (size_t i = 0; i < n; i++)
    st[i] = alloc_ok(&pool, NULL, pool.default_size);
  full = count_maps();
  cr_expect_geq(full, start + 2 * n, "a guarded stack is two VMAs");

  for (size_t i = 0; i < n; i++)
    arbor__stack_free(&pool, NULL, &st[i]);
  freed = count_maps();
  cr_expect_eq(pool.nfree, pool.guarded_cap);
  cr_expect_eq(pool.mapped_guarded, pool.guarded_cap);
  cr_expect_leq(freed + 2 * extra, full + MAPS_SLACK,
                "maps: %zu full, %zu freed", full, freed);

  arbor__stack_pool_fini(&pool);
  cr_expect_eq(pool.mapped_guarded, 0);
  cr_expect_leq(count_maps(), start + MAPS_SLACK, "maps: %zu, %zu at start",
                count_maps(), start);
  free(st);
}

Test(stack, slab_mode_gives_100000_distinct_stacks_in_a_few_mappings,
     .timeout = 120)
{
  enum { N = 100000 };
  struct arbor__stack_pool pool;
  struct arbor__stack *st;
  size_t start, grown;

  st = calloc(N, sizeof(*st));
  cr_assert_not_null(st);
  start = count_maps();
  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  for (size_t i = 0; i < N; i++) {
    st[i] = alloc_ok(&pool, NULL, pool.default_size);
    cr_assert_eq(st[i].kind, ARBOR__STACK_SLAB);
  }
  grown = count_maps() - start;
  cr_expect_lt(grown, 100, "%zu new VMAs for %d stacks", grown, N);
  cr_expect_eq(pool.mapped_slab, N);
  cr_expect_eq(pool.mapped_guarded, 0);

  qsort(st, N, sizeof(*st), by_lo);
  for (size_t i = 1; i < N; i++)
    cr_assert_leq((char *)st[i - 1].lo + st[i - 1].size, (char *)st[i].lo,
                  "stacks %zu and %zu overlap", i - 1, i);

  for (size_t i = 0; i < N; i++)
    arbor__stack_free(&pool, NULL, &st[i]);
  cr_expect_eq(pool.nfree, N);
  arbor__stack_pool_fini(&pool);
  cr_expect_leq(count_maps(), start + MAPS_SLACK, "maps: %zu, %zu at start",
                count_maps(), start);
  free(st);
}

Test(
    stack,
    the_check_passes_on_a_fresh_slab_stack_and_fails_once_its_canary_is_written)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;

  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  st = alloc_ok(&pool, NULL, pool.default_size);
  cr_expect(arbor__stack_check(&st, top(&st)));
  cr_expect(arbor__stack_check(&st, (char *)st.lo + ARBOR__STACK_CANARY));
  cr_expect(arbor__stack_check(&st, NULL), "NULL: sp unknown");
  ((volatile char *)st.lo)[ARBOR__STACK_CANARY - 1] = 1;
  cr_expect_not(arbor__stack_check(&st, top(&st)));
  cr_expect_not(arbor__stack_check(&st, NULL), "the canary is still read");
  ((volatile char *)st.lo)[ARBOR__STACK_CANARY - 1] = 0;
  ((volatile char *)st.lo)[0] = 1;
  cr_expect_not(arbor__stack_check(&st, top(&st)));
  ((volatile char *)st.lo)[0] = 0;
  /* Bytes above the canary are the process's own. */
  ((volatile char *)st.lo)[ARBOR__STACK_CANARY] = 1;
  cr_expect(arbor__stack_check(&st, top(&st)));
  arbor__stack_discard(&pool, &st);
  arbor__stack_pool_fini(&pool);
}

Test(stack, the_check_fails_when_sp_is_below_the_canary_area)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;
  int modes[] = {ARBOR__STACK_MODE_GUARDED, ARBOR__STACK_MODE_SLAB};

  for (size_t m = 0; m < 2; m++) {
    pool_init(&pool, modes[m]);
    st = alloc_ok(&pool, NULL, pool.default_size);
    cr_expect(arbor__stack_check(&st, top(&st)));
    cr_expect_not(
        arbor__stack_check(&st, (char *)st.lo + ARBOR__STACK_CANARY - 1));
    cr_expect_not(arbor__stack_check(&st, st.lo));
    cr_expect_not(arbor__stack_check(&st, (char *)st.lo - 4096));
    arbor__stack_free(&pool, NULL, &st);
    arbor__stack_pool_fini(&pool);
  }
}

Test(stack, a_slab_stack_freed_with_a_dirty_canary_is_discarded)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack bad, st[200];

  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  bad = alloc_ok(&pool, &cache, pool.default_size);
  ((char *)bad.lo)[8] = 1;
  arbor__stack_free(&pool, &cache, &bad);
  cr_expect_eq(cache.n, 0);
  cr_expect_eq(pool.nfree, 0);
  /* More than one slab's worth, all fresh: none may be the dirty one. */
  for (int i = 0; i < 200; i++) {
    st[i] = alloc_ok(&pool, &cache, pool.default_size);
    cr_expect_neq(st[i].lo, bad.lo);
    cr_expect(arbor__stack_check(&st[i], top(&st[i])));
  }
  for (int i = 0; i < 200; i++)
    arbor__stack_free(&pool, &cache, &st[i]);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
}

Test(stack, discarded_stacks_are_not_handed_out_again)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack a, b, st[300];
  size_t maps;

  /* Guarded: discarding unmaps at once (the kernel may later give the same
   * addresses to a new mapping, which is a different stack). */
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  a = alloc_ok(&pool, &cache, pool.default_size);
  maps = count_maps();
  arbor__stack_discard(&pool, &a);
  cr_expect_eq(pool.mapped_guarded, 0);
  cr_expect_eq(cache.n, 0);
  cr_expect_eq(pool.nfree, 0);
  cr_expect_eq(count_maps() + 2, maps);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);

  /* Slab: the memory stays mapped but is never reused. */
  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  a = alloc_ok(&pool, &cache, pool.default_size);
  b = alloc_ok(&pool, &cache, pool.default_size);
  arbor__stack_discard(&pool, &a);
  arbor__stack_free(&pool, &cache, &b);
  for (int i = 0; i < 300; i++) {
    st[i] = alloc_ok(&pool, &cache, pool.default_size);
    cr_expect_neq(st[i].lo, a.lo);
  }
  cr_expect_eq(st[0].lo, b.lo, "a freed stack is reused");
  for (int i = 0; i < 300; i++)
    arbor__stack_free(&pool, &cache, &st[i]);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
}

Test(stack,
     auto_mode_falls_back_to_slab_stacks_once_the_guard_budget_is_used_up)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st[20];

  arbor__stack_set_guard_budget(8);
  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  for (int i = 0; i < 20; i++) {
    st[i] = alloc_ok(&pool, NULL, pool.default_size);
    cr_expect_eq(st[i].kind, i < 8 ? ARBOR__STACK_GUARDED : ARBOR__STACK_SLAB,
                 "stack %d", i);
  }
  cr_expect_eq(pool.mapped_guarded, 8);
  cr_expect_eq(pool.mapped_slab, 12);
  for (int i = 0; i < 20; i++)
    arbor__stack_free(&pool, NULL, &st[i]);
  arbor__stack_pool_fini(&pool);
  arbor__stack_set_guard_budget(0);
}

/* vm.max_map_count cannot be lowered without root and a sysctl shared by the
 * whole machine, so the test lowers the budget derived from it instead: the
 * same code path as a real exhaustion, since the budget is checked before
 * anything is mapped. */
Test(stack, guarded_mode_fails_with_enomem_once_the_guard_budget_is_used_up)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st[3], out = {.lo = &pool};

  arbor__stack_set_guard_budget(3);
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  for (int i = 0; i < 3; i++)
    st[i] = alloc_ok(&pool, NULL, pool.default_size);
  cr_expect_eq(arbor__stack_alloc(&pool, NULL, pool.default_size, &out),
               -ENOMEM);
  cr_expect_eq(out.lo, &pool, "a failed alloc leaves *out untouched");
  cr_expect_eq(pool.mapped_guarded, 3);
  cr_expect_eq(pool.mapped_slab, 0);

  /* Unmapping one gives its budget back. */
  arbor__stack_discard(&pool, &st[0]);
  st[0] = alloc_ok(&pool, NULL, pool.default_size);
  for (int i = 0; i < 3; i++)
    arbor__stack_free(&pool, NULL, &st[i]);
  arbor__stack_pool_fini(&pool);
  arbor__stack_set_guard_budget(0);
}

Test(stack, pools_share_one_process_wide_guard_budget)
{
  struct arbor__stack_pool a, b;
  struct arbor__stack sa[3], sb, out;

  arbor__stack_set_guard_budget(4);
  pool_init(&a, ARBOR__STACK_MODE_GUARDED);
  pool_init(&b, ARBOR__STACK_MODE_GUARDED);
  for (int i = 0; i < 3; i++)
    sa[i] = alloc_ok(&a, NULL, a.default_size);
  sb = alloc_ok(&b, NULL, b.default_size);
  cr_expect_eq(arbor__stack_alloc(&b, NULL, b.default_size, &out), -ENOMEM);
  /* Pooled guarded stacks are still mapped, so they still count. */
  for (int i = 0; i < 3; i++)
    arbor__stack_free(&a, NULL, &sa[i]);
  cr_expect_eq(arbor__stack_alloc(&b, NULL, b.default_size, &out), -ENOMEM);
  arbor__stack_pool_fini(&a);
  for (int i = 0; i < 3; i++)
    sa[i] = alloc_ok(&b, NULL, b.default_size);
  for (int i = 0; i < 3; i++)
    arbor__stack_free(&b, NULL, &sa[i]);
  arbor__stack_free(&b, NULL, &sb);
  arbor__stack_pool_fini(&b);
  arbor__stack_set_guard_budget(0);
}

static size_t vm_size(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  size_t pages = 0;

  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%zu", &pages), 1);
  fclose(f);
  return pages * page();
}

/* RLIMIT_AS makes the kernel refuse any mapping that would take the address
 * space past the limit: a real mmap failure, without exhausting anything
 * outside this test's process. */
Test(stack, a_failed_mapping_returns_enomem_instead_of_crashing)
{
  struct arbor__stack_pool guarded, autom;
  struct arbor__stack st, out;
  struct rlimit rl;

#if defined(ARBOR_HAVE_VALGRIND)
  if (RUNNING_ON_VALGRIND)
    cr_skip_test("Valgrind manages the address space itself");
#endif
  pool_init(&guarded, ARBOR__STACK_MODE_GUARDED);
  pool_init(&autom, ARBOR__STACK_MODE_AUTO);
  rl.rlim_cur = rl.rlim_max = vm_size() + 256 * 1024 * KIB;
  cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);

  cr_expect_eq(arbor__stack_alloc(&guarded, NULL, ARBOR__STACK_MAX, &out),
               -ENOMEM);
  /* AUTO falls back to a slab, which cannot be mapped either. */
  cr_expect_eq(arbor__stack_alloc(&autom, NULL, ARBOR__STACK_MAX, &out),
               -ENOMEM);
  cr_expect_eq(guarded.mapped_guarded, 0);
  cr_expect_eq(autom.mapped_guarded + autom.mapped_slab, 0);
  /* Small stacks still fit, and the budget was given back. */
  st = alloc_ok(&guarded, NULL, guarded.default_size);
  arbor__stack_free(&guarded, NULL, &st);
  arbor__stack_pool_fini(&guarded);
  arbor__stack_pool_fini(&autom);
}

Test(stack, stacks_of_other_sizes_are_pooled_by_size)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack big, small, st;

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_assert_eq(arbor__stack_cache_init(&cache, 4), 0);
  big = alloc_ok(&pool, &cache, 128 * KIB);
  small = alloc_ok(&pool, &cache, 32 * KIB);
  arbor__stack_free(&pool, &cache, &big);
  arbor__stack_free(&pool, &cache, &small);
  cr_expect_eq(cache.n, 0, "only default-size stacks are cached");
  cr_expect_eq(pool.nfree, 0);

  st = alloc_ok(&pool, &cache, pool.default_size);
  cr_expect_neq(st.lo, big.lo);
  cr_expect_neq(st.lo, small.lo);
  arbor__stack_free(&pool, &cache, &st);
  cr_expect_eq(alloc_ok(&pool, &cache, 32 * KIB).lo, small.lo);
  cr_expect_eq(alloc_ok(&pool, &cache, 128 * KIB).lo, big.lo);
  arbor__stack_free(&pool, &cache, &big);
  arbor__stack_free(&pool, &cache, &small);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
}

static void mixed_use(void)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack st[48];
  size_t sizes[] = {64 * KIB, 128 * KIB, 32 * KIB};

  arbor__stack_set_guard_budget(16);
  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_assert_eq(arbor__stack_cache_init(&cache, 8), 0);
  for (int i = 0; i < 48; i++)
    st[i] = alloc_ok(&pool, &cache, sizes[i % 3]);
  for (int i = 0; i < 48; i++) {
    if (i % 7 == 0)
      arbor__stack_discard(&pool, &st[i]);
    else
      arbor__stack_free(&pool, &cache, &st[i]);
  }
  for (int i = 0; i < 20; i++)
    st[i] = alloc_ok(&pool, &cache, sizes[i % 3]);
  for (int i = 0; i < 20; i++)
    arbor__stack_free(&pool, i % 2 ? &cache : NULL, &st[i]);
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
  cr_expect_eq(pool.mapped_guarded, 0);
  arbor__stack_set_guard_budget(0);
}

Test(stack, pool_fini_after_mixed_use_leaves_the_vma_count_where_it_started)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st[16];
  size_t start, slack = 0;

#if defined(ARBOR_HAVE_VALGRIND)
  /* Memcheck maps shadow memory for new address ranges and keeps it. */
  if (RUNNING_ON_VALGRIND)
    slack = MAPS_SLACK;
#endif

  /* A first round lets malloc (or a sanitizer's allocator) set up whatever
   * mappings it keeps; the second round must leave no trace at all. */
  mixed_use();
  start = count_maps();
  mixed_use();
  cr_expect_leq(count_maps(), start + slack);

  /* The process-wide guard count is back to zero: the whole budget is
   * available again. */
  arbor__stack_set_guard_budget(16);
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  for (int i = 0; i < 16; i++)
    st[i] = alloc_ok(&pool, NULL, pool.default_size);
  for (int i = 0; i < 16; i++)
    arbor__stack_free(&pool, NULL, &st[i]);
  arbor__stack_pool_fini(&pool);
  cr_expect_leq(count_maps(), start + slack);
}

Test(stack, pool_fini_is_safe_when_nothing_was_allocated)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack st;

  for (int mode = 0; mode <= 2; mode++) {
    pool_init(&pool, mode);
    arbor__stack_pool_fini(&pool);
  }
  /* A cache of capacity 0 caches nothing, and bad stacks are ignored. */
  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_assert_eq(arbor__stack_cache_init(&cache, 0), 0);
  st = alloc_ok(&pool, &cache, pool.default_size);
  arbor__stack_free(&pool, &cache, &st);
  cr_expect_eq(pool.nfree, 1);
  arbor__stack_free(&pool, &cache, NULL);
  arbor__stack_discard(&pool, &(struct arbor__stack){0});
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
  arbor__stack_pool_fini(NULL);
}

Test(stack, the_guard_budget_follows_vm_max_map_count)
{
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  unsigned long long max = 65530;

  if (f != NULL) {
    cr_assert_eq(fscanf(f, "%llu", &max), 1);
    fclose(f);
  }
  if (max > 16384)
    cr_expect_eq(arbor__stack_guard_budget(), (max - 8192) / 2);
  arbor__stack_set_guard_budget(5);
  cr_expect_eq(arbor__stack_guard_budget(), 5);
  arbor__stack_set_guard_budget(0);
  if (max > 16384)
    cr_expect_eq(arbor__stack_guard_budget(), (max - 8192) / 2);
}

#if defined(TEST_ASAN)
Test(stack, a_freed_stack_is_unpoisoned_for_asan)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack st;

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  cr_assert_eq(arbor__stack_cache_init(&cache, 4), 0);
  st = alloc_ok(&pool, &cache, pool.default_size);
  /* What an abandoned frame leaves behind. */
  ASAN_POISON_MEMORY_REGION((char *)st.lo + 4096, 8192);
  cr_assert(__asan_address_is_poisoned((char *)st.lo + 8192));
  arbor__stack_free(&pool, &cache, &st);
  cr_expect_null(__asan_region_is_poisoned(st.lo, st.size));
  arbor__stack_cache_fini(&pool, &cache);
  arbor__stack_pool_fini(&pool);
}
#endif

/* Two threads, each with its own cache, churn through one pool; a stack must
 * never be owned by both at once (each writes its tag at the top of the
 * stacks it holds and checks it is still there before freeing). */
struct churn {
  struct arbor__stack_pool *pool;
  uintptr_t tag;
  int bad;
};

static void *churn_main(void *arg)
{
  struct churn *c = arg;
  struct arbor__stack_cache cache;
  struct arbor__stack held[64];
  size_t size = c->pool->default_size;

  if (arbor__stack_cache_init(&cache, 16) != 0)
    return NULL;
  for (int round = 0; round < 2000; round++) {
    int n = 1 + (int)((round * 7919u + (unsigned)c->tag) % 64);
    for (int i = 0; i < n; i++) {
      if (arbor__stack_alloc(c->pool, &cache, i % 5 ? size : 2 * size,
                             &held[i]) != 0) {
        c->bad++;
        n = i;
        break;
      }
      ((uintptr_t *)top(&held[i]))[-1] = c->tag;
    }
    for (int i = 0; i < n; i++) {
      c->bad += ((uintptr_t *)top(&held[i]))[-1] != c->tag;
      arbor__stack_free(c->pool, &cache, &held[i]);
    }
  }
  arbor__stack_cache_fini(c->pool, &cache);
  return NULL;
}

Test(stack, workers_with_their_own_caches_never_share_a_stack, .timeout = 60)
{
  struct arbor__stack_pool pool;
  struct churn c[2];
  pthread_t t[2];

  arbor__stack_set_guard_budget(48);
  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  for (int i = 0; i < 2; i++) {
    c[i] = (struct churn){.pool = &pool, .tag = 0x1000u + (uintptr_t)i};
    cr_assert_eq(pthread_create(&t[i], NULL, churn_main, &c[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(c[i].bad, 0);
  }
  cr_expect_leq(pool.mapped_guarded, 48);
  arbor__stack_pool_fini(&pool);
  cr_expect_eq(pool.mapped_guarded, 0);
  arbor__stack_set_guard_budget(0);
}

/* ---- the slot arena ------------------------------------------------------ */

static struct arbor__stack slot_ok(struct arbor__stack_pool *pool,
                                   struct arbor__stack_cache *cache,
                                   uint32_t slot)
{
  struct arbor__stack st;

  cr_assert_eq(
      arbor__stack_alloc_slot(pool, cache, pool->default_size, slot, &st), 0,
      "slot %u", slot);
  cr_assert_eq(st.size, pool->default_size);
  return st;
}

/* Whether st is slot's arena stack: its top is where the hint says. */
static bool in_arena(const struct arbor__stack_pool *pool, uint32_t slot,
                     const struct arbor__stack *st)
{
  return arbor__stack_slot_top(pool, slot) == top(st);
}

/* The permissions ("rw-p", "---p") of the mapping holding addr, from
 * /proc/self/maps. */
static void perms_at(const void *addr, char perms[5])
{
  FILE *f = fopen("/proc/self/maps", "r");
  unsigned long lo, hi;
  char line[512];

  cr_assert_not_null(f);
  strcpy(perms, "none");
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
        (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
      break;
    strcpy(perms, "none");
  }
  fclose(f);
}

Test(stack, a_slot_stack_sits_at_a_fixed_address_and_comes_back_to_its_slot)
{
  int modes[] = {ARBOR__STACK_MODE_GUARDED, ARBOR__STACK_MODE_AUTO,
                 ARBOR__STACK_MODE_SLAB};

  for (size_t m = 0; m < 3; m++) {
    struct arbor__stack_pool pool;
    struct arbor__stack_cache cache;
    struct arbor__stack a, b;
    const char *t;

    pool_init(&pool, modes[m]);
    cr_assert_eq(arbor__stack_cache_init(&cache, 4), 0);
    cr_expect_eq(pool.stride, pool.default_size + page());
    cr_expect_null(arbor__stack_slot_top(&pool, 5), "no region yet");
    a = slot_ok(&pool, &cache, 5);
    t = arbor__stack_slot_top(&pool, 5);
    cr_assert_not_null(t);
    cr_expect_eq(top(&a), t);
    /* Slot 5 of its region: five strides and a guard page above the base. */
    cr_expect_eq((uintptr_t)(t - 6 * pool.stride) % page(), 0);
    cr_expect_eq(a.kind, modes[m] == ARBOR__STACK_MODE_SLAB
                             ? ARBOR__STACK_SLAB
                             : ARBOR__STACK_GUARDED);
    cr_expect_eq(pool.arena_active, 1);
    cr_expect_eq(pool.mapped_guarded + pool.mapped_slab, 0);
    memset((char *)a.lo + ARBOR__STACK_CANARY, 0x5a,
           a.size - ARBOR__STACK_CANARY);

    /* Freed, it goes to no cache and comes back, pages and all. */
    arbor__stack_free_slot(&pool, &cache, 5, &a);
    cr_expect_eq(cache.n, 0);
    cr_expect_eq(pool.nfree, 0);
    b = slot_ok(&pool, &cache, 5);
    cr_expect_eq(b.lo, a.lo);
    cr_expect_eq(b.kind, a.kind);
    cr_expect_eq(((unsigned char *)b.lo)[b.size - 1], 0x5a);
    cr_expect_eq(pool.arena_active, 1);
    arbor__stack_free_slot(&pool, &cache, 5, &b);
    arbor__stack_cache_fini(&pool, &cache);
    arbor__stack_pool_fini(&pool);
    cr_expect_null(arbor__stack_slot_top(&pool, 5), "gone with the pool");
  }
}

Test(stack, distinct_slots_get_disjoint_stacks_at_a_regular_stride)
{
  enum { N = 40 };
  struct arbor__stack_pool pool;
  struct arbor__stack st[N];
  uint32_t slot[N];
  size_t maps;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  /* Slots 0..19, then 20 slots from the end of the first region into the
   * second. */
  for (uint32_t i = 0; i < N; i++)
    slot[i] = i < 20 ? i : ARBOR__ARENA_SLOTS - 10 + (i - 20);
  for (int i = 0; i < N; i++) {
    st[i] = slot_ok(&pool, NULL, slot[i]);
    cr_assert(in_arena(&pool, slot[i], &st[i]), "slot %u", slot[i]);
    /* Written end to end: no two overlap, or the checks below fail. */
    memset(st[i].lo, i, st[i].size);
  }
  for (int i = 1; i < N; i++) {
    if (slot[i] % ARBOR__ARENA_SLOTS == 0)
      continue; /* another region: anywhere */
    cr_expect_eq((char *)st[i].lo - (char *)st[i - 1].lo,
                 (ptrdiff_t)(pool.stride * (slot[i] - slot[i - 1])),
                 "slots %u and %u", slot[i - 1], slot[i]);
  }
  for (int i = 0; i < N; i++) {
    cr_expect_eq(((unsigned char *)st[i].lo)[0], i);
    cr_expect_eq(((unsigned char *)st[i].lo)[st[i].size - 1], i);
  }
  cr_expect_eq(pool.arena_active, N);
  /* Two VMAs per active slot (its stack and, split off, its guard page),
   * give or take the regions' own. */
  maps = count_maps();
  for (int i = 0; i < N; i++)
    arbor__stack_free_slot(&pool, NULL, slot[i], &st[i]);
  cr_expect_eq(count_maps(), maps, "freeing maps or unmaps nothing");
  arbor__stack_pool_fini(&pool);
  cr_expect_leq(count_maps() + 2 * N, maps + MAPS_SLACK);
}

Test(stack, other_sizes_and_tasks_without_a_slot_use_the_pool)
{
  struct arbor__stack_pool pool;
  struct arbor__stack_cache cache;
  struct arbor__stack big, none, far;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  cr_assert_eq(arbor__stack_cache_init(&cache, 4), 0);
  cr_assert_eq(
      arbor__stack_alloc_slot(&pool, &cache, 2 * pool.default_size, 1, &big),
      0);
  none = slot_ok(&pool, &cache, ARBOR__SLOT_NONE);
  far = slot_ok(&pool, &cache, ARBOR__ARENA_SLOT_LIMIT);
  cr_expect_eq(pool.mapped_guarded, 3);
  cr_expect_eq(pool.arena_active, 0);
  cr_expect_null(arbor__stack_slot_top(&pool, 1), "no region was needed");
  cr_expect_null(arbor__stack_slot_top(&pool, ARBOR__SLOT_NONE));
  cr_expect_null(arbor__stack_slot_top(&pool, ARBOR__ARENA_SLOT_LIMIT));
  cr_expect_eq(arbor__stack_alloc_slot(&pool, &cache, 0, 1, &big), -EINVAL);

  /* They go back the usual way: the default-size ones to the cache. */
  arbor__stack_free_slot(&pool, &cache, 1, &big);
  arbor__stack_free_slot(&pool, &cache, ARBOR__SLOT_NONE, &none);
  arbor__stack_free_slot(&pool, &cache, ARBOR__ARENA_SLOT_LIMIT, &far);
  cr_expect_eq(cache.n, 2);
  cr_expect_eq(pool.nfree, 0);
  arbor__stack_cache_fini(&pool, &cache);
  cr_expect_eq(pool.nfree, 2); /* the big one is in a class of its own */
  arbor__stack_pool_fini(&pool);
  cr_expect_eq(pool.mapped_guarded, 0);

  /* A default stack too large for a region: no arena at all. */
  cr_assert_eq(arbor__stack_pool_init(&pool, ARBOR__STACK_MODE_GUARDED,
                                      2 * ARBOR__ARENA_MAX_STACK),
               0);
  cr_expect_eq(pool.stride, 0);
  none = slot_ok(&pool, NULL, 3);
  cr_expect_eq(pool.mapped_guarded, 1);
  cr_expect_null(arbor__stack_slot_top(&pool, 3));
  arbor__stack_free_slot(&pool, NULL, 3, &none);
  arbor__stack_pool_fini(&pool);
}

Test(stack,
     guarded_mode_slots_fail_with_enomem_once_the_guard_budget_is_used_up)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st[3], out = {.lo = &pool};

  arbor__stack_set_guard_budget(3);
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  for (uint32_t i = 0; i < 3; i++)
    st[i] = slot_ok(&pool, NULL, i);
  cr_expect_eq(arbor__stack_alloc_slot(&pool, NULL, pool.default_size, 3, &out),
               -ENOMEM);
  cr_expect_eq(out.lo, &pool, "a failed alloc leaves *out untouched");
  cr_expect_eq(pool.arena_active, 3);
  cr_expect_eq(pool.mapped_guarded + pool.mapped_slab, 0);
  /* An active slot needs no more budget to be used again. */
  arbor__stack_free_slot(&pool, NULL, 0, &st[0]);
  cr_expect_eq(slot_ok(&pool, NULL, 0).lo, st[0].lo);
  for (uint32_t i = 0; i < 3; i++)
    arbor__stack_free_slot(&pool, NULL, i, &st[i]);
  arbor__stack_pool_fini(&pool);

  /* The pool's end gave the budget of its active slots back. */
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  for (uint32_t i = 0; i < 3; i++)
    st[i] = slot_ok(&pool, NULL, 10 + i);
  for (uint32_t i = 0; i < 3; i++)
    arbor__stack_free_slot(&pool, NULL, 10 + i, &st[i]);
  arbor__stack_pool_fini(&pool);
  arbor__stack_set_guard_budget(0);
}

Test(stack, auto_mode_slots_fall_back_to_slab_stacks_past_the_guard_budget)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st[6];

  arbor__stack_set_guard_budget(4);
  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  for (uint32_t i = 0; i < 6; i++) {
    st[i] = slot_ok(&pool, NULL, i);
    cr_expect_eq(in_arena(&pool, i, &st[i]), i < 4, "slot %u", i);
    cr_expect_eq(st[i].kind, i < 4 ? ARBOR__STACK_GUARDED : ARBOR__STACK_SLAB,
                 "slot %u", i);
  }
  cr_expect_eq(pool.arena_active, 4);
  cr_expect_eq(pool.mapped_slab, 2);
  cr_expect_eq(pool.mapped_guarded, 0);
  for (uint32_t i = 0; i < 6; i++)
    arbor__stack_free_slot(&pool, NULL, i, &st[i]);
  cr_expect_eq(pool.nfree, 2, "the slab ones went to the pool");

  /* Budget back (another pool's slot broke, say): slot 4 is activated. */
  arbor__stack_set_guard_budget(5);
  st[4] = slot_ok(&pool, NULL, 4);
  cr_expect(in_arena(&pool, 4, &st[4]));
  cr_expect_eq(st[4].kind, ARBOR__STACK_GUARDED);
  arbor__stack_free_slot(&pool, NULL, 4, &st[4]);
  arbor__stack_pool_fini(&pool);
  arbor__stack_set_guard_budget(0);
}

Test(stack, slab_mode_slot_stacks_are_slab_stacks_in_one_mapping)
{
  enum { N = 100 };
  struct arbor__stack_pool pool;
  struct arbor__stack st[N];
  char perms[5];
  size_t start;

  start = count_maps();
  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  for (uint32_t i = 0; i < N; i++) {
    st[i] = slot_ok(&pool, NULL, i);
    cr_assert(in_arena(&pool, i, &st[i]));
    cr_expect_eq(st[i].kind, ARBOR__STACK_SLAB);
    /* Fresh memory: the canary is zero, and so the check passes. */
    for (size_t b = 0; b < ARBOR__STACK_CANARY; b++)
      cr_assert_eq(((unsigned char *)st[i].lo)[b], 0);
    cr_expect(arbor__stack_check(&st[i], top(&st[i])));
    ((char *)top(&st[i]))[-1] = 1;
  }
  /* One read-write mapping for the region: no guard pages to split it. */
  cr_expect_leq(count_maps(), start + 1 + MAPS_SLACK);
  perms_at((char *)st[1].lo - 1, perms);
  cr_expect_str_eq(perms, "rw-p");
  cr_expect_eq(pool.arena_active, N);
  cr_expect_eq(pool.mapped_slab + pool.mapped_guarded, 0);
  for (uint32_t i = 0; i < N; i++)
    arbor__stack_free_slot(&pool, NULL, i, &st[i]);
  arbor__stack_pool_fini(&pool);
}

Test(stack, a_slot_stack_freed_with_a_dirty_canary_breaks_its_slot)
{
  struct arbor__stack_pool pool;
  struct arbor__stack a, b;

  pool_init(&pool, ARBOR__STACK_MODE_SLAB);
  a = slot_ok(&pool, NULL, 7);
  ((char *)a.lo)[8] = 1;
  arbor__stack_free_slot(&pool, NULL, 7, &a);
  cr_expect_eq(pool.arena_active, 0);
  /* Never handed out again: slot 7's tasks get stacks from the pool. */
  b = slot_ok(&pool, NULL, 7);
  cr_expect_neq(b.lo, a.lo);
  cr_expect_not(in_arena(&pool, 7, &b));
  cr_expect_eq(pool.mapped_slab, 1);
  cr_expect(arbor__stack_check(&b, top(&b)));
  arbor__stack_free_slot(&pool, NULL, 7, &b);
  cr_expect_eq(pool.nfree, 1);
  arbor__stack_pool_fini(&pool);
}

Test(stack, the_guard_page_of_a_slot_is_prot_none_and_its_neighbours_too)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;
  char perms[5];

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  st = slot_ok(&pool, NULL, 9);
  perms_at(st.lo, perms);
  cr_expect_str_eq(perms, "rw-p");
  perms_at((char *)top(&st) - 1, perms);
  cr_expect_str_eq(perms, "rw-p");
  perms_at((char *)st.lo - 1, perms);
  cr_expect_str_eq(perms, "---p", "the guard page");
  perms_at(top(&st), perms);
  cr_expect_str_eq(perms, "---p", "slot 10's guard page");
  perms_at((char *)st.lo - pool.stride, perms);
  cr_expect_str_eq(perms, "---p", "slot 8, never used");
  arbor__stack_free_slot(&pool, NULL, 9, &st);
  arbor__stack_pool_fini(&pool);
}

Test(stack, writing_one_byte_below_a_slot_stack_hits_the_guard_page,
     .signal = SIGSEGV)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  st = slot_ok(&pool, NULL, 0);
  cr_assert_eq(st.kind, ARBOR__STACK_GUARDED);
  cr_assert(in_arena(&pool, 0, &st));
  ((volatile char *)st.lo)[st.size - 1] = 1;
  ((volatile char *)st.lo)[-1] = 1;
  cr_assert_fail("the write below lo did not fault");
}

Test(stack, a_discarded_slot_is_broken_and_gives_its_memory_and_budget_back)
{
  struct arbor__stack_pool pool;
  struct arbor__stack a, b, c;
  char perms[5];
  size_t maps;

  arbor__stack_set_guard_budget(2);
  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  a = slot_ok(&pool, NULL, 20);
  b = slot_ok(&pool, NULL, 21);
  memset(a.lo, 1, a.size);
  maps = count_maps();
  arbor__stack_discard_slot(&pool, 20, &a);
  cr_expect_eq(pool.arena_active, 1);
  perms_at((char *)a.lo + a.size / 2, perms);
  cr_expect_str_eq(perms, "---p");
  cr_expect_eq(count_maps() + 2, maps, "its two VMAs merged back");
  /* Its budget unit is back: slot 22 can be activated. */
  c = slot_ok(&pool, NULL, 22);
  cr_expect(in_arena(&pool, 22, &c));
  arbor__stack_free_slot(&pool, NULL, 22, &c);
  /* Slot 20 is broken: the pool serves it, within the same budget (used
   * up by slots 21 and 22). */
  cr_expect_eq(arbor__stack_alloc_slot(&pool, NULL, pool.default_size, 20, &c),
               -ENOMEM);
  arbor__stack_set_guard_budget(3);
  c = slot_ok(&pool, NULL, 20);
  cr_expect_not(in_arena(&pool, 20, &c));
  cr_expect_eq(pool.mapped_guarded, 1);
  arbor__stack_discard_slot(&pool, 20, &c);
  cr_expect_eq(pool.mapped_guarded, 0, "a pool stack is unmapped as before");
  arbor__stack_free_slot(&pool, NULL, 21, &b);
  arbor__stack_pool_fini(&pool);
  arbor__stack_set_guard_budget(0);
}

Test(stack, a_slot_stack_can_be_hibernated_and_restored)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;
  unsigned char *live;
  void *buf = NULL;

  pool_init(&pool, ARBOR__STACK_MODE_GUARDED);
  st = slot_ok(&pool, NULL, 3);
  live = (unsigned char *)top(&st) - 512;
  for (int i = 0; i < 512; i++)
    live[i] = (unsigned char)i;
  memset(st.lo, 0x77, 4096); /* dead, deeper down */
  cr_assert_eq(arbor__stack_hibernate(&st, live, &buf), 0);
  cr_expect_eq(((unsigned char *)st.lo)[0], 0, "pages given back");
  cr_expect_eq(live[511], 0);
  arbor__stack_restore(&st, live, buf);
  for (int i = 0; i < 512; i++)
    cr_assert_eq(live[i], (unsigned char)i);
  arbor__stack_free_slot(&pool, NULL, 3, &st);
  arbor__stack_pool_fini(&pool);
}

#if defined(TEST_ASAN)
Test(stack, a_freed_slot_stack_is_unpoisoned_for_asan)
{
  struct arbor__stack_pool pool;
  struct arbor__stack st;

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  st = slot_ok(&pool, NULL, 2);
  ASAN_POISON_MEMORY_REGION((char *)st.lo + 4096, 8192);
  arbor__stack_free_slot(&pool, NULL, 2, &st);
  cr_expect_null(__asan_region_is_poisoned(st.lo, st.size));
  arbor__stack_pool_fini(&pool);
}
#endif

/* Two threads activate and reuse slots of the same regions at once (even
 * and odd slots), mapping the regions between them. */
static void *slots_main(void *arg)
{
  struct churn *c = arg;
  struct arbor__stack st;
  uint32_t base = (uint32_t)(c->tag & 1);

  for (int round = 0; round < 20; round++) {
    for (uint32_t s = base; s < 3 * ARBOR__ARENA_SLOTS; s += 2 * 97) {
      if (arbor__stack_alloc_slot(c->pool, NULL, c->pool->default_size, s,
                                  &st) != 0 ||
          arbor__stack_slot_top(c->pool, s) != top(&st)) {
        c->bad++;
        continue;
      }
      c->bad += round > 0 && ((uintptr_t *)top(&st))[-1] != c->tag + s;
      ((uintptr_t *)top(&st))[-1] = c->tag + s;
      arbor__stack_free_slot(c->pool, NULL, s, &st);
    }
  }
  return NULL;
}

Test(stack, threads_share_the_arena_without_sharing_a_slot, .timeout = 60)
{
  struct arbor__stack_pool pool;
  struct churn c[2];
  pthread_t t[2];

  pool_init(&pool, ARBOR__STACK_MODE_AUTO);
  for (int i = 0; i < 2; i++) {
    c[i] = (struct churn){.pool = &pool, .tag = 0x1000u + (uintptr_t)i};
    cr_assert_eq(pthread_create(&t[i], NULL, slots_main, &c[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(c[i].bad, 0);
  }
  for (uint32_t r = 0; r < 3; r++)
    cr_expect_not_null(
        arbor__stack_slot_top(&pool, r * ARBOR__ARENA_SLOTS + 1));
  arbor__stack_pool_fini(&pool);
}
