/* tests/sched_hooks_stub.h -- hooks for white-box tests and stress programs
 * that drive a scheduler whose worker threads never start: queues, slots
 * and handshakes are exercised by hand, so no hook is ever called. */
#ifndef ARBOR_TESTS_SCHED_HOOKS_STUB_H
#define ARBOR_TESTS_SCHED_HOOKS_STUB_H

#include "sched/sched.h"

static void stub_main(struct arbor__task *t)
{
  (void)t;
}
static int stub_prestart(struct arbor__task *t, int err)
{
  (void)t;
  (void)err;
  return 0;
}
static void stub_exited(struct arbor__task *t)
{
  (void)t;
}
static void stub_overflow(struct arbor__task *t)
{
  (void)t;
}
static const struct arbor__sched_hooks dummy_hooks = {
    .main = stub_main,
    .prestart = stub_prestart,
    .exited = stub_exited,
    .overflow = stub_overflow,
};

#endif /* ARBOR_TESTS_SCHED_HOOKS_STUB_H */
