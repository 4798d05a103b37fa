"""Regenerate docs/results: run every missing stage, write summary.json, then render results.md.

Run: ``python -m experiments.results [--root runs/results] [--only NAME ...] [--list]``

Each stage's output is kept under ``--root``; rerunning skips finished stages and resumes an
interrupted pretraining from its last checkpoint. Logs go to ``<root>/logs/``;
``<root>/manifest.json`` records each stage's command, code version, start time and duration.
``docs/results/summary.json`` (every per-seed number) and ``docs/results.md`` are rewritten at the
end, from whatever stages are done; ``--render_only`` rewrites them without running anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from experiments.paths import REPO, ensure_data
from experiments.results.stages import Stage, stages
from selfsup_color.command import command_parser, parse
from selfsup_color.io import write_text_atomic


def code_version() -> str:
    """``git describe``-like: the commit, marked dirty when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_manifest(root: Path) -> dict[str, dict[str, object]]:
    path = root / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def record_stage(root: Path, name: str, record: dict[str, object], replace: bool = True) -> None:
    """Set ``name``'s entry of ``root/manifest.json`` (read again first: entries made meanwhile stay)."""
    manifest = read_manifest(root)
    if replace or name not in manifest:
        manifest[name] = record
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=1))


def run_stage(stage: Stage, root: Path) -> dict[str, object]:
    """Run one stage's command (its log under ``root/logs``); raise if it fails or writes no output."""
    for name in stage.data:
        ensure_data(name)
    log = root / "logs" / f"{stage.name.replace('/', '_')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    version = code_version()  # the code the stage starts with (commits made meanwhile do not count)
    print(f"[{started}] {stage.name}: {' '.join(stage.command)}  (log: {log})", flush=True)
    begin = time.perf_counter()
    with log.open("a") as out:
        code = subprocess.run(
            stage.command,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ).returncode
    seconds = round(time.perf_counter() - begin, 1)
    if code != 0 or not stage.done():
        raise SystemExit(f"stage {stage.name} failed (exit code {code}, output {stage.output}); see {log}")
    print(f"  done in {seconds / 60:.1f} min", flush=True)
    return {"command": list(stage.command), "code": version, "started": started, "seconds": seconds}


def main() -> None:
    parser = command_parser("python -m experiments.results", __doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "results", help="where stage outputs go")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these stages (if not done)")
    parser.add_argument("--list", action="store_true", help="list the stages and whether each is done")
    parser.add_argument("--no_render", action="store_true", help="do not rewrite docs/results*")
    parser.add_argument("--render_only", action="store_true", help="only rewrite docs/results*")
    args = parse(parser, sys.argv[1:], {"--no-render": "--no_render", "--render-only": "--render_only"})
    root = args.root.resolve()
    plan = stages(root)
    if args.list:
        for stage in plan:
            print(f"{'done   ' if stage.done() else 'pending'} {stage.name}: {' '.join(stage.command)}")
        return
    unknown = set(args.only or ()) - {s.name for s in plan}
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; see --list")
    for stage in [] if args.render_only else plan:
        if args.only and stage.name not in args.only:
            continue
        if stage.done():
            print(f"{stage.name}: done ({stage.output})")
            record_stage(root, stage.name, {"command": list(stage.command), "found": True}, replace=False)
            continue
        record_stage(root, stage.name, run_stage(stage, root))
    if not args.no_render:
        from experiments.results.render import render
        from experiments.results.summary import write_summary

        summary = write_summary(root)
        print(f"wrote {summary} and {render(summary, root)}")


if __name__ == "__main__":
    sys.exit(main())
