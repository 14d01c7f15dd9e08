/* hello.c -- the runtime life cycle: create, spawn, wait, shut down.
 *
 * Expected output (pids vary):
 *   hello from greeter.world (pid 0x...) on worker 0
 *   greeter exited with reason 42
 */
#include <arbor.h>
#include <stdio.h>
#include <stdlib.h>

static void say_bye(void *arg)
{
  (void)arg;
  /* Defers run on every exit path: return, arbor_exit(), shutdown. */
}

static int greeter(void *arg)
{
  char name[ARBOR_NAME_MAX];
  int err;

  err = arbor_defer(say_bye, NULL);
  if (err < 0)
    return err;
  err = arbor_name(NULL, arbor_self(), name, sizeof(name));
  if (err < 0)
    return err;
  printf("hello from %s.%s (pid %#llx) on worker %d\n", name, (char *)arg,
         (unsigned long long)arbor_self(), arbor_worker());
  return 42;
}

int main(void)
{
  arbor_rt *rt;
  arbor_pid pid;
  int err, reason;

  err = arbor_rt_create(&rt, &(arbor_rt_opts){.workers = 2});
  if (err < 0) {
    fprintf(stderr, "arbor_rt_create: %s\n", arbor_strerror(err));
    return EXIT_FAILURE;
  }
  err = arbor_spawn(rt, &pid, greeter, "world",
                    &(arbor_spawn_opts){.name = "greeter",
                                        .flags = ARBOR_SPAWN_JOINABLE});
  if (err == 0)
    err = arbor_wait(rt, pid, -1, &reason);
  if (err < 0) {
    fprintf(stderr, "spawn/wait: %s\n", arbor_strerror(err));
    arbor_rt_destroy(rt);
    return EXIT_FAILURE;
  }
  printf("greeter exited with reason %d\n", reason);
  arbor_rt_destroy(rt);
  return EXIT_SUCCESS;
}
