"""The kdm CLI through click's CliRunner: config verbs and coded-error exits."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_encrypt_then_decrypt() -> None:
    runner = CliRunner()
    sealed = runner.invoke(main, ["encrypt", "pa ss"])
    assert sealed.exit_code == 0
    opened = runner.invoke(main, ["decrypt", sealed.output.strip()])
    assert opened.exit_code == 0 and opened.output.strip() == "pa ss"


def test_decrypt_garbage_is_a_coded_error() -> None:
    result = CliRunner().invoke(main, ["decrypt", "bm90IGEgY2lwaGVydGV4dCBhdCBhbGwgcmVhbGx5"])
    assert result.exit_code == 1 and "code=20010" in result.output


def test_check_config_accepts_the_examples() -> None:
    result = CliRunner().invoke(main, ["check-config", "--kind", "task",
                                       str(ROOT / "config" / "task-shard-merge.yaml"),
                                       str(ROOT / "config" / "task-single.yaml")])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"result": True, "msg": "", "errors": []}


def test_check_config_reports_each_bad_file() -> None:
    bad = ROOT / "tests" / "fixtures" / "config" / "invalid" / "unknown_key.task.yaml"
    result = CliRunner().invoke(main, ["check-config", "--kind", "task", str(bad)])
    assert result.exit_code == 1
    reply = json.loads(result.output)
    assert reply["result"] is False and "code=20003" in reply["errors"][0]["msg"]


def test_stack_status_of_an_empty_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stack", "status", "--home", str(tmp_path)])
    assert result.exit_code == 0
    assert "kafka       down" in result.output and "127.0.0.1:9092" in result.output


def test_stack_smoke_without_a_stack_is_a_coded_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stack", "smoke", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "code=54004" in result.output
