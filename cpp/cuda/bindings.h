// Shared by the _cuda extension's binding files: argument checks on device arrays.
#pragma once
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "device_array.h"

namespace nnfast {
namespace cuda {

namespace py = pybind11;

// The data pointer of `a` as T*, after checking its dtype; null when a is null (None) and
// `optional`, else a ValueError.
template <typename T>
T* data_of(DeviceArray* a, DType dtype, const char* fn, const char* name, bool optional = false) {
  if (!a) {
    if (optional) return nullptr;
    throw py::value_error(std::string(fn) + ": " + name + " must be a DeviceArray, got None");
  }
  if (a->dtype != dtype)
    throw py::value_error(std::string(fn) + ": " + name + " must be " + dtype_name(dtype) +
                          ", got " + dtype_name(a->dtype));
  return static_cast<T*>(a->data());
}
inline float* f32(DeviceArray* a, const char* fn, const char* name) {
  return data_of<float>(a, DType::float32, fn, name);
}
// Throws RuntimeError "<fn>: not allowed while a CUDA graph is being captured" while one is
// (a copy to or from the host would happen now, not when the graph is replayed).
inline void refuse_while_capturing(const char* fn) {
  if (capturing())
    throw std::runtime_error(std::string(fn) + ": not allowed while a CUDA graph is being "
                             "captured");
}

inline float* f32_or_null(DeviceArray* a, const char* fn, const char* name) {
  return data_of<float>(a, DType::float32, fn, name, true);
}

// Checks that `a` holds at least n elements (so a kernel never reads or writes past it).
inline void need(DeviceArray* a, size_t n, const char* fn, const char* name) {
  if (a && a->size() < n)
    throw py::value_error(std::string(fn) + ": " + name + " has " + std::to_string(a->size()) +
                          " elements, needs " + std::to_string(n));
}
// Elements a (rows x cols) matrix with rows ld apart spans; checks ld >= cols.
inline size_t span(long rows, long cols, long ld, const char* fn) {
  if (rows < 0 || cols < 0 || ld < cols)
    throw py::value_error(std::string(fn) + ": bad matrix geometry (rows " +
                          std::to_string(rows) + ", cols " + std::to_string(cols) + ", ld " +
                          std::to_string(ld) + ")");
  return rows == 0 || cols == 0 ? 0 : (size_t)(rows - 1) * ld + cols;
}

void bind_array(py::module_& m);
void bind_dense(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_graph(py::module_& m);
void bind_images(py::module_& m);
void bind_interchange(py::module_& m);
void bind_norm(py::module_& m);
void bind_optim(py::module_& m);

}  // namespace cuda
}  // namespace nnfast
