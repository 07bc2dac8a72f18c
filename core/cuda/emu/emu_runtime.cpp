// Host emulator (see README.md): the launcher and stand-ins for the CUDA runtime, cuBLAS and cuDNN
// functions the backend calls. Blocks run one after the other; a block first runs its threads one
// after the other, and if a thread reaches __syncthreads or a warp shuffle (which all dsc kernels do
// before writing global memory) the block is re-run with one std::thread per CUDA thread and real
// barriers. Device memory is host memory filled with 0xff bytes (NaN) on allocation. cublasGemmEx
// is a naive column-major GEMM; cuDNN's convolutions are naive NCHW loops that also check what the
// backend passes (descriptors, FMA math for f32, workspace, alpha = 1, beta = 0).
#include "emu_cuda.h"

#include <barrier>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace emu {
thread_local uint3 t_threadIdx, t_blockIdx;
thread_local dim3 t_blockDim, t_gridDim;

namespace {
struct NeedsConcurrency {};
struct Warp {
  explicit Warp(int n) : bar(n) {}
  std::barrier<> bar;
  uint64_t slot[32] = {};
};
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
struct Block {
  explicit Block(int n) : bar(n) {}
  std::barrier<> bar;
  std::vector<std::unique_ptr<Warp>> warps;
  Smem smem;
};
thread_local bool t_serial = false;
thread_local Block* t_block = nullptr;
thread_local int t_lane = 0, t_warp = 0;
Smem g_serial_smem;
std::mutex g_atomic_mu;
long g_launches = 0, g_concurrent = 0;
}  // namespace

void syncthreads() {
  if (t_serial) throw NeedsConcurrency{};
  t_block->bar.arrive_and_wait();
}
uint64_t exchange(uint64_t bits, int src) {
  if (t_serial) throw NeedsConcurrency{};
  Warp& w = *t_block->warps[t_warp];
  w.slot[t_lane] = bits;
  w.bar.arrive_and_wait();
  const uint64_t r = (src >= 0 && src < 32) ? w.slot[src] : bits;
  w.bar.arrive_and_wait();
  return r;
}
int lane() { return t_lane; }
unsigned char* dynamic_smem() { return t_serial ? g_serial_smem.p : t_block->smem.p; }
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
template <class F> void run_or_record(F op) {
  if (recording()) {
    record(std::move(op));
  } else {
    op();
  }
}

void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  ++g_launches;
  const int nt = int(block.x * block.y * block.z);
  if (nt <= 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error(std::string("emu: bad launch of ") + name);
  if (smem > 48 * 1024) throw std::runtime_error(std::string("emu: too much smem for ") + name);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        bool serial_ok = true;
        g_serial_smem.reset(smem);
        try {
          t_serial = true;
          for (int i = 0; i < nt; ++i) {
            t_blockIdx = uint3{bx, by, bz};
            t_gridDim = grid;
            t_blockDim = block;
            t_threadIdx = uint3{unsigned(i % block.x), unsigned(i / block.x % block.y), unsigned(i / (block.x * block.y))};
            t_lane = i % 32;
            body();
          }
        } catch (NeedsConcurrency&) {
          serial_ok = false;
        }
        t_serial = false;
        if (serial_ok) continue;
        ++g_concurrent;
        Block b(nt);
        b.smem.reset(smem);
        for (int w = 0; w * 32 < nt; ++w) b.warps.push_back(std::make_unique<Warp>(std::min(32, nt - w * 32)));
        std::vector<std::thread> threads;
        std::mutex err_mu;
        std::string err;
        for (int i = 0; i < nt; ++i)
          threads.emplace_back([&, i] {
            t_serial = false;
            t_block = &b;
            t_blockIdx = uint3{bx, by, bz};
            t_gridDim = grid;
            t_blockDim = block;
            t_threadIdx = uint3{unsigned(i % block.x), unsigned(i / block.x % block.y), unsigned(i / (block.x * block.y))};
            t_lane = i % 32;
            t_warp = i / 32;
            try {
              body();
            } catch (std::exception& e) {
              std::lock_guard<std::mutex> l(err_mu);
              err = e.what();
            }
            b.warps[t_warp]->bar.arrive_and_drop();
            b.bar.arrive_and_drop();
          });
        for (auto& t : threads) t.join();
        if (!err.empty()) throw std::runtime_error(std::string("emu: ") + name + ": " + err);
      }
}
}  // namespace emu

// ---- CUDA runtime --------------------------------------------------------------------------------
extern "C" {
cudaError_t cudaGetDeviceCount(int* c) { *c = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, const void*) { std::memset(a, 0, sizeof *a); return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmu"; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { static int dummy[2]; *s = reinterpret_cast<cudaStream_t>(&dummy[0]); return cudaSuccess; }
// Waiting for the device during a capture is illegal and invalidates it, as on a GPU.
static cudaError_t emu_sync() {
  if (emu::recording()) { emu::g_capture_invalid = true; return cudaErrorStreamCaptureUnsupported; }
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu_sync(); }
cudaError_t cudaDeviceSynchronize() { return emu_sync(); }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) { *v = 4; return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n ? n : 1);
  std::memset(*p, 0xff, n);  // garbage (NaN for floats)
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void** p, size_t n) { *p = std::malloc(n); return cudaSuccess; }
cudaError_t cudaFreeHost(void* p) { std::free(p); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  emu::run_or_record([=] { std::memmove(d, s, n); });
  return cudaSuccess;
}
// Events: every call runs to completion when made, so recording, waiting and synchronising are no-ops.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { static int dummy; *e = reinterpret_cast<cudaEvent_t>(&dummy); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return emu_sync(); }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  emu::run_or_record([=] { std::memset(d, v, n); });
  return cudaSuccess;
}
// Graphs: a recording is the list of stored operations; an executable graph is a copy of it.
struct EmuGraph { std::vector<std::function<void()>> ops; };
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
  if (emu::g_capture_invalid) { delete ops; *g = nullptr; return cudaErrorStreamCaptureInvalidated; }
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
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete reinterpret_cast<EmuGraph*>(e); return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete reinterpret_cast<EmuGraph*>(g); return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = size_t(8) << 30; *t = size_t(16) << 30; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties_v2(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "Emulated GPU");
  p->major = 9; p->minor = 0; p->multiProcessorCount = 4; p->totalGlobalMem = size_t(16) << 30;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) { return cudaGetDeviceProperties_v2(p, d); }
}

// ---- cuBLAS ---------------------------------------------------------------------------------------
namespace {
double ld(const void* p, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_64F: return static_cast<const double*>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    default: std::abort();
  }
}
void st(void* p, cudaDataType_t t, size_t i, double v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = float(v); break;
    case CUDA_R_64F: static_cast<double*>(p)[i] = v; break;
    case CUDA_R_16F: static_cast<__half*>(p)[i] = __float2half_rn(float(v)); break;
    default: std::abort();
  }
}
int g_handle;
}  // namespace
extern "C" {
cublasStatus_t cublasCreate_v2(cublasHandle_t* h) { *h = reinterpret_cast<cublasHandle_t>(&g_handle); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void* w, size_t n) { return w && n ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t m) { return m == CUBLAS_DEFAULT_MATH ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE; }
const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_EMU"; }
const char* cublasGetStatusString(cublasStatus_t) { return "emulated cublas error"; }
cublasStatus_t cublasGetProperty(libraryPropertyType t, int* v) { *v = t == MAJOR_VERSION ? 13 : t == MINOR_VERSION ? 1 : 0; return CUBLAS_STATUS_SUCCESS; }
// Column-major C = alpha op(A) op(B) + beta C in double, with the argument checks cuBLAS makes. A and
// B share a type; C has it too, except f16 inputs with f32 output (f32 compute), as cuBLAS allows.
static cublasStatus_t emu_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                               const void* alpha, const void* A, cudaDataType_t at, int lda, const void* B,
                               cudaDataType_t bt, int ldb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                               cublasComputeType_t comp, bool run = true) {
  if (at != bt || (at != ct && !(at == CUDA_R_16F && ct == CUDA_R_32F))) return CUBLAS_STATUS_INVALID_VALUE;
  const bool f64 = comp == CUBLAS_COMPUTE_64F;
  if (f64 != (at == CUDA_R_64F) || (!f64 && comp != CUBLAS_COMPUTE_32F)) return CUBLAS_STATUS_INVALID_VALUE;
  const double a = f64 ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  const double b = f64 ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!run) return CUBLAS_STATUS_SUCCESS;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double acc = 0;
      for (int l = 0; l < k; ++l) {
        const double av = ta == CUBLAS_OP_N ? ld(A, at, i + size_t(l) * lda) : ld(A, at, l + size_t(i) * lda);
        const double bv = tb == CUBLAS_OP_N ? ld(B, bt, l + size_t(j) * ldb) : ld(B, bt, j + size_t(l) * ldb);
        acc += av * bv;
      }
      const double c = b == 0 ? a * acc : a * acc + b * ld(C, ct, i + size_t(j) * ldc);
      st(C, ct, i + size_t(j) * ldc, c);
    }
  return CUBLAS_STATUS_SUCCESS;
}
static size_t emu_type_size(cudaDataType_t t) { return t == CUDA_R_16F ? 2 : t == CUDA_R_64F ? 8 : 4; }

// alpha and beta as stored values (a recorded call must not read the caller's stack later).
struct Scalars { unsigned char a[8], b[8]; };
static Scalars scalars(const void* alpha, const void* beta, cublasComputeType_t comp) {
  Scalars v{};
  const size_t n = comp == CUBLAS_COMPUTE_64F ? 8 : 4;
  std::memcpy(v.a, alpha, n);
  std::memcpy(v.b, beta, n);
  return v;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t at, int lda, const void* B,
                            cudaDataType_t bt, int ldb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t comp, cublasGemmAlgo_t) {
  if (at != ct) return CUBLAS_STATUS_INVALID_VALUE;  // the backend's plain GEMMs never mix types
  if (!emu::recording()) return emu_gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, comp);
  const cublasStatus_t r = emu_gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, comp, false);
  if (r != CUBLAS_STATUS_SUCCESS) return r;
  const Scalars v = scalars(alpha, beta, comp);
  emu::record([=] { emu_gemm(ta, tb, m, n, k, v.a, A, at, lda, B, bt, ldb, v.b, C, ct, ldc, comp); });
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                          int n, int k, const void* alpha, const void* A, cudaDataType_t at,
                                          int lda, long long sa, const void* B, cudaDataType_t bt, int ldb,
                                          long long sb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                                          long long sc, int batch, cublasComputeType_t comp, cublasGemmAlgo_t) {
  if (batch < 0 || sa < 0 || sb < 0 || sc < 0) return CUBLAS_STATUS_INVALID_VALUE;
  auto all = [=](const void* al, const void* be, bool run) {
    for (int i = 0; i < batch; ++i) {
      const cublasStatus_t r = emu_gemm(ta, tb, m, n, k, al, static_cast<const char*>(A) + i * sa * emu_type_size(at),
                                        at, lda, static_cast<const char*>(B) + i * sb * emu_type_size(bt), bt, ldb,
                                        be, static_cast<char*>(C) + i * sc * emu_type_size(ct), ct, ldc, comp, run);
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

// ---- cuDNN ---------------------------------------------------------------------------------------
struct cudnnTensorStruct { int n, c, h, w; cudnnDataType_t dt; bool set = false; };
struct cudnnFilterStruct { int k, c, r, s; cudnnDataType_t dt; bool set = false; };
struct cudnnConvolutionStruct { int pad_h, pad_w, u, v, groups = 1; cudnnMathType_t math = CUDNN_DEFAULT_MATH; cudnnDataType_t comp; bool set = false; };
namespace {
int g_cudnn;
cudaDataType_t cuda_type(cudnnDataType_t t) { return t == CUDNN_DATA_HALF ? CUDA_R_16F : t == CUDNN_DATA_DOUBLE ? CUDA_R_64F : CUDA_R_32F; }
constexpr size_t kAlgoMem = 1024;
bool g_fail = false;
#define EMU_REQUIRE(c) do { if (!(c)) { std::fprintf(stderr, "emu cudnn: requirement failed: %s (line %d)\n", #c, __LINE__); g_fail = true; return CUDNN_STATUS_BAD_PARAM; } } while (0)
template <class Perf> void fake_perf(Perf* perf, int* n, cudnnMathType_t math) {
  *n = 2;
  std::memset(perf, 0, 2 * sizeof(Perf));
  perf[0].status = CUDNN_STATUS_NOT_SUPPORTED;
  perf[0].memory = 0;
  perf[1].status = CUDNN_STATUS_SUCCESS;
  perf[1].algo = decltype(perf[1].algo)(1);
  perf[1].memory = kAlgoMem;
  perf[1].mathType = math;
}
// What cuDNN's convolution calls are checked for (see the file comment).
cudnnStatus_t check_only(cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                         cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd,
                         const void* alpha, const void* beta, void* ws, size_t ws_size) {
  EMU_REQUIRE(xd->set && wd->set && cd->set && yd->set);
  EMU_REQUIRE(xd->dt == wd->dt && xd->dt == yd->dt);
  EMU_REQUIRE(cd->comp == CUDNN_DATA_FLOAT);
  EMU_REQUIRE(xd->dt == CUDNN_DATA_HALF || cd->math == CUDNN_FMA_MATH);
  EMU_REQUIRE(ws_size >= kAlgoMem && ws != nullptr);
  EMU_REQUIRE(*static_cast<const float*>(alpha) == 1.0f && *static_cast<const float*>(beta) == 0.0f);
  const int G = cd->groups, N = xd->n, C = xd->c, H = xd->h, W = xd->w, K = wd->k, R = wd->r, S = wd->s;
  const int P = yd->h, Q = yd->w;
  EMU_REQUIRE(yd->n == N && yd->c == K && wd->c * G == C && K % G == 0);
  EMU_REQUIRE(P == (H + 2 * cd->pad_h - R) / cd->u + 1 && Q == (W + 2 * cd->pad_w - S) / cd->v + 1);
  return CUDNN_STATUS_SUCCESS;
}
// Naive grouped NCHW cross-correlation; which = 0 fwd, 1 bwd data, 2 bwd filter.
cudnnStatus_t naive_run(int which, cudnnTensorDescriptor_t xd, const void* x, cudnnFilterDescriptor_t wd,
                        const void* w, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, const void* y,
                        void* out) {
  const int G = cd->groups, N = xd->n, C = xd->c, H = xd->h, W = xd->w, K = wd->k, R = wd->r, S = wd->s;
  const int P = yd->h, Q = yd->w;
  const cudaDataType_t t = cuda_type(xd->dt);
  const int cpg = C / G, kpg = K / G;
  std::vector<double> acc(which == 0 ? size_t(N) * K * P * Q : which == 1 ? size_t(N) * C * H * W : size_t(K) * cpg * R * S, 0.0);
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
                if (which == 0) acc[yi] += ld(x, t, xi) * ld(w, t, wi);
                else if (which == 1) acc[xi] += ld(y, t, yi) * ld(w, t, wi);
                else acc[wi] += ld(y, t, yi) * ld(x, t, xi);
              }
        }
    }
  for (size_t i = 0; i < acc.size(); ++i) st(out, t, i, acc[i]);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t naive(int which, cudnnTensorDescriptor_t xd, const void* x, cudnnFilterDescriptor_t wd, const void* w,
                    cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, const void* y, void* out,
                    const void* alpha, const void* beta, void* ws, size_t ws_size) {
  const cudnnStatus_t r = check_only(xd, wd, cd, yd, alpha, beta, ws, ws_size);
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
cudnnStatus_t cudnnCreate(cudnnHandle_t* h) { *h = reinterpret_cast<cudnnHandle_t>(&g_cudnn); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
const char* cudnnGetErrorString(cudnnStatus_t) { return "emulated cudnn error"; }
size_t cudnnGetVersion() { return CUDNN_VERSION; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { *d = new cudnnTensorStruct; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n, int c, int h, int w) {
  EMU_REQUIRE(f == CUDNN_TENSOR_NCHW);
  *d = {n, c, h, w, t, true};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { *d = new cudnnFilterStruct; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k, int c, int r, int s) {
  EMU_REQUIRE(f == CUDNN_TENSOR_NCHW);
  *d = {k, c, r, s, t, true};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) { *d = new cudnnConvolutionStruct; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh, int dw, cudnnConvolutionMode_t m, cudnnDataType_t comp) {
  EMU_REQUIRE(dh == 1 && dw == 1 && m == CUDNN_CROSS_CORRELATION);
  d->pad_h = ph; d->pad_w = pw; d->u = u; d->v = v; d->comp = comp; d->set = true;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g) { d->groups = g; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) { d->math = m; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t d, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, int* n, int* c, int* h, int* ww) {
  *n = x->n; *c = w->k; *h = (x->h + 2 * d->pad_h - w->r) / d->u + 1; *ww = (x->w + 2 * d->pad_w - w->s) / d->v + 1;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t, int req, int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) { EMU_REQUIRE(req >= 2); fake_perf(perf, returned, cd->math); perf[1].memory = 4 * kAlgoMem; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t, int req, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) { EMU_REQUIRE(req >= 2); fake_perf(perf, returned, cd->math); perf[1].memory = 4 * kAlgoMem; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t cd, cudnnFilterDescriptor_t, int req, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) { EMU_REQUIRE(req >= 2); fake_perf(perf, returned, cd->math); perf[1].memory = 4 * kAlgoMem; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t xd, const void* x, cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, void* y, int req, int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) { emu::g_capture_invalid = true; return CUDNN_STATUS_EXECUTION_FAILED; }
  EMU_REQUIRE(req >= 2 && ws_size >= kAlgoMem && ws && x && w && y && xd && wd && yd); fake_perf(perf, returned, cd->math); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t, cudnnFilterDescriptor_t wd, const void* w, cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t dxd, void* dx, int req, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) { emu::g_capture_invalid = true; return CUDNN_STATUS_EXECUTION_FAILED; }
  EMU_REQUIRE(req >= 2 && ws_size >= kAlgoMem && ws && w && dy && dx && wd && dyd && dxd); fake_perf(perf, returned, cd->math); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t xd, const void* x, cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cd, cudnnFilterDescriptor_t dwd, void* dw, int req, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* ws, size_t ws_size) {
  if (emu::recording()) { emu::g_capture_invalid = true; return CUDNN_STATUS_EXECUTION_FAILED; }
  EMU_REQUIRE(req >= 2 && ws_size >= kAlgoMem && ws && x && dy && dw && xd && dyd && dwd); fake_perf(perf, returned, cd->math); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xd, const void* x, cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_size, const void* beta, cudnnTensorDescriptor_t yd, void* y) {
  EMU_REQUIRE(int(algo) == 1);
  return naive(0, xd, x, wd, w, cd, yd, nullptr, y, alpha, beta, ws, ws_size);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void* alpha, cudnnFilterDescriptor_t wd, const void* w, cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo, void* ws, size_t ws_size, const void* beta, cudnnTensorDescriptor_t dxd, void* dx) {
  EMU_REQUIRE(int(algo) == 1);
  return naive(1, dxd, nullptr, wd, w, cd, dyd, dy, dx, alpha, beta, ws, ws_size);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xd, const void* x, cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t ws_size, const void* beta, cudnnFilterDescriptor_t dwd, void* dw) {
  EMU_REQUIRE(int(algo) == 1);
  return naive(2, xd, x, dwd, nullptr, cd, dyd, dy, dw, alpha, beta, ws, ws_size);
}
}
