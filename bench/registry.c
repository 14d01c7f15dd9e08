/* bench/registry.c -- the table of workloads arbor-bench knows.
 *
 * A new workload is a new wl_<name>.c defining `const struct bench_workload
 * bench_wl_<name>`, plus its declaration and table entry below.  The table's
 * order is the order of the profiles and of the reports (WORKLOADS.md's).
 */
#include <string.h>

#include "bench/bench.h"

extern const struct bench_workload bench_wl_skynet;
extern const struct bench_workload bench_wl_ring;
extern const struct bench_workload bench_wl_pingpong;
extern const struct bench_workload bench_wl_spawn;
extern const struct bench_workload bench_wl_switch;
extern const struct bench_workload bench_wl_restart;
extern const struct bench_workload bench_wl_memory;

/* One entry per line, in WORKLOADS.md's order (skynet, ring and pingpong
 * go before spawn; restart and memory after switch). */
/* clang-format off */
const struct bench_workload *const bench_workloads[] = {
    &bench_wl_skynet,
    &bench_wl_ring,
    &bench_wl_pingpong,
    &bench_wl_spawn,
    &bench_wl_switch,
    &bench_wl_restart,
    &bench_wl_memory,
};
/* clang-format on */

const unsigned bench_nworkloads =
    sizeof(bench_workloads) / sizeof(bench_workloads[0]);

const struct bench_workload *bench_workload_find(const char *name)
{
  for (unsigned i = 0; i < bench_nworkloads; i++) {
    if (strcmp(bench_workloads[i]->name, name) == 0)
      return bench_workloads[i];
  }
  return NULL;
}
