// nnfast._core: the pybind11 module. Thin by design: each binding file (one per kernel family)
// validates and converts its arguments, allocates outputs, releases the GIL around the kernels
// and turns every bad input into a Python exception (TypeError for a wrong dtype, ValueError for
// a wrong rank / shape / value). No numerics here.
#include <pybind11/pybind11.h>

#include "register.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "nnfast's compiled kernels (float32, C-contiguous NumPy arrays in and out)";
  using namespace nnfast_bindings;
  register_config(m);
  register_gemm(m);
  register_linear(m);
  register_conv(m);
  register_pool(m);
  register_activation(m);
  register_loss(m);
  register_data(m);
  register_dropout(m);
  register_norm(m);
  register_optim(m);
  register_peak(m);
}
