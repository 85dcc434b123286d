// The shared argument checks declared in checks.h (which says what each one does).
#include "checks.h"

#include <climits>
#include <sstream>

namespace nnfast_bindings {
using namespace nnfast;

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

// ----------------------------------------------------------------------------------- arrays
py::array checked(const py::handle& obj, const char* fn, const char* name, const py::dtype& dtype,
                  const char* dtype_name, bool writeable) {
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
py::array f32(const py::handle& obj, const char* fn, const char* name, bool writeable) {
  return checked(obj, fn, name, py::dtype::of<float>(), "float32", writeable);
}

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
namespace {
[[noreturn]] void too_large(const char* fn, const char* what, size_t v) {
  value_error(fn, std::string(what) + " is too large (" + std::to_string(v) + " > 2^31-1)");
}
}  // namespace
int as_int(size_t v, const char* fn, const char* what) {
  if (v > (size_t)INT_MAX) too_large(fn, what, v);
  return (int)v;
}
int positive(long v, const char* fn, const char* name) {
  if (v < 1) value_error(fn, std::string(name) + " must be >= 1, got " + std::to_string(v));
  return (int)v;
}

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

FloatArray accumulator(const py::object& given, const Shape& shape, const char* fn,
                       const char* name) {
  if (given.is_none()) return new_array<float>(shape);
  py::array a = f32(given, fn, name, /*writeable=*/true);
  check_shape(a, shape, fn, name);
  return py::reinterpret_borrow<FloatArray>(a);
}

bool accumulates(bool accumulate, const py::object& dw_given, FloatArray& dw,
                 const py::object& db_given, FloatArray* db) {
  if (!accumulate) return false;
  const bool dw_new = dw_given.is_none(), db_new = db && db_given.is_none();
  if (dw_new && (db == nullptr || db_new)) return false;
  for (auto [is_new, a] : {std::pair{dw_new, &dw}, {db_new, db}})
    if (is_new) std::fill(a->mutable_data(), a->mutable_data() + a->size(), 0.0f);
  return true;
}

py::object optional(const FloatArray& a, bool present) {
  return present ? py::object(a) : py::object(py::none());
}

// ----------------------------------------------------------------------------------- geometry
namespace {
// The message for each GeometryCheck issue, from the window's sides (kh, kw), padding (ph, pw)
// and input sides (h, w).
void raise_geometry(const GeometryCheck& c, int kh, int kw, int ph, int pw, int h, int w,
                    const char* fn) {
  switch (c.issue) {
    case GeometryCheck::ok: return;
    case GeometryCheck::kernel_below_1: value_error(fn, "kernel_size must be >= 1");
    case GeometryCheck::stride_below_1: value_error(fn, "stride must be >= 1");
    case GeometryCheck::padding_negative: value_error(fn, "padding must be >= 0");
    case GeometryCheck::padding_outside_half_kernel:
      value_error(fn, "padding must be between 0 and half the kernel size, got " +
                          shape_str({ph, pw}) + " for kernel " + shape_str({kh, kw}));
    case GeometryCheck::kernel_over_input:
      value_error(fn, "kernel " + shape_str({kh, kw}) + " is larger than the padded input " +
                          shape_str({h + 2 * (py::ssize_t)ph, w + 2 * (py::ssize_t)pw}));
    case GeometryCheck::too_large: too_large(fn, c.what, c.value);
    case GeometryCheck::workspace_too_large:
      value_error(fn, "the convolution's workspace would exceed 8 GiB per thread");
  }
}
}  // namespace

void check_geometry(const Conv2dShape& s, const char* fn) {
  raise_geometry(check_conv2d(s), s.KH, s.KW, s.PH, s.PW, s.H, s.W, fn);
}
void check_geometry(const Pool2dShape& s, const char* fn) {
  raise_geometry(check_pool2d(s), s.KH, s.KW, s.PH, s.PW, s.H, s.W, fn);
}

Pool2dShape pool_shape(const Shape& in, py::object kernel, py::object stride, py::object padding,
                       const char* fn) {
  if (in.size() != 4)
    value_error(fn, "input must have 4 dimensions (N, C, H, W), got shape " + shape_str(in));
  for (auto d : in)
    if (d < 1) value_error(fn, "input must not be empty, got shape " + shape_str(in));
  auto [kh, kw] = int_pair(kernel, fn, "kernel_size");
  auto [sh, sw] = stride.is_none() ? std::make_pair(kh, kw) : int_pair(stride, fn, "stride");
  auto [ph, pw] = int_pair(padding, fn, "padding");
  Pool2dShape s{as_int(in[0], fn, "N"), as_int(in[1], fn, "C"), as_int(in[2], fn, "H"),
                as_int(in[3], fn, "W"), kh, kw, sh, sw, ph, pw};
  check_geometry(s, fn);
  return s;
}

const int32_t* checked_argmax(const py::array& am, const Pool2dShape& s, const char* fn) {
  const int32_t* a = static_cast<const int32_t*>(am.data());
  const py::ssize_t n = am.size();
  const int32_t plane = s.H * s.W;  // < 2^31: checked by check_pool2d
  if (kernels().argmax_in_range(a, (size_t)n, plane)) return a;
  for (py::ssize_t i = 0; i < n; i++)  // find the culprit
    if (a[i] < 0 || a[i] >= plane)
      value_error(fn, "argmax[" + std::to_string(i) + "] = " + std::to_string(a[i]) +
                          " is outside the " + shape_str({s.H, s.W}) + " input plane");
  return a;
}

}  // namespace nnfast_bindings
