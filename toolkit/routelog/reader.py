"""Reading a route log: one stable schema over JSONL and Parquet, damage skipped and named, never changed."""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .domain import DOMAIN, DOMAIN_ID, DOMAIN_MARK, describe_problems, domain_problems, outside_domain
from .files import DEFAULT_LOG_DIR, JSONL_NAME, STATE_LOCK, flocked
from .schema import FIELDS, polars_schema

MAX_EXAMPLES = 20


@dataclass
class Damage:
    """What a reader skipped, and where.  Skipping never changes a file: repair or remove it, then read again."""

    damaged_files: list[str] = field(default_factory=list)  # "path: why", each skipped whole
    bad_lines: int = 0       # lines that are not route records, or hold a value outside its domain
    quarantined: int = 0     # Parquet records with a value outside its domain
    examples: list[str] = field(default_factory=list)       # the first bad lines and records, "path:line: why"

    def damaged(self, path: Any, why: str) -> None:
        self.damaged_files.append(f"{path}: {why}")

    def bad(self, path: Any, line: int, reason: str) -> None:
        self.bad_lines += 1
        self._example(f"{path}:{line}: {reason[:160]}")

    def quarantine(self, path: Any, request_id: Any, why: str) -> None:
        self.quarantined += 1
        self._example(f"{path}: request {request_id}: {why[:160]}")

    def _example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    def merge(self, other: "Damage") -> None:
        self.damaged_files += other.damaged_files
        self.bad_lines += other.bad_lines
        self.quarantined += other.quarantined
        self.examples = (self.examples + other.examples)[:MAX_EXAMPLES]

    @property
    def skipped(self) -> int:
        """Files, lines and records skipped (a damaged file counts once, whatever it held)."""
        return len(self.damaged_files) + self.bad_lines + self.quarantined

    def summary(self) -> str:
        """One line: ``"skipped 1 damaged file, 2 bad lines"`` or ``"nothing skipped"``."""
        parts = [_plural(len(self.damaged_files), "damaged file"), _plural(self.bad_lines, "bad line"),
                 _plural(self.quarantined, "record outside its domain", "records outside their domain")]
        parts = [p for p in parts if p]
        return "skipped " + ", ".join(parts) if parts else "nothing skipped"

    def details(self) -> list[str]:
        """Every damaged file, then the first bad lines and records."""
        more = self.bad_lines + self.quarantined - len(self.examples)
        return [*self.damaged_files, *self.examples] + ([f"... and {more} more"] if more > 0 else [])

    def to_dict(self) -> dict[str, Any]:
        return {"damaged_files": list(self.damaged_files), "bad_lines": self.bad_lines,
                "quarantined": self.quarantined, "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Damage":
        return cls(list(data.get("damaged_files", [])), int(data.get("bad_lines", 0)),
                   int(data.get("quarantined", 0)), list(data.get("examples", [])))


def _plural(n: int, one: str, many: str | None = None) -> str:
    return "" if not n else f"1 {one}" if n == 1 else f"{n:,} {many or one + 's'}"


@dataclass
class LogScan(Damage):
    """A route log as a polars LazyFrame, with the damage it found on the way."""

    frame: Any = None                # pl.LazyFrame with polars_schema()
    files: int = 0                   # files read (damaged ones included)

    def report(self) -> str:
        return f"{self.files} files, {self.summary()}"


def partition_files(names: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Which files of one ``date=`` directory (``names``) a reader reads: (Parquet parts, JSONL files, rejected-line
    files whose lines count as bad), so that each record and bad line counts once whatever compaction step ran last."""
    names = set(names)
    parts = sorted(n for n in names if n.startswith("part-") and n.endswith(".parquet"))
    committed = {n[len("part-"):-len(".parquet")] for n in parts}
    jsonl = [n for n in sorted(names) if n.startswith("sealed-") and n.endswith(".jsonl")
             and n[len("sealed-"):-len(".jsonl")] not in committed]
    if JSONL_NAME in names:
        jsonl.append(JSONL_NAME)
    rejected = sorted(n for n in names if n.startswith("rejected-") and n.endswith(".jsonl")
                      and n[len("rejected-"):-len(".jsonl")] in committed)
    return parts, jsonl, rejected


@contextmanager
def reading(root: str | os.PathLike) -> Iterator[None]:
    """Hold the log's reader lock: compaction renames and deletes nothing under a reader while it lists and reads."""
    with flocked(Path(root) / STATE_LOCK, fcntl.LOCK_SH, required=False):
        yield


def scan_log(root: str | os.PathLike = DEFAULT_LOG_DIR, *, start: str | None = None,
             end: str | None = None, verify: bool = False) -> LogScan:
    """Read every partition under ``root`` (JSONL and Parquet) with one stable schema.

    ``start`` / ``end`` (``YYYY-MM-DD``, inclusive) skip whole days.  Damage is skipped and named, never fatal:
    a corrupt or truncated JSONL line (and one holding a value outside its domain) is a bad line (``file:line``);
    a Parquet part that cannot be read is a damaged file; a Parquet record with a value outside its domain is
    quarantined.  Parts are checked by their footer (and their values, unless compaction checked them);
    ``verify`` reads each one whole (slower, and it finds damage inside a part whose footer is intact).
    """
    import polars as pl

    schema = polars_schema()
    root = Path(root)
    scan = LogScan()
    parquet: list[str] = []
    frames: list[Any] = []
    if root.is_dir():
        with reading(root):
            for part in sorted(root.glob("date=*")):
                day = part.name[len("date="):]
                if not part.is_dir() or (start and day < start) or (end and day > end):
                    continue
                parts, jsonl, rejected = partition_files(os.listdir(part))
                parquet += [str(part / n) for n in parts]
                for name in jsonl:
                    df = read_jsonl(part / name, scan, lock=name == JSONL_NAME)
                    if df is not None:
                        frames.append(df.lazy())
                for name in rejected:
                    count_rejected(part / name, scan)
                scan.files += len(parts) + len(jsonl) + len(rejected)
            parquet, outside = screen_parquet(parquet, scan, verify=verify)
    if parquet:
        lf = pl.scan_parquet(parquet, schema=schema, hive_partitioning=False, missing_columns="insert",
                             extra_columns="ignore")
        frames.insert(0, _keep_inside(lf) if outside else lf)
    scan.frame = pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=schema)
    return scan


def _keep_inside(frame: Any) -> Any:
    """``frame`` (any narwhals-supported frame of log columns) without its records outside their domain."""
    import narwhals as nw

    return nw.from_native(frame).filter(~outside_domain()).to_native()


def count_rejected(path: Path, damage: Damage, label: Any = None) -> None:
    """Count the lines compaction kept verbatim in ``rejected-<id>.jsonl`` as bad lines, each with its reason."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                damage.bad(label or path, n, f"rejected at compaction (kept verbatim): {_line_reason(line)}")


def _line_reason(line: bytes, error: Exception | None = None) -> str:
    """Why a line is not a route record (``error``: what the reader raised on it)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        return f"invalid JSON ({e})"
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    problems = domain_problems(obj)
    if problems:
        return f"request {obj.get('request_id')}: {describe_problems(problems)}"
    if error is not None:
        return str(error).splitlines()[0]
    return "not a route record" if obj.get("request_id") else "no request_id"


def _footer(source: Any) -> tuple[str | None, bool]:
    """From a Parquet part's footer: why it cannot be read as route records (unreadable: a truncated, empty or
    overwritten file; a column of the wrong type), else None; and whether its values were checked against this
    domain when it was written (``DOMAIN_MARK``).  ``source``: a path or an open file."""
    import polars as pl

    expected = polars_schema()
    try:
        schema = pl.read_parquet_schema(source)
        if hasattr(source, "seek"):
            source.seek(0)
        checked = pl.read_parquet_metadata(source).get(DOMAIN_MARK) == DOMAIN_ID
    except Exception as e:  # noqa: BLE001 — polars raises several kinds for a bad file
        return f"not a readable Parquet file ({error_line(e)})", False
    for name, dtype in schema.items():
        want = expected.get(name)
        if want is not None and dtype != want and not (isinstance(want, pl.List) and isinstance(dtype, pl.List)):
            return f"column {name!r} is {dtype}, not {want}", False
    return None, checked


def verify_parquet(url: Any, storage_options: dict | None = None) -> str | None:
    """Why a Parquet part does not read whole (every page of every column decoded), else None."""
    import polars as pl

    try:
        (pl.scan_parquet(url, schema=polars_schema(), hive_partitioning=False, missing_columns="insert",
                         extra_columns="ignore", storage_options=storage_options or None)
         .select(pl.all().is_null().sum()).collect(engine="streaming"))
    except Exception as e:  # noqa: BLE001
        return f"not a readable Parquet file ({error_line(e)})"
    return None


def screen_parquet(parts: list[str], damage: Damage, *, verify: bool = False, storage_options: dict | None = None,
                   opener: Callable[[str], Any] | None = None) -> tuple[list[str], bool]:
    """The parts a reader can read (each other one named in ``damage``), and whether they hold records outside their
    domain (each named in ``damage``: a reader must leave them out).

    Only footers are read, and the values of parts compaction did not check (older or foreign parts); ``verify``
    reads every page of every part too.  ``opener``: how to open a URL for its footer (e.g. fsspec's).
    """
    good, unchecked = [], []
    for url in parts:
        with opener(url) if opener else nullcontext(url) as source:
            why, checked = _footer(source)
        if why is None and verify:
            why = verify_parquet(url, storage_options)
        if why:
            damage.damaged(url, why)
            continue
        good.append(url)
        if not checked:
            unchecked.append(url)
    try:
        examples, outside = _quarantined(unchecked, storage_options)
    except Exception:  # noqa: BLE001 — pages broken under an intact footer: find the part by reading each whole
        if verify:
            raise
        return screen_parquet(good, damage, verify=True, storage_options=storage_options, opener=opener)
    for row in examples:
        damage.quarantine(row.pop("_file"), row["request_id"], describe_problems(domain_problems(row)))
    damage.quarantined += outside - len(examples)
    return good, bool(outside)


def _quarantined(parts: list[str], storage_options: dict | None) -> tuple[list[dict[str, Any]], int]:
    """The first records of ``parts`` outside their domain (file, request_id and the checked fields), and how many
    there are."""
    import narwhals as nw
    import polars as pl

    if not parts:
        return [], 0
    lf = pl.scan_parquet(parts, schema=polars_schema(), hive_partitioning=False, missing_columns="insert",
                         extra_columns="ignore", include_file_paths="_file", storage_options=storage_options or None)
    outside = nw.from_native(lf).filter(outside_domain()).to_native()
    examples = outside.select("_file", "request_id", "outcome", *DOMAIN).head(MAX_EXAMPLES).collect().to_dicts()
    return examples, len(examples) if len(examples) < MAX_EXAMPLES else outside.select(pl.len()).collect().item()


def error_line(e: BaseException) -> str:
    """The first line of an error's message, printable (for naming damage in one line)."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return line.encode("ascii", "replace").decode()  # a garbage file's bytes, quoted in the message, stay printable


def read_jsonl(path: Path, scan: Damage, *, lock: bool = False, rejected: list[bytes] | None = None,
               label: Any = None):
    """Parse one JSONL file into a DataFrame of good records; count (and collect) bad lines, named as ``label``
    (default: the path) and line number."""
    import polars as pl

    label = label or path
    try:
        with open(path, "rb") as f:
            if lock:
                fcntl.flock(f, fcntl.LOCK_SH)  # no append is half-way through while we read
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.strip():
        return None
    try:
        df = _finish(_parse_ndjson(data))
        if not df.select(_invalid().any()).item():
            return df.drop("value_outside")
    except Exception:  # noqa: BLE001 — some line is bad: find it below, keep the rest
        pass

    lines = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    frames: list[pl.DataFrame] = []

    def parse(chunk: list[tuple[int, bytes]]) -> None:
        # Halve a failing chunk until the bad lines stand alone: cheap when bad lines are few.
        try:
            df = _parse_ndjson(b"\n".join(line for _, line in chunk))
            if df.height != len(chunk):
                raise ValueError(f"{len(chunk)} lines gave {df.height} records")
        except Exception as e:  # noqa: BLE001
            if len(chunk) == 1:
                n, line = chunk[0]
                scan.bad(label, n, f"not a route record: {_line_reason(line, e)}")
                if rejected is not None:
                    rejected.append(line)
                return
            mid = len(chunk) // 2
            parse(chunk[:mid])
            parse(chunk[mid:])
            return
        frames.append(df.with_columns(pl.Series("_line", [n for n, _ in chunk], pl.Int64)))

    parse(lines)
    if not frames:
        return None
    df = _finish(pl.concat(frames))
    invalid = df.filter(_invalid())
    if invalid.height:
        by_line = dict(lines)
        for row in invalid.iter_rows(named=True):
            rid = row["request_id"]
            why = ("no request_id" if not rid else "missing or unreadable timestamp" if row["timestamp"] is None
                   else f"request {rid}: {describe_problems(domain_problems(row))}")
            scan.bad(label, row["_line"], why)
            if rejected is not None:
                rejected.append(by_line[row["_line"]])
        df = df.filter(~_invalid())
    return df.drop("_line", "value_outside")


def _parse_ndjson(data: bytes):
    """JSON lines -> DataFrame of the log schema (timestamp still text); raises on any bad line.

    The nested lists are read as text and decoded in a second pass: several times faster than
    letting the NDJSON reader build them.
    """
    import polars as pl

    schema = polars_schema()
    nested = [name for name, t in FIELDS if t in ("attempts", "skipped")]
    flat = {**schema, "timestamp": pl.String, **{name: pl.String for name in nested}}
    return pl.read_ndjson(data, schema=flat).with_columns(pl.col(n).str.json_decode(schema[n]) for n in nested)


def _finish(df):
    """Parse the timestamp column (canonical ``...Z`` form, or any ISO offset; unreadable -> null) and mark records
    outside their domain (``value_outside``)."""
    import narwhals as nw
    import polars as pl

    ts = pl.col("timestamp")
    parsed = pl.coalesce(
        ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="us", strict=False),
        ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", strict=False).dt.convert_time_zone("UTC"),
    )
    df = df.with_columns(timestamp=parsed)
    return nw.from_native(df).with_columns(value_outside=outside_domain()).to_native()


def _invalid():
    import polars as pl

    return pl.col("request_id").is_null() | pl.col("timestamp").is_null() | pl.col("value_outside")


