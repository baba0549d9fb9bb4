"""The scenario a model file was tested on, rebuilt from the data the file records, and checked.

The header's scenario says where the data was read (``data_dir``, absolute, or None for the
embedded MNIST subset and the download cache; ``download``) and holds a fingerprint of every
finished task's test data (`tinysubnets.fingerprint`). `tsn eval` reads the recorded location
unless told another, fetches nothing unless asked, and refuses data whose fingerprint differs
(e.g. Fashion-MNIST files named like MNIST's) unless forced: otherwise it would report a number
for data the model never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinysubnets import fingerprint
from tinysubnets.config import RunConfig
from tinysubnets.data.download import default_cache_dir
from tinysubnets.data.registry import REMOTE_DATASETS
from tinysubnets.errors import ConfigError, DataError, TSNError, shown
from tinysubnets.scenarios import SPECS, five_datasets_of, scenario_of_model
from tinysubnets.scenarios.base import Scenario
from tinysubnets.scenarios.sources import LAYOUTS, NOT_DOWNLOADABLE

USER_SCENARIO = "custom"  # as `runs.USER_SCENARIO`: a run over the user's own tasks


@dataclass(frozen=True)
class Rebuilt:
    """The rebuilt scenario, and what the user should know about its data."""

    scenario: Scenario
    notes: list[str] = field(default_factory=list)


def datasets_of(info: dict[str, Any]) -> tuple[str, ...]:
    """The datasets a recorded scenario reads (p-MNIST reads MNIST)."""
    name = info.get("name")
    if name == "pmnist":
        return ("mnist",)
    if name == "five-datasets":
        return five_datasets_of(RunConfig.for_scenario(name, datasets=info.get("datasets", "")))
    return (str(name),)


def needed(info: dict[str, Any]) -> str:
    """What `--data-dir` must hold for this scenario, and whether `--download` can fetch it."""
    parts = [f"{d}: {LAYOUTS.get(d, '?')}" for d in datasets_of(info)]
    fetchable = [d for d in datasets_of(info) if d not in NOT_DOWNLOADABLE]
    hint = (f"; --download fetches {', '.join(fetchable)} (checksums verified)" if fetchable
            else "")
    return "; ".join(parts) + hint


def _missing_from_cache(info: dict[str, Any]) -> list[Path]:
    """The files of the recorded datasets the download cache lacks (nothing is fetched)."""
    missing = []
    for name in datasets_of(info):
        remote = REMOTE_DATASETS.get(name)
        if remote is None:
            continue
        folder = default_cache_dir() / remote.folder
        missing += [folder / f.name for f in remote.files if not (folder / f.name).is_file()]
    return missing


Location = tuple[str | None, bool]  # (data_dir, download)


def _location(info: dict[str, Any], data_dir: str | None, download: bool) -> Location:
    """(data_dir, download) to rebuild with: the user's, else the recorded location; a
    recorded location that is gone is one error saying what is needed."""
    recorded = info.get("data")
    if data_dir is not None:
        return data_dir, download
    where = info.get("data_dir")
    if where is not None and not Path(where).exists():
        raise DataError(
            f"the test data was read from {where}, which is not there now (recorded: "
            f"{recorded}); pass --data-dir with {needed(info)}"
        )
    if info.get("download") and not download:
        missing = _missing_from_cache(info)
        if missing and where is None:
            raise DataError(
                f"the test data came from the download cache, which lacks "
                f"{', '.join(map(str, missing[:4]))} (recorded: {recorded}); pass --download "
                f"to fetch it again (checksums verified), or --data-dir with {needed(info)}"
            )
        # With every file in the cache, nothing is fetched (the files are only verified);
        # otherwise the recorded folder must hold what the cache lacks.
        download = not missing
    return where, download


def _check(info: dict[str, Any], scenario: Scenario, tasks: int, force: bool) -> list[str]:
    """Notes on the data found; a DataError when it is not the recorded data, unless forced."""
    recorded, found = info.get("data"), scenario.source
    prints = info.get("fingerprint")
    if prints is not None:
        diffs = fingerprint.differences(prints, scenario, tasks)
        if not diffs:
            return ["the test data matches the fingerprint the file records"]
        why = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "")
        what = "its fingerprint differs"
    elif recorded is None or recorded == found:
        return ["the file records no fingerprint of its test data (an older tinysubnets "
                "wrote it): the data was not checked"]
    else:
        why, what = "no fingerprint recorded, and another source", "it may differ"
    message = (f"the test data found is not the data the model was tested on ({what}: {why}); "
               f"recorded: {recorded}; found: {found}")
    if not force:
        raise DataError(f"{message}. Pass --data-dir with the recorded data, or --force to "
                        "evaluate on this data anyway")
    return [f"--force: {message}"]


def _is(kinds: type | tuple[type, ...]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, kinds) and not isinstance(v, bool) or v is None


INFO_FIELDS: dict[str, Callable[[object], bool]] = {
    "name": _is(str), "seed": _is(int), "val_fraction": _is((int, float)), "datasets": _is(str),
    "image_size": _is(int), "data_dir": _is(str), "data": _is(str), "tasks": _is(int),
    "download": lambda v: isinstance(v, bool) or v is None, "fingerprint": _is(dict),
}


def _check_info(info: object) -> None:
    """The header's scenario entry, each field of the type the writer gives it (the file is
    untrusted: a list for a name or a number for a folder must be one clear error)."""
    if not isinstance(info, dict):
        raise DataError(f"the header's scenario {shown(info)} is not a mapping")
    for name, ok in INFO_FIELDS.items():
        if not ok(info.get(name)):
            raise DataError(f"the header's scenario field {name} is malformed: "
                            f"{shown(info[name])}")
    if isinstance(info.get("data_dir"), str) and "\0" in info["data_dir"]:
        raise DataError(f"the header's scenario field data_dir is not a path: "
                        f"{shown(info['data_dir'])}")
    if "fingerprint" in info and info["fingerprint"] is not None:
        fingerprint.check_recorded(info["fingerprint"])


def recorded_scenario(
    info: dict[str, Any], tasks: int, data_dir: str | None = None, download: bool = False,
    name: str | None = None, force: bool = False,
) -> Rebuilt:
    """The scenario of a model file's header ``info`` with its first ``tasks`` tasks, read from
    ``data_dir`` (default: where the file says) and checked against the recorded fingerprint.

    ``download`` may fetch what is missing; ``force`` accepts data whose fingerprint differs.
    """
    _check_info(info)
    if info.get("name") == USER_SCENARIO:
        raise ConfigError(
            "its tasks are the user's own (scenario 'custom'): the file cannot rebuild them. "
            "Evaluate from Python: model = tinysubnets.load(path, backbone=MyBackbone()); "
            "model.evaluate(t, task.split('test')) for each of your tasks"
        )
    if info.get("name") in SPECS and "data_dir" in info:
        data_dir, download = _location(info, data_dir, download)
    try:
        scenario = scenario_of_model(info, tasks, data_dir, download, name)
    except TSNError as e:
        if "data" not in info:
            raise
        raise type(e)(f"{e} (the model was tested on: {info['data']})") from None
    return Rebuilt(scenario, _check(info, scenario, tasks, force))
