// Tensor: an n-dimensional view (shape, strides, offset) of shared storage on one device, with the
// autograd fields (requires_grad, grad, grad_fn). Layout conventions used throughout: activations
// are NCHW, convolution weights KCRS (K outputs, C inputs, R x S kernel), Linear weights [out, in].
// Moves between host and device are explicit: to(Device); nothing syncs behind the user's back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace dsc {

enum class DType : uint8_t { F32, F16, F64, I32, U8 };
enum class Device : uint8_t { CPU, CUDA };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw bytes on one device. Freed through the device's allocator.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
};

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;

  // ---- creation ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device device = Device::CPU);
  // Host tensor from values (converted to dtype).
  static Tensor from(const std::vector<double>& values, const Shape& shape,
                     DType dtype = DType::F32);
  static Tensor from_f32(const std::vector<float>& values, const Shape& shape);
  // Host tensors of independent N(0, std^2) or U(lo, hi) draws.
  static Tensor randn(const Shape& shape, std::mt19937_64& rng, double std = 1.0,
                      DType dtype = DType::F32);
  static Tensor uniform(const Shape& shape, std::mt19937_64& rng, double lo, double hi,
                        DType dtype = DType::F32);
  // A view of `numel(shape)` elements of `storage` starting at element `offset`.
  static Tensor view_of(std::shared_ptr<Storage> storage, size_t offset, const Shape& shape,
                        DType dtype);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int ndim() const { return static_cast<int>(shape().size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  size_t offset() const;
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "f32[128, 3, 32, 32] cpu"
  const std::shared_ptr<Storage>& storage() const;
  // Identity of the underlying object (two handles to the same tensor compare equal).
  const TensorImpl* id() const { return impl_.get(); }

  // ---- data access (pointer to element 0 of this view) ----
  // raw(): the address on the tensor's device, unchecked (kernels' plumbing).
  void* raw();
  const void* raw() const;
  // data<T>(): host memory to read or write in C++; checks the dtype (T = float, double, int32_t,
  // uint8_t, uint16_t for f16 bits) and that the tensor is on the CPU (a device address read on
  // the host would crash or read garbage): copy it first with .to(Device::CPU).
  template <class T> T* data();
  template <class T> const T* data() const;
  // device_data<T>(): the same for a CUDA tensor, to hand to a CUDA kernel (checks the dtype and
  // that the tensor is on the GPU).
  template <class T> T* device_data();
  template <class T> const T* device_data() const;

  // ---- conversions and copies (new tensors; never part of the autograd graph) ----
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  Tensor contiguous() const;
  // Same storage, new shape (must be contiguous; one dim may be -1).
  Tensor reshape(const Shape& shape) const;
  // Contiguous slice [begin, end) along dim 0, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // Values as f64 on the host (any dtype, any device).
  std::vector<double> to_vector() const;
  double item() const;  // the value of a one-element tensor
  // Fill in place (any device).
  void fill_(double value);
  // Copy values from `src` (same numel; dtype converted; device may differ).
  void copy_(const Tensor& src);
  // Move this tensor's data into `home` (same shape and dtype, any device, e.g. a view into a
  // model's flat parameter buffer) and make every handle to this tensor use that storage.
  void rehome_(const Tensor& home);

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;           // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g);  // e.g. a view into a model's gradient buffer
  void zero_grad();              // fills the gradient with zeros (keeps its storage)
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn);
  // Reverse-mode pass from this scalar (gradient 1); accumulates into leaves' grad().
  void backward() const;
  // The same tensor data, cut from the graph.
  Tensor detach() const;

 private:
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // in elements
  Shape shape;
  Shape strides;
  DType dtype = DType::F32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::F16; }  // fp16 bits

}  // namespace dsc
