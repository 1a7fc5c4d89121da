"""Run the dashboard notebooks headless and publish them: executed .ipynb, self-contained HTML, an index.

``run(["spend", "latency"], log_dir, out_dir, params)`` executes each shipped notebook (``toolkit.resources``)
through papermill on the ``python3`` kernel of this interpreter, with its ``parameters`` cell overridden, then
exports HTML with nbconvert; up to one notebook per core at once (``jobs``), each job a thread with one kernel.
The HTML needs no network and no JavaScript: charts are inline SVG (drawn by vl-convert in the notebook, with native
hover titles for the tooltips), tables are great_tables HTML (a cut table's whole CSV is written beside the page: the
runner sets ``tables_dir``), and the template drops the CDN scripts (require.js, MathJax, widget manager) that
nbconvert would otherwise link.  The index lists each report with the period and headline numbers its notebook
showed (``headline``).  ``run_all`` is what ``make demo`` calls.
"""
from __future__ import annotations

import html
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import BadInput, NotebookFailed, ReportError
from .resources import notebook_dir
from .routelog import parse_period

# report name -> (notebook, title)
REPORTS: dict[str, tuple[str, str]] = {
    "spend": ("spend_review", "Spend review"),
    "latency": ("latency", "Latency and reliability"),
    "quality": ("quality", "Quality"),
    "what-if": ("what_if", "What if: cost projections"),
    "readiness": ("readiness", "Launch readiness"),
    "research": ("routing_research", "Routing research: cost-quality frontier"),
}
# started before the others when notebooks run concurrently: the longest (it replays and trains over the outcome
# data), so the dashboards fill the other cores around it instead of leaving it alone at the end
START_FIRST = ("research",)
# parameters that name files: made absolute against the caller's working directory (notebooks run in notebooks/)
PATH_PARAMS = {"log_dir", "policy_path", "quality_dir", "scenarios_path", "out_dir", "tables_dir", "gsm8k_outcomes",
               "arena_outcomes", "overrides_path"}
# what the runner sets unless told otherwise (tables_dir: the report folder, so each full table's CSV sits beside
# its page)
RUNNER_DEFAULTS = {"interactive": False}
HEADLINE_KEY = "routekit_headline"   # output metadata of the line a notebook shows with headline()
KERNEL = "python3"

# nbconvert's lab template, minus every script it would fetch from a CDN, with SVG inline (not an <img>, so the
# marks' <title> tooltips work and a test can count them).  Our SVG comes from vl-convert, not from user input.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block data_svg scoped -%}
<div class="jp-RenderedSVG jp-OutputArea-output {{ extra_class }}" data-mime-type="image/svg+xml">
{{ output.data['image/svg+xml'] }}
</div>
{%- endblock data_svg -%}
"""


@dataclass(frozen=True)
class Headline:
    """A report's period and its two or three headline numbers: one markdown line in the notebook, and what the
    index page shows for that report (read back from the executed notebook's output metadata)."""

    period: str
    numbers: dict[str, str]

    def markdown(self) -> str:
        from .tables import markdown_money

        return markdown_money(" · ".join([f"**Period** {self.period}",
                                          *(f"**{k}** {v}" for k, v in self.numbers.items())]))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        return ({"text/markdown": self.markdown(), "text/plain": self.markdown()},
                {HEADLINE_KEY: {"period": self.period, "numbers": list(self.numbers.items())}})


def headline(period: Any, numbers: dict[str, str]) -> Headline:
    return Headline(str(period), dict(numbers))


def read_headline(notebook: Path) -> Headline | None:
    """The headline an executed notebook showed, if any."""
    import json

    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    for cell in cells:
        for output in cell.get("outputs", ()):
            found = output.get("metadata", {}).get(HEADLINE_KEY)
            if found:
                return Headline(found["period"], dict(found["numbers"]))
    return None


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    notebook: Path      # the executed notebook
    html: Path
    seconds: float      # papermill wall time (kernel start-up included)
    export_seconds: float


def names(which: str | Iterable[str]) -> list[str]:
    """``"all"``, one report name, or several."""
    asked = [which] if isinstance(which, str) else list(which)
    if "all" in asked:
        return list(REPORTS)
    unknown = [n for n in asked if n not in REPORTS]
    if unknown:
        raise ReportError(f"unknown report {', '.join(unknown)}; choose from {', '.join(REPORTS)} or all")
    return list(dict.fromkeys(asked))


def parse_value(text: str) -> Any:
    """A ``-p key value`` from the command line: None, true/false, an int, a float, else the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def notebook_parameters(name: str) -> dict[str, Any]:
    """The parameters a report's notebook declares (its ``parameters`` cell), with their defaults."""
    import papermill

    info = papermill.inspect_notebook(str(notebook_dir() / f"{REPORTS[name][0]}.ipynb"))
    return {k: v["default"] for k, v in info.items()}


def _resolve(params: dict[str, Any], base: Path) -> dict[str, Any]:
    return {k: (str((base / v).resolve()) if k in PATH_PARAMS and isinstance(v, str) and v else v)
            for k, v in params.items()}


def ensure_kernel(name: str = KERNEL) -> None:
    """Make sure the kernel named ``name`` exists; install this interpreter's ipykernel spec into its own prefix
    when it does not (offline: the spec is a small JSON file)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install

    install(kernel_name=name, prefix=sys.prefix)


def to_html(notebook: Path, html_path: Path, title: str) -> Path:
    """Self-contained HTML of an executed notebook (inputs hidden: a reviewer reads findings, charts, tables)."""
    import jinja2
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.pop("widgets", None)  # widget state would pull the widget manager from a CDN
    nb.metadata["title"] = title
    exporter = _exporter()(template_name="lab", extra_loaders=[jinja2.DictLoader({"routekit.html.j2": TEMPLATE})],
                           template_file="routekit.html.j2", exclude_input=True, exclude_input_prompt=True,
                           exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def _exporter() -> type:
    """nbconvert's HTMLExporter without its last step, which parses the whole page again with BeautifulSoup only to
    add default alt texts and tabindex: two thirds of exporting a page of inline SVG charts (3 MB).  The same two
    edits are made on the text here; with an nbconvert whose internals differ, its own export runs."""
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class Exporter(HTMLExporter):
        def from_notebook_node(self, nb: Any, resources: Any = None, **kw: Any) -> tuple[str, dict]:
            try:
                info = nb.metadata.get("language_info", {})
                self.register_filter("highlight_code", self.filters.get("highlight_code", Highlight2HTML(
                    pygments_lexer=info.get("pygments_lexer", info.get("name")), parent=self)))
                resources = self._init_resources(resources)
                self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                    notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            except AttributeError:
                return super().from_notebook_node(nb, resources, **kw)
            page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            page = re.sub(r"<img(?![^>]*\balt=)", '<img alt="No description has been provided for this image"', page)
            page = re.sub(r'(<div class="[^"]*\bjp-(?:Cell-inputWrapper|OutputArea-output)\b[^"]*")', r'\1 tabindex="0"',
                          page)
            return page, resources

    return Exporter


def run(which: str | Iterable[str], log_dir: str | Path, out_dir: str | Path = "reports",
        params: dict[str, Any] | None = None, progress: bool = True, base: str | Path | None = None,
        jobs: int | None = None) -> list[Report]:
    """Execute and publish the reports ``which`` ("all", a name or names) over the route log ``log_dir``.

    ``params`` override notebook parameters by name (a parameter no chosen notebook declares is an error); paths
    in them are relative to ``base`` (the working directory).  Writes ``out_dir/<notebook>.ipynb``, ``.html`` and
    ``out_dir/index.html``; with the notebook parameter ``out_dir`` also PNG copies of the charts (for slides).
    Up to ``jobs`` notebooks run at once (default: the number of cores), one kernel per job, reused from one
    notebook to the next with its names reset (imported modules stay: start-up and imports are paid once per job);
    the list returned keeps the order asked (``names``), whatever order they finish in.  A notebook that fails
    leaves its executed .ipynb (with the traceback); the others still run; then NotebookFailed.
    """
    import queue
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    chosen = names(which)
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ReportError(f"jobs must be at least 1, not {jobs}")
    base = Path(base or Path.cwd())
    log = (base / log_dir).resolve()
    if not log.is_dir():
        raise ReportError(f"route log {log}: no such directory (give --log DIR, a directory of date=YYYY-MM-DD/)")
    out = (base / out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    declared = {n: notebook_parameters(n) for n in chosen}
    given = dict(params or {})
    stray = sorted(set(given) - set().union(*(set(p) for p in declared.values())))
    if stray:
        known = sorted(set().union(*(set(p) for p in declared.values())))
        raise ReportError(f"unknown parameter {', '.join(stray)} for {', '.join(chosen)}; known: {', '.join(known)}")
    try:  # before a kernel starts
        parse_period(given.get("since"), given.get("until"))
    except BadInput as e:
        raise ReportError(str(e)) from None
    ensure_kernel()
    wanted = {**RUNNER_DEFAULTS, "log_dir": str(log), "tables_dir": str(out), **given}
    jobs = min(jobs, len(chosen))
    finished: dict[str, Report | str] = {}
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    started = sorted(chosen, key=lambda n: n not in START_FIRST)
    for name in started:
        todo.put(name)
    stop, lock = threading.Event(), threading.Lock()
    # one notebook at a time shows its cells' bar; several at once only the bar over notebooks
    cell_bars = progress and jobs == 1

    def work() -> None:
        """One worker: notebooks from the queue one after another, in one kernel."""
        with _Kernel() as kernel:
            while not stop.is_set():
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                values = _resolve({k: v for k, v in wanted.items() if k in declared[name]}, base)
                finished[name] = _publish(name, values, out, log, cell_bars, kernel.take())
                with lock:
                    bar.set_postfix_str(", ".join(n for n in started if n not in finished), refresh=False)
                    bar.update(1)

    with tqdm(total=len(chosen), desc="reports", unit="notebook", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="report") as pool:
        bar.set_postfix_str(", ".join(started))   # what is still to finish
        workers = [pool.submit(work) for _ in range(jobs)]
        try:
            for worker in as_completed(workers):
                worker.result()
        except BaseException:
            # an error that is not a notebook's own (a dead kernel, Ctrl-C): start no more notebooks
            stop.set()
            raise
    done = [r for n in chosen if isinstance(r := finished[n], Report)]
    failed = [r for n in chosen if isinstance(r := finished[n], str)]
    write_index(out, done, log)
    if failed:
        raise NotebookFailed("; ".join(failed))
    return done


class _Kernel:
    """A worker's kernel, kept for its notebooks one after another: starting a kernel and importing polars, altair
    and the toolkit cost ~2 s a notebook.  The first notebook starts it (nbclient, in the notebooks' folder);
    before each next one its names are reset (``%reset -f``: imported modules stay).  A kernel that died or does
    not answer is replaced by a new one."""

    def __init__(self) -> None:
        self.km: Any = None

    def __enter__(self) -> "_Kernel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def take(self) -> Any:
        """The kernel manager for the next notebook (papermill's ``km``)."""
        if self.km is not None and not self._reset():
            self.close()
        if self.km is None:
            from jupyter_client.manager import AsyncKernelManager

            self.km = AsyncKernelManager(kernel_name=KERNEL)
        return self.km

    def _reset(self) -> bool:
        from jupyter_client import BlockingKernelClient
        from jupyter_core.utils import run_sync

        if not self.km.has_kernel or not run_sync(self.km.is_alive)():
            return False
        kc = BlockingKernelClient()
        kc.load_connection_info(self.km.get_connection_info())
        kc.start_channels()
        try:
            reply = kc.execute_interactive("get_ipython().run_line_magic('reset', '-f')", store_history=False,
                                           timeout=30, output_hook=lambda msg: None)
            return reply["content"]["status"] == "ok"
        except Exception:  # noqa: BLE001 — a kernel that does not answer is replaced, whatever the reason
            return False
        finally:
            kc.stop_channels()

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            from jupyter_core.utils import run_sync

            run_sync(self.km.shutdown_kernel)(now=True)
        self.km = None


def _publish(name: str, values: dict[str, Any], out: Path, log: Path, cell_bar: bool, km: Any) -> Report | str:
    """Execute one report's notebook into ``out`` in the kernel of ``km`` (started here if it is not running) and
    export its page: the Report, or why it failed."""
    import papermill

    notebook, title = REPORTS[name]
    executed = out / f"{notebook}.ipynb"
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook_dir() / f"{notebook}.ipynb"), str(executed), parameters=values,
                                   kernel_name=KERNEL, km=km, log_output=False,
                                   # the kernel's working directory, not papermill's cwd= (a process-wide chdir,
                                   # which concurrent runs would undo under each other)
                                   resources={"metadata": {"path": str(notebook_dir())}},
                                   # keep the kernel's own log lines (an unencrypted-TCP warning at start, a
                                   # KeyboardInterrupt at shutdown) off the console: errors reach the notebook
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                                   # one write at the end: validating and writing the notebook after every
                                   # cell cost a quarter of a chart-heavy run (papermill still writes it on a
                                   # failure, and every 30 s)
                                   request_save_on_cell_execute=False,
                                   progress_bar={"desc": f"  {name}", "leave": False} if cell_bar else False)
    except papermill.PapermillExecutionError as e:
        # the other reports still run; the executed notebook shows the failing cell with its traceback
        return f"{name}: cell {e.exec_count} failed: {e.ename}: {e.evalue} (see {executed})"
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    page = to_html(executed, out / f"{notebook}.html", title)
    add_damage_footer(page, log)
    return Report(name, title, executed, page, seconds, time.perf_counter() - t1)


def add_damage_footer(page: Path, log: Path) -> None:
    """End an HTML report with one line saying what its numbers leave out: the damaged files, bad lines and records
    outside their domain the rollup build skipped (``rollups.damage``), each named, or that nothing was skipped."""
    from .rollups import damage

    found = damage(log)
    if found.skipped:
        items = "".join(f"<li><code>{html.escape(x)}</code></li>" for x in found.details())
        line = (f"<p><strong>Not in these numbers:</strong> {html.escape(found.summary())} in the route log "
                f"(the files are untouched; <code>routekit log scan</code> lists them):</p><ul>{items}</ul>")
    else:
        line = "<p>Route log: every file and line was read, nothing skipped.</p>"
    text = page.read_text(encoding="utf-8")
    at = text.rfind("</body>")
    footer = f'<footer class="routekit-damage" style="margin: 2em; color: #555">{line}</footer>\n'
    page.write_text(text[:at] + footer + text[at:] if at >= 0 else text + footer, encoding="utf-8")


def run_all(log_dir: str | Path, out_dir: str | Path = "reports", params: dict[str, Any] | None = None,
            jobs: int | None = None) -> list[Path]:
    """Every report over ``log_dir``; returns the paths written (notebooks, HTML pages, index.html last)."""
    reports = run("all", log_dir, out_dir, params, jobs=jobs)
    return [p for r in reports for p in (r.notebook, r.html)] + [Path(out_dir).resolve() / "index.html"]


def write_index(out: Path, reports: list[Report], log: Path) -> Path:
    """``out/index.html`` linking every HTML report found in ``out`` (this run's and earlier ones), each with its
    period and headline numbers, so a reader knows where to click first."""
    ran = {r.html.name: r for r in reports}
    rows = []
    for name, (notebook, title) in REPORTS.items():
        page = out / f"{notebook}.html"
        if not page.exists():
            continue
        r = ran.get(page.name)
        when = datetime.fromtimestamp(page.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        took = f"{r.seconds:.1f} s" if r else "earlier run"
        head = read_headline(out / f"{notebook}.ipynb")
        numbers = "".join(f'<div><span class="muted">{html.escape(k)}</span> <b>{html.escape(v)}</b></div>'
                          for k, v in (head.numbers.items() if head else ()))
        rows.append(f'<tr><td><a href="{html.escape(page.name)}">{html.escape(title)}</a><div class="muted">'
                    f'{html.escape(head.period) if head else ""}</div></td><td class="numbers">{numbers}</td>'
                    f'<td><a href="{html.escape(notebook)}.ipynb">notebook</a><div class="muted">{when} · {took}'
                    f'</div></td></tr>')
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>routekit reports</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2.5em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ text-align: left; padding: .55em .8em;
vertical-align: top; border-bottom: 1px solid #ddd; }} th {{ color: #555; font-weight: 600; }} a {{ color: #1f5fa8; }}
.muted {{ color: #666; font-size: .9em; }} .numbers div {{ margin: .1em 0; }}
</style></head><body>
<h1>routekit reports</h1>
<p class="muted">Route log <code>{html.escape(str(log))}</code> · generated {generated}</p>
<table><tr><th>Report and period</th><th>Headline numbers</th><th>Source, written, run time</th></tr>
{chr(10).join(rows)}
</table>
<p class="muted">Each page opens offline from disk: charts are inline SVG (hover a mark for its numbers).</p>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path

