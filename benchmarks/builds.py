"""The portable build (every copy of the kernels, the best chosen at import) against the
host-tuned one (NNFAST_NATIVE=ON, -march=native), on this machine, in one run.

    python benchmarks/builds.py [--rounds 2] [--json PATH]

Builds both from this checkout with CMake (build/bench-portable, build/bench-native), then runs
benchmarks/gemm.py --quick and benchmarks/mnist.py --quick (the MLPs and the CNN, nnfast and
PyTorch) under each, the builds taking turns round after round (so that a slow spell of a shared
machine falls on both), and reports each case's best: GEMM GFLOP/s per shape (with NumPy's,
measured in the same process) and nnfast's seconds per 60,000-image epoch (with PyTorch's from
the same runs), and the ratio native / portable. Writes benchmarks/results/builds.json.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
BUILDS = {"portable": "OFF", "native": "ON"}
MODELS = "mlp,mlp256,cnn"


def build(name, native):
    """The package tree of one build: python/nnfast with that build's extension."""
    import pybind11
    out = os.path.join(ROOT, "build", f"bench-{name}")
    subprocess.run(["cmake", "-S", ROOT, "-B", out, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DNNFAST_NATIVE={native}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", out], check=True, stdout=subprocess.DEVNULL)
    pkg = os.path.join(out, "pkg")
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "python", "nnfast"), os.path.join(pkg, "nnfast"),
                    ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    for so in glob.glob(os.path.join(out, "_core*.so")):
        shutil.copy(so, os.path.join(pkg, "nnfast"))
    return pkg


def run(pkg, script, args, tmp):
    """The JSON a benchmark script writes, run with the package tree pkg."""
    env = dict(os.environ, PYTHONPATH=pkg)
    env.pop("NNFAST_ISA", None)
    path = os.path.join(tmp, "out.json")
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args, "--json",
                    path], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def config(pkg):
    code = "import json, nnfast; print(json.dumps(nnfast.config()))"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=pkg),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=os.path.join(RESULTS, "builds.json"))
    args = parser.parse_args(argv)
    pkgs = {name: build(name, native) for name, native in BUILDS.items()}
    configs = {name: config(pkg) for name, pkg in pkgs.items()}
    gemm, mnist = {name: {} for name in BUILDS}, {name: {} for name in BUILDS}
    cpu = None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, pkg in pkgs.items():
                for row in run(pkg, "gemm.py", ["--quick"], tmp)["results"]:
                    best = gemm[name].get(row["case"])
                    if best is None or row["nnfast_gflops"] > best["nnfast_gflops"]:
                        gemm[name][row["case"]] = row
                out = run(pkg, "mnist.py", ["--quick", "--models", MODELS, "--engines",
                                            "nnfast,torch"], tmp)
                cpu = out["machine"]["cpu"]
                for r in out["results"]:
                    key = (r["model"], r["engine"])
                    if key not in mnist[name] or r["epoch_time_60k"] < mnist[name][key]:
                        mnist[name][key] = r["epoch_time_60k"]
    print(f"builds on {cpu or 'this CPU'}, {os.cpu_count()} cores; best of {args.rounds} rounds, "
          f"builds in turns")
    for name in BUILDS:
        c = configs[name]
        print(f"  {name:<8} copy in use {c['isa']} ({c['vector_isa']}), {c['compiler']}, "
              f"flags {c['flags'][c['isa']]}")
    head = f"{'GEMM case':<26} {'portable GF/s':>13} {'native GF/s':>12} {'numpy GF/s':>11} {'native/portable':>16}"
    print("\n" + head + "\n" + "-" * len(head))
    rows = []
    for case, p in gemm["portable"].items():
        n = gemm["native"][case]
        ratio = n["nnfast_gflops"] / p["nnfast_gflops"]
        numpy_best = max(p["numpy_gflops"], n["numpy_gflops"])
        rows.append({"case": case, "portable_gflops": p["nnfast_gflops"],
                     "native_gflops": n["nnfast_gflops"], "numpy_gflops": numpy_best,
                     "native_over_portable": ratio})
        print(f"{case:<26} {p['nnfast_gflops']:>13.1f} {n['nnfast_gflops']:>12.1f} "
              f"{numpy_best:>11.1f} {ratio:>16.2f}")
    head = f"{'MNIST quick, s/60k epoch':<26} {'portable':>13} {'native':>12} {'others':>11} {'native/portable':>16}"
    print("\n" + head + "\n" + "-" * len(head))
    epochs = []
    models = sorted({model for (model, engine) in mnist["portable"] if engine == "nnfast"})
    for model in models:
        p, n = mnist["portable"][(model, "nnfast")], mnist["native"][(model, "nnfast")]
        others = {engine: min(mnist[b].get((model, engine), float("inf")) for b in BUILDS)
                  for (m, engine) in mnist["portable"] if m == model and engine != "nnfast"}
        shown = ", ".join(f"{e} {t:.3f}" for e, t in sorted(others.items()))
        epochs.append({"model": model, "portable_s": p, "native_s": n, "others_s": others,
                       "portable_over_native_time": p / n})
        print(f"{model:<26} {p:>13.3f} {n:>12.3f} {shown:>11} {p / n:>16.2f}")
    print("(native/portable: above 1, the native build is faster)")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"cpu": cpu, "cores": os.cpu_count(), "rounds": args.rounds,
                   "configs": configs, "gemm": rows, "mnist_quick": epochs}, f, indent=1)


if __name__ == "__main__":
    main()
