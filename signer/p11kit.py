"""p11-kit's module registry, which RFC 7512's `module-name=` refers to: a module named `N` is
described by a file `N.module` in the user's, the system's or the packages' module directory
(the first found wins, as p11-kit reads them), whose `module:` line is the library's path,
absolute or relative to the system's PKCS#11 module directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from verifier.errors import SignerError

SYSTEM_CONFIG_DIRS = (Path("/etc/pkcs11/modules"), Path("/usr/share/p11-kit/modules"))
# Where p11-kit looks for a module given by a relative path (Debian's multiarch directory).
MODULE_DIRS = (Path("/usr/lib/x86_64-linux-gnu/pkcs11"), Path("/usr/lib/pkcs11"))

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def config_dirs(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    environ = os.environ if env is None else env
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return (Path(config_home) / "pkcs11" / "modules", *SYSTEM_CONFIG_DIRS)


def resolve_module_name(name: str, env: Mapping[str, str] | None = None) -> str:
    """The library path p11-kit's registry gives for module `name`, or one line saying why
    there is none."""
    if not _NAME.fullmatch(name):
        raise SignerError("PKCS#11 URI module-name must be a module's registry name (e.g. "
                          "softhsm2, opensc-pkcs11), not a path; use module-path= for a path")
    searched = config_dirs(env)
    for directory in searched:
        config = directory / f"{name}.module"
        try:
            text = config.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as err:
            raise SignerError(f"cannot read p11-kit module file {config}: {err}") from None
        library = _module_line(text)
        if library is None:
            raise SignerError(f"p11-kit module file {config} has no `module:` line")
        return _locate(library, config)
    where = ", ".join(str(d) for d in searched)
    raise SignerError(f"no PKCS#11 module named {name!r} in p11-kit's registry ({where}); "
                      "install its package or use module-path=/path/to/module.so")


def _module_line(text: str) -> str | None:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key.strip() == "module" and value.strip():
            return value.strip()
    return None


def _locate(library: str, config: Path) -> str:
    path = Path(library)
    if path.is_absolute():
        return str(path)
    for directory in MODULE_DIRS:
        if (directory / path).exists():
            return str(directory / path)
    raise SignerError(f"p11-kit module file {config} names {library}, which is not in "
                      f"{' or '.join(str(d) for d in MODULE_DIRS)}")
