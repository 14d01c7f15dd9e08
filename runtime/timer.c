/* runtime/timer.c -- the per-worker hierarchical timing wheel (see timer.h).
 *
 * Placement.  Read a time as eleven 6-bit digits; digit k selects the slot at
 * level k.  An entry is filed by the highest digit in which its deadline
 * differs from w->now: if they first differ in digit k, it goes to level k,
 * slot digit_k(deadline).  Such a slot lies after now's own slot at level k
 * and inside now's level-(k+1) block, which gives the three facts everything
 * else rests on: every entry on a lower level is due before every entry on a
 * higher one; on one level the first occupied slot at or after now's digit is
 * the earliest; and when time reaches a level-k slot's start, its entries are
 * less than 64^k ms away, so re-filing them (relative to that start) puts each
 * on a strictly lower level, in its exact place.  An entry therefore moves at
 * most once per level, and a level-0 slot holds one millisecond.  The one
 * exception is level 0's slot at now's own digit, which holds the entries that
 * are already due (deadline <= now) and may mix deadlines; it is sorted before
 * it fires.  The top level is circular: a deadline more than 63 top-level
 * slots ahead is clamped to the 63rd and re-filed when that slot comes round
 * (every ~2.2 years), so the wheel has no horizon.
 *
 * Advancing.  advance() never walks milliseconds: it jumps w->now straight to
 * the start of the earliest occupied slot (a rotate and a ctz per level),
 * cascades or fires it, and repeats until that start lies beyond the target.
 * Its cost is proportional to the entries it moves and fires, plus one step
 * per clamped entry per 2.2 years skipped, however far time jumps.
 *
 * Memory.  Entries are intrusive and caller-owned; the wheel never allocates.
 * A linked entry must stay alive until it fires or is removed.  While a batch
 * fires it hangs off a sentinel on advance()'s stack rather than off a slot,
 * so fire may remove entries of that batch (ordinary O(1) unlinks), and what
 * fire inserts lands in slots without mixing into the running batch.
 *
 * Times are absolute milliseconds and must stay below 2^63; a monotonic clock
 * in ms does for some 290 million years.
 */
#include "runtime/timer.h"

#define LEVEL_BITS 6
#define SLOT_MASK ((uint64_t)ARBOR__WHEEL_SLOTS - 1)
#define TOP (ARBOR__WHEEL_LEVELS - 1)
#define TOP_SHIFT (LEVEL_BITS * TOP)

_Static_assert(ARBOR__WHEEL_SLOTS == 1 << LEVEL_BITS,
               "a slot index is one 6-bit digit; the masks are 64 bits");

static unsigned digit(uint64_t t, unsigned level)
{
  return (unsigned)((t >> (LEVEL_BITS * level)) & SLOT_MASK);
}

static uint64_t bit(unsigned slot)
{
  return (uint64_t)1 << slot;
}

static void link_slot(struct arbor__wheel *w, struct arbor__timer *t,
                      unsigned level, unsigned slot)
{
  struct arbor__timer **head = &w->slots[level][slot];

  t->prev = NULL;
  t->next = *head;
  if (*head != NULL)
    (*head)->prev = t;
  *head = t;
  t->level = (uint8_t)level;
  t->slot = (uint8_t)slot;
  w->occupied[level] |= bit(slot);
}

/* Files an entry relative to w->now; see "Placement" above. */
static void file(struct arbor__wheel *w, struct arbor__timer *t)
{
  uint64_t now = w->now, d = t->deadline, ahead;
  unsigned level;

  if (d <= now) {
    link_slot(w, t, 0, digit(now, 0));
    return;
  }
  /* The "| SLOT_MASK" makes deadlines within now's own 64 ms block land on
   * level 0 (and keeps clz's argument non-zero). */
  level = (unsigned)(63 - __builtin_clzll((d ^ now) | SLOT_MASK)) / LEVEL_BITS;
  if (level < TOP) {
    link_slot(w, t, level, digit(d, level));
    return;
  }
  /* Count top-level slots ahead instead of comparing digits: the deadline
   * may lie in a later 2^36 ms block, where digits wrap.  Clamping to 63
   * (never 64) keeps the slot distinct from now's, which earliest() would
   * otherwise read as "due now". */
  ahead = (d >> TOP_SHIFT) - (now >> TOP_SHIFT);
  if (ahead > SLOT_MASK)
    ahead = SLOT_MASK;
  link_slot(w, t, TOP, (unsigned)(((now >> TOP_SHIFT) + ahead) & SLOT_MASK));
}

static void unlink_entry(struct arbor__wheel *w, struct arbor__timer *t)
{
  /* prev is NULL only for the head of a slot: the first entry of a firing
   * batch points back at the batch's sentinel instead. */
  if (t->prev != NULL) {
    t->prev->next = t->next;
  } else {
    w->slots[t->level][t->slot] = t->next;
    if (t->next == NULL)
      w->occupied[t->level] &= ~bit(t->slot);
  }
  if (t->next != NULL)
    t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->linked = false;
  w->count--;
}

/* Finds the earliest occupied slot: the first one at or after now's digit on
 * the lowest occupied level.  Rotating the mask by now's digit lets one ctz
 * answer that, and handles the circular top level too.  Only level 0 can
 * have now's own slot occupied (with due entries), so start >= w->now. */
static bool earliest(const struct arbor__wheel *w, unsigned *level,
                     unsigned *slot, uint64_t *start)
{
  for (unsigned k = 0; k < ARBOR__WHEEL_LEVELS; k++) {
    uint64_t mask = w->occupied[k], rot;
    unsigned shift = LEVEL_BITS * k, c = digit(w->now, k), ahead;

    if (mask == 0)
      continue;
    rot = (mask >> c) | (mask << ((ARBOR__WHEEL_SLOTS - c) & SLOT_MASK));
    ahead = (unsigned)__builtin_ctzll(rot);
    *level = k;
    *slot = (unsigned)((c + ahead) & SLOT_MASK);
    *start = ((w->now >> shift) + ahead) << shift;
    return true;
  }
  return false;
}

static struct arbor__timer *merge(struct arbor__timer *a,
                                  struct arbor__timer *b)
{
  struct arbor__timer *out = NULL, **tail = &out;

  while (a != NULL && b != NULL) {
    /* Ties take from a, the earlier half: the sort is stable. */
    struct arbor__timer **least = b->deadline < a->deadline ? &b : &a;

    *tail = *least;
    tail = &(*least)->next;
    *least = (*least)->next;
  }
  *tail = a != NULL ? a : b;
  return out;
}

/* Stable merge sort of a NULL-terminated list by deadline (via next only).
 * A due slot may hold any number of entries inserted late, so an insertion
 * sort's quadratic worst case is not acceptable.  It is bottom-up, so it
 * needs no recursion: bins[i] holds a sorted run of 2^i entries, earlier
 * entries in higher bins, and each new entry carries into them like a
 * binary counter. */
static struct arbor__timer *sort_by_deadline(struct arbor__timer *list)
{
  struct arbor__timer *bins[64] = {0}, *run;
  unsigned i;

  while (list != NULL) {
    run = list;
    list = list->next;
    run->next = NULL;
    for (i = 0; bins[i] != NULL; i++) {
      run = merge(bins[i], run);
      bins[i] = NULL;
    }
    bins[i] = run;
  }
  run = NULL;
  for (i = 0; i < 64; i++)
    if (bins[i] != NULL)
      run = merge(bins[i], run);
  return run;
}

/* Fires level-0 slot `slot`, whose entries are all due at w->now. */
static size_t fire_slot(struct arbor__wheel *w, unsigned slot,
                        arbor__timer_fire_fn fire, void *ud)
{
  struct arbor__timer batch = {0}, *list = w->slots[0][slot], *t, *prev;
  size_t fired = 0;
  bool sorted = true;

  w->slots[0][slot] = NULL;
  w->occupied[0] &= ~bit(slot);
  /* Entries that arrived by cascading share one deadline; only entries that
   * were inserted already due can differ, so usually there is nothing to
   * sort. */
  for (t = list; t != NULL && sorted; t = t->next)
    sorted = t->next == NULL || t->deadline <= t->next->deadline;
  if (!sorted)
    list = sort_by_deadline(list);
  batch.next = list;
  for (prev = &batch, t = list; t != NULL; prev = t, t = t->next)
    t->prev = prev;

  /* Re-read the head each time: fire may have removed the next entry.
   * Entries fire inserts with deadline <= w->now go to the (now empty)
   * slot and fire as the next batch, still within this advance. */
  while ((t = batch.next) != NULL) {
    unlink_entry(w, t);
    fired++;
    fire(t, ud);
  }
  return fired;
}

void arbor__wheel_init(struct arbor__wheel *w, uint64_t now_ms)
{
  *w = (struct arbor__wheel){.now = now_ms};
}

void arbor__wheel_insert(struct arbor__wheel *w, struct arbor__timer *t,
                         uint64_t deadline_ms)
{
  t->deadline = deadline_ms;
  t->linked = true;
  w->count++;
  file(w, t);
}

void arbor__wheel_remove(struct arbor__wheel *w, struct arbor__timer *t)
{
  if (t->linked)
    unlink_entry(w, t);
}

uint64_t arbor__wheel_next(const struct arbor__wheel *w)
{
  unsigned level, slot;
  uint64_t start, min;

  if (!earliest(w, &level, &slot, &start))
    return UINT64_MAX;
  if (level != 0 || start != w->now)
    return start;
  /* The due slot mixes deadlines that are already past.  Any answer <= now
   * would do for a caller deciding whether to sleep, but the contract is
   * "never later than the earliest deadline", so find it; this list is
   * only non-empty between a late insert and the next advance. */
  min = UINT64_MAX;
  for (const struct arbor__timer *t = w->slots[0][slot]; t != NULL; t = t->next)
    min = t->deadline < min ? t->deadline : min;
  return min;
}

size_t arbor__wheel_advance(struct arbor__wheel *w, uint64_t now_ms,
                            arbor__timer_fire_fn fire, void *ud)
{
  size_t fired = 0;
  unsigned level, slot;
  uint64_t start;

  /* Time never runs backwards, but entries already due still fire. */
  if (now_ms < w->now)
    now_ms = w->now;
  /* w->now steps to each slot start in turn, so entries that fire inserts
   * are filed relative to the time being processed and, if due by now_ms,
   * fire in this advance, in order. */
  while (earliest(w, &level, &slot, &start) && start <= now_ms) {
    w->now = start;
    if (level == 0) {
      fired += fire_slot(w, slot, fire, ud);
    } else {
      struct arbor__timer *t = w->slots[level][slot], *next;

      /* No callbacks run here, so the list can be walked detached. */
      w->slots[level][slot] = NULL;
      w->occupied[level] &= ~bit(slot);
      for (; t != NULL; t = next) {
        next = t->next;
        file(w, t);
      }
    }
  }
  /* Every occupied slot starts after now_ms, so moving now there keeps each
   * entry inside the blocks that placed it. */
  w->now = now_ms;
  return fired;
}
