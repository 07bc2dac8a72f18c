// Softmax cross-entropy, CPU (see cross_entropy.h). Log-sum-exp in double per row.
#include <cmath>

#include "core/cpu/cross_entropy.h"

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
