"""Run the objpool micro-benchmark: `uv run python -m benchmarks.bench_objpool [--quick]`.

The code lives in `warmline._bench.micro.objpool` so that `warmline bench`
(an installed console script) can import it too.
"""

from warmline._bench.micro.objpool import main

if __name__ == "__main__":
    main()
