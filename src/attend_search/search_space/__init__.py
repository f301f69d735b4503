"""Search space: specs, blocks, the builder, declarative spaces, presets and the reference
networks from outside the space.

Imports nothing from the rest of attend_search but its errors: everything downstream
(evaluators, constraints, explorer, studies) depends on this package, never the reverse.
Names are imported on first use (PEP 562): specs, spaces and presets need no PyTorch, so
code that only reads them (``attend-search space``, ``presets``) never imports it.
"""

from .._lazy import lazy_names

_LAZY = {
    "Backbone": ".builder",
    "build_model": ".builder",
    "input_shape": ".builder",
    "get_preset": ".presets",
    "list_presets": ".presets",
    "load_spec": ".presets",
    "get_reference_model": ".reference_models",
    "list_reference_models": ".reference_models",
    "nb201_spec": ".nb201",
    "macro_spec": ".macro",
    **dict.fromkeys(
        ["SCHEMA", "Attention", "Block", "Head", "Spec", "Stage", "Stem", "make_divisible"], ".spec"
    ),
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
