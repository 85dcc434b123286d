// nnfast._cuda.DeviceArray: shape, dtype, .numpy(), __cuda_array_interface__ (version 3), upload
// (to_device, copy_from), download, zero fill, reshaped views sharing the memory.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

using Shape = std::vector<int64_t>;

Shape shape_of(const py::array& a) {
  return Shape(a.shape(), a.shape() + a.ndim());
}

DType dtype_of(const py::array& a) {
  return dtype_from_name(py::str(a.dtype().attr("name")).cast<std::string>());
}

// Copies a C-contiguous NumPy array of the same dtype and size into `dst`.
void upload(DeviceArray& dst, const py::array& src) {
  refuse_while_capturing("DeviceArray upload");
  if (!(src.flags() & py::array::c_style))
    throw py::value_error("DeviceArray: the host array must be C-contiguous");
  if (dtype_of(src) != dst.dtype || (size_t)src.size() != dst.size())
    throw py::value_error("DeviceArray.copy_from: dtype or size differs");
  check_cuda(memcpy_bytes(dst.data(), src.data(), dst.nbytes(), 0), "DeviceArray upload");
}

std::shared_ptr<DeviceArray> to_device(const py::array& src) {
  auto a = device_empty(shape_of(src), dtype_of(src));
  upload(*a, src);
  return a;
}

py::array to_numpy(const DeviceArray& a) {
  refuse_while_capturing("DeviceArray.numpy");
  py::array out(py::dtype(dtype_name(a.dtype)), a.shape);
  check_cuda(memcpy_bytes(out.mutable_data(), a.data(), a.nbytes(), 1), "DeviceArray.numpy");
  return out;
}

// A view of the same memory with another shape of the same size (one -1 dimension inferred).
std::shared_ptr<DeviceArray> reshaped(const DeviceArray& a, Shape shape) {
  size_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] == -1 && infer < 0) infer = (int)i;
    else if (shape[i] < 0) throw py::value_error("DeviceArray.reshape: bad shape");
    else known *= (size_t)shape[i];
  }
  if (infer >= 0 && known > 0) shape[infer] = (int64_t)(a.size() / known);
  auto v = std::make_shared<DeviceArray>(DeviceArray{a.buffer, shape, a.dtype});
  if (v->size() != a.size())
    throw py::value_error("DeviceArray.reshape: cannot reshape an array of " +
                          std::to_string(a.size()) + " elements");
  return v;
}

// Version 3, after nnfast's stream has finished its work: "stream" None, nothing left for the
// consumer to wait for.
py::dict cuda_array_interface(const DeviceArray& a) {
  refuse_while_capturing("__cuda_array_interface__");
  check_cuda(synchronize(), "__cuda_array_interface__");
  py::dict d;
  d["shape"] = py::tuple(py::cast(a.shape));
  d["typestr"] = dtype_typestr(a.dtype);
  d["data"] = py::make_tuple((uintptr_t)a.data(), false);
  d["strides"] = py::none();
  d["version"] = 3;
  d["stream"] = py::none();
  return d;
}

}  // namespace

void bind_array(py::module_& m) {
  py::class_<DeviceArray, std::shared_ptr<DeviceArray>>(m, "DeviceArray",
      "C-contiguous GPU memory with a shape and a dtype (float32, int64, int32, uint8, "
      "float64).")
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape)); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return py::dtype(dtype_name(a.dtype)); })
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.shape.size(); })
      .def_property_readonly("size", &DeviceArray::size)
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def_property_readonly("ptr", [](const DeviceArray& a) { return (uintptr_t)a.data(); })
      .def_property_readonly("__cuda_array_interface__", &cuda_array_interface)
      .def_property_readonly("device", [](const DeviceArray&) { return "cuda"; })
      .def("numpy", &to_numpy, "A NumPy copy (waits for the kernels that write the array).")
      .def("copy_from", &upload, py::arg("host"), "Overwrite with a NumPy array's values.")
      .def("reshape", &reshaped, py::arg("shape"), "A view with another shape.")
      .def("fill", [](DeviceArray& a, double value) {
        if (value != 0.0) throw py::value_error("DeviceArray.fill: only 0 is supported");
        check_cuda(memset_bytes(a.data(), 0, a.nbytes()), "DeviceArray.fill");
      }, py::arg("value"), "Set every element to 0 (the one value it takes).")
      .def("__len__", [](const DeviceArray& a) { return a.shape.empty() ? 0 : a.shape[0]; })
      .def("__repr__", [](const DeviceArray& a) {
        return "<nnfast DeviceArray shape=" + py::str(py::tuple(py::cast(a.shape))).cast<std::string>() +
               " dtype=" + dtype_name(a.dtype) + ">";
      });
  m.def("empty", [](const Shape& shape, const std::string& dtype) {
    return device_empty(shape, dtype_from_name(dtype));
  }, py::arg("shape"), py::arg("dtype") = "float32", "An uninitialised device array.");
  m.def("zeros", [](const Shape& shape, const std::string& dtype) {
    auto a = device_empty(shape, dtype_from_name(dtype));
    check_cuda(memset_bytes(a->data(), 0, a->nbytes()), "zeros");
    return a;
  }, py::arg("shape"), py::arg("dtype") = "float32", "A device array of zeros.");
  m.def("to_device", &to_device, py::arg("host"),
        "A device copy of a C-contiguous NumPy array (float32, int64, int32 or uint8).");
  m.def("copy", [](const DeviceArray& a) {
    auto b = device_empty(a.shape, a.dtype);
    check_cuda(memcpy_bytes(b->data(), a.data(), a.nbytes(), 2), "copy");
    return b;
  }, py::arg("a"), "A device copy of a device array.");
}

}  // namespace cuda
}  // namespace nnfast
