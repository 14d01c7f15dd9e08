/* tests/test_timer.c -- white-box tests of runtime/timer.c (the timing wheel).
 *
 * Every test drives a wheel by hand with made-up millisecond times; no clock
 * is read.  Fired entries are recorded by a callback that checks, as they
 * happen, the two promises of arbor__wheel_advance(): nothing fires before
 * its deadline, and one advance fires in non-decreasing deadline order.
 * The randomised test takes its seed from ARBOR_SEED if set, otherwise from
 * the clock, and prints it in every failure message.  Every test has a
 * timeout, since a broken wheel tends to loop rather than crash.
 */
#include "runtime/timer.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A test entry: the wheel's link plus what the checks need. */
struct ent {
  struct arbor__timer t;
  uint64_t period; /* re-inserted this far ahead while fires < limit */
  unsigned limit;
  unsigned fires;
  uint64_t fired_at[4]; /* the advance target of the first few fires */
  unsigned epoch;       /* advances completed when it was last inserted */
  bool removed;
  struct ent *victim; /* removed by this entry's fire, if set */
  struct ent *spawn;  /* inserted by this entry's fire at spawn_at */
  uint64_t spawn_at;
};

/* clang-format off */
#define ENT(p) ((struct ent *)(void *)((char *)(p) - offsetof(struct ent, t)))
/* clang-format on */

/* State of the advance in progress, shared with the fire callback. */
static struct {
  struct arbor__wheel *w;
  uint64_t target;      /* now_ms of the advance in progress */
  uint64_t prev_target; /* now_ms of the previous advance */
  unsigned epoch;       /* advances started so far */
  uint64_t last;        /* last deadline fired in this advance */
  bool first;           /* nothing fired yet in this advance */
  unsigned long long seed;
  struct ent *order[16]; /* the first fires, in order */
  size_t nfired;
} rec;

static void on_fire(struct arbor__timer *t, void *ud)
{
  struct ent *e = ENT(t);

  cr_assert_eq(ud, &rec, "seed %llu", rec.seed);
  cr_assert(!t->linked && t->next == NULL && t->prev == NULL,
            "fired entry still linked (seed %llu)", rec.seed);
  cr_assert(!e->removed, "a removed entry fired (seed %llu)", rec.seed);
  cr_assert_leq(t->deadline, rec.target,
                "fired early: deadline %llu, advanced to %llu (seed %llu)",
                (unsigned long long)t->deadline, (unsigned long long)rec.target,
                rec.seed);
  /* Late check: unless it was inserted since the previous advance, the
   * previous advance must not have been due to fire it already. */
  cr_assert(e->epoch + 1 == rec.epoch || t->deadline > rec.prev_target,
            "fired late: deadline %llu, previous advance to %llu (seed %llu)",
            (unsigned long long)t->deadline,
            (unsigned long long)rec.prev_target, rec.seed);
  cr_assert(rec.first || t->deadline >= rec.last,
            "out of order: %llu after %llu (seed %llu)",
            (unsigned long long)t->deadline, (unsigned long long)rec.last,
            rec.seed);
  rec.first = false;
  rec.last = t->deadline;
  if (e->fires < 4)
    e->fired_at[e->fires] = rec.target;
  e->fires++;
  if (rec.nfired < 16)
    rec.order[rec.nfired] = e;
  rec.nfired++;

  if (e->victim != NULL) {
    arbor__wheel_remove(rec.w, &e->victim->t);
    e->victim->removed = true;
  }
  if (e->spawn != NULL) {
    /* An entry inserted during the advance may fire before deadlines that
     * are already past, so restart the order check from it. */
    e->spawn->epoch = rec.epoch - 1;
    arbor__wheel_insert(rec.w, &e->spawn->t, e->spawn_at);
    if (e->spawn_at < t->deadline)
      rec.first = true;
    e->spawn = NULL;
  }
  if (e->period != 0 && e->fires < e->limit) {
    e->epoch = rec.epoch - 1;
    arbor__wheel_insert(rec.w, t, t->deadline + e->period);
  }
}

static size_t advance(struct arbor__wheel *w, uint64_t to)
{
  size_t n;

  rec.w = w;
  rec.prev_target = rec.epoch == 0 ? 0 : rec.target;
  rec.target = to;
  rec.epoch++;
  rec.first = true;
  rec.nfired = 0;
  n = arbor__wheel_advance(w, to, on_fire, &rec);
  cr_assert_eq(n, rec.nfired, "seed %llu", rec.seed);
  cr_assert_geq(w->now, to, "seed %llu", rec.seed);
  return n;
}

static void insert(struct arbor__wheel *w, struct ent *e, uint64_t deadline)
{
  e->epoch = rec.epoch;
  e->removed = false;
  arbor__wheel_insert(w, &e->t, deadline);
}

/* xorshift64*: small, seedable, good enough to scatter deadlines. */
static uint64_t rng_state;

static uint64_t rng(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}

/* Uniform in [1, 2^bits] for bits drawn uniformly from [0, max_bits]: a
 * log-uniform spread, so that every level gets its share. */
static uint64_t log_rand(unsigned max_bits)
{
  unsigned bits = (unsigned)(rng() % (max_bits + 1));

  return 1 + (bits == 0 ? 0 : rng() % (UINT64_C(1) << bits));
}

static void seed_rng(void)
{
  const char *env = getenv("ARBOR_SEED");

  rec.seed =
      env != NULL ? strtoull(env, NULL, 0) : (unsigned long long)time(NULL);
  rng_state = rec.seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
}

static const uint64_t distances[] = {
    1,
    2,
    63,
    64,
    65,
    127,
    4095,
    4096,
    4097,
    262143,
    262144,
    UINT64_C(1) << 24,
    (UINT64_C(1) << 30) - 1,
    UINT64_C(1) << 30,
    (UINT64_C(1) << 30) + 1,
    (UINT64_C(1) << 36) - 1,
    UINT64_C(1) << 36,
    (UINT64_C(1) << 36) + 12345,
    UINT64_C(1) << 40,
    (UINT64_C(1) << 45) + 7,
};
static const uint64_t bases[] = {0, 1000003, (UINT64_C(1) << 36) - 5,
                                 UINT64_C(0x123456789ab)};

Test(timer, fires_at_its_deadline_and_not_one_ms_earlier, .timeout = 10)
{
  for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
    for (size_t i = 0; i < sizeof(distances) / sizeof(distances[0]); i++) {
      uint64_t base = bases[b], d = base + distances[i];
      struct arbor__wheel w;
      struct ent e = {0};

      for (int halfway = 0; halfway < 2; halfway++) {
        arbor__wheel_init(&w, base);
        rec.epoch = 0;
        insert(&w, &e, d);
        e.fires = 0;
        /* Stopping halfway makes part of the cascade happen in one advance
         * and the rest in another. */
        if (halfway)
          cr_assert_eq(advance(&w, base + distances[i] / 2), 0);
        cr_assert_eq(advance(&w, d - 1), 0, "base %llu distance %llu",
                     (unsigned long long)base,
                     (unsigned long long)distances[i]);
        cr_assert_eq(w.count, 1);
        cr_assert_eq(advance(&w, d), 1, "base %llu distance %llu",
                     (unsigned long long)base,
                     (unsigned long long)distances[i]);
        cr_assert_eq(e.fired_at[0], d);
        cr_assert_eq(w.count, 0);
        cr_assert_eq(arbor__wheel_next(&w), UINT64_MAX);
      }
    }
  }
}

Test(timer, deadlines_in_the_past_fire_at_the_next_advance_in_order,
     .timeout = 10)
{
  struct arbor__wheel w;
  struct ent e[6] = {0};
  const uint64_t deadline[6] = {999, 10, 1000, 0, 500, 1005};

  arbor__wheel_init(&w, 1000);
  rec.epoch = 0;
  for (int i = 0; i < 4; i++)
    insert(&w, &e[i], deadline[i]);
  cr_assert_eq(arbor__wheel_next(&w), 0, "next is the earliest past deadline");
  /* Advancing to the same time is still an advance. */
  cr_assert_eq(advance(&w, 1000), 4);
  cr_assert_eq(rec.order[0], &e[3]);
  cr_assert_eq(rec.order[1], &e[1]);
  cr_assert_eq(rec.order[2], &e[0]);
  cr_assert_eq(rec.order[3], &e[2]);

  /* A past deadline fires before a future one that is due too. */
  insert(&w, &e[5], deadline[5]);
  insert(&w, &e[4], deadline[4]);
  cr_assert_eq(advance(&w, 2000), 2);
  cr_assert_eq(rec.order[0], &e[4]);
  cr_assert_eq(rec.order[1], &e[5]);
  cr_assert_eq(w.count, 0);

  /* An advance to an earlier time leaves the clock alone but still fires
   * what is due. */
  insert(&w, &e[0], 1500);
  cr_assert_eq(advance(&w, 1800), 1);
  cr_assert_eq(w.now, 2000);
}

Test(timer, many_past_deadlines_inserted_at_once_fire_sorted, .timeout = 10)
{
  enum { N = 20000 };
  struct ent *e = calloc(N, sizeof(*e));
  struct arbor__wheel w;

  cr_assert_not_null(e);
  seed_rng();
  arbor__wheel_init(&w, UINT64_C(1) << 30);
  rec.epoch = 0;
  for (int i = 0; i < N; i++)
    insert(&w, &e[i], w.now - rng() % (UINT64_C(1) << 30));
  /* The order itself is checked by on_fire. */
  cr_assert_eq(advance(&w, w.now), N, "seed %llu", rec.seed);
  cr_assert_eq(w.count, 0);
  free(e);
}

Test(timer, random_deadlines_on_all_levels_fire_once_in_order_never_early,
     .timeout = 60)
{
  enum { N = 100000, STEPS = 4000 };
  struct ent *e = calloc(N, sizeof(*e));
  struct arbor__wheel w;
  size_t inserted = 0, linked = 0, fired = 0, removed = 0;
  uint64_t now;

  cr_assert_not_null(e);
  seed_rng();
  now = 1000 + rng() % (UINT64_C(1) << 40); /* room for past deadlines */
  arbor__wheel_init(&w, now);
  rec.epoch = 0;

  for (unsigned step = 0; step < STEPS || w.count != 0; step++) {
    /* Insert a few (2% already due, 1% beyond the wheel's span), remove a
     * couple. */
    for (unsigned k = 0; step < STEPS && inserted < N && k < N / STEPS; k++) {
      uint64_t r = rng() % 100;
      uint64_t d = r < 1   ? now
                   : r < 2 ? now - rng() % 1000
                   : r < 3 ? now + log_rand(40)
                           : now + log_rand(33); /* up to ~8.6e9 ms */

      insert(&w, &e[inserted++], d);
      linked++;
    }
    for (unsigned k = 0; inserted != 0 && k < 2; k++) {
      /* Mostly recent entries, which are more likely to be still linked. */
      size_t back = rng() % (inserted < 5000 ? inserted : 5000);
      struct ent *victim = &e[inserted - 1 - back];

      if (victim->t.linked) {
        victim->removed = true;
        removed++;
        linked--;
      }
      arbor__wheel_remove(&w, &victim->t);
    }
    cr_assert_eq(w.count, linked, "seed %llu", rec.seed);

    /* Check next() against the true earliest deadline now and then. */
    if (step % 64 == 0) {
      uint64_t min = UINT64_MAX, next = arbor__wheel_next(&w);

      for (size_t i = 0; i < inserted; i++)
        if (e[i].t.linked && e[i].t.deadline < min)
          min = e[i].t.deadline;
      cr_assert_leq(next, min, "seed %llu", rec.seed);
      if (min <= now || (min ^ now) < 64)
        cr_assert_eq(next, min, "seed %llu", rec.seed);
      else
        cr_assert_gt(next, now, "seed %llu", rec.seed);
    }

    /* Mostly small steps, now and then a huge one. */
    uint64_t r = rng() % 100;
    now += r < 70   ? log_rand(4)
           : r < 90 ? log_rand(12)
           : r < 98 ? log_rand(24)
                    : log_rand(34);
    size_t n = advance(&w, now);
    fired += n;
    linked -= n;
    cr_assert_eq(w.count, linked, "seed %llu", rec.seed);
  }

  cr_assert_eq(inserted, N);
  cr_assert_eq(fired + removed, N, "seed %llu", rec.seed);
  for (size_t i = 0; i < N; i++)
    cr_assert_eq(e[i].fires, e[i].removed ? 0u : 1u, "entry %zu (seed %llu)", i,
                 rec.seed);
  cr_assert_eq(arbor__wheel_next(&w), UINT64_MAX);
  free(e);
}

Test(timer, remove_prevents_firing_and_removing_an_unlinked_entry_is_a_no_op,
     .timeout = 10)
{
  struct arbor__wheel w;
  struct ent e[5] = {0}, never = {0};

  arbor__wheel_init(&w, 100);
  rec.epoch = 0;
  /* Three entries share a level-0 slot: remove the middle, then the head,
   * then the tail, which must clear the slot's occupancy bit. */
  for (int i = 0; i < 3; i++)
    insert(&w, &e[i], 110);
  insert(&w, &e[3], 100 + 5000);
  insert(&w, &e[4], 100 + (UINT64_C(1) << 37));
  cr_assert_eq(w.count, 5);

  arbor__wheel_remove(&w, &never.t);
  cr_assert_eq(w.count, 5);
  arbor__wheel_remove(&w, &e[1].t);
  arbor__wheel_remove(&w, &e[1].t);
  e[1].removed = true;
  cr_assert_eq(w.count, 4);
  arbor__wheel_remove(&w, &e[2].t); /* the head: pushed last */
  e[2].removed = true;
  arbor__wheel_remove(&w, &e[0].t);
  e[0].removed = true;
  cr_assert_eq(w.occupied[0], 0);
  /* 5100 first differs from 100 in bit 12: level 2, slot 1, from 4096. */
  cr_assert_eq(arbor__wheel_next(&w), 4096);

  arbor__wheel_remove(&w, &e[4].t);
  e[4].removed = true;
  cr_assert_eq(advance(&w, UINT64_C(1) << 40), 1);
  cr_assert_eq(rec.order[0], &e[3]);
  arbor__wheel_remove(&w, &e[3].t); /* already fired */
  cr_assert_eq(w.count, 0);
  for (int i = 0; i < ARBOR__WHEEL_LEVELS; i++)
    cr_assert_eq(w.occupied[i], 0);
}

Test(timer, a_periodic_timer_reinserted_from_fire_fires_at_each_period,
     .timeout = 10)
{
  struct arbor__wheel w;
  struct ent e = {0};

  /* Advancing one ms at a time, it fires exactly at start + k * period. */
  arbor__wheel_init(&w, 5);
  rec.epoch = 0;
  e.period = 100;
  e.limit = 1000;
  insert(&w, &e, 5 + 100);
  for (uint64_t now = 6; now <= 5 + 100 * 1000 + 500; now++) {
    size_t n = advance(&w, now);

    cr_assert_eq(n, (now - 5) % 100 == 0 && now <= 5 + 100 * 1000 ? 1u : 0u,
                 "at %llu", (unsigned long long)now);
  }
  cr_assert_eq(e.fires, 1000);
  cr_assert_eq(w.count, 0);

  /* In one long advance, it fires every period within that advance. */
  e = (struct ent){.period = 7, .limit = 50};
  insert(&w, &e, w.now + 7);
  cr_assert_eq(advance(&w, w.now + 7 * 50 + 3), 50);
  cr_assert_eq(e.fires, 50);
  cr_assert_eq(w.count, 0);
}

Test(timer,
     an_entry_inserted_from_fire_that_is_already_due_fires_in_the_same_advance,
     .timeout = 10)
{
  struct arbor__wheel w;
  struct ent a = {0}, past = {0}, same = {0}, soon = {0}, later = {0};

  arbor__wheel_init(&w, 0);
  rec.epoch = 0;
  a.spawn = &past;
  a.spawn_at = 60; /* before a's own deadline */
  past.spawn = &same;
  past.spawn_at = 100; /* a's deadline, the time being processed */
  same.spawn = &soon;
  same.spawn_at = 101; /* after it, but before the target */
  soon.spawn = &later;
  soon.spawn_at = 151; /* after the target */
  insert(&w, &a, 100);

  cr_assert_eq(advance(&w, 150), 4);
  cr_assert_eq(rec.order[0], &a);
  cr_assert_eq(rec.order[1], &past);
  cr_assert_eq(rec.order[2], &same);
  cr_assert_eq(rec.order[3], &soon);
  cr_assert_eq(soon.fired_at[0], 150);
  cr_assert_eq(w.count, 1);
  cr_assert_eq(arbor__wheel_next(&w), 151);
  cr_assert_eq(advance(&w, 151), 1);
  cr_assert_eq(later.fires, 1);
}

Test(timer, fire_may_remove_entries_of_its_own_batch_and_later_ones,
     .timeout = 10)
{
  struct arbor__wheel w;
  struct ent a = {0}, b = {0}, c = {0}, d = {0};

  arbor__wheel_init(&w, 0);
  rec.epoch = 0;
  /* a and b are due at the same ms, so they fire in one batch; whichever
   * fires first removes the other. */
  a.victim = &b;
  b.victim = &a;
  insert(&w, &a, 3000);
  insert(&w, &b, 3000);
  /* c removes d, which is due later within the same advance. */
  c.victim = &d;
  insert(&w, &c, 3001);
  insert(&w, &d, 9000);
  cr_assert_eq(advance(&w, 10000), 2);
  cr_assert_eq(a.fires + b.fires, 1);
  cr_assert_eq(c.fires, 1);
  cr_assert_eq(d.fires, 0);
  cr_assert_eq(w.count, 0);
}

Test(timer, next_is_never_later_than_the_earliest_deadline, .timeout = 10)
{
  struct arbor__wheel w;
  struct ent e = {0};

  arbor__wheel_init(&w, 777);
  rec.epoch = 0;
  cr_assert_eq(arbor__wheel_next(&w), UINT64_MAX, "empty wheel");

  /* Within now's 64 ms block an entry sits on level 0: next is exact. */
  insert(&w, &e, 777 + 5);
  cr_assert_eq(arbor__wheel_next(&w), 777 + 5);
  arbor__wheel_remove(&w, &e.t);
  cr_assert_eq(arbor__wheel_next(&w), UINT64_MAX);

  /* Further out, next may stop at slot boundaries on the way, each one
   * after now and not after the deadline, and ends exactly on it. */
  for (size_t i = 0; i < sizeof(distances) / sizeof(distances[0]); i++) {
    uint64_t d = w.now + distances[i], next;
    unsigned hops = 0;

    insert(&w, &e, d);
    e.fires = 0;
    while ((next = arbor__wheel_next(&w)) < d) {
      cr_assert_gt(next, w.now);
      cr_assert_eq(advance(&w, next), 0);
      /* A level per hop, plus a re-filing per 63 top-level slots. */
      cr_assert_lt(++hops, 16 + (distances[i] >> 35), "distance %llu",
                   (unsigned long long)distances[i]);
    }
    cr_assert_eq(next, d, "distance %llu", (unsigned long long)distances[i]);
    cr_assert_eq(advance(&w, next), 1);
  }
  cr_assert_eq(arbor__wheel_next(&w), UINT64_MAX);
}

Test(timer, huge_time_jumps_with_few_timers_are_fast, .timeout = 10)
{
  enum { N = 16 };
  struct arbor__wheel w;
  struct ent far[N] = {0}, tick = {0};
  size_t fired = 0;

  seed_rng();
  arbor__wheel_init(&w, 12345);
  rec.epoch = 0;
  for (int i = 0; i < N; i++)
    insert(&w, &far[i], w.now + 1 + rng() % (UINT64_C(1000) << 40));
  tick.period = UINT64_C(1) << 39;
  tick.limit = 100000;
  insert(&w, &tick, w.now + tick.period);
  for (int i = 0; i < 1000; i++)
    fired += advance(&w, w.now + (UINT64_C(1) << 40));
  cr_assert_eq(tick.fires, 2000, "seed %llu", rec.seed);
  for (int i = 0; i < N; i++)
    cr_assert_eq(far[i].fires, 1, "seed %llu", rec.seed);
  cr_assert_eq(fired, N + 2000);
  cr_assert_eq(w.count, 1);
}

Test(timer, many_entries_on_one_far_deadline_cascade_together, .timeout = 10)
{
  enum { N = 1000 };
  struct ent *e = calloc(N, sizeof(*e));
  struct arbor__wheel w;
  uint64_t d = 3 + (UINT64_C(1) << 38);

  cr_assert_not_null(e);
  arbor__wheel_init(&w, 3);
  rec.epoch = 0;
  for (int i = 0; i < N; i++)
    insert(&w, &e[i], d);
  cr_assert_eq(advance(&w, d - 1), 0);
  cr_assert_eq(arbor__wheel_next(&w), d);
  cr_assert_eq(advance(&w, d), N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(e[i].fired_at[0], d);
  free(e);
}

Test(timer, count_tracks_inserts_removes_and_fires, .timeout = 10)
{
  struct arbor__wheel w;
  struct ent e[4] = {0};

  arbor__wheel_init(&w, 0);
  rec.epoch = 0;
  cr_assert_eq(w.count, 0);
  insert(&w, &e[0], 10);
  insert(&w, &e[1], 20);
  insert(&w, &e[2], UINT64_C(1) << 50);
  insert(&w, &e[3], 0);
  cr_assert_eq(w.count, 4);
  arbor__wheel_remove(&w, &e[2].t);
  e[2].removed = true;
  cr_assert_eq(w.count, 3);
  cr_assert_eq(advance(&w, 10), 2);
  cr_assert_eq(w.count, 1);
  insert(&w, &e[2], 15);
  cr_assert_eq(w.count, 2);
  cr_assert_eq(advance(&w, 100), 2);
  cr_assert_eq(w.count, 0);
}
