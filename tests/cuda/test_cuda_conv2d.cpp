// conv2d on CUDA against the CPU table (itself tested against naive loops): forward (with and
// without bias), backward-data and backward-filter (with and without the bias gradient), f32 and
// f16, on odd shapes covering 3x3 / 1x1 / 5x5 / rectangular filters, strides 1 to 3, padding 0 to 3
// and images larger than one 16 x 32 tile. Normal convolutions run through cuDNN, pointwise (1x1)
// ones through each pointwise kernel option (cuBLAS GEMMs, also in f64 and with the weight
// gradient summed in several chunks; cuDNN); depthwise ones through each depthwise option (own
// tiled kernels, naive kernels, cuDNN grouped), and in f64 through the own kernels; cuDNN's
// algorithm choices (deterministic by default, FMA math and its own workspace size in f32, searched
// again when the options change). CUDA outputs are poisoned with NaN first.
// Skipped (doctest "skipped") where no usable GPU is present.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

using namespace dsc;
using namespace dsc::test;

namespace {

ConvShape shape(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                bool depthwise) {
  ConvShape cs;
  cs.n = n;
  cs.c = c;
  cs.h = h;
  cs.w = w;
  cs.k = depthwise ? c : k;
  cs.r = r;
  cs.s = s;
  cs.stride = stride;
  cs.pad = pad;
  cs.groups = depthwise ? c : 1;
  return cs;
}

std::string describe(const ConvShape& s, DType t) {
  return std::string(dtype_name(t)) + " n" + std::to_string(s.n) + " c" + std::to_string(s.c) +
         " " + std::to_string(s.h) + "x" + std::to_string(s.w) + " k" + std::to_string(s.k) + " f" +
         std::to_string(s.r) + "x" + std::to_string(s.s) + " st" + std::to_string(s.stride) +
         " pad" + std::to_string(s.pad) + " g" + std::to_string(s.groups);
}

// All three directions of one shape, CUDA vs CPU.
void compare_conv(const ConvShape& s, DType t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const Shape xs{s.n, s.c, s.h, s.w}, ws{s.k, s.c / s.groups, s.r, s.s}, ys{s.n, s.k, s.p(), s.q()};
  const double rtol = rtol_for(t);
  const std::string what = describe(s, t);
  Tensor x = randn(xs, rng, t), w = randn(ws, rng, t, 0.3), b = randn({s.k}, rng, t);
  Tensor dy = randn(ys, rng, t);
  Tensor xg = on_gpu(x), wg = on_gpu(w), bg = on_gpu(b), dyg = on_gpu(dy);

  for (bool bias : {true, false}) {
    Tensor y_ref = cpu_out(ys, t), y = poisoned(ys, t);
    cpu_table().conv2d_forward(s, x, w, bias ? &b : nullptr, y_ref);
    cuda_table().conv2d_forward(s, xg, wg, bias ? &bg : nullptr, y);
    check_close(y, y_ref, rtol, what + (bias ? " forward+bias" : " forward"));
  }

  Tensor dx_ref = cpu_out(xs, t), dx = poisoned(xs, t);
  cpu_table().conv2d_backward_data(s, dy, w, dx_ref);
  cuda_table().conv2d_backward_data(s, dyg, wg, dx);
  check_close(dx, dx_ref, rtol, what + " backward-data");

  for (bool bias : {true, false}) {
    Tensor dw_ref = cpu_out(ws, t), db_ref = cpu_out({s.k}, t);
    Tensor dw = poisoned(ws, t), db = poisoned({s.k}, t);
    cpu_table().conv2d_backward_filter(s, x, dy, dw_ref, bias ? &db_ref : nullptr);
    cuda_table().conv2d_backward_filter(s, xg, dyg, dw, bias ? &db : nullptr);
    check_close(dw, dw_ref, rtol, what + " backward-filter");
    if (bias) check_close(db, db_ref, rtol, what + " bias gradient");

    // The table's both-at-once entry (the depthwise one-pass kernel where it applies), with and
    // without dx.
    for (bool with_dx : {true, false}) {
      const std::string both = what + " conv2d_backward" + (with_dx ? "" : " (no dx)");
      Tensor dx2 = poisoned(xs, t), dw2 = poisoned(ws, t), db2 = poisoned({s.k}, t);
      cuda_table().conv2d_backward(s, xg, dyg, wg, with_dx ? &dx2 : nullptr, dw2,
                                   bias ? &db2 : nullptr);
      if (with_dx) check_close(dx2, dx_ref, rtol, both + " dx");
      check_close(dw2, dw_ref, rtol, both + " dw");
      if (bias) check_close(db2, db_ref, rtol, both + " db");
    }
  }
}

const ConvShape kNormal[] = {
    shape(2, 5, 11, 13, 7, 3, 3, 1, 1, false), shape(3, 4, 12, 9, 6, 3, 3, 2, 0, false),
    shape(1, 3, 15, 14, 4, 5, 5, 1, 2, false), shape(4, 16, 32, 32, 16, 3, 3, 1, 1, false),
    shape(2, 3, 10, 12, 5, 3, 5, 1, 1, false), shape(2, 6, 9, 8, 5, 1, 1, 2, 0, false),
    shape(3, 2, 20, 16, 3, 3, 3, 1, 1, false),  // bias kernels: 320-pixel planes, K = 3
};

const ConvShape kPointwise[] = {
    shape(2, 6, 7, 5, 9, 1, 1, 1, 0, false),
    shape(3, 16, 8, 8, 24, 1, 1, 1, 0, false),
    shape(1, 3, 13, 11, 16, 1, 1, 1, 0, false),
    shape(4, 33, 5, 7, 17, 1, 1, 1, 0, false),
};

const ConvShape kDepthwise[] = {
    shape(2, 5, 11, 13, 0, 3, 3, 1, 1, true), shape(3, 4, 37, 35, 0, 3, 3, 1, 1, true),
    shape(2, 3, 12, 17, 0, 3, 3, 2, 1, true), shape(2, 6, 15, 14, 0, 5, 5, 1, 2, true),
    shape(1, 4, 9, 10, 0, 3, 3, 1, 0, true),  shape(2, 3, 20, 19, 0, 3, 5, 1, 1, true),
    shape(2, 4, 16, 17, 0, 7, 7, 3, 3, true), shape(5, 16, 32, 32, 0, 3, 3, 1, 1, true),
    shape(2, 3, 10, 9, 0, 3, 3, 1, 2, true),  shape(1, 2, 40, 70, 0, 3, 3, 1, 1, true),
};

}  // namespace

TEST_CASE("cuda conv2d (cuDNN, groups = 1) matches the CPU" * doctest::skip(no_cuda())) {
  uint64_t seed = 100;
  for (DType t : {DType::F32, DType::F16})
    for (const ConvShape& s : kNormal) compare_conv(s, t, seed++);
}

TEST_CASE("cuda pointwise conv2d, cuBLAS GEMMs (default)" * doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(KernelOptions{});
  uint64_t seed = 150;
  for (DType t : {DType::F32, DType::F16, DType::F64})
    for (const ConvShape& s : kPointwise) compare_conv(s, t, seed++);
  // The weight gradient's per-image partials (64 KiB each here) summed over 3 chunks of 16 images.
  const ScopedKernelOptions scratch(
      options_with([](KernelOptions& o) { o.pointwise_scratch_mb = 1; }));
  for (DType t : {DType::F32, DType::F16})
    compare_conv(shape(40, 128, 6, 6, 128, 1, 1, 1, 0, false), t, seed++);
}

TEST_CASE("cuda pointwise conv2d, cuDNN" * doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(
      options_with([](KernelOptions& o) { o.pointwise = KernelOptions::Pointwise::Cudnn; }));
  uint64_t seed = 170;
  for (DType t : {DType::F32, DType::F16, DType::F64})  // f64: cuBLAS (cuDNN has none)
    for (const ConvShape& s : kPointwise) compare_conv(s, t, seed++);
}

TEST_CASE("cuda depthwise conv2d, own tiled kernels (default)" * doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(KernelOptions{});
  uint64_t seed = 200;
  for (DType t : {DType::F32, DType::F16, DType::F64})
    for (const ConvShape& s : kDepthwise) compare_conv(s, t, seed++);
}

TEST_CASE("cuda depthwise conv2d, naive kernels" * doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(
      options_with([](KernelOptions& o) { o.depthwise = KernelOptions::Depthwise::Naive; }));
  uint64_t seed = 300;
  for (DType t : {DType::F32, DType::F16})
    for (const ConvShape& s : kDepthwise) compare_conv(s, t, seed++);
}

TEST_CASE("cuda depthwise conv2d, cuDNN grouped convolution" * doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(
      options_with([](KernelOptions& o) { o.depthwise = KernelOptions::Depthwise::Cudnn; }));
  uint64_t seed = 400;
  for (DType t : {DType::F32, DType::F16})
    for (const ConvShape& s : kDepthwise) compare_conv(s, t, seed++);
}

TEST_CASE("cuda conv2d explains what it cannot do" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(500);
  const ConvShape s = shape(1, 2, 5, 5, 3, 3, 3, 1, 1, false);
  Tensor x = on_gpu(randn({1, 2, 5, 5}, rng, DType::F64)),
         w = on_gpu(randn({3, 2, 3, 3}, rng, DType::F64));
  Tensor y = poisoned({1, 3, 5, 5}, DType::F64);
  CHECK_THROWS_WITH_AS(cuda_table().conv2d_forward(s, x, w, nullptr, y),
                       doctest::Contains("CPU-only"), dsc::Error);
  // A workspace limit no algorithm fits: the error names the shape and what to change.
  const ScopedKernelOptions none(options_with([](KernelOptions& o) { o.conv_workspace_mb = 0; }));
  const ConvShape n = shape(2, 3, 9, 9, 4, 3, 3, 1, 1, false);
  Tensor xn = on_gpu(randn({2, 3, 9, 9}, rng)), wn = on_gpu(randn({4, 3, 3, 3}, rng));
  Tensor yn = poisoned({2, 4, 9, 9});
  if (emulated())  // every emulated algorithm needs a workspace; real cuDNN has some that need none
    CHECK_THROWS_WITH_AS(cuda_table().conv2d_forward(n, xn, wn, nullptr, yn),
                         doctest::Contains("no usable algorithm for f32 x [2, 3, 9, 9]"),
                         dsc::Error);
}

namespace {
// The algorithm report's lines for one convolution shape and dtype.
std::vector<std::string> report_for(const std::string& dtype_and_x) {
  std::vector<std::string> out;
  for (const std::string& l : cuda_table().algorithm_report())
    if (l.find(" " + dtype_and_x + " * w") != std::string::npos) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("cuda conv2d: cuDNN's algorithm choices follow the kernel options and are reported" *
          doctest::skip(no_cuda())) {
  // Deterministic algorithms only by default (the step-graph and resume tests promise identical
  // bits); f32 runs with FMA math and the workspace cuDNN gives for the algorithm under that math;
  // a change of options searches again. Under the emulator the candidates are built to catch each
  // slip: the fastest is non-deterministic, the next uses tensor-op math, and every entry
  // understates its workspace (tests/cuda/emu/README.md).
  const ConvShape s = shape(3, 5, 11, 10, 6, 3, 3, 1, 1, false);
  uint64_t seed = 650;
  {
    const ScopedKernelOptions opts(KernelOptions{});
    for (DType t : {DType::F32, DType::F16}) compare_conv(s, t, seed++);
    const std::vector<std::string> f32 = report_for("f32 x [3, 5, 11, 10]");
    const std::vector<std::string> f16 = report_for("f16 x [3, 5, 11, 10]");
    REQUIRE(f32.size() == 3);  // forward, backward-data, backward-filter
    REQUIRE(f16.size() == 3);
    for (const std::string& l : f32) {
      CAPTURE(l);
      CHECK(l.find("fma math") != std::string::npos);
      CHECK(l.find(", deterministic") != std::string::npos);
      if (emulated()) CHECK(l.find("(1)") != std::string::npos);
    }
    for (const std::string& l : f16) {
      CAPTURE(l);
      CHECK(l.find(", deterministic") != std::string::npos);
      if (emulated()) CHECK(l.find("(2), tensor-op math") != std::string::npos);
    }
  }
  {
    const ScopedKernelOptions opts(options_with([](KernelOptions& o) { o.deterministic = false; }));
    for (DType t : {DType::F32, DType::F16}) compare_conv(s, t, seed++);
    for (const char* which : {"f32 x [3, 5, 11, 10]", "f16 x [3, 5, 11, 10]"}) {
      const std::vector<std::string> lines = report_for(which);
      REQUIRE(lines.size() == 3);
      if (emulated())
        for (const std::string& l : lines) {
          CAPTURE(l);
          CHECK(l.find("(0)") != std::string::npos);
          CHECK(l.find("non-deterministic") != std::string::npos);
        }
    }
  }
}

TEST_CASE("cuda depsep_conv2d (the fused CUDA entries) matches the CPU's fused kernels" *
          doctest::skip(no_cuda())) {
  // The op as a layer calls it: output and the gradients of x, both weights and the bias, with
  // the loss sum(y * r); ReLU on and off; CUDA runs core/cuda/depsep_conv2d.cu's table entries
  // (fused forward kernel, composed backward), the CPU core/cpu/depsep_conv2d_cpu.cpp.
  std::mt19937_64 rng(600);
  struct Case {
    int n, c, k, h, w, stride, pad;
    bool relu;
  };
  for (const Case& g : {Case{4, 16, 24, 8, 8, 1, 1, true}, Case{3, 3, 16, 9, 7, 1, 1, true},
                        Case{2, 7, 5, 9, 8, 2, 0, false}}) {
    const std::string what = "depsep N" + std::to_string(g.n) + " C" + std::to_string(g.c) + " K" +
                             std::to_string(g.k) + (g.relu ? " relu" : "");
    const Tensor x = randn({g.n, g.c, g.h, g.w}, rng), wd = randn({g.c, 1, 3, 3}, rng),
                 wp = randn({g.k, g.c, 1, 1}, rng), b = randn({g.k}, rng);
    const int p = (g.h + 2 * g.pad - 3) / g.stride + 1, q = (g.w + 2 * g.pad - 3) / g.stride + 1;
    const Tensor r = randn({g.n, g.k, p, q}, rng);
    std::vector<Tensor> outs[2];
    for (int dev = 0; dev < 2; ++dev) {
      const Device d = dev ? Device::CUDA : Device::CPU;
      std::vector<Tensor> leaves;
      for (const Tensor& t : {x, wd, wp, b}) {
        Tensor l = t.to(d);
        l.set_requires_grad(true);
        leaves.push_back(l);
      }
      Tensor y =
          ops::depsep_conv2d(leaves[0], leaves[1], leaves[2], leaves[3], g.stride, g.pad, g.relu);
      ops::sum(ops::mul(y, r.to(d))).backward();
      outs[dev] = {y.detach().to(Device::CPU)};
      for (const Tensor& l : leaves) outs[dev].push_back(l.grad().to(Device::CPU));
    }
    const char* names[] = {"y", "dx", "d depthwise w", "d pointwise w", "db"};
    for (int i = 0; i < 5; ++i) check_close(outs[1][i], outs[0][i], 1e-4, what + " " + names[i]);
  }
}
