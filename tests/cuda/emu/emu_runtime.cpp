// Host emulator (see README.md): the launcher and stand-ins for the CUDA runtime, cuBLAS and cuDNN
// functions the backend calls. Blocks run one after the other, on the calling thread. A block first
// runs its threads one after the other; if a thread reaches __syncthreads or a warp shuffle (which
// every dsc kernel that uses them does before writing global memory), the block is run again with
// each CUDA thread as a fiber (its own stack; a switch saves and restores the callee-saved
// registers, no system call) and real barriers, and later launches of that kernel go straight to
// fibers. Fibers keep the emulation on one OS thread: a block of 256 threads costs a few hundred
// register switches per barrier, not 256 thread creations fighting over the cores.
// Device memory is host memory filled with 0xff bytes (NaN) on allocation. cublasGemmEx is a naive
// column-major GEMM; cuDNN's convolutions are naive NCHW loops that also check what the backend
// passes (descriptors, FMA math for f32, workspace, alpha = 1, beta = 0).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "emu_cuda.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers switch x86-64 registers (tests/cuda/emu/emu_runtime.cpp)"
#endif

// emu_switch(&save, to): saves the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores its stack pointer in *save and resumes the context whose stack pointer is
// `to` (saved by an earlier emu_switch, or prepared by fiber_prepare below).
extern "C" void emu_switch(void** save, void* to);
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
  subq $16, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");

namespace emu {
thread_local uint3 t_threadIdx, t_blockIdx;
thread_local dim3 t_blockDim, t_gridDim;

namespace {
struct NeedsConcurrency {};

// Dynamic shared memory of one block: exactly the launch's size (so AddressSanitizer reports any
// overrun), 128-byte aligned (wmma wants 32), filled with 0xff bytes (NaN) at every block.
struct Smem {
  unsigned char* p = nullptr;
  Smem() = default;
  Smem(const Smem&) = delete;
  Smem& operator=(const Smem&) = delete;
  ~Smem() { std::free(p); }
  void reset(size_t n) {
    std::free(p);
    p = nullptr;
    void* q = nullptr;
    if (posix_memalign(&q, 128, n ? n : 1) != 0) throw std::bad_alloc();
    p = static_cast<unsigned char*>(q);
    std::memset(p, 0xff, n);
  }
};

// ---- fibers: one per CUDA thread of a block that synchronises ----------------------------------

constexpr size_t kStack = size_t(64) << 10;  // per fiber (a guard page below each)

enum class Wait { None, Block, Warp };

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while switched out
  unsigned char* stack = nullptr;
  uint3 tid{};
  int lane = 0, warp = 0;
  bool done = false;
  Wait wait = Wait::None;
  unsigned long generation = 0;  // of the barrier it waits at
};

struct FiberBlock {
  std::vector<Fiber> fibers;
  void* scheduler = nullptr;  // the scheduler's saved stack pointer
  Smem smem;
  const std::function<void()>* body = nullptr;
  int current = -1;
  std::string error;
  unsigned long block_generation = 0;
  std::vector<unsigned long> warp_generation;
  std::vector<uint64_t> warp_slots;  // [warp][32] for shuffles
#ifdef EMU_ASAN
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
#endif
};

// Stacks for up to 1024 fibers, mapped once (with a guard page below each) and reused.
unsigned char* fiber_stack(int i) {
  static unsigned char* base = nullptr;
  static const size_t page = size_t(sysconf(_SC_PAGESIZE));
  static const size_t slot = kStack + page;
  if (!base) {
    void* m = mmap(nullptr, slot * 1024, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<unsigned char*>(m);
    for (int k = 0; k < 1024; ++k) mprotect(base + k * slot, page, PROT_NONE);
  }
  return base + size_t(i) * slot + page;
}

thread_local bool t_serial = false;
thread_local FiberBlock* t_fibers = nullptr;
thread_local int t_lane = 0, t_warp = 0;
Smem g_serial_smem;
std::mutex g_atomic_mu;
std::set<std::string> g_synchronising;  // launch sites whose kernels need fibers
long g_launches = 0, g_fiber_blocks = 0;

// Switches from the running fiber back to the scheduler (which picks who runs next).
void yield_to_scheduler() {
  FiberBlock& b = *t_fibers;
  Fiber& f = b.fibers[size_t(b.current)];
#ifdef EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, b.scheduler_stack, b.scheduler_stack_size);
#endif
  emu_switch(&f.sp, b.scheduler);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void fiber_main() {
  FiberBlock& b = *t_fibers;
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack, &b.scheduler_stack_size);
#endif
  Fiber& f = b.fibers[size_t(b.current)];
  try {
    (*b.body)();
  } catch (const std::exception& e) {
    if (b.error.empty()) b.error = e.what();
  }
  f.done = true;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.scheduler_stack, b.scheduler_stack_size);
#endif
  void* dead = nullptr;
  emu_switch(&dead, b.scheduler);  // never resumed: the scheduler does not run a finished fiber
  std::abort();
}

// A fresh context on `stack` whose first switch enters fiber_main: the frame emu_switch pops
// (MXCSR and x87 control word as now, six zero registers), then fiber_main as the return address,
// then a zero return address for fiber_main itself (so it starts with the stack aligned as after a
// call).
void* fiber_prepare(unsigned char* stack) {
  auto* top =
      reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + kStack) & ~uintptr_t(15));
  uint64_t* sp = top;
  *--sp = 0;                                        // fiber_main's return address
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);  // popped by emu_switch's ret
  for (int i = 0; i < 6; ++i) *--sp = 0;            // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  sp -= 2;  // 16 bytes: MXCSR at +0, control word at +4
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<unsigned char*>(sp) + 4, &fpucw, 2);
  return sp;
}

// Waits until every unfinished thread of the block (kind Block) or of its warp (kind Warp) has
// arrived; threads that have returned count as arrived (as the old barrier's arrive_and_drop).
void fiber_barrier(Wait kind) {
  FiberBlock& b = *t_fibers;
  Fiber& f = b.fibers[size_t(b.current)];
  f.wait = kind;
  f.generation = kind == Wait::Block ? b.block_generation : b.warp_generation[size_t(f.warp)];
  while (f.wait != Wait::None) yield_to_scheduler();
}

// Releases the barriers every unfinished participant has reached; false when nothing can run.
bool release_barriers(FiberBlock& b) {
  bool all_block = true, any_live = false;
  std::vector<int> warp_live(b.warp_generation.size(), 0),
      warp_waiting(b.warp_generation.size(), 0);
  for (const Fiber& f : b.fibers) {
    if (f.done) continue;
    any_live = true;
    if (f.wait != Wait::Block) all_block = false;
    ++warp_live[size_t(f.warp)];
    if (f.wait == Wait::Warp) ++warp_waiting[size_t(f.warp)];
  }
  if (!any_live) return false;
  bool released = false;
  if (all_block) {
    ++b.block_generation;
    for (Fiber& f : b.fibers)
      if (!f.done) f.wait = Wait::None;
    released = true;
  }
  for (size_t w = 0; w < warp_live.size(); ++w) {
    if (warp_live[w] == 0 || warp_waiting[w] != warp_live[w]) continue;
    ++b.warp_generation[w];
    for (Fiber& f : b.fibers)
      if (!f.done && size_t(f.warp) == w) f.wait = Wait::None;
    released = true;
  }
  return released;
}

void run_fiber_block(FiberBlock& b, const std::function<void()>& body, uint3 bid, dim3 grid,
                     dim3 block, size_t smem, const std::string& where) {
  const int nt = int(block.x * block.y * block.z);
  b.body = &body;
  b.error.clear();
  b.smem.reset(smem);
  b.fibers.assign(size_t(nt), Fiber{});
  b.warp_generation.assign(size_t((nt + 31) / 32), 0);
  b.warp_slots.assign(size_t((nt + 31) / 32) * 32, 0);
  for (int i = 0; i < nt; ++i) {
    Fiber& f = b.fibers[size_t(i)];
    f.tid = uint3{unsigned(i % block.x), unsigned(i / block.x % block.y),
                  unsigned(i / (block.x * block.y))};
    f.lane = i % 32;
    f.warp = i / 32;
    f.stack = fiber_stack(i);
#ifdef EMU_ASAN
    // Frames of this stack's previous fiber that never returned (fiber_main's, or a block left
    // at a barrier) may still be poisoned.
    __asan_unpoison_memory_region(f.stack, kStack);
#endif
    f.sp = fiber_prepare(f.stack);
  }
  t_fibers = &b;
  t_blockIdx = bid;
  t_gridDim = grid;
  t_blockDim = block;
  for (;;) {
    bool ran = false;
    for (int i = 0; i < nt; ++i) {
      Fiber& f = b.fibers[size_t(i)];
      if (f.done || f.wait != Wait::None) continue;
      b.current = i;
      t_threadIdx = f.tid;
      t_lane = f.lane;
      t_warp = f.warp;
#ifdef EMU_ASAN
      void* fake = nullptr;
      __sanitizer_start_switch_fiber(&fake, f.stack, kStack);
#endif
      emu_switch(&b.scheduler, f.sp);
#ifdef EMU_ASAN
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
      ran = true;
    }
    if (!ran && !release_barriers(b)) break;
  }
  t_fibers = nullptr;
  for (const Fiber& f : b.fibers)
    if (!f.done)
      throw std::runtime_error("emu: kernel launched at " + where +
                               ": threads wait at a barrier others never reach");
  if (!b.error.empty())
    throw std::runtime_error("emu: kernel launched at " + where + ": " + b.error);
}
}  // namespace

void syncthreads() {
  if (t_serial) throw NeedsConcurrency{};
  fiber_barrier(Wait::Block);
}
uint64_t exchange(uint64_t bits, int src) {
  if (t_serial) throw NeedsConcurrency{};
  FiberBlock& b = *t_fibers;
  uint64_t* slot = &b.warp_slots[size_t(t_warp) * 32];
  slot[t_lane] = bits;
  fiber_barrier(Wait::Warp);
  const uint64_t r = (src >= 0 && src < 32) ? slot[src] : bits;
  fiber_barrier(Wait::Warp);
  return r;
}
int lane() { return t_lane; }
unsigned char* dynamic_smem() { return t_serial ? g_serial_smem.p : t_fibers->smem.p; }
int atomic_add(int* p, int v) {
  std::lock_guard<std::mutex> l(g_atomic_mu);
  const int old = *p;
  *p = old + v;
  return old;
}
void wmma_check(const void* p, unsigned ldm, size_t elem_bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    throw std::runtime_error(std::string("wmma::") + what + ": pointer not 32-byte aligned");
  if ((size_t(ldm) * elem_bytes) % 16 != 0)
    throw std::runtime_error(std::string("wmma::") + what + ": ldm not a multiple of 16 bytes");
}

namespace {
std::vector<std::function<void()>>* g_recording = nullptr;
bool g_capture_invalid = false;
}  // namespace
bool recording() { return g_recording != nullptr; }
void record(std::function<void()> op) { g_recording->push_back(std::move(op)); }

// Runs op now, or stores it when a capture is recording.
template <class F>
void run_or_record(F op) {
  if (recording()) {
    record(std::move(op));
  } else {
    op();
  }
}

void run_grid(const std::string& where, dim3 grid, dim3 block, size_t smem,
              const std::function<void()>& body) {
  ++g_launches;
  const int nt = int(block.x * block.y * block.z);
  if (nt <= 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535)
    throw std::runtime_error("emu: bad launch at " + where);
  if (smem > 48 * 1024)
    throw std::runtime_error("emu: too much shared memory for the launch at " + where);
  static FiberBlock fibers;
  bool needs_fibers = g_synchronising.count(where) != 0;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        const uint3 bid{bx, by, bz};
        if (!needs_fibers) {
          g_serial_smem.reset(smem);
          try {
            t_serial = true;
            t_blockIdx = bid;
            t_gridDim = grid;
            t_blockDim = block;
            for (int i = 0; i < nt; ++i) {
              t_threadIdx = uint3{unsigned(i % block.x), unsigned(i / block.x % block.y),
                                  unsigned(i / (block.x * block.y))};
              t_lane = i % 32;
              body();
            }
            t_serial = false;
            continue;
          } catch (NeedsConcurrency&) {
            t_serial = false;
            needs_fibers = true;
            g_synchronising.insert(where);
          } catch (...) {
            t_serial = false;
            throw;
          }
        }
        ++g_fiber_blocks;
        run_fiber_block(fibers, body, bid, grid, block, smem, where);
      }
}
}  // namespace emu

// ---- CUDA runtime
// --------------------------------------------------------------------------------
extern "C" {
cudaError_t cudaGetDeviceCount(int* c) {
  *c = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, const void*) {
  std::memset(a, 0, sizeof *a);
  return cudaSuccess;
}
cudaError_t cudaFuncGetName(const char** name, const void*) {
  *name = "emulated_kernel";
  return cudaSuccess;
}
const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "emulated error";
}
const char* cudaGetErrorName(cudaError_t e) {
  return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmu";
}
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static int dummy[2];
  *s = reinterpret_cast<cudaStream_t>(&dummy[0]);
  return cudaSuccess;
}
// Waiting for the device during a capture is illegal and invalidates it, as on a GPU.
static cudaError_t emu_sync() {
  if (emu::recording()) {
    emu::g_capture_invalid = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu_sync(); }
cudaError_t cudaDeviceSynchronize() { return emu_sync(); }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 4;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n ? n : 1);
  std::memset(*p, 0xff, n);  // garbage (NaN for floats)
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t n) {
  *p = std::malloc(n);
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  emu::run_or_record([=] { std::memmove(d, s, n); });
  return cudaSuccess;
}
// Events: every call runs to completion when made (or when its recorded graph is replayed), so
// waiting and synchronising are no-ops; recording one notes the host clock, for
// cudaEventElapsedTime.
struct EmuEvent {
  double seconds = -1;  // when last recorded; -1: never
};
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = reinterpret_cast<cudaEvent_t>(new EmuEvent);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<EmuEvent*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  EmuEvent* ev = reinterpret_cast<EmuEvent*>(e);
  emu::run_or_record([ev] {
    ev->seconds = std::chrono::duration<double>(
                      std::chrono::steady_clock::now().time_since_epoch()).count();
  });
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t from, cudaEvent_t to) {
  const EmuEvent* a = reinterpret_cast<EmuEvent*>(from);
  const EmuEvent* b = reinterpret_cast<EmuEvent*>(to);
  if (a->seconds < 0 || b->seconds < 0) return cudaErrorInvalidResourceHandle;
  *ms = float(1e3 * (b->seconds - a->seconds));
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return emu_sync(); }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  emu::run_or_record([=] { std::memset(d, v, n); });
  return cudaSuccess;
}
// Graphs: a recording is the list of stored operations; an executable graph is a copy of it.
struct EmuGraph {
  std::vector<std::function<void()>> ops;
};
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode*) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  if (emu::recording()) return cudaErrorIllegalState;
  emu::g_recording = new std::vector<std::function<void()>>;
  emu::g_capture_invalid = false;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
  if (!emu::recording()) return cudaErrorIllegalState;
  auto* ops = emu::g_recording;
  emu::g_recording = nullptr;
  if (emu::g_capture_invalid) {
    delete ops;
    *g = nullptr;
    return cudaErrorStreamCaptureInvalidated;
  }
  *g = reinterpret_cast<cudaGraph_t>(new EmuGraph{std::move(*ops)});
  delete ops;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  *e = reinterpret_cast<cudaGraphExec_t>(new EmuGraph(*reinterpret_cast<EmuGraph*>(g)));
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
  if (emu::recording()) return cudaErrorStreamCaptureUnsupported;
  for (auto& op : reinterpret_cast<EmuGraph*>(e)->ops) op();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete reinterpret_cast<EmuGraph*>(e);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete reinterpret_cast<EmuGraph*>(g);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *f = size_t(8) << 30;
  *t = size_t(16) << 30;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties_v2(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "Emulated GPU");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 4;
  p->totalGlobalMem = size_t(16) << 30;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  return cudaGetDeviceProperties_v2(p, d);
}
}

// ---- cuBLAS
// ---------------------------------------------------------------------------------------
namespace {
double ld(const void* p, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F:
      return static_cast<const float*>(p)[i];
    case CUDA_R_64F:
      return static_cast<const double*>(p)[i];
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      std::abort();
  }
}
void st(void* p, cudaDataType_t t, size_t i, double v) {
  switch (t) {
    case CUDA_R_32F:
      static_cast<float*>(p)[i] = float(v);
      break;
    case CUDA_R_64F:
      static_cast<double*>(p)[i] = v;
      break;
    case CUDA_R_16F:
      static_cast<__half*>(p)[i] = __float2half_rn(float(v));
      break;
    default:
      std::abort();
  }
}
int g_handle;
}  // namespace
extern "C" {
cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  *h = reinterpret_cast<cublasHandle_t>(&g_handle);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void* w, size_t n) {
  return w && n ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t m) {
  return m == CUBLAS_DEFAULT_MATH ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_EMU"; }
const char* cublasGetStatusString(cublasStatus_t) { return "emulated cublas error"; }
cublasStatus_t cublasGetProperty(libraryPropertyType t, int* v) {
  *v = t == MAJOR_VERSION ? 13 : t == MINOR_VERSION ? 1 : 0;
  return CUBLAS_STATUS_SUCCESS;
}
// Column-major C = alpha op(A) op(B) + beta C in double, with the argument checks cuBLAS makes. A
// and B share a type; C has it too, except f16 inputs with f32 output (f32 compute), as cuBLAS
// allows.
static cublasStatus_t emu_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                               const void* alpha, const void* A, cudaDataType_t at, int lda,
                               const void* B, cudaDataType_t bt, int ldb, const void* beta, void* C,
                               cudaDataType_t ct, int ldc, cublasComputeType_t comp,
                               bool run = true) {
  if (at != bt || (at != ct && !(at == CUDA_R_16F && ct == CUDA_R_32F)))
    return CUBLAS_STATUS_INVALID_VALUE;
  const bool f64 = comp == CUBLAS_COMPUTE_64F;
  if (f64 != (at == CUDA_R_64F) || (!f64 && comp != CUBLAS_COMPUTE_32F))
    return CUBLAS_STATUS_INVALID_VALUE;
  const double a = f64 ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  const double b = f64 ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) ||
      ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!run) return CUBLAS_STATUS_SUCCESS;
  // op(A) [m, k] and op(B) [k, n] widened to double once, row-major, then plain loops.
  std::vector<double> a_(size_t(m) * k), b_(size_t(k) * n);
  for (int i = 0; i < m; ++i)
    for (int l = 0; l < k; ++l)
      a_[size_t(i) * k + l] =
          ta == CUBLAS_OP_N ? ld(A, at, i + size_t(l) * lda) : ld(A, at, l + size_t(i) * lda);
  for (int l = 0; l < k; ++l)
    for (int j = 0; j < n; ++j)
      b_[size_t(l) * n + j] =
          tb == CUBLAS_OP_N ? ld(B, bt, l + size_t(j) * ldb) : ld(B, bt, j + size_t(l) * ldb);
  std::vector<double> acc(n);
  for (int i = 0; i < m; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int l = 0; l < k; ++l) {
      const double av = a_[size_t(i) * k + l];
      const double* brow = &b_[size_t(l) * n];
      for (int j = 0; j < n; ++j) acc[j] += av * brow[j];
    }
    for (int j = 0; j < n; ++j) {
      const double c = b == 0 ? a * acc[j] : a * acc[j] + b * ld(C, ct, i + size_t(j) * ldc);
      st(C, ct, i + size_t(j) * ldc, c);
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}
static size_t emu_type_size(cudaDataType_t t) {
  return t == CUDA_R_16F ? 2 : t == CUDA_R_64F ? 8 : 4;
}

// alpha and beta as stored values (a recorded call must not read the caller's stack later).
struct Scalars {
  unsigned char a[8], b[8];
};
static Scalars scalars(const void* alpha, const void* beta, cublasComputeType_t comp) {
  Scalars v{};
  const size_t n = comp == CUBLAS_COMPUTE_64F ? 8 : 4;
  std::memcpy(v.a, alpha, n);
  std::memcpy(v.b, beta, n);
  return v;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void* alpha, const void* A, cudaDataType_t at,
                            int lda, const void* B, cudaDataType_t bt, int ldb, const void* beta,
                            void* C, cudaDataType_t ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t) {
  if (at != ct) return CUBLAS_STATUS_INVALID_VALUE;  // the backend's plain GEMMs never mix types
  if (!emu::recording())
    return emu_gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, comp);
  const cublasStatus_t r =
      emu_gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, comp, false);
  if (r != CUBLAS_STATUS_SUCCESS) return r;
  const Scalars v = scalars(alpha, beta, comp);
  emu::record(
      [=] { emu_gemm(ta, tb, m, n, k, v.a, A, at, lda, B, bt, ldb, v.b, C, ct, ldc, comp); });
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType_t at,
                                          int lda, long long sa, const void* B, cudaDataType_t bt,
                                          int ldb, long long sb, const void* beta, void* C,
                                          cudaDataType_t ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t comp, cublasGemmAlgo_t) {
  if (batch < 0 || sa < 0 || sb < 0 || sc < 0) return CUBLAS_STATUS_INVALID_VALUE;
  auto all = [=](const void* al, const void* be, bool run) {
    for (int i = 0; i < batch; ++i) {
      const cublasStatus_t r =
          emu_gemm(ta, tb, m, n, k, al, static_cast<const char*>(A) + i * sa * emu_type_size(at),
                   at, lda, static_cast<const char*>(B) + i * sb * emu_type_size(bt), bt, ldb, be,
                   static_cast<char*>(C) + i * sc * emu_type_size(ct), ct, ldc, comp, run);
      if (r != CUBLAS_STATUS_SUCCESS) return r;
    }
    return CUBLAS_STATUS_SUCCESS;
  };
  if (!emu::recording()) return all(alpha, beta, true);
  const cublasStatus_t r = all(alpha, beta, false);
  if (r != CUBLAS_STATUS_SUCCESS) return r;
  const Scalars v = scalars(alpha, beta, comp);
  emu::record([=] { all(v.a, v.b, true); });
  return CUBLAS_STATUS_SUCCESS;
}
}

// ---- cuDNN
// ---------------------------------------------------------------------------------------
struct cudnnTensorStruct {
  int n, c, h, w;
  cudnnDataType_t dt;
  bool set = false;
};
struct cudnnFilterStruct {
  int k, c, r, s;
  cudnnDataType_t dt;
  bool set = false;
};
struct cudnnConvolutionStruct {
  int pad_h, pad_w, u, v, groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  cudnnDataType_t comp;
  bool set = false;
};
namespace {
int g_cudnn;
cudaDataType_t cuda_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_HALF ? CUDA_R_16F : t == CUDNN_DATA_DOUBLE ? CUDA_R_64F : CUDA_R_32F;
}
constexpr size_t kAlgoMem = 1024;
bool g_fail = false;
#define EMU_REQUIRE(c)                                                                     \
  do {                                                                                     \
    if (!(c)) {                                                                            \
      std::fprintf(stderr, "emu cudnn: requirement failed: %s (line %d)\n", #c, __LINE__); \
      g_fail = true;                                                                       \
      return CUDNN_STATUS_BAD_PARAM;                                                       \
    }                                                                                      \
  } while (0)
// The candidates every search returns, fastest first, shaped to catch a backend that takes the
// first successful entry regardless of what it promised:
//   algo 0: non-deterministic (atomics), the descriptor's math type;
//   algo 2: deterministic, tensor-op math (TF32 for f32 data: an f32 run must not take it);
//   algo 1: deterministic, reported with the default math type;
//   algo 3: not supported.
// Each entry's `memory` understates what the run needs: the workspace an algorithm needs is
// algo_workspace(algo), which cudnnGet*WorkspaceSize reports and the runs demand.
size_t algo_workspace(int algo) { return kAlgoMem * size_t(algo + 2); }
template <class Perf>
void fake_perf(Perf* perf, int* n, cudnnMathType_t math) {
  *n = 4;
  std::memset(perf, 0, 4 * sizeof(Perf));
  const int algos[4] = {0, 2, 1, 3};
  for (int i = 0; i < 4; ++i) {
    perf[i].algo = decltype(perf[i].algo)(algos[i]);
    perf[i].status = algos[i] == 3 ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
    perf[i].memory = kAlgoMem;
    perf[i].time = 0.1f * float(i + 1);
    perf[i].determinism = algos[i] == 0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
    perf[i].mathType = algos[i] == 2   ? CUDNN_TENSOR_OP_MATH
                       : algos[i] == 1 ? CUDNN_DEFAULT_MATH
                                       : math;
  }
}
// A search given no workspace (or too little for any entry's reported need): every candidate of
// this emulation needs one, so each fails to allocate, as cuDNN reports it.
template <class Perf>
void no_workspace(Perf* perf, const void* ws, size_t ws_size) {
  if (ws != nullptr && ws_size >= kAlgoMem) return;
  for (int i = 0; i < 4; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) perf[i].status = CUDNN_STATUS_ALLOC_FAILED;
}
cudnnStatus_t workspace_size(int algo, size_t* bytes) {
  if (algo < 0 || algo > 2) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = algo_workspace(algo);
  return CUDNN_STATUS_SUCCESS;
}
// What cuDNN's convolution calls are checked for (see the file comment).
cudnnStatus_t check_only(int algo, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                         cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd,
                         const void* alpha, const void* beta, void* ws, size_t ws_size) {
  EMU_REQUIRE(xd->set && wd->set && cd->set && yd->set);
  EMU_REQUIRE(xd->dt == wd->dt && xd->dt == yd->dt);
  EMU_REQUIRE(cd->comp == CUDNN_DATA_FLOAT);
  EMU_REQUIRE(algo >= 0 && algo <= 2);
  EMU_REQUIRE(xd->dt == CUDNN_DATA_HALF || cd->math == CUDNN_FMA_MATH);
  EMU_REQUIRE(ws_size >= algo_workspace(algo) && ws != nullptr);
  EMU_REQUIRE(*static_cast<const float*>(alpha) == 1.0f &&
              *static_cast<const float*>(beta) == 0.0f);
  const int G = cd->groups, N = xd->n, C = xd->c, H = xd->h, W = xd->w, K = wd->k, R = wd->r,
            S = wd->s;
  const int P = yd->h, Q = yd->w;
  EMU_REQUIRE(yd->n == N && yd->c == K && wd->c * G == C && K % G == 0);
  EMU_REQUIRE(P == (H + 2 * cd->pad_h - R) / cd->u + 1 && Q == (W + 2 * cd->pad_w - S) / cd->v + 1);
  return CUDNN_STATUS_SUCCESS;
}
// Naive grouped NCHW cross-correlation; which = 0 fwd, 1 bwd data, 2 bwd filter.
cudnnStatus_t naive_run(int which, cudnnTensorDescriptor_t xd, const void* x,
                        cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t cd,
                        cudnnTensorDescriptor_t yd, const void* y, void* out) {
  const int G = cd->groups, N = xd->n, C = xd->c, H = xd->h, W = xd->w, K = wd->k, R = wd->r,
            S = wd->s;
  const int P = yd->h, Q = yd->w;
  const cudaDataType_t t = cuda_type(xd->dt);
  const int cpg = C / G, kpg = K / G;
  std::vector<double> acc(which == 0   ? size_t(N) * K * P * Q
                          : which == 1 ? size_t(N) * C * H * W
                                       : size_t(K) * cpg * R * S,
                          0.0);
  // The inputs widened to double once (not once per product).
  auto widen = [&](const void* p, size_t count) {
    std::vector<double> v(p ? count : 0);
    for (size_t i = 0; i < v.size(); ++i) v[i] = ld(p, t, i);
    return v;
  };
  const std::vector<double> xv = widen(x, size_t(N) * C * H * W),
                            wv = widen(w, size_t(K) * cpg * R * S),
                            yv = widen(y, size_t(N) * K * P * Q);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      const int g = k / kpg;
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q) {
          const size_t yi = ((size_t(n) * K + k) * P + p) * Q + q;
          for (int ci = 0; ci < cpg; ++ci)
            for (int r = 0; r < R; ++r)
              for (int s = 0; s < S; ++s) {
                const int h = p * cd->u - cd->pad_h + r, ww = q * cd->v - cd->pad_w + s;
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                const size_t xi = ((size_t(n) * C + g * cpg + ci) * H + h) * W + ww;
                const size_t wi = ((size_t(k) * cpg + ci) * R + r) * S + s;
                if (which == 0)
                  acc[yi] += xv[xi] * wv[wi];
                else if (which == 1)
                  acc[xi] += yv[yi] * wv[wi];
                else
                  acc[wi] += yv[yi] * xv[xi];
              }
        }
    }
  for (size_t i = 0; i < acc.size(); ++i) st(out, t, i, acc[i]);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t naive(int which, int algo, cudnnTensorDescriptor_t xd, const void* x,
                    cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t cd,
                    cudnnTensorDescriptor_t yd, const void* y, void* out, const void* alpha,
                    const void* beta, void* ws, size_t ws_size) {
  const cudnnStatus_t r = check_only(algo, xd, wd, cd, yd, alpha, beta, ws, ws_size);
  if (r != CUDNN_STATUS_SUCCESS) return r;
  if (!emu::recording()) return naive_run(which, xd, x, wd, w, cd, yd, y, out);
  // During a capture: computed at replay, from copies of the descriptors.
  emu::record([=, xs = *xd, fs = *wd, cs = *cd, ys = *yd]() mutable {
    naive_run(which, &xs, x, &fs, w, &cs, &ys, y, out);
  });
  return CUDNN_STATUS_SUCCESS;
}
}  // namespace
extern "C" {
cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  *h = reinterpret_cast<cudnnHandle_t>(&g_cudnn);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
const char* cudnnGetErrorString(cudnnStatus_t) { return "emulated cudnn error"; }
size_t cudnnGetVersion() { return CUDNN_VERSION; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = new cudnnTensorStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f,
                                         cudnnDataType_t t, int n, int c, int h, int w) {
  EMU_REQUIRE(f == CUDNN_TENSOR_NCHW);
  *d = {n, c, h, w, t, true};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new cudnnFilterStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t,
                                         cudnnTensorFormat_t f, int k, int c, int r, int s) {
  EMU_REQUIRE(f == CUDNN_TENSOR_NCHW);
  *d = {k, c, r, s, t, true};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new cudnnConvolutionStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u,
                                              int v, int dh, int dw, cudnnConvolutionMode_t m,
                                              cudnnDataType_t comp) {
  EMU_REQUIRE(dh == 1 && dw == 1 && m == CUDNN_CROSS_CORRELATION);
  d->pad_h = ph;
  d->pad_w = pw;
  d->u = u;
  d->v = v;
  d->comp = comp;
  d->set = true;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g) {
  d->groups = g;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t d,
                                                    cudnnTensorDescriptor_t x,
                                                    cudnnFilterDescriptor_t w, int* n, int* c,
                                                    int* h, int* ww) {
  *n = x->n;
  *c = w->k;
  *h = (x->h + 2 * d->pad_h - w->r) / d->u + 1;
  *ww = (x->w + 2 * d->pad_w - w->s) / d->v + 1;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t,
                                                     cudnnFilterDescriptor_t,
                                                     cudnnConvolutionDescriptor_t cd,
                                                     cudnnTensorDescriptor_t, int req,
                                                     int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  EMU_REQUIRE(req >= 4);
  fake_perf(perf, returned, cd->math);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t,
                                                          cudnnTensorDescriptor_t,
                                                          cudnnConvolutionDescriptor_t cd,
                                                          cudnnTensorDescriptor_t, int req,
                                                          int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  EMU_REQUIRE(req >= 4);
  fake_perf(perf, returned, cd->math);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t,
    cudnnConvolutionDescriptor_t cd, cudnnFilterDescriptor_t, int req, int* returned,
    cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  EMU_REQUIRE(req >= 4);
  fake_perf(perf, returned, cd->math);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t, cudnnTensorDescriptor_t xd, const void* x, cudnnFilterDescriptor_t wd,
    const void* w, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, void* y, int req,
    int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) {
    emu::g_capture_invalid = true;
    return CUDNN_STATUS_EXECUTION_FAILED;
  }
  EMU_REQUIRE(req >= 4 && x && w && y && xd && wd && yd);
  fake_perf(perf, returned, cd->math);
  no_workspace(perf, ws, ws_size);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t, cudnnFilterDescriptor_t wd, const void* w, cudnnTensorDescriptor_t dyd,
    const void* dy, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t dxd, void* dx, int req,
    int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) {
    emu::g_capture_invalid = true;
    return CUDNN_STATUS_EXECUTION_FAILED;
  }
  EMU_REQUIRE(req >= 4 && w && dy && dx && wd && dyd && dxd);
  fake_perf(perf, returned, cd->math);
  no_workspace(perf, ws, ws_size);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t, cudnnTensorDescriptor_t xd, const void* x, cudnnTensorDescriptor_t dyd,
    const void* dy, cudnnConvolutionDescriptor_t cd, cudnnFilterDescriptor_t dwd, void* dw, int req,
    int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) {
    emu::g_capture_invalid = true;
    return CUDNN_STATUS_EXECUTION_FAILED;
  }
  EMU_REQUIRE(req >= 4 && x && dy && dw && xd && dyd && dwd);
  fake_perf(perf, returned, cd->math);
  no_workspace(perf, ws, ws_size);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnTensorDescriptor_t, cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
  return workspace_size(int(algo), bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnTensorDescriptor_t, cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  return workspace_size(int(algo), bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnFilterDescriptor_t, cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  return workspace_size(int(algo), bytes);
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xd,
                                      const void* x, cudnnFilterDescriptor_t wd, const void* w,
                                      cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_size,
                                      const void* beta, cudnnTensorDescriptor_t yd, void* y) {
  return naive(0, int(algo), xd, x, wd, w, cd, yd, nullptr, y, alpha, beta, ws, ws_size);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void* alpha,
                                           cudnnFilterDescriptor_t wd, const void* w,
                                           cudnnTensorDescriptor_t dyd, const void* dy,
                                           cudnnConvolutionDescriptor_t cd,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* ws,
                                           size_t ws_size, const void* beta,
                                           cudnnTensorDescriptor_t dxd, void* dx) {
  return naive(1, int(algo), dxd, nullptr, wd, w, cd, dyd, dy, dx, alpha, beta, ws, ws_size);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void* alpha,
                                             cudnnTensorDescriptor_t xd, const void* x,
                                             cudnnTensorDescriptor_t dyd, const void* dy,
                                             cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws,
                                             size_t ws_size, const void* beta,
                                             cudnnFilterDescriptor_t dwd, void* dw) {
  return naive(2, int(algo), xd, x, dwd, nullptr, cd, dyd, dy, dw, alpha, beta, ws, ws_size);
}
}
