"""``python -m warmline.cli``: the ``warmline`` command."""

from __future__ import annotations

import sys

from warmline.cli import main

sys.exit(main())
