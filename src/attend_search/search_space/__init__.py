"""Search space: specs, blocks, the builder, declarative spaces, presets and the reference
networks from outside the space.

Imports nothing from the rest of attend_search but its errors: everything downstream
(evaluators, constraints, explorer, studies) depends on this package, never the reverse.
"""

from .builder import Backbone, build_model, input_shape
from .presets import get_preset, list_presets, load_spec
from .reference_models import get_reference_model, list_reference_models
from .spec import SCHEMA, Attention, Block, Head, Spec, Stage, Stem, make_divisible

__all__ = ["SCHEMA", "Attention", "Backbone", "Block", "Head", "Spec", "Stage", "Stem",
           "build_model", "get_preset", "get_reference_model", "input_shape", "list_presets",
           "list_reference_models", "load_spec", "make_divisible"]
