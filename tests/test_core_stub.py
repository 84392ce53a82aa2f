"""``python/pms_trio/_core.pyi`` is the declared API of the Rust module; this keeps both honest.

Every class, function and method in the stub exists in the built ``pms_trio._core`` with the same
parameters (names, kinds, which have defaults, and default values where the module states them),
every stub class has the same bases, and every public name of the module (and of each of its
classes) is declared in the stub. Needs the extension built (``pip install .``); without it this
fails rather than skips, since the module is the product.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

STUB = Path(__file__).resolve().parents[1] / "python" / "pms_trio" / "_core.pyi"

KIND = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "normal": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "vararg": inspect.Parameter.VAR_POSITIONAL,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
    "kwarg": inspect.Parameter.VAR_KEYWORD,
}

_MISSING = object()


def core_module() -> Any:
    return importlib.import_module("pms_trio._core")


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, Any]]:
    """``(name, kind, default)`` for each parameter, without ``self``/``cls``; default is
    ``_MISSING`` when none, the literal value when it is one, else ``...``."""
    a = fn.args
    out: list[tuple[str, inspect._ParameterKind, Any]] = []
    positional = [(p, "posonly") for p in a.posonlyargs] + [(p, "normal") for p in a.args]
    pos_defaults = [_MISSING] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for (p, kind), d in zip(positional, pos_defaults):
        out.append((p.arg, KIND[kind], d))
    if a.vararg:
        out.append((a.vararg.arg, KIND["vararg"], _MISSING))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, KIND["kwonly"], _MISSING if d is None else d))
    if a.kwarg:
        out.append((a.kwarg.arg, KIND["kwarg"], _MISSING))
    result = []
    for name, kind, d in out:
        if d is not _MISSING:
            try:
                d = ast.literal_eval(d)
            except ValueError:
                d = ...
        result.append((name, kind, d))
    if result and result[0][0] in ("self", "cls"):
        result = result[1:]
    return result


def runtime_params(obj: Any) -> list[tuple[str, inspect._ParameterKind, Any]]:
    try:
        sig = inspect.signature(obj)
    except ValueError as e:
        raise AssertionError(
            f"{obj!r} has no signature the stub can be checked against ({e}); pyo3 needs a "
            "#[pyo3(signature = ...)] (or text_signature on #[new]) for it"
        ) from None
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "$self", "cls", "$cls", "type", "$type"):
        params = params[1:]
    return [(p.name, p.kind, _MISSING if p.default is inspect.Parameter.empty else p.default) for p in params]


def compare(where: str, stub: list[tuple[str, Any, Any]], runtime: list[tuple[str, Any, Any]]) -> list[str]:
    problems = []
    if [(n, k) for n, k, _ in stub] != [(n, k) for n, k, _ in runtime]:
        fmt = lambda ps: ", ".join(f"{n}:{k.description}" for n, k, _ in ps)  # noqa: E731
        return [f"{where}: stub ({fmt(stub)}) != module ({fmt(runtime)})"]
    for (name, _, sd), (_, _, rd) in zip(stub, runtime):
        if (sd is _MISSING) != (rd is _MISSING):
            problems.append(f"{where}: parameter {name!r} has a default in only one of stub and module")
        elif sd is not _MISSING and rd is not ... and sd is not ... and sd != rd:
            # A sequence default may be rendered as a tuple or a list by the module.
            if not (isinstance(sd, (tuple, list)) and isinstance(rd, (tuple, list)) and list(sd) == list(rd)):
                problems.append(f"{where}: default of {name!r} is {sd!r} in the stub, {rd!r} in the module")
    return problems


def stub_classes() -> dict[str, ast.ClassDef]:
    return {n.name: n for n in stub_tree().body if isinstance(n, ast.ClassDef)}


def stub_functions() -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in stub_tree().body if isinstance(n, ast.FunctionDef)}


def test_stub_parses_and_declares_something() -> None:
    assert stub_classes() or stub_functions(), f"{STUB} declares nothing"


def test_every_stub_function_exists_with_same_parameters() -> None:
    mod = core_module()
    problems = []
    for name, fn in stub_functions().items():
        if not hasattr(mod, name):
            problems.append(f"function {name} is in the stub, not in the module")
            continue
        problems += compare(name, stub_params(fn), runtime_params(getattr(mod, name)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cls_name", sorted(stub_classes()))
def test_every_stub_class_and_method_exists_with_same_parameters(cls_name: str) -> None:
    mod = core_module()
    node = stub_classes()[cls_name]
    assert hasattr(mod, cls_name), f"class {cls_name} is in the stub, not in the module"
    cls = getattr(mod, cls_name)
    assert inspect.isclass(cls), f"{cls_name} is not a class in the module"
    problems = []
    for base in node.bases:
        if isinstance(base, ast.Name):
            expected = getattr(mod, base.id, None) or getattr(builtins, base.id, None)
            if expected is None:
                problems.append(f"{cls_name}: base {base.id} is unknown")
            elif not issubclass(cls, expected):
                problems.append(f"{cls_name} does not derive from {base.id}")
    for item in node.body:
        if not isinstance(item, ast.FunctionDef):
            continue
        where = f"{cls_name}.{item.name}"
        if item.name == "__init__":
            # pyo3 puts the #[new] signature on the class itself.
            problems += compare(where, stub_params(item), runtime_params(cls))
            continue
        if not hasattr(cls, item.name):
            problems.append(f"{where} is in the stub, not in the module")
            continue
        if _is_property(item):
            # A read-only attribute (an event record's field): a getter in the module.
            if not inspect.isdatadescriptor(inspect.getattr_static(cls, item.name)):
                problems.append(f"{where} is a property in the stub, not an attribute getter in the module")
            continue
        problems += compare(where, stub_params(item), runtime_params(getattr(cls, item.name)))
    assert not problems, "\n".join(problems)


def _is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def test_every_public_module_name_is_in_the_stub() -> None:
    mod = core_module()
    tree = stub_tree()
    declared = set(stub_classes()) | set(stub_functions())
    for n in tree.body:
        if isinstance(n, ast.Assign):
            declared |= {t.id for t in n.targets if isinstance(t, ast.Name)}
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            declared.add(n.target.id)
    public = {n for n in dir(mod) if not n.startswith("_")}
    missing = sorted(public - declared)
    assert not missing, f"public names of pms_trio._core missing from {STUB.name}: {missing}"


@pytest.mark.parametrize("cls_name", sorted(stub_classes()))
def test_every_public_class_member_is_in_the_stub(cls_name: str) -> None:
    mod = core_module()
    cls = getattr(mod, cls_name, None)
    assert cls is not None, f"class {cls_name} is in the stub, not in the module"
    node = stub_classes()[cls_name]
    declared = {i.name for i in node.body if isinstance(i, ast.FunctionDef)}
    declared |= {i.target.id for i in node.body if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)}
    inherited: set[str] = set()
    for base in cls.__mro__[1:]:
        inherited |= set(vars(base))
    own = {n for n in vars(cls) if not n.startswith("_") and n not in inherited}
    missing = sorted(own - declared)
    assert not missing, f"{cls_name} members missing from {STUB.name}: {missing}"
