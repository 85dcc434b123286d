// Bindings of the optimizer updates (optim.cu): lists of device arrays, one launch for all. The
// table of pointers is built here and copied to the device once for each set of parameters.
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <string>
#include <optional>
#include <vector>

#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

using List = std::vector<DeviceArray*>;

// Checks that every list has as many arrays as params and each array params[i]'s size.
void check_lists(const List& params, const std::vector<const List*>& others, const char* fn) {
  for (const List* l : others) {
    if (l->size() != params.size())
      throw py::value_error(std::string(fn) + ": the lists differ in length");
    for (size_t i = 0; i < params.size(); i++)
      if (!params[i] || !(*l)[i] || (*l)[i]->size() != params[i]->size())
        throw py::value_error(std::string(fn) + ": tensor " + std::to_string(i) +
                              " differs in size between the lists");
  }
}

// The table on the device. Tables are kept by their bytes (the tensors' pointers and sizes),
// at most kTables of them, so that steps repeating their parameters upload nothing: a kept table
// is never freed, nor ever written again, while it may be in use (a launch queued, a graph).
constexpr size_t kTables = 16;

template <typename T>
const T* upload_table(const std::vector<T>& table, const char* fn) {
  static auto* kept = new std::map<std::string, std::shared_ptr<DeviceArray>>;
  std::string key(reinterpret_cast<const char*>(table.data()), table.size() * sizeof(T));
  auto it = kept->find(key);
  if (it == kept->end()) {
    refuse_while_capturing(fn);   // the upload would be recorded from a buffer about to go
    if (kept->size() >= kTables) {   // a new set of parameters: the old tables' launches first
      check_cuda(synchronize(), fn);
      kept->clear();
    }
    auto d = device_empty({(int64_t)key.size()}, DType::uint8);
    check_cuda(memcpy_bytes(d->data(), key.data(), key.size(), 0), fn);
    it = kept->emplace(std::move(key), std::move(d)).first;
  }
  return static_cast<const T*>(it->second->data());
}

void py_sgd(const List& params, const List& grads, const std::optional<List>& bufs, float lr,
            float momentum, float dampening, float weight_decay, bool nesterov, bool first_step) {
  const char* fn = "sgd_update_all";
  std::vector<const List*> others{&grads};
  if (momentum != 0.0f) {
    if (!bufs) throw py::value_error("sgd_update_all: momentum needs momentum buffers");
    others.push_back(&*bufs);
  }
  check_lists(params, others, fn);
  std::vector<SgdTensor> table;
  size_t max_n = 0;
  for (size_t i = 0; i < params.size(); i++) {
    float* buf = momentum != 0.0f ? f32((*bufs)[i], fn, "momentum_buf") : nullptr;
    table.push_back({f32(params[i], fn, "param"), f32(grads[i], fn, "grad"), buf,
                     params[i]->size()});
    max_n = std::max(max_n, params[i]->size());
  }
  check_cuda(sgd_update_all(upload_table(table, fn), (int)table.size(), max_n,
                            lr, momentum, dampening, weight_decay, nesterov, first_step), fn);
}

void py_adam(const List& params, const List& grads, const List& ms, const List& vs, float lr,
             float beta1, float beta2, float eps, float weight_decay, long step, bool decoupled) {
  const char* fn = "adam_update_all";
  check_lists(params, {&grads, &ms, &vs}, fn);
  std::vector<AdamTensor> table;
  size_t max_n = 0;
  for (size_t i = 0; i < params.size(); i++) {
    table.push_back({f32(params[i], fn, "param"), f32(grads[i], fn, "grad"), f32(ms[i], fn, "m"),
                     f32(vs[i], fn, "v"), params[i]->size()});
    max_n = std::max(max_n, params[i]->size());
  }
  check_cuda(adam_update_all(upload_table(table, fn), (int)table.size(), max_n,
                             lr, beta1, beta2, eps, weight_decay, step, decoupled), fn);
}

// data of a state array of param's size (null for None when optional)
float* state_of(DeviceArray* a, DeviceArray* param, const char* fn, const char* name,
                bool optional = false) {
  if (!a && optional) return nullptr;
  if (!a || a->size() != param->size())
    throw py::value_error(std::string(fn) + ": " + name + " must be a device array of the "
                          "parameter's size");
  return f32(a, fn, name);
}

}  // namespace

void bind_optim(py::module_& m) {
  using py::arg;
  m.def("rmsprop_update", [](DeviceArray* param, DeviceArray* grad, DeviceArray* square_avg,
                             DeviceArray* momentum_buf, DeviceArray* grad_avg, float lr,
                             float alpha, float eps, float weight_decay, float momentum) {
    const char* fn = "rmsprop_update";
    float* p = f32(param, fn, "param");
    check_cuda(rmsprop_update(p, state_of(grad, param, fn, "grad"),
                              state_of(square_avg, param, fn, "square_avg"),
                              state_of(momentum_buf, param, fn, "momentum_buf", true),
                              state_of(grad_avg, param, fn, "grad_avg", true), param->size(), lr,
                              alpha, eps, weight_decay, momentum), fn);
  }, arg("param"), arg("grad"), arg("square_avg"), arg("momentum_buf").none(true),
     arg("grad_avg").none(true), arg("lr"), arg("alpha"), arg("eps"), arg("weight_decay"),
     arg("momentum"), "PyTorch's RMSprop, in place, on one tensor.");
  m.def("adagrad_update", [](DeviceArray* param, DeviceArray* grad, DeviceArray* state_sum,
                             float lr, float lr_decay, float weight_decay, float eps, long step) {
    const char* fn = "adagrad_update";
    float* p = f32(param, fn, "param");
    check_cuda(adagrad_update(p, state_of(grad, param, fn, "grad"),
                              state_of(state_sum, param, fn, "state_sum"), param->size(), lr,
                              lr_decay, weight_decay, eps, step), fn);
  }, arg("param"), arg("grad"), arg("state_sum"), arg("lr"), arg("lr_decay"),
     arg("weight_decay"), arg("eps"), arg("step"), "PyTorch's Adagrad, in place, on one tensor.");
  m.def("adadelta_update", [](DeviceArray* param, DeviceArray* grad, DeviceArray* square_avg,
                              DeviceArray* acc_delta, float lr, float rho, float eps,
                              float weight_decay) {
    const char* fn = "adadelta_update";
    float* p = f32(param, fn, "param");
    check_cuda(adadelta_update(p, state_of(grad, param, fn, "grad"),
                               state_of(square_avg, param, fn, "square_avg"),
                               state_of(acc_delta, param, fn, "acc_delta"), param->size(), lr, rho,
                               eps, weight_decay), fn);
  }, arg("param"), arg("grad"), arg("square_avg"), arg("acc_delta"), arg("lr"), arg("rho"),
     arg("eps"), arg("weight_decay"), "PyTorch's Adadelta, in place, on one tensor.");
  m.def("sgd_update_all", &py_sgd, arg("params"), arg("grads"), arg("momentum_bufs").none(true),
        arg("lr"), arg("momentum"), arg("dampening"), arg("weight_decay"), arg("nesterov"),
        arg("first_step"), "PyTorch's SGD, in place, over lists of device arrays in one launch.");
  m.def("adam_update_all", &py_adam, arg("params"), arg("grads"), arg("m"), arg("v"), arg("lr"),
        arg("beta1"), arg("beta2"), arg("eps"), arg("weight_decay"), arg("step"),
        arg("decoupled"), "PyTorch's Adam (AdamW when decoupled), in place, in one launch.");
}

}  // namespace cuda
}  // namespace nnfast
