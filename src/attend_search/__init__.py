"""attend-search: machine-driven design of attention-condenser backbones for edge devices.

Data flows one way: space -> spec -> model -> evaluators -> constraints -> explorer -> studies.

The names below are imported on first use (PEP 562), so ``import attend_search`` (and the
command line's ``--help``) does not pay for PyTorch until a name that needs it is touched.
"""

from importlib.metadata import PackageNotFoundError, version

from ._lazy import lazy_names
from .errors import AttendSearchError, SpaceError, SpecError

try:
    __version__ = version("attend-search")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

_LAZY = {
    "Spec": ".search_space",
    "build_model": ".search_space",
    "get_preset": ".search_space",
    "get_reference_model": ".search_space",
    "input_shape": ".search_space",
    "list_presets": ".search_space",
    "list_reference_models": ".search_space",
    "nb201_spec": ".search_space",
    "macro_spec": ".search_space",
    "Space": ".search_space.space",
    "builtin_spaces": ".search_space.space",
    "load_space": ".search_space.space",
}

__all__ = [
    "AttendSearchError",
    "Space",
    "SpaceError",
    "Spec",
    "SpecError",
    "__version__",
    "build_model",
    "builtin_spaces",
    "get_preset",
    "get_reference_model",
    "input_shape",
    "list_presets",
    "list_reference_models",
    "load_space",
    "macro_spec",
    "nb201_spec",
]

__getattr__ = lazy_names(__name__, _LAZY)
