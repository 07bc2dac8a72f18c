// Batch normalisation over (N, H, W) for each channel of an NCHW buffer, CPU.
// x, y, dy, dx: [N, C, H, W]; gamma, beta, running and saved statistics: [C], same type T.
// Training normalises with the batch mean and the biased variance; the running variance is updated
// with the unbiased one. momentum follows Keras: running = momentum * running + (1 - momentum) *
// batch. Tested against a naive reference and finite differences in tests/core/test_ops_forward.cpp
// and test_grad_check.cpp.
#pragma once

namespace dsc::cpu {

template <class T>
void batch_norm_forward_train(const T* x, int n, int c, int hw, const T* gamma, const T* beta,
                              T momentum, T eps, T* running_mean, T* running_var, T* y,
                              T* save_mean, T* save_invstd);
template <class T>
void batch_norm_forward_eval(const T* x, int n, int c, int hw, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y);
template <class T>
void batch_norm_backward(const T* x, const T* dy, int n, int c, int hw, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta);

}  // namespace dsc::cpu
