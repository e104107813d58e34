"""The `modan-dicom` command line: parse options, call one library function, render with rich.

No logic lives here. Every `ModanError` the library raises becomes one line on stderr and exit
status 2; running out of memory becomes one line and exit status 1; `--debug` shows the traceback instead.

Commands check their options and cheap facts about their inputs and outputs (torch-free, in
`modan_dicom.config`, `modan_dicom.outputs` and `modan_dicom.evaluate.options`) before they import torch or
create anything. One spelling per concept: `-o/--out` for what a command writes, `--profile` for the
vocabulary profile; the old spellings (`--output`, `--vocab`) still work and are not shown in --help.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from . import __version__
from .errors import ModanError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def fail(message: str) -> NoReturn:
    """Print one error line and exit with status 2."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    sys.exit(2)


def _out_of_memory(exc: BaseException | None) -> bool:
    """MemoryError, torch's OutOfMemoryError or its CPU allocator's failure, also as the cause of another
    exception (MONAI wraps what a transform raises); recognised without importing torch."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" \
                or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class ModanGroup(click.Group):
    """A click group that renders library errors as one line (exit 2), and running out of memory as one
    line (exit 1), unless --debug is given."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug") or (ctx.obj or {}).get("debug"))
        try:
            return super().invoke(ctx)
        except ModanError as exc:
            if debug:
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - only memory exhaustion is handled; the rest re-raises
            if debug or not _out_of_memory(exc):
                raise
            # a huge allocation fails (MemoryError) before the kernel kills the process: say what to lower
            name = ctx.invoked_subcommand or ""
            command = self.get_command(ctx, name) if name else None
            has = {opt for param in (command.params if command else ()) for opt in getattr(param, "opts", ())}
            lower = [f"a smaller {opt}" if opt != "--workers" else "fewer --workers"
                     for opt in ("--workers", "--batch-size", "--image-size", "--limit") if opt in has]
            hint = f"; try {', '.join(lower[:-1])} or {lower[-1]}" if len(lower) > 1 else (f"; try {lower[0]}" if lower else "")
            console.print(f"[bold red]error:[/] out of memory while running {name or 'the command'}{hint}", soft_wrap=True)
            sys.exit(1)


class AliasOption(click.Option):
    """An option with old spellings (`aliases`) that are accepted but not shown in --help."""

    def __init__(self, param_decls: list[str], aliases: tuple[str, ...] = (), **attrs: Any) -> None:
        super().__init__(list(param_decls) + list(aliases), **attrs)
        self.aliases = frozenset(aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = self.opts
        self.opts = [name for name in shown if name not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def out_option(name: str, help: str, **attrs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-o/--out` (old spelling `--output`), the one name of what a command writes, as parameter `name`."""
    attrs.setdefault("required", True)
    return click.option("-o", "--out", name, cls=AliasOption, aliases=("--output",), help=help, **attrs)


def max_decode_failures_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--max-decode-failures SHARE` of the commands that decode an index's images (pretrain, embed)."""
    from .config import DEFAULT_MAX_DECODE_FAILURES

    return click.option("--max-decode-failures", type=click.FloatRange(0.0, 1.0), default=DEFAULT_MAX_DECODE_FAILURES,
                        show_default=True, help="Share of the images that may fail to decode (left out, listed in "
                        "decode_failures.csv); more stops the run.")


def profile_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--profile` (old spelling `--vocab`): the vocabulary profile, by name or path."""
    return click.option("--profile", "profile", cls=AliasOption, aliases=("--vocab",), default="radimagenet",
                        show_default=True, help=help)


@click.group(cls=ModanGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="modan-dicom")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Turn PACS metadata into contrastive pretraining targets, pretrain, and benchmark."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def existing_path(value: str) -> Path:
    """Helper for commands: a path that must exist (raises the one-line error otherwise)."""
    path = Path(value)
    if not path.exists():
        from .errors import SourceError

        raise SourceError(f"{value}: no such file or folder")
    return path


@contextlib.contextmanager
def progress_bar(label: str, unit: str = "files") -> Iterator[Callable[[int, int | None], None]]:
    """A transient rich progress bar; yields the `progress(done, total)` callback library functions take."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# ---- commands (one block per stage; each calls one library function) ----


# ---- pretrain ----------------------------------------------------------------------------------


def _crop_scale(value: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("give two numbers, e.g. 0.2,1.0") from None
    return low, high


@main.command()
@click.option("--index", "index_path", required=True, type=click.Path(), help="index.parquet from `modan-dicom index`.")
@out_option("out", "Run folder (config.json, metrics.csv, checkpoints/, encoder.pt): new, or a run to --resume.",
            type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["mulsupcon", "supcon", "simclr", "ce"]), default="mulsupcon", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--image-size", type=click.IntRange(min=8), default=224, show_default=True)
@click.option("--lr", type=float, default=None, help="Default 0.05 (SGD) or 1e-3 (Adam, ce).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default=None, help="Default sgd; adam for ce.")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--temperature", type=float, default=None, help="Default 0.07; 0.1 for simclr.")
@click.option("--threshold", type=float, default=0.3, show_default=True, help="Jaccard threshold τ for positives.")
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default="cosine", show_default=True)
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--stem", type=click.Choice(["paper", "torchvision"]), default="paper", show_default=True,
              help="paper: 3x3 stride-1 conv1; torchvision: 7x7 stride 2 (the authors' code).")
@click.option("--head", type=click.Choice(["mlp", "fc1000"]), default="mlp", show_default=True,
              help="mlp: 128-d projector; fc1000: the authors' loss on a 1000-d fc output.")
@click.option("--crop-scale", type=str, default="0.2,1.0", show_default=True, help="RandomResizedCrop scale (authors: 0.08,1.0).")
@profile_option("Vocabulary profile (or path) of the targets.")
@click.option("--label-axes", default="modality,anatomy", show_default=True, help="Comma list of modality, anatomy, laterality, manufacturer.")
@click.option("--root", type=click.Path(), default=None, help="Folder the index paths start from (default: the indexed source).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Decoding processes.")
@max_decode_failures_option()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(), default=None, help="Persistent MONAI cache: a second run decodes nothing.")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: on CUDA).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model.")
def pretrain(index_path: str, out: str, crop_scale: str, label_axes: str, compile_model: bool, **options: Any) -> None:
    """Pretrain a ResNet-18 encoder on an index (MulSupCon, SupCon, SimCLR or cross-entropy)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .config import PretrainConfig, check_run_folder

    config = PretrainConfig(
        index=index_path, out=out, crop_scale=_crop_scale(crop_scale), compile=compile_model,
        label_axes=tuple(a.strip() for a in label_axes.split(",") if a.strip()), **options,
    )
    check_run_folder(config.resolved())  # options, index and run folder, before torch loads
    from .train import pretrain as run_pretrain

    main_rank = int(__import__("os").environ.get("RANK", "0")) == 0
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, disable=not main_rank,
    )
    decoding = bar.add_task("decode", total=None, info="")
    training = bar.add_task("epoch", total=config.epochs, info="", visible=False)

    def show() -> None:  # on the first news: a bad index or config fails before, with no bar drawn
        if not bar.live.is_started:
            bar.start()

    def on_bank(done: int, total: int | None) -> None:
        show()
        bar.update(decoding, completed=done, total=total)

    def on_epoch(stats: Any) -> None:
        show()
        bar.update(training, completed=stats.epoch, visible=True,
                   info=f"loss {stats.loss:.4f}  lr {stats.lr:.4g}  {stats.images_per_s:.0f} img/s")

    try:
        encoder = run_pretrain(config, on_epoch=on_epoch, on_bank=on_bank)
    finally:
        bar.stop()
    if main_rank:
        console.print(f"encoder written to [bold]{encoder}[/]")


# ---- index -------------------------------------------------------------------------------------


def _archive_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the commands that talk to an archive (index URL, pull)."""
    for option in reversed([
        click.option("--modality", multiple=True, help="Archive only: keep these DICOM Modality codes (repeat, or CT,MR)."),
        click.option("--study-date", default=None, help="Archive only: Study Date range FROM-TO (YYYYMMDD or YYYY-MM-DD; a side may be empty)."),
        click.option("--calling-aet", default="MODAN", show_default=True, help="DIMSE only: our AE title."),
        click.option("--ca-bundle", type=click.Path(), default=None, help="https only: PEM file of the certificate authorities to trust."),
        click.option("--query-cap", type=click.IntRange(min=1), default=None,
                     help="Archive only: the archive's limit on matches per query, when known (default: check any answer of 100+)."),
        click.option("--max-queries", type=click.IntRange(min=1), default=None,
                     help="Archive only: the most queries this run may send (default 200,000): an archive answering in circles ends in one line."),
    ]):
        command = option(command)
    return command


@main.command("index")
@click.argument("source", type=click.Path())
@out_option("output", "The index file to write (Parquet): new, or an index to update.", type=click.Path())
@profile_option("Vocabulary profile (or path) for multi_hot.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Reading processes, this one included (folders; default 1) or concurrent queries (archives; default 4).")
@click.option("--salt", default=None, help="Pseudonym key (default: $MODAN_SALT, else .modan-salt beside the index).")
@click.option("--keep-uids", is_flag=True, help="Keep Study/Series/SOP Instance UIDs as they are (Patient ID stays pseudonymised).")
@click.option("--layout", type=click.Choice(["auto", "dicom", "radimagenet"]), default="auto", show_default=True)
@click.option("--level", type=click.Choice(["series", "instance"]), default="series", show_default=True,
              help="Archive only: one row per series or per instance.")
@click.option("--since", default=None, help="Archive only: studies from this date on, added to the census at -o.")
@click.option("--rekey", is_flag=True, help="Folders only: rebuild an existing index under another salt (refused otherwise).")
@click.option("--follow-links", is_flag=True, help="Folders only: follow symbolic links that lead out of SOURCE.")
@_archive_options
def index(source: str, output: str, profile: str, workers: int | None, salt: str | None, keep_uids: bool, layout: str,
          level: str, since: str | None, rekey: bool, follow_links: bool, modality: tuple[str, ...],
          study_date: str | None, calling_aet: str, ca_bundle: str | None, query_cap: int | None,
          max_queries: int | None) -> None:
    """Index every file under SOURCE (a folder), or take the census of an archive (SOURCE a DICOMweb URL or
    dimse://AET@HOST:PORT): one row per file, or per series, with header values, labels and status."""
    from rich.markup import escape

    from .pacs.address import is_archive

    if is_archive(source):
        from .pacs.census import run_census

        folder_only = [name for name, value in (("--rekey", rekey), ("--follow-links", follow_links)) if value]
        if folder_only:
            from .errors import ConfigError

            raise ConfigError(f"{', '.join(folder_only)} apply to a folder, not to an archive address")

        with progress_bar("census", "series") as on_progress:
            result = run_census(source, output, profile=profile, level=level, modality=list(modality),
                                study_date=study_date, since=since, salt=salt, keep_uids=keep_uids,
                                calling_aet=calling_aet, ca_bundle=ca_bundle, query_cap=query_cap,
                                workers=workers or 4, progress=on_progress, return_frame=False,
                                **({"max_queries": max_queries} if max_queries else {}))
        render_index_summary(result.summary, unit="instances" if level == "instance" else "series")
        for warning in result.summary.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        console.print(f"census written to [bold]{escape(str(result.output))}[/] ({result.series} series, "
                      f"{result.instances} instances; {result.queries} queries; {result.seconds:.1f} s; "
                      f"profile {result.meta.profile}; salt from {result.salt_source})", soft_wrap=True)
        return
    archive_only = {"--level": level != "series", "--since": since, "--modality": modality, "--study-date": study_date,
                    "--ca-bundle": ca_bundle, "--query-cap": query_cap, "--calling-aet": calling_aet != "MODAN",
                    "--max-queries": max_queries}
    given = [name for name, value in archive_only.items() if value]
    if given:
        from .errors import ConfigError

        raise ConfigError(f"{', '.join(given)} apply to an archive address, not to the folder {source}")
    from .ingest.index import run_index
    from .ingest.schema import local_path

    with progress_bar("index") as on_progress:
        result = run_index(source, output, profile=profile, workers=workers or 1, salt=salt, keep_uids=keep_uids,
                           layout=layout, progress=on_progress, return_frame=False, rekey=rekey,
                           follow_links=follow_links)
    render_index_summary(result.summary)
    for warning in result.summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(f"index written to [bold]{escape(str(result.output))}[/] ({result.files} files: {result.read} read, "
                  f"{result.reused} unchanged; {result.seconds:.1f} s; layout {result.meta.layout}, "
                  f"profile {result.meta.profile}; salt from {result.salt_source}); its paths are in "
                  f"{escape(local_path(result.output).name)} beside it (local only: share the index without it)",
                  soft_wrap=True)


@main.command("pull")
@click.argument("source")
@out_option("out_dir", "Folder for the pulled files (new, or a previous pull to complete).", type=click.Path(file_okay=False))
@click.option("--per-series", type=click.IntRange(min=1), default=1, show_default=True, help="Instances per series (the middle ones).")
@profile_option("Vocabulary profile: the series it labels are pulled.")
@click.option("--census", "census_path", type=click.Path(), default=None, help="Pull the ok series of this census (same salt).")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Concurrent retrievals.")
@click.option("--salt", default=None, help="Pseudonym and UID key (default: $MODAN_SALT, else .modan-salt beside the census or in --out).")
@click.option("--no-deidentify", is_flag=True, help="Keep the files as the archive sends them, PHI included (prints a warning).")
@_archive_options
def pull_command(source: str, out_dir: str, per_series: int, profile: str, census_path: str | None, workers: int,
                 salt: str | None, no_deidentify: bool, modality: tuple[str, ...], study_date: str | None,
                 calling_aet: str, ca_bundle: str | None, query_cap: int | None, max_queries: int | None) -> None:
    """Pull a de-identified training set from the archive at SOURCE: PER-SERIES instances of every series the
    profile labels, written to OUT with OUT/index.parquet."""
    from rich.markup import escape

    from .pacs.pull import run_pull

    if no_deidentify:
        console.print("[bold yellow]warning:[/] --no-deidentify: the pulled files keep every identifier the archive "
                      "holds (names, IDs, dates); handle them as patient data", soft_wrap=True)
    with progress_bar("pull", "instances") as on_progress:
        result = run_pull(source, out_dir, per_series=per_series, profile=profile, modality=list(modality),
                          study_date=study_date, census=census_path, workers=workers, deidentify=not no_deidentify,
                          salt=salt, calling_aet=calling_aet, ca_bundle=ca_bundle, query_cap=query_cap,
                          **({"max_queries": max_queries} if max_queries else {}),
                          progress=on_progress)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if result.errors:
        first = result.frame[result.frame["status"] == "error"]["error"].iloc[0]
        console.print(f"[yellow]warning:[/] {result.errors} instances or series failed (first: {escape(str(first))}); "
                      "run the same command again to retry them", soft_wrap=True)
    console.print(f"pulled [bold]{result.pulled}[/] instances ({result.present} already there, {result.errors} failed) "
                  f"of {result.series} series into [bold]{escape(str(result.out))}[/] in {result.seconds:.1f} s; "
                  f"{'de-identified' if result.deidentified else '[bold red]NOT de-identified[/]'}; "
                  f"index: {escape(str(result.out / 'index.parquet'))}", soft_wrap=True)
    if result.missing:
        sys.exit(1)  # something asked for is not in OUT: the same command again retries it


def render_index_summary(summary: Any, top_pairs: int = 30, unit: str = "files") -> None:
    """Print an index (or census) summary as rich tables: status, modality x anatomy, unmapped values;
    `unit` names what a row counts (files, series, instances)."""
    from rich.markup import escape
    from rich.table import Table

    status = Table(title=f"{unit} by status", title_justify="left")
    status.add_column("status")
    status.add_column(unit, justify="right")
    for name, count in summary.by_status.items():
        status.add_row(name, str(count))
    status.add_row("[bold]total", f"[bold]{summary.total}")
    out.print(status)
    if summary.by_modality_anatomy:
        # anatomy rows x modality columns, the most frequent first
        modality_totals: dict[str, int] = {}
        anatomy_totals: dict[str, int] = {}
        for (modality, anatomy), count in summary.by_modality_anatomy.items():
            modality_totals[modality or "-"] = modality_totals.get(modality or "-", 0) + count
            anatomy_totals[anatomy or "-"] = anatomy_totals.get(anatomy or "-", 0) + count
        modalities = sorted(modality_totals, key=lambda m: -modality_totals[m])
        anatomies = sorted(anatomy_totals, key=lambda a: -anatomy_totals[a])
        grid = Table(title=f"anatomy x modality (ok and unmapped {unit})", title_justify="left")
        grid.add_column("anatomy")
        for modality in modalities:
            grid.add_column(modality, justify="right")
        grid.add_column("total", justify="right")
        for anatomy in anatomies[:top_pairs]:
            cells = [summary.by_modality_anatomy.get((None if m == "-" else m, None if anatomy == "-" else anatomy), 0)
                     for m in modalities]
            grid.add_row(anatomy, *(str(c) if c else "" for c in cells), str(anatomy_totals[anatomy]))
        if len(anatomies) > top_pairs:
            grid.add_row(f"... {len(anatomies) - top_pairs} more", *([""] * (len(modalities) + 1)))
        out.print(grid)
    if summary.not_in_profile:
        outside = Table(title="outside the profile", title_justify="left")
        for column in ("modality", "anatomy", unit):
            outside.add_column(column, justify="right" if column == unit else "left")
        for (modality, anatomy), count in list(summary.not_in_profile.items())[:top_pairs]:
            outside.add_row(modality or "-", anatomy or "-", str(count))
        out.print(outside)
    if summary.top_unmapped:
        values = Table(title="top unmapped values", title_justify="left")
        for column in ("field", "value", unit):
            values.add_column(column, justify="right" if column == unit else "left")
        for field_name, pairs_list in summary.top_unmapped.items():
            for value, count in pairs_list:
                values.add_row(field_name, escape(value), str(count))
        out.print(values)


# ---- vocab: inspect, validate and try the controlled vocabulary ----
@main.group("vocab")
def vocab_group() -> None:
    """Inspect, validate and try the controlled vocabulary (vocab/*.yaml)."""


@vocab_group.command("show")
@click.option("--profile", "-p", default="radimagenet", show_default=True, help="Profile name or path.")
@click.option("--members/--no-members", default=True, show_default=True,
              help="List the full-vocabulary terms that project onto each axis.")
def vocab_show(profile: str, members: bool) -> None:
    """Show the axes of a profile and the terms that project onto them."""
    from rich.markup import escape
    from rich.table import Table

    from .vocab import load_vocabulary

    vocab = load_vocabulary(profile)
    table = Table(title=f"profile {vocab.profile}: {len(vocab.labels)} axes ({escape(vocab.source)})")
    for column in ("#", "axis", "kind", "name", "covers") + (("terms projecting here",) if members else ()):
        table.add_column(column)
    for i, info in enumerate(vocab.describe()):
        row = [str(i), info.axis, info.kind, escape(info.name), ", ".join(info.covers)]
        if members:
            row.append(", ".join(info.members))
        table.add_row(*row)
    out.print(table)


@vocab_group.command("check")
@click.argument("path", required=False)
def vocab_check(path: str | None) -> None:
    """Validate a vocabulary folder or profile file (default: the built-in vocabulary)."""
    from .vocab import check_vocabulary

    out.print(f"OK {check_vocabulary(path).line()}", soft_wrap=True, markup=False)


@vocab_group.command("map")
@click.argument("text")
@click.option("--modality", "-m", default=None, help="A DICOM Modality code (CT, MR, DX ...).")
@click.option("--profile", "-p", default="radimagenet", show_default=True, help="Profile name or path.")
@click.option("--expand-ancestors", is_flag=True, help="Also set the axes of the term's ancestors.")
def vocab_map(text: str, modality: str | None, profile: str, expand_ancestors: bool) -> None:
    """Resolve TEXT (a Body Part Examined value or a description) as the index would."""
    from rich.markup import escape
    from rich.table import Table

    from .vocab import map_text

    found = map_text(text, modality, profile, expand_ancestors)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    how = f"{found.how}: {escape(repr(found.matched))}" if found.how else "no match"
    table.add_row("anatomy", found.anatomy or "-")
    table.add_row("matched", how)
    table.add_row("ancestors", ", ".join(found.ancestors) or "-")
    table.add_row(f"axis ({found.profile})", found.anatomy_axis or "- (no place in this profile)")
    if modality is not None:
        table.add_row("modality", f"{escape(modality)} -> {found.modality or '-'} -> "
                                  f"{found.modality_axis or '- (no place in this profile)'}")
    vector = " ".join(str(int(v)) for v in found.multi_hot)
    on = [label for label, v in zip(found.labels, found.multi_hot) if v > 0.5]
    table.add_row("multi-hot", f"[{vector}]  {', '.join(on) or '(empty)'}")
    out.print(table)


# ---- synth: the synthetic PACS export (the embedded default data) ----


@main.command("synth")
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, byte-identical files.")
@click.option("--layout", type=click.Choice(["dicom", "radimagenet"]), default="dicom", show_default=True,
              help="dicom: PAT/STUDY/SER folders of DICOM files; radimagenet: CT|MR/<region>/<class>/*.png, US/<organ>/*.png.")
@click.option("--patients", type=click.IntRange(min=1), default=16, show_default=True,
              help="Patients (dicom layout): about 18 images each, so --patients 556 gives ~10,000 files.")
@click.option("--image-size", type=click.IntRange(16, 4096), default=None,
              help="Base image edge in pixels (CT/MR NxN, US 3/4N x N, XR 5/4N x N)  [default: 128; --task: 64]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes rendering and writing files (same bytes for any number).")
@click.option("--variation", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="How much series vary like a real archive's (field of view, pose, window, noise...); 0: canonical.")
@click.option("--task", type=click.Choice(["acl", "breast", "thyroid"]), default=None,
              help="Write a downstream-task replica in RadImageNet's layout to OUT/<task>/ instead of an export.")
@click.option("--images", "n_images", type=click.IntRange(min=20), default=None,
              help="--task: number of images (default acl 300, breast 260, thyroid 349; paper: 1021, 779, 349).")
def synth(out_dir: str, seed: int, layout: str, patients: int, image_size: int | None, workers: int,
          variation: float, task: str | None, n_images: int | None) -> None:
    """Write a deterministic synthetic PACS export (or RadImageNet-style folders) to OUT, with manifest.csv.

    With --task, write a synthetic replica of a downstream task (acl, breast, thyroid) instead."""
    from rich.markup import escape
    from .synth import synth_export

    if task is not None:
        from .synth.tasks import synth_task

        with progress_bar(f"synth {task}", "images") as on_progress:
            folder = synth_task(task, out_dir, seed=seed, image_size=image_size or 64, n_images=n_images,
                                progress=on_progress)
        out.print(f"synth: {task} replica written to {escape(str(folder))} (radimagenet layout, seed {seed})",
                  soft_wrap=True)
        return
    image_size = image_size or 128
    with progress_bar("synth") as on_progress:
        manifest = synth_export(out_dir, seed=seed, layout=layout, n_patients=patients, image_size=image_size,
                                workers=workers, variation=variation, progress=on_progress)
    counts = manifest["status"].value_counts()
    by_status = ", ".join(f"{counts[s]} {s}" for s in ("ok", "unmapped", "non_image", "not_dicom", "error") if s in counts)
    out.print(f"synth: {len(manifest)} files ({by_status}) written to {escape(out_dir)} "
              f"(layout {layout}, seed {seed}; ground truth in manifest.csv)", soft_wrap=True)


# ---- demo ----------------------------------------------------------------------------------------


@main.command("demo")
@out_option("out_dir", "A new folder for everything the demo writes.", required=False, default="modan-demo",
            show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patients", type=click.IntRange(min=4), default=24, show_default=True, help="Synthetic patients (~18 files each).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Pretraining epochs per method.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True, help="Benchmark repeats (the paper: 10).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def demo(out_dir: str, seed: int, patients: int, epochs: int, repeats: int, workers: int) -> None:
    """The whole pipeline on synthetic data: synth, index, pretrain, benchmark, report, UMAP (CPU, minutes)."""
    from rich.markup import escape
    from rich.table import Table

    from .demo import run_demo

    cells: dict[str, Any] = {"done": 0, "total": None}

    def on_progress(done: int, total: int | None) -> None:
        cells.update(done=done, total=total)

    with console.status("demo") as status:
        def on_cell(row: dict[str, Any]) -> None:  # the benchmark is the long step: a line per cell off a terminal
            line = escape(cell_line(row, cells["done"] + 1, cells["total"]))
            status.update(line) if console.is_terminal else console.print(f"  {line}", soft_wrap=True)

        result = run_demo(out_dir, seed=seed, patients=patients, epochs=epochs, repeats=repeats, workers=workers,
                          step=lambda text: (status.update(text), console.print(f"· {text}")),
                          on_cell=on_cell, progress=on_progress)
    table = Table(title="demo artefacts", title_justify="left")
    table.add_column("what")
    table.add_column("where", overflow="fold")
    table.add_column("", overflow="fold")
    for name, path in result.artefacts.items():
        table.add_row(name, escape(str(path)), escape(result.notes.get(name, "")))
    out.print(table)


# ---- embed and visualize: the paper's Figure 2 ---------------------------------------------------


@main.command("embed")
@click.option("--index", "index_path", required=True, type=click.Path(), help="index.parquet from `modan-dicom index`.")
@click.option("--init", "inits", multiple=True, required=True,
              help="NAME=encoder.pt, scratch, scratch:SEED or imagenet (or NAME=scratch / NAME=imagenet); repeat.")
@out_option("output", "The embeddings file to write (Parquet): new, or one embed wrote.", type=click.Path())
@click.option("--image-size", type=click.IntRange(min=16), default=224, show_default=True,
              help="Side of the images fed to the encoders (use the pretraining image size).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many images, stratified by modality/anatomy.")
@profile_option("Vocabulary profile (or path) of the labels.")
@click.option("--root", type=click.Path(), default=None, help="Folder the index paths start from (default: the indexed source).")
@click.option("--imagenet-weights", type=click.Path(), default=None, help="torchvision's resnet18-f37072fd.pth (default: the torch hub cache).")
@click.option("--stem", type=click.Choice(["paper", "torchvision"]), default="paper", show_default=True, help="Stem of scratch encoders.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Decoding processes.")
@max_decode_failures_option()
@click.option("--cache-dir", type=click.Path(), default=None, help="Persistent MONAI cache (shared with pretrain).")
@click.option("--seed", type=int, default=0, show_default=True, help="The --limit sample and scratch init.")
def embed_command(index_path: str, inits: tuple[str, ...], output: str, **options: Any) -> None:
    """Write penultimate-layer features of an index's images for one or more encoders (Parquet)."""
    from rich.markup import escape

    from .evaluate.options import check_init_files, parse_inits
    from .ingest.schema import read_index_meta
    from .outputs import embeddings_output

    encoders = parse_inits(inits)  # every check before torch loads
    read_index_meta(index_path)  # exists and is an index
    check_init_files(encoders)
    embeddings_output(output)
    from .evaluate.embed import embed, read_embeddings_meta

    with progress_bar("embed", "images") as on_progress:
        path = embed(index_path, encoders, output, progress=on_progress, **options)
    meta = read_embeddings_meta(path)
    console.print(f"embeddings written to [bold]{escape(str(path))}[/] ({meta['n_images']} images × "
                  f"{len(meta['encoders'])} encoders: {escape(', '.join(e['name'] for e in meta['encoders']))}; "
                  f"{meta['feature_dim']}-d, image size {meta['image_size']}, profile {escape(meta['profile'])})",
                  soft_wrap=True)


@main.command("visualize")
@click.argument("embeddings", type=click.Path())
@out_option("output", "The PNG to write: new, or a figure modan-dicom wrote.", type=click.Path())
@click.option("--encoders", default=None, help="Comma list of encoders, in panel order (default: all, file order).")
@click.option("--n-neighbors", type=click.IntRange(min=2), default=15, show_default=True)
@click.option("--min-dist", type=click.FloatRange(min=0.0), default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="UMAP random_state.")
@click.option("--point-size", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Marker area (default: by point count).")
@click.option("--dpi", type=click.IntRange(min=30), default=150, show_default=True)
def visualize_command(embeddings: str, output: str, encoders: str | None, **options: Any) -> None:
    """Draw UMAPs of the features in EMBEDDINGS, one panel per encoder, coloured by modality/anatomy (PNG)."""
    from rich.markup import escape

    from .outputs import figure_output

    figure_output(output)  # before UMAP and matplotlib load
    from .evaluate.visualize import visualize

    names = [name.strip() for name in encoders.split(",") if name.strip()] if encoders else None
    with progress_bar("umap", "panels") as on_progress:
        path = visualize(embeddings, output, encoders=names, progress=on_progress, **options)
    console.print(f"figure written to [bold]{escape(str(path))}[/]", soft_wrap=True)


# ---- report: paper-style tables, fold-level comparison, AUC intervals, ROC curves -------------


def render_paper_tables(tables: list[Any]) -> None:
    """Print `modan_dicom.evaluate.report.PaperTable`s as rich tables (bold where the paper is bold)."""
    from rich.markup import escape
    from rich.table import Table

    for paper in tables:
        table = Table(title=paper.title, title_justify="left")
        for k, name in enumerate(paper.header):
            table.add_column(escape(name), justify="left" if k == 0 else "right", no_wrap=k == 0)
        for row in paper.rows:
            table.add_row(*(f"[bold]{escape(c.text)}[/]" if c.bold else escape(c.text) for c in row))
        out.print(table)


@main.command("report")
@click.argument("runs_csv", metavar="RUNS.csv", type=click.Path())
@click.option("--reference", required=True, help="The init every other init is tested against (e.g. mulsupcon).")
@click.option("--alternative", type=click.Choice(["two-sided", "greater", "less"]), default="two-sided",
              show_default=True, help="Wilcoxon alternative on (reference - init); greater: the reference is better.")
@click.option("--predictions", type=click.Path(), default=None,
              help="Per-image test predictions (default: predictions.parquet beside RUNS.csv, if any).")
@out_option("out_dir", "Report folder: new, a previous report, or the benchmark's results folder.",
            type=click.Path(file_okay=False))
@click.option("--n-boot", type=click.IntRange(min=1), default=2000, show_default=True, help="Group-bootstrap replicates.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def report(runs_csv: str, reference: str, alternative: str, predictions: str | None, out_dir: str, n_boot: int,
           seed: int) -> None:
    """Recompute the paper's tables (mean AUC, Wilcoxon p) from RUNS.csv and write the report to -o."""
    from rich.markup import escape

    from .evaluate.report import default_predictions, write_report

    source = predictions if predictions is not None else default_predictions(runs_csv)
    with console.status("report"):
        result = write_report(runs_csv, out_dir, reference=reference, alternative=alternative, predictions=source,
                              n_boot=n_boot, seed=seed)
    render_paper_tables(result.tables)
    if source is None:
        console.print("no predictions: ci.csv and ROC curves skipped (give --predictions)")
    console.print(f"report written to [bold]{escape(str(result.out_dir))}[/]: "
                  + ", ".join(escape(p.name) for p in result.files), soft_wrap=True)


# ---- benchmark: fine-tune and linear-probe every init on every task, 5 folds x repeats ----------


class CellTable:
    """The live table of a benchmark sweep: one line per (task, init, mode) with its cells done, mean and
    last AUC and seconds per cell, under a line with the cells done of all and the elapsed time."""

    def __init__(self) -> None:
        import time

        self.started = time.monotonic()
        self.done, self.total = 0, None
        self.groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}

    def add(self, row: dict[str, Any]) -> None:
        self.groups.setdefault((str(row["task"]), str(row["init"]), str(row["mode"])), []).append(row)

    def render(self) -> Any:
        import math
        import time

        from rich.markup import escape
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        of = f"/{self.total}" if self.total is not None else ""
        table = Table(title=f"cells {self.done}{of}, {elapsed:.0f} s", title_justify="left")
        for name, justify in (("task", "left"), ("init", "left"), ("mode", "left"), ("cells", "right"),
                              ("mean AUC", "right"), ("last AUC", "right"), ("s/cell", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for (task, init, mode), rows in self.groups.items():
            aucs = [float(r["auc"]) for r in rows if r["auc"] is not None and not math.isnan(float(r["auc"]))]
            mean = f"{sum(aucs) / len(aucs):.3f}" if aucs else "-"
            last = f"{aucs[-1]:.3f}" if aucs else "-"
            seconds = sum(float(r["seconds"]) for r in rows) / len(rows)
            table.add_row(escape(task), escape(init), mode, str(len(rows)), mean, last, f"{seconds:.1f}")
        return table


def cell_line(row: dict[str, Any], done: int, total: int | None) -> str:
    """One plain line for a finished benchmark cell (logs, pipes: no terminal to redraw a table on)."""
    of = f"/{total}" if total is not None else ""
    return (f"cell {done}{of}: {row['task']} {row['init']} {row['mode']} repeat {row['repeat']} fold {row['fold']}: "
            f"AUC {float(row['auc']):.3f} ({float(row['seconds']):.1f} s)")


@contextlib.contextmanager
def cell_progress() -> Iterator[tuple[Callable[[int, int | None], None], Callable[[dict[str, Any]], None]]]:
    """The `progress` and `on_cell` callbacks of a benchmark: a live `CellTable` on a terminal, else one
    plain line per finished cell on stderr."""
    from rich.markup import escape

    table = CellTable()
    if not console.is_terminal:
        def on_progress(done: int, total: int | None) -> None:
            table.done, table.total = done, total

        def on_line(row: dict[str, Any]) -> None:
            console.print(escape(cell_line(row, table.done + 1, table.total)), soft_wrap=True)

        yield on_progress, on_line
        return
    from rich.live import Live

    with Live(table.render(), console=console, transient=True, refresh_per_second=4) as live:
        def on_live_progress(done: int, total: int | None) -> None:
            table.done, table.total = done, total
            live.update(table.render())

        def on_cell(row: dict[str, Any]) -> None:
            table.add(row)
            live.update(table.render())

        yield on_live_progress, on_cell


@main.command("benchmark")
@click.option("--tasks", default="acl,breast,thyroid", show_default=True, help="Comma list of tasks (names or paths).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder holding the task folders (or one task's data).")
@click.option("--init", "inits", multiple=True, required=True,
              help="NAME=encoder.pt, scratch[:SEED] or imagenet; repeatable. The first is the reference by default.")
@click.option("--mode", "modes", default="finetune,linear", show_default=True, help="Comma list: finetune, linear.")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--step-size", type=click.IntRange(min=1), default=5, show_default=True, help="StepLR step (epochs).")
@click.option("--gamma", type=float, default=0.1, show_default=True, help="StepLR factor.")
@click.option("--image-size", type=click.IntRange(min=8), default=224, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds of every (repeat, fold).")
@click.option("--reference", default=None, help="The init the report tests the others against (default: the first).")
@click.option("--imagenet-weights", type=click.Path(), default=None, help="torchvision's resnet18-f37072fd.pth.")
@click.option("--stem", type=click.Choice(["paper", "torchvision"]), default="paper", show_default=True,
              help="conv1 of scratch encoders.")
@click.option("--layout", default="auto", show_default=True, help="Dataset layout (see load_task).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Decoding processes.")
@click.option("--resume", is_flag=True, help="Skip the cells the output folder's runs.csv already lists.")
@out_option("out_dir", "Results folder: new, or one to --resume.", type=click.Path(file_okay=False))
def benchmark_command(tasks: str, data_dir: str, inits: tuple[str, ...], modes: str, out_dir: str,
                      **options: Any) -> None:
    """Fine-tune and linear-probe each --init on each task (5 folds x --repeats); write runs, predictions, report."""
    from rich.markup import escape

    from .evaluate.options import check_benchmark_options, parse_inits

    specs = parse_inits(inits)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    check_benchmark_options(names, specs, out_dir, modes=mode_list, resume=options["resume"],
                            reference=options["reference"], data_dir=data_dir)  # before torch loads
    from .evaluate.benchmark import benchmark
    from .evaluate.report import read_runs
    from .evaluate.stats import summary_table

    with cell_progress() as (on_progress, on_cell):
        result = benchmark(names, data_dir, specs, out_dir, modes=mode_list, progress=on_progress, on_cell=on_cell,
                           **options)
    from .evaluate.report import paper_tables

    reference = options["reference"] or next(iter(specs))
    render_paper_tables(paper_tables(summary_table(read_runs(result / "runs.csv"), reference), reference))
    console.print(f"results written to [bold]{escape(str(result))}[/]: runs.csv, predictions.parquet, summary.md, "
                  "summary.csv, folds.csv, ci.csv, roc_*.png", soft_wrap=True)
