"""What the benchmarks say about the machine they ran on."""
import platform
import subprocess


def cpu_model():
    """The CPU's model name: /proc/cpuinfo's (with its CPU family and model numbers, which tell
    apart the generations a VM's bare "AMD EPYC" hides), else lscpu's, else what platform
    knows."""
    try:
        with open("/proc/cpuinfo") as f:
            fields = {}
            for line in f:
                if not line.strip():
                    break   # the first processor's fields
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        name = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            name += f" (CPU family {fields['cpu family']} model {fields['model']})"
        return name
    except (OSError, KeyError):
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.SubprocessError, StopIteration):
        return platform.processor() or platform.machine()
