"""The `sslzoo` console script: `sslzoo report ...` goes to sslzoo.report without importing
Lightning (it starts in a fraction of a second); everything else goes to the LightningCLI."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        from sslzoo.report.command import main as report_main

        sys.exit(report_main(args[1:]))
    from sslzoo.cli import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main()
