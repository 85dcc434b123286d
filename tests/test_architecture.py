"""The package's shape: layers know nothing of training, the imports between nnfast's modules form
no cycle and sit at the top of each module, and every backend implements the interface."""
import ast
import copy
import pathlib
import pickle

import numpy as np
import pytest

import nnfast as nf
from nnfast import backend, nn

PACKAGE = pathlib.Path(nf.__file__).parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """(module this file imports from nnfast, line, at the top level?) for each import."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from package import submodule` imports the submodule
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in top) for t in targets if t.split(".")[0] == "nnfast"]
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
EXTENSIONS = [path.with_name(path.name.split(".")[0] + ".py") for path in PACKAGE.rglob("*.so")]
MODULES = {module_name(path) for path in FILES + EXTENSIONS}


def test_layers_have_no_training_loop():
    for layer in (nn.ReLU(), nn.Linear(2, 2), nn.Flatten(), nn.CrossEntropyLoss()):
        assert not hasattr(layer, "fit") and not hasattr(layer, "compile")
    assert hasattr(nn.Sequential(nn.Linear(2, 2)), "fit")


def test_no_import_cycle_and_every_import_at_the_top():
    graph = {}
    for path in FILES:
        for target, line, at_top in imports(path):
            assert at_top, f"{path.relative_to(PACKAGE)}:{line} imports {target} inside a function"
            if target in MODULES and target != module_name(path):
                graph.setdefault(module_name(path), set()).add(target)
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != "open", "import cycle: " + " -> ".join(trail + [nxt])
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert "nnfast.model" in graph["nnfast.nn"] and "nnfast.nn.fusion" in graph["nnfast.model"]


@pytest.mark.parametrize("name", sorted(backend.BACKENDS))
def test_every_backend_implements_the_interface(name):
    assert backend.missing(getattr(backend, name)) == []   # the module behind the backend


def test_modules_copy_and_pickle_with_their_backend():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).to("reference")
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone[0].backend is backend.BACKENDS["reference"] is clone[0].weight.backend
        np.testing.assert_array_equal(clone[0].weight.data, model[0].weight.data)


def test_an_incomplete_backend_is_refused():
    class Half:
        relu_forward = staticmethod(backend.reference.relu_forward)

    with pytest.raises(TypeError, match="lacks"):
        nn.ReLU().to(Half())
    with pytest.raises(ValueError, match="unknown device"):
        nn.ReLU().to("tpu")
