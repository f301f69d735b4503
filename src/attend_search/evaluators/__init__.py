"""Evaluators: cost (params, MACs, activation memory), latency, accuracy estimates.

Every public function takes a Spec or any ``torch.nn.Module`` with an input shape, so that
reference networks from outside the search space are scored the same way.
"""

from .calibrate import calibrate_latency
from .cost import analytic_cost, flop_analysis, fvcore_cost, peak_activation_bytes
from .datasets import Dataset, DatasetError, load_dataset
from .devices import DeviceProfile, builtin_devices, load_device
from .kernels import UnknownOpsWarning
from .latency import predict_latency
from .measure import Measurement, export_onnx, measure, measure_latency
from .model_input import as_model
from .proxies import PROXIES, check_proxy, zero_cost, zero_cost_all
from .training import train_eval

__all__ = ["PROXIES", "Dataset", "DatasetError", "DeviceProfile", "Measurement", "UnknownOpsWarning",
           "analytic_cost", "as_model", "builtin_devices", "calibrate_latency", "check_proxy",
           "export_onnx", "flop_analysis", "fvcore_cost", "load_dataset", "load_device",
           "measure", "measure_latency", "peak_activation_bytes", "predict_latency", "train_eval",
           "zero_cost", "zero_cost_all"]
