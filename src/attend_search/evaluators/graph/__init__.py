"""A network op by op: a spec's walk (no PyTorch) and a module's traced forward, which
the cost and latency evaluators count and fuse."""
