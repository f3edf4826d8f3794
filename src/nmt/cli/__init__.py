"""Thin entry points: parse the configuration, build, call. Errors the user can fix are one line, no traceback."""

from __future__ import annotations

import functools
import sys

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from nmt.config import register_configs
from nmt.errors import UserError


def compose_config(name: str, overrides: list[str]):
    """Compose configs/<name>.yaml with command-line overrides (validated against the schemas)."""
    register_configs()
    with initialize_config_module("nmt.configs", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def reports_errors(program: str):
    """Turn user errors into `program: error: <one line>` on stderr and exit status 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (UserError, HydraException, OmegaConfBaseException) as e:
                message = " ".join(str(e).split()) or type(e).__name__
                print(f"{program}: error: {message}", file=sys.stderr)
                sys.exit(2)

        return run

    return wrap
