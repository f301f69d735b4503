"""Evaluators: cost (params, MACs, activation memory), latency, accuracy estimates.

Every public function takes a Spec or any ``torch.nn.Module`` with an input shape, so that
reference networks from outside the search space are scored the same way.
"""

from .model_input import as_model

__all__ = ["as_model"]
