"""``python -m busctl``: the same as the ``busctl`` command."""

from __future__ import annotations

from busctl import main

if __name__ == "__main__":
    main()
