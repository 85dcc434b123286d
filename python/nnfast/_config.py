"""Which copy of the kernels runs, and how this build was made.

The extension holds the kernels once per instruction set (CMakeLists.txt): ``avx512``,
``avx2`` (AVX2 + FMA) and ``baseline`` (x86-64 SSE2, or the target's own vectors elsewhere), or
one ``native`` copy in a build with ``NNFAST_NATIVE=ON``. At import the best copy the CPU runs is
chosen; ``NNFAST_ISA`` names another (a lower one, for tests or for a user who needs it).
"""
import os
import warnings

from . import _core, cuda

__version__ = "0.1.0"   # pyproject.toml's version

ISAS = ("avx512", "avx2", "baseline", "native")


def select_isa_from_environment():
    """Apply ``NNFAST_ISA`` (unset or empty: keep the best copy). A name not in ISAS raises
    ValueError; a copy this build lacks, or whose instructions this CPU lacks, warns and keeps
    the best copy."""
    name = os.environ.get("NNFAST_ISA", "").strip().lower()
    if not name:
        return
    if name not in ISAS:
        raise ValueError(f"NNFAST_ISA={name!r}: must be one of {', '.join(ISAS)} (or unset)")
    copies = dict(_core.kernel_copies())
    if name not in copies:
        reason = f"this build has only {', '.join(copies)}"
    elif not copies[name]:
        reason = "this CPU lacks its instructions"
    elif _core.select_isa(name):
        return
    else:  # pragma: no cover - kernel_copies() said it was supported
        reason = "it could not be selected"
    warnings.warn(f"NNFAST_ISA={name}: {reason}; using {_core.isa()}", RuntimeWarning,
                  stacklevel=3)


def config():
    """How nnfast runs here, as a dict: ``isa`` (the copy of the kernels in use), ``vector_isa``
    (the vector instructions that copy is written for: a native copy's are the build
    machine's), ``compiled`` (each copy in the build and whether this CPU runs it, best first),
    ``num_threads``, ``precision`` (of Linear's products: ``nnfast.set_precision``), ``bf16``
    (whether this copy runs bf16 products on this CPU), ``compiler``, ``build_type``, ``native``
    (a host-tuned build), ``flags`` (each copy's compiler flags), ``cuda`` (whether the CUDA
    extension is compiled in; whether a device is there is ``nnfast.cuda.is_available()``) and
    ``version``."""
    info = _core.build_info()
    return {
        "version": __version__,
        "isa": _core.isa(),
        "vector_isa": _core.vector_isa(),
        "compiled": dict(_core.kernel_copies()),
        "num_threads": _core.get_num_threads(),
        "precision": _core.get_precision(),
        "bf16": _core.bf16_available(),
        "compiler": info["compiler"],
        "build_type": info["build_type"],
        "native": info["native"],
        "flags": dict(part.split(": ", 1) for part in info["copy_flags"].split("; ")),
        "cuda": cuda.compiled(),
    }
