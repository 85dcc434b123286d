// Bindings of the optimizers (nnfast/optim.h): one in-place update step each.
#include <cmath>
#include <initializer_list>
#include <vector>

#include "checks.h"
#include "register.h"

namespace nnfast_bindings {
using namespace nnfast;

namespace {

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
  kernels().sgd_update_all(tensors.data(), tensors.size(), lr, momentum, dampening, weight_decay, nesterov,
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
  kernels().adam_update(mptr(p), fptr(g), mptr(m), mptr(v), (size_t)p.size(), lr, beta1, beta2, eps,
              weight_decay, step, decoupled);
}

// Checks shared by the optimizers below: the hyperparameters finite, lr >= 0.
void check_hypers(const char* fn, std::initializer_list<std::pair<float, const char*>> values) {
  for (auto [v, name] : values) finite_hyper(v, fn, name);
  if (values.begin()->first < 0.0f) value_error(fn, "lr must be >= 0");
}

void py_rmsprop_step(py::object p_, py::object g_, py::object sq_, py::object buf_,
                     py::object ga_, float lr, float alpha, float eps, float weight_decay,
                     float momentum, bool centered) {
  const char* fn = "rmsprop_step";
  check_hypers(fn, {{lr, "lr"}, {alpha, "alpha"}, {eps, "eps"}, {weight_decay, "weight_decay"},
                    {momentum, "momentum"}});
  py::array p = f32(p_, fn, "param", true);
  py::array g = state_like(g_, p, fn, "grad", false);
  py::array sq = state_like(sq_, p, fn, "square_avg", true);
  py::array buf, ga;
  if (momentum > 0.0f) {
    if (buf_.is_none()) value_error(fn, "momentum_buf is required when momentum > 0");
    buf = state_like(buf_, p, fn, "momentum_buf", true);
  }
  if (centered) {
    if (ga_.is_none()) value_error(fn, "grad_avg is required when centered");
    ga = state_like(ga_, p, fn, "grad_avg", true);
  }
  py::gil_scoped_release release;
  kernels().rmsprop_update(mptr(p), fptr(g), mptr(sq), momentum > 0.0f ? mptr(buf) : nullptr,
                           centered ? mptr(ga) : nullptr, (size_t)p.size(), lr, alpha, eps,
                           weight_decay, momentum, centered);
}

void py_adagrad_step(py::object p_, py::object g_, py::object sum_, float lr, float lr_decay,
                     float weight_decay, float eps, long step) {
  const char* fn = "adagrad_step";
  check_hypers(fn, {{lr, "lr"}, {lr_decay, "lr_decay"}, {weight_decay, "weight_decay"},
                    {eps, "eps"}});
  if (step < 1) value_error(fn, "step must be >= 1");
  py::array p = f32(p_, fn, "param", true);
  py::array g = state_like(g_, p, fn, "grad", false);
  py::array sum = state_like(sum_, p, fn, "state_sum", true);
  py::gil_scoped_release release;
  kernels().adagrad_update(mptr(p), fptr(g), mptr(sum), (size_t)p.size(), lr, lr_decay,
                           weight_decay, eps, step);
}

void py_adadelta_step(py::object p_, py::object g_, py::object sq_, py::object acc_, float lr,
                      float rho, float eps, float weight_decay) {
  const char* fn = "adadelta_step";
  check_hypers(fn, {{lr, "lr"}, {rho, "rho"}, {eps, "eps"}, {weight_decay, "weight_decay"}});
  py::array p = f32(p_, fn, "param", true);
  py::array g = state_like(g_, p, fn, "grad", false);
  py::array sq = state_like(sq_, p, fn, "square_avg", true);
  py::array acc = state_like(acc_, p, fn, "acc_delta", true);
  py::gil_scoped_release release;
  kernels().adadelta_update(mptr(p), fptr(g), mptr(sq), mptr(acc), (size_t)p.size(), lr, rho,
                            eps, weight_decay);
}

}  // namespace

void register_optim(py::module_& m) {
  using py::arg;
  m.def("sgd_step", &py_sgd_step, arg("param"), arg("grad"), arg("momentum_buf") = py::none(),
        arg("lr") = 0.01f, arg("momentum") = 0.0f, arg("dampening") = 0.0f,
        arg("weight_decay") = 0.0f, arg("nesterov") = false, arg("first_step") = true,
        "In-place SGD update (PyTorch semantics) of one array, or of a list of them.");
  m.def("adam_step", &py_adam_step, arg("param"), arg("grad"), arg("m"), arg("v"),
        arg("lr") = 1e-3f, arg("beta1") = 0.9f, arg("beta2") = 0.999f, arg("eps") = 1e-8f,
        arg("weight_decay") = 0.0f, arg("step") = 1, arg("decoupled") = false,
        "In-place Adam / AdamW update (PyTorch semantics).");
  m.def("rmsprop_step", &py_rmsprop_step, arg("param"), arg("grad"), arg("square_avg"),
        arg("momentum_buf") = py::none(), arg("grad_avg") = py::none(), arg("lr") = 0.01f,
        arg("alpha") = 0.99f, arg("eps") = 1e-8f, arg("weight_decay") = 0.0f,
        arg("momentum") = 0.0f, arg("centered") = false,
        "In-place RMSprop update (PyTorch semantics).");
  m.def("adagrad_step", &py_adagrad_step, arg("param"), arg("grad"), arg("state_sum"),
        arg("lr") = 0.01f, arg("lr_decay") = 0.0f, arg("weight_decay") = 0.0f,
        arg("eps") = 1e-10f, arg("step") = 1, "In-place Adagrad update (PyTorch semantics).");
  m.def("adadelta_step", &py_adadelta_step, arg("param"), arg("grad"), arg("square_avg"),
        arg("acc_delta"), arg("lr") = 1.0f, arg("rho") = 0.9f, arg("eps") = 1e-6f,
        arg("weight_decay") = 0.0f, "In-place Adadelta update (PyTorch semantics).");
}

}  // namespace nnfast_bindings
