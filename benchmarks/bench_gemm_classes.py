"""A transformer's GEMMs against the 1x1 convolution of the same GEMM, timed on a runtime.

A linear layer over tokens and attention's product of two activations run the GEMM kernels
a 1x1 convolution runs (MLAS on onnxruntime, XNNPACK on LiteRT), so the built-in profiles
give the ``linear`` and ``matmul`` classes the ``pointwise`` efficiency. For GEMMs of a
small vision transformer's sizes (tokens x width -> width) this times, one thread, each as
a network of that one op: the 1x1 convolution over ``tokens`` pixels, the linear layer over
``tokens`` rows, and ``x @ x^T`` of the same MACs; printed: milliseconds less an inference
of nothing, and each GEMM's time per MAC over the convolution's.

    python benchmarks/bench_gemm_classes.py
    python benchmarks/bench_gemm_classes.py --runtime litert
"""

from __future__ import annotations

import argparse
import platform
import sys

from torch import nn

from attend_search.evaluators.latency.measure import measure
from attend_search.evaluators.latency.profiling import Nothing

# (tokens, width in, width out): a small vision transformer's sizes (MobileViT-XS's linear
# layers are 1,024 rows 96 wide, 256 rows 120 wide and 64 rows 144 wide, expanded 2-3x)
SHAPES = [(256, 144, 288), (256, 144, 432), (64, 192, 384), (64, 240, 480), (16, 240, 720)]


class SelfProduct(nn.Module):
    """``x @ x^T`` of ``heads`` rows of ``tokens``: attention's scores."""

    def forward(self, x):
        return x @ x.transpose(-1, -2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=("onnxruntime", "litert"), default="onnxruntime")
    p.add_argument("--quick", action="store_true", help="the first shape only")
    args = p.parse_args()

    def ms(module: nn.Module, shape: tuple[int, ...]) -> float:
        return measure(module.eval(), shape, runtime=args.runtime).low_ms

    nothing = min(ms(Nothing(), (1, 1, 1, 1)) for _ in range(3))
    print(
        f"{args.runtime}, 1 thread, {platform.processor() or platform.machine()}: "
        f"milliseconds less an inference of nothing ({nothing * 1e3:.1f} us)\n"
        f"{'GEMM':<18} {'1x1 conv':>9} {'linear':>9} {'x @ x^T':>9} {'linear/MAC':>11} "
        f"{'matmul/MAC':>11}"
    )
    for tokens, cin, cout in SHAPES[:1] if args.quick else SHAPES:
        side = int(tokens**0.5)
        conv = ms(nn.Conv2d(cin, cout, 1), (1, cin, side, side)) - nothing
        linear = ms(nn.Linear(cin, cout), (1, tokens, cin)) - nothing
        heads = max(1, round(cout / tokens))  # about the convolution's MACs
        product = ms(SelfProduct(), (1, heads, tokens, cin)) - nothing
        per_mac = product / (heads * tokens * tokens * cin) * (tokens * cin * cout)
        print(
            f"{tokens:>4} x {cin:>3} -> {cout:<4} {conv:9.4f} {linear:9.4f} {product:9.4f} "
            f"{linear / conv:11.2f} {per_mac / conv:11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
