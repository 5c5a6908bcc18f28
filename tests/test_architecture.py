"""The shape of the code: no import cycles among the project's modules (imports inside functions
count), no import hooks, every package the tree has is installed, and the design docs live in
the repository and are linked from the README."""
import ast
import os
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Import name -> folder (pyproject maps layers/ and solvers/ into the package).
PACKAGES = {"nvcaffe_py": "nvcaffe_py", "nvcaffe_py.layers": "layers", "nvcaffe_py.solvers": "solvers"}


def project_modules():
    """{module name: path} of every module of the project, caffe.py included."""
    modules = {"caffe": os.path.join(ROOT, "caffe.py")}
    for package, folder in PACKAGES.items():
        base = os.path.join(ROOT, folder)
        for dirpath, dirnames, files in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not (package == "nvcaffe_py" and dirpath == base
                                                                                and d in ("layers", "solvers"))]
            for f in files:
                if f.endswith(".py"):
                    parts = os.path.relpath(os.path.join(dirpath, f[:-3]), base).split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    modules[".".join([package, *parts])] = os.path.join(dirpath, f)
    return modules


def imports_of(name, path, modules):
    """The project modules `name` imports anywhere in its file, each with a line number. A package
    whose __init__ imports its submodules by iterating over them (layers/, solvers/) depends on
    every one of them."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = {}

    def add(target, line):
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "iter_modules" and path.endswith("__init__.py"):
            for other in modules:
                if other.rpartition(".")[0] == name:
                    add(other, node.lineno)
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    found = cycles(graph)
    lines = []
    for component in found:
        members = set(component)
        lines += [f"  {a} -> {b} ({os.path.relpath(modules[a], ROOT)}:{line})"
                  for a in component for b, line in sorted(graph[a].items()) if b in members]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    # The check above must not pass by missing a lazy import: a two-module cycle closed by an
    # import inside a function is found.
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    modules = {"a": str(tmp_path / "a.py"), "b": str(tmp_path / "b.py")}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == [["a", "b"]]


def test_no_import_hooks():
    hooks = []
    for name, path in project_modules().items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, ast.Attribute) and node.attr in ("meta_path", "path_hooks"):
                hooks.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} uses sys.{node.attr}")
    assert not hooks, "\n".join(hooks)


def test_every_package_of_the_tree_is_installed():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    on_disk = {name for name, path in project_modules().items() if path.endswith("__init__.py")}
    assert on_disk == listed, f"packages missing from pyproject: {sorted(on_disk - listed)}; " \
                              f"listed but absent: {sorted(listed - on_disk)}"


def test_design_docs_live_in_the_repository_and_are_linked():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for doc in ("docs/DESIGN.md", "docs/adding-a-layer.md"):
        assert os.path.isfile(os.path.join(ROOT, doc)), f"{doc} is missing"
        assert f"({doc})" in readme, f"README.md does not link {doc}"
    for doc in ("README.md", "docs/DESIGN.md", "docs/adding-a-layer.md"):
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        assert "../shared/" not in text, f"{doc} points into ../shared, which a user's clone does not have"
