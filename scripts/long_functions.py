#!/usr/bin/env python3
"""Lists the C++ and CUDA functions in cpp/ longer than a screen.

    python scripts/long_functions.py [--max N] [--all] [paths...]   (default: 60 lines, cpp/)

A function is a brace block, outside any other function, whose opening brace follows a closing
parenthesis (optionally with const / noexcept / override / a trailing return type between); its
length counts the lines from its signature's first line to its closing brace. Comments, strings
and preprocessor lines are blanked first, so braces in them do not count. Lambdas and local
classes count as part of the function they sit in. A heuristic, not a parser: it prints what it
measures, and exits 1 if any function is longer than --max (the GEMM micro-kernels, named in
EXEMPT, are listed but do not fail the check).
"""
import argparse
import pathlib
import re
import signal
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXEMPT = re.compile(r"micro_kernel|microkernel|kernel_\d+x\d+")
TAIL = re.compile(r"\)\s*(?:const\s*)?(?:noexcept\s*)?(?:override\s*)?(?:->\s*[\w:<>,\s*&]+)?$")


def blank(text):
    """text with comments, string / char literals and preprocessor lines replaced by spaces
    (newlines kept, so line numbers stay)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i) or (c == "#" and text[text.rfind("\n", 0, i) + 1:i].strip() == ""):
            j = i
            while j < n and text[j] != "\n":  # a preprocessor line may continue with a backslash
                j += 2 if text[j] == "\\" and c == "#" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, length in lines) for every function in the file."""
    text = blank(path.read_text())
    found, depth, in_function = [], 0, None
    for m in re.finditer(r"[{};]", text):
        c, pos = m.group(), m.start()
        if c == "{":
            if in_function is None:
                before = text[:pos].rstrip()
                if TAIL.search(before):
                    # the signature starts after the previous ; { } at this level
                    start = max(before.rfind(";"), before.rfind("{"), before.rfind("}")) + 1
                    sig = before[start:]
                    name = re.findall(r"([~\w:]+)\s*\(", sig)
                    first = text.count("\n", 0, start + len(sig) - len(sig.lstrip())) + 1
                    in_function = (name[0] if name else "?", first, depth)
            depth += 1
        elif c == "}":
            depth -= 1
            if in_function is not None and depth == in_function[2]:
                name, first, _ = in_function
                last = text.count("\n", 0, pos) + 1
                found.append((name, first, last - first + 1))
                in_function = None
    return found


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the listing quietly
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=60)
    ap.add_argument("--all", action="store_true", help="list every function, longest first")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args()
    paths = [pathlib.Path(p) for p in args.paths] or [ROOT / "cpp"]
    files = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p])
             if f.suffix in (".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh")]
    rows = [(length, f, line, name) for f in files for name, line, length in functions(f)]
    rows.sort(key=lambda r: -r[0])
    failed = False
    for length, f, line, name in rows:
        if args.all or length > args.max:
            exempt = bool(EXEMPT.search(name))
            failed |= length > args.max and not exempt
            rel = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
            print(f"{length:4d}  {rel}:{line}  {name}{'  (exempt)' if exempt else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
