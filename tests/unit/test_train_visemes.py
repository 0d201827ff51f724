"""`farm train visemes --smoke`: the whole training pipeline runs in seconds and writes weights the
farm can load (the numbers of a smoke run mean nothing; `farm bench lipsync` measures real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from farm.cli import main
from farm.render.speech import VisemeModel

pytestmark = pytest.mark.unit


def test_a_smoke_training_run_writes_weights_that_load_and_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "visemes.npz"
    assert main(["train", "visemes", "--smoke", "--out", str(out), "--seed", "3"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert records[0]["stage"] == "data" and records[-1]["stage"] == "done"
    assert 0.0 <= records[-1]["heldout_frame_accuracy"] <= 1.0
    model = VisemeModel.load(out)
    assert model.meta["config"]["seed"] == 3
    assert model.meta["command"].startswith("farm train visemes --seed 3")
    rows = model.predict(np.zeros(3_200, np.float32))
    assert rows.shape == (5, 15) and np.allclose(rows.sum(axis=1), 1.0)


def test_weights_that_do_not_match_the_signature_are_refused(tmp_path: Path) -> None:
    from farm.kernel.errors import VisemeModelInvalid
    from farm.render.speech.model import WEIGHTS_PATH

    with np.load(WEIGHTS_PATH) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["w_out"] = arrays["w_out"][:14]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(VisemeModelInvalid, match="do not match the signature"):
        VisemeModel.load(tmp_path / "bad.npz")
    with pytest.raises(VisemeModelInvalid, match="missing or unreadable"):
        VisemeModel.load(tmp_path / "absent.npz")
