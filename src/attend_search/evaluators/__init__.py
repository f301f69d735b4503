"""Evaluators: cost (params, MACs, activation memory), latency, accuracy estimates.

Every public function takes a Spec or any ``torch.nn.Module`` with an input shape, so that
reference networks from outside the search space are scored the same way. Names are
imported on first use (PEP 562): what is computed from a spec alone (its walk, analytic cost,
kernels and predicted latency) needs no PyTorch.

One sub-package per concern: ``graph`` (a network op by op: a spec's walk, a module's trace),
``cost``, ``latency`` (the kernel model, device profiles, calibration, measurement),
``runtimes`` (onnxruntime, PyTorch, LiteRT, int8), ``proxies`` (zero-cost estimates),
``estimate_fit`` (the ensemble fitted to trained networks) and ``training``.
"""

from .._lazy import lazy_names

_LAZY = {
    "calibrate_latency": ".latency.calibrate",
    "analytic_cost": ".cost.analytic",
    **dict.fromkeys(["flop_analysis", "fvcore_cost", "peak_activation_bytes"], ".cost.traced"),
    **dict.fromkeys(["Dataset", "DatasetError", "load_dataset"], ".training.datasets"),
    **dict.fromkeys(["DeviceProfile", "builtin_devices", "load_device"], ".latency.devices"),
    "UnknownOpsWarning": ".latency.kernels",
    "predict_latency": ".latency.predict",
    **dict.fromkeys(
        ["Measurement", "measure", "measure_latency", "measure_passes"], ".latency.measure"
    ),
    "export_onnx": ".runtimes.onnx",
    "as_model": ".model_input",
    **dict.fromkeys(["PROXIES", "check_proxy", "zero_cost", "zero_cost_all"], ".proxies"),
    "train_eval": ".training.short",
    **dict.fromkeys(["EnsembleFit", "fit_ensemble", "load_fit"], ".estimate_fit"),
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
