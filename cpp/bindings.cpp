// nnfast._core: the pybind11 module. Thin by design: it validates and converts arguments, allocates
// outputs, releases the GIL around the kernels and turns every bad input into a Python exception
// (TypeError for a wrong dtype, ValueError for a wrong rank / shape / value). No numerics here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "array_cache.h"
#include "nnfast/activation.h"
#include "nnfast/conv.h"
#include "nnfast/data.h"
#include "nnfast/dropout.h"
#include "nnfast/gemm.h"
#include "nnfast/loss.h"
#include "nnfast/optim.h"
#include "nnfast/pool.h"

namespace py = pybind11;
using namespace nnfast;
using nnfast_bindings::new_array;
using nnfast_bindings::Scratch;

namespace {

using Shape = std::vector<py::ssize_t>;
using FloatArray = py::array_t<float, py::array::c_style>;

// ----------------------------------------------------------------------------------- messages
std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}
Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

[[noreturn]] void value_error(const char* fn, const std::string& msg) {
  throw py::value_error(std::string(fn) + ": " + msg);
}

// ----------------------------------------------------------------------------------- checks
// The argument must be a NumPy array of `dtype`, C-contiguous (and writeable when `writeable`).
py::array checked(const py::handle& obj, const char* fn, const char* name, const py::dtype& dtype,
                  const char* dtype_name, bool writeable = false) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(fn) + ": " + name + " must be a numpy." + dtype_name +
                         " array, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  // The common case, the same type number in native byte order, is read off the descriptors
  // without building a dtype object (this runs for every array argument of every kernel call);
  // anything else gets NumPy's own equivalence test.
  const auto* descr = py::detail::array_descriptor_proxy(py::detail::array_proxy(a.ptr())->descr);
  const auto* want = py::detail::array_descriptor_proxy(dtype.ptr());
  const bool same = descr->type_num == want->type_num &&
                    (descr->byteorder == '=' || descr->byteorder == '|' ||
                     descr->byteorder == want->byteorder);
  if (!same && !a.dtype().is(dtype))
    throw py::type_error(std::string(fn) + ": " + name + " must have dtype " + dtype_name +
                         ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    value_error(fn, std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  if (writeable && !a.writeable()) value_error(fn, std::string(name) + " must be writeable");
  return a;
}
py::array f32(const py::handle& obj, const char* fn, const char* name, bool writeable = false) {
  return checked(obj, fn, name, py::dtype::of<float>(), "float32", writeable);
}

// Rank check, with a description of the expected axes for the message.
void check_rank(const py::array& a, int ndim, const char* fn, const char* name, const char* axes) {
  if (a.ndim() != ndim)
    value_error(fn, std::string(name) + " must have " + std::to_string(ndim) + " dimensions " +
                        axes + ", got shape " + shape_str(shape_of(a)));
}
void check_shape(const py::array& a, const Shape& expected, const char* fn, const char* name) {
  if (shape_of(a) != expected)
    value_error(fn, std::string(name) + " must have shape " + shape_str(expected) + ", got " +
                        shape_str(shape_of(a)));
}
void check_nonempty(const py::array& a, const char* fn, const char* name) {
  if (a.size() == 0)
    value_error(fn, std::string(name) + " must not be empty, got shape " + shape_str(shape_of(a)));
}
// Every dimension product handed to a kernel as an int must fit in one.
int as_int(size_t v, const char* fn, const char* what) {
  if (v > (size_t)INT_MAX) value_error(fn, std::string(what) + " is too large (" +
                                               std::to_string(v) + " > 2^31-1)");
  return (int)v;
}
int positive(long v, const char* fn, const char* name) {
  if (v < 1) value_error(fn, std::string(name) + " must be >= 1, got " + std::to_string(v));
  return (int)v;
}

// An int or a pair of ints, as PyTorch's kernel_size / stride / padding.
std::pair<int, int> int_pair(const py::handle& obj, const char* fn, const char* name) {
  auto to_int = [&](const py::handle& h) -> long {
    if (!py::isinstance<py::int_>(h) && !py::hasattr(h, "__index__"))
      throw py::type_error(std::string(fn) + ": " + name + " must be an int or a pair of ints");
    long v = h.cast<long>();
    if (v > INT_MAX || v < INT_MIN) value_error(fn, std::string(name) + " is out of range");
    return v;
  };
  if (py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
    if (s.size() != 2) value_error(fn, std::string(name) + " must be an int or a pair of ints");
    return {(int)to_int(s[0]), (int)to_int(s[1])};
  }
  long v = to_int(obj);
  return {(int)v, (int)v};
}

// Integer class labels: int64, shape (N,), each in [0, C).
py::array checked_labels(const py::handle& obj, py::ssize_t N, py::ssize_t C, const char* fn) {
  py::array a = checked(obj, fn, "labels", py::dtype::of<int64_t>(), "int64");
  check_shape(a, {N}, fn, "labels");
  const int64_t* y = static_cast<const int64_t*>(a.data());
  for (py::ssize_t i = 0; i < N; i++)
    if (y[i] < 0 || y[i] >= C)
      value_error(fn, "labels[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                          " is out of range for " + std::to_string(C) + " classes");
  return a;
}

// A (rows, cols) view of an array whose last axis is the class / feature axis.
std::pair<int, int> rows_cols(const py::array& a, const char* fn, const char* name) {
  if (a.ndim() < 1) value_error(fn, std::string(name) + " must have at least 1 dimension");
  check_nonempty(a, fn, name);
  py::ssize_t cols = a.shape(a.ndim() - 1);
  return {as_int(a.size() / cols, fn, "rows"), as_int(cols, fn, "cols")};
}

// Output gradient for a parameter: the caller's accumulator (checked, written in place) or a new
// array (which the kernel overwrites: see the `accumulate` argument of the backward kernels).
FloatArray accumulator(const py::object& given, const Shape& shape, const char* fn,
                       const char* name) {
  if (given.is_none()) return new_array<float>(shape);
  py::array a = f32(given, fn, name, /*writeable=*/true);
  check_shape(a, shape, fn, name);
  return py::reinterpret_borrow<FloatArray>(a);
}

// Whether a backward kernel adds into its parameter gradients dw / db: a new array (none given)
// must be written, not added to, so when the caller asked to accumulate into one of them but
// not the other, the new one is zeroed first.
bool accumulates(bool accumulate, const py::object& dw_given, FloatArray& dw,
                 const py::object& db_given, FloatArray* db) {
  if (!accumulate) return false;
  const bool dw_new = dw_given.is_none(), db_new = db && db_given.is_none();
  if (dw_new && (db == nullptr || db_new)) return false;
  for (auto [is_new, a] : {std::pair{dw_new, &dw}, {db_new, db}})
    if (is_new) std::fill(a->mutable_data(), a->mutable_data() + a->size(), 0.0f);
  return true;
}

// None for an output that was not asked for.
py::object optional(const FloatArray& a, bool present) {
  return present ? py::object(a) : py::object(py::none());
}

const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
float* mptr(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// ----------------------------------------------------------------------------------- GEMM
// Shapes (M, N, K) of C = op(A) op(B) for dense a, b.
std::tuple<int, int, int> matmul_dims(const py::array& a, const py::array& b, bool ta, bool tb,
                                      const char* fn) {
  check_rank(a, 2, fn, "a", "(rows, cols)");
  check_rank(b, 2, fn, "b", "(rows, cols)");
  const int M = as_int(ta ? a.shape(1) : a.shape(0), fn, "M");
  const int K = as_int(ta ? a.shape(0) : a.shape(1), fn, "K");
  const int Kb = as_int(tb ? b.shape(1) : b.shape(0), fn, "K");
  const int N = as_int(tb ? b.shape(0) : b.shape(1), fn, "N");
  if (K != Kb)
    value_error(fn, "inner dimensions differ: op(a) is " + shape_str({M, K}) + ", op(b) is " +
                        shape_str({Kb, N}));
  return {M, N, K};
}

py::array py_sgemm(py::object a_, py::object b_, bool ta, bool tb, float alpha, float beta,
                   py::object c_) {
  const char* fn = "sgemm";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  py::array c;
  if (c_.is_none()) {
    c = new_array<float>({M, N});
    beta = 0.0f;
  } else {
    c = f32(c_, fn, "c", true);
    check_shape(c, {M, N}, fn, "c");
  }
  {
    py::gil_scoped_release release;
    sgemm(ta, tb, M, N, K, alpha, fptr(a), (int)a.shape(1), fptr(b), (int)b.shape(1), beta,
          mptr(c), N);
  }
  return c;
}

FloatArray py_matmul_forward(py::object a_, py::object b_, bool ta, bool tb) {
  const char* fn = "matmul_forward";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  FloatArray c = new_array<float>({M, N});
  py::gil_scoped_release release;
  matmul_forward(c.mutable_data(), fptr(a), fptr(b), M, N, K, ta, tb);
  return c;
}

py::tuple py_matmul_backward(py::object dc_, py::object a_, py::object b_, bool ta, bool tb) {
  const char* fn = "matmul_backward";
  py::array a = f32(a_, fn, "a"), b = f32(b_, fn, "b"), dc = f32(dc_, fn, "dc");
  auto [M, N, K] = matmul_dims(a, b, ta, tb, fn);
  check_shape(dc, {M, N}, fn, "dc");
  FloatArray da = new_array<float>(shape_of(a)), db = new_array<float>(shape_of(b));
  {
    py::gil_scoped_release release;
    matmul_backward(da.mutable_data(), db.mutable_data(), fptr(dc), fptr(a), fptr(b), M, N, K, ta,
                    tb);
  }
  return py::make_tuple(da, db);
}

// ----------------------------------------------------------------------------------- Linear
// x (B, IN), wt (IN, LD) (the weight stored transposed, rows padded to LD >= OUT): returns
// (B, IN, OUT) after checking them; OUT is out_features, or LD when that is None.
std::tuple<int, int, int> linear_dims(const py::array& x, const py::array& wt, py::object out,
                                      const char* fn) {
  check_rank(wt, 2, fn, "wt", "(in_features, out_features)");
  check_rank(x, 2, fn, "x", "(batch, in_features)");
  check_nonempty(x, fn, "x");
  if (x.shape(1) != wt.shape(0))
    value_error(fn, "x must have " + std::to_string(wt.shape(0)) + " features to match wt " +
                        shape_str(shape_of(wt)) + ", got shape " + shape_str(shape_of(x)));
  if (!out.is_none() && !py::isinstance<py::int_>(out))
    throw py::type_error(std::string(fn) + ": out_features must be an int or None");
  const int OUT = out.is_none() ? as_int(wt.shape(1), fn, "out_features")
                                : as_int(out.cast<long long>(), fn, "out_features");
  if (OUT < 1 || OUT > wt.shape(1))
    value_error(fn, "out_features must be between 1 and wt's " + std::to_string(wt.shape(1)) +
                        " columns, got " + std::to_string(OUT));
  return {as_int(x.shape(0), fn, "batch"), as_int(wt.shape(0), fn, "in_features"), OUT};
}

// The activations Linear's kernels fuse, by name.
Activation activation_named(const std::string& name, const char* fn, const char* arg) {
  if (name == "relu") return Activation::relu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name != "none")
    value_error(fn, std::string(arg) + " must be 'none', 'relu' or 'sigmoid', got '" + name + "'");
  return Activation::none;
}

py::object py_linear_forward(py::object x_, py::object wt_, py::object b_, py::object out_,
                             const std::string& activation, bool return_nonzeros) {
  const char* fn = "linear_forward";
  const Activation act = activation_named(activation, fn, "activation");
  py::array x = f32(x_, fn, "x"), wt = f32(wt_, fn, "wt");
  auto [B, IN, OUT] = linear_dims(x, wt, out_, fn);
  py::array b;
  if (!b_.is_none()) {
    b = f32(b_, fn, "b");
    check_shape(b, {OUT}, fn, "b");
  }
  FloatArray y = new_array<float>({B, OUT});
  long nonzeros;
  {
    py::gil_scoped_release release;
    nonzeros = linear_forward(y.mutable_data(), fptr(x), fptr(wt), (int)wt.shape(1),
                              b_.is_none() ? nullptr : fptr(b), B, IN, OUT, act);
  }
  if (return_nonzeros) return py::make_tuple(y, nonzeros);
  return std::move(y);
}

py::tuple py_linear_backward(py::object dy_, py::object x_, py::object wt_, py::object dwt_,
                             py::object db_, bool need_dx, bool need_db, bool accumulate,
                             py::object out_, long long x_nonzeros,
                             const std::string& dx_activation) {
  const char* fn = "linear_backward";
  const Activation act = activation_named(dx_activation, fn, "dx_activation");
  py::array x = f32(x_, fn, "x"), wt = f32(wt_, fn, "wt"), dy = f32(dy_, fn, "dy");
  auto [B, IN, OUT] = linear_dims(x, wt, out_, fn);
  if (x_nonzeros < -1 || x_nonzeros > (long long)B * IN)
    value_error(fn, "x_nonzeros must be -1 (count them) or between 0 and x's " +
                        std::to_string((long long)B * IN) + " entries, got " +
                        std::to_string(x_nonzeros));
  check_shape(dy, {B, OUT}, fn, "dy");
  FloatArray dwt = accumulator(dwt_, shape_of(wt), fn, "dwt");
  if (dwt_.is_none() && OUT < wt.shape(1)) {  // a new dwt: its padding columns zero, not garbage
    const size_t ld = (size_t)wt.shape(1);
    for (size_t k = 0; k < (size_t)IN; k++)
      std::fill(dwt.mutable_data() + k * ld + OUT, dwt.mutable_data() + (k + 1) * ld, 0.0f);
  }
  FloatArray db, dx;
  if (need_db) db = accumulator(db_, {OUT}, fn, "db");
  if (need_dx) dx = new_array<float>({B, IN});
  float* dxp = need_dx ? dx.mutable_data() : nullptr;
  float* dbp = need_db ? db.mutable_data() : nullptr;
  const bool add = accumulates(accumulate, dwt_, dwt, db_, need_db ? &db : nullptr);
  {
    py::gil_scoped_release release;
    linear_backward(dxp, dwt.mutable_data(), dbp, fptr(dy), fptr(x), fptr(wt), (int)wt.shape(1),
                    B, IN, OUT, add, (long)x_nonzeros, act);
  }
  return py::make_tuple(optional(dx, need_dx), dwt, optional(db, need_db));
}

// ----------------------------------------------------------------------------------- Conv2d
Conv2dShape conv_shape(const py::array& x, const py::array& w, py::object stride,
                       py::object padding, const char* fn) {
  check_rank(x, 4, fn, "x", "(N, C, H, W)");
  check_rank(w, 4, fn, "w", "(out_channels, in_channels, kh, kw)");
  check_nonempty(x, fn, "x");
  check_nonempty(w, fn, "w");
  if (x.shape(1) != w.shape(1))
    value_error(fn, "x has " + std::to_string(x.shape(1)) + " channels but w " +
                        shape_str(shape_of(w)) + " expects " + std::to_string(w.shape(1)));
  auto [sh, sw] = int_pair(stride, fn, "stride");
  auto [ph, pw] = int_pair(padding, fn, "padding");
  if (sh < 1 || sw < 1) value_error(fn, "stride must be >= 1");
  if (ph < 0 || pw < 0) value_error(fn, "padding must be >= 0");
  Conv2dShape s{as_int(x.shape(0), fn, "N"),  as_int(x.shape(1), fn, "C"),
                as_int(x.shape(2), fn, "H"),  as_int(x.shape(3), fn, "W"),
                as_int(w.shape(0), fn, "OC"), as_int(w.shape(2), fn, "KH"),
                as_int(w.shape(3), fn, "KW"), sh, sw, ph, pw};
  if ((long)s.H + 2L * ph < s.KH || (long)s.W + 2L * pw < s.KW)
    value_error(fn, "kernel " + shape_str({s.KH, s.KW}) + " is larger than the padded input " +
                        shape_str({s.H + 2 * ph, s.W + 2 * pw}));
  const size_t ckk = (size_t)s.C * s.KH * s.KW, p = (size_t)s.OH() * s.OW();
  as_int(ckk, fn, "in_channels * kh * kw");
  as_int((size_t)s.N * p, fn, "N * out_h * out_w");
  // Scratch per thread: one image's im2col (ckk * p) and dy^T (p * OC); per batch chunk: dW.
  // Each factor is < 2^31, so these products cannot overflow; 2^31 floats is 8 GiB.
  if ((ckk + s.OC) * p > (size_t(1) << 31) || ckk * s.OC > (size_t(1) << 31))
    value_error(fn, "the convolution's workspace would exceed 8 GiB per thread");
  return s;
}

// The checked operands of a convolution's forward pass (bias optional).
struct ConvForwardArgs {
  py::array x, w, b;
  bool has_bias;
  Conv2dShape s;
  const float* bias() const { return has_bias ? fptr(b) : nullptr; }
};
ConvForwardArgs conv_forward_args(py::object x_, py::object w_, py::object b_, py::object stride,
                                  py::object padding, const char* fn) {
  ConvForwardArgs a{f32(x_, fn, "x"), f32(w_, fn, "w"), py::array(), !b_.is_none(), {}};
  a.s = conv_shape(a.x, a.w, stride, padding, fn);
  if (!b_.is_none()) {
    a.b = f32(b_, fn, "b");
    check_shape(a.b, {a.s.OC}, fn, "b");
  }
  return a;
}

FloatArray py_conv2d_forward(py::object x_, py::object w_, py::object b_, py::object stride,
                             py::object padding) {
  const ConvForwardArgs a = conv_forward_args(x_, w_, b_, stride, padding, "conv2d_forward");
  const Conv2dShape& s = a.s;
  FloatArray y = new_array<float>({s.N, s.OC, s.OH(), s.OW()});
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(conv2d_workspace_size(s, nt));
  py::gil_scoped_release release;
  conv2d_forward(y.mutable_data(), fptr(a.x), fptr(a.w), a.bias(), s, workspace.data, nt);
  return y;
}

// The outputs of a convolution's backward pass: dw (and db) given or new, dx new when needed,
// and whether the kernel adds into dw / db or overwrites them.
struct ConvGrads {
  FloatArray dw, db, dx;
  bool need_dx, need_db, add;
  ConvGrads(const py::array& x, const py::array& w, const Conv2dShape& s, py::object dw_,
            py::object db_, bool need_dx_, bool need_db_, bool accumulate, const char* fn)
      : dw(accumulator(dw_, shape_of(w), fn, "dw")), need_dx(need_dx_), need_db(need_db_) {
    if (need_db) db = accumulator(db_, {s.OC}, fn, "db");
    if (need_dx) dx = new_array<float>(shape_of(x));
    add = accumulates(accumulate, dw_, dw, db_, need_db ? &db : nullptr);
  }
  float* dxp() { return need_dx ? dx.mutable_data() : nullptr; }
  float* dbp() { return need_db ? db.mutable_data() : nullptr; }
  py::tuple result() const { return py::make_tuple(optional(dx, need_dx), dw, optional(db, need_db)); }
};

py::tuple py_conv2d_backward(py::object dy_, py::object x_, py::object w_, py::object stride,
                             py::object padding, py::object dw_, py::object db_, bool need_dx,
                             bool need_db, bool accumulate) {
  const char* fn = "conv2d_backward";
  py::array x = f32(x_, fn, "x"), w = f32(w_, fn, "w"), dy = f32(dy_, fn, "dy");
  Conv2dShape s = conv_shape(x, w, stride, padding, fn);
  check_shape(dy, {s.N, s.OC, s.OH(), s.OW()}, fn, "dy");
  ConvGrads grads(x, w, s, dw_, db_, need_dx, need_db, accumulate, fn);
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    conv2d_backward(grads.dxp(), grads.dw.mutable_data(), grads.dbp(), fptr(dy), fptr(x), fptr(w),
                    s, workspace.data, nt, grads.add);
  }
  return grads.result();
}

// ----------------------------------------------------------------------------------- pooling
// Geometry from an input shape (N, C, H, W) and the window arguments (stride None = kernel).
Pool2dShape pool_shape(const Shape& in, py::object kernel, py::object stride, py::object padding,
                       const char* fn) {
  if (in.size() != 4)
    value_error(fn, "input must have 4 dimensions (N, C, H, W), got shape " + shape_str(in));
  for (auto d : in)
    if (d < 1) value_error(fn, "input must not be empty, got shape " + shape_str(in));
  auto [kh, kw] = int_pair(kernel, fn, "kernel_size");
  auto [sh, sw] = stride.is_none() ? std::make_pair(kh, kw) : int_pair(stride, fn, "stride");
  auto [ph, pw] = int_pair(padding, fn, "padding");
  if (kh < 1 || kw < 1) value_error(fn, "kernel_size must be >= 1");
  if (sh < 1 || sw < 1) value_error(fn, "stride must be >= 1");
  if (ph < 0 || pw < 0 || 2 * ph > kh || 2 * pw > kw)
    value_error(fn, "padding must be between 0 and half the kernel size, got " +
                        shape_str({ph, pw}) + " for kernel " + shape_str({kh, kw}));
  Pool2dShape s{as_int(in[0], fn, "N"), as_int(in[1], fn, "C"), as_int(in[2], fn, "H"),
                as_int(in[3], fn, "W"), kh, kw, sh, sw, ph, pw};
  if ((long)s.H + 2L * ph < kh || (long)s.W + 2L * pw < kw)
    value_error(fn, "kernel " + shape_str({kh, kw}) + " is larger than the padded input " +
                        shape_str({s.H + 2 * ph, s.W + 2 * pw}));
  as_int((size_t)s.N * s.C * s.H * s.W, fn, "N * C * H * W");
  return s;
}

Shape shape_arg(py::object obj, const char* fn) {
  try {
    return obj.cast<Shape>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(fn) + ": input_shape must be a tuple of 4 ints");
  }
}

// The argmax array of a max pooling over planes of s.H x s.W, every entry checked to lie inside
// its plane (an index from anywhere else would make the kernels write out of bounds).
const int32_t* checked_argmax(const py::array& am, const Pool2dShape& s, const char* fn) {
  const int32_t* a = static_cast<const int32_t*>(am.data());
  const py::ssize_t n = am.size();
  const int32_t plane = s.H * s.W;  // < 2^31: checked by pool_shape
  if (argmax_in_range(a, (size_t)n, plane)) return a;
  for (py::ssize_t i = 0; i < n; i++)  // find the culprit
    if (a[i] < 0 || a[i] >= plane)
      value_error(fn, "argmax[" + std::to_string(i) + "] = " + std::to_string(a[i]) +
                          " is outside the " + shape_str({s.H, s.W}) + " input plane");
  return a;
}

py::tuple py_maxpool2d_forward(py::object x_, py::object kernel, py::object stride,
                               py::object padding) {
  const char* fn = "maxpool2d_forward";
  py::array x = f32(x_, fn, "x");
  Pool2dShape s = pool_shape(shape_of(x), kernel, stride, padding, fn);
  FloatArray y = new_array<float>({s.N, s.C, s.OH(), s.OW()});
  py::array_t<int32_t> argmax = new_array<int32_t>({s.N, s.C, s.OH(), s.OW()});
  {
    py::gil_scoped_release release;
    maxpool2d_forward(y.mutable_data(), argmax.mutable_data(), fptr(x), s);
  }
  return py::make_tuple(y, argmax);
}

// Conv2d -> ReLU -> MaxPool2d in one kernel: (y pooled, argmax), as the three bindings in turn.
py::tuple py_conv2d_relu_maxpool_forward(py::object x_, py::object w_, py::object b_,
                                         py::object stride, py::object padding,
                                         py::object pool_kernel, py::object pool_stride,
                                         py::object pool_padding) {
  const char* fn = "conv2d_relu_maxpool_forward";
  const ConvForwardArgs a = conv_forward_args(x_, w_, b_, stride, padding, fn);
  const Conv2dShape& s = a.s;
  Pool2dShape p = pool_shape({s.N, s.OC, s.OH(), s.OW()}, pool_kernel, pool_stride, pool_padding, fn);
  FloatArray y = new_array<float>({p.N, p.C, p.OH(), p.OW()});
  py::array_t<int32_t> argmax = new_array<int32_t>({p.N, p.C, p.OH(), p.OW()});
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    conv2d_relu_maxpool_forward(y.mutable_data(), argmax.mutable_data(), fptr(a.x), fptr(a.w),
                                a.bias(), s, p, workspace.data, nt);
  }
  return py::make_tuple(y, argmax);
}

// The gradient path of conv2d_relu_maxpool_forward: conv2d_backward's (dx, dw, db) from the pooled
// gradient g, the pooled output y and argmax (what that forward returned).
py::tuple py_conv2d_relu_maxpool_backward(py::object g_, py::object y_, py::object argmax_,
                                          py::object x_, py::object w_, py::object stride,
                                          py::object padding, py::object pool_kernel,
                                          py::object pool_stride, py::object pool_padding,
                                          py::object dw_, py::object db_, bool need_dx,
                                          bool need_db, bool accumulate) {
  const char* fn = "conv2d_relu_maxpool_backward";
  py::array x = f32(x_, fn, "x"), w = f32(w_, fn, "w"), g = f32(g_, fn, "g"), y = f32(y_, fn, "y");
  Conv2dShape s = conv_shape(x, w, stride, padding, fn);
  Pool2dShape p = pool_shape({s.N, s.OC, s.OH(), s.OW()}, pool_kernel, pool_stride, pool_padding, fn);
  const Shape pooled{p.N, p.C, p.OH(), p.OW()};
  check_shape(g, pooled, fn, "g");
  check_shape(y, pooled, fn, "y");
  py::array am = checked(argmax_, fn, "argmax", py::dtype::of<int32_t>(), "int32");
  check_shape(am, pooled, fn, "argmax");
  const int32_t* a = checked_argmax(am, p, fn);
  ConvGrads grads(x, w, s, dw_, db_, need_dx, need_db, accumulate, fn);
  const int nt = get_num_threads();  // read once: the workspace holds one slice per thread
  Scratch workspace(conv2d_workspace_size(s, nt));
  {
    py::gil_scoped_release release;
    conv2d_relu_maxpool_backward(grads.dxp(), grads.dw.mutable_data(), grads.dbp(), fptr(g),
                                 fptr(y), a, p, fptr(x), fptr(w), s, workspace.data, nt, grads.add);
  }
  return grads.result();
}

FloatArray py_maxpool2d_backward(py::object dy_, py::object argmax_, py::object input_shape,
                                 py::object kernel, py::object stride, py::object padding) {
  const char* fn = "maxpool2d_backward";
  py::array dy = f32(dy_, fn, "dy");
  py::array am = checked(argmax_, fn, "argmax", py::dtype::of<int32_t>(), "int32");
  Pool2dShape s = pool_shape(shape_arg(input_shape, fn), kernel, stride, padding, fn);
  const Shape out{s.N, s.C, s.OH(), s.OW()};
  check_shape(dy, out, fn, "dy");
  check_shape(am, out, fn, "argmax");
  const int32_t* a = checked_argmax(am, s, fn);
  FloatArray dx = new_array<float>({s.N, s.C, s.H, s.W});
  py::gil_scoped_release release;
  maxpool2d_backward(dx.mutable_data(), fptr(dy), a, s);
  return dx;
}

FloatArray py_avgpool2d_forward(py::object x_, py::object kernel, py::object stride,
                                py::object padding) {
  const char* fn = "avgpool2d_forward";
  py::array x = f32(x_, fn, "x");
  Pool2dShape s = pool_shape(shape_of(x), kernel, stride, padding, fn);
  FloatArray y = new_array<float>({s.N, s.C, s.OH(), s.OW()});
  py::gil_scoped_release release;
  avgpool2d_forward(y.mutable_data(), fptr(x), s);
  return y;
}

FloatArray py_avgpool2d_backward(py::object dy_, py::object input_shape, py::object kernel,
                                 py::object stride, py::object padding) {
  const char* fn = "avgpool2d_backward";
  py::array dy = f32(dy_, fn, "dy");
  Pool2dShape s = pool_shape(shape_arg(input_shape, fn), kernel, stride, padding, fn);
  check_shape(dy, {s.N, s.C, s.OH(), s.OW()}, fn, "dy");
  FloatArray dx = new_array<float>({s.N, s.C, s.H, s.W});
  py::gil_scoped_release release;
  avgpool2d_backward(dx.mutable_data(), fptr(dy), s);
  return dx;
}

// ----------------------------------------------------------------------------------- activations
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

// ----------------------------------------------------------------------------------- losses
// (N, C) logits and their probabilities.
std::pair<int, int> class_matrix(const py::array& z, const char* fn, const char* name) {
  check_rank(z, 2, fn, name, "(batch, classes)");
  check_nonempty(z, fn, name);
  return {as_int(z.shape(0), fn, "batch"), as_int(z.shape(1), fn, "classes")};
}

py::tuple py_cross_entropy_forward(py::object z_, py::object y_) {
  const char* fn = "cross_entropy_forward";
  py::array z = f32(z_, fn, "logits");
  auto [N, C] = class_matrix(z, fn, "logits");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray probs = new_array<float>({N, C});
  double loss;
  {
    py::gil_scoped_release release;
    loss = cross_entropy_forward(probs.mutable_data(), fptr(z), (const int64_t*)y.data(), N, C);
  }
  return py::make_tuple(loss, probs);
}
FloatArray py_cross_entropy_backward(py::object p_, py::object y_, float scale) {
  const char* fn = "cross_entropy_backward";
  py::array p = f32(p_, fn, "probs");
  auto [N, C] = class_matrix(p, fn, "probs");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  cross_entropy_backward(d.mutable_data(), fptr(p), (const int64_t*)y.data(), N, C, scale);
  return d;
}
py::tuple py_cross_entropy_soft_forward(py::object z_, py::object t_) {
  const char* fn = "cross_entropy_soft_forward";
  py::array z = f32(z_, fn, "logits"), t = f32(t_, fn, "targets");
  auto [N, C] = class_matrix(z, fn, "logits");
  check_shape(t, shape_of(z), fn, "targets");
  FloatArray probs = new_array<float>({N, C});
  double loss;
  {
    py::gil_scoped_release release;
    loss = cross_entropy_soft_forward(probs.mutable_data(), fptr(z), fptr(t), N, C);
  }
  return py::make_tuple(loss, probs);
}
FloatArray py_cross_entropy_soft_backward(py::object p_, py::object t_, float scale) {
  const char* fn = "cross_entropy_soft_backward";
  py::array p = f32(p_, fn, "probs"), t = f32(t_, fn, "targets");
  auto [N, C] = class_matrix(p, fn, "probs");
  check_shape(t, shape_of(p), fn, "targets");
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  cross_entropy_soft_backward(d.mutable_data(), fptr(p), fptr(t), N, C, scale);
  return d;
}
double py_nll_forward(py::object lp_, py::object y_) {
  const char* fn = "nll_forward";
  py::array lp = f32(lp_, fn, "logp");
  auto [N, C] = class_matrix(lp, fn, "logp");
  py::array y = checked_labels(y_, N, C, fn);
  py::gil_scoped_release release;
  return nll_forward(fptr(lp), (const int64_t*)y.data(), N, C);
}
FloatArray py_nll_backward(py::object y_, long num_classes, float scale) {
  const char* fn = "nll_backward";
  const int C = positive(num_classes, fn, "num_classes");
  py::array y0 = checked(y_, fn, "labels", py::dtype::of<int64_t>(), "int64");
  check_rank(y0, 1, fn, "labels", "(batch,)");
  check_nonempty(y0, fn, "labels");
  const int N = as_int(y0.shape(0), fn, "batch");
  as_int((size_t)N * C, fn, "batch * num_classes");
  py::array y = checked_labels(y_, N, C, fn);
  FloatArray d = new_array<float>({N, C});
  py::gil_scoped_release release;
  nll_backward(d.mutable_data(), (const int64_t*)y.data(), N, C, scale);
  return d;
}

// Elementwise losses: pred and target of the same non-empty shape.
template <typename Kernel>
double pair_loss(py::object p_, py::object t_, const char* fn, Kernel k) {
  py::array p = f32(p_, fn, "input"), t = f32(t_, fn, "target");
  check_nonempty(p, fn, "input");
  check_shape(t, shape_of(p), fn, "target");
  py::gil_scoped_release release;
  return k(fptr(p), fptr(t), (size_t)p.size());
}
template <typename Kernel>
FloatArray pair_loss_backward(py::object p_, py::object t_, float scale, const char* fn,
                              Kernel k) {
  py::array p = f32(p_, fn, "input"), t = f32(t_, fn, "target");
  check_nonempty(p, fn, "input");
  check_shape(t, shape_of(p), fn, "target");
  FloatArray d = new_array<float>(shape_of(p));
  py::gil_scoped_release release;
  k(d.mutable_data(), fptr(p), fptr(t), (size_t)p.size(), scale);
  return d;
}

// ----------------------------------------------------------------------------------- batching
// src[rows]: src float32 C-contiguous (N, ...), rows int64 (n,) with every entry in [-N, N)
// (negative ones count from the end, as in NumPy); into `out` when given (float32, C-contiguous,
// writeable, shape (n, ...)), else into a new array.
py::array py_gather_rows(py::object src_, py::object rows_, py::object out_) {
  const char* fn = "gather_rows";
  py::array src = f32(src_, fn, "src");
  if (src.ndim() < 1) value_error(fn, "src must have at least 1 dimension (rows first)");
  py::array rows = checked(rows_, fn, "rows", py::dtype::of<int64_t>(), "int64");
  check_rank(rows, 1, fn, "rows", "(n,)");
  const py::ssize_t N = src.shape(0), n = rows.shape(0);
  Shape shape = shape_of(src);
  shape[0] = n;
  const size_t width = N > 0 ? (size_t)src.size() / (size_t)N : 1;
  as_int((size_t)n, fn, "rows");
  std::vector<int64_t> wrapped;  // only when some index is negative
  const int64_t* r = static_cast<const int64_t*>(rows.data());
  for (py::ssize_t i = 0; i < n; i++) {
    if (r[i] < -N || r[i] >= N)
      throw py::index_error(std::string(fn) + ": rows[" + std::to_string(i) + "] = " +
                            std::to_string(r[i]) + " is out of range for " + std::to_string(N) +
                            " rows");
    if (r[i] < 0 && wrapped.empty()) wrapped.assign(r, r + n);
  }
  for (auto& v : wrapped) v += v < 0 ? N : 0;
  py::array out;
  if (out_.is_none()) {
    out = new_array<float>(shape);
  } else {
    out = f32(out_, fn, "out", true);
    check_shape(out, shape, fn, "out");
  }
  if (n > 0 && width > 0) {
    py::gil_scoped_release release;
    gather_rows(mptr(out), fptr(src), wrapped.empty() ? r : wrapped.data(), (int)n, width);
  }
  return out;
}

// ----------------------------------------------------------------------------------- dropout
float dropout_p(float p, const char* fn) {
  if (!(p >= 0.0f && p < 1.0f)) value_error(fn, "p must be in [0, 1), got " + std::to_string(p));
  return p;
}
py::tuple py_dropout_forward(py::object x_, float p, uint64_t seed) {
  const char* fn = "dropout_forward";
  py::array x = f32(x_, fn, "x");
  dropout_p(p, fn);
  FloatArray y = new_array<float>(shape_of(x));
  py::array_t<uint8_t> mask = new_array<uint8_t>(shape_of(x));
  {
    py::gil_scoped_release release;
    dropout_forward(y.mutable_data(), mask.mutable_data(), fptr(x), (size_t)x.size(), p, seed);
  }
  return py::make_tuple(y, mask);
}
FloatArray py_dropout_backward(py::object dy_, py::object mask_, float p) {
  const char* fn = "dropout_backward";
  py::array dy = f32(dy_, fn, "dy");
  py::array mask = checked(mask_, fn, "mask", py::dtype::of<uint8_t>(), "uint8");
  check_shape(mask, shape_of(dy), fn, "mask");
  dropout_p(p, fn);
  FloatArray dx = new_array<float>(shape_of(dy));
  py::gil_scoped_release release;
  dropout_backward(dx.mutable_data(), fptr(dy), (const uint8_t*)mask.data(), (size_t)dy.size(), p);
  return dx;
}

// ----------------------------------------------------------------------------------- optimizers
// A state array (grad, momentum, m, v) must match the parameter's shape.
py::array state_like(py::object obj, const py::array& param, const char* fn, const char* name,
                     bool writeable) {
  py::array a = f32(obj, fn, name, writeable);
  check_shape(a, shape_of(param), fn, name);
  return a;
}
void finite_hyper(float v, const char* fn, const char* name) {
  if (!std::isfinite(v)) value_error(fn, std::string(name) + " must be finite");
}

// One SGD update, validated while the GIL is held.
struct SgdJob {
  py::array p, g, buf;
};
SgdJob sgd_job(py::object p_, py::object g_, py::object buf_, float momentum, const char* fn) {
  SgdJob job{f32(p_, fn, "param", true), {}, {}};
  job.g = state_like(g_, job.p, fn, "grad", false);
  if (momentum != 0.0f) {
    if (buf_.is_none()) value_error(fn, "momentum_buf is required when momentum != 0");
    job.buf = state_like(buf_, job.p, fn, "momentum_buf", true);
  }
  return job;
}

// param / grad / momentum_buf are arrays, or equally long lists of arrays: the whole model's
// parameters in one call.
void py_sgd_step(py::object p_, py::object g_, py::object buf_, float lr, float momentum,
                 float dampening, float weight_decay, bool nesterov, bool first_step) {
  const char* fn = "sgd_step";
  for (auto [v, name] : {std::pair{lr, "lr"}, {momentum, "momentum"}, {dampening, "dampening"},
                         {weight_decay, "weight_decay"}})
    finite_hyper(v, fn, name);
  if (lr < 0.0f) value_error(fn, "lr must be >= 0");
  if (momentum < 0.0f) value_error(fn, "momentum must be >= 0");
  if (nesterov && (momentum <= 0.0f || dampening != 0.0f))
    value_error(fn, "nesterov momentum requires momentum > 0 and dampening = 0");
  std::vector<SgdJob> jobs;
  if (py::isinstance<py::list>(p_) || py::isinstance<py::tuple>(p_)) {
    auto params = p_.cast<py::sequence>();
    auto list_of = [&](py::object obj, const char* name) {
      if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
        throw py::type_error(std::string(fn) + ": " + name + " must be a list like param");
      auto seq = obj.cast<py::sequence>();
      if (seq.size() != params.size())
        value_error(fn, std::string(name) + " has " + std::to_string(seq.size()) +
                            " arrays for " + std::to_string(params.size()) + " parameters");
      return seq;
    };
    auto grads = list_of(g_, "grad");
    py::sequence bufs;
    const bool with_bufs = momentum != 0.0f && !buf_.is_none();
    if (with_bufs) bufs = list_of(buf_, "momentum_buf");
    for (size_t i = 0; i < params.size(); i++)
      jobs.push_back(sgd_job(params[i], grads[i], with_bufs ? py::object(bufs[i]) : py::none(),
                             momentum, fn));
  } else {
    jobs.push_back(sgd_job(p_, g_, buf_, momentum, fn));
  }
  std::vector<SgdTensor> tensors;
  for (auto& job : jobs)
    tensors.push_back({mptr(job.p), fptr(job.g), momentum != 0.0f ? mptr(job.buf) : nullptr,
                       (size_t)job.p.size()});
  py::gil_scoped_release release;
  sgd_update_all(tensors.data(), tensors.size(), lr, momentum, dampening, weight_decay, nesterov,
                 first_step);
}

void py_adam_step(py::object p_, py::object g_, py::object m_, py::object v_, float lr,
                  float beta1, float beta2, float eps, float weight_decay, long step,
                  bool decoupled) {
  const char* fn = "adam_step";
  py::array p = f32(p_, fn, "param", true);
  py::array g = state_like(g_, p, fn, "grad", false);
  py::array m = state_like(m_, p, fn, "m", true), v = state_like(v_, p, fn, "v", true);
  for (auto [val, name] : {std::pair{lr, "lr"}, {beta1, "beta1"}, {beta2, "beta2"}, {eps, "eps"},
                           {weight_decay, "weight_decay"}})
    finite_hyper(val, fn, name);
  if (lr < 0.0f) value_error(fn, "lr must be >= 0");
  if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f))
    value_error(fn, "betas must be in [0, 1)");
  if (step < 1) value_error(fn, "step must be >= 1");
  py::gil_scoped_release release;
  adam_update(mptr(p), fptr(g), mptr(m), mptr(v), (size_t)p.size(), lr, beta1, beta2, eps,
              weight_decay, step, decoupled);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "nnfast's compiled kernels (float32, C-contiguous NumPy arrays in and out)";
  using py::arg;

  m.def("set_num_threads",
        [](long n) {
          if (n > 4096) value_error("set_num_threads", "n must be <= 4096, got " + std::to_string(n));
          set_num_threads(positive(n, "set_num_threads", "n"));
        },
        arg("n"), "Number of OpenMP threads the kernels use.");
  m.def("get_num_threads", &get_num_threads);
  m.def("isa", [] { return std::string(isa_name()); }, "Instruction set of the GEMM micro-kernel.");

  m.def("sgemm", &py_sgemm, arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
        arg("alpha") = 1.0f, arg("beta") = 0.0f, arg("c") = py::none(),
        "c = alpha * op(a) @ op(b) + beta * c; c is written in place when given.");
  m.def("matmul_forward", &py_matmul_forward, arg("a"), arg("b"), arg("trans_a") = false,
        arg("trans_b") = false, "c (M,N) = op(a) @ op(b).");
  m.def("matmul_backward", &py_matmul_backward, arg("dc"), arg("a"), arg("b"),
        arg("trans_a") = false, arg("trans_b") = false, "(da, db) for c = op(a) @ op(b).");

  m.def("linear_forward", &py_linear_forward, arg("x"), arg("wt"), arg("b") = py::none(),
        arg("out_features") = py::none(), arg("activation") = "none",
        arg("return_nonzeros") = false,
        "y (B,OUT) = act(x (B,IN) @ wt[:, :OUT] + b); wt (IN, LD) is the weight w (OUT,IN) "
        "transposed, its rows maybe padded (OUT = out_features, default LD); act 'none', "
        "'relu' or 'sigmoid'. return_nonzeros: (y, n) with n x's nonzero count when the "
        "kernel counted it (to choose its zero-skipping path), else -1; linear_backward takes "
        "it as x_nonzeros.");
  m.def("linear_backward", &py_linear_backward, arg("dy"), arg("x"), arg("wt"),
        arg("dwt") = py::none(), arg("db") = py::none(), arg("need_dx") = true,
        arg("need_db") = true, arg("accumulate") = true, arg("out_features") = py::none(),
        arg("x_nonzeros") = -1, arg("dx_activation") = "none",
        "(dx, dwt, db); dwt (IN,LD) / db accumulate in place when given (overwritten if not "
        "accumulate); dwt's padding columns are never written (zeros in a new one). "
        "x_nonzeros: x's nonzero count from linear_forward (saves counting again; it only picks "
        "between two paths that compute the same sums), -1 to count. dx_activation 'relu' or 'sigmoid': x is that "
        "activation's output and dx the gradient at its input (relu_backward / "
        "sigmoid_backward of dy @ wt^T with x).");

  m.def("conv2d_forward", &py_conv2d_forward, arg("x"), arg("w"), arg("b") = py::none(),
        arg("stride") = 1, arg("padding") = 0, "y (N,OC,OH,OW) = conv2d(x (N,C,H,W), w) + b.");
  m.def("conv2d_relu_maxpool_forward", &py_conv2d_relu_maxpool_forward, arg("x"), arg("w"),
        arg("b") = py::none(), arg("stride") = 1, arg("padding") = 0, arg("pool_kernel") = 2,
        arg("pool_stride") = py::none(), arg("pool_padding") = 0,
        "(y, argmax) = maxpool2d_forward(relu_forward(conv2d_forward(x, w, b)), ...) in one pass.");
  m.def("conv2d_relu_maxpool_backward", &py_conv2d_relu_maxpool_backward, arg("g"), arg("y"),
        arg("argmax"), arg("x"), arg("w"), arg("stride") = 1, arg("padding") = 0,
        arg("pool_kernel") = 2, arg("pool_stride") = py::none(), arg("pool_padding") = 0,
        arg("dw") = py::none(), arg("db") = py::none(), arg("need_dx") = true,
        arg("need_db") = true, arg("accumulate") = true,
        "conv2d_backward of maxpool2d_backward of relu_backward(g, y), in one pass: (dx, dw, db).");
  m.def("conv2d_backward", &py_conv2d_backward, arg("dy"), arg("x"), arg("w"), arg("stride") = 1,
        arg("padding") = 0, arg("dw") = py::none(), arg("db") = py::none(),
        arg("need_dx") = true, arg("need_db") = true, arg("accumulate") = true,
        "(dx, dw, db); dw / db accumulate in place when given (overwritten if not accumulate).");

  m.def("maxpool2d_forward", &py_maxpool2d_forward, arg("x"), arg("kernel_size"),
        arg("stride") = py::none(), arg("padding") = 0, "(y, argmax int32).");
  m.def("maxpool2d_backward", &py_maxpool2d_backward, arg("dy"), arg("argmax"),
        arg("input_shape"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0);
  m.def("avgpool2d_forward", &py_avgpool2d_forward, arg("x"), arg("kernel_size"),
        arg("stride") = py::none(), arg("padding") = 0);
  m.def("avgpool2d_backward", &py_avgpool2d_backward, arg("dy"), arg("input_shape"),
        arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0);

  m.def("relu_forward", [](py::object x, py::object out) { return unary(x, out, "relu_forward", relu_forward); },
        arg("x"), arg("out") = py::none());
  m.def("relu_backward",
        [](py::object dy, py::object x) {
          return unary_backward(dy, x, "relu_backward", "x", relu_backward);
        },
        arg("dy"), arg("x"));
  m.def("leaky_relu_forward",
        [](py::object x, float slope, py::object out) {
          return unary(x, out, "leaky_relu_forward",
                       [slope](float* y, const float* xp, size_t n) { leaky_relu_forward(y, xp, n, slope); });
        },
        arg("x"), arg("slope") = 0.01f, arg("out") = py::none());
  m.def("leaky_relu_backward",
        [](py::object dy, py::object x, float slope) {
          return unary_backward(dy, x, "leaky_relu_backward", "x",
                                [slope](float* d, const float* g, const float* xp, size_t n) {
                                  leaky_relu_backward(d, g, xp, n, slope);
                                });
        },
        arg("dy"), arg("x"), arg("slope") = 0.01f);
  m.def("sigmoid_forward", [](py::object x, py::object out) { return unary(x, out, "sigmoid_forward", sigmoid_forward); },
        arg("x"), arg("out") = py::none());
  m.def("sigmoid_backward",
        [](py::object dy, py::object y) {
          return unary_backward(dy, y, "sigmoid_backward", "y", sigmoid_backward);
        },
        arg("dy"), arg("y"));
  m.def("tanh_forward", [](py::object x, py::object out) { return unary(x, out, "tanh_forward", tanh_forward); },
        arg("x"), arg("out") = py::none());
  m.def("tanh_backward",
        [](py::object dy, py::object y) {
          return unary_backward(dy, y, "tanh_backward", "y", tanh_backward);
        },
        arg("dy"), arg("y"));
  m.def("threshold_forward",
        [](py::object x, float threshold, float value, py::object out) {
          return unary(x, out, "threshold_forward", [=](float* y, const float* xp, size_t n) {
            threshold_forward(y, xp, n, threshold, value);
          });
        },
        arg("x"), arg("threshold"), arg("value"), arg("out") = py::none());
  m.def("threshold_backward",
        [](py::object dy, py::object x, float threshold) {
          return unary_backward(dy, x, "threshold_backward", "x",
                                [=](float* d, const float* g, const float* xp, size_t n) {
                                  threshold_backward(d, g, xp, n, threshold);
                                });
        },
        arg("dy"), arg("x"), arg("threshold"));
  m.def("softmax_forward", [](py::object x) { return rowwise(x, "softmax_forward", softmax_forward); }, arg("x"));
  m.def("softmax_backward",
        [](py::object dy, py::object y) {
          return rowwise_backward(dy, y, "softmax_backward", softmax_backward);
        },
        arg("dy"), arg("y"));
  m.def("log_softmax_forward",
        [](py::object x) { return rowwise(x, "log_softmax_forward", log_softmax_forward); }, arg("x"));
  m.def("log_softmax_backward",
        [](py::object dy, py::object y) {
          return rowwise_backward(dy, y, "log_softmax_backward", log_softmax_backward);
        },
        arg("dy"), arg("y"));

  m.def("cross_entropy_forward", &py_cross_entropy_forward, arg("logits"), arg("labels"),
        "(mean loss, probs) for integer labels; stable for any finite logits.");
  m.def("cross_entropy_backward", &py_cross_entropy_backward, arg("probs"), arg("labels"),
        arg("scale") = 1.0f);
  m.def("cross_entropy_soft_forward", &py_cross_entropy_soft_forward, arg("logits"),
        arg("targets"), "(mean loss, probs) for one-hot / probability targets.");
  m.def("cross_entropy_soft_backward", &py_cross_entropy_soft_backward, arg("probs"),
        arg("targets"), arg("scale") = 1.0f);
  m.def("nll_forward", &py_nll_forward, arg("logp"), arg("labels"));
  m.def("nll_backward", &py_nll_backward, arg("labels"), arg("num_classes"), arg("scale") = 1.0f);
  m.def("mse_forward", [](py::object p, py::object t) { return pair_loss(p, t, "mse_forward", mse_forward); },
        arg("pred"), arg("target"));
  m.def("mse_backward",
        [](py::object p, py::object t, float s) { return pair_loss_backward(p, t, s, "mse_backward", mse_backward); },
        arg("pred"), arg("target"), arg("scale") = 1.0f);
  m.def("l1_forward", [](py::object p, py::object t) { return pair_loss(p, t, "l1_forward", l1_forward); },
        arg("pred"), arg("target"));
  m.def("l1_backward",
        [](py::object p, py::object t, float s) { return pair_loss_backward(p, t, s, "l1_backward", l1_backward); },
        arg("pred"), arg("target"), arg("scale") = 1.0f);
  m.def("bce_forward", [](py::object p, py::object t) { return pair_loss(p, t, "bce_forward", bce_forward); },
        arg("p"), arg("target"));
  m.def("bce_backward",
        [](py::object p, py::object t, float s) { return pair_loss_backward(p, t, s, "bce_backward", bce_backward); },
        arg("p"), arg("target"), arg("scale") = 1.0f);
  m.def("bce_with_logits_forward",
        [](py::object z, py::object t) { return pair_loss(z, t, "bce_with_logits_forward", bce_with_logits_forward); },
        arg("z"), arg("target"));
  m.def("bce_with_logits_backward",
        [](py::object z, py::object t, float s) {
          return pair_loss_backward(z, t, s, "bce_with_logits_backward", bce_with_logits_backward);
        },
        arg("z"), arg("target"), arg("scale") = 1.0f);

  m.def("gather_rows", &py_gather_rows, arg("src"), arg("rows"), arg("out") = py::none(),
        "src[rows] (rows of a float32 array picked by an int64 index array) as a new array, or "
        "into out; the kernels' threads share out the rows.");
  m.def("dropout_forward", &py_dropout_forward, arg("x"), arg("p"), arg("seed"),
        "(y, mask uint8): inverted dropout, mask a pure function of (seed, flat index).");
  m.def("dropout_backward", &py_dropout_backward, arg("dy"), arg("mask"), arg("p"));

  m.def("sgd_step", &py_sgd_step, arg("param"), arg("grad"), arg("momentum_buf") = py::none(),
        arg("lr") = 0.01f, arg("momentum") = 0.0f, arg("dampening") = 0.0f,
        arg("weight_decay") = 0.0f, arg("nesterov") = false, arg("first_step") = true,
        "In-place SGD update (PyTorch semantics) of one array, or of a list of them.");
  m.def("adam_step", &py_adam_step, arg("param"), arg("grad"), arg("m"), arg("v"),
        arg("lr") = 1e-3f, arg("beta1") = 0.9f, arg("beta2") = 0.999f, arg("eps") = 1e-8f,
        arg("weight_decay") = 0.0f, arg("step") = 1, arg("decoupled") = false,
        "In-place Adam / AdamW update (PyTorch semantics).");
}
