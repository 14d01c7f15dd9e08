/* runtime/timer.h -- a hierarchical timing wheel, one per worker.
 *
 * Six levels of 64 slots at 1 ms resolution, as in Tokio: level 0 slots are
 * 1 ms wide, level 1 slots 64 ms, level k slots 64^k ms, so the wheel spans
 * 64^6 ms (about 2.2 years); deadlines further out are clamped to the last
 * level and re-filed as the wheel turns.  Each level keeps a 64-bit mask of
 * its occupied slots, so finding the next deadline is a few ctz
 * instructions.  Insert and remove are O(1); an entry moves down a level at
 * most once per level as its deadline approaches.
 *
 * The wheel is owned by one thread (its worker) and takes no locks.  Entries
 * are intrusive and owned by the caller; the wheel only links them.  Times
 * are absolute milliseconds on the caller's clock (CLOCK_MONOTONIC / 1e6).
 * A timer never fires early: it fires at the first advance whose `now` is
 * >= its deadline.
 */
#ifndef ARBOR_RUNTIME_TIMER_H
#define ARBOR_RUNTIME_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARBOR__WHEEL_LEVELS 6
#define ARBOR__WHEEL_SLOTS 64

struct arbor__timer {
  struct arbor__timer *next, *prev; /* slot list; NULL when not in a wheel */
  uint64_t deadline;                /* absolute ms */
  uint8_t level, slot;              /* where it is filed */
  bool linked;
};

struct arbor__wheel {
  uint64_t now;   /* the time the wheel has been advanced to (ms) */
  size_t count;   /* entries linked */
  uint64_t occupied[ARBOR__WHEEL_LEVELS];
  struct arbor__timer *slots[ARBOR__WHEEL_LEVELS][ARBOR__WHEEL_SLOTS];
};

/* Called by arbor__wheel_advance() for each expired entry, already
 * unlinked; it may insert or remove other entries (and re-insert this one).
 * During the call w->now is the time being processed: the entry's deadline,
 * or the advance's starting time for an entry that was already overdue.  An
 * entry it inserts with a deadline <= w->now fires later in the same
 * advance, right after the entries already due at that time (so out of
 * deadline order); one due after w->now but by the advance's now_ms fires
 * in this advance too, in order.  It must not call arbor__wheel_advance(). */
typedef void (*arbor__timer_fire_fn)(struct arbor__timer *t, void *ud);

void arbor__wheel_init(struct arbor__wheel *w, uint64_t now_ms);

/* File t to expire at deadline_ms (a deadline <= w->now expires at the next
 * advance).  t must not be linked. */
void arbor__wheel_insert(struct arbor__wheel *w, struct arbor__timer *t,
                         uint64_t deadline_ms);

/* Unlink t if it is linked; a no-op otherwise. */
void arbor__wheel_remove(struct arbor__wheel *w, struct arbor__timer *t);

/* The earliest time at which arbor__wheel_advance() may have something to
 * fire: never later than the earliest deadline (it may be earlier, at a
 * slot boundary where entries must move down a level).  UINT64_MAX when the
 * wheel is empty. */
uint64_t arbor__wheel_next(const struct arbor__wheel *w);

/* Advance to now_ms (never backwards: an earlier now_ms counts as w->now),
 * calling fire for every entry whose deadline is <= now_ms, in non-decreasing
 * deadline order.  Returns how many fired. */
size_t arbor__wheel_advance(struct arbor__wheel *w, uint64_t now_ms,
                            arbor__timer_fire_fn fire, void *ud);

#endif /* ARBOR_RUNTIME_TIMER_H */
