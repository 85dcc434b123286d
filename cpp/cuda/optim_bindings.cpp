// Bindings of the optimizer updates (optim.cu): lists of device arrays, one launch for all. The
// table of pointers is built here and copied to the device for the launch.
#include <pybind11/stl.h>

#include <algorithm>
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

// The table on the device (its memory from the cache, kept alive by the returned array).
template <typename T>
std::shared_ptr<DeviceArray> upload_table(const std::vector<T>& table, const char* fn) {
  auto d = device_empty({(int64_t)(table.size() * sizeof(T))}, DType::uint8);
  check_cuda(memcpy_bytes(d->data(), table.data(), d->nbytes(), 0), fn);
  return d;
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
  auto d = upload_table(table, fn);
  check_cuda(sgd_update_all(static_cast<const SgdTensor*>(d->data()), (int)table.size(), max_n,
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
  auto d = upload_table(table, fn);
  check_cuda(adam_update_all(static_cast<const AdamTensor*>(d->data()), (int)table.size(), max_n,
                             lr, beta1, beta2, eps, weight_decay, step, decoupled), fn);
}

}  // namespace

void bind_optim(py::module_& m) {
  using py::arg;
  m.def("sgd_update_all", &py_sgd, arg("params"), arg("grads"), arg("momentum_bufs").none(true),
        arg("lr"), arg("momentum"), arg("dampening"), arg("weight_decay"), arg("nesterov"),
        arg("first_step"), "PyTorch's SGD, in place, over lists of device arrays in one launch.");
  m.def("adam_update_all", &py_adam, arg("params"), arg("grads"), arg("m"), arg("v"), arg("lr"),
        arg("beta1"), arg("beta2"), arg("eps"), arg("weight_decay"), arg("step"),
        arg("decoupled"), "PyTorch's Adam (AdamW when decoupled), in place, in one launch.");
}

}  // namespace cuda
}  // namespace nnfast
