// Bindings of the activations (nnfast/activation.h): elementwise ones and the row-wise softmax /
// log-softmax over the last axis.
#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// A (rows, cols) view of an array whose last axis is the class / feature axis.
std::pair<int, int> rows_cols(const py::array& a, const char* fn, const char* name) {
  if (a.ndim() < 1) value_error(fn, std::string(name) + " must have at least 1 dimension");
  check_nonempty(a, fn, name);
  py::ssize_t cols = a.shape(a.ndim() - 1);
  return {as_int(a.size() / cols, fn, "rows"), as_int(cols, fn, "cols")};
}

// Elementwise forward: y = f(x) with the kernel `k(y, x, n, extra...)`, into a new array or into
// `out` (x's shape; out may be x itself: every y[i] depends on x[i] alone).
template <typename Kernel>
FloatArray unary(py::object x_, py::object out_, const char* fn, Kernel k) {
  py::array x = f32(x_, fn, "x");
  FloatArray y;
  if (out_.is_none()) {
    y = new_array<float>(shape_of(x));
  } else {
    py::array out = f32(out_, fn, "out", /*writeable=*/true);
    check_shape(out, shape_of(x), fn, "out");
    y = py::reinterpret_borrow<FloatArray>(out);
  }
  py::gil_scoped_release release;
  k(y.mutable_data(), fptr(x), (size_t)x.size());
  return y;
}
// Elementwise backward: dx = g(dy, saved) where saved (x or y) has dy's shape.
template <typename Kernel>
FloatArray unary_backward(py::object dy_, py::object saved_, const char* fn, const char* saved_name,
                          Kernel k) {
  py::array dy = f32(dy_, fn, "dy"), saved = f32(saved_, fn, saved_name);
  check_shape(dy, shape_of(saved), fn, "dy");
  FloatArray dx = new_array<float>(shape_of(dy));
  py::gil_scoped_release release;
  k(dx.mutable_data(), fptr(dy), fptr(saved), (size_t)dy.size());
  return dx;
}
// Row-wise forward / backward over the last axis (softmax, log-softmax).
template <typename Kernel>
FloatArray rowwise(py::object x_, const char* fn, Kernel k) {
  py::array x = f32(x_, fn, "x");
  auto [rows, cols] = rows_cols(x, fn, "x");
  FloatArray y = new_array<float>(shape_of(x));
  py::gil_scoped_release release;
  k(y.mutable_data(), fptr(x), rows, cols);
  return y;
}
template <typename Kernel>
FloatArray rowwise_backward(py::object dy_, py::object y_, const char* fn, Kernel k) {
  py::array dy = f32(dy_, fn, "dy"), y = f32(y_, fn, "y");
  auto [rows, cols] = rows_cols(y, fn, "y");
  check_shape(dy, shape_of(y), fn, "dy");
  FloatArray dx = new_array<float>(shape_of(y));
  py::gil_scoped_release release;
  k(dx.mutable_data(), fptr(dy), fptr(y), rows, cols);
  return dx;
}

// The wrappers of the kernels without parameters, as pybind11 functions: each looks its kernel up
// in the table when called (select_isa may have changed the copy since registration).
using Forward = decltype(Kernels::relu_forward);            // y = f(x)
using Backward = decltype(Kernels::relu_backward);          // dx = g(dy, x or y)
using RowsForward = decltype(Kernels::softmax_forward);     // over the rows of (rows, cols)
using RowsBackward = decltype(Kernels::softmax_backward);
auto forward(Forward Kernels::*k, const char* fn) {
  return [k, fn](py::object x, py::object out) { return unary(x, out, fn, kernels().*k); };
}
auto backward(Backward Kernels::*k, const char* fn, const char* saved) {
  return [k, fn, saved](py::object dy, py::object s) {
    return unary_backward(dy, s, fn, saved, kernels().*k);
  };
}
auto rows_forward(RowsForward Kernels::*k, const char* fn) {
  return [k, fn](py::object x) { return rowwise(x, fn, kernels().*k); };
}
auto rows_backward(RowsBackward Kernels::*k, const char* fn) {
  return [k, fn](py::object dy, py::object y) { return rowwise_backward(dy, y, fn, kernels().*k); };
}

// The activations with parameters.
FloatArray py_leaky_relu_forward(py::object x, float slope, py::object out) {
  return unary(x, out, "leaky_relu_forward", [slope](float* y, const float* xp, size_t n) {
    kernels().leaky_relu_forward(y, xp, n, slope);
  });
}
FloatArray py_leaky_relu_backward(py::object dy, py::object x, float slope) {
  return unary_backward(dy, x, "leaky_relu_backward", "x",
                        [slope](float* d, const float* g, const float* xp, size_t n) {
                          kernels().leaky_relu_backward(d, g, xp, n, slope);
                        });
}
FloatArray py_threshold_forward(py::object x, float threshold, float value, py::object out) {
  return unary(x, out, "threshold_forward", [=](float* y, const float* xp, size_t n) {
    kernels().threshold_forward(y, xp, n, threshold, value);
  });
}
FloatArray py_threshold_backward(py::object dy, py::object x, float threshold) {
  return unary_backward(dy, x, "threshold_backward", "x",
                        [=](float* d, const float* g, const float* xp, size_t n) {
                          kernels().threshold_backward(d, g, xp, n, threshold);
                        });
}

}  // namespace

void register_activation(py::module_& m) {
  using py::arg;
  m.def("relu_forward", forward(&Kernels::relu_forward, "relu_forward"), arg("x"),
        arg("out") = py::none());
  m.def("relu_backward", backward(&Kernels::relu_backward, "relu_backward", "x"), arg("dy"),
        arg("x"));
  m.def("leaky_relu_forward", &py_leaky_relu_forward, arg("x"), arg("slope") = 0.01f,
        arg("out") = py::none());
  m.def("leaky_relu_backward", &py_leaky_relu_backward, arg("dy"), arg("x"),
        arg("slope") = 0.01f);
  m.def("sigmoid_forward", forward(&Kernels::sigmoid_forward, "sigmoid_forward"), arg("x"),
        arg("out") = py::none());
  m.def("sigmoid_backward", backward(&Kernels::sigmoid_backward, "sigmoid_backward", "y"),
        arg("dy"), arg("y"));
  m.def("tanh_forward", forward(&Kernels::tanh_forward, "tanh_forward"), arg("x"),
        arg("out") = py::none());
  m.def("tanh_backward", backward(&Kernels::tanh_backward, "tanh_backward", "y"), arg("dy"),
        arg("y"));
  m.def("threshold_forward", &py_threshold_forward, arg("x"), arg("threshold"), arg("value"),
        arg("out") = py::none());
  m.def("threshold_backward", &py_threshold_backward, arg("dy"), arg("x"), arg("threshold"));
  m.def("softmax_forward", rows_forward(&Kernels::softmax_forward, "softmax_forward"), arg("x"));
  m.def("softmax_backward", rows_backward(&Kernels::softmax_backward, "softmax_backward"),
        arg("dy"), arg("y"));
  m.def("log_softmax_forward", rows_forward(&Kernels::log_softmax_forward, "log_softmax_forward"),
        arg("x"));
  m.def("log_softmax_backward",
        rows_backward(&Kernels::log_softmax_backward, "log_softmax_backward"), arg("dy"),
        arg("y"));
}

}  // namespace nnfast_bindings
