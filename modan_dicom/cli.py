"""The `modan-dicom` command line: parse options, call one library function, render with rich.

No logic lives here. Every `ModanError` the library raises becomes one line on stderr and exit
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
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


class ModanGroup(click.Group):
    """A click group that renders library errors as one line (exit 2) unless --debug is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModanError as exc:
            if ctx.params.get("debug") or (ctx.obj or {}).get("debug"):
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)


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
@click.option("--out", required=True, type=click.Path(), help="Run folder (config.json, metrics.csv, checkpoints/, encoder.pt).")
@click.option("--method", type=click.Choice(["mulsupcon", "supcon", "simclr", "ce"]), default="mulsupcon", show_default=True)
@click.option("--epochs", type=int, default=1000, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--image-size", type=int, default=224, show_default=True)
@click.option("--lr", type=float, default=None, help="Default 0.05 (SGD) or 1e-3 (Adam, ce).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default=None, help="Default sgd; adam for ce.")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--temperature", type=float, default=None, help="Default 0.07; 0.1 for simclr.")
@click.option("--threshold", type=float, default=0.3, show_default=True, help="Jaccard threshold τ for positives.")
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default="cosine", show_default=True)
@click.option("--warmup-epochs", type=int, default=10, show_default=True)
@click.option("--stem", type=click.Choice(["paper", "torchvision"]), default="paper", show_default=True,
              help="paper: 3x3 stride-1 conv1; torchvision: 7x7 stride 2 (the authors' code).")
@click.option("--head", type=click.Choice(["mlp", "fc1000"]), default="mlp", show_default=True,
              help="mlp: 128-d projector; fc1000: the authors' loss on a 1000-d fc output.")
@click.option("--crop-scale", type=str, default="0.2,1.0", show_default=True, help="RandomResizedCrop scale (authors: 0.08,1.0).")
@click.option("--vocab", "profile", default="radimagenet", show_default=True, help="Vocabulary profile or path.")
@click.option("--label-axes", default="modality,anatomy", show_default=True, help="Comma list of modality, anatomy, laterality, manufacturer.")
@click.option("--root", type=click.Path(), default=None, help="Folder the index paths start from (default: the indexed source).")
@click.option("--workers", type=int, default=2, show_default=True, help="Decoding workers.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(), default=None, help="Persistent MONAI cache: a second run decodes nothing.")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--checkpoint-every", type=int, default=10, show_default=True)
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: on CUDA).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model.")
def pretrain(index_path: str, out: str, crop_scale: str, label_axes: str, compile_model: bool, **options: Any) -> None:
    """Pretrain a ResNet-18 encoder on an index (MulSupCon, SupCon, SimCLR or cross-entropy)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .config import PretrainConfig
    from .train import pretrain as run_pretrain

    config = PretrainConfig(
        index=index_path, out=out, crop_scale=_crop_scale(crop_scale), compile=compile_model,
        label_axes=tuple(a.strip() for a in label_axes.split(",") if a.strip()), **options,
    )
    main_rank = int(__import__("os").environ.get("RANK", "0")) == 0
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, disable=not main_rank,
    ) as bar:
        decoding = bar.add_task("decode", total=None, info="")
        training = bar.add_task("epoch", total=config.epochs, info="", visible=False)

        def on_bank(done: int, total: int | None) -> None:
            bar.update(decoding, completed=done, total=total)

        def on_epoch(stats: Any) -> None:
            bar.update(training, completed=stats.epoch, visible=True,
                       info=f"loss {stats.loss:.4f}  lr {stats.lr:.4g}  {stats.images_per_s:.0f} img/s")

        encoder = run_pretrain(config, on_epoch=on_epoch, on_bank=on_bank)
    if main_rank:
        console.print(f"encoder written to [bold]{encoder}[/]")
