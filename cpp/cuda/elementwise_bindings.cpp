// Bindings of the elementwise families: activations (activation.cu), losses (loss.cu), dropout
// (dropout.cu) and batch gathering (data.cu). Outputs come first, as in the launchers; sizes are
// taken from the inputs and every other array is checked against them.
#include "bindings.h"
#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {
namespace {

// Checks that a and b hold the same number of elements.
void same_size(DeviceArray* a, DeviceArray* b, const char* fn, const char* na, const char* nb) {
  if (!a || !b || a->size() != b->size())
    throw py::value_error(std::string(fn) + ": " + na + " and " + nb +
                          " must be device arrays of the same size");
}

// forward(y, x, extra...): the launcher k(y, x, n, extra...), the extra scalars named `names`
template <typename... Extra, typename... Names>
void def_unary(py::module_& m, const char* fn, int (*k)(float*, const float*, size_t, Extra...),
               Names... names) {
  m.def(fn, [fn, k](DeviceArray* y, DeviceArray* x, Extra... extra) {
    same_size(y, x, fn, "y", "x");
    check_cuda(k(f32(y, fn, "y"), f32(x, fn, "x"), x->size(), extra...), fn);
  }, py::arg("y"), py::arg("x"), py::arg(names)...);
}

// backward(dx, dy, saved, extra...): saved is the forward's input x or output y, as the CPU
// kernel takes it
template <typename... Extra, typename... Names>
void def_unary_backward(py::module_& m, const char* fn,
                        int (*k)(float*, const float*, const float*, size_t, Extra...),
                        Names... names) {
  m.def(fn, [fn, k](DeviceArray* dx, DeviceArray* dy, DeviceArray* saved, Extra... extra) {
    same_size(dx, dy, fn, "dx", "dy");
    same_size(dy, saved, fn, "dy", "x / y");
    check_cuda(k(f32(dx, fn, "dx"), f32(dy, fn, "dy"), f32(saved, fn, "x / y"), dy->size(),
                 extra...), fn);
  }, py::arg("dx"), py::arg("dy"), py::arg("saved"), py::arg(names)...);
}

// fn(y, a, b): the launcher k(y, a, b, n), a and b of y's size
void def_binary(py::module_& m, const char* fn,
                int (*k)(float*, const float*, const float*, size_t)) {
  m.def(fn, [fn, k](DeviceArray* y, DeviceArray* a, DeviceArray* b) {
    same_size(y, a, fn, "y", "a");
    same_size(a, b, fn, "a", "b");
    check_cuda(k(f32(y, fn, "y"), f32(a, fn, "a"), f32(b, fn, "b"), a->size()), fn);
  }, py::arg("y"), py::arg("a"), py::arg("b"));
}

void bind_activations(py::module_& m) {
  def_binary(m, "add", &add);
  def_binary(m, "mul", &mul);
  def_unary(m, "scale", &scale, "alpha");
  def_unary(m, "relu_forward", &relu_forward);
  def_unary_backward(m, "relu_backward", &relu_backward);
  def_unary(m, "sigmoid_forward", &sigmoid_forward);
  def_unary_backward(m, "sigmoid_backward", &sigmoid_backward);
  def_unary(m, "tanh_forward", &tanh_forward);
  def_unary_backward(m, "tanh_backward", &tanh_backward);
  def_unary(m, "leaky_relu_forward", &leaky_relu_forward, "slope");
  def_unary_backward(m, "leaky_relu_backward", &leaky_relu_backward, "slope");
  def_unary(m, "threshold_forward", &threshold_forward, "threshold", "value");
  def_unary_backward(m, "threshold_backward", &threshold_backward, "threshold");
  // softmax_forward(y, x, N, C, log) / softmax_backward(dx, dy, y, N, C, log): rows of (N, C)
  m.def("softmax_forward", [](DeviceArray* y, DeviceArray* x, int N, int C, bool log) {
    const char* fn = "softmax_forward";
    same_size(y, x, fn, "y", "x");
    need(x, (size_t)N * C, fn, "x");
    check_cuda(softmax_forward(f32(y, fn, "y"), f32(x, fn, "x"), N, C, log), fn);
  }, py::arg("y"), py::arg("x"), py::arg("N"), py::arg("C"), py::arg("log"));
  m.def("softmax_backward", [](DeviceArray* dx, DeviceArray* dy, DeviceArray* y, int N, int C,
                               bool log) {
    const char* fn = "softmax_backward";
    same_size(dx, dy, fn, "dx", "dy");
    same_size(dy, y, fn, "dy", "y");
    need(y, (size_t)N * C, fn, "y");
    check_cuda(softmax_backward(f32(dx, fn, "dx"), f32(dy, fn, "dy"), f32(y, fn, "y"), N, C, log),
               fn);
  }, py::arg("dx"), py::arg("dy"), py::arg("y"), py::arg("N"), py::arg("C"), py::arg("log"));
}

// Where a forward loss writes its mean (a double on the device): loss_out's first element when
// given (a float64 device array), else slot 0 of the loss's work array.
double* mean_slot(DeviceArray* loss_out, const std::shared_ptr<DeviceArray>& work,
                  const char* fn) {
  if (!loss_out) return static_cast<double*>(work->data());
  need(loss_out, 1, fn, "loss_out");
  return data_of<double>(loss_out, DType::float64, fn, "loss_out");
}

// What a forward loss returns: None when it wrote its mean to loss_out, else the mean copied
// back as a float (which waits for the kernels).
py::object loss_result(DeviceArray* loss_out, const std::shared_ptr<DeviceArray>& work,
                       const char* fn) {
  if (loss_out) return py::none();
  refuse_while_capturing(fn);
  double v = 0.0;
  check_cuda(memcpy_bytes(&v, work->data(), sizeof v, 1), fn);
  return py::float_(v);
}

// <name>_forward(pred, target) -> mean loss; <name>_backward(dpred, pred, target, scale)
void def_pointwise_loss(py::module_& m, const char* name, PointwiseLoss kind) {
  const std::string forward = std::string(name) + "_forward", backward = std::string(name) +
                                                                         "_backward";
  m.def(forward.c_str(), [forward, kind](DeviceArray* pred, DeviceArray* target,
                                         DeviceArray* loss_out) {
    const char* fn = forward.c_str();
    same_size(pred, target, fn, "pred", "target");
    auto work = device_empty({(int64_t)pointwise_loss_workspace_size(pred->size()) + 1},
                             DType::int64);
    double* w = static_cast<double*>(work->data());
    check_cuda(pointwise_loss_forward(kind, mean_slot(loss_out, work, fn), f32(pred, fn, "pred"),
                                      f32(target, fn, "target"), pred->size(), w + 1), fn);
    return loss_result(loss_out, work, fn);
  }, py::arg("pred"), py::arg("target"), py::arg("loss_out") = py::none());
  m.def(backward.c_str(), [backward, kind](DeviceArray* dpred, DeviceArray* pred,
                                           DeviceArray* target, float scale) {
    const char* fn = backward.c_str();
    same_size(pred, target, fn, "pred", "target");
    same_size(dpred, pred, fn, "dpred", "pred");
    check_cuda(pointwise_loss_backward(kind, f32(dpred, fn, "dpred"), f32(pred, fn, "pred"),
                                       f32(target, fn, "target"), pred->size(), scale), fn);
  }, py::arg("dpred"), py::arg("pred"), py::arg("target"), py::arg("scale"));
}

void bind_losses(py::module_& m) {
  m.def("cross_entropy_forward", [](DeviceArray* probs, DeviceArray* logits, DeviceArray* labels,
                                    int N, int C, DeviceArray* loss_out) {
    const char* fn = "cross_entropy_forward";
    need(logits, (size_t)N * C, fn, "logits");
    need(probs, (size_t)N * C, fn, "probs");
    need(labels, (size_t)N, fn, "labels");
    auto work = device_empty({(int64_t)cross_entropy_workspace_size(N) + 1}, DType::int64);
    double* w = static_cast<double*>(work->data());  // int64-sized slots, used as doubles
    check_cuda(cross_entropy_forward(mean_slot(loss_out, work, fn), f32(probs, fn, "probs"),
                                     f32(logits, fn, "logits"),
                                     data_of<int64_t>(labels, DType::int64, fn, "labels"), N, C,
                                     w + 1), fn);
    return loss_result(loss_out, work, fn);
  }, py::arg("probs"), py::arg("logits"), py::arg("labels"), py::arg("N"), py::arg("C"),
     py::arg("loss_out") = py::none(),
     "The mean loss (labels in [0, C): the caller checks); probs = softmax(logits). With "
     "loss_out (float64), the mean is written there and None returned.");
  m.def("cross_entropy_backward", [](DeviceArray* dlogits, DeviceArray* probs, DeviceArray* labels,
                                     int N, int C, float scale) {
    const char* fn = "cross_entropy_backward";
    need(probs, (size_t)N * C, fn, "probs");
    need(dlogits, (size_t)N * C, fn, "dlogits");
    need(labels, (size_t)N, fn, "labels");
    check_cuda(cross_entropy_backward(f32(dlogits, fn, "dlogits"), f32(probs, fn, "probs"),
                                      data_of<int64_t>(labels, DType::int64, fn, "labels"), N, C,
                                      scale), fn);
  }, py::arg("dlogits"), py::arg("probs"), py::arg("labels"), py::arg("N"), py::arg("C"),
     py::arg("scale"));
  m.def("cross_entropy_soft_forward", [](DeviceArray* probs, DeviceArray* logits,
                                         DeviceArray* targets, int N, int C,
                                         DeviceArray* loss_out) {
    const char* fn = "cross_entropy_soft_forward";
    for (auto [a, name] : {std::pair{logits, "logits"}, {probs, "probs"}, {targets, "targets"}})
      need(a, (size_t)N * C, fn, name);
    auto work = device_empty({(int64_t)cross_entropy_workspace_size(N) + 1}, DType::int64);
    double* w = static_cast<double*>(work->data());
    check_cuda(cross_entropy_soft_forward(mean_slot(loss_out, work, fn), f32(probs, fn, "probs"),
                                          f32(logits, fn, "logits"), f32(targets, fn, "targets"),
                                          N, C, w + 1), fn);
    return loss_result(loss_out, work, fn);
  }, py::arg("probs"), py::arg("logits"), py::arg("targets"), py::arg("N"), py::arg("C"),
     py::arg("loss_out") = py::none());
  m.def("cross_entropy_soft_backward", [](DeviceArray* dlogits, DeviceArray* probs,
                                          DeviceArray* targets, int N, int C, float scale) {
    const char* fn = "cross_entropy_soft_backward";
    for (auto [a, name] : {std::pair{dlogits, "dlogits"}, {probs, "probs"}, {targets, "targets"}})
      need(a, (size_t)N * C, fn, name);
    check_cuda(cross_entropy_soft_backward(f32(dlogits, fn, "dlogits"), f32(probs, fn, "probs"),
                                           f32(targets, fn, "targets"), N, C, scale), fn);
  }, py::arg("dlogits"), py::arg("probs"), py::arg("targets"), py::arg("N"), py::arg("C"),
     py::arg("scale"));
  m.def("nll_forward", [](DeviceArray* logp, DeviceArray* labels, int N, int C,
                          DeviceArray* loss_out) {
    const char* fn = "nll_forward";
    need(logp, (size_t)N * C, fn, "logp");
    need(labels, (size_t)N, fn, "labels");
    auto work = device_empty({(int64_t)cross_entropy_workspace_size(N) + 1}, DType::int64);
    double* w = static_cast<double*>(work->data());
    check_cuda(nll_forward(mean_slot(loss_out, work, fn), f32(logp, fn, "logp"),
                           data_of<int64_t>(labels, DType::int64, fn, "labels"), N, C, w + 1), fn);
    return loss_result(loss_out, work, fn);
  }, py::arg("logp"), py::arg("labels"), py::arg("N"), py::arg("C"),
     py::arg("loss_out") = py::none(),
     "The mean negative log-likelihood (labels in [0, C): the caller checks).");
  m.def("nll_backward", [](DeviceArray* dlogp, DeviceArray* labels, int N, int C, float scale) {
    const char* fn = "nll_backward";
    need(dlogp, (size_t)N * C, fn, "dlogp");
    need(labels, (size_t)N, fn, "labels");
    check_cuda(nll_backward(f32(dlogp, fn, "dlogp"),
                            data_of<int64_t>(labels, DType::int64, fn, "labels"), N, C, scale), fn);
  }, py::arg("dlogp"), py::arg("labels"), py::arg("N"), py::arg("C"), py::arg("scale"));
  def_pointwise_loss(m, "mse", PointwiseLoss::mse);
  def_pointwise_loss(m, "l1", PointwiseLoss::l1);
  def_pointwise_loss(m, "bce", PointwiseLoss::bce);
  def_pointwise_loss(m, "bce_with_logits", PointwiseLoss::bce_with_logits);
}

void bind_dropout_and_data(py::module_& m) {
  m.def("dropout_forward", [](DeviceArray* y, DeviceArray* mask, DeviceArray* x, float p,
                              uint64_t seed) {
    const char* fn = "dropout_forward";
    same_size(y, x, fn, "y", "x");
    same_size(mask, x, fn, "mask", "x");
    check_cuda(dropout_forward(f32(y, fn, "y"), data_of<uint8_t>(mask, DType::uint8, fn, "mask"),
                               f32(x, fn, "x"), x->size(), p, seed), fn);
  }, py::arg("y"), py::arg("mask"), py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def("dropout_backward", [](DeviceArray* dx, DeviceArray* dy, DeviceArray* mask, float p) {
    const char* fn = "dropout_backward";
    same_size(dx, dy, fn, "dx", "dy");
    same_size(mask, dy, fn, "mask", "dy");
    check_cuda(dropout_backward(f32(dx, fn, "dx"), f32(dy, fn, "dy"),
                                data_of<uint8_t>(mask, DType::uint8, fn, "mask"), dy->size(), p),
               fn);
  }, py::arg("dx"), py::arg("dy"), py::arg("mask"), py::arg("p"));
  m.def("gather_rows", [](DeviceArray* out, DeviceArray* src, DeviceArray* rows, size_t width) {
    const char* fn = "gather_rows";
    const int64_t* r = data_of<int64_t>(rows, DType::int64, fn, "rows");
    need(out, rows->size() * width, fn, "out");
    check_cuda(gather_rows(f32(out, fn, "out"), f32(src, fn, "src"), r, (int)rows->size(), width),
               fn);
  }, py::arg("out"), py::arg("src"), py::arg("rows"), py::arg("width"),
     "out[i] = src[rows[i]] for rows of `width` floats; rows in range (the caller checks).");
  m.def("copy_columns", [](DeviceArray* dst, DeviceArray* src, size_t rows, size_t dst_cols,
                           size_t src_cols, size_t dst_col, size_t src_col, size_t cols) {
    const char* fn = "copy_columns";
    if (dst_col + cols > dst_cols || src_col + cols > src_cols)
      throw py::value_error("copy_columns: columns out of range");
    if (!dst || !src || dst->size() != rows * dst_cols || src->size() != rows * src_cols)
      throw py::value_error("copy_columns: dst and src must hold rows x their columns");
    check_cuda(copy_columns(f32(dst, fn, "dst") + dst_col, dst_cols, f32(src, fn, "src") + src_col,
                            src_cols, rows, cols), fn);
  }, py::arg("dst"), py::arg("src"), py::arg("rows"), py::arg("dst_cols"), py::arg("src_cols"),
     py::arg("dst_col"), py::arg("src_col"), py::arg("cols"),
     "dst[:, dst_col:dst_col + cols] = src[:, src_col:src_col + cols] of (rows, *_cols) arrays.");
}

}  // namespace

void bind_elementwise(py::module_& m) {
  bind_activations(m);
  bind_losses(m);
  bind_dropout_and_data(m);
}

}  // namespace cuda
}  // namespace nnfast
