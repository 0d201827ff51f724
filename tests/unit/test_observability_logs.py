"""JSON logs keep the structured fields and drop anything else passed in ``extra``."""

from __future__ import annotations

import json
import logging

import pytest

from farm.infra.logs import JsonFormatter, bind, configure

pytestmark = pytest.mark.unit


def _line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("farm.x", logging.WARNING, __file__, 1, "claimed %s", ("s1",), None)
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def test_structured_fields_survive_and_user_content_does_not() -> None:
    line = _line(session_id="s1", worker_id="w1", tenant="t", prewarm_s=1.5, transcript="hello there")
    assert line["msg"] == "claimed s1" and line["level"] == "WARNING"
    assert (line["session_id"], line["worker_id"], line["tenant"], line["prewarm_s"]) == (
        "s1",
        "w1",
        "t",
        1.5,
    )
    assert "transcript" not in line


def test_bound_fields_are_on_every_line_and_unknown_ones_refused() -> None:
    bind(worker_id="w9")
    try:
        assert _line()["worker_id"] == "w9"
        with pytest.raises(ValueError, match="not loggable"):
            bind(prompt="secret")
    finally:
        JsonFormatter.bound.clear()


def test_exceptions_carry_type_and_traceback() -> None:
    try:
        raise KeyError("x")
    except KeyError:
        import sys

        record = logging.LogRecord("farm", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["error"] == "KeyError" and "Traceback" in line["traceback"]


def test_configure_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="FARM_LOG_FORMAT"):
        configure("xml")
