// The CUDA depsep_conv2d_forward / depsep_conv2d_backward table entries
// (core/cuda/depsep_conv2d.cu) against the CPU table's fused kernels
// (core/cpu/depsep_conv2d_cpu.cpp, itself tested against the unfused conv2d kernels), on fresh
// random inputs with NaN-poisoned outputs: the fused forward kernel in f32 (FMA tiles), f16 (tensor
// cores; the CPU runs on the same f16 values upcast to f32) and f64, the composed backward, and the
// kernel option depsep=composed. Shapes: the seed's layer, C and K not multiples of 16 or of the
// 64-channel tile, C over many 32-channel chunks, P*Q not a multiple of the 64-pixel tile, strides
// 2 and 3, padding 0, 5x5 / 3x5 / 7x7 filters, N = 1, no bias, no ReLU, no dx. Skipped (doctest
// "skipped") where no usable GPU is present.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/depsep_conv2d.h"
#include "core/error.h"
#include "cuda/cuda_test_util.h"

using namespace dsc;
using namespace dsc::test;

namespace {

struct Case {
  int n, c, k, h, w, r, s, stride, pad;
  bool relu = true, bias = true, dx = true;
};

DepSepShape shape_of(const Case& g) {
  DepSepShape s;
  s.dw.n = g.n;
  s.dw.c = s.dw.k = s.dw.groups = g.c;
  s.dw.h = g.h;
  s.dw.w = g.w;
  s.dw.r = g.r;
  s.dw.s = g.s;
  s.dw.stride = g.stride;
  s.dw.pad = g.pad;
  s.k = g.k;
  s.relu = g.relu;
  return s;
}

std::string describe(const Case& g, DType t) {
  return std::string(dtype_name(t)) + " N" + std::to_string(g.n) + " C" + std::to_string(g.c) +
         " K" + std::to_string(g.k) + " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " f" +
         std::to_string(g.r) + "x" + std::to_string(g.s) + " st" + std::to_string(g.stride) +
         " pad" + std::to_string(g.pad) + (g.relu ? " relu" : "") + (g.bias ? " bias" : "") +
         (g.dx ? "" : " no-dx");
}

// The CUDA entries' results on one case, moved to the host.
struct Results {
  Tensor y, dx, dwd, dwp, db;
};

// Forward and backward of one case on the CPU and on CUDA; returns the CUDA results. The CPU runs
// on the inputs' values in f32 (f64 for f64), so an f16 run is charged only with its own rounding.
// Both backward calls get the same forward output (the CPU's, in dtype t): their ReLU masks agree.
Results compare_depsep(const Case& g, DType t, uint64_t seed) {
  const DepSepShape s = shape_of(g);
  const std::string what = describe(g, t);
  const Shape xs{g.n, g.c, g.h, g.w}, wds{g.c, 1, g.r, g.s}, wps{g.k, g.c, 1, 1}, bs{g.k};
  const Shape ys{g.n, g.k, s.p(), s.q()};
  const DType rt = t == DType::F64 ? DType::F64 : DType::F32;
  const double rtol = rtol_for(t);
  std::mt19937_64 rng(seed);
  const Tensor x = randn(xs, rng, t), wd = randn(wds, rng, t, 0.3), wp = randn(wps, rng, t, 0.3),
               b = randn(bs, rng, t), dy = randn(ys, rng, t);
  const Tensor xr = x.to(rt), wdr = wd.to(rt), wpr = wp.to(rt), br = b.to(rt), dyr = dy.to(rt);
  const Tensor xg = on_gpu(x), wdg = on_gpu(wd), wpg = on_gpu(wp), bg = on_gpu(b), dyg = on_gpu(dy);

  Tensor y_ref = cpu_out(ys, rt), y = poisoned(ys, t);
  cpu_table().depsep_conv2d_forward(s, xr, wdr, wpr, g.bias ? &br : nullptr, y_ref, nullptr);
  cuda_table().depsep_conv2d_forward(s, xg, wdg, wpg, g.bias ? &bg : nullptr, y, nullptr);
  check_close(y, y_ref, rtol, what + " forward");

  const Tensor y_t = y_ref.to(t);
  const Tensor yr = y_t.to(rt), yg = on_gpu(y_t);
  Tensor dx_ref = cpu_out(xs, rt), dwd_ref = cpu_out(wds, rt), dwp_ref = cpu_out(wps, rt),
         db_ref = cpu_out(bs, rt);
  Tensor dx = poisoned(xs, t), dwd = poisoned(wds, t), dwp = poisoned(wps, t), db = poisoned(bs, t);
  cpu_table().depsep_conv2d_backward(s, xr, wdr, wpr, yr, nullptr, dyr,
                                     g.dx ? &dx_ref : nullptr, dwd_ref, dwp_ref,
                                     g.bias ? &db_ref : nullptr);
  cuda_table().depsep_conv2d_backward(s, xg, wdg, wpg, yg, nullptr, dyg, g.dx ? &dx : nullptr, dwd,
                                      dwp, g.bias ? &db : nullptr);
  if (g.dx) check_close(dx, dx_ref, rtol, what + " dx");
  check_close(dwd, dwd_ref, rtol, what + " d depthwise w");
  check_close(dwp, dwp_ref, rtol, what + " d pointwise w");
  if (g.bias) check_close(db, db_ref, rtol, what + " db");
  return Results{y.to(Device::CPU), dx.to(Device::CPU), dwd.to(Device::CPU), dwp.to(Device::CPU),
                 db.to(Device::CPU)};
}

// {n, c, k, h, w, r, s, stride, pad, relu, bias, dx}
const Case kSeed{4, 128, 128, 32, 32, 3, 3, 1, 1};  // the seed CNN's DepSep layer
const Case kCases[] = {
    {3, 3, 16, 9, 7, 3, 3, 1, 1},                         // first layer: C = 3, P*Q = 63
    {2, 7, 5, 9, 8, 3, 3, 2, 0, false},                   // C, K odd; stride 2, padding 0
    {2, 300, 40, 6, 5, 3, 3, 1, 1},                       // C over 10 chunks, K one partial tile
    {2, 20, 70, 11, 13, 5, 5, 1, 2},                      // 5x5; K over two tiles; P*Q = 143
    {1, 16, 24, 10, 10, 3, 3, 1, 1, true, false, false},  // N = 1, no bias, no dx
    {2, 12, 33, 12, 9, 3, 5, 2, 1, false, true, true},    // 3x5 filter, stride 2, no ReLU
    {1, 5, 7, 14, 15, 7, 7, 3, 3, true, false, true},     // 7x7, stride 3, no bias
    {2, 6, 131, 5, 6, 3, 3, 1, 1},                        // K > 128: the f16 backward is composed
    {1, 140, 9, 4, 4, 3, 3, 1, 0},                        // C: a full and a 12-channel group
};

}  // namespace

TEST_CASE("cuda depsep entries: fused forward (f32 FMA tiles) matches the CPU" *
          doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(KernelOptions{});
  uint64_t seed = 700;
  compare_depsep(kSeed, DType::F32, seed++);
  for (const Case& g : kCases) compare_depsep(g, DType::F32, seed++);
}

TEST_CASE("cuda depsep entries: fused forward and backward (f16 tensor cores) match the CPU" *
          doctest::skip(no_cuda())) {
  const ScopedKernelOptions opts(KernelOptions{});  // fused
  uint64_t seed = 800;
  compare_depsep(kSeed, DType::F16, seed++);
  for (const Case& g : kCases) compare_depsep(g, DType::F16, seed++);
}

TEST_CASE("cuda depsep entries: f64 (FMA tiles forward, plain pointwise kernels backward)" *
          doctest::skip(no_cuda())) {
  uint64_t seed = 900;
  for (auto mode : {KernelOptions::DepSep::Fused, KernelOptions::DepSep::Composed}) {
    const ScopedKernelOptions opts(options_with([&](KernelOptions& o) { o.depsep = mode; }));
    for (const Case& g : kCases) compare_depsep(g, DType::F64, seed++);
  }
}

TEST_CASE("cuda depsep entries: depsep=composed matches the CPU and the fused kernel" *
          doctest::skip(no_cuda())) {
  uint64_t seed = 1000;
  for (DType t : {DType::F32, DType::F16})
    for (const Case& g : kCases) {
      Results fused, composed;
      {
        const ScopedKernelOptions opts(KernelOptions{});
        fused = compare_depsep(g, t, seed);
      }
      {
        const ScopedKernelOptions opts(
            options_with([](KernelOptions& o) { o.depsep = KernelOptions::DepSep::Composed; }));
        composed = compare_depsep(g, t, seed);
      }
      ++seed;
      // Same inputs (same seed): the two differ only by summation order and rounding (in f16 the
      // backward is fused too).
      const std::string what = describe(g, t) + " composed vs fused";
      check_close(composed.y, fused.y, rtol_for(t), what + " forward");
      if (g.dx) check_close(composed.dx, fused.dx, rtol_for(t), what + " dx");
      check_close(composed.dwd, fused.dwd, rtol_for(t), what + " d depthwise w");
      check_close(composed.dwp, fused.dwp, rtol_for(t), what + " d pointwise w");
      if (g.bias) check_close(composed.db, fused.db, rtol_for(t), what + " db");
    }
}

TEST_CASE("cuda depsep entries: empty batch" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(1100);
  const Case g{0, 4, 6, 5, 5, 3, 3, 1, 1};
  const DepSepShape s = shape_of(g);
  const Tensor x = on_gpu(Tensor::empty({0, 4, 5, 5})), wd = on_gpu(randn({4, 1, 3, 3}, rng)),
               wp = on_gpu(randn({6, 4, 1, 1}, rng)), b = on_gpu(randn({6}, rng));
  Tensor y = on_gpu(Tensor::empty({0, 6, 5, 5})), dy = on_gpu(Tensor::empty({0, 6, 5, 5}));
  cuda_table().depsep_conv2d_forward(s, x, wd, wp, &b, y, nullptr);
  Tensor dx = on_gpu(Tensor::empty({0, 4, 5, 5})), dwd = poisoned({4, 1, 3, 3}),
         dwp = poisoned({6, 4, 1, 1}), db = poisoned({6});
  cuda_table().depsep_conv2d_backward(s, x, wd, wp, y, nullptr, dy, &dx, dwd, dwp, &db);
  for (const Tensor* t : {&dwd, &dwp, &db})
    for (double v : t->to_vector()) CHECK(v == 0.0);
}
