// Bindings of batch normalisation (nnfast/norm.h).
#include <cmath>

#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

// x (N, C, ...) seen as (N, C, S).
struct NormDims {
  int N, C, S;
};
NormDims norm_dims(const py::array& x, const char* fn) {
  if (x.ndim() < 2) value_error(fn, "x must be (N, C, ...), got shape " + shape_str(shape_of(x)));
  check_nonempty(x, fn, "x");
  size_t s = 1;
  for (py::ssize_t d = 2; d < x.ndim(); d++) s *= (size_t)x.shape(d);
  return {as_int(x.shape(0), fn, "N"), as_int(x.shape(1), fn, "C"), as_int(s, fn, "S")};
}
// A per-channel array (C,) or None (nullptr).
float* channel_array(const py::object& obj, int C, const char* fn, const char* name,
                     bool writeable, py::array& keep) {
  if (obj.is_none()) return nullptr;
  keep = f32(obj, fn, name, writeable);
  check_shape(keep, {C}, fn, name);
  return static_cast<float*>(keep.mutable_data());
}

py::tuple py_batchnorm_forward(py::object x_, py::object gamma_, py::object beta_,
                               py::object rm_, py::object rv_, bool training, float momentum,
                               float eps) {
  const char* fn = "batchnorm_forward";
  py::array x = f32(x_, fn, "x");
  const NormDims d = norm_dims(x, fn);
  if (!(eps > 0.0f) || !std::isfinite(eps)) value_error(fn, "eps must be > 0");
  if (!(momentum >= 0.0f && momentum <= 1.0f)) value_error(fn, "momentum must be in [0, 1]");
  py::array g, b, rm, rv;
  const float* gamma = channel_array(gamma_, d.C, fn, "gamma", false, g);
  const float* beta = channel_array(beta_, d.C, fn, "beta", false, b);
  float* running_mean = channel_array(rm_, d.C, fn, "running_mean", true, rm);
  float* running_var = channel_array(rv_, d.C, fn, "running_var", true, rv);
  if ((running_mean == nullptr) != (running_var == nullptr))
    value_error(fn, "running_mean and running_var go together");
  if (!training && running_mean == nullptr)
    value_error(fn, "running_mean and running_var are required when not training");
  if (training && (double)d.N * d.S < 2)
    value_error(fn, "training needs more than 1 value per channel, got x of shape " +
                        shape_str(shape_of(x)));
  FloatArray y = new_array<float>(shape_of(x));
  FloatArray mean = new_array<float>({d.C}), invstd = new_array<float>({d.C});
  {
    py::gil_scoped_release release;
    kernels().batchnorm_forward(y.mutable_data(), mean.mutable_data(), invstd.mutable_data(),
                                fptr(x), gamma, beta, running_mean, running_var, d.N, d.C, d.S,
                                training, momentum, eps);
  }
  return py::make_tuple(y, mean, invstd);
}

py::tuple py_batchnorm_backward(py::object dy_, py::object x_, py::object gamma_,
                                py::object mean_, py::object invstd_, py::object dgamma_,
                                py::object dbeta_, bool training, bool need_dx, bool need_dgamma,
                                bool accumulate) {
  const char* fn = "batchnorm_backward";
  py::array x = f32(x_, fn, "x");
  const NormDims d = norm_dims(x, fn);
  py::array dy = f32(dy_, fn, "dy");
  check_shape(dy, shape_of(x), fn, "dy");
  py::array g, m, is;
  const float* gamma = channel_array(gamma_, d.C, fn, "gamma", false, g);
  const float* mean = channel_array(mean_, d.C, fn, "mean", false, m);
  const float* invstd = channel_array(invstd_, d.C, fn, "invstd", false, is);
  if (mean == nullptr || invstd == nullptr) value_error(fn, "mean and invstd are required");
  FloatArray dgamma, dbeta;
  bool acc = false;
  if (need_dgamma) {
    dgamma = accumulator(dgamma_, {d.C}, fn, "dgamma");
    dbeta = accumulator(dbeta_, {d.C}, fn, "dbeta");
    acc = accumulates(accumulate, dgamma_, dgamma, dbeta_, &dbeta);
  }
  FloatArray dx = need_dx ? new_array<float>(shape_of(x)) : FloatArray();
  {
    py::gil_scoped_release release;
    kernels().batchnorm_backward(need_dx ? dx.mutable_data() : nullptr,
                                 need_dgamma ? dgamma.mutable_data() : nullptr,
                                 need_dgamma ? dbeta.mutable_data() : nullptr, fptr(dy), fptr(x),
                                 gamma, mean, invstd, d.N, d.C, d.S, training, acc);
  }
  return py::make_tuple(optional(dx, need_dx), optional(dgamma, need_dgamma),
                        optional(dbeta, need_dgamma));
}

}  // namespace

void register_norm(py::module_& m) {
  using py::arg;
  m.def("batchnorm_forward", &py_batchnorm_forward, arg("x"), arg("gamma") = py::none(),
        arg("beta") = py::none(), arg("running_mean") = py::none(),
        arg("running_var") = py::none(), arg("training") = true, arg("momentum") = 0.1f,
        arg("eps") = 1e-5f,
        "(y, mean, invstd) of batch normalisation over x (N, C, ...); running statistics "
        "updated in place when training, used when not.");
  m.def("batchnorm_backward", &py_batchnorm_backward, arg("dy"), arg("x"), arg("gamma"),
        arg("mean"), arg("invstd"), arg("dgamma") = py::none(), arg("dbeta") = py::none(),
        arg("training") = true, arg("need_dx") = true, arg("need_dgamma") = true,
        arg("accumulate") = true, "(dx, dgamma, dbeta) of batchnorm_forward.");
}

}  // namespace nnfast_bindings
