// Zero-copy exchange with other GPU libraries (CuPy, PyTorch, Numba, JAX):
// - DeviceArray.__dlpack__(stream=None) / __dlpack_device__(): the DLPack protocol, so that
//   torch.from_dlpack(a) and cupy.from_dlpack(a) read nnfast's memory in place;
// - from_cuda_array_interface(obj): a DeviceArray viewing the memory of any object that has
//   __cuda_array_interface__ (C-contiguous, float32 / int64 / int32 / uint8), keeping obj alive.
// The DLPack structs below are the protocol's ABI (dlpack.h, version 0.x "dltensor" capsules).
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

struct DLDevice {
  int32_t device_type;  // kDLCUDA = 2
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // kDLInt = 0, kDLUInt = 1, kDLFloat = 2
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // null: C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
constexpr int32_t kDLCUDA = 2;

// What a capsule owns: a reference to the array's memory and its shape.
struct Exported {
  DLManagedTensor tensor;
  std::shared_ptr<void> buffer;
  std::vector<int64_t> shape;
};

void delete_exported(DLManagedTensor* t) { delete static_cast<Exported*>(t->manager_ctx); }

DLDataType dl_dtype(DType d) {
  switch (d) {
    case DType::float32: return {2, 32, 1};
    case DType::int64: return {0, 64, 1};
    case DType::int32: return {0, 32, 1};
    case DType::uint8: return {1, 8, 1};
  }
  return {2, 32, 1};
}

// The device holding ptr; the current device for an empty array (a null pointer).
int device_of_pointer(const void* ptr) {
  int device = 0;
  check_cuda(ptr ? pointer_device(ptr, &device) : current_device(&device), "__dlpack_device__");
  return device;
}

// A "dltensor" capsule of the array; a consumer renames it "used_dltensor" and calls the
// deleter itself, else the capsule's destructor does.
py::capsule to_dlpack(const DeviceArray& a, py::object stream) {
  // The consumer's stream may be any: nnfast's finishes its work first.
  (void)stream;
  refuse_while_capturing("__dlpack__");
  check_cuda(synchronize(), "__dlpack__");
  auto* e = new Exported{{}, a.buffer, a.shape};
  e->tensor.dl_tensor = {a.data(), {kDLCUDA, device_of_pointer(a.data())}, (int32_t)a.shape.size(),
                         dl_dtype(a.dtype), e->shape.data(), nullptr, 0};
  e->tensor.manager_ctx = e;
  e->tensor.deleter = delete_exported;
  return py::capsule(&e->tensor, "dltensor", [](PyObject* capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor")) {  // never consumed
      auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
      t->deleter(t);
    }
  });
}

DType dtype_from_typestr(const std::string& typestr) {
  for (DType d : {DType::float32, DType::int64, DType::int32, DType::uint8})
    if (typestr == dtype_typestr(d)) return d;
  throw py::type_error("nnfast takes float32, int64, int32 or uint8 GPU arrays, got typestr " +
                       typestr);
}

std::shared_ptr<DeviceArray> from_cuda_array_interface(py::object obj) {
  py::dict info = obj.attr("__cuda_array_interface__");
  auto shape = py::cast<std::vector<int64_t>>(info["shape"]);
  DType dtype = dtype_from_typestr(py::cast<std::string>(info["typestr"]));
  if (info.contains("strides") && !info["strides"].is_none()) {
    auto strides = py::cast<std::vector<int64_t>>(info["strides"]);
    if (strides.size() != shape.size())
      throw py::value_error("from_cuda_array_interface: strides and shape differ in length");
    int64_t expected = (int64_t)dtype_size(dtype);
    for (size_t i = shape.size(); i-- > 0;) {
      if (shape[i] != 1 && strides[i] != expected)
        throw py::value_error("from_cuda_array_interface: the array must be C-contiguous");
      expected *= shape[i];
    }
  }
  if (info.contains("mask") && !info["mask"].is_none())
    throw py::value_error("from_cuda_array_interface: masked arrays are not supported");
  auto data = py::cast<py::tuple>(info["data"]);
  void* ptr = reinterpret_cast<void*>(py::cast<uintptr_t>(data[0]));
  if (info.contains("stream") && !info["stream"].is_none())   // the producer's work first
    check_cuda(stream_synchronize(py::cast<int64_t>(info["stream"])),
               "from_cuda_array_interface");
  // The memory stays the owner's: the buffer holds a reference to obj, released with the GIL
  // once nnfast's stream is done with the memory (the owner may reuse it on a stream of its own).
  auto* owner = new py::object(obj);
  std::shared_ptr<void> buffer(ptr, [owner](void*) {
    if (!capturing()) synchronize();
    py::gil_scoped_acquire gil;
    delete owner;
  });
  return std::make_shared<DeviceArray>(DeviceArray{buffer, shape, dtype});
}

}  // namespace

void bind_interchange(py::module_& m) {
  py::object cls = m.attr("DeviceArray");
  cls.attr("__dlpack__") = py::cpp_function(
      [](const DeviceArray& a, py::object stream) { return to_dlpack(a, stream); },
      py::name("__dlpack__"), py::is_method(cls), py::arg("stream") = py::none(),
      "A DLPack capsule viewing this array's memory (torch.from_dlpack, cupy.from_dlpack).");
  cls.attr("__dlpack_device__") = py::cpp_function(
      [](const DeviceArray& a) { return py::make_tuple(kDLCUDA, device_of_pointer(a.data())); },
      py::name("__dlpack_device__"), py::is_method(cls), "(kDLCUDA, device id).");
  m.def("from_cuda_array_interface", &from_cuda_array_interface, py::arg("obj"),
        "A DeviceArray viewing the GPU memory of an object with __cuda_array_interface__ "
        "(CuPy, PyTorch, Numba), without a copy; obj is kept alive while the view is.");
}

}  // namespace cuda
}  // namespace nnfast
