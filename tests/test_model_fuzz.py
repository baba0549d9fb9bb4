"""A fast subset of the model-file fuzz benchmark (`benchmarks/model_fuzz.py`): damaged and
forged files through `load`, in a worker under an address-space limit, each one loaded with
finite values or refused with one short DataError; a few through `tsn inspect`."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from tinysubnets.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import model_fuzz  # noqa: E402

# The forged files that take seconds to build or load (40,000 tasks, ten million labels) are
# left to the benchmark.
SLOW_FORGES = {"classes-1e7", "tasks-40000", "tasks-32767-mlp-784-1"}


@pytest.fixture(scope="module")
def fuzz_cases(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fuzz")
    bases = {name: path.read_bytes()
             for name, path in model_fuzz.build_bases(folder, epochs=1).items()}
    cases = model_fuzz.enumerate_cases(bases, n_damage=60, seed=1)
    rng = random.Random(1)
    chosen = [i for i, c in enumerate(cases) if c.kind == "damage"
              or c.kind == "forged" and c.detail not in SLOW_FORGES]
    chosen += rng.sample([i for i, c in enumerate(cases) if c.kind == "leaf"], 240)
    return folder, bases, cases, sorted(chosen)


def test_every_fuzzed_file_loads_finite_or_is_one_short_data_error(fuzz_cases) -> None:
    folder, bases, cases, chosen = fuzz_cases
    report = model_fuzz.run_load(bases, cases, chosen, limit_mib=1024, folder=folder,
                                 progress=False)
    results = report["results"]
    bad = [f"{r['label']}: {r['outcome']}: {r.get('message', '')[:200]}" for r in results
           if r["outcome"] not in ("DataError", "loaded")]
    assert not bad, "\n".join(bad)
    assert max(r["message_chars"] for r in results) <= 400
    refused = sum(r["outcome"] == "DataError" for r in results)
    assert refused > len(results) / 2  # most of them are broken: the drill reaches the checks
    assert any(r["outcome"] == "loaded" for r in results)  # a value flip can leave a valid file


def test_fuzzed_files_through_inspect_are_one_line(fuzz_cases, capsys) -> None:
    folder, bases, cases, chosen = fuzz_cases
    forged = [i for i in chosen if cases[i].kind == "forged"]
    for i in forged + chosen[:: max(1, len(chosen) // 20)]:
        path = folder / f"case-{i}.tsn"
        path.write_bytes(model_fuzz.build_case(cases[i], bases))
        code = main(["inspect", str(path)])
        captured = capsys.readouterr()
        assert code in (0, 2), cases[i]
        if code == 2:
            assert len(captured.err.strip().splitlines()) == 1, cases[i]
            assert len(captured.err) <= 500, cases[i]


SCENARIO_FIELDS = ["name", "seed", "val_fraction", "data_dir", "download", "fingerprint"]


@pytest.mark.parametrize("field", SCENARIO_FIELDS)
def test_a_hostile_scenario_field_is_one_line_from_eval(fuzz_cases, field: str, capsys) -> None:
    folder, bases, _, _ = fuzz_cases
    header, body = model_fuzz.split_file(bases["plain"])
    header["scenario"][field] = [[1]] if field != "fingerprint" else {"rows": 10**30}
    path = folder / f"scenario-{field}.tsn"
    path.write_bytes(model_fuzz.join_file(header, body))
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and len(err) <= 500
    assert field in err or "scenario" in err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p["permutation"].update(draw=10**9), "field permutation is malformed"),
    (lambda p: p.update(std=0), "field std is malformed"),
    (lambda p: p.update(mean="x"), "field mean is malformed"),
    (lambda p: p.update(kind=["pmnist"]), "unknown preprocessing kind"),
])
def test_a_hostile_preprocess_record_is_one_error_from_predict(fuzz_cases, edit, message,
                                                               capsys) -> None:
    import json

    import numpy as np

    folder, bases, _, _ = fuzz_cases
    header, named = model_fuzz._sections(bases["plain"])
    info = json.loads(named["tasks/0"])
    edit(info["preprocess"])
    named["tasks/0"] = json.dumps(info).encode()
    path = folder / "preprocess.tsn"
    path.write_bytes(model_fuzz._pack(header, named))
    inputs = folder / "inputs.npy"
    np.save(inputs, np.zeros((2, 28, 28), np.uint8))
    assert main(["predict", str(path), "--task", "0", str(inputs)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
