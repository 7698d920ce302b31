"""Run the http11_parse micro-benchmark: `uv run python -m benchmarks.bench_http11_parse [--quick]`.

The code lives in `warmline._bench.micro.http11_parse` so that `warmline bench`
(an installed console script) can import it too.
"""

from warmline._bench.micro.http11_parse import main

if __name__ == "__main__":
    main()
