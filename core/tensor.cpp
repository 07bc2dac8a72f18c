// Tensor, Storage and dtype helpers (see tensor.h). Storage is allocated through the owning
// device's kernel table; cross-device copies go through the CUDA table's copy_bytes.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/half.h"

namespace dsc {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// ---- Storage --------------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  if (nbytes > 0) data = kernels(dev).alloc(nbytes);
}

Storage::~Storage() {
  if (data) kernels(device).free(data);
}

// ---- creation -------------------------------------------------------------------------------

namespace {
Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

void check_shape(const Shape& shape) {
  for (int64_t d : shape) DSC_CHECK(d >= 0, "tensor shape ", shape_str(shape), " has a negative size");
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::F64; }

// Host element i of a contiguous host buffer of dtype t, as double / written from double.
double load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
void store(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
  }
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from(const std::vector<double>& values, const Shape& shape, DType dtype) {
  DSC_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from: ",
            values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype);
  for (size_t i = 0; i < values.size(); ++i) store(t.raw(), dtype, i, values[i]);
  return t;
}

Tensor Tensor::from_f32(const std::vector<float>& values, const Shape& shape) {
  DSC_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "Tensor::from_f32: ",
            values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::randn(const Shape& shape, std::mt19937_64& rng, double std, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::normal_distribution<double> dist(0.0, std);
  for (int64_t i = 0; i < t.numel(); ++i) store(t.raw(), dtype, i, dist(rng));
  return t;
}

Tensor Tensor::uniform(const Shape& shape, std::mt19937_64& rng, double lo, double hi,
                       DType dtype) {
  Tensor t = empty(shape, dtype);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) store(t.raw(), dtype, i, dist(rng));
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, size_t offset, const Shape& shape,
                       DType dtype) {
  check_shape(shape);
  DSC_CHECK((offset + shape_numel(shape)) * dtype_size(dtype) <= storage->bytes,
            "Tensor::view_of: view ", shape_str(shape), " at offset ", offset,
            " exceeds storage of ", storage->bytes, " bytes");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

// ---- metadata -------------------------------------------------------------------------------

TensorImpl& Tensor::impl() const {
  DSC_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}
const Shape& Tensor::shape() const { return impl().shape; }
const Shape& Tensor::strides() const { return impl().strides; }
int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  DSC_CHECK(j >= 0 && j < n, "dim ", i, " out of range for tensor ", str());
  return shape()[j];
}
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return impl().dtype; }
Device Tensor::device() const { return impl().storage->device; }
size_t Tensor::offset() const { return impl().offset; }
const std::shared_ptr<Storage>& Tensor::storage() const { return impl().storage; }
bool Tensor::is_contiguous() const { return impl().strides == contiguous_strides(shape()); }

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device_name(device());
}

void* Tensor::raw() {
  return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
}
const void* Tensor::raw() const {
  return static_cast<const char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
}

namespace {
// The typed accessors' checks: T matches the dtype, and the memory is on the device the accessor
// is for.
template <class T> void check_typed_access(const Tensor& t, Device expected, const char* accessor) {
  DSC_CHECK(t.dtype() == dtype_of<T>(), "tensor ", t.str(), " accessed as ",
            dtype_name(dtype_of<T>()));
  if (t.device() == expected) return;
  if (expected == Device::CPU) {
    throw Error(detail::cat(accessor, "<T>() of tensor ", t.str(), ": the tensor is on ",
                            device_name(t.device()), " and ", accessor,
                            "<T>() reads host memory; copy it with .to(Device::CPU) first (a CUDA "
                            "kernel takes device_data<T>())"));
  }
  throw Error(detail::cat(accessor, "<T>() of tensor ", t.str(), ": the tensor is on ",
                          device_name(t.device()), " and ", accessor,
                          "<T>() is for CUDA tensors; move it with .to(Device::CUDA) first (host "
                          "code reads a CPU tensor with data<T>())"));
}
}  // namespace

template <class T> T* Tensor::data() {
  check_typed_access<T>(*this, Device::CPU, "data");
  return static_cast<T*>(raw());
}
template <class T> const T* Tensor::data() const {
  check_typed_access<T>(*this, Device::CPU, "data");
  return static_cast<const T*>(raw());
}
template <class T> T* Tensor::device_data() {
  check_typed_access<T>(*this, Device::CUDA, "device_data");
  return static_cast<T*>(raw());
}
template <class T> const T* Tensor::device_data() const {
  check_typed_access<T>(*this, Device::CUDA, "device_data");
  return static_cast<const T*>(raw());
}
#define DSC_INSTANTIATE_TYPED_ACCESS(T)               \
  template T* Tensor::data<T>();                      \
  template const T* Tensor::data<T>() const;          \
  template T* Tensor::device_data<T>();               \
  template const T* Tensor::device_data<T>() const;
DSC_INSTANTIATE_TYPED_ACCESS(float)
DSC_INSTANTIATE_TYPED_ACCESS(double)
DSC_INSTANTIATE_TYPED_ACCESS(int32_t)
DSC_INSTANTIATE_TYPED_ACCESS(uint8_t)
DSC_INSTANTIATE_TYPED_ACCESS(uint16_t)
#undef DSC_INSTANTIATE_TYPED_ACCESS

// ---- conversions ----------------------------------------------------------------------------

Tensor Tensor::to(Device device) const {
  Tensor src = contiguous();
  if (device == src.device()) return src.clone();
  Tensor out = empty(shape(), dtype(), device);
  const Device other = device == Device::CPU ? src.device() : device;
  kernels(other).copy_bytes(out.raw(), device, src.raw(), src.device(), nbytes());
  return out;
}

Tensor Tensor::to(DType t) const {
  Tensor src = contiguous();
  Tensor out = empty(shape(), t, device());
  if (t == dtype()) {
    out.copy_(src);
  } else {
    DSC_CHECK(is_float(t) && is_float(dtype()), "cannot convert ", str(), " to ", dtype_name(t));
    kernels(device()).cast(src, out);
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  // Only contiguous views are created by this library today.
  throw Error("contiguous(): strided tensors are not supported (" + str() + ")");
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DSC_CHECK(infer < 0, "reshape ", str(), " to ", shape_str(new_shape), ": more than one -1");
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0) s[infer] = numel() / known;
  DSC_CHECK(shape_numel(s) == numel(), "reshape: cannot view ", str(), " as ",
            shape_str(new_shape));
  DSC_CHECK(is_contiguous(), "reshape of a non-contiguous tensor ", str());
  Tensor out = view_of(storage(), offset(), s, dtype());
  return out;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  DSC_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= dim(0), "slice0(", begin, ", ",
            end, ") out of range for ", str());
  Shape s = shape();
  s[0] = end - begin;
  const int64_t row = s[0] == 0 ? 0 : shape_numel(s) / s[0];
  return view_of(storage(), offset() + static_cast<size_t>(begin * row), s, dtype());
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = device() == Device::CPU ? contiguous() : to(Device::CPU);
  std::vector<double> v(static_cast<size_t>(host.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load(host.raw(), host.dtype(), i);
  return v;
}

double Tensor::item() const {
  DSC_CHECK(numel() == 1, "item() of a tensor with ", numel(), " elements: ", str());
  return to_vector()[0];
}

void Tensor::fill_(double value) {
  if (!is_float(dtype()) && device() == Device::CPU) {
    for (int64_t i = 0; i < numel(); ++i) store(raw(), dtype(), i, value);
    return;
  }
  kernels(device()).fill(*this, value);
}

void Tensor::copy_(const Tensor& src) {
  DSC_CHECK(src.numel() == numel(), "copy_: ", src.str(), " into ", str(), ": sizes differ");
  Tensor s = src;
  if (s.dtype() != dtype()) s = s.to(dtype());
  if (s.device() == device()) {
    kernels(device()).copy_bytes(raw(), device(), s.raw(), s.device(), nbytes());
  } else {
    const Device other = device() == Device::CPU ? s.device() : device();
    kernels(other).copy_bytes(raw(), device(), s.raw(), s.device(), nbytes());
  }
}

void Tensor::rehome_(const Tensor& home) {
  DSC_CHECK(home.shape() == shape() && home.dtype() == dtype(), "rehome_: ", str(), " into ",
            home.str());
  Tensor dst = home;
  dst.copy_(*this);
  impl().storage = home.storage();
  impl().offset = home.offset();
  impl().strides = home.strides();
}

// ---- autograd fields --------------------------------------------------------------------------

bool Tensor::requires_grad() const { return impl().requires_grad; }
Tensor& Tensor::set_requires_grad(bool on) {
  impl().requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return impl().grad; }
void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) {
    DSC_CHECK(g.shape() == shape(), "set_grad: gradient ", g.str(), " for tensor ", str());
  }
  impl().grad = g;
}
void Tensor::zero_grad() {
  if (impl().grad.defined()) impl().grad.fill_(0.0);
}
const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl().grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<Node> fn) { impl().grad_fn = std::move(fn); }

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->offset = offset();
  impl->shape = shape();
  impl->strides = strides();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

}  // namespace dsc
