"""Run the decoders micro-benchmark: `uv run python -m benchmarks.bench_decoders [--quick]`.

The code lives in `warmline._bench.micro.decoders` so that `warmline bench`
(an installed console script) can import it too.
"""

from warmline._bench.micro.decoders import main

if __name__ == "__main__":
    main()
