// Softmax cross-entropy, CPU (see cross_entropy.h). Log-sum-exp in double per row.
#include <cmath>

#include "core/cpu/cross_entropy.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

template <class T>
double cross_entropy_forward(const T* logits, const int32_t* labels, int n, int m, T* probs) {
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    const T* row = logits + int64_t(i) * m;
    double mx = row[0];
    for (int j = 1; j < m; ++j) mx = row[j] > mx ? double(row[j]) : mx;
    double z = 0;
    for (int j = 0; j < m; ++j) z += std::exp(row[j] - mx);
    const double log_z = std::log(z) + mx;
    for (int j = 0; j < m; ++j)
      probs[int64_t(i) * m + j] = static_cast<T>(std::exp(row[j] - log_z));
    loss += log_z - row[labels[i]];
  }
  return loss / n;
}

template <class T>
void cross_entropy_backward(const T* probs, const int32_t* labels, int n, int m, double dloss,
                            T* dlogits) {
  const double k = dloss / n;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < m; ++j) {
      const double p = probs[int64_t(i) * m + j];
      dlogits[int64_t(i) * m + j] = static_cast<T>(k * (p - (j == labels[i] ? 1.0 : 0.0)));
    }
  }
}

template <class T>
int count_correct(const T* logits, const int32_t* labels, int n, int m) {
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    const T* row = logits + int64_t(i) * m;
    int best = 0;
    for (int j = 1; j < m; ++j)
      if (row[j] > row[best]) best = j;
    correct += best == labels[i];
  }
  return correct;
}

#define DSC_INSTANTIATE(T)                                                                 \
  template double cross_entropy_forward<T>(const T*, const int32_t*, int, int, T*);        \
  template void cross_entropy_backward<T>(const T*, const int32_t*, int, int, double, T*); \
  template int count_correct<T>(const T*, const int32_t*, int, int);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {
namespace {

void check_labels(const Tensor& labels, int m) {
  const int32_t* l = labels.data<int32_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    DSC_CHECK(l[i] >= 0 && l[i] < m, "cross_entropy: label ", l[i], " at row ", i,
              " outside [0, ", m, ")");
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  const int n = int(logits.dim(0)), m = int(logits.dim(1));
  check_labels(labels, m);
  Tensor lw = widen(logits), po = scratch_for(probs);
  double l = 0;
  by_dtype(po.dtype(), [&]<class T>() {
    l = cpu::cross_entropy_forward(ptr<T>(lw), labels.data<int32_t>(), n, m, ptr<T>(po));
  });
  narrow_into(po, probs);
  loss.fill_(l);
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& dloss,
                  Tensor& dlogits) {
  const int n = int(probs.dim(0)), m = int(probs.dim(1));
  Tensor pw = widen(probs), o = scratch_for(dlogits);
  const double d = dloss.item();
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::cross_entropy_backward(ptr<T>(pw), labels.data<int32_t>(), n, m, d, ptr<T>(o));
  });
  narrow_into(o, dlogits);
}

void count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct) {
  Tensor lw = widen(logits);
  int c = 0;
  by_dtype(lw.dtype(), [&]<class T>() {
    c = cpu::count_correct(ptr<T>(lw), labels.data<int32_t>(), int(lw.dim(0)), int(lw.dim(1)));
  });
  correct.data<int32_t>()[0] += c;
}

}  // namespace dsc::cpu
