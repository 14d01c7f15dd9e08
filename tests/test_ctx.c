/* tests/test_ctx.c -- white-box tests of the context switch (sched/ctx.h).
 *
 * Contexts never call cr_assert: a failed assertion longjmps back to
 * Criterion's frame on the native stack.  They record what they see, and
 * the native context checks it after they have jumped back.
 */
#include "sched/ctx.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#define STACK_SIZE ((size_t)64 * 1024)

static void *map_stacks(size_t n)
{
  void *p =
      mmap(NULL, n * STACK_SIZE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

  cr_assert_neq(p, MAP_FAILED, "mmap of %zu stacks failed", n);
  return p;
}

static void unmap_stacks(void *p, size_t n)
{
  cr_assert_eq(munmap(p, n * STACK_SIZE), 0);
}

#include "ctx_probe.h"

#if defined(ARBOR_HAVE_ASAN) || defined(ARBOR_HAVE_TSAN) || \
    defined(ARBOR_CTX_UCONTEXT)
/* Sanitizer and ucontext builds must go through arbor__ctx_jump().  Its own
 * saves may then mask a register the assembly forgot; the plain build,
 * which probes the bare switch, is the one that catches that. */
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

/* A value per register, context and round, so that a register restored
 * from the wrong slot, the wrong context or an older switch shows. */
static void markers(uint64_t *v, uint64_t context, int round)
{
  for (int i = 0; i < NREGS; i++)
    v[i] = 0x0101010101010101u * (uint64_t)(i + 1) ^ context << 48 ^
           (uint64_t)round << 40;
}

#define PROBE_ROUNDS 4

static struct {
  struct arbor__ctx native, other;
  int other_bad[NREGS]; /* rounds in which `other` lost the register */
} rp;

static void probe_other(void *arg)
{
  uint64_t in[NREGS], out[NREGS];

  (void)arg;
  arbor__ctx_started();
  for (int r = 0; r < PROBE_ROUNDS; r++) {
    markers(in, 0xB0B, r);
    probe_switch(in, out, &rp.other, &rp.native);
    for (int i = 0; i < NREGS; i++)
      rp.other_bad[i] += in[i] != out[i];
  }
  arbor__ctx_jump_final(&rp.other, &rp.native);
}

/* Ping-pong between the native context and `other`, both holding markers
 * in every callee-saved register across each switch; check registers
 * [first, first + n). */
static void check_registers(int first, int n)
{
  void *stack = map_stacks(1);
  uint64_t in[NREGS], out[NREGS];

  arbor__ctx_init_thread(&rp.native);
  arbor__ctx_make(&rp.other, stack, STACK_SIZE, probe_other, NULL);
  for (int r = 0; r < PROBE_ROUNDS; r++) {
    markers(in, 0xA1A, r);
    probe_switch(in, out, &rp.native, &rp.other);
    for (int i = first; i < first + n; i++)
      cr_expect_eq(
          out[i], in[i], "native context, round %d: %s is %#llx, not %#llx", r,
          reg_names[i], (unsigned long long)out[i], (unsigned long long)in[i]);
  }
  arbor__ctx_jump(&rp.native, &rp.other); /* lets it check its last round */
  for (int i = first; i < first + n; i++)
    cr_expect_eq(rp.other_bad[i], 0, "new context: %s lost in %d of %d rounds",
                 reg_names[i], rp.other_bad[i], PROBE_ROUNDS);
  arbor__ctx_destroy(&rp.other);
  unmap_stacks(stack, 1);
}

Test(ctx, callee_saved_integer_registers_survive_a_switch, .timeout = 30)
{
  check_registers(0, NINTREGS);
}

#if defined(__aarch64__)
Test(ctx, registers_d8_to_d15_survive_a_switch, .timeout = 30)
{
  check_registers(NINTREGS, NREGS - NINTREGS);
}
#endif

/* Floating-point control.  The registers are read directly rather than
 * through fegetround(), which on x86-64 looks at the x87 word only, so that
 * each unit is checked on its own. */
enum rounding { NEAREST, DOWN, UP, ZERO };

/* 1/3 in the current rounding mode.  The volatile operands and result pin
 * the division between the mode changes around it: compilers assume the
 * default mode and would otherwise move it across them. */
__attribute__((noinline)) static double third(void)
{
  volatile double one = 1.0, three = 3.0;
  volatile double q = one / three;

  return q;
}

#if defined(__x86_64__)
static uint32_t get_mxcsr(void)
{
  uint32_t v;

  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}

static void set_mxcsr(uint32_t v)
{
  __asm__ volatile("ldmxcsr %0" : : "m"(v) : "memory");
}

static uint16_t get_x87_cw(void)
{
  uint16_t v;

  __asm__ volatile("fnstcw %0" : "=m"(v));
  return v;
}

static void set_x87_cw(uint16_t v)
{
  __asm__ volatile("fldcw %0" : : "m"(v) : "memory");
}

/* MXCSR without its sticky exception flags (bits 0-5), which any FP
 * instruction in between may set. */
static uint32_t mxcsr_control(void)
{
  return get_mxcsr() & ~0x3Fu;
}

/* RC is bits 13-14 of MXCSR and bits 10-11 of the x87 control word, with
 * the same encoding: 0 nearest, 1 down, 2 up, 3 toward zero. */
static enum rounding rounding(void)
{
  return (enum rounding)(get_mxcsr() >> 13 & 3);
}

static enum rounding x87_rounding(void)
{
  return (enum rounding)(get_x87_cw() >> 10 & 3);
}

/* Both units, as fesetround() does. */
static void set_rounding(enum rounding r)
{
  set_mxcsr((get_mxcsr() & ~0x6000u) | (uint32_t)r << 13);
  set_x87_cw((uint16_t)((get_x87_cw() & ~0x0C00u) | (unsigned)r << 10));
}
#elif defined(__aarch64__)
static uint64_t get_fpcr(void)
{
  uint64_t v;

  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return v;
}

/* FPCR.RMode, bits 22-23: 0 nearest, 1 up, 2 down, 3 toward zero. */
static enum rounding rounding(void)
{
  static const enum rounding decode[4] = {NEAREST, UP, DOWN, ZERO};

  return decode[get_fpcr() >> 22 & 3];
}

static void set_rounding(enum rounding r)
{
  static const uint64_t encode[3] = {0, 2, 1};
  uint64_t v = (get_fpcr() & ~((uint64_t)3 << 22)) | encode[r] << 22;

  __asm__ volatile("msr fpcr, %0" : : "r"(v) : "memory");
}
#endif

/* What `other` sees: rounding() is MXCSR's on x86-64 and FPCR's on aarch64;
 * the x87 fields are x86-64 only. */
static struct {
  struct arbor__ctx native, other;
  enum rounding first, first_x87, later, later_x87;
  double first_third;
} fp;

static void fp_other(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  fp.first = rounding();
#if defined(__x86_64__)
  fp.first_x87 = x87_rounding();
#endif
  fp.first_third = third();
  set_rounding(DOWN);
  arbor__ctx_jump(&fp.other, &fp.native);
  fp.later = rounding();
#if defined(__x86_64__)
  fp.later_x87 = x87_rounding();
#endif
  arbor__ctx_jump_final(&fp.other, &fp.native);
}

#if defined(__x86_64__)
/* The SysV ABI makes MXCSR's control bits and the x87 control word
 * callee-saved, so each context keeps its own; a new one starts with the
 * ABI's initial values. */
Test(ctx, rounding_mode_travels_with_its_context, .timeout = 30)
{
  void *stack = map_stacks(1);
  double nearest_third = third(), up_third;

  arbor__ctx_init_thread(&fp.native);
  arbor__ctx_make(&fp.other, stack, STACK_SIZE, fp_other, NULL);
  set_rounding(UP);
  up_third = third();
  cr_assert_gt(up_third, nearest_third, "rounding up did not take effect");

  arbor__ctx_jump(&fp.native, &fp.other);
  cr_expect_eq(fp.first, NEAREST, "new context inherited MXCSR rounding");
  cr_expect_eq(fp.first_x87, NEAREST, "new context inherited x87 rounding");
  cr_expect_eq(fp.first_third, nearest_third,
               "new context computes rounded up");
  cr_expect_eq(rounding(), UP, "MXCSR rounding leaked from the other context");
  cr_expect_eq(x87_rounding(), UP,
               "x87 rounding leaked from the other context");
  cr_expect_eq(third(), up_third);

  arbor__ctx_jump(&fp.native, &fp.other);
  cr_expect_eq(fp.later, DOWN, "MXCSR rounding leaked into the other context");
  cr_expect_eq(fp.later_x87, DOWN,
               "x87 rounding leaked into the other context");
  set_rounding(NEAREST);
  arbor__ctx_destroy(&fp.other);
  unmap_stacks(stack, 1);
}

static struct {
  struct arbor__ctx native, other;
  uint32_t mxcsr_seen;
  uint16_t cw_seen;
} cw;

static void cw_other(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  set_mxcsr(0x1F80 | 0x8040); /* flush-to-zero and denormals-are-zero */
  set_x87_cw(0x027F);         /* 53-bit precision */
  arbor__ctx_jump(&cw.other, &cw.native);
  cw.mxcsr_seen = mxcsr_control();
  cw.cw_seen = get_x87_cw();
  arbor__ctx_jump_final(&cw.other, &cw.native);
}

/* Every control bit, not just rounding, and each register on its own: one
 * context changes only MXCSR's FTZ/DAZ and the x87 precision, the other
 * only the rounding of one unit. */
Test(ctx, whole_mxcsr_and_x87_control_word_travel_separately, .timeout = 30)
{
  void *stack = map_stacks(1);
  uint32_t mxcsr = mxcsr_control();
  uint16_t x87 = get_x87_cw();

  arbor__ctx_init_thread(&cw.native);
  arbor__ctx_make(&cw.other, stack, STACK_SIZE, cw_other, NULL);
  arbor__ctx_jump(&cw.native, &cw.other);
  cr_expect_eq(mxcsr_control(), mxcsr, "MXCSR is %#x, not %#x", mxcsr_control(),
               mxcsr);
  cr_expect_eq(get_x87_cw(), x87, "x87 CW is %#x, not %#x", get_x87_cw(), x87);
  set_x87_cw((uint16_t)(x87 | 0x0C00)); /* toward zero, x87 only */
  arbor__ctx_jump(&cw.native, &cw.other);
  cr_expect_eq(cw.mxcsr_seen, 0x1F80 | 0x8040u, "MXCSR is %#x", cw.mxcsr_seen);
  cr_expect_eq(cw.cw_seen, 0x027F, "x87 CW is %#x", cw.cw_seen);
  cr_expect_eq(get_x87_cw(), x87 | 0x0C00);
  cr_expect_eq(mxcsr_control(), mxcsr);
  set_x87_cw(x87);
  arbor__ctx_destroy(&cw.other);
  unmap_stacks(stack, 1);
}
#elif defined(__aarch64__)
/* AAPCS64 makes FPCR global state, not callee-saved, and ctx_aarch64.S
 * does not save it: a mode set in one context is seen by the next one on
 * the thread.  The ucontext back end restores it anyway (glibc's
 * setcontext does), and a new context starts from its creator's. */
Test(ctx, rounding_mode_follows_the_back_end_contract, .timeout = 30)
{
  void *stack = map_stacks(1);
#if defined(ARBOR_CTX_UCONTEXT)
  enum rounding seen_first = NEAREST, seen_later = DOWN, native = UP;
#else
  enum rounding seen_first = UP, seen_later = UP, native = DOWN;
#endif

  arbor__ctx_init_thread(&fp.native);
  arbor__ctx_make(&fp.other, stack, STACK_SIZE, fp_other, NULL);
  set_rounding(UP);
  arbor__ctx_jump(&fp.native, &fp.other);
  cr_expect_eq(fp.first, seen_first);
  cr_expect_eq(rounding(), native);
  set_rounding(UP);
  arbor__ctx_jump(&fp.native, &fp.other);
  cr_expect_eq(fp.later, seen_later);
  set_rounding(NEAREST);
  arbor__ctx_destroy(&fp.other);
  unmap_stacks(stack, 1);
}
#endif

#define PINGS 1000000L

static struct {
  struct arbor__ctx native, other;
  long pings, pongs, out_of_step;
  bool stop;
} pp;

static void pong(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  while (!pp.stop) {
    pp.pongs++;
    pp.out_of_step += pp.pongs != pp.pings;
    arbor__ctx_jump(&pp.other, &pp.native);
  }
  arbor__ctx_jump_final(&pp.other, &pp.native);
}

Test(ctx, a_million_round_trips_are_counted_exactly, .timeout = 30)
{
  void *stack = map_stacks(1);

  arbor__ctx_init_thread(&pp.native);
  arbor__ctx_make(&pp.other, stack, STACK_SIZE, pong, NULL);
  for (long i = 0; i < PINGS; i++) {
    pp.pings++;
    arbor__ctx_jump(&pp.native, &pp.other);
  }
  pp.stop = true;
  arbor__ctx_jump(&pp.native, &pp.other);
  cr_expect_eq(pp.pings, PINGS);
  cr_expect_eq(pp.pongs, PINGS);
  cr_expect_eq(pp.out_of_step, 0);
  arbor__ctx_destroy(&pp.other);
  unmap_stacks(stack, 1);
}

/* entry_with_sp(arg) is an arbor__ctx_entry that passes its caller's stack
 * pointer, as found on entry, to entry_checked(arg, sp). */
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

static struct {
  struct arbor__ctx native, other;
  void *arg;
  uintptr_t sp, frame;
  int runs;
} en;

void entry_checked(void *arg, uintptr_t sp)
{
  arbor__ctx_started();
  en.arg = arg;
  en.sp = sp;
  /* Not the address of a local: with detect_stack_use_after_return, ASan
   * puts locals on a fake stack elsewhere. */
  en.frame = (uintptr_t)__builtin_frame_address(0);
  en.runs++;
  arbor__ctx_jump_final(&en.other, &en.native);
}

static void run_entry(char *lo, void *arg)
{
  arbor__ctx_make(&en.other, lo, STACK_SIZE, entry_with_sp, arg);
  arbor__ctx_jump(&en.native, &en.other);
  arbor__ctx_destroy(&en.other);
}

Test(ctx, entry_gets_its_argument_and_an_abi_aligned_stack, .timeout = 30)
{
  char *stack = map_stacks(1);
  int token;

  arbor__ctx_init_thread(&en.native);
  run_entry(stack, &token);
  cr_expect_eq(en.runs, 1);
  cr_expect_eq(en.arg, (void *)&token);
  cr_expect_eq(en.sp % 16, ENTRY_SP_MOD16, "sp at entry is %#lx",
               (unsigned long)en.sp);
  unmap_stacks(stack, 1);
}

Test(ctx, a_context_runs_on_the_stack_it_was_given, .timeout = 30)
{
  char *stack = map_stacks(1);
  uintptr_t lo = (uintptr_t)stack, hi = lo + STACK_SIZE;

  arbor__ctx_init_thread(&en.native);
  run_entry(stack, NULL);
  cr_expect(en.frame >= lo && en.frame < hi, "frame %#lx outside [%#lx, %#lx)",
            (unsigned long)en.frame, (unsigned long)lo, (unsigned long)hi);
  /* It starts at the top, so the whole stack is usable. */
  cr_expect(en.sp <= hi && en.sp >= hi - 256, "entry sp %#lx, stack top %#lx",
            (unsigned long)en.sp, (unsigned long)hi);
  unmap_stacks(stack, 1);
}

/* The runtime recycles stacks: a context that ended must leave nothing
 * behind that trips the next one (ASan redzones, a stale fake stack). */
Test(ctx, a_stack_can_be_reused_after_its_context_ended, .timeout = 30)
{
  char *stack = map_stacks(1);
  int a, b;

  arbor__ctx_init_thread(&en.native);
  en.runs = 0;
  run_entry(stack, &a);
  cr_expect_eq(en.arg, (void *)&a);
  run_entry(stack, &b);
  cr_expect_eq(en.arg, (void *)&b);
  cr_expect_eq(en.runs, 2);
  unmap_stacks(stack, 1);
}

static void ends_at_once(void *arg)
{
  (void)arg;
  arbor__ctx_started();
  arbor__ctx_jump_final(&en.other, &en.native);
}

Test(ctx, jumping_into_an_ended_context_aborts, .signal = SIGABRT,
     .timeout = 30)
{
  char *stack = map_stacks(1);

  arbor__ctx_init_thread(&en.native);
  arbor__ctx_make(&en.other, stack, STACK_SIZE, ends_at_once, NULL);
  arbor__ctx_jump(&en.native, &en.other);
  arbor__ctx_jump(&en.native, &en.other);
}

#define RR_CONTEXTS 1000
#define RR_ROUNDS 10

static struct {
  struct arbor__ctx native, ctx[RR_CONTEXTS];
  long step, out_of_order;
  int runs[RR_CONTEXTS];
} rr;

/* Context i runs after i - 1 and hands over to i + 1; the last one hands
 * back to the native context, which starts the next round. */
static void rr_member(void *arg)
{
  long i = (long)(intptr_t)arg;
  struct arbor__ctx *next = i + 1 < RR_CONTEXTS ? &rr.ctx[i + 1] : &rr.native;

  arbor__ctx_started();
  for (long r = 0;; r++) {
    rr.out_of_order += rr.step != r * RR_CONTEXTS + i;
    rr.step++;
    rr.runs[i]++;
    if (r == RR_ROUNDS - 1)
      arbor__ctx_jump_final(&rr.ctx[i], next);
    arbor__ctx_jump(&rr.ctx[i], next);
  }
}

Test(ctx, a_thousand_contexts_take_turns_in_order, .timeout = 30)
{
  char *stacks = map_stacks(RR_CONTEXTS);

  arbor__ctx_init_thread(&rr.native);
  for (long i = 0; i < RR_CONTEXTS; i++)
    arbor__ctx_make(&rr.ctx[i], stacks + (size_t)i * STACK_SIZE, STACK_SIZE,
                    rr_member, (void *)(intptr_t)i);
  for (long r = 0; r < RR_ROUNDS; r++) {
    arbor__ctx_jump(&rr.native, &rr.ctx[0]);
    cr_expect_eq(rr.step, (r + 1) * RR_CONTEXTS);
  }
  cr_expect_eq(rr.out_of_order, 0);
  for (int i = 0; i < RR_CONTEXTS; i++) {
    cr_expect_eq(rr.runs[i], RR_ROUNDS, "context %d ran %d times", i,
                 rr.runs[i]);
    arbor__ctx_destroy(&rr.ctx[i]);
  }
  unmap_stacks(stacks, RR_CONTEXTS);
}
