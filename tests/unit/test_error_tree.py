"""The one error tree: every error class lives in synapseops/errors/, drawn in its docstring,
and the API answers every RecordError leaf in one place with its 404 / 409 / 422."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from api.main import create_app
from synapseops import errors
from synapseops.settings import PROJECT_ROOT
from tests.unit.test_api_app import TOKEN, RecordingProducer, make_settings

PRODUCT = ("synapseops", "topics", "schemas", "streams", "sinks", "api")
# Control flow that never leaves the module raising it (errors.py's docstring says why), and
# classes that only look like errors by name.
NOT_ERRORS = {
    "streams/mapping/failures.py": {"Failed"},
    "streams/mapping/scalars.py": {"TransformFailed"},
    "streams/mapping/paths.py": {"PathSyntaxError"},
    "streams/mapping/money.py": {"MoneyError"},
    "sinks/http_guard.py": {"AddressRefused"},
    "synapseops/logging.py": {"ScrubFilter"},
    "streams/mapping/errors.py": {"RuleError"},
    "api/body_limit.py": {"BodyTooLargeHTTP"},
    "api/auth.py": {"Refused"},
}
# A class is an error when a base is one: a builtin or third-party exception, or one of ours.
ERROR_BASES = ("Error", "Exception", "HTTPException", "ValueError", "Rejection")


def _error_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith(f"{errors.__name__}.")
    ]


def test_every_error_class_is_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    drawn = {line.split()[0] for line in _tree_lines(tree)}
    defined = {cls.__name__ for cls in _error_classes()}
    assert defined - drawn == set(), "draw these in synapseops/errors/__init__.py's docstring"
    assert drawn - defined == set(), "the docstring draws classes that do not exist"


def test_each_leaf_hangs_where_it_is_drawn() -> None:
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in _tree_lines(errors.__doc__ or "", with_depth=True):
        depth, name = int(line.split()[0]), line.split()[1]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    for name, parent in parents.items():
        cls, base = getattr(errors, name), getattr(errors, parent)
        assert issubclass(cls, base), f"{name} is drawn under {parent}"


def test_no_product_module_defines_an_error_of_its_own() -> None:
    found = []
    for package in PRODUCT:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if relative.startswith("synapseops/errors/") or "migrations" in relative:
                continue
            allowed = NOT_ERRORS.get(relative, set())
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef) or node.name in allowed:
                    continue
                bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
                ours = {cls.__name__ for cls in _error_classes()}
                if any(b.endswith(ERROR_BASES) or b in ours for b in bases):
                    found.append(f"{relative}: class {node.name}({', '.join(sorted(bases))})")
    assert found == [], "errors belong to synapseops/errors/"


def _tree_lines(doc: str, *, with_depth: bool = False) -> Iterator[str]:
    """``Name`` (or ``depth Name``) for every node drawn in the docstring's tree."""
    for raw in doc.split("::", 1)[1].split("\n\n", 2)[1].splitlines():
        text = raw.lstrip()
        depth = 0
        while text[:1] in ("│", "├", "└", "─", " "):
            text = text[1:]
        if not text or not text[0].isupper():
            continue
        depth = len(raw) - len(text)
        name = text.split()[0]
        yield f"{depth} {name}" if with_depth else name


LEAVES = [
    (errors.RecordNotFound("no flow with id 7"), 404, None),
    (errors.RecordConflict("name taken"), 409, None),
    (errors.ReplayInProgress("replay running", retry_after_s=4.2), 409, "5"),
    (errors.ReplayLeaseLost("taken over"), 409, None),
    (errors.RecordInvalid("wrong direction"), 422, None),
    (errors.EmptyFilter("no criterion"), 422, None),
    (errors.ReplayKeyReused("other filter"), 422, None),
    (errors.CredentialInvalid("too short"), 422, None),
    (errors.OutboundConfigInvalid("user:password@ in a URL"), 422, None),
]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(make_settings(), producer=RecordingProducer())  # type: ignore[arg-type]
    router = APIRouter()
    for index, (exc, _, _) in enumerate(LEAVES):
        router.add_api_route(f"/raise/{index}", _raiser(exc), methods=["GET"])
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def _raiser(exc: errors.RecordError) -> Callable[[], None]:
    def raising() -> None:
        raise exc

    return raising


@pytest.mark.parametrize("index", range(len(LEAVES)))
def test_one_handler_answers_every_record_error(client: TestClient, index: int) -> None:
    exc, status, retry_after = LEAVES[index]
    answer = client.get(f"/raise/{index}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == status, answer.text
    assert answer.json() == {"detail": str(exc)}
    assert answer.headers.get("retry-after") == retry_after


def test_no_route_translates_record_errors_itself() -> None:
    # The per-route context manager and try/excepts that only translated are gone.
    for path in (PROJECT_ROOT / "api").rglob("*.py"):
        assert "record_errors" not in path.read_text(), path
    assert Path(inspect.getfile(errors)).parent.name == "errors"
