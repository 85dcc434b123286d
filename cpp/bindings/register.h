// The pieces of nnfast._core: one register function per binding file, each adding its family's
// functions to the module (module.cpp calls them all).
#pragma once
#include <pybind11/pybind11.h>

namespace nnfast_bindings {

void register_config(pybind11::module_& m);      // config.cpp: threads, kernel copies, build
void register_gemm(pybind11::module_& m);        // gemm.cpp
void register_linear(pybind11::module_& m);      // linear.cpp
void register_conv(pybind11::module_& m);        // conv.cpp (with the fused conv-relu-maxpool)
void register_pool(pybind11::module_& m);        // pool.cpp
void register_activation(pybind11::module_& m);  // activation.cpp
void register_loss(pybind11::module_& m);        // loss.cpp
void register_data(pybind11::module_& m);        // data.cpp
void register_dropout(pybind11::module_& m);     // dropout.cpp
void register_norm(pybind11::module_& m);        // norm.cpp
void register_optim(pybind11::module_& m);       // optim.cpp
void register_peak(pybind11::module_& m);        // peak.cpp: the FMA peak loop of benchmarks

}  // namespace nnfast_bindings
