// The argument checks every binding file shares. Each one raises the Python exception a bad
// argument deserves, its message prefixed with the binding's name `fn`: TypeError for a wrong
// type or dtype, ValueError for a wrong rank, shape or value. Written once, here and in
// checks.cpp; the families' own checks stay in their files.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::vector <-> list / tuple, in every binding file alike

#include <string>
#include <utility>
#include <vector>

#include "array_cache.h"
#include "nnfast/kernels.h"

namespace nnfast_bindings {

namespace py = pybind11;
using Shape = std::vector<py::ssize_t>;
using FloatArray = py::array_t<float, py::array::c_style>;

// ----------------------------------------------------------------------------------- messages
std::string shape_str(const Shape& s);  // "(2, 3)", "(4,)"
Shape shape_of(const py::array& a);
[[noreturn]] void value_error(const char* fn, const std::string& msg);

// ----------------------------------------------------------------------------------- arrays
// The argument must be a NumPy array of `dtype`, C-contiguous (and writeable when `writeable`).
py::array checked(const py::handle& obj, const char* fn, const char* name, const py::dtype& dtype,
                  const char* dtype_name, bool writeable = false);
// The same for float32.
py::array f32(const py::handle& obj, const char* fn, const char* name, bool writeable = false);

// Rank check, with a description of the expected axes for the message.
void check_rank(const py::array& a, int ndim, const char* fn, const char* name, const char* axes);
void check_shape(const py::array& a, const Shape& expected, const char* fn, const char* name);
void check_nonempty(const py::array& a, const char* fn, const char* name);

// ----------------------------------------------------------------------------------- integers
// Every dimension product handed to a kernel as an int must fit in one.
int as_int(size_t v, const char* fn, const char* what);
int positive(long v, const char* fn, const char* name);
// An int or a pair of ints, as PyTorch's kernel_size / stride / padding.
std::pair<int, int> int_pair(const py::handle& obj, const char* fn, const char* name);

// ----------------------------------------------------------------------------------- gradients
// Output gradient for a parameter: the caller's accumulator (checked, written in place) or a new
// array (which the kernel overwrites: see the `accumulate` argument of the backward kernels).
FloatArray accumulator(const py::object& given, const Shape& shape, const char* fn,
                       const char* name);
// Whether a backward kernel adds into its parameter gradients dw / db: a new array (none given)
// must be written, not added to, so when the caller asked to accumulate into one of them but
// not the other, the new one is zeroed first.
bool accumulates(bool accumulate, const py::object& dw_given, FloatArray& dw,
                 const py::object& db_given, FloatArray* db);
// None for an output that was not asked for.
py::object optional(const FloatArray& a, bool present);

inline const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
inline float* mptr(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// ----------------------------------------------------------------------------------- geometry
// The ValueError for what check_conv2d / check_pool2d (the kernel library's rules) find wrong
// with s, if anything.
void check_geometry(const nnfast::Conv2dShape& s, const char* fn);
void check_geometry(const nnfast::Pool2dShape& s, const char* fn);

// Shared by pool.cpp and conv.cpp (the fused conv-relu-maxpool).
// Geometry from an input shape (N, C, H, W) and the window arguments (stride None = kernel).
nnfast::Pool2dShape pool_shape(const Shape& in, py::object kernel, py::object stride,
                               py::object padding, const char* fn);
// The argmax array of a max pooling over planes of s.H x s.W, every entry checked to lie inside
// its plane (an index from anywhere else would make the kernels write out of bounds).
const int32_t* checked_argmax(const py::array& am, const nnfast::Pool2dShape& s, const char* fn);

}  // namespace nnfast_bindings
