"""Settings: precedence env > CLI > TOML file > defaults, value parsing, and bad config exits."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imapapi.settings import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
ENTRY = "import sys; from launcher.cli import main; sys.exit(main())"
NO_DOTENV = {"IMAPAPI_DOTENV": "0"}


def test_defaults():
    s = load_settings([], env=NO_DOTENV)
    assert s == Settings()
    assert (s.redis_url, s.api_host, s.api_port, s.log_level, s.command_timeout) == (
        None, "127.0.0.1", 3000, "info", 10.0)


def test_precedence_env_over_cli_over_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[api]\nport = 4000\nhost = "0.0.0.0"\n[log]\nlevel = "debug"\n'
                      '[service]\ncommandTimeout = "3s"\n')
    argv = [f"--config={config}", "--api.port=5000", "--log.level=warn"]
    s = load_settings(argv, env={**NO_DOTENV, "API_PORT": "6000"})
    assert s.api_port == 6000            # env beats CLI
    assert s.log_level == "warn"         # CLI beats file
    assert s.api_host == "0.0.0.0"       # file beats default
    assert s.command_timeout == 3.0
    assert load_settings(argv, env=NO_DOTENV).api_port == 5000


def test_dotenv_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("API_PORT=7001\nREDIS_URL=redis://127.0.0.1:6379/9\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings([], env={"API_PORT": "7002"})
    assert s.api_port == 7002            # the real environment wins over .env
    assert s.redis_url == "redis://127.0.0.1:6379/9"


@pytest.mark.parametrize("value, seconds", [("10s", 10), ("500ms", 0.5), ("2m", 120), ("7", 7)])
def test_durations(value, seconds):
    assert load_settings([f"--service.commandTimeout={value}"], env=NO_DOTENV).command_timeout == seconds


def test_options_that_were_env_reads_at_import():
    """Webhook retry window, stream cap and task events: Settings options like the others."""
    s = load_settings(["--webhooks.retryWindow=2m", "--worker.taskEvents=1"],
                      env={**NO_DOTENV, "EVENTS_MAXLEN": "500"})
    assert (s.webhook_retry_window, s.events_maxlen, s.worker_task_events) == (120.0, 500, True)
    assert load_settings([], env=NO_DOTENV).worker_task_events is False


@pytest.mark.parametrize("argv", [
    ["--api.port=70000"], ["--api.port=0"], ["--api.port=abc"], ["--dbs.redis=notaurl"],
    ["--dbs.redis=redis://127.0.0.1:99999/0"], ["--dbs.redis=redis://127.0.0.1:6379/abc"],
    ["--log.level=loud"],
    ["--service.commandTimeout=soon"], ["--no.such=1"], ["--worker.taskEvents=maybe"],
    ["--events.maxLength=0"], ["--webhooks.retryWindow=0s"],
])
def test_bad_values_raise(argv):
    with pytest.raises(ConfigError):
        load_settings(argv, env=NO_DOTENV)


def test_bad_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[api]\nport = \n")
    with pytest.raises(ConfigError, match="config file"):
        load_settings([f"--config={config}"], env=NO_DOTENV)


def _cli(*args, env_extra=None):
    import os

    env = {**os.environ, "IMAPAPI_DOTENV": "0", "PYTHONPATH": str(REPO)}
    for name in ("REDIS_URL", "API_PORT", "API_HOST", "LOG_LEVEL", "COMMAND_TIMEOUT"):
        env.pop(name, None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("args, env_extra, words", [
    (["api", "--api.port=70000"], None, "api.port"),
    (["api", "--dbs.redis=::nonsense"], None, "dbs.redis"),
    (["worker"], {"API_PORT": "99999"}, "api.port"),
    (["api"], None, "no Redis URL"),
])
def test_cli_bad_config_one_line_exit_2(args, env_extra, words):
    proc = _cli(*args, env_extra=env_extra)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert words in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_help_and_unknown_command():
    assert _cli("--help").returncode == 0
    proc = _cli("nonsense")
    assert proc.returncode == 2
