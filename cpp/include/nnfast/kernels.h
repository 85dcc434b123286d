// The kernel table: one pointer per kernel function of the headers below, so that code outside
// the kernels (the bindings) calls the copy of them chosen at import, for the instruction set the
// CPU has (common.h explains the copies).
//
//   kernels().sgemm(...)        the chosen copy's sgemm
//   select_isa("avx2")          choose a copy by name; false if it is not compiled in or the CPU
//                               lacks it (the default: the best the CPU supports)
//
// Adding a kernel function: declare it in its family's header and add its name to
// NNFAST_KERNELS.
#pragma once
#include <string>
#include <vector>

#include "nnfast/activation.h"
#include "nnfast/common.h"
#include "nnfast/conv.h"
#include "nnfast/data.h"
#include "nnfast/dropout.h"
#include "nnfast/gemm.h"
#include "nnfast/loss.h"
#include "nnfast/norm.h"
#include "nnfast/optim.h"
#include "nnfast/peak.h"
#include "nnfast/pool.h"

#define NNFAST_KERNELS(X)                                                                       \
  X(isa_name)                                                                                   \
  X(relu_forward) X(relu_backward) X(leaky_relu_forward) X(leaky_relu_backward)                 \
  X(sigmoid_forward) X(sigmoid_backward) X(activation_backward) X(tanh_forward)                 \
  X(tanh_backward) X(threshold_forward) X(threshold_backward) X(softmax_forward)                \
  X(softmax_backward) X(log_softmax_forward) X(log_softmax_backward)                            \
  X(conv2d_workspace_size) X(conv2d_forward) X(conv2d_backward)                                 \
  X(conv2d_relu_maxpool_forward) X(conv2d_relu_maxpool_backward)                                \
  X(gather_rows) X(dropout_forward) X(dropout_backward)                                         \
  X(sgemm_workspace_size) X(sgemm) X(sgemm_reference) X(matmul_forward_workspace_size)          \
  X(matmul_forward) X(matmul_backward_workspace_size) X(matmul_backward)                        \
  X(linear_forward_workspace_size) X(linear_forward) X(linear_backward_workspace_size)          \
  X(linear_backward) X(gemm_bf16_available) X(gemm_bf16_workspace_size) X(gemm_bf16)            \
  X(cross_entropy_forward) X(cross_entropy_backward) X(cross_entropy_soft_forward)              \
  X(cross_entropy_soft_backward) X(nll_forward) X(nll_backward) X(mse_forward) X(mse_backward)  \
  X(l1_forward) X(l1_backward) X(bce_forward) X(bce_backward) X(bce_with_logits_forward)        \
  X(bce_with_logits_backward)                                                                   \
  X(sgd_update) X(sgd_update_all) X(adam_update) X(rmsprop_update) X(adagrad_update)            \
  X(adadelta_update) X(batchnorm_forward) X(batchnorm_backward)                                \
  X(maxpool2d_forward) X(maxpool2d_backward) X(argmax_in_range) X(avgpool2d_forward)            \
  X(avgpool2d_backward) X(fma_peak) X(fma_peak_chains)

namespace nnfast {

// Every copy's functions have the same signatures, so the member types (taken from the
// declarations in the including file's namespace) are the same in every file.
struct Kernels {
#define NNFAST_KERNEL_MEMBER(name) decltype(&nnfast::name) name;
  NNFAST_KERNELS(NNFAST_KERNEL_MEMBER)
#undef NNFAST_KERNEL_MEMBER
};

// The copies compiled in, best first, each with its table (src/kernel_table.cpp, once per ISA).
struct KernelCopy {
  const char* name;  // "avx512", "avx2", "baseline" or "native"
  const Kernels* table;
  bool supported;  // the CPU (and the OS, for the register state) has its instructions
};
const std::vector<KernelCopy>& kernel_copies();

// The chosen copy's table and name.
const Kernels& kernels();
const char* selected_isa();
bool select_isa(const std::string& name);

}  // namespace nnfast
