// Tensor basics (core/tensor.h, core/half.h): creation, shape and strides, views sharing storage
// (reshape, slice0), dtype conversions f32 <-> f16 <-> f64 (fp16 rounding checked against known bit
// patterns and against an independent nearest-value search over every finite half), rehome_,
// and the errors: undefined tensors, typed access on the wrong device, shape errors naming the op
// and both shapes.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "core/backend.h"
#include "core/half.h"

namespace dsc {
namespace {

float f32_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// The value of a finite half bit pattern, from the IEEE 754 definition (independent of half.h).
double half_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  const double mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -mag : mag;
}

// Round-to-nearest-even float -> half by searching the sorted table of non-negative finite halves.
struct HalfRounder {
  std::vector<double> values;  // values[h] for h = 0 .. 0x7bff (increasing)
  HalfRounder() {
    for (uint16_t h = 0; h <= 0x7bff; ++h) values.push_back(half_value(h));
  }
  uint16_t operator()(float f) const {
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    if (std::isnan(f)) return 0x7e00;  // any NaN; callers check NaN-ness only
    const double a = std::abs(double(f));
    if (a >= 65520.0) return sign | 0x7c00;  // halfway to 2^16 and beyond: overflow to inf
    const auto it = std::lower_bound(values.begin(), values.end(), a);
    if (it == values.end()) return sign | 0x7bff;  // (65504, 65520): nearest is 65504
    const size_t hi = size_t(it - values.begin());  // values[hi] >= a
    if (values[hi] == a) return sign | uint16_t(hi);
    const size_t lo = hi - 1;
    const double dlo = a - values[lo], dhi = values[hi] - a;
    size_t pick = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
    return sign | uint16_t(pick);
  }
};

TEST_CASE("tensor: creation, shape, strides, metadata") {
  Tensor t = Tensor::empty({2, 3, 4});
  CHECK(t.defined());
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.ndim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.dim(0) == 2);
  CHECK(t.dim(-1) == 4);
  CHECK(t.dim(-3) == 2);
  CHECK(t.dtype() == DType::F32);
  CHECK(t.device() == Device::CPU);
  CHECK(t.offset() == 0);
  CHECK(t.is_contiguous());
  CHECK(t.nbytes() == 96);
  CHECK(t.str() == "f32[2, 3, 4] cpu");
  CHECK_THROWS_AS(t.dim(3), Error);
  CHECK_THROWS_AS(t.dim(-4), Error);
  test::check_throws_with([] { Tensor::empty({2, -1}); }, {"[2, -1]", "negative"},
                          "negative shape");

  CHECK(dtype_size(DType::F16) == 2);
  CHECK(dtype_size(DType::F64) == 8);
  CHECK(dtype_size(DType::I32) == 4);
  CHECK(dtype_size(DType::U8) == 1);
  CHECK(Tensor::empty({5}, DType::F16).nbytes() == 10);
  CHECK(Tensor::empty({5}, DType::F64).str() == "f64[5] cpu");
  CHECK(shape_numel({}) == 1);
  CHECK(shape_str({7, 1}) == "[7, 1]");

  Tensor f = Tensor::full({2, 2}, -2.5, DType::F64);
  CHECK(f.to_vector() == std::vector<double>{-2.5, -2.5, -2.5, -2.5});
  Tensor z = Tensor::zeros({3}, DType::F16);
  CHECK(z.to_vector() == std::vector<double>{0, 0, 0});
  Tensor v = Tensor::from({1.5, -2, 3.25, 4, 5, 6}, {2, 3}, DType::F64);
  CHECK(v.data<double>()[2] == 3.25);
  CHECK(v.to_vector() == std::vector<double>{1.5, -2, 3.25, 4, 5, 6});
  Tensor vf = Tensor::from_f32({0.1f, -7.f}, {2});
  CHECK(vf.data<float>()[0] == 0.1f);
  Tensor vi = Tensor::from({3, -4}, {2}, DType::I32);
  CHECK(vi.data<int32_t>()[1] == -4);
  test::check_throws_with([] { Tensor::from({1, 2, 3}, {2, 2}); }, {"Tensor::from", "[2, 2]"},
                          "from with the wrong count");
  CHECK(Tensor::full({1}, 4.0).item() == 4.0);
  test::check_throws_with([&] { v.item(); }, {"item()", "6 elements"}, "item of 6 elements");
  // Typed access checks the dtype.
  test::check_throws_with([&] { v.data<float>(); }, {"f64[2, 3]", "f32"}, "data<float> of f64");
}

TEST_CASE("tensor: random creation has the requested distribution") {
  std::mt19937_64 rng(11);
  Tensor u = Tensor::uniform({20000}, rng, -2.0, 3.0, DType::F64);
  const std::vector<double> uv = u.to_vector();
  double mn = 1e9, mx = -1e9, mean = 0;
  for (double x : uv) mn = std::min(mn, x), mx = std::max(mx, x), mean += x;
  mean /= uv.size();
  CHECK(mn >= -2.0);
  CHECK(mx <= 3.0);
  CHECK(mn < -1.99);
  CHECK(mx > 2.99);
  CHECK(mean == doctest::Approx(0.5).epsilon(0.05));  // std error of the mean ~0.01
  Tensor n = Tensor::randn({20000}, rng, 2.0);
  double s = 0, ss = 0;
  for (double x : n.to_vector()) s += x, ss += x * x;
  CHECK(std::abs(s / 20000) < 0.1);                      // std error 0.014
  CHECK(ss / 20000 == doctest::Approx(4.0).epsilon(0.05));  // std error ~1%
}

TEST_CASE("tensor: reshape and slice0 are views sharing storage") {
  Tensor t = Tensor::from({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4}, DType::F64);
  Tensor r = t.reshape({2, -1, 3});
  CHECK(r.shape() == Shape{2, 2, 3});
  CHECK(r.strides() == Shape{6, 3, 1});
  CHECK(r.storage() == t.storage());
  r.data<double>()[5] = 50;  // visible through the original
  CHECK(t.data<double>()[5] == 50);
  CHECK(t.to_vector()[5] == 50);

  Tensor s = t.slice0(1, 3);
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.offset() == 4);
  CHECK(s.storage() == t.storage());
  CHECK(s.to_vector() == std::vector<double>{4, 50, 6, 7, 8, 9, 10, 11});
  s.data<double>()[0] = -4;
  CHECK(t.data<double>()[4] == -4);
  // A reshape of a slice keeps the slice's offset.
  Tensor sr = s.reshape({8});
  CHECK(sr.offset() == 4);
  CHECK(sr.to_vector()[0] == -4);
  CHECK(t.slice0(2, 2).numel() == 0);

  // clone() does not share.
  Tensor c = t.clone();
  CHECK(c.storage() != t.storage());
  c.data<double>()[0] = 99;
  CHECK(t.data<double>()[0] == 0);

  test::check_throws_with([&] { t.reshape({5, 5}); }, {"reshape", "[3, 4]", "[5, 5]"},
                          "bad reshape");
  test::check_throws_with([&] { t.reshape({-1, -1}); }, {"reshape", "-1"}, "two -1");
  test::check_throws_with([&] { t.slice0(2, 4); }, {"slice0", "[3, 4]"}, "slice past the end");
  test::check_throws_with([&] { t.slice0(2, 1); }, {"slice0"}, "reversed slice");
}

TEST_CASE("tensor: fill_, copy_ and detach") {
  Tensor t = Tensor::empty({2, 3}, DType::F64);
  t.fill_(1.25);
  CHECK(t.to_vector() == std::vector<double>(6, 1.25));
  Tensor h = Tensor::empty({6}, DType::F16);
  h.fill_(0.1);  // stored as the nearest half: 0x2e66
  CHECK(h.data<uint16_t>()[3] == 0x2e66);
  Tensor i = Tensor::empty({2}, DType::I32);
  i.fill_(7);
  CHECK(i.data<int32_t>()[1] == 7);

  Tensor src = Tensor::from({1, -2, 3, -4, 5, -6.5}, {3, 2}, DType::F64);
  Tensor dst = Tensor::zeros({6}, DType::F32);
  dst.copy_(src);  // converts dtype, ignores shape (same numel)
  CHECK(dst.to_vector() == std::vector<double>{1, -2, 3, -4, 5, -6.5});
  test::check_throws_with([&] { dst.copy_(Tensor::zeros({5})); }, {"copy_", "[5]", "[6]"},
                          "copy_ of different sizes");

  Tensor leaf = Tensor::from({1, 2}, {2}, DType::F64);
  leaf.set_requires_grad(true);
  Tensor y = ops::scale(leaf, 2.0);
  Tensor d = y.detach();
  CHECK(y.grad_fn() != nullptr);
  CHECK(d.grad_fn() == nullptr);
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == y.storage());
}

TEST_CASE("fp16: float_to_half and half_to_float on known bit patterns") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(0.0f) == 0x0000);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(65504.0f) == 0x7bff);       // largest finite half
  CHECK(float_to_half(65519.996f) == 0x7bff);     // just below the overflow threshold
  CHECK(float_to_half(65520.0f) == 0x7c00);       // halfway to 2^16: rounds to even = inf
  CHECK(float_to_half(-65520.0f) == 0xfc00);
  CHECK(float_to_half(1e6f) == 0x7c00);
  CHECK(float_to_half(INFINITY) == 0x7c00);
  CHECK(float_to_half(-INFINITY) == 0xfc00);
  CHECK(float_to_half(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_half(std::ldexp(1023.0f, -24)) == 0x03ff);  // largest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24: even (0)
  CHECK(float_to_half(std::ldexp(1.0f, -25) * 1.0001f) == 0x0001);
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);     // tie between 1 and 2 units: 2
  CHECK(float_to_half(std::ldexp(5.0f, -25)) == 0x0002);     // tie between 2 and 3 units: 2
  CHECK(float_to_half(std::ldexp(2047.0f, -25)) == 0x0400);  // tie 0x3ff/0x400: even, normal
  CHECK(float_to_half(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(float_to_half(0.1f) == 0x2e66);
  CHECK(float_to_half(1.0f / 3.0f) == 0x3555);
  // Round to nearest even at 1 (ulp 2^-10): ties go to the even mantissa.
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -22)) == 0x3c00);
  CHECK(float_to_half(2049.0f) == 0x6800);  // 2048 + half ulp: tie, to even (2048)
  CHECK(float_to_half(2051.0f) == 0x6802);  // between 2050 and 2052: tie, to even (2052)
  CHECK(float_to_half(2047.0f + 0.5f) == 0x6800);  // 2047.5: tie 2047 (odd) / 2048: 2048
  // Carry out of the mantissa into the exponent.
  CHECK(float_to_half(std::nextafter(2.0f, 0.0f)) == 0x4000);
  const uint16_t qnan = float_to_half(NAN);
  CHECK((qnan & 0x7c00) == 0x7c00);
  CHECK((qnan & 0x03ff) != 0);  // NaN stays NaN, not inf
  CHECK((float_to_half(f32_bits(0x7f800001u)) & 0x03ff) != 0);  // signalling NaN, small payload
  CHECK((float_to_half(-NAN) & 0x7fff) > 0x7c00);

  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x7bff) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(half_to_float(0x3555) == 0.333251953125f);
  CHECK(half_to_float(0x8000) == 0.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7c00) == INFINITY);
  CHECK(half_to_float(0xfc00) == -INFINITY);
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(std::isnan(half_to_float(0x7c01)));
  CHECK(std::isnan(half_to_float(0xfe00)));
}

TEST_CASE("fp16: exhaustive agreement with the IEEE definition") {
  // Every half bit pattern: half_to_float is exact, and float_to_half(half_to_float(h)) == h.
  int64_t bad_decode = 0, bad_roundtrip = 0;
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t b = uint16_t(h);
    const float f = half_to_float(b);
    const bool is_nan = (b & 0x7c00) == 0x7c00 && (b & 0x3ff) != 0;
    const bool is_inf = (b & 0x7fff) == 0x7c00;
    if (is_nan) {
      bad_decode += !std::isnan(f);
      const uint16_t back = float_to_half(f);
      bad_roundtrip += !((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0);
      continue;
    }
    const double want = is_inf ? ((b & 0x8000) ? -HUGE_VAL : HUGE_VAL) : half_value(b);
    bad_decode += double(f) != want || std::signbit(f) != bool(b & 0x8000);
    bad_roundtrip += float_to_half(f) != b;
  }
  CHECK(bad_decode == 0);
  CHECK(bad_roundtrip == 0);

  // Rounding: every midpoint between neighbouring halves (and one float ulp either side of it),
  // plus random float bit patterns, against the nearest-value search.
  HalfRounder nearest;
  int64_t bad_round = 0, tested = 0;
  auto check_one = [&](float f) {
    ++tested;
    const uint16_t got = float_to_half(f), want = nearest(f);
    if (std::isnan(f)) {
      bad_round += !((got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0);
    } else if (got != want) {
      if (bad_round++ < 5) MESSAGE("float_to_half(", f, ") = ", got, ", nearest even = ", want);
    }
  };
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    const float mid = float((half_value(h) + half_value(h + 1)) / 2);  // exact in float
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      check_one(f);
      check_one(-f);
    }
  }
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 300000; ++i) check_one(f32_bits(bits(rng)));
  // Concentrate on the half range (exponents 2^-26 .. 2^16).
  std::uniform_int_distribution<uint32_t> mant(0, 0x7fffff), ex(127 - 26, 127 + 16);
  for (int i = 0; i < 300000; ++i) check_one(f32_bits((ex(rng) << 23) | mant(rng)));
  CHECK(tested > 600000);
  CHECK(bad_round == 0);
}

TEST_CASE("tensor: dtype conversions f32 <-> f16 <-> f64") {
  const std::vector<double> vals = {1.0, -2.0, 0.1, 65504.0, 70000.0, std::ldexp(1.0, -24),
                                    1.0 + std::ldexp(1.0, -11), 1.0 / 3.0, -0.0, 1e-30};
  Tensor f64 = Tensor::from(vals, {2, 5}, DType::F64);
  Tensor f32 = f64.to(DType::F32);
  CHECK(f32.dtype() == DType::F32);
  CHECK(f32.shape() == Shape{2, 5});
  for (size_t i = 0; i < vals.size(); ++i) CHECK(f32.data<float>()[i] == float(vals[i]));

  Tensor f16 = f32.to(DType::F16);
  CHECK(f16.dtype() == DType::F16);
  const uint16_t want_bits[] = {0x3c00, 0xc000, 0x2e66, 0x7bff, 0x7c00,
                                0x0001, 0x3c00, 0x3555, 0x8000, 0x0000};
  for (size_t i = 0; i < vals.size(); ++i) {
    CHECK_MESSAGE(f16.data<uint16_t>()[i] == want_bits[i], "element ", i);
  }
  // Widening back is exact (to_vector reads f16 too).
  Tensor back32 = f16.to(DType::F32);
  Tensor back64 = f16.to(DType::F64);
  const std::vector<double> v16 = f16.to_vector();
  for (size_t i = 0; i < vals.size(); ++i) {
    CHECK(back32.data<float>()[i] == half_to_float(want_bits[i]));
    CHECK(back64.data<double>()[i] == double(half_to_float(want_bits[i])));
    CHECK(v16[i] == double(half_to_float(want_bits[i])));
  }
  // f64 -> f16 directly equals f64 -> f32 -> f16 for these values.
  Tensor direct = f64.to(DType::F16);
  CHECK(test::same_bytes(direct, f16));
  // f64 -> f32 rounds to nearest.
  CHECK(Tensor::from({0.1}, {1}, DType::F64).to(DType::F32).data<float>()[0] == 0.1f);
  // Same-dtype to() is a copy.
  Tensor same = f32.to(DType::F32);
  CHECK(same.storage() != f32.storage());
  CHECK(test::same_bytes(same, f32));
  // Integers do not convert to floats through to(dtype).
  test::check_throws_with([] { Tensor::from({1, 2}, {2}, DType::I32).to(DType::F32); },
                          {"cannot convert", "i32", "f32"}, "i32 -> f32");
}

TEST_CASE("tensor: rehome_ moves data into a view and every handle follows") {
  std::mt19937_64 rng(5);
  Tensor t = Tensor::uniform({2, 3}, rng, -1, 1);
  const std::vector<double> before = t.to_vector();
  Tensor alias = t;  // a second handle to the same tensor
  Tensor buffer = Tensor::full({10}, -9.0);
  Tensor home = buffer.slice0(3, 9).reshape({2, 3});
  t.rehome_(home);
  CHECK(t.storage() == buffer.storage());
  CHECK(alias.storage() == buffer.storage());
  CHECK(t.offset() == 3);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.to_vector() == before);
  const std::vector<double> b = buffer.to_vector();
  CHECK(b[2] == -9.0);
  CHECK(b[9] == -9.0);
  for (int i = 0; i < 6; ++i) CHECK(b[3 + i] == before[i]);
  buffer.data<float>()[4] = 42.0f;  // the buffer writes through to the tensor ...
  CHECK(alias.data<float>()[1] == 42.0f);
  t.data<float>()[5] = -7.0f;  // ... and the tensor into the buffer
  CHECK(buffer.data<float>()[8] == -7.0f);
  test::check_throws_with([&] { t.rehome_(Tensor::empty({3, 2})); }, {"rehome_", "[2, 3]", "[3, 2]"},
                          "rehome_ shape mismatch");
  test::check_throws_with([&] { t.rehome_(Tensor::empty({2, 3}, DType::F64)); },
                          {"rehome_", "f64"}, "rehome_ dtype mismatch");
}

TEST_CASE("tensor: using an undefined tensor throws") {
  Tensor u;
  CHECK_FALSE(u.defined());
  CHECK(u.str() == "undefined");
  test::check_throws_with([&] { (void)u.shape(); }, {"undefined"}, "shape()");
  test::check_throws_with([&] { (void)u.numel(); }, {"undefined"}, "numel()");
  test::check_throws_with([&] { (void)u.dtype(); }, {"undefined"}, "dtype()");
  test::check_throws_with([&] { u.raw(); }, {"undefined"}, "raw()");
  test::check_throws_with([&] { (void)u.requires_grad(); }, {"undefined"}, "requires_grad()");
  test::check_throws_with([&] { u.fill_(1); }, {"undefined"}, "fill_()");
  test::check_throws_with([&] { u.backward(); }, {"undefined"}, "backward()");
  test::check_throws_with([&] { ops::relu(u); }, {"undefined"}, "relu(undefined)");
  test::check_throws_with([&] { ops::mul(u, Tensor::zeros({1})); }, {"undefined"}, "mul");
}

TEST_CASE("tensor: data<T>() is host memory only, device_data<T>() device memory only") {
  // An empty CUDA tensor needs no allocation, so this runs in every build: the accessors check
  // the device before they touch memory.
  Tensor dev = Tensor::empty({0, 3}, DType::F32, Device::CUDA);
  CHECK(dev.device() == Device::CUDA);
  test::check_throws_with([&] { dev.data<float>(); },
                          {"data<T>()", "f32[0, 3] cuda", "host memory", ".to(Device::CPU)"},
                          "data<float> of a cuda tensor");
  const Tensor& cdev = dev;
  test::check_throws_with([&] { cdev.data<float>(); }, {"f32[0, 3] cuda", ".to(Device::CPU)"},
                          "const data<float> of a cuda tensor");
  // The dtype is still checked first, with its own message.
  test::check_throws_with([&] { dev.data<double>(); }, {"f32[0, 3] cuda", "accessed as f64"},
                          "data<double> of an f32 cuda tensor");
  CHECK(dev.device_data<float>() == dev.raw());
  Tensor host = Tensor::zeros({2}, DType::F16);
  CHECK(host.data<uint16_t>() == host.raw());
  test::check_throws_with([&] { host.device_data<uint16_t>(); },
                          {"device_data<T>()", "f16[2] cpu", "CUDA tensors", ".to(Device::CUDA)"},
                          "device_data of a host tensor");
  test::check_throws_with([&] { host.device_data<float>(); }, {"f16[2] cpu", "accessed as f32"},
                          "device_data<float> of an f16 tensor");
}

TEST_CASE("ops: shape errors name the op and both shapes") {
  using test::check_throws_with;
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  check_throws_with([&] { ops::mul(a, b); }, {"mul", "[2, 3]", "[3, 2]"}, "mul");
  check_throws_with([&] { ops::add(a, b); }, {"add", "[2, 3]", "[3, 2]"}, "add");
  check_throws_with([&] { ops::mul(a, Tensor::zeros({2, 3}, DType::F64)); },
                    {"mul", "f32[2, 3]", "f64[2, 3]"}, "mul dtypes");
  check_throws_with([&] { ops::linear(Tensor::zeros({4, 5}), Tensor::zeros({3, 6}), Tensor()); },
                    {"linear", "[4, 5]", "[3, 6]"}, "linear");
  check_throws_with([&] {
    ops::linear(Tensor::zeros({4, 5}), Tensor::zeros({3, 5}), Tensor::zeros({4}));
  }, {"linear", "[4]", "[3, 5]"}, "linear bias");
  check_throws_with([&] {
    ops::conv2d(Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({4, 5, 3, 3}), Tensor(), 1, 1);
  }, {"conv2d", "[1, 3, 8, 8]", "[4, 5, 3, 3]"}, "conv2d channels");
  check_throws_with([&] {
    ops::conv2d(Tensor::zeros({1, 3, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), 1, 1);
  }, {"conv2d", "[1, 3, 8]", "[4, 3, 3, 3]"}, "conv2d rank");
  check_throws_with([&] {
    ops::conv2d(Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5}), 1, 1);
  }, {"conv2d", "[5]", "[4, 3, 3, 3]"}, "conv2d bias");
  check_throws_with([&] {
    ops::conv2d(Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 5, 5}), Tensor(), 1, 0);
  }, {"conv2d", "[1, 3, 2, 2]"}, "conv2d kernel too large");
  check_throws_with([&] {
    ops::conv2d(Tensor::zeros({1, 4, 8, 8}), Tensor::zeros({8, 1, 3, 3}), Tensor(), 1, 1, 4);
  }, {"conv2d", "[1, 4, 8, 8]", "[8, 1, 3, 3]"}, "grouped conv with K != C");
  check_throws_with([&] { ops::max_pool2d(Tensor::zeros({1, 2, 3, 3}), 4, 4); },
                    {"max_pool2d", "[1, 2, 3, 3]"}, "pool window too large");
  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0);
  check_throws_with([&] {
    ops::batch_norm(Tensor::zeros({2, 4, 2, 2}), Tensor::zeros({3}), Tensor::zeros({3}), rm, rv,
                    true, 0.99f, 1e-3f);
  }, {"batch_norm", "[3]", "[2, 4, 2, 2]"}, "batch_norm channels");
  check_throws_with([&] {
    ops::cross_entropy(Tensor::zeros({4, 10}), Tensor::zeros({3}, DType::I32));
  }, {"cross_entropy", "[4, 10]", "[3]"}, "cross_entropy");
  check_throws_with([&] {
    ops::cross_entropy(Tensor::zeros({2, 10}), Tensor::from({1, 10}, {2}, DType::I32));
  }, {"cross_entropy", "label 10"}, "cross_entropy label out of range");
  check_throws_with([&] { ops::reshape(a, {4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"}, "reshape");
}

TEST_CASE("backend: the CPU table is registered, devices are explicit") {
  CHECK(device_available(Device::CPU));
  const KernelTable& k = kernels(Device::CPU);
  CHECK(k.device == Device::CPU);
  CHECK(bool(k.conv2d_forward));
  CHECK(bool(k.adam_step));
  Tensor t = Tensor::full({3}, 2.0);
  Tensor c = t.to(Device::CPU);  // an explicit copy, never an alias
  CHECK(c.storage() != t.storage());
  CHECK(c.to_vector() == t.to_vector());
  if (!device_available(Device::CUDA)) {
    CHECK_FALSE(device_unavailable_reason(Device::CUDA).empty());
    test::check_throws_with([] { kernels(Device::CUDA); }, {"cuda", "unavailable"},
                            "CUDA table without a GPU");
    CHECK_THROWS_AS(Tensor::empty({2}, DType::F32, Device::CUDA), Error);
  }
}

}  // namespace
}  // namespace dsc
