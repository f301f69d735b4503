"""The package's shape: the public names, no import cycles, data flowing one way."""

import ast
from pathlib import Path

import pytest

import attend_search
import attend_search.evaluators

PACKAGE = Path(attend_search.__file__).parent

PUBLIC = {
    attend_search: [
        "AttendSearchError",
        "Space",
        "SpaceError",
        "Spec",
        "SpecError",
        "__version__",
        "build_model",
        "builtin_spaces",
        "get_preset",
        "get_reference_model",
        "input_shape",
        "list_presets",
        "list_reference_models",
        "load_space",
        "macro_spec",
        "nb201_spec",
    ],
    attend_search.evaluators: [
        "Dataset",
        "DatasetError",
        "DeviceProfile",
        "EnsembleFit",
        "Measurement",
        "PROXIES",
        "UnknownOpsWarning",
        "analytic_cost",
        "as_model",
        "builtin_devices",
        "calibrate_latency",
        "check_proxy",
        "export_onnx",
        "fit_ensemble",
        "flop_analysis",
        "fvcore_cost",
        "load_dataset",
        "load_device",
        "load_fit",
        "measure",
        "measure_latency",
        "measure_passes",
        "peak_activation_bytes",
        "predict_latency",
        "train_eval",
        "zero_cost",
        "zero_cost_all",
    ],
}


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_the_public_names_are_there(module):
    assert sorted(module.__all__) == sorted(PUBLIC[module])
    for name in PUBLIC[module]:
        assert getattr(module, name) is not None, name


def _imports() -> dict[str, set[str]]:
    """Module -> the attend_search modules it imports, anywhere in it (a function's lazy
    import included: it is a dependency all the same)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("attend_search", *path.relative_to(PACKAGE).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, package) in modules.items():
        base = name.split(".") if package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                start = base[: len(base) - node.level + 1] if node.level else []
                target = ".".join([*start, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    graph[name].add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names)
        graph[name] &= modules.keys()
    return graph


def test_no_module_imports_itself_back():
    graph = _imports()
    cycles = []
    for start in graph:
        seen, todo = set(), [(start, (start,))]
        while todo:
            node, path = todo.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(path)
                elif nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, (*path, nxt)))
    assert not cycles, cycles[:3]


@pytest.mark.parametrize(
    "package, downstream",
    [
        ("search_space", ("evaluators", "constraints", "explorer", "studies", "cli")),
        ("evaluators", ("constraints", "explorer", "studies", "cli")),
        ("explorer", ("studies", "cli")),
        ("studies", ("cli",)),
    ],
)
def test_data_flows_one_way(package, downstream):
    graph = _imports()
    prefix = f"attend_search.{package}"
    wrong = {
        (m, d)
        for m, deps in graph.items()
        if m.startswith(prefix)
        for d in deps
        if any(d.startswith(f"attend_search.{p}") for p in downstream)
    }
    assert not wrong


def test_optuna_internals_live_in_the_adapters():
    """A private Optuna name (``optuna._x``, ``optuna.x._y``, ``_Name``) is imported by the
    two adapter modules and the storage's schema reader only."""
    allowed = {
        "explorer/optuna_adapter.py",
        "studies/storage/optuna_storage.py",
        "studies/storage/trial_reader.py",
    }
    users = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna"):
                private = any(p.startswith("_") for p in node.module.split(".")) or any(
                    a.name.startswith("_") for a in node.names
                )
                if private:
                    users.add(path.relative_to(PACKAGE).as_posix())
    assert users <= allowed, users - allowed
