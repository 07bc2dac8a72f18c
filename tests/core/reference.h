// Naive reference implementations for the core tests, in double, written straight from the
// definitions (plain loops over NCHW / KCRS / [N, I] row-major vectors). They share no code with
// the library; the tests compare the library's ops and layers against them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dsc::test::ref {

using Vec = std::vector<double>;

struct ConvDims {
  int n, c, h, w;   // input
  int k, r, s;      // filters (square or not)
  int stride, pad;
  bool depthwise;   // groups == C == K
  int p() const { return (h + 2 * pad - r) / stride + 1; }
  int q() const { return (w + 2 * pad - s) / stride + 1; }
};

// y[n][k][p][q] = b[k] + sum_{c, i, j} x[n][c][p*st - pad + i][q*st - pad + j] * w[k][c][i][j]
// (zero padding); depthwise: only c == k, w[k][0][i][j].
inline Vec conv2d(const ConvDims& d, const Vec& x, const Vec& w, const Vec* b) {
  const int P = d.p(), Q = d.q();
  const int cin = d.depthwise ? 1 : d.c;
  Vec y(size_t(d.n) * d.k * P * Q, 0.0);
  for (int n = 0; n < d.n; ++n)
    for (int k = 0; k < d.k; ++k)
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q) {
          double acc = b ? (*b)[k] : 0.0;
          for (int ci = 0; ci < cin; ++ci) {
            const int c = d.depthwise ? k : ci;
            for (int i = 0; i < d.r; ++i)
              for (int j = 0; j < d.s; ++j) {
                const int hh = p * d.stride - d.pad + i, ww = q * d.stride - d.pad + j;
                if (hh < 0 || hh >= d.h || ww < 0 || ww >= d.w) continue;
                acc += x[((size_t(n) * d.c + c) * d.h + hh) * d.w + ww] *
                       w[((size_t(k) * cin + ci) * d.r + i) * d.s + j];
              }
          }
          y[((size_t(n) * d.k + k) * P + p) * Q + q] = acc;
        }
  return y;
}

// |x| * |w| summed like conv2d: the magnitude that bounds its rounding error.
inline Vec conv2d_abs(const ConvDims& d, const Vec& x, const Vec& w, const Vec* b) {
  Vec ax(x.size()), aw(w.size()), ab;
  std::transform(x.begin(), x.end(), ax.begin(), [](double v) { return std::abs(v); });
  std::transform(w.begin(), w.end(), aw.begin(), [](double v) { return std::abs(v); });
  if (b) {
    ab.resize(b->size());
    std::transform(b->begin(), b->end(), ab.begin(), [](double v) { return std::abs(v); });
  }
  return conv2d(d, ax, aw, b ? &ab : nullptr);
}

// y[n][o] = b[o] + sum_i x[n][i] * w[o][i].
inline Vec linear(int n, int in, int out, const Vec& x, const Vec& w, const Vec* b) {
  Vec y(size_t(n) * out);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      double acc = b ? (*b)[o] : 0.0;
      for (int j = 0; j < in; ++j) acc += x[size_t(i) * in + j] * w[size_t(o) * in + j];
      y[size_t(i) * out + o] = acc;
    }
  return y;
}

inline Vec relu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0.0;
  return y;
}

// k x k windows, stride st, no padding, over each of the n*c planes of h x w.
inline Vec max_pool2d(int n, int c, int h, int w, int k, int st, const Vec& x) {
  const int P = (h - k) / st + 1, Q = (w - k) / st + 1;
  Vec y(size_t(n) * c * P * Q);
  for (int pl = 0; pl < n * c; ++pl)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q) {
        double m = -HUGE_VAL;
        for (int i = 0; i < k; ++i)
          for (int j = 0; j < k; ++j)
            m = std::max(m, x[(size_t(pl) * h + p * st + i) * w + q * st + j]);
        y[(size_t(pl) * P + p) * Q + q] = m;
      }
  return y;
}

struct BatchNormResult {
  Vec y, mean, var, invstd, running_mean, running_var;
};

// Training mode: per channel, mean and biased variance over (N, H, W); y = gamma (x - mean) /
// sqrt(var + eps) + beta; running = momentum * running + (1 - momentum) * batch statistic, with
// the UNBIASED variance (m / (m - 1) times the biased one) for the running variance.
inline BatchNormResult batch_norm_train(int n, int c, int hw, const Vec& x, const Vec& gamma,
                                        const Vec& beta, const Vec& running_mean,
                                        const Vec& running_var, double momentum, double eps) {
  BatchNormResult r;
  r.y.resize(x.size());
  r.mean.resize(c);
  r.var.resize(c);
  r.invstd.resize(c);
  r.running_mean.resize(c);
  r.running_var.resize(c);
  const double m = double(n) * hw;
  for (int ch = 0; ch < c; ++ch) {
    double s = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < hw; ++j) s += x[(size_t(i) * c + ch) * hw + j];
    const double mean = s / m;
    double ss = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < hw; ++j) {
        const double dlt = x[(size_t(i) * c + ch) * hw + j] - mean;
        ss += dlt * dlt;
      }
    const double var = ss / m;
    r.mean[ch] = mean;
    r.var[ch] = var;
    r.invstd[ch] = 1.0 / std::sqrt(var + eps);
    r.running_mean[ch] = momentum * running_mean[ch] + (1 - momentum) * mean;
    r.running_var[ch] = momentum * running_var[ch] + (1 - momentum) * ss / (m - 1);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < hw; ++j) {
        const size_t idx = (size_t(i) * c + ch) * hw + j;
        r.y[idx] = gamma[ch] * (x[idx] - mean) / std::sqrt(var + eps) + beta[ch];
      }
  }
  return r;
}

// Eval mode: the running statistics in place of the batch's.
inline Vec batch_norm_eval(int n, int c, int hw, const Vec& x, const Vec& gamma, const Vec& beta,
                           const Vec& running_mean, const Vec& running_var, double eps) {
  Vec y(x.size());
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch)
      for (int j = 0; j < hw; ++j) {
        const size_t idx = (size_t(i) * c + ch) * hw + j;
        y[idx] = gamma[ch] * (x[idx] - running_mean[ch]) / std::sqrt(running_var[ch] + eps) +
                 beta[ch];
      }
  return y;
}

// mean_n (log sum_j exp(z[n][j]) - z[n][label[n]]), with the log-sum-exp taken around the row
// maximum in long double (so logits of +-1000 are fine).
inline double cross_entropy(int n, int m, const Vec& z, const std::vector<int>& labels) {
  long double total = 0;
  for (int i = 0; i < n; ++i) {
    long double mx = z[size_t(i) * m];
    for (int j = 1; j < m; ++j) mx = std::max<long double>(mx, z[size_t(i) * m + j]);
    long double s = 0;
    for (int j = 0; j < m; ++j) s += std::exp(static_cast<long double>(z[size_t(i) * m + j]) - mx);
    total += std::log(s) + mx - z[size_t(i) * m + labels[size_t(i)]];
  }
  return static_cast<double>(total / n);
}

}  // namespace dsc::test::ref
