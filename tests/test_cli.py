"""The command line's promises: options checked before torch loads and before anything is created, one
spelling per concept, outputs of the user's never replaced, one line when memory runs out, and plain
progress lines when stderr is not a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from modan_dicom.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run_python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                                "OMP_NUM_THREADS": "1"})


# ---- item 14: validation before torch, nothing created -----------------------------------------


def test_bad_options_fail_fast_without_torch_and_create_nothing(tmp_path: Path, small_index: Path) -> None:
    """Each case exits 2 within a fraction of a second, torch never imported, no output folder made."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"mine": true}')
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    cases = {
        "workers -1": ["pretrain", "--index", str(small_index), "-o", "runs/a", "--workers", "-1"],
        "epochs 0": ["pretrain", "--index", str(small_index), "-o", "runs/b", "--epochs", "0"],
        "bad label axis": ["pretrain", "--index", str(small_index), "-o", "runs/c", "--label-axes", "colour"],
        "missing index": ["pretrain", "--index", "nope.parquet", "-o", "runs/d"],
        "foreign run folder": ["pretrain", "--index", str(small_index), "-o", str(foreign)],
        "embed bad init": ["embed", "--index", str(small_index), "--init", "bogus", "-o", "e/x.parquet"],
        "embed missing encoder": ["embed", "--index", str(small_index), "--init", "a=gone.pt", "-o", "e/x.parquet"],
        "embed foreign output": ["embed", "--index", str(small_index), "--init", "scratch", "-o", "notes.csv"],
        "benchmark bad mode": ["benchmark", "--data", str(tmp_path), "--init", "scratch", "--mode", "zap",
                               "-o", "results/a"],
        "benchmark unknown task": ["benchmark", "--data", str(tmp_path), "--tasks", "acll", "--init", "scratch",
                                   "-o", "results/c"],
        "benchmark missing encoder": ["benchmark", "--data", str(tmp_path), "--init", "a=gone.pt", "-o", "results/b"],
        "visualize foreign output": ["visualize", "e.parquet", "-o", "notes.csv"],
    }
    result = _run_python(f"""
        import json, sys, time
        from modan_dicom.cli import main
        out = {{}}
        for name, args in {cases!r}.items():
            start = time.perf_counter()
            try:
                main(args)
            except SystemExit as exc:
                out[name] = [exc.code, time.perf_counter() - start]
        print(json.dumps({{"cases": out, "torch": "torch" in sys.modules}}))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    assert {name: code for name, (code, _) in report["cases"].items()} == dict.fromkeys(cases, 2)
    assert max(seconds for _, seconds in report["cases"].values()) < 2.0, report
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / name).exists() for name in ("runs", "e", "results"))
    assert (tmp_path / "notes.csv").read_text() == "a,b\n1,2\n" and (foreign / "config.json").read_text() == '{"mine": true}'


# ---- item 13: outputs of the user's are never replaced ------------------------------------------


def _runs_csv(folder: Path) -> Path:
    rows = [{"task": "t", "init": init, "mode": "linear", "repeat": r, "fold": f, "auc": 0.6 + 0.01 * r + (init == "a") * 0.1}
            for init in ("a", "b") for r in range(2) for f in range(5)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return folder / "runs.csv"


@pytest.mark.parametrize("command", ["report", "benchmark --resume", "synth", "demo", "pull"])
def test_folder_outputs_refuse_a_folder_of_the_users(tmp_path: Path, command: str) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "summary.md").write_text("my notes\n")
    args = {
        "report": ["report", str(_runs_csv(tmp_path / "bench")), "--reference", "a", "-o", str(foreign)],
        "benchmark --resume": ["benchmark", "--data", str(tmp_path), "--init", "scratch", "--resume",
                               "-o", str(foreign)],
        "synth": ["synth", str(foreign)],
        "demo": ["demo", "-o", str(foreign)],
        "pull": ["pull", "http://127.0.0.1:9/dicom-web", "-o", str(foreign)],
    }[command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["summary.md"]
    assert (foreign / "summary.md").read_text() == "my notes\n"


def test_report_rewrites_its_own_folder_and_says_it_is_a_smoke_test(tmp_path: Path) -> None:
    runs = _runs_csv(tmp_path / "bench")
    for _ in range(2):  # the second run replaces what the first wrote
        result = CliRunner().invoke(main, ["report", str(runs), "--reference", "a", "-o", str(tmp_path / "report")])
        assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "Smoke test" in text and "2 repeats" in text
    assert "smallest two-sided Wilcoxon p is 2/2^2 = 0.5" in text


# ---- item 15: one spelling per concept ------------------------------------------------------------


@pytest.mark.parametrize("command", ["index", "pull", "pretrain", "embed", "visualize", "report", "benchmark", "demo"])
def test_help_shows_one_spelling(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"]).output
    assert "-o, --out" in text and "--output" not in text and "--vocab" not in text
    if command in ("index", "pull", "pretrain", "embed"):
        assert "--profile" in text


def test_old_spellings_still_parse() -> None:
    embed = main.commands["embed"].make_context(
        "embed", ["--index", "i.parquet", "--init", "scratch", "--output", "e.parquet", "--vocab", "full"])
    assert embed.params["output"] == "e.parquet" and embed.params["profile"] == "full"
    pretrain = main.commands["pretrain"].make_context(
        "pretrain", ["--index", "i.parquet", "--out", "runs/a", "--vocab", "full"])
    assert pretrain.params["out"] == "runs/a" and pretrain.params["profile"] == "full"
    index = main.commands["index"].make_context("index", ["src", "--output", "i.parquet"])
    assert index.params["output"] == "i.parquet"


# ---- item 4: out of memory is one line, exit 1 ----------------------------------------------------


def test_running_out_of_memory_is_one_line(tmp_path: Path) -> None:
    """A real limit on the address space (64 MiB above what the imports took); a 4096-px synthetic image
    needs more."""
    code = """
        import resource, sys
        import numpy, pandas, pydicom, modan_dicom.synth  # the imports first: the limit is for the work
        from modan_dicom.cli import main
        size = next(int(l.split()[1]) << 10 for l in open("/proc/self/status") if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20),) * 2)
        main(sys.argv[1:])
    """
    def run(*first: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *first, "synth", "--patients", "1",
                               "--image-size", "4096", str(tmp_path / "big")], capture_output=True, text=True,
                              timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})

    result = run()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: out of memory while running synth; try fewer --workers or a smaller --image-size"]
    debug = run("--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "MemoryError" in debug.stderr


# ---- item 16: a line per benchmark cell without a terminal ------------------------------------------


def test_benchmark_prints_a_line_per_cell_without_a_terminal(tmp_path: Path) -> None:
    from modan_dicom.synth.tasks import synth_task

    synth_task("thyroid", tmp_path / "data", seed=0, image_size=16, n_images=20)
    result = CliRunner().invoke(main, ["benchmark", "--tasks", "thyroid", "--data", str(tmp_path / "data"),
                                       "--init", "scratch", "--mode", "linear", "--repeats", "1", "--epochs", "1",
                                       "--image-size", "16", "--device", "cpu", "--workers", "1",
                                       "-o", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("cell ")]
    assert [line.split(":")[0] for line in lines] == [f"cell {k}/5" for k in range(1, 6)]
    assert all("thyroid scratch linear repeat 0 fold" in line and "AUC" in line for line in lines)
