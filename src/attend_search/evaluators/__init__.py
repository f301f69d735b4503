"""Evaluators: cost (params, MACs, activation memory), latency, accuracy estimates.

Every public function takes a Spec or any ``torch.nn.Module`` with an input shape, so that
reference networks from outside the search space are scored the same way. Names are
imported on first use (PEP 562): what is computed from a spec alone (its walk, analytic cost,
kernels and predicted latency) needs no PyTorch; a module's trace is in ``traced_cost`` and
``traced_kernels``.
"""

from .._lazy import lazy_names

_LAZY = {"calibrate_latency": ".calibrate",
         "analytic_cost": ".cost",
         **dict.fromkeys(["flop_analysis", "fvcore_cost", "peak_activation_bytes"],
                         ".traced_cost"),
         **dict.fromkeys(["Dataset", "DatasetError", "load_dataset"], ".datasets"),
         **dict.fromkeys(["DeviceProfile", "builtin_devices", "load_device"], ".devices"),
         "UnknownOpsWarning": ".kernels", "predict_latency": ".latency",
         **dict.fromkeys(["Measurement", "export_onnx", "measure", "measure_latency"], ".measure"),
         "as_model": ".model_input",
         **dict.fromkeys(["PROXIES", "check_proxy", "zero_cost", "zero_cost_all"], ".proxies"),
         "train_eval": ".training"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
