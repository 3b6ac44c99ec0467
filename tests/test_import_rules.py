"""The house's load-bearing walls (DESIGN.md, import rules) and the no-unsafe-deserialization rule."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "genco_data"
REFERENCE = ROOT / "reference_model"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


#: The modules allowed to import torch (DESIGN.md: only the torch face of ``load/``).
TORCH_MODULES = {"load/batch.py", "load/datasets.py"}
#: Over this many lines a module must say why in its docstring (a line starting "Long on purpose:").
MAX_LINES = 500


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def test_format_imports_nothing_else_of_the_project():
    for path in _modules(PACKAGE / "format"):
        project = {m for m in _imports(path) if m.split(".")[0] in {"genco_data", "reference_model"}}
        assert all(m == "genco_data._lazy" or m.startswith("genco_data.format") for m in project), f"{path} imports {project}"
    project = {m for m in _imports(PACKAGE / "errors.py") if m.split(".")[0] in {"genco_data", "reference_model"}}
    assert not project, f"errors.py imports {project}"


def test_genco_data_never_imports_reference_model_nor_cli():
    for path in _modules(PACKAGE):
        mods = _imports(path)
        assert not any(m.split(".")[0] == "reference_model" for m in mods), path
        if path.name != "cli.py":
            assert "genco_data.cli" not in mods, f"{path} imports the CLI"
    for path in _modules(REFERENCE):
        assert "genco_data.cli" not in _imports(path), f"{path} imports the CLI"


def test_only_the_torch_face_of_load_imports_torch():
    for path in _modules(PACKAGE):
        if _rel(path) in TORCH_MODULES:
            continue
        assert not any(m.split(".")[0] == "torch" for m in _imports(path)), f"{path} imports torch"


def test_only_build_engines_import_ray():
    for path in _modules(PACKAGE):
        if _rel(path).startswith("build/engines/"):
            continue
        assert not any(m.split(".")[0] == "ray" for m in _imports(path)), f"{path} imports ray"


def test_the_build_never_imports_the_card():
    for path in _modules(PACKAGE / "build"):
        assert not any(m.startswith("genco_data.card") or m == "genco_data.pipeline" for m in _imports(path)), path


def test_import_genco_data_works_without_torch():
    mods = [_module_name(p) for p in _modules(PACKAGE) if _rel(p) not in TORCH_MODULES and p.name != "__main__.py"]
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        f"import genco_data, {', '.join(mods)}\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def _graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (absolute and relative imports, at any depth of the file)."""
    paths = {_module_name(p): p for folder in (PACKAGE, REFERENCE) for p in _modules(folder)}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for m, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in paths:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m and not m.startswith(t + "."):
                    graph[m].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_limit_without_a_stated_reason():
    for folder in (PACKAGE, REFERENCE):
        for path in _modules(folder):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") <= MAX_LINES:
                continue
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "Long on purpose:" in doc, f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines and no stated reason"


_NETWORK_API = re.compile(r"\b(HfApi|hf_hub_download|snapshot_download|upload_folder|create_repo|create_tag)\b")


def test_only_hub_talks_to_the_hub():
    for path in _modules(PACKAGE):
        if path.name == "hub.py":
            continue
        code = "\n".join(l for l in path.read_text(encoding="utf-8").splitlines() if not l.lstrip().startswith("#"))
        assert not _NETWORK_API.search(code), f"{path} uses huggingface_hub's network API"


_UNSAFE = [
    (re.compile(r"^\s*(import pickle|from pickle|import cPickle|import dill|import joblib)", re.M), "pickle-family import"),
    (re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"(?<![\w.])(eval|exec)\("), "eval/exec"),
    (re.compile(r"\byaml\.load\((?![^)]*SafeLoader)"), "yaml.load without SafeLoader"),
    (re.compile(r"\byaml\.(unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\("), "yaml unsafe/full loaders"),
    (re.compile(r"\bLoader\s*=\s*(yaml\.)?(Unsafe|Full)?Loader\b"), "yaml Loader other than SafeLoader"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\.read_pickle\("), "pandas.read_pickle"),
    (re.compile(r"\b(marshal|shelve)\.(loads?|open)\("), "marshal/shelve"),
    (re.compile(r"(import_module|__import__)\(\s*[\"'](pickle|cPickle|_pickle|dill|joblib|cloudpickle|jsonpickle|shelve|marshal)\b"), "dynamic pickle import"),
    (re.compile(r"(?<![\w.])builtins\.(eval|exec)\("), "eval/exec"),
]

#: Modules that deserialize by executing code: never imported, under any spelling (checked on the AST, so
#: ``import os, pickle`` and ``from torch import load`` are caught too).
_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "jsonpickle", "shelve", "marshal"}
_UNSAFE_NAMES = {("torch", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load")}


def _unsafe_imports(text: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in _UNSAFE_MODULES:
                found.append(node.module)
            found += [f"from {node.module} import {a.name}" for a in node.names if (node.module, a.name) in _UNSAFE_NAMES]
    return found


@pytest.mark.parametrize("folder", [PACKAGE, REFERENCE, ROOT / "benchmarks"])
def test_no_unsafe_deserialization(folder):
    for path in _modules(folder):
        text = path.read_text(encoding="utf-8")
        for pattern, what in _UNSAFE:
            m = pattern.search(text)
            assert m is None, f"{path.relative_to(ROOT)}: {what}: {m.group(0)!r}"
        assert not _unsafe_imports(text), f"{path.relative_to(ROOT)}: unsafe import {_unsafe_imports(text)}"


def test_the_scanner_itself_catches_each_pattern():
    samples = {
        "pickle-family import": ["import pickle\n"],
        "torch.load without weights_only=True": ["torch.load(path)\n", "torch.load(path, weights_only=False)\n"],
        "eval/exec": ["x = eval('1')\n", "exec(code)\n", "builtins.eval('1')\n"],
        "yaml.load without SafeLoader": ["yaml.load(f)\n", "yaml.load(f, Loader=yaml.FullLoader)\n"],
        "yaml unsafe/full loaders": ["yaml.unsafe_load(f)\n", "yaml.full_load(f)\n", "yaml.load_all(f)\n"],
        "yaml Loader other than SafeLoader": ["yaml.load(f, Loader=yaml.Loader)\n", "Loader=UnsafeLoader\n"],
        "np.load(allow_pickle=True)": ["np.load(p, allow_pickle=True)\n"],
        "pandas.read_pickle": ["pd.read_pickle(p)\n"],
        "marshal/shelve": ["marshal.loads(b)\n", "shelve.open(p)\n"],
        "dynamic pickle import": ["importlib.import_module('pickle')\n", '__import__("dill")\n'],
    }
    for pattern, what in _UNSAFE:
        assert any(pattern.search(x) for x in samples[what]), what
    for what, texts in samples.items():
        for x in texts:
            assert any(p.search(x) for p, w in _UNSAFE if w == what), (what, x)
    assert not _UNSAFE[1][0].search("torch.load(p, weights_only=True)")
    assert not any(p.search("model.eval()\nyaml.safe_load(f)\nyaml.load(f, Loader=yaml.SafeLoader)\n") for p, _ in _UNSAFE)
    for code in ("import os, pickle\n", "from pickle import loads\n", "import dill as d\n", "from torch import load\n",
                 "from yaml import unsafe_load\n", "import shelve\n", "from joblib import load\n"):
        assert _unsafe_imports(code), code
    assert not _unsafe_imports("import json, pyarrow.parquet as pq\nfrom safetensors.torch import load_file\n")
