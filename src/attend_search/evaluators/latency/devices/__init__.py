"""Device profiles: what the latency model knows about a target CPU, as YAML data.

A profile holds datasheet figures (clock, SIMD lanes, vector FMAs per cycle, cache sizes,
memory bandwidth) and three kinds of coefficients that datasheets cannot give: the fraction
of peak MAC rate each operator class reaches (``efficiency``), the fixed cost of dispatching
one kernel of a class (``fixed_cost_us``), and the bandwidth of each memory level. The
built-in profiles (``devices/*.yaml``) give priors with their sources; ``calibrate_latency``
fits them to measurements and records where the fitted numbers came from (``provenance``).
Wherever a device is asked for, a built-in name, a YAML path or a profile is accepted.

A profile is a (CPU, runtime) pair: onnxruntime and LiteRT fuse and schedule the same
network differently, so coefficients fitted to one runtime's measurements hold for that
runtime only. ``runtime`` names it (onnxruntime when a file says nothing). On x86,
onnxruntime runs convolutions in a blocked layout ARM builds lack; ``nchwc_block`` says how
many channels a block holds there (:mod:`..nchwc`; kernel profiling reads it from this
machine's onnxruntime).

A profile saved before an op class existed lacks that class: its coefficients are taken
from the built-in profile it was fitted from (``provenance.base``), so old files still load.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ....errors import AttendSearchError
from ....files import write_atomic
from ....search_space.fields import Fields, parse_yaml, read_user_file
from ..kernel_profile import KernelProfile, read_kernel_profile
from ..kernels import OP_CLASSES

SCHEMA = "attend-search/device/v1"
DEFAULT_RUNTIME = "onnxruntime"
_DIGITS = 5  # significant digits kept for fitted numbers: more than measurements support


class DeviceError(AttendSearchError):
    """A device profile is unknown or malformed, or cannot be fitted."""


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    bandwidth_gbs: float  # bytes read + written per second, 1e9
    size_kib: float | None  # None for the last level (DRAM), which holds everything


@dataclass(frozen=True)
class DeviceProfile:
    """A target CPU for the latency model (see :mod:`..predict` for how the numbers are used).

    ``threads`` multiplies the peak MAC rate only: memory bandwidth is shared by the cores
    and dispatch costs do not shrink with more threads.
    """

    name: str
    clock_ghz: float
    simd_lanes: int  # float32 lanes of one vector register
    fma_per_cycle: float  # vector FMA instructions retired per cycle and core
    memory: tuple[MemoryLevel, ...]
    efficiency: Mapping[str, float]  # op class -> fraction of peak MAC rate
    fixed_cost_us: Mapping[str, float]  # op class -> dispatch cost of one kernel
    threads: int = 1
    runtime: str = DEFAULT_RUNTIME  # the inference runtime the coefficients describe
    # onnxruntime's blocked layout on this CPU, channels a block (..nchwc): 16 with
    # AVX-512, 8 with AVX2; 0 (ARM) for none
    nchwc_block: int = 0
    description: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # corrections learned from timing single kernels (latency bench --kernels), if any
    kernel_profile: KernelProfile | None = None

    @property
    def peak_macs_per_s(self) -> float:
        return self.clock_ghz * 1e9 * self.simd_lanes * self.fma_per_cycle * self.threads

    def seconds_per_mac(self, op_class: str) -> float:
        return 1.0 / (self.peak_macs_per_s * self.efficiency[op_class])

    def seconds_per_byte(self, level: int) -> float:
        return 1.0 / (self.memory[level].bandwidth_gbs * 1e9)

    def fixed_seconds(self, op_class: str) -> float:
        return self.fixed_cost_us[op_class] * 1e-6

    def level_of(self, nbytes: int) -> int:
        """The first memory level a kernel's working set fits in (the last holds anything)."""
        for index, level in enumerate(self.memory[:-1]):
            if nbytes <= level.size_kib * 1024:
                return index
        return len(self.memory) - 1

    def refit(
        self,
        seconds_per_mac: Mapping[str, float],
        seconds_per_byte: list[float],
        fixed_seconds: Mapping[str, float],
        *,
        name: str,
        provenance: Mapping[str, Any],
    ) -> "DeviceProfile":
        """This profile with fitted coefficients (the inverse of the three accessors above).

        Datasheet figures stay, so efficiencies stay relative to this profile's peak; above 1
        means the measured machine beats this datasheet (a profile of one device fitted on
        another).
        """
        return replace(
            self,
            name=name,
            provenance=dict(provenance),
            efficiency={
                c: _round(1.0 / (self.peak_macs_per_s * s)) for c, s in seconds_per_mac.items()
            },
            memory=tuple(
                replace(level, bandwidth_gbs=_round(1e-9 / s))
                for level, s in zip(self.memory, seconds_per_byte)
            ),
            fixed_cost_us={c: _round(s * 1e6) for c, s in fixed_seconds.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            **({"nchwc_block": self.nchwc_block} if self.nchwc_block else {}),
            "threads": self.threads,
            "compute": {
                "clock_ghz": self.clock_ghz,
                "simd_lanes": self.simd_lanes,
                "fma_per_cycle": self.fma_per_cycle,
            },
            "memory": [
                {
                    "name": m.name,
                    **({"size_kib": m.size_kib} if m.size_kib else {}),
                    "bandwidth_gbs": m.bandwidth_gbs,
                }
                for m in self.memory
            ],
            "efficiency": dict(self.efficiency),
            "fixed_cost_us": dict(self.fixed_cost_us),
        }
        if self.provenance:
            data["provenance"] = dict(self.provenance)
        if self.kernel_profile:
            data["kernel_profile"] = self.kernel_profile.to_dict()
        return data

    def save(self, path: str | Path) -> None:
        """Write the profile as YAML; atomically, so a failure leaves no half-written file."""
        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


# --------------------------------------------------------------------------- loading
def builtin_devices() -> list[str]:
    folder = resources.files(__package__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_device(device: str | Path | DeviceProfile) -> DeviceProfile:
    """A profile given as itself, a built-in name (``cortex-a72``) or a YAML file path."""
    if isinstance(device, DeviceProfile):
        return device
    name = str(device)
    if name in builtin_devices() and not Path(name).exists():
        return _builtin_device(name)
    if not Path(name).exists():
        raise DeviceError(
            f"no such device: {name!r} is neither a built-in device "
            f"({', '.join(builtin_devices())}) nor a file"
        )
    stat = Path(name).stat()
    return _device_file(name, str(Path(name).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _device_file(name: str, path: str, mtime_ns: int, size: int) -> DeviceProfile:
    """Read once per version of the file (its time and size are in the key): a study names
    a profile file in every trial's latency metric, and parsing it took several times longer
    than predicting a spec's latency (a kernel profile's section most of it)."""
    return _read_device_file(read_user_file(name, DeviceError, "device profile"), name)


@functools.cache
def _builtin_device(name: str) -> DeviceProfile:
    """Read once: parsing the YAML took longer than predicting a spec's latency."""
    text = (resources.files(__package__) / f"{name}.yaml").read_text()
    return _read_device_file(text, f"<built-in device {name}>")


def _read_device_file(text: str, source: str) -> DeviceProfile:
    data = parse_yaml(text, source, DeviceError)
    try:
        return read_device(data)
    except DeviceError as exc:
        raise exc.located(source)


def read_device(data: Any) -> DeviceProfile:
    """A profile from parsed YAML; errors name the field (``memory[1].bandwidth_gbs``)."""
    f = Fields(data, "", DeviceError)
    schema = f.str("schema")
    if schema != SCHEMA:
        raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
    compute = f.sub("compute")
    provenance = f.sub("provenance", {})
    name = f.str("name")
    fallback = _base_of(provenance, name)
    profile = DeviceProfile(
        name=name,
        description=f.str("description", ""),
        runtime=_runtime(f),
        nchwc_block=f.int("nchwc_block", 0, choices=(0, 8, 16)),
        threads=f.int("threads", 1, lo=1),
        clock_ghz=_positive(compute, "clock_ghz"),
        simd_lanes=compute.int("simd_lanes", lo=1),
        fma_per_cycle=_positive(compute, "fma_per_cycle"),
        memory=_read_memory(f),
        efficiency=_per_class(f.sub("efficiency"), True, fallback and fallback.efficiency),
        fixed_cost_us=_per_class(
            f.sub("fixed_cost_us"), False, fallback and fallback.fixed_cost_us
        ),
        provenance=provenance.data,
        kernel_profile=read_kernel_profile(f.sub("kernel_profile"))
        if f.has("kernel_profile")
        else None,
    )
    compute.done()
    f.done()
    return profile


def _positive(f: Fields, key: str) -> float:
    return _number(f, key, positive=True)


def _number(f: Fields, key: str, positive: bool) -> float:
    value = f.float(key)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise f.fail(
            key, f"{value} is not a {'positive' if positive else 'non-negative'} finite number"
        )
    return value


def _runtime(f: Fields) -> str:
    runtime = f.str("runtime", DEFAULT_RUNTIME).strip()
    if not runtime:
        raise f.fail("runtime", "empty: name the inference runtime (onnxruntime, litert, ...)")
    return runtime


def _base_of(provenance: Fields, name: str) -> DeviceProfile | None:
    """The built-in profile a fitted one started from, if it names another: it supplies
    the op classes added since the file was written."""
    base = provenance.data.get("base")
    return _builtin_device(base) if base != name and base in builtin_devices() else None


def _per_class(f: Fields, positive: bool, fallback: Mapping[str, float] | None) -> dict[str, float]:
    values = {
        c: _number(f, c, positive) if fallback is None or f.has(c) else fallback[c]
        for c in OP_CLASSES
    }
    f.done()
    return values


def _read_memory(f: Fields) -> tuple[MemoryLevel, ...]:
    """Levels from the fastest to DRAM: every level but the last has a size, and bandwidth
    never rises further out, so a bigger working set can never make a kernel faster."""
    items = f.items("memory", min_len=1)
    levels: list[MemoryLevel] = []
    for i, item in enumerate(items):
        last = i == len(items) - 1
        if last and item.has("size_kib"):
            raise item.fail("size_kib", "the last level (DRAM) holds everything: give no size")
        level = MemoryLevel(
            name=item.str("name"),
            bandwidth_gbs=_positive(item, "bandwidth_gbs"),
            size_kib=None if last else _positive(item, "size_kib"),
        )
        if levels and level.bandwidth_gbs > levels[-1].bandwidth_gbs:
            raise item.fail(
                "bandwidth_gbs",
                f"{level.bandwidth_gbs} exceeds the bandwidth of "
                f"the level before it ({levels[-1].bandwidth_gbs})",
            )
        item.done()
        levels.append(level)
    return tuple(levels)
