"""Running the `jlc` program inside the test process: the same Program object, without a new interpreter."""

from __future__ import annotations

import pytest

from lifecycle.cli import make_program


def jlc(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `jlc ARGV`; (exit status, stdout, stderr)."""
    code = 0
    try:
        make_program(argv).run(["jlc", *argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
