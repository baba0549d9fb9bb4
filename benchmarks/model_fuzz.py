"""Fuzz the model-file reader: damaged and forged `model.tsn` files through `tinysubnets.load`
(in a worker process under an address-space limit) and a sample through `tsn inspect` and
`tsn eval`. Every file must either load with finite values or raise one DataError; prints the
counts, the hangs, the longest message and the peak memory.

    python benchmarks/model_fuzz.py                      # >= 10,000 files, 200 through the CLI
    python benchmarks/model_fuzz.py --cases 300 --cli 10 # what `make test` runs (test_model_fuzz)

Cases, all deterministic from --seed:
- damage: random bit flips, cuts, inserted and zeroed bytes, with the checksum left as it is
  (refused by the checksum) or made valid again (reaching the decoders);
- leaf: every value of the JSON header (the section table included) replaced by a hostile one
  (huge, negative, zero, wrong type, long, deeply nested, a 5,000-digit integer), every list
  shortened, lengthened and repeated, every mapping missing a key or gaining a 5 MB one;
- forged: whole files built to allocate without bytes (a million classes, a 784-10000-10000
  backbone with empty masks, 40,000 tasks), with non-finite stored values, or with a replay
  entry of shape [10**30].
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

BENCH = Path(__file__).resolve().parent
PREFIX = 14  # magic (8), version (2), header size (4)
CHECKSUM = 32
HANG_S = 10.0


class FuzzCNN(nn.Module):
    """A user's module with biases and BatchNorm (so the file holds norm sections)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(torch.relu(self.bn(self.conv(x))).flatten(1)))


# --- the base files -----------------------------------------------------------------------


def build_bases(folder: Path, epochs: int) -> dict[str, Path]:
    """Four honest model files: built-in p-MNIST (pruned, quantized), the same with a replay
    memory and backbone copies, the same with 3 slots a weight (renewed positions), and a user
    CNN with BatchNorm and string labels."""
    import tinysubnets as tsn

    torch.set_num_threads(1)
    train = {"epochs": epochs, "batch_size": 128}
    plain = tsn.RunConfig.for_scenario("pmnist", tasks=3, seed=7, train=train)
    tsn.run(plain, folder / "plain", progress=False)
    extras = tsn.RunConfig.for_scenario(
        "pmnist", tasks=3, seed=8, train=train, replay={"per_task": 4},
        similarity={"duplicate_above": 0.0})
    tsn.run(extras, folder / "extras", progress=False)
    slotted = tsn.RunConfig.for_scenario("pmnist", tasks=3, seed=10, train={**train, "slots": 3})
    tsn.run(slotted, folder / "slotted", progress=False)
    g = torch.Generator().manual_seed(3)
    tasks = []
    for t in range(2):
        x, xt = torch.randn(96, 1, 8, 8, generator=g), torch.randn(32, 1, 8, 8, generator=g)
        label = lambda v: ["cat", "dog", "emu"][int(v.sum() > 0) + int(v.mean() > 0.1)]  # noqa: E731
        tasks.append(tsn.Task.from_tensors(f"user-{t}", x, [label(v) for v in x], xt,
                                           [label(v) for v in xt]))
    tsn.run({"train": train, "seed": 9}, folder / "user", tasks=tasks, backbone=FuzzCNN(),
            progress=False)
    return {name: folder / name / "model.tsn" for name in ("plain", "extras", "slotted", "user")}


# --- building one case ----------------------------------------------------------------------


def rechecksum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def split_file(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A valid file's header (with its section table) and its section bytes."""
    size = struct.unpack_from("<I", data, 10)[0]
    return json.loads(data[PREFIX : PREFIX + size]), data[PREFIX + size : -CHECKSUM]


# Hostile JSON texts that json.dumps cannot write: spliced in for a placeholder string.
RAW_TEXT = {
    "__DIGITS__": "9" * 5000,  # past Python's 4,300-digit limit for int(str)
    "__DEEP__": "[" * 100_000 + "]" * 100_000,  # past the JSON parser's recursion limit
}


def join_file(header: dict[str, Any], body: bytes, version: bytes = b"TSNMODEL\x03\x00") -> bytes:
    """A file of ``header`` and ``body`` with a valid checksum (placeholders spliced in)."""
    head = json.dumps(header, separators=(",", ":"))
    for placeholder, text in RAW_TEXT.items():
        head = head.replace(json.dumps(placeholder), text)
    raw = head.encode("utf-8")
    return rechecksum(version + struct.pack("<I", len(raw)) + raw + body)


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


VALUES: dict[str, Any] = {
    "zero": 0, "minus-one": -1, "int64-min": -(2**63), "million": 10**6, "ten-million": 10**7,
    "2^31": 2**31, "2^63": 2**63, "10^30": 10**30, "5000-digits": "__DIGITS__",
    "float": 1.5, "nan": float("nan"), "inf": float("inf"), "true": True, "null": None,
    "string": "x", "300KB-string": "x" * 300_000, "empty-list": [], "list": [1, 2],
    "empty-map": {}, "map": {"a": [1]}, "nested-500": deep(500), "nested-100000": "__DEEP__",
}


def paths(value: Any, at: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every node of a JSON value, the root excluded."""
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        yield (*at, key), child
        yield from paths(child, (*at, key))


def edited(header: dict[str, Any], path: tuple, edit: Callable[[Any, Any], None]) -> dict:
    """A deep copy of ``header`` with ``edit(parent, key)`` applied at ``path``."""
    copy = json.loads(json.dumps(header))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    edit(parent, path[-1])
    return copy


def _set(value: Any) -> Callable[[Any, Any], None]:
    def apply(parent: Any, key: Any) -> None:
        parent[key] = value
    return apply


def _dropper(key: str) -> Callable[[Any, Any], None]:
    def apply(parent: Any, at: Any) -> None:
        parent[at].pop(key)
    return apply


def _container_edits(value: Any) -> dict[str, Callable[[Any, Any], None]]:
    """Structural edits of a list or mapping at a path (applied to its parent)."""
    if isinstance(value, list):
        return {
            "list-drop-last": lambda p, k: p[k].pop() if p[k] else None,
            "list-dup-first": lambda p, k: p[k].insert(0, p[k][0]) if p[k] else None,
            "list-x1000": lambda p, k: p.__setitem__(k, p[k] * 1000),
        }
    if isinstance(value, dict):
        edits = {f"drop-key-{key}": _dropper(key) for key in value}
        edits["5MB-key"] = lambda p, k: p[k].__setitem__("k" * 5_000_000, 1)
        return edits
    return {}


@dataclass(frozen=True)
class Case:
    """One fuzzed file, small to describe: rebuilt from the bases on demand."""

    kind: str  # damage, leaf or forged
    base: str
    detail: str
    seed: int = 0
    path: tuple = ()


def enumerate_cases(bases: dict[str, bytes], n_damage: int, seed: int) -> list[Case]:
    """Every leaf and container edit of every base, the forged files, and ``n_damage``
    randomly damaged files: in a fixed order."""
    cases = []
    for name, data in bases.items():
        header, _ = split_file(data)
        for path, value in paths(header):
            cases += [Case("leaf", name, label, path=path) for label in VALUES]
            cases += [Case("leaf", name, label, path=path) for label in _container_edits(value)]
        cases += [Case("leaf", name, label, path=()) for label in _container_edits(header)]
        cases += [Case("forged", name, label) for label, forge in FORGES.items()
                  if forge(data) != data]  # some apply to some bases only
    rng = random.Random(seed)
    names = sorted(bases)
    for i in range(n_damage):
        cases.append(Case("damage", rng.choice(names), rng.choice(DAMAGE), seed=seed * 7919 + i))
    return cases


DAMAGE = ("flip", "flip-rechecksum", "cut", "cut-rechecksum", "insert-rechecksum",
          "zero-rechecksum", "swap-rechecksum")


def damaged(data: bytes, how: str, seed: int) -> bytes:
    rng = random.Random(seed)
    body = bytearray(data[:-CHECKSUM])
    if how.startswith("flip"):
        for _ in range(rng.randint(1, 4)):
            bit = rng.randrange(8 * len(body))
            body[bit // 8] ^= 0x80 >> (bit % 8)
    elif how.startswith("cut"):
        body = body[: rng.randrange(len(body))]
    elif how.startswith("insert"):
        at = rng.randrange(len(body))
        body[at:at] = rng.randbytes(rng.randint(1, 64))
    elif how.startswith("zero"):
        at = rng.randrange(len(body))
        body[at : at + rng.randint(1, 256)] = bytes(min(256, len(body) - at))
    else:
        a, b = sorted(rng.sample(range(len(body)), 2))
        n = rng.randint(1, min(64, len(body) - b))
        body[a : a + n], body[b : b + n] = body[b : b + n], body[a : a + n]
    if how.endswith("rechecksum"):
        return rechecksum(bytes(body))
    return bytes(body) + data[-CHECKSUM:]


def build_case(case: Case, bases: dict[str, bytes]) -> bytes:
    data = bases[case.base]
    if case.kind == "damage":
        return damaged(data, case.detail, case.seed)
    if case.kind == "forged":
        return FORGES[case.detail](data)
    header, body = split_file(data)
    if case.detail in VALUES:
        return join_file(edited(header, case.path, _set(VALUES[case.detail])), body)
    node: Any = header
    for key in case.path:
        node = node[key]
    if not case.path:  # the root mapping itself
        header = json.loads(json.dumps(header))
        _container_edits(header)[case.detail]({"root": header}, "root")
        return join_file(header, body)
    return join_file(edited(header, case.path, _container_edits(node)[case.detail]), body)


# --- forged files: valid layout and checksum, built to break the reader ---------------------


def _sections(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A valid file's header (without its section table) and its sections by name."""
    from tinysubnets.artifact.layout import expected_sections

    header, body = split_file(data)
    sizes, named, pos = header.pop("sections"), {}, 0
    layout = expected_sections([name for name, _ in header["layers"]], len(header["tasks"]),
                               bool(header.get("norms")), "replay" in header,
                               header.get("slots", 1) != 1)
    for (name, *_), size in zip(layout, sizes, strict=True):
        named[name] = body[pos : pos + size]
        pos += size
    return header, named


def _pack(header: dict[str, Any], named: dict[str, bytes]) -> bytes:
    """The file of ``header`` and the sections, in the layout's order (missing ones empty)."""
    from tinysubnets.artifact.layout import expected_sections

    layout = expected_sections([name for name, _ in header["layers"]], len(header["tasks"]),
                               bool(header.get("norms")), "replay" in header,
                               header.get("slots", 1) != 1)
    chunks = [named.get(name, b"") for name, *_ in layout]
    return join_file({**header, "sections": [len(c) for c in chunks]}, b"".join(chunks))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _one_symbol(n: int) -> bytes:
    """A Huffman stream of n copies of symbol 0: a few bytes whatever n is."""
    return _varint(n) + _varint(1) + _varint(0)


def _task_info(labels: list) -> bytes:
    return json.dumps({"name": "forged", "labels": labels, "preprocess": {}}).encode()


def forge_classes(classes: int) -> Callable[[bytes], bytes]:
    """Task 0's head claims ``classes`` classes, its values one zero-bit symbol each (and its
    labels are there: 0..classes-1)."""
    def forge(data: bytes) -> bytes:
        header, named = _sections(data)
        task = header["tasks"][0]
        task["classes"] = classes
        task["blocks"]["head"] = [1, 1, 1]
        named["heads/0/codebook"] = struct.pack("<e", 0.0)
        named["heads/0/values"] = _one_symbol(classes * (header["features"] + 1))
        named["tasks/0"] = _task_info(list(range(classes)))
        if "replay" in header:
            header["replay"]["tasks"][0]["count"] = 0
            named["replay/0"] = b""
        return _pack(header, named)
    return forge


def forge_backbone(hidden: list[int]) -> Callable[[bytes], bytes]:
    """A built-in MLP of the given widths, one task, every mask empty (a few bytes a layer)."""
    def forge(data: bytes) -> bytes:
        header, named = _sections(data)
        if "name" not in header["backbone"]:
            return data
        sizes = [header["input_shape"][0], *hidden]
        header["backbone"]["kwargs"]["hidden"] = hidden
        header["layers"] = [[f"fc{i + 1}.weight", [b, a]]
                            for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False))]
        header["features"], header["copies"] = hidden[-1], 0
        header.pop("replay", None)
        task = header["tasks"][0]
        task["blocks"] = {name: [0, 0, 0] for name, _ in header["layers"]}
        task["blocks"]["head"], task["copy"] = [1, 1, 1], 0
        header["tasks"] = [task]
        out = {f"masks/{name}": b"\x02" + _one_symbol(b * a)
               for name, (b, a) in header["layers"]}
        out["heads/0/codebook"] = struct.pack("<e", 0.0)
        out["heads/0/values"] = _one_symbol(task["classes"] * (hidden[-1] + 1))
        out["tasks/0"] = named["tasks/0"]
        return _pack(header, out)
    return forge


def forge_tasks(n_tasks: int, hidden: list[int] | None = None) -> Callable[[bytes], bytes]:
    """``n_tasks`` copies of task 0, each owning nothing, its head raw zeros (on the built-in
    MLP resized to ``hidden``, when given)."""
    def forge(data: bytes) -> bytes:
        if hidden is not None:
            data = forge_backbone(hidden)(data)
        header, named = _sections(data)
        if header.get("norms") or "replay" in header or header.get("copies"):
            return data
        entry = header["tasks"][0]
        entry["blocks"] = {name: [0, 0, 0] for name, _ in header["layers"]}
        entry["blocks"]["head"] = [32, 0, 0]
        header["tasks"] = [entry] * n_tasks
        out = {f"masks/{name}": b"\x02" + _one_symbol(int(np.prod(shape)))
               for name, shape in header["layers"]}
        zeros = bytes(4 * entry["classes"] * (header["features"] + 1))
        for t in range(n_tasks):
            out[f"heads/{t}/values"], out[f"tasks/{t}"] = zeros, named["tasks/0"]
        return _pack(header, out)
    return forge


def forge_nan_head(data: bytes) -> bytes:
    """Task 0's head stored raw, every value NaN."""
    header, named = _sections(data)
    task = header["tasks"][0]
    task["blocks"]["head"] = [32, 0, 0]
    named["heads/0/codebook"] = b""
    named["heads/0/values"] = np.full(task["classes"] * (header["features"] + 1), np.nan,
                                      "<f4").tobytes()
    return _pack(header, named)


def forge_nan_tail(data: bytes) -> bytes:
    """The norms (or, without norms, the replay inputs) of task 0 made NaN."""
    header, named = _sections(data)
    name = "norms/0" if header.get("norms") else "replay/0" if "replay" in header else None
    if name is None:
        return data
    old = named[name]
    floats = len(old) // 4 if name == "norms/0" else header["replay"]["tasks"][0]["count"] * int(
        np.prod(header["replay"]["tasks"][0]["shape"]))
    named[name] = np.full(floats, np.nan, "<f4").tobytes() + old[4 * floats :]
    return _pack(header, named)


def forge_replay_shape(data: bytes) -> bytes:
    """A replay entry of no samples and shape [10**30]."""
    header, named = _sections(data)
    if "replay" not in header:
        return data
    header["replay"]["tasks"][0] = {"count": 0, "shape": [10**30]}
    named["replay/0"] = b""
    return _pack(header, named)


FORGES: dict[str, Callable[[bytes], bytes]] = {
    "classes-1e4": forge_classes(10**4), "classes-1e6": forge_classes(10**6),
    "classes-1e7": forge_classes(10**7),
    "mlp-784-10000-10000": forge_backbone([10_000, 10_000]),
    "mlp-784-100000": forge_backbone([100_000]),
    "tasks-2000": forge_tasks(2_000), "tasks-40000": forge_tasks(40_000),
    "tasks-32767-mlp-784-1": forge_tasks(32_767, [1]),
    "nan-head": forge_nan_head, "nan-norms-or-replay": forge_nan_tail,
    "replay-shape-1e30": forge_replay_shape,
}


# --- loading, in a worker under a memory limit ----------------------------------------------


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmSize, VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Make VmHWM (peak RSS) start again from the current RSS (Linux >= 4.0), so that each
    case's peak is its own: ru_maxrss would also count the parent's pages from before exec."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def check_loaded(model: Any) -> str | None:
    """Why a loaded model is not usable (non-finite values or logits), or None."""
    for name, tensor in [*model.net.named_parameters(), *model.net.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"non-finite {name}"
    for memory in model.replay_memory:
        if not torch.isfinite(memory.x).all():
            return "non-finite replay"
    x = torch.zeros(2, *model.net.input_shape)
    for t in {0, model.num_tasks - 1} if model.num_tasks else ():
        if not torch.isfinite(model.logits(x, t)).all():
            return f"non-finite logits of task {t}"
    return None


def load_one(path: Path, backbone: nn.Module | None) -> dict[str, Any]:
    from tinysubnets import load
    from tinysubnets.errors import DataError

    start = time.perf_counter()
    try:
        model = load(path, backbone=backbone)
        problem = check_loaded(model)
        outcome, message = ("loaded", "") if problem is None else ("bad-values", problem)
    except DataError as e:
        outcome, message = "DataError", str(e)
    except Exception as e:  # noqa: BLE001  (what the benchmark counts)
        outcome, message = type(e).__name__, str(e)[:300]
    return {"outcome": outcome, "message_chars": len(message), "message": message[:300],
            "seconds": time.perf_counter() - start}


def worker(limit_mib: int) -> None:
    """Read "path base" lines on stdin and load each file, answering one JSON line each,
    under the address-space limit (the files are built by the parent, outside it)."""
    torch.set_num_threads(1)
    import tinysubnets  # noqa: F401  (mapped before the limit is measured)

    base_kib = status_kib("VmSize")
    resource.setrlimit(resource.RLIMIT_AS, ((base_kib + limit_mib * 1024) * 1024,) * 2)
    print(json.dumps({"ready": base_kib}), flush=True)
    for line in sys.stdin:
        path, base = line.split()
        reset_peak()
        before = status_kib("VmRSS")
        result = load_one(Path(path), FuzzCNN() if base == "user" else None)
        result["rss_kib"] = status_kib("VmHWM")  # this case's peak
        result["rss_grew_kib"] = result["rss_kib"] - before
        print(json.dumps(result), flush=True)


class Worker:
    """A worker process the parent can give up on (a hang) and replace."""

    def __init__(self, limit_mib: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--limit-mib", str(limit_mib)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.base_kib = json.loads(self._line(120.0))["ready"]

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError
        return line

    def ask(self, path: Path, base: str, timeout: float) -> dict[str, Any]:
        self.proc.stdin.write(f"{path} {base}\n")
        self.proc.stdin.flush()
        return json.loads(self._line(timeout))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_load(bases: dict[str, bytes], cases: list[Case], indices: list[int], limit_mib: int,
             folder: Path, progress: bool = True) -> dict[str, Any]:
    """Each case through `load` in a worker; a case past HANG_S is a hang (worker replaced)."""
    results: list[dict[str, Any]] = []
    work = Worker(limit_mib)
    base_kib = work.base_kib
    path = folder / "case.tsn"
    for n, i in enumerate(indices):
        case = cases[i]
        path.write_bytes(build_case(case, bases))
        try:
            result = work.ask(path, case.base, HANG_S)
        except (TimeoutError, EOFError) as e:
            result = {"outcome": "hang" if isinstance(e, TimeoutError) else "crash",
                      "message_chars": 0, "message": "", "seconds": HANG_S}
            work.close()
            work = Worker(limit_mib)
        result.update(case=i, bytes=path.stat().st_size,
                      label=f"{case.kind}:{case.base}:{case.detail}:{case.path}")
        results.append(result)
        if progress and (n + 1) % 500 == 0:
            print(f"  {n + 1}/{len(indices)} files", file=sys.stderr, flush=True)
    work.close()
    path.unlink(missing_ok=True)
    counts = Counter(r["outcome"] for r in results)
    peak = max((r.get("rss_kib", 0) for r in results), default=0)
    return {"results": results, "counts": dict(counts), "vm_before_limit_kib": base_kib,
            "peak_rss_kib": peak}


# --- through the CLI ------------------------------------------------------------------------


def run_cli(data: dict[str, bytes], cases: list[Case], indices: list[int],
            limit_mib: int, folder: Path, jobs: int) -> dict[str, Any]:
    """`tsn inspect` on every sampled file and `tsn eval` on those of built-in bases."""
    tsn = [sys.executable, "-c", "import sys; from tinysubnets.cli import main; "
           "sys.exit(main(sys.argv[1:]))"]
    limit = (limit_mib + 1024) * 1024 * 1024  # the imports map ~0.6 GiB before any work

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def one(i: int) -> list[tuple[str, str | None]]:
        path = folder / f"case-{i}.tsn"
        path.write_bytes(build_case(cases[i], data))
        commands = [["inspect", str(path)]]
        if cases[i].base != "user":
            commands.append(["eval", str(path)])
        found = []
        for command in commands:
            try:
                done = subprocess.run([*tsn, *command], capture_output=True, text=True,
                                      timeout=HANG_S, preexec_fn=limited,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"})
                err = done.stderr.strip()
                clean = (done.returncode in (0, 2) and "Traceback" not in err
                         and len(err.splitlines()) <= 1 and len(err) <= 600)
                problem = None if clean else (
                    f"{command[0]} {cases[i]}: rc {done.returncode}: {err[-300:]}")
                found.append((f"{command[0]} {'clean' if clean else 'not clean'}", problem))
            except subprocess.TimeoutExpired:
                found.append((f"{command[0]} hang", f"{command[0]} {cases[i]}: hang"))
        path.unlink()
        return found

    with ThreadPoolExecutor(jobs) as pool:
        found = [item for items in pool.map(one, indices) for item in items]
    outcomes = Counter(outcome for outcome, _ in found)
    worst = [problem for _, problem in found if problem]
    return {"counts": dict(outcomes), "problems": worst}


# --- main -------------------------------------------------------------------------------------


def sample(n_cases: int, total: int, seed: int) -> list[int]:
    """``n_cases`` indices spread over all kinds (every forged case kept)."""
    if n_cases >= total:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), n_cases))


def fuzz(folder: Path, n_cases: int, n_cli: int, seed: int, limit_mib: int, epochs: int,
         jobs: int = 2, progress: bool = True) -> dict[str, Any]:
    data = {name: path.read_bytes() for name, path in build_bases(folder, epochs).items()}
    structured = len(enumerate_cases(data, 0, seed))
    damage = max(n_cases - structured, n_cases // 5)
    cases = enumerate_cases(data, damage, seed)
    forged = [i for i, c in enumerate(cases) if c.kind == "forged"]
    indices = sorted(set(sample(n_cases - len(forged), len(cases), seed)) | set(forged))
    start = time.perf_counter()
    loaded = run_load(data, cases, indices, limit_mib, folder, progress)
    loaded["seconds"] = time.perf_counter() - start
    cli_indices = sorted(random.Random(seed + 1).sample(indices, min(n_cli, len(indices))))
    cli = run_cli(data, cases, cli_indices, limit_mib, folder, jobs) if n_cli else {
        "counts": {}}
    kinds = Counter(cases[i].kind for i in indices)
    return {"files": len(indices), "kinds": dict(kinds), "base_bytes":
            {k: len(v) for k, v in data.items()}, "load": loaded, "cli": cli}


def summary(report: dict[str, Any]) -> str:
    load, results = report["load"], report["load"]["results"]
    others = [r for r in results if r["outcome"] not in ("DataError", "loaded")]
    slowest = max(results, key=lambda r: r.get("seconds", 0))
    longest = max(results, key=lambda r: r.get("message_chars", 0))
    by_rss = max(results, key=lambda r: r.get("rss_grew_kib", 0))
    lines = [
        f"files: {report['files']} ({', '.join(f'{k} {v}' for k, v in report['kinds'].items())})",
        f"load: {', '.join(f'{k} {v}' for k, v in sorted(load['counts'].items()))} "
        f"in {load['seconds']:.0f} s",
        f"other exceptions or bad values: {len(others)}; hangs > {HANG_S:.0f} s: "
        f"{load['counts'].get('hang', 0)}",
        f"slowest: {slowest.get('seconds', 0):.2f} s ({slowest['label']})",
        f"longest message: {longest.get('message_chars', 0)} chars ({longest['label']})",
        f"peak RSS of the loading worker: {load['peak_rss_kib'] / 1024:.0f} MiB; the most a "
        f"case added: {by_rss.get('rss_grew_kib', 0) / 1024:.0f} MiB ({by_rss['label']}); "
        f"address space mapped before the limit: {load['vm_before_limit_kib'] / 1024:.0f} MiB",
        f"cli: {', '.join(f'{k} {v}' for k, v in sorted(report['cli']['counts'].items()))}",
    ]
    lines += [f"  OTHER {r['outcome']}: {r['label']}: {r.get('message', '')[:200]}"
              for r in others[:40]]
    lines += [f"  CLI {p}" for p in report["cli"].get("problems", [])[:20]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="files through load")
    parser.add_argument("--cli", type=int, default=200, help="of them, through the CLI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-mib", type=int, default=1024,
                        help="address space a load may add to what the imports mapped")
    parser.add_argument("--epochs", type=int, default=1, help="of the base runs")
    parser.add_argument("--jobs", type=int, default=2, help="CLI commands run at once")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.limit_mib)
        return
    with tempfile.TemporaryDirectory() as folder:
        report = fuzz(Path(folder), args.cases, args.cli, args.seed, args.limit_mib,
                      args.epochs, args.jobs)
    print(summary(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
