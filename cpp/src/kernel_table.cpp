// This copy's kernel table (kernels.h), compiled once per instruction set with the kernels.
#include "nnfast/kernels.h"

#include "simd.h"

namespace nnfast {
inline namespace NNFAST_ISA {

const char* isa_name() { return simd::kName; }

extern const Kernels kernel_table;
const Kernels kernel_table = {
#define NNFAST_KERNEL_ADDRESS(name) &name,
    NNFAST_KERNELS(NNFAST_KERNEL_ADDRESS)
#undef NNFAST_KERNEL_ADDRESS
};

}  // namespace NNFAST_ISA
}  // namespace nnfast
