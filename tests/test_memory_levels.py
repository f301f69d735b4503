"""Memory levels: cache sizes read from the OS, effective sizes and bandwidths recovered from
streaming timings, and (slow, timed here) the measured levels hold to streaming kernels
whose working sets cross L2 and L3 where the datasheet levels of the base do not."""

import math
from dataclasses import replace

import pytest
from torch import nn

from attend_search.evaluators.latency.devices import DeviceError, MemoryLevel, load_device
from attend_search.evaluators.latency.kernel_profile import KernelProfile
from attend_search.evaluators.latency.kernels import Kernel, extract_kernels
from attend_search.evaluators.latency.measure import measure
from attend_search.evaluators.latency.memory_levels import (
    Stream,
    WeightStream,
    cache_sizes,
    fit_levels,
    measure_levels,
    measure_weight_streams,
    sweep_sizes,
)
from attend_search.evaluators.latency.predict import total_ms
from attend_search.evaluators.latency.profiling import Nothing

BASE = load_device("cortex-a76")


def write_cache(root, index, level, kind, size):
    folder = root / f"index{index}"
    folder.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (folder / name).write_text(f"{value}\n")


def test_cache_sizes_are_the_data_and_unified_caches_from_l2_on(tmp_path):
    write_cache(tmp_path, 0, 1, "Data", "32K")
    write_cache(tmp_path, 1, 1, "Instruction", "32K")
    write_cache(tmp_path, 2, 2, "Unified", "1024K")
    write_cache(tmp_path, 3, 3, "Unified", "32M")
    assert cache_sizes(tmp_path) == [("L2", 1024), ("L3", 32768)]
    assert cache_sizes(tmp_path / "missing") == []


def stream_time(nbytes, levels):
    for level in levels:
        if level.size_kib is None or nbytes <= level.size_kib * 1024:
            return nbytes / (level.bandwidth_gbs * 1e9)


def test_fit_recovers_effective_sizes_and_bandwidths_and_ignores_an_outlier():
    caches = [("L2", 1024), ("L3", 32768)]
    truth = (
        MemoryLevel("L2", 70.0, 768.0),
        MemoryLevel("L3", 50.0, 16384.0),
        MemoryLevel("DRAM", 25.0, None),
    )
    points = [(b, stream_time(b, truth)) for b in sweep_sizes([1024, 32768])]
    points[5] = (points[5][0], points[5][1] * 2)  # something else ran during one timing
    assert fit_levels(points, caches) == truth


def test_a_slow_spell_over_a_stretch_of_one_sweep_leaves_the_levels_as_they_are():
    """The sweep runs twice, each working set's timings a pass apart: a spell of load that
    slows a stretch of consecutive working sets in one pass (as on the x86 VM once, which
    made an L3 of 41 GB/s out of 77) has passed by the other."""
    caches = [("L2", 1024), ("L3", 32768)]
    truth = (
        MemoryLevel("L2", 80.0, 768.0),
        MemoryLevel("L3", 60.0, 24576.0),
        MemoryLevel("DRAM", 30.0, None),
    )
    calls = []

    def timed(stream, shape):
        calls.append(stream.nbytes)
        spell = 3 <= len(calls) <= 9  # seven timings in a row, 2.5 times slower
        if len(calls) == 1:
            return 0.0  # noise left the kernel nothing: the other pass's timing stands
        return stream_time(stream.nbytes, truth) * (2.5 if spell else 1.0)

    levels, points = measure_levels(caches, timed)
    sizes = [b for b, _ in points]
    assert points[0][1] == stream_time(sizes[0], truth)
    assert calls == sizes + sizes
    assert [(m.bandwidth_gbs, m.size_kib) for m in levels] == [
        (80.0, 768.0),
        (60.0, 24576.0),
        (30.0, None),
    ]
    calls.clear()
    once = fit_levels([(b, timed(Stream(b), None)) for b in sizes], caches)
    assert once != levels  # one pass alone is misled


def test_a_cache_never_streams_faster_than_the_one_inside_it():
    caches = [("L2", 1024), ("L3", 32768)]
    prefetched = (
        MemoryLevel("L2", 60.0, 1024.0),
        MemoryLevel("L3", 80.0, 32768.0),
        MemoryLevel("DRAM", 30.0, None),
    )
    points = [(b, stream_time(b, prefetched)) for b in sweep_sizes([1024, 32768])]
    l2, l3, dram = fit_levels(points, caches)
    # pooled: one rate for both, the median of their timings together
    assert l2.bandwidth_gbs == l3.bandwidth_gbs in (60.0, 80.0) and dram.bandwidth_gbs == 30.0


def test_effective_sizes_grow_outward_and_too_few_timings_are_an_error():
    caches = [("L2", 1024), ("L3", 2048)]  # a 0.375 share of L3 would fall inside L2
    truth = (
        MemoryLevel("L2", 70.0, 1024.0),
        MemoryLevel("L3", 50.0, 2048.0),
        MemoryLevel("DRAM", 25.0, None),
    )
    points = [(b, stream_time(b, truth)) for b in sweep_sizes([1024, 2048])]
    levels = fit_levels(points, caches)
    assert [m.size_kib for m in levels[:-1]] == sorted(m.size_kib for m in levels[:-1])
    assert levels == truth
    with pytest.raises(DeviceError, match="too few to fit"):
        fit_levels([(1000, 0.0), (2000, -1e-6), (4000, 1e-6)], caches)


def test_sweep_spans_a_quarter_of_the_first_cache_to_four_times_the_last():
    sizes = sweep_sizes([1024, 32768])
    assert sizes[0] == 256 * 1024 and sizes[-1] == pytest.approx(128 * 1024 * 1024, rel=1e-6)
    assert all(b / a == pytest.approx(math.sqrt(2), rel=1e-3) for a, b in zip(sizes, sizes[1:]))
    stream = Stream(4 * 1024 * 1024)
    assert stream.nbytes == pytest.approx(4 * 1024 * 1024, rel=0.01)


def test_a_kernels_weights_come_from_the_level_that_holds_all_the_networks_weights():
    profile = replace(
        load_device("cortex-a76"),
        memory=(MemoryLevel("L2", 100.0, 512.0), MemoryLevel("DRAM", 10.0, None)),
    )
    small = Kernel("a", "elementwise", ("add",), 0, 40_000, 0)  # no compute: memory alone
    weighted = Kernel("b", "pointwise", ("convolution",), 1, 40_000, 30_000)
    alone = total_ms([small, weighted], profile)
    heavy = Kernel("c", "linear", ("addmm",), 1, 1_000_000, 1_000_000)  # outgrows L2
    with_heavy = total_ms([small, weighted, heavy], profile) - total_ms([heavy], profile)
    # b's 30 kB of weights now stream at DRAM's 10 GB/s instead of L2's 100: 2.7 us more
    assert with_heavy - alone == pytest.approx(30_000 * (1 / 10e9 - 1 / 100e9) * 1e3, rel=1e-6)


@pytest.mark.slow
@pytest.mark.alone
def test_measured_levels_hold_to_kernels_crossing_l2_and_l3():
    caches = cache_sizes()
    if len(caches) < 2:
        pytest.skip("the OS lists fewer than two caches from L2 on")

    def own(module, shape, times=1):
        best = min(measure(module, shape, repeats=10, rounds=5).low_ms for _ in range(times))
        return best * 1e-3 - overhead

    overhead = min(measure(Nothing(), (1, 1, 1, 1)).low_ms for _ in range(3)) * 1e-3
    base = load_device("cortex-a76")
    # off the sweep's grid: inside and outside each listed cache, and far into DRAM
    sizes = [kib * 1024 * f for _, kib in caches for f in (0.45, 2.3)] + [caches[-1][1] * 1024 * 5]

    def errors() -> dict:
        measured = replace(base, memory=measure_levels(caches, own)[0])
        found = {}
        for nbytes in sizes:
            stream = Stream(int(nbytes))
            [kernel] = [k for k in extract_kernels(stream, stream.shape) if k.op_class != "copy"]
            seconds = own(stream, stream.shape, times=2)
            found[round(nbytes / 1024)] = {
                name: kernel.bytes * p.seconds_per_byte(p.level_of(kernel.bytes)) / seconds - 1
                for name, p in (("measured", measured), ("datasheet", base))
            }
        return found

    # memory bandwidth is shared: a test beside this one slowed the sweep and not the
    # kernels after it (a 2.6x miss in one CI run, 1.44x in another with both of two tries),
    # hence the marker `alone`; the VM's own slow spells still get up to three tries
    for _ in range(3):
        found = errors()
        if max(abs(e["measured"]) for e in found.values()) < 0.35:
            break
    # the base's levels (a Cortex-A76's) would price some of them twice over: the test can fail
    assert max(abs(e["datasheet"]) for e in found.values()) > 1.0, found
    assert max(abs(e["measured"]) for e in found.values()) < 0.35, found


def test_weight_streams_hold_half_the_last_cache_to_four_times_it():
    streams = []

    def timed(module, shape):
        streams.append(module)
        return module.nbytes / 20e9

    points = measure_weight_streams(2048, timed)
    assert [b / 2**20 for b, _ in points] == pytest.approx([1, 2, 4, 8], rel=0.02)
    assert all(s == pytest.approx(b / 20e9) for b, s in points)
    # the network reads its weights and nothing else: pointwise kernels on one pixel
    kernels = extract_kernels(streams[-1], streams[-1].shape)
    assert {k.op_class for k in kernels} == {"pointwise"} and len(kernels) >= 4
    assert sum(k.weight_bytes for k in kernels) == points[-1][0]
    assert sum(k.bytes - k.weight_bytes for k in kernels) < points[-1][0] / 100
    with pytest.raises(DeviceError, match="in no time"):
        measure_weight_streams(2048, lambda module, shape: 0.0)


def weights_only(streams):
    """cortex-a76 with no corrections but ``streams`` of weights timed."""
    return replace(BASE, kernel_profile=KernelProfile({}, weight_streams=tuple(streams)))


def test_weights_beyond_the_smallest_stream_cost_what_the_streams_say(tmp_path):
    mib = 2**20
    profile = weights_only([(4 * mib, 4 * mib / 5e9), (16 * mib, 16 * mib / 2e9)])
    profile.save(tmp_path / "p.yaml")
    loaded = load_device(tmp_path / "p.yaml").kernel_profile.weight_streams
    for (b, t), (b0, t0) in zip(loaded, profile.kernel_profile.weight_streams, strict=True):
        assert b == b0 and t == pytest.approx(t0, rel=1e-4)
    learned = profile.kernel_profile
    assert learned.weight_seconds_per_byte(8 * mib) == pytest.approx((1 / 5e9 + 1 / 2e9) / 2)
    assert learned.weight_seconds_per_byte(64 * mib) == pytest.approx(1 / 2e9)
    for size in (8, 64):
        stream = WeightStream(size * mib)
        kernels = extract_kernels(stream, stream.shape)
        cost = stream.nbytes * learned.weight_seconds_per_byte(stream.nbytes) * 1e3
        assert total_ms(kernels, profile) == pytest.approx(cost, rel=0.03)
    small = WeightStream(2 * mib)  # held by the 2 MiB L3, under the smallest stream
    kernels = extract_kernels(small, small.shape)
    assert total_ms(kernels, profile) == pytest.approx(total_ms(kernels, weights_only([])))


def test_weights_past_the_last_cache_take_the_streams_even_below_the_smallest():
    mib = 2**20
    levels = (
        MemoryLevel("L2", 100.0, 256.0),
        MemoryLevel("L3", 40.0, 3072.0),  # an effective size under the smallest stream
        MemoryLevel("DRAM", 5.0, None),
    )
    profile = replace(
        weights_only([(4 * mib, 4 * mib / 40e9), (8 * mib, 8 * mib / 20e9)]), memory=levels
    )
    stream = WeightStream(int(3.5 * mib))
    kernels = extract_kernels(stream, stream.shape)
    # the smallest stream's cost (and the kernels' fixed costs), not DRAM's, 8x slower: no
    # drop in time where the streams begin
    assert total_ms(kernels, profile) == pytest.approx(stream.nbytes / 40e9 * 1e3, rel=0.1)


@pytest.mark.slow
@pytest.mark.alone
def test_measured_weight_streams_hold_to_networks_of_other_shapes():
    caches = cache_sizes()
    if not caches:
        pytest.skip("the OS lists no cache")

    def own(module, shape):
        return min(measure(module, shape).low_ms for _ in range(2)) * 1e-3 - overhead

    overhead = min(measure(Nothing(), (1, 1, 1, 1)).low_ms for _ in range(3)) * 1e-3
    last = caches[-1][1] * 1024
    width = 768 if last >= 8 * 2**20 else 256  # pairs of convolutions of 18.9 MB or 2.1 MB

    def errors() -> dict:
        levels = measure_levels(caches, own)[0]
        profile = replace(weights_only(measure_weight_streams(caches[-1][1], own)), memory=levels)
        return {reach: miss(profile, reach) for reach in (1.5, 3.0)}

    def miss(profile, reach: float) -> float:  # between the streams' sizes, of another shape
        count = max(1, round(reach * last / (4 * 4 * width * width * 2)))
        layers = [
            nn.Conv2d(c, d, 1)
            for _ in range(count)
            for c, d in ((width, 4 * width), (4 * width, width))
        ]
        network = nn.Sequential(*layers)
        shape = (1, width, 1, 1)
        predicted = total_ms(extract_kernels(network, shape), profile) * 1e-3
        return predicted / own(network, shape) - 1

    for _ in range(2):  # a second try from scratch (see above; 1.49x with a test beside it)
        found = errors()
        if max(abs(e) for e in found.values()) < 0.35:
            break
    assert max(abs(e) for e in found.values()) < 0.35, found
