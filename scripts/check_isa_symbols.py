#!/usr/bin/env python3
"""Checks that the x86-64 extension only runs AVX where it chose to: every function outside the
namespaces of the AVX copies of the kernels (nnfast::avx2::, nnfast::avx512::, nnfast::native::)
holds no VEX / EVEX instruction, and the AVX2 copy's functions touch no AVX-512 register.

A function the copies share by name (an out-of-line template or inline function not in a copy's
namespace, merged by the linker into one definition taken from whichever copy came first), or a
copy's static initialiser (run at load, on any CPU), would otherwise put AVX-512 code on the path
of every CPU.

    python scripts/check_isa_symbols.py [path/to/_core*.so]    (default: the installed nnfast)

Prints each offending function with its first offending instruction; exits 1 if any. Needs
the symbol table (scripts/dev-build.sh's build has it; an installed wheel's extension is
stripped, and then the check exits 2: it cannot tell the functions apart).
"""
import re
import subprocess
import sys

FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSTRUCTION = re.compile(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$")
AVX512_OPERAND = re.compile(r"%zmm|%k[0-7]\b|\{%k[0-7]\}")


def rule(function):
    """'any' (AVX-512 allowed), 'avx2' (VEX but no AVX-512) or 'none' (no VEX / EVEX)."""
    if "nnfast::avx512::" in function or "nnfast::native::" in function:
        return "any"
    if "nnfast::avx2::" in function:
        return "avx2"
    return "none"


def violation(kind, mnemonic, operands):
    if kind == "any":
        return False
    if kind == "avx2":
        return bool(AVX512_OPERAND.search(operands)) or mnemonic.startswith("k")
    # every VEX / EVEX instruction's mnemonic starts with v (the legacy verr / verw are never
    # emitted by a compiler); AVX-512 mask instructions start with k
    return mnemonic.startswith("v") or bool(re.match(r"k(mov|and|or|xor|not|shift|test)", mnemonic))


def has_symbols(path):
    table = subprocess.run(["objdump", "-t", path], capture_output=True, text=True,
                           check=True).stdout
    return "no symbols" not in table


def check(path):
    dump = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", path],
                          capture_output=True, text=True, check=True).stdout
    bad, function, kind, seen = [], None, "none", set()
    for line in dump.splitlines():
        m = FUNCTION.match(line)
        if m:
            function, kind = m.group(1), rule(m.group(1))
            continue
        m = INSTRUCTION.match(line)
        if m and function and function not in seen and violation(kind, m.group(1), m.group(2)):
            seen.add(function)
            bad.append(f"{function}: {m.group(1)} {m.group(2)}")
    return bad


def main():
    if len(sys.argv) > 1:
        path = sys.argv[1]
    else:
        import nnfast._core
        path = nnfast._core.__file__
    if not has_symbols(path):
        print(f"{path}: stripped (no symbol table): build it with scripts/dev-build.sh to check")
        return 2
    bad = check(path)
    for b in bad:
        print(b)
    print(f"{path}: {len(bad)} function(s) with vector instructions outside their copy"
          if bad else f"{path}: every AVX instruction is inside its copy of the kernels")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
