// The machine's FP32 fused multiply-add peak, as this copy of the kernels reaches it: every
// thread runs independent FMA chains in vector registers (enough of them to cover the FMA units'
// latency), so that the loop is bound by FMA throughput alone. benchmarks/peak.py times it and
// reports the other benchmarks' GFLOP/s as fractions of it.
#pragma once
#include "nnfast/common.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// Runs `iterations` rounds of fma_peak_chains() independent FMAs per thread on
// get_num_threads() threads; *flops = the floating-point operations done (2 per lane per FMA).
// Returns a sum of the chains' values (so that the loop is not optimised away).
float fma_peak(int64_t iterations, double* flops);
// The number of independent FMA chains per thread.
int fma_peak_chains();

}  // namespace NNFAST_ISA
}  // namespace nnfast
