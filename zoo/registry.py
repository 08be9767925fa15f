"""A small model registry: builders are plain functions that return uncompiled Keras models."""

from __future__ import annotations

import inspect
from typing import Callable

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
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(list_models())}.")
    return _REGISTRY[name]


def builder_arguments(name: str) -> dict:
    """The keyword arguments a builder accepts, with their defaults."""
    sig = inspect.signature(get_builder(name))
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def build_model(name: str, **kwargs):
    """Builds the registered model `name`.

    Keyword arguments that are `None` are dropped, so a flag the user did not set keeps the
    builder's default. An argument the builder does not take is an error.
    """
    builder = get_builder(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    known = builder_arguments(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(
            f"Model {name!r} does not take {', '.join(unknown)}. "
            f"It takes: {', '.join(sorted(known))}."
        )
    return builder(**kwargs)
