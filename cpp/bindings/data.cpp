// Binding of batch gathering (nnfast/data.h): gather_rows.
#include <vector>

#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

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
    kernels().gather_rows(mptr(out), fptr(src), wrapped.empty() ? r : wrapped.data(), (int)n, width);
  }
  return out;
}

}  // namespace

void register_data(py::module_& m) {
  using py::arg;
  m.def("gather_rows", &py_gather_rows, arg("src"), arg("rows"), arg("out") = py::none(),
        "src[rows] (rows of a float32 array picked by an int64 index array) as a new array, or "
        "into out; the kernels' threads share out the rows.");
}

}  // namespace nnfast_bindings
