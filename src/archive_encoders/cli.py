"""The `archive-encoders` command (`python -m archive_encoders.cli`): see archive_encoders.index.cli."""

import sys

from archive_encoders.index.cli import main

if __name__ == "__main__":
    sys.exit(main())
