"""``cquin`` and ``python -m cquin``: signal handling first, so Ctrl-C even while starting up ends cleanly."""

from __future__ import annotations

import sys


def main() -> None:
    from cquin import signals

    signals.install()
    try:
        from cquin.cli import main as cli_main
    except (KeyboardInterrupt, signals.Terminated) as exc:  # while the modules load: nothing has started
        sys.stderr.write("interrupted\n" if isinstance(exc, KeyboardInterrupt) else "terminated\n")
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else exc.exit_code)
    cli_main()


if __name__ == "__main__":
    main()
