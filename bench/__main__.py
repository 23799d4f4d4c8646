"""``python -m bench [--quick] [--only SUITE] ...``"""

from bench.cli import main

raise SystemExit(main())
