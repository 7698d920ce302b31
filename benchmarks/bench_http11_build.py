"""Run the http11_build micro-benchmark: `uv run python -m benchmarks.bench_http11_build [--quick]`.

The code lives in `warmline._bench.micro.http11_build` so that `warmline bench`
(an installed console script) can import it too.
"""

from warmline._bench.micro.http11_build import main

if __name__ == "__main__":
    main()
