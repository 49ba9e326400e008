"""`python -m sidecar [--option=value ...]`: run the sidecar alone (settings from env/CLI/config)."""
import sys

from imapapi.settings import ConfigError, die, load_settings

from .main import run

if __name__ == "__main__":
    try:
        settings = load_settings(sys.argv[1:])
    except ConfigError as exc:
        die(str(exc))
    sys.exit(run(settings))
