"""`imap-api --help` lists every configuration option with its env name and written default."""
import subprocess
import sys

from imapapi.settings import OPTIONS


def _help() -> str:
    done = subprocess.run([sys.executable, "-m", "launcher.cli", "--help"], capture_output=True,
                          text=True, timeout=60, env={"IMAPAPI_DOTENV": "0", "PATH": ""})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_lists_every_option_and_its_env_name():
    text = _help()
    for name, (_, env, _) in OPTIONS.items():
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"--{name}=")), None)
        assert line is not None, f"--{name} missing from --help"
        assert env in line


def test_help_shows_defaults_as_written():
    text = _help()
    assert "API_PORT (3000)" in text
    assert "COMMAND_TIMEOUT (10s)" in text
    assert "SUBMIT_MAX_SIZE (25M)" in text
