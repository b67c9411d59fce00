"""A PostgreSQL store's scope (``PgRelayStore.fan_out_scope``, entered by the fan-out handler,
acknowledgements and logins) holds the store's state for one handler: the locks its statements
take and what its fan-out read first (``relay.store_pg_fan_out``). That state is the handler's
alone only because no other task runs while a scope is open: a scope's body never yields to the
event loop. If it did (an ``await`` that suspends, inside the scope or inside a coroutine the
scope awaits), another connection's handler would run its statements under this scope's locks
and read this fan-out's device lists and sequence numbers.

This reads the relay's source: every ``with`` that opens a scope, and every coroutine such a body
awaits, down to the last, must be free of suspension points."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

RELAY = Path(__file__).parents[2] / "relay"
SCOPES = {"fan_out_scope", "login_scope"}


def _opens_scope(node: ast.With) -> bool:
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SCOPES:
                return True
    return False


def _resolve(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    """The object a dotted name (``delivery.send``) stands for in a module's namespace."""
    if isinstance(expr, ast.Name):
        return namespace.get(expr.id)
    if isinstance(expr, ast.Attribute):
        owner = _resolve(expr.value, namespace)
        return getattr(owner, expr.attr, None) if owner is not None else None
    return None


def _suspensions(body: list[ast.stmt], module: ModuleType, where: str) -> list[str]:
    """Where ``body`` may yield to the event loop: each ``async for``/``async with``, and each
    ``await`` of anything but a relay coroutine that cannot suspend either."""
    found = []
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.AsyncFor | ast.AsyncWith):
                found.append(f"{where}:{node.lineno} async for/with")
            elif isinstance(node, ast.Await):
                called = node.value.func if isinstance(node.value, ast.Call) else None
                target = _resolve(called, vars(module)) if called is not None else None
                if not (
                    isinstance(target, FunctionType) and target.__module__.startswith("relay.")
                ):
                    found.append(f"{where}:{node.lineno} awaits {ast.unparse(node.value)}")
                    continue
                found.extend(_coroutine_suspensions(target))
    return found


def _coroutine_suspensions(function: FunctionType) -> list[str]:
    module = importlib.import_module(function.__module__)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.AsyncFunctionDef | ast.FunctionDef)
    return _suspensions(definition.body, module, f"{function.__module__}.{function.__name__}")


def _scope_bodies() -> list[tuple[str, int, list[ast.stmt], ModuleType]]:
    bodies = []
    for path in sorted(RELAY.rglob("*.py")):
        name = ".".join(path.relative_to(RELAY.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.With) and _opens_scope(node):
                bodies.append((name, node.lineno, node.body, importlib.import_module(name)))
    return bodies


def test_no_scope_yields_to_the_event_loop_while_it_is_open() -> None:
    bodies = _scope_bodies()
    opened = {module for module, *_ in bodies}
    # The fan-out, acknowledgements and both halves of a login: the check cannot pass empty.
    assert {
        "relay.handlers.fan_out_scope",
        "relay.store_pg_delivery",
        "relay.login",
        "relay.connection",
    } <= opened, opened
    found = [
        suspension
        for module_name, line, body, module in bodies
        for suspension in _suspensions(body, module, f"{module_name}:{line}")
    ]
    assert found == []


def test_the_check_sees_a_suspension_inside_an_awaited_relay_coroutine() -> None:
    import relay.handlers.delivery as delivery

    module = ModuleType("relay.example")
    module.delivery = delivery  # type: ignore[attr-defined]

    def suspensions(called: str) -> list[str]:
        return _suspensions(ast.parse(f"await {called}(None, None)").body, module, "example")

    assert suspensions("delivery.send") == []
    assert any("store.durable()" in found for found in suspensions("delivery.publish_keys"))
