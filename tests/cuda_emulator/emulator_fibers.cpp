/* The CUDA emulator's kernel execution: the blocks of a grid one after another; within a block,
 * every thread a fiber on a stack of its own, run in turn until it finishes or waits at a
 * barrier (__syncthreads: the whole block; a warp shuffle: its 32 lanes), then released
 * together. A kernel whose first launch reached no barrier later runs its threads as plain
 * calls. A barrier that can never be released (threads of one block at different barriers, a
 * shuffle with a lane that has returned) stops the program naming the kernel and the block.
 *
 * The context switch is x86-64 (System V): it saves the callee-saved registers and swaps stack
 * pointers, cheap enough for a block's hundreds of threads to switch at every barrier. */
#include <sys/mman.h>

#include <cstring>
#include <map>
#include <string>

#include "emulator_internal.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64"
#endif

extern "C" void emu_switch(void **save_sp, void *load_sp);
asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace {

enum fiber_state { READY, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };
enum { MAX_THREADS = 1024, STACK_BYTES = 256 * 1024, PAGE = 4096 };

struct fiber {
  void *sp;
  char *stack; /* mapped once, a guard page below */
  fiber_state state;
};

fiber fibers[MAX_THREADS];
void *scheduler_sp;
int current = -1; /* the running fiber; -1: threads run as plain calls */
int block_threads;
int reached_barrier;
const std::function<void()> *running_body;
const char *running_kernel;
double shuffle_slots[MAX_THREADS];
std::string dynamic_shared_memory;
/* by launch site: the kernel's name as the translator wrote it there, one literal per site */
std::map<const char *, bool> kernels_without_barriers;

void set_thread_index(unsigned linear) {
  threadIdx.x = linear % blockDim.x;
  threadIdx.y = linear / blockDim.x % blockDim.y;
  threadIdx.z = linear / (blockDim.x * blockDim.y);
}

[[noreturn]] void fiber_main() {
  (*running_body)();
  fibers[current].state = DONE;
  emu_switch(&fibers[current].sp, scheduler_sp);
  emu::fatal("a finished fiber was resumed");
}

void start_fiber(int i) {
  fiber &f = fibers[i];
  if (!f.stack) {
    void *map = mmap(nullptr, STACK_BYTES + PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) emu::fatal("no memory for a fiber stack");
    mprotect(map, PAGE, PROT_NONE);
    f.stack = (char *)map + PAGE;
  }
  /* as emu_switch leaves a stack: six saved registers, then the address it returns to; the
   * slot above that is fiber_main's (never used) return address, so fiber_main starts with
   * the stack aligned as after a call */
  void **top = (void **)(f.stack + STACK_BYTES);
  top[-1] = nullptr;
  top[-2] = (void *)fiber_main;
  for (int r = 3; r <= 8; r++) top[-r] = nullptr;
  f.sp = top - 8;
  f.state = READY;
}

void wait_at(fiber_state barrier) {
  reached_barrier = 1;
  if (current < 0)
    emu::fatal("%s reached a barrier on a launch run without fibers (its first launch never "
               "did)",
               running_kernel);
  fibers[current].state = barrier;
  emu_switch(&fibers[current].sp, scheduler_sp);
}

/* releases the warps whose lanes all wait at a shuffle; 1 if any */
int release_warps(int threads) {
  int released = 0;
  for (int first = 0; first < threads; first += 32) {
    const int end = first + 32 < threads ? first + 32 : threads;
    int waiting = 0, other = 0;
    for (int i = first; i < end; i++) {
      waiting += fibers[i].state == AT_WARP_BARRIER;
      other += fibers[i].state != AT_WARP_BARRIER;
    }
    if (!waiting || other) continue;
    for (int i = first; i < end; i++) fibers[i].state = READY;
    released = 1;
  }
  return released;
}

void run_block_with_fibers(int threads) {
  for (int i = 0; i < threads; i++) start_fiber(i);
  for (;;) {
    for (int i = 0; i < threads; i++) {
      if (fibers[i].state != READY) continue;
      current = i;
      set_thread_index((unsigned)i);
      emu_switch(&scheduler_sp, fibers[i].sp);
    }
    current = -1;
    int done = 0, at_block = 0;
    for (int i = 0; i < threads; i++) {
      done += fibers[i].state == DONE;
      at_block += fibers[i].state == AT_BLOCK_BARRIER;
    }
    if (done == threads) return;
    if (release_warps(threads)) continue;
    if (at_block + done == threads) {
      for (int i = 0; i < threads; i++)
        if (fibers[i].state == AT_BLOCK_BARRIER) fibers[i].state = READY;
      continue;
    }
    emu::fatal("%s, block (%u, %u, %u): threads wait at barriers that cannot all be reached (%d "
               "at __syncthreads, %d finished, the rest at a warp shuffle with lanes elsewhere)",
               running_kernel, blockIdx.x, blockIdx.y, blockIdx.z, at_block, done);
  }
}

} // namespace

namespace emu {

void run_grid(const config &c, const char *name, const std::function<void()> &body) {
  gridDim = c.grid;
  blockDim = c.block;
  const int threads = (int)(c.block.x * c.block.y * c.block.z);
  running_body = &body;
  running_kernel = name;
  reached_barrier = 0;
  auto known = kernels_without_barriers.find(name);
  const bool plain = known != kernels_without_barriers.end() && known->second;
  block_threads = threads;
  for (unsigned z = 0; z < c.grid.z; z++)
    for (unsigned y = 0; y < c.grid.y; y++)
      for (unsigned x = 0; x < c.grid.x; x++) {
        blockIdx = dim3(x, y, z);
        /* a block's shared memory starts as garbage: NaN doubles and floats */
        dynamic_shared_memory.assign(c.shared_bytes, (char)0xff);
        if (plain) {
          for (int i = 0; i < threads; i++) {
            set_thread_index((unsigned)i);
            body();
          }
        } else {
          run_block_with_fibers(threads);
        }
      }
  if (!plain) kernels_without_barriers[name] = !reached_barrier;
  running_body = nullptr;
}

void *dynamic_shared() {
  return dynamic_shared_memory.empty() ? nullptr : &dynamic_shared_memory[0];
}

void block_barrier() {
  wait_at(AT_BLOCK_BARRIER);
}

double shuffle_down(unsigned mask, double value, int delta) {
  if (mask != 0xffffffffu)
    fatal("%s: a shuffle with lanes masked out is not emulated", running_kernel);
  const int me = current, lane = me & 31;
  const int warp_end = ((me >> 5) + 1) * 32 < block_threads ? ((me >> 5) + 1) * 32 : block_threads;
  shuffle_slots[me] = value;
  wait_at(AT_WARP_BARRIER);
  const int source = me + delta;
  const double result = lane + delta < 32 && source < warp_end ? shuffle_slots[source] : value;
  wait_at(AT_WARP_BARRIER); /* every lane has read before any writes its next value */
  return result;
}

} // namespace emu
