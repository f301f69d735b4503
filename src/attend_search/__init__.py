"""attend-search: machine-driven design of attention-condenser backbones for edge devices.

Data flows one way: space -> spec -> model -> evaluators -> constraints -> explorer -> studies.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import AttendSearchError, SpaceError, SpecError
from .search_space import (Spec, build_model, get_preset, get_reference_model, input_shape,
                           list_presets, list_reference_models)
from .search_space.space import Space, builtin_spaces, load_space

try:
    __version__ = version("attend-search")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["AttendSearchError", "Space", "SpaceError", "Spec", "SpecError", "__version__",
           "build_model", "builtin_spaces", "get_preset", "get_reference_model", "input_shape",
           "list_presets", "list_reference_models", "load_space"]
