// Softmax cross-entropy on raw buffers, CPU: logits [N, M] row-major, labels int32 [N] in [0, M).
// forward returns the mean over rows of -log softmax(logits)[label] and writes probs [N, M];
// backward writes dlogits = dloss * (probs - onehot(label)) / N.
// Tested against a naive reference and finite differences in tests/core/test_ops_forward.cpp and
// test_grad_check.cpp.
#pragma once

#include <cstdint>

namespace dsc::cpu {

template <class T>
double cross_entropy_forward(const T* logits, const int32_t* labels, int n, int m, T* probs);
template <class T>
void cross_entropy_backward(const T* probs, const int32_t* labels, int n, int m, double dloss,
                            T* dlogits);
template <class T>
int count_correct(const T* logits, const int32_t* labels, int n, int m);

}  // namespace dsc::cpu
