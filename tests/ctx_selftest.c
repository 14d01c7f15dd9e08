/* tests/ctx_selftest.c -- context-switch checks as a plain one-thread program.
 *
 * CI runs it under qemu-aarch64, where neither Criterion nor threads are
 * available, and it is the context test a TSan build can run.  It repeats
 * the core of test_ctx.c: callee-saved registers, FP control, an exact
 * switch count and the entry frame.  One line per check, then
 * "ctx_selftest: N passed, M failed"; the exit status is 0 only if all
 * passed.
 */
#include "sched/ctx.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define STACK_SIZE ((size_t)64 * 1024)

static int passed, failed;

static void report(bool ok, const char *check, const char *why)
{
  if (ok) {
    passed++;
    printf("ok   %s\n", check);
  } else {
    failed++;
    printf("FAIL %s: %s\n", check, why);
  }
}

static void *map_stack(void)
{
  void *p =
      mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

  if (p == MAP_FAILED) {
    perror("ctx_selftest: mmap");
    exit(2);
  }
  return p;
}

#include "ctx_probe.h"

#if defined(ARBOR_HAVE_ASAN) || defined(ARBOR_HAVE_TSAN) || \
    defined(ARBOR_CTX_UCONTEXT)
/* Here the switch must go through arbor__ctx_jump(), whose own saves can
 * mask a register the assembly forgot; the plain build is the strict one. */
static void hop(void *from, void *to)
{
  arbor__ctx_jump(from, to);
}

static void probe_switch(const uint64_t *in, uint64_t *out,
                         struct arbor__ctx *from, struct arbor__ctx *to)
{
  probe_callee_saved(in, out, hop, from, to);
}
#else
static void probe_switch(const uint64_t *in, uint64_t *out,
                         struct arbor__ctx *from, struct arbor__ctx *to)
{
  probe_callee_saved(in, out, (void (*)(void *, void *))arbor__ctx_switch,
                     &from->sp, to->sp);
}
#endif

static struct arbor__ctx native, other;

/* ---- callee-saved registers ---------------------------------------- */

#define PROBE_ROUNDS 4

static char other_why[160]; /* first register `other` lost, if any */

static void markers(uint64_t *v, uint64_t context, int round)
{
  for (int i = 0; i < NREGS; i++)
    v[i] = 0x0101010101010101u * (uint64_t)(i + 1) ^ context << 48 ^
           (uint64_t)round << 40;
}

/* Returns false and describes the first difference in why[]. */
static bool same_registers(const uint64_t *in, const uint64_t *out,
                           const char *who, int round, char *why, size_t n)
{
  for (int i = 0; i < NREGS; i++) {
    if (in[i] != out[i]) {
      snprintf(why, n, "%s, round %d: %s is %#llx, not %#llx", who, round,
               reg_names[i], (unsigned long long)out[i],
               (unsigned long long)in[i]);
      return false;
    }
  }
  return true;
}

static void probe_other(void *arg)
{
  uint64_t in[NREGS], out[NREGS];
  bool ok = true;

  (void)arg;
  arbor__ctx_started();
  for (int r = 0; r < PROBE_ROUNDS; r++) {
    markers(in, 0xB0B, r);
    probe_switch(in, out, &other, &native);
    if (ok)
      ok = same_registers(in, out, "new context", r, other_why,
                          sizeof(other_why));
  }
  arbor__ctx_jump_final(&other, &native);
}

static void check_registers(void)
{
  void *stack = map_stack();
  uint64_t in[NREGS], out[NREGS];
  char why[160] = "";
  bool ok = true;

  arbor__ctx_make(&other, stack, STACK_SIZE, probe_other, NULL);
  for (int r = 0; r < PROBE_ROUNDS; r++) {
    markers(in, 0xA1A, r);
    probe_switch(in, out, &native, &other);
    if (ok)
      ok = same_registers(in, out, "native context", r, why, sizeof(why));
  }
  arbor__ctx_jump(&native, &other); /* lets it check its last round */
  arbor__ctx_destroy(&other);
  munmap(stack, STACK_SIZE);
  report(ok && other_why[0] == '\0',
#if defined(__aarch64__)
         "callee-saved registers x19-x29 and d8-d15 survive a switch",
#else
         "callee-saved registers rbx, rbp, r12-r15 survive a switch",
#endif
         ok ? other_why : why);
}

/* ---- floating-point control ----------------------------------------- */

enum rounding { NEAREST = 0, DOWN = 1, UP = 2, ZERO = 3, MIXED = -1 };

#if defined(__x86_64__)
/* RC is bits 13-14 of MXCSR and 10-11 of the x87 control word: 0 nearest,
 * 1 down, 2 up, 3 toward zero.  MIXED means the two units disagree, i.e. one of
 * them was lost or leaked on its own. */
static enum rounding rounding(void)
{
  uint32_t mxcsr;
  uint16_t cw;

  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  if ((mxcsr >> 13 & 3) != (cw >> 10 & 3u))
    return MIXED;
  return (enum rounding)(mxcsr >> 13 & 3);
}

static void set_rounding(enum rounding r)
{
  uint32_t mxcsr;
  uint16_t cw;

  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  mxcsr = (mxcsr & ~0x6000u) | (uint32_t)r << 13;
  cw = (uint16_t)((cw & ~0x0C00u) | (unsigned)r << 10);
  __asm__ volatile("ldmxcsr %0; fldcw %1" : : "m"(mxcsr), "m"(cw) : "memory");
}
#else
/* FPCR.RMode, bits 22-23: 0 nearest, 1 up, 2 down, 3 toward zero. */
static enum rounding rounding(void)
{
  static const enum rounding decode[4] = {NEAREST, UP, DOWN, ZERO};
  uint64_t fpcr;

  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  return decode[fpcr >> 22 & 3];
}

static void set_rounding(enum rounding r)
{
  static const uint64_t encode[3] = {0, 2, 1};
  uint64_t fpcr;

  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  fpcr = (fpcr & ~((uint64_t)3 << 22)) | encode[r] << 22;
  __asm__ volatile("msr fpcr, %0" : : "r"(fpcr) : "memory");
}
#endif

static enum rounding seen_first, seen_later;

static void fp_other(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  seen_first = rounding();
  set_rounding(DOWN);
  arbor__ctx_jump(&other, &native);
  seen_later = rounding();
  arbor__ctx_jump_final(&other, &native);
}

/* x86-64: the ABI makes MXCSR and the x87 CW callee-saved, so they are per
 * context and a new context starts at round-to-nearest.  aarch64: FPCR is
 * global state under AAPCS64 and not saved (ctx_aarch64.S), so it is per
 * thread -- except with ucontext, whose setcontext restores it, and where
 * a new context starts with its creator's mode at arbor__ctx_make(). */
static void check_fp_control(void)
{
#if defined(__x86_64__) || defined(ARBOR_CTX_UCONTEXT)
  static const char check[] = "rounding mode travels with its context";
  const enum rounding want_first = NEAREST, want_native = UP, want_later = DOWN;
#else
  static const char check[] = "FPCR rounding is thread state, by design";
  const enum rounding want_first = UP, want_native = DOWN, want_later = UP;
#endif
  void *stack = map_stack();
  enum rounding native_after;
  char why[160];

  arbor__ctx_make(&other, stack, STACK_SIZE, fp_other, NULL);
  set_rounding(UP);
  arbor__ctx_jump(&native, &other);
  native_after = rounding();
  set_rounding(UP);
  arbor__ctx_jump(&native, &other);
  set_rounding(NEAREST);
  arbor__ctx_destroy(&other);
  munmap(stack, STACK_SIZE);
  snprintf(why, sizeof(why),
           "new context saw %d, native after it %d, it later %d; wanted %d, "
           "%d, %d (0 nearest, 1 down, 2 up, -1 units disagree)",
           seen_first, native_after, seen_later, want_first, want_native,
           want_later);
  report(seen_first == want_first && native_after == want_native &&
             seen_later == want_later,
         check, why);
}

/* ---- switch count --------------------------------------------------- */

#define PINGS 1000000L

static long pings, pongs, out_of_step;
static bool stop;

static void pong(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  while (!stop) {
    pongs++;
    out_of_step += pongs != pings;
    arbor__ctx_jump(&other, &native);
  }
  arbor__ctx_jump_final(&other, &native);
}

static void check_count(void)
{
  void *stack = map_stack();
  char why[160];

  arbor__ctx_make(&other, stack, STACK_SIZE, pong, NULL);
  for (long i = 0; i < PINGS; i++) {
    pings++;
    arbor__ctx_jump(&native, &other);
  }
  stop = true;
  arbor__ctx_jump(&native, &other);
  arbor__ctx_destroy(&other);
  munmap(stack, STACK_SIZE);
  snprintf(why, sizeof(why), "%ld pings, %ld pongs, %ld out of step", pings,
           pongs, out_of_step);
  report(pings == PINGS && pongs == PINGS && out_of_step == 0,
         "a million round trips are counted exactly", why);
}

/* ---- entry frame ---------------------------------------------------- */

/* entry_with_sp(arg) passes its caller's stack pointer, as found on entry,
 * on to entry_checked(arg, sp). */
void entry_with_sp(void *arg);
void entry_checked(void *arg, uintptr_t sp);

#if defined(__x86_64__)
#define ENTRY_SP_MOD16 8 /* the call pushed a return address */
__asm__(".text\n"
        ".globl entry_with_sp\n"
        ".hidden entry_with_sp\n"
        ".type entry_with_sp, @function\n"
        "entry_with_sp:\n"
        "  movq %rsp, %rsi\n"
        "  jmp entry_checked\n"
        ".size entry_with_sp, .-entry_with_sp\n");
#else
#define ENTRY_SP_MOD16 0
__asm__(".text\n"
        ".globl entry_with_sp\n"
        ".hidden entry_with_sp\n"
        ".type entry_with_sp, %function\n"
        "entry_with_sp:\n"
        "  hint #34\n" /* bti c */
        "  mov x1, sp\n"
        "  b entry_checked\n"
        ".size entry_with_sp, .-entry_with_sp\n");
#endif

static void *entry_arg;
static uintptr_t entry_sp;

void entry_checked(void *arg, uintptr_t sp)
{
  arbor__ctx_started();
  entry_arg = arg;
  entry_sp = sp;
  arbor__ctx_jump_final(&other, &native);
}

static void check_entry(void)
{
  char *stack = map_stack();
  uintptr_t hi = (uintptr_t)stack + STACK_SIZE;
  char why[160];
  int token;

  arbor__ctx_make(&other, stack, STACK_SIZE, entry_with_sp, &token);
  arbor__ctx_jump(&native, &other);
  arbor__ctx_destroy(&other);
  munmap(stack, STACK_SIZE);
  snprintf(why, sizeof(why), "arg %p (want %p), sp %#lx, stack top %#lx",
           entry_arg, (void *)&token, (unsigned long)entry_sp,
           (unsigned long)hi);
  report(entry_arg == &token && entry_sp % 16 == ENTRY_SP_MOD16 &&
             entry_sp <= hi && entry_sp >= hi - 256,
         "entry gets its argument, at the top of its stack, ABI-aligned", why);
}

int main(void)
{
  arbor__ctx_init_thread(&native);
  check_registers();
  check_fp_control();
  check_count();
  check_entry();
  printf("ctx_selftest: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
