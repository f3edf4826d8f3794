"""Thin entry points: parse the configuration, build, call. Errors the user can fix are one line, no traceback."""

from __future__ import annotations

import functools
import os
import re
import sys

from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from nmt.config import range_errors, register_configs
from nmt.errors import UserError


def compose_config(name: str, overrides: list[str]):
    """Compose configs/<name>.yaml with command-line overrides (validated against the schemas and RANGES)."""
    register_configs()
    with initialize_config_module("nmt.configs", version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    check_ranges(cfg)
    return cfg


def check_ranges(cfg) -> None:
    """A UserError naming every setting out of its range (config.RANGES), before any work starts."""
    errors = range_errors(cfg)
    if errors:
        raise UserError("; ".join(errors))


# A word that is an option (-x, --x) rather than a setting (key=value) or text to translate ("-5 degrees" is text).
OPTION = re.compile(r"^--?[A-Za-z]")


def command_line(program: str, doc: str, argv: list[str], config: str | None, usage: str = "[key=value ...]"):
    """The words of a command line other than options; `--help` prints the usage, `doc` and the settings of
    configs/<config>.yaml with their defaults, `--cfg` the config these words compose (both then exit 0). Any
    other -x/--x is a UserError: every setting is key=value."""
    options = [a for a in argv if OPTION.match(a)]
    if "-h" in options or "--help" in options:
        print(f"usage: {program} [--help] [--cfg] {usage}\n\n{doc.strip()}")
        if config is not None:
            defaults = OmegaConf.to_yaml(compose_config(config, []), resolve=False)
            print("\nsettings (key=value; defaults shown, ??? must be given):\n" + _indent(defaults), end="")
        raise SystemExit(0)
    unknown = [o for o in options if o != "--cfg"]
    if unknown:
        raise UserError(f"unknown option {unknown[0]}: settings are key=value words (see {program} --help)")
    words = [a for a in argv if a not in options]
    if "--cfg" in options:
        if config is None:
            raise UserError(f"{program} has no config of its own to show (--cfg)")
        cfg = compose_config(config, [w for w in words if "=" in w])
        print(OmegaConf.to_yaml(cfg), end="")
        raise SystemExit(0)
    return words


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def _first_line(e: BaseException) -> str:
    # OmegaConf puts full_key/object_type details on the lines after its message.
    lines = str(e).strip().splitlines()
    return lines[0].strip() if lines else type(e).__name__


def config_error_message(e: HydraException | OmegaConfBaseException) -> str:
    """One line for a Hydra or OmegaConf error: the override or key, what is wrong with it and, where it is not
    obvious, the fix; Hydra's own text spans several lines and suggests '+key=value', which only adds a key nothing
    reads."""
    if isinstance(e, MissingConfigException):
        head, _, rest = str(e).partition("\n")
        listing = rest.split("Config search path:")[0].splitlines()
        options = [o.strip() for o in listing if o.startswith("\t") and not o.strip().endswith("_schema")]
        return f"{head} — choose one of: {', '.join(options)}" if options else head
    if isinstance(e, MissingMandatoryValue):
        return f"{e.full_key}: not set — add {e.full_key}=<value> to the command line"
    cause = e.__cause__
    if isinstance(e, ConfigCompositionException) and isinstance(cause, OmegaConfBaseException):
        fix = " — check the spelling of the key" if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) else ""
        return f"{_first_line(e).rstrip('.')}: {_first_line(cause)}{fix}"
    if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None):
        return f"{e.full_key}: {_first_line(e)}"
    return " ".join(str(e).split()) or type(e).__name__


def reports_errors(program: str):
    """Turn user errors into `program: error: <one line>` on stderr and exit status 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UserError as e:
                print(f"{program}: error: {' '.join(str(e).split())}", file=sys.stderr)
                sys.exit(2)
            except (HydraException, OmegaConfBaseException) as e:
                print(f"{program}: error: {config_error_message(e)}", file=sys.stderr)
                sys.exit(2)

        return run

    return wrap


def reports_hydra_errors(program: str):
    """reports_errors for a @hydra.main function (put it above @hydra.main): Hydra then raises its composition errors
    (a wrong key, value or group option) for reports_errors to print as one line, instead of printing them itself
    over several lines with exit status 1."""

    def wrap(hydra_main):
        checked = reports_errors(program)(hydra_main)

        @functools.wraps(hydra_main)
        def run(*args, **kwargs):
            saved = os.environ.get("HYDRA_FULL_ERROR")
            os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's run_and_report re-raises instead of printing
            try:
                return checked(*args, **kwargs)
            finally:
                if saved is None:
                    del os.environ["HYDRA_FULL_ERROR"]
                else:
                    os.environ["HYDRA_FULL_ERROR"] = saved

        return run

    return wrap
