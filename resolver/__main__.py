from __future__ import annotations

from resolver.cli import main

raise SystemExit(main())
