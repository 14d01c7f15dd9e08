/* test_errors.c -- the error table, and every documented invalid argument. */
#include <arbor.h>
#include <criterion/criterion.h>
#include <string.h>

static int nop(void *arg)
{
  (void)arg;
  return 0;
}

Test(errors, every_code_has_a_message_and_a_name)
{
#define XX(name, value, msg)                                                   \
  cr_expect_str_eq(arbor_strerror(ARBOR_##name), msg);                         \
  cr_expect_str_eq(arbor_err_name(ARBOR_##name), "ARBOR_" #name);              \
  cr_expect_lt(ARBOR_##name, 0);
  ARBOR_ERRNO_MAP(XX)
#undef XX
}

Test(errors, codes_are_negative_errno_or_below_minus_4000)
{
  cr_expect_eq(ARBOR_EINVAL, -EINVAL);
  cr_expect_eq(ARBOR_ESRCH, -ESRCH);
  cr_expect_eq(ARBOR_ETIMEDOUT, -ETIMEDOUT);
  cr_expect_lt(ARBOR_ENOTPROC, -4000);
  cr_expect_lt(ARBOR_ESHUTDOWN, -4000);
  cr_expect_lt(ARBOR_EOTHERRT, -4000);
}

Test(errors, unknown_codes_and_success_are_named)
{
  cr_expect_str_eq(arbor_strerror(0), "success");
  cr_expect_str_eq(arbor_err_name(0), "ARBOR_OK");
  cr_expect_str_eq(arbor_strerror(-123456), "unknown error");
  cr_expect_str_eq(arbor_err_name(7), "ARBOR_UNKNOWN");
}

Test(errors, null_and_out_of_range_runtime_options_are_rejected)
{
  arbor_rt *rt = (arbor_rt *)0x1;

  cr_expect_eq(arbor_rt_create(NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 257}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.stack_size = 1024}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.stack_size = (size_t)1
                                                                    << 31}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.stack_mode = 3}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.stack_mode = -1}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.stack_cache = 1u << 30}),
               ARBOR_EINVAL);
  /* Out-params are untouched on failure. */
  cr_expect_eq(rt, (arbor_rt *)0x1);
}

Test(errors, null_runtime_is_rejected_everywhere)
{
  arbor_worker_stats st;
  char buf[8];
  int reason = 77;

  cr_expect_eq(arbor_rt_shutdown(NULL), ARBOR_EINVAL);
  arbor_rt_destroy(NULL); /* a no-op */
  cr_expect_eq(arbor_rt_workers(NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_live(NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_rt_stats(NULL, &st, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(NULL, NULL, nop, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_name(NULL, 1, buf, sizeof(buf)), ARBOR_EINVAL);
  cr_expect_eq(arbor_alive(NULL, 1), ARBOR_EINVAL);
  cr_expect_eq(arbor_wait(NULL, 1, 0, &reason), ARBOR_EINVAL);
  cr_expect_eq(reason, 77);
}

Test(errors, calls_that_need_a_process_fail_outside_one)
{
  cr_expect_eq(arbor_self(), 0);
  cr_expect_eq(arbor_worker(), -1);
  cr_expect_null(arbor_rt_current());
  cr_expect_eq(arbor_yield(), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_exit(3), ARBOR_ENOTPROC);
  cr_expect_eq(arbor_defer(NULL, NULL), ARBOR_ENOTPROC);
}

Test(errors, bad_spawn_arguments_are_rejected_and_spawn_nothing)
{
  arbor_rt *rt;
  arbor_pid pid = 99;
  char longname[300];

  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_expect_eq(arbor_spawn(rt, &pid, NULL, NULL, NULL), ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.stack_size = 100}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.flags = 0x80}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.name = "..--.."}),
               ARBOR_EINVAL);
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL, &(arbor_spawn_opts){.name = ""}),
               ARBOR_EINVAL);
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  cr_expect_eq(arbor_spawn(rt, &pid, nop, NULL,
                           &(arbor_spawn_opts){.name = longname}),
               ARBOR_ENAMETOOLONG);
  cr_expect_eq(pid, 99);
  cr_expect_eq(arbor_rt_live(rt), 0);
  arbor_rt_destroy(rt);
}

Test(errors, bad_lookup_arguments_are_rejected)
{
  arbor_rt *rt;
  char buf[4];

  cr_assert_eq(arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 1}), 0);
  cr_expect_eq(arbor_name(rt, 1, NULL, 4), ARBOR_EINVAL);
  cr_expect_eq(arbor_name(rt, 1, buf, 0), ARBOR_EINVAL);
  cr_expect_eq(arbor_alive(rt, 0), 0);
  cr_expect_eq(arbor_wait(rt, 0, 0, NULL), ARBOR_ESRCH);
  cr_expect_eq(arbor_rt_stats(rt, NULL, 1), ARBOR_EINVAL);
  arbor_rt_destroy(rt);
}
