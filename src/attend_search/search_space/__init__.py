"""Search space: specs, blocks, the builder, declarative spaces and presets.

Imports nothing from the rest of attend_search but its errors: everything downstream
(evaluators, constraints, explorer, studies) depends on this package, never the reverse.
"""

from .builder import Backbone, build_model, input_shape
from .presets import get_preset, list_presets, load_spec
from .spec import SCHEMA, Attention, Block, Head, Spec, Stage, Stem, make_divisible

__all__ = ["SCHEMA", "Attention", "Backbone", "Block", "Head", "Spec", "Stage", "Stem",
           "build_model", "get_preset", "input_shape", "list_presets", "load_spec",
           "make_divisible"]
