// Every CUDA table entry except convolution (see test_cuda_conv2d.cpp) against the CPU table, on
// fresh random inputs with odd shapes, CUDA outputs poisoned with NaN first: elementwise ops,
// casts, reductions, relu, max_pool2d, linear, batch_norm (and synchronised batch_norm's passes and
// layer), cross_entropy, count_correct, Adam and SGD. Tolerances (cuda_test_util.h): f32 1e-4, f16
// 1e-2, f64 1e-10, relative to the output's magnitude; exact where the arithmetic is the same
// (fill, cast, relu, pooling forward, counts). Skipped (doctest "skipped") where no usable GPU is
// present.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"
#include "layers/layers.h"

using namespace dsc;
using namespace dsc::test;

namespace {

const DType kFloatTypes[] = {DType::F32, DType::F16, DType::F64};

std::string name(const char* op, DType t) { return std::string(op) + " " + dtype_name(t); }

}  // namespace

TEST_CASE("cuda fill writes every element, float and integer" * doctest::skip(no_cuda())) {
  for (DType t : {DType::F32, DType::F16, DType::F64, DType::I32}) {
    // (The CPU table fills floats only; Tensor::fill_ handles integer host tensors itself.)
    Tensor ref = Tensor::full({3, 7, 5}, -2.75, t), got = Tensor::empty({3, 7, 5}, t, Device::CUDA);
    cuda_table().fill(got, -2.75);
    check_close(got, ref, 0, name("fill", t));
  }
  Tensor odd = Tensor::empty({1, 1000003}, DType::F16, Device::CUDA);
  cuda_table().fill(odd, 1.0 / 3.0);
  Tensor odd_ref = cpu_out({1, 1000003}, DType::F16);
  cpu_table().fill(odd_ref, 1.0 / 3.0);
  check_close(odd, odd_ref, 0, "fill f16 (rounding of 1/3)");
}

TEST_CASE("cuda cast between f32, f16 and f64 rounds like the CPU" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(1);
  for (DType from : kFloatTypes)
    for (DType to : kFloatTypes) {
      Tensor x = randn({5, 3, 17}, rng, from, 3.0);
      Tensor ref = cpu_out(x.shape(), to), got = poisoned(x.shape(), to);
      cpu_table().cast(x, ref);
      cuda_table().cast(on_gpu(x), got);
      check_close(got, ref, 0, std::string("cast ") + dtype_name(from) + " -> " + dtype_name(to));
    }
}

TEST_CASE("cuda axpy, scale and mul" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(2);
  for (DType t : kFloatTypes) {
    const Shape s{7, 11, 13};
    Tensor x = randn(s, rng, t), y = randn(s, rng, t), b = randn(s, rng, t);
    // axpy: y += alpha x (in place on a copy of y)
    Tensor ref = y.clone(), got = on_gpu(y);
    cpu_table().axpy(x, -0.37, ref);
    cuda_table().axpy(on_gpu(x), -0.37, got);
    check_close(got, ref, rtol_for(t), name("axpy", t));
    // scale
    ref = y.clone();
    got = on_gpu(y);
    cpu_table().scale(ref, 1.0 / 3.0);
    cuda_table().scale(got, 1.0 / 3.0);
    check_close(got, ref, rtol_for(t), name("scale", t));
    // mul
    ref = cpu_out(s, t);
    got = poisoned(s, t);
    cpu_table().mul(x, b, ref);
    cuda_table().mul(on_gpu(x), on_gpu(b), got);
    check_close(got, ref, rtol_for(t), name("mul", t));
  }
  // broadcast: every element takes the one-element value, which stays on the device.
  for (DType t : kFloatTypes) {
    Tensor v = randn({1}, rng, t);
    Tensor ref = cpu_out({3, 517}, t), got = poisoned({3, 517}, t);
    cpu_table().broadcast(v, ref);
    cuda_table().broadcast(on_gpu(v), got);
    check_close(got, ref, 0.0, name("broadcast", t));
    CHECK(ref.to_vector()[1550] == v.item());
  }
  Tensor three = poisoned({3});
  CHECK_THROWS_WITH_AS(cuda_table().broadcast(on_gpu(randn({2}, rng)), three),
                       doctest::Contains("one element"), dsc::Error);
  // axpy of f16 into f32 (gradients into master gradients): the CPU's result exactly.
  const Shape s{5, 1031};
  Tensor x16 = randn(s, rng, DType::F16), y32 = randn(s, rng);
  Tensor ref = y32.clone(), got = on_gpu(y32);
  cpu_table().axpy(x16, 1.0, ref);
  cuda_table().axpy(on_gpu(x16), 1.0, got);
  check_close(got, ref, 0.0, "axpy f16 into f32");
  Tensor y16 = on_gpu(randn(s, rng, DType::F16));
  CHECK_THROWS_WITH_AS(cuda_table().axpy(on_gpu(y32), 1.0, y16), doctest::Contains("f16 into f32"),
                       dsc::Error);
}

TEST_CASE("cuda sum accumulates like the CPU" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(3);
  for (DType t : kFloatTypes) {
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(3 * 1024 * 257 + 5)}) {
      Tensor x = Tensor::uniform({n}, rng, 0.0, 2.0, t);  // positive: no cancellation
      const DType out_t = t == DType::F64 ? DType::F64 : DType::F32;
      Tensor ref = cpu_out({1}, out_t), got = poisoned({1}, out_t);
      cpu_table().sum(x, ref);
      cuda_table().sum(on_gpu(x), got);
      check_close(got, ref, t == DType::F64 ? 1e-12 : 1e-6,
                  name("sum", t) + " n=" + std::to_string(n));
    }
  }
}

TEST_CASE("cuda check_finite sets the flag and never clears it" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(4);
  for (DType t : {DType::F32, DType::F16, DType::F64}) {
    Tensor x = randn({3, 1001}, rng, t);
    Tensor flag = Tensor::zeros({1}, DType::F32, Device::CUDA);
    cuda_table().check_finite(on_gpu(x), flag);
    CHECK_MESSAGE(flag.item() == 0.0, name("finite input", t));
    for (double bad :
         {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
          std::numeric_limits<double>::quiet_NaN()}) {
      std::vector<double> v = x.to_vector();
      v.back() = bad;  // the very last element: catches an off-by-one in the grid-stride loop
      Tensor y = Tensor::from(v, x.shape(), t);
      Tensor f = Tensor::zeros({1}, DType::F32, Device::CUDA);
      cuda_table().check_finite(on_gpu(y), f);
      CHECK_MESSAGE(f.item() == 1.0, name("non-finite input", t));
      cuda_table().check_finite(on_gpu(x), f);  // a finite tensor afterwards leaves the flag set
      CHECK_MESSAGE(f.item() == 1.0, name("flag kept", t));
    }
  }
}

TEST_CASE("cuda relu forward and backward" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(5);
  for (DType t : kFloatTypes) {
    const Shape s{3, 5, 7, 9};
    Tensor x = randn(s, rng, t), dy = randn(s, rng, t);
    Tensor y_ref = cpu_out(s, t), y = poisoned(s, t);
    cpu_table().relu_forward(x, y_ref);
    cuda_table().relu_forward(on_gpu(x), y);
    check_close(y, y_ref, 0, name("relu forward", t));
    Tensor dx_ref = cpu_out(s, t), dx = poisoned(s, t);
    cpu_table().relu_backward(y_ref, dy, dx_ref);
    cuda_table().relu_backward(on_gpu(y_ref), on_gpu(dy), dx);
    check_close(dx, dx_ref, 0, name("relu backward", t));
  }
}

TEST_CASE("cuda max_pool2d forward and backward (first maximum)" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(6);
  struct Case {
    Shape x;
    int k, st;
  };
  // Non-overlapping windows tiling the plane (the seed's 4x4; the one-thread-per-window kernel),
  // overlapping windows, uncovered border rows and columns.
  const Case cases[] = {{{2, 3, 16, 16}, 4, 4},
                        {{1, 3, 6, 9}, 3, 3},
                        {{3, 2, 9, 11}, 2, 2},
                        {{2, 3, 10, 9}, 3, 2},
                        {{1, 4, 7, 8}, 3, 1},
                        {{2, 1, 13, 5}, 5, 3}};
  for (DType t : kFloatTypes)
    for (const Case& c : cases) {
      CAPTURE(c.k);
      CAPTURE(c.st);
      Tensor x = randn(c.x, rng, t);
      const Shape ys{c.x[0], c.x[1], (c.x[2] - c.k) / c.st + 1, (c.x[3] - c.k) / c.st + 1};
      Tensor y_ref = cpu_out(ys, t), y = poisoned(ys, t);
      cpu_table().max_pool2d_forward(x, c.k, c.st, y_ref);
      cuda_table().max_pool2d_forward(on_gpu(x), c.k, c.st, y);
      check_close(y, y_ref, 0, name("max_pool2d forward", t));
      Tensor dy = randn(ys, rng, t);
      Tensor dx_ref = cpu_out(c.x, t), dx = poisoned(c.x, t);
      cpu_table().max_pool2d_backward(x, y_ref, dy, c.k, c.st, dx_ref);
      cuda_table().max_pool2d_backward(on_gpu(x), on_gpu(y_ref), on_gpu(dy), c.k, c.st, dx);
      check_close(dx, dx_ref, rtol_for(t), name("max_pool2d backward", t));
    }
  // Ties: a constant plane routes each window's gradient to its first element only.
  Tensor x = Tensor::full({1, 1, 4, 4}, 0.5), dy = Tensor::full({1, 1, 2, 2}, 1.0);
  Tensor y = poisoned({1, 1, 2, 2}), dx = poisoned({1, 1, 4, 4});
  cuda_table().max_pool2d_forward(on_gpu(x), 2, 2, y);
  cuda_table().max_pool2d_backward(on_gpu(x), y, on_gpu(dy), 2, 2, dx);
  const std::vector<double> d = dx.to_vector();
  CHECK(d[0] == 1.0);
  CHECK(d[1] == 0.0);
  CHECK(d[4] == 0.0);
  CHECK(d[2] == 1.0);
  CHECK(d[10] == 1.0);
}

TEST_CASE("cuda linear forward and backward (cuBLAS)" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(7);
  const int n = 37, in = 53, out = 11;
  for (DType t : kFloatTypes)
    for (bool bias : {true, false}) {
      CAPTURE(bias);
      Tensor x = randn({n, in}, rng, t), w = randn({out, in}, rng, t, 0.2),
             b = randn({out}, rng, t), dy = randn({n, out}, rng, t);
      Tensor y_ref = cpu_out({n, out}, t), y = poisoned({n, out}, t);
      Tensor bg = on_gpu(b);
      cpu_table().linear_forward(x, w, bias ? &b : nullptr, y_ref);
      cuda_table().linear_forward(on_gpu(x), on_gpu(w), bias ? &bg : nullptr, y);
      check_close(y, y_ref, rtol_for(t), name("linear forward", t));

      Tensor dx_ref = cpu_out({n, in}, t), dw_ref = cpu_out({out, in}, t),
             db_ref = cpu_out({out}, t);
      Tensor dx = poisoned({n, in}, t), dw = poisoned({out, in}, t), db = poisoned({out}, t);
      cpu_table().linear_backward(x, w, dy, &dx_ref, dw_ref, bias ? &db_ref : nullptr);
      cuda_table().linear_backward(on_gpu(x), on_gpu(w), on_gpu(dy), &dx, dw, bias ? &db : nullptr);
      check_close(dx, dx_ref, rtol_for(t), name("linear dx", t));
      check_close(dw, dw_ref, rtol_for(t), name("linear dw", t));
      if (bias) check_close(db, db_ref, rtol_for(t), name("linear db", t));
      // Without dx (the first layer's input needs no gradient).
      Tensor dw2 = poisoned({out, in}, t);
      cuda_table().linear_backward(on_gpu(x), on_gpu(w), on_gpu(dy), nullptr, dw2, nullptr);
      check_close(dw2, dw_ref, rtol_for(t), name("linear dw without dx", t));
    }
}

TEST_CASE("cuda batch_norm train, eval and backward" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(8);
  // (x dtype, parameter dtype): f16 inputs keep f32 statistics, as on the CPU.
  const std::pair<DType, DType> types[] = {
      {DType::F32, DType::F32}, {DType::F16, DType::F32}, {DType::F64, DType::F64}};
  const Shape shapes[] = {{5, 7, 9, 11}, {3, 13, 1, 1}, {2, 3, 33, 35}};
  for (auto [xt, pt] : types)
    for (const Shape& s : shapes) {
      CAPTURE(shape_str(s));
      const Shape c{s[1]};
      const double rtol = rtol_for(xt), prtol = rtol_for(pt);
      Tensor x = randn(s, rng, xt, 2.0);
      // shift the mean so that the variance is not the raw second moment
      Tensor shift = Tensor::full(s, 0.75, xt);
      cpu_table().axpy(shift, 1.0, x);
      Tensor gamma = Tensor::uniform(c, rng, 0.5, 1.5, pt), beta = randn(c, rng, pt);
      Tensor rm = randn(c, rng, pt, 0.1), rv = Tensor::uniform(c, rng, 0.5, 2.0, pt);
      const BatchNormParams p{0.9f, 1e-3f};

      Tensor rm_ref = rm.clone(), rv_ref = rv.clone(), rm_g = on_gpu(rm), rv_g = on_gpu(rv);
      Tensor y_ref = cpu_out(s, xt), sm_ref = cpu_out(c, pt), si_ref = cpu_out(c, pt);
      Tensor y = poisoned(s, xt), sm = poisoned(c, pt), si = poisoned(c, pt);
      Tensor gg = on_gpu(gamma), bg = on_gpu(beta), xg = on_gpu(x);
      cpu_table().batch_norm_forward_train(x, gamma, beta, p, rm_ref, rv_ref, y_ref, sm_ref,
                                           si_ref);
      cuda_table().batch_norm_forward_train(xg, gg, bg, p, rm_g, rv_g, y, sm, si);
      check_close(y, y_ref, rtol, name("bn train y", xt));
      check_close(sm, sm_ref, prtol, name("bn save_mean", xt));
      check_close(si, si_ref, prtol, name("bn save_invstd", xt));
      check_close(rm_g, rm_ref, prtol, name("bn running_mean", xt));
      check_close(rv_g, rv_ref, prtol, name("bn running_var", xt));

      Tensor ye_ref = cpu_out(s, xt), ye = poisoned(s, xt);
      cpu_table().batch_norm_forward_eval(x, gamma, beta, rm_ref, rv_ref, p, ye_ref);
      cuda_table().batch_norm_forward_eval(xg, gg, bg, on_gpu(rm_ref), on_gpu(rv_ref), p, ye);
      check_close(ye, ye_ref, rtol, name("bn eval y", xt));

      Tensor dy = randn(s, rng, xt);
      Tensor dx_ref = cpu_out(s, xt), dg_ref = cpu_out(c, pt), db_ref = cpu_out(c, pt);
      Tensor dx = poisoned(s, xt), dg = poisoned(c, pt), db = poisoned(c, pt);
      cpu_table().batch_norm_backward(x, dy, gamma, sm_ref, si_ref, dx_ref, dg_ref, db_ref);
      cuda_table().batch_norm_backward(xg, on_gpu(dy), gg, on_gpu(sm_ref), on_gpu(si_ref), dx, dg,
                                       db);
      check_close(dx, dx_ref, rtol, name("bn dx", xt));
      check_close(dg, dg_ref, xt == DType::F16 ? rtol : prtol, name("bn dgamma", xt));
      check_close(db, db_ref, xt == DType::F16 ? rtol : prtol, name("bn dbeta", xt));
    }
}

// Synchronised batch_norm's passes (layers/sync_batch_norm.h). Every pass is fed the CPU's
// inputs (the sums of the CPU's previous pass, scaled by 2 as if a second rank had added its
// own), so each is checked alone; the f64 sums to 1e-10.
TEST_CASE("cuda synchronised batch_norm passes" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(18);
  const Shape shapes[] = {{5, 7, 9, 11}, {3, 13, 1, 1}, {2, 3, 33, 35}};
  for (DType xt : {DType::F32, DType::F16})
    for (const Shape& s : shapes) {
      CAPTURE(shape_str(s));
      const int64_t c = s[1];
      const double rtol = rtol_for(xt), prtol = rtol_for(DType::F32);
      Tensor x = randn(s, rng, xt, 2.0);
      Tensor shift = Tensor::full(s, 0.75, xt);
      cpu_table().axpy(shift, 1.0, x);
      Tensor gamma = Tensor::uniform({c}, rng, 0.5, 1.5), beta = randn({c}, rng);
      Tensor rm = randn({c}, rng, DType::F32, 0.1), rv = Tensor::uniform({c}, rng, 0.5, 2.0);
      const BatchNormParams p{0.9f, 1e-3f};
      const Tensor xg = on_gpu(x);
      const auto doubled = [](Tensor t) {  // another rank's equal sums added
        Tensor d = t.clone();
        cpu_table().axpy(t, 1.0, d);
        return d;
      };

      Tensor stats_ref = cpu_out({c + 1}, DType::F64), stats = poisoned({c + 1}, DType::F64);
      cpu_table().batch_norm_stat_sums(x, Tensor(), stats_ref);
      cuda_table().batch_norm_stat_sums(xg, Tensor(), stats);
      check_close(stats, stats_ref, 1e-10, name("sync bn sums", xt));
      stats_ref = doubled(stats_ref);
      Tensor sq_ref = cpu_out({c}, DType::F64), sq = poisoned({c}, DType::F64);
      cpu_table().batch_norm_stat_sums(x, stats_ref, sq_ref);
      cuda_table().batch_norm_stat_sums(xg, on_gpu(stats_ref), sq);
      check_close(sq, sq_ref, 1e-10, name("sync bn square sums", xt));
      sq_ref = doubled(sq_ref);

      Tensor rm_ref = rm.clone(), rv_ref = rv.clone(), rm_g = on_gpu(rm), rv_g = on_gpu(rv);
      Tensor y_ref = cpu_out(s, xt), sm_ref = cpu_out({c}), si_ref = cpu_out({c});
      Tensor y = poisoned(s, xt), sm = poisoned({c}), si = poisoned({c});
      cpu_table().batch_norm_normalize(x, gamma, beta, stats_ref, sq_ref, p, rm_ref, rv_ref, y_ref,
                                       sm_ref, si_ref);
      cuda_table().batch_norm_normalize(xg, on_gpu(gamma), on_gpu(beta), on_gpu(stats_ref),
                                        on_gpu(sq_ref), p, rm_g, rv_g, y, sm, si);
      check_close(y, y_ref, rtol, name("sync bn y", xt));
      check_close(sm, sm_ref, prtol, name("sync bn save_mean", xt));
      check_close(si, si_ref, prtol, name("sync bn save_invstd", xt));
      check_close(rm_g, rm_ref, prtol, name("sync bn running_mean", xt));
      check_close(rv_g, rv_ref, prtol, name("sync bn running_var", xt));

      Tensor dy = randn(s, rng, xt);
      const Tensor dyg = on_gpu(dy);
      Tensor gs_ref = cpu_out({2 * c}, DType::F64), gs = poisoned({2 * c}, DType::F64);
      Tensor dg_ref = cpu_out({c}), db_ref = cpu_out({c}), dg = poisoned({c}), db = poisoned({c});
      cpu_table().batch_norm_grad_sums(x, dy, sm_ref, si_ref, gs_ref, dg_ref, db_ref);
      cuda_table().batch_norm_grad_sums(xg, dyg, on_gpu(sm_ref), on_gpu(si_ref), gs, dg, db);
      check_close(gs, gs_ref, 1e-10, name("sync bn grad sums", xt));
      check_close(dg, dg_ref, prtol, name("sync bn dgamma", xt));
      check_close(db, db_ref, prtol, name("sync bn dbeta", xt));
      gs_ref = doubled(gs_ref);
      Tensor dx_ref = cpu_out(s, xt), dx = poisoned(s, xt);
      cpu_table().batch_norm_grad_input(x, dy, gamma, sm_ref, si_ref, gs_ref, stats_ref, dx_ref);
      cuda_table().batch_norm_grad_input(xg, dyg, on_gpu(gamma), on_gpu(sm_ref), on_gpu(si_ref),
                                         on_gpu(gs_ref), on_gpu(stats_ref), dx);
      check_close(dx, dx_ref, rtol, name("sync bn dx", xt));
    }
}

// The layer on the GPU: every allreduce it asks for gets a tensor on the GPU; with sums doubled
// (two equal ranks) it must train as on the CPU.
TEST_CASE("cuda sync_batch_norm layer equals the CPU's, its sums reduced on the GPU" *
          doctest::skip(no_cuda())) {
  std::mt19937_64 rng(19);
  for (DType xt : {DType::F32, DType::F16}) {
    const Tensor x0 = randn({4, 5, 6, 7}, rng, DType::F32, 1.5), dy0 = randn({4, 5, 6, 7}, rng);
    std::vector<Tensor> ys, dxs, dgammas, running;
    for (Device dev : {Device::CPU, Device::CUDA}) {
      BatchNorm2d bn(5);
      int calls = 0;
      bn.set_sync([&](Tensor& sums) {
        CHECK(sums.device() == dev);
        ++calls;
        Tensor copy = sums.clone();
        kernels(dev).axpy(copy, 1.0, sums);
      });
      bn.to(dev);
      Tensor x = x0.to(xt).to(dev).detach();
      x.set_requires_grad(true);
      Tensor y = bn.forward(x);
      ops::sum(ops::mul(y, dy0.to(xt).to(dev))).backward();
      CHECK(calls == 3);  // two in the forward, one in the backward
      ys.push_back(y.to(Device::CPU));
      dxs.push_back(x.grad().to(Device::CPU));
      dgammas.push_back(bn.gamma.grad().to(Device::CPU));
      running.push_back(bn.running_var.to(Device::CPU));
    }
    check_close(ys[1], ys[0], rtol_for(xt), name("sync bn layer y", xt));
    check_close(dxs[1], dxs[0], rtol_for(xt), name("sync bn layer dx", xt));
    check_close(dgammas[1], dgammas[0], 1e-4, name("sync bn layer dgamma", xt));
    check_close(running[1], running[0], 1e-4, name("sync bn layer running_var", xt));
  }
}

TEST_CASE("cuda cross_entropy and count_correct" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(9);
  for (DType t : kFloatTypes)
    for (int m : {10, 45}) {  // fewer and more classes than a warp has lanes
      CAPTURE(m);
      const int n = 37;
      Tensor logits = randn({n, m}, rng, t, 3.0);
      std::vector<double> lv(n);
      std::uniform_int_distribution<int> pick(0, m - 1);
      for (double& v : lv) v = pick(rng);
      Tensor labels = Tensor::from(lv, {n}, DType::I32), lg = on_gpu(labels);
      const DType lt = t == DType::F64 ? DType::F64 : DType::F32;
      Tensor loss_ref = cpu_out({1}, lt), probs_ref = cpu_out({n, m}, t);
      Tensor loss = poisoned({1}, lt), probs = poisoned({n, m}, t);
      cpu_table().cross_entropy_forward(logits, labels, loss_ref, probs_ref);
      cuda_table().cross_entropy_forward(on_gpu(logits), lg, loss, probs);
      check_close(loss, loss_ref, t == DType::F64 ? 1e-12 : 1e-6, name("cross_entropy loss", t));
      check_close(probs, probs_ref, rtol_for(t), name("cross_entropy probs", t));

      Tensor dloss_ref = Tensor::full({1}, 1.7, lt), dl_ref = cpu_out({n, m}, t);
      Tensor dl = poisoned({n, m}, t);
      cpu_table().cross_entropy_backward(probs_ref, labels, dloss_ref, dl_ref);
      cuda_table().cross_entropy_backward(on_gpu(probs_ref), lg, on_gpu(dloss_ref), dl);
      check_close(dl, dl_ref, rtol_for(t), name("cross_entropy dlogits", t));

      // Make about half the rows correct so the count is not trivially 0 or n.
      std::vector<double> l2 = lv;
      const std::vector<double> lgv = logits.to_vector();
      for (int i = 0; i < n; i += 2) {
        int best = 0;
        for (int j = 1; j < m; ++j)
          if (lgv[size_t(i) * m + j] > lgv[size_t(i) * m + best]) best = j;
        l2[i] = best;
      }
      Tensor labels2 = Tensor::from(l2, {n}, DType::I32);
      // count_correct adds to its output: both start at 5.
      Tensor c_ref = Tensor::full({1}, 5, DType::I32),
             c = Tensor::full({1}, 5, DType::I32, Device::CUDA);
      cpu_table().count_correct(logits, labels2, c_ref);
      cuda_table().count_correct(on_gpu(logits), on_gpu(labels2), c);
      CHECK_MESSAGE(c.item() == c_ref.item(), name("count_correct", t));
      CHECK(c_ref.item() >= 5 + n / 2);
    }
}

TEST_CASE("cuda optimizer steps with device-resident inputs and the loss-scale update match the "
          "CPU" * doctest::skip(no_cuda())) {
  // found_inf / scale / step_count as one-element tensors on each device: a sequence of steps with
  // overflows at some of them; after each, params, moments, the step count and the loss-scale
  // state agree with the CPU, and a skipped step leaves the GPU's buffers bit-identical.
  std::mt19937_64 rng(12);
  const int64_t n = 70001;
  const Tensor p0 = randn({n}, rng), g = randn({n}, rng, DType::F32, 256.0);
  const Tensor gg = on_gpu(g);
  const std::vector<bool> overflow = {false, true, false, false, true, true, false, false, false};
  const LossScaleParams lp{2.0f, 0.5f, 2};
  for (bool sgd : {false, true}) {
    CAPTURE(sgd);
    Tensor p = p0.clone(), m = Tensor::zeros({n}), v = Tensor::zeros({n});
    Tensor pg = on_gpu(p0), mg = on_gpu(m), vg = on_gpu(v);
    Tensor state = Tensor::from({256.0, 0.0, 0.0}, {3}), state_g = on_gpu(state);
    Tensor count = Tensor::zeros({1}), count_g = on_gpu(count);
    for (size_t k = 0; k < overflow.size(); ++k) {
      CAPTURE(k);
      const Tensor flag = Tensor::full({1}, overflow[k] ? 1.0 : 0.0), flag_g = on_gpu(flag);
      const Tensor scale = state.slice0(0, 1), scale_g = state_g.slice0(0, 1);
      const Tensor before = pg.to(Device::CPU);
      if (sgd) {
        SgdParams sp;
        sp.lr = 0.05f;
        sp.momentum = 0.9f;
        sp.grad_scale = 3.0f;  // ignored: the scale tensor wins
        sp.found_inf = &flag;
        sp.scale = &scale;
        sp.step_count = &count;
        cpu_table().sgd_step(p, g, m, sp);
        sp.found_inf = &flag_g;
        sp.scale = &scale_g;
        sp.step_count = &count_g;
        cuda_table().sgd_step(pg, gg, mg, sp);
      } else {
        AdamParams ap;
        ap.lr = 3e-3f;
        ap.weight_decay = 1e-2f;
        ap.step = 99;  // ignored: the step count wins
        ap.found_inf = &flag;
        ap.scale = &scale;
        ap.step_count = &count;
        cpu_table().adam_step(p, g, m, v, ap);
        ap.found_inf = &flag_g;
        ap.scale = &scale_g;
        ap.step_count = &count_g;
        cuda_table().adam_step(pg, gg, mg, vg, ap);
      }
      cpu_table().update_loss_scale(state, flag, lp);
      cuda_table().update_loss_scale(state_g, flag_g, lp);
      if (overflow[k]) check_close(pg, before, 0, "a skipped step leaves the parameters");
      check_close(pg, p, 1e-5, "params");
      check_close(mg, m, 1e-5, sgd ? "momentum" : "adam m");
      if (!sgd) check_close(vg, v, 1e-5, "adam v");
      check_close(count_g, count, 0, "step count");
      check_close(state_g, state, 0, "loss-scale state");
    }
    CHECK(count.item() == 6.0);  // 9 steps, 3 skipped
    CHECK(state.to_vector()[2] == 3.0);
  }
}

TEST_CASE("cuda Adam and SGD steps match the CPU arithmetic" * doctest::skip(no_cuda())) {
  std::mt19937_64 rng(10);
  const int64_t n = 100003;
  Tensor p0 = randn({n}, rng), g = randn({n}, rng, DType::F32, 512.0);
  SUBCASE("adam") {
    Tensor p = p0.clone(), m = Tensor::zeros({n}), v = Tensor::zeros({n});
    Tensor pg = on_gpu(p0), mg = Tensor::zeros({n}, DType::F32, Device::CUDA),
           vg = Tensor::zeros({n}, DType::F32, Device::CUDA), gg = on_gpu(g);
    AdamParams ap;
    ap.lr = 3e-3f;
    ap.weight_decay = 1e-2f;
    ap.grad_scale = 512.0f;
    for (int64_t step = 1; step <= 3; ++step) {
      ap.step = step;
      cpu_table().adam_step(p, g, m, v, ap);
      cuda_table().adam_step(pg, gg, mg, vg, ap);
    }
    check_close(pg, p, 1e-5, "adam params");
    check_close(mg, m, 1e-5, "adam m");
    check_close(vg, v, 1e-5, "adam v");
    check_close(gg, g, 0, "adam leaves the gradients alone");
  }
  for (bool nesterov : {false, true})
    for (float momentum : {0.0f, 0.9f}) {
      if (nesterov && momentum == 0.0f) continue;
      CAPTURE(nesterov);
      CAPTURE(momentum);
      Tensor p = p0.clone(), buf = Tensor::zeros({n});
      Tensor pg = on_gpu(p0), bufg = Tensor::zeros({n}, DType::F32, Device::CUDA), gg = on_gpu(g);
      SgdParams sp;
      sp.lr = 0.05f;
      sp.momentum = momentum;
      sp.nesterov = nesterov;
      sp.weight_decay = 5e-4f;
      sp.grad_scale = 512.0f;
      for (int step = 0; step < 3; ++step) {
        cpu_table().sgd_step(p, g, buf, sp);
        cuda_table().sgd_step(pg, gg, bufg, sp);
      }
      check_close(pg, p, 1e-5, "sgd params");
      check_close(bufg, buf, 1e-5, "sgd momentum buffer");
    }
}
