"""A small model registry: builders are plain functions that return uncompiled Keras models."""

from __future__ import annotations

import inspect
import numbers
from typing import Callable

from zoo.errors import ZooError

_REGISTRY: dict[str, Callable] = {}
_DOMAINS: dict[str, str] = {}


def register_model(name: str, *, domain: str = "vision") -> Callable:
    """Registers a builder under `name`.

    Args:
        name: the name `build_model` looks up.
        domain: which family of tasks the builder serves ("vision", "text", "speech"); the
            registry tests use it to pick toy inputs.
    """

    def decorator(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"A model named {name!r} is already registered by {_REGISTRY[name]}.")
        _REGISTRY[name] = fn
        _DOMAINS[name] = domain
        return fn

    return decorator


def _ensure_loaded() -> None:
    # Builders live in zoo.models; importing it fills the registry.
    import zoo.models  # noqa: F401


def list_models(domain: str | None = None) -> list[str]:
    """Names of the registered builders, sorted; only those of `domain` if given."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if domain is None or _DOMAINS[n] == domain)


def model_domain(name: str) -> str:
    get_builder(name)
    return _DOMAINS[name]


def get_builder(name: str) -> Callable:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ZooError(f"Unknown model {name!r}. Known models: {', '.join(list_models())}.")
    return _REGISTRY[name]


def builder_arguments(name: str) -> dict:
    """The keyword arguments a builder accepts, with their defaults."""
    sig = inspect.signature(get_builder(name))
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _check_argument_types(name: str, kwargs: dict, known: dict) -> None:
    """A `ZooError` for an argument whose builder default is a number or a bool given a value of
    another kind (`--model-arg depth=abc` reaches the builder as the string 'abc')."""
    for key, value in kwargs.items():
        default = known[key]
        if isinstance(default, bool):
            ok, kind = isinstance(value, bool), "True or False"
        elif isinstance(default, numbers.Real):
            ok, kind = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
        else:
            continue
        if not ok:
            raise ZooError(f"Model {name!r}: {key} must be {kind} (default {default!r}). Received: {key}={value!r}")


def build_model(name: str, *, weights=None, **kwargs):
    """Builds the registered model `name`.

    Keyword arguments that are `None` are dropped, so a flag the user did not set keeps the
    builder's default. An unknown model, an argument the builder does not take, an argument of
    the wrong kind, and a `ValueError` or `TypeError` of the builder (which names the argument
    it refuses) are a `ZooError` naming the model and the arguments it was given.

    With `weights=ENTRY` (a pretrained entry's name or path), the model is built with the entry's
    builder arguments (those given here override them: `num_classes=5` gets a new head) and
    starts from its weights (`zoo.finetune.build_from_entry`).
    """
    if weights is not None:
        from zoo.finetune import build_from_entry

        return build_from_entry(weights, name=name, **kwargs)
    builder = get_builder(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    known = builder_arguments(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ZooError(
            f"Model {name!r} does not take {', '.join(unknown)}. "
            f"It takes: {', '.join(sorted(known))}."
        )
    _check_argument_types(name, kwargs, known)
    try:
        return builder(**kwargs)
    except ZooError:
        raise
    except (TypeError, ValueError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ZooError(f"Model {name!r} can not be built with {given}: {e}") from e
