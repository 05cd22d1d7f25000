"""`--config.model.init=hf-hub:ORG/NAME[@REVISION]` (timm's spelling): a model of the Hugging
Face hub, converted once.

The repository's files come through `huggingface_hub` into its cache (`$HF_HOME/hub`, laid out
as `models--ORG--NAME/snapshots/<commit>/<file>`, links into `blobs/`); with `HF_HUB_OFFLINE=1`
only that cache is read. The repository's layout says which converter applies
(`jaxtl.conversion.hub_layouts.LAYOUTS`: timm's `config.json` + `model.safetensors` or
`pytorch_model.bin`, transformers', open_clip's). The converted checkpoint goes into jaxtl's
cache folder (`<cache>/hf-hub/`, `jaxtl.workdir.pretrained.HUB_CACHE_SUBDIR`), keyed by
repository, commit, weights file and that file's hash, so a second run reuses it; it is
written atomically, so no run reads it half-written.

`huggingface_hub` is imported only when a hub reference is fetched: it reads `HF_HOME` and
`HF_HUB_OFFLINE` when imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
from typing import Any

from absl import logging

from jaxtl.conversion.hub_layouts import LAYOUTS, HubLayout
from jaxtl.core import atomic
from jaxtl.core.errors import TransferError, UserError
from jaxtl.data.cache import keyed_path
from jaxtl.workdir.pretrained import HUB_CACHE_SUBDIR

PREFIX = "hf-hub:"
_REPO = re.compile(r"[\w.-]+/[\w.-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclasses.dataclass(frozen=True)
class Reference:
    """A hub repository and, if given, its revision (branch, tag or commit)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo}" + (f"@{self.revision}" if self.revision else "")


def is_reference(init: Any) -> bool:
    return isinstance(init, str) and init.startswith(PREFIX)


def parse(init: str) -> Reference:
    repo, _, revision = init.removeprefix(PREFIX).partition("@")
    if not _REPO.fullmatch(repo) or (revision and not re.fullmatch(r"[\w./-]+", revision)):
        raise TransferError(f"model.init={init} is not a hub reference: expected {PREFIX}ORG/NAME "
                            f"or {PREFIX}ORG/NAME@REVISION, e.g. {PREFIX}timm/resnet50.a1_in1k")
    return Reference(repo, revision or None)


def converted(init: str, cache_dir: str | os.PathLike, format_version: int) -> pathlib.Path:
    """The jaxtl checkpoint folder of hub reference `init`, converted into `cache_dir` on
    first use (`format_version`: the checkpoint format's, part of the cache key). Every failure
    is a TransferError of one line naming the file and what to do."""
    reference = parse(init)
    unrecognised = []
    for layout in LAYOUTS:
        config_file = _fetch(reference, layout.config_file)
        if config_file is None:
            continue
        config = _read_json(reference, config_file)
        if not layout.recognises(config):
            unrecognised.append(config_file.name)
            continue
        for name in layout.weight_files:
            if (weights := _fetch(reference, name)) is not None:
                for extra in layout.extra_files:  # beside the weights in the snapshot, if any
                    _fetch(reference, extra)
                return _convert_once(reference, layout, config, weights,
                                     pathlib.Path(cache_dir), format_version)
        command = layout.command(reference.repo, config, layout.weight_files[0])
        raise TransferError(_missing(reference, " or ".join(layout.weight_files), command))
    if unrecognised:
        raise TransferError(
            f"model.init={reference}: its {' and '.join(sorted(set(unrecognised)))} is not in a "
            f"layout jaxtl converts ({', '.join(_describe(layout) for layout in LAYOUTS)})")
    # No layout's config file: say how the first layout (timm's) converts a local copy.
    first = LAYOUTS[0]
    config_files = " or ".join(sorted({layout.config_file for layout in LAYOUTS}))
    raise TransferError(_missing(reference, config_files,
                                 first.command(reference.repo, {}, first.weight_files[0])))


def _describe(layout: HubLayout) -> str:
    return f"{layout.library}: {layout.config_file} + {' or '.join(layout.weight_files)}"


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _fetch(reference: Reference, filename: str) -> pathlib.Path | None:
    """The cached file (downloaded first when online), or None when the repository has no
    such file (online) or the cache holds none (offline, or no connection)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return pathlib.Path(hf_hub_download(reference.repo, filename,
                                            revision=reference.revision,
                                            local_files_only=_offline()))
    except LocalEntryNotFoundError:
        if (link := _broken_link(reference, filename)) is not None:
            raise TransferError(
                f"model.init={reference}: {link} links to a file that is not there (an "
                f"interrupted download): download it again (unset HF_HUB_OFFLINE and run again, "
                f"or `hf download {reference.repo} {filename}`)") from None
        return None
    except GatedRepoError:
        raise TransferError(f"model.init={reference}: the repository is gated: accept its terms "
                            f"on huggingface.co and log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise TransferError(f"model.init={reference}: no such repository on the Hugging Face "
                            f"hub (or a private one: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise TransferError(f"model.init={reference}: the repository has no revision "
                            f"{reference.revision!r}") from None
    except EntryNotFoundError:
        return None
    except (HfHubHTTPError, OSError) as error:
        raise TransferError(f"model.init={reference}: downloading {filename} failed "
                            f"({type(error).__name__}: {_first_line(error)}); run again, or "
                            f"set HF_HUB_OFFLINE=1 to use the cache only") from None


def _repo_folder(reference: Reference) -> pathlib.Path:
    """`models--ORG--NAME` in the Hugging Face cache."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return pathlib.Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=reference.repo,
                                                                   repo_type="model")


def _snapshot_folder(reference: Reference) -> pathlib.Path | None:
    """`models--ORG--NAME/snapshots/<commit>` of the cache for the reference's revision."""
    repo = _repo_folder(reference)
    revision = reference.revision or "main"
    if _COMMIT.fullmatch(revision):
        return repo / "snapshots" / revision
    ref = repo / "refs" / revision
    return repo / "snapshots" / ref.read_text().strip() if ref.is_file() else None


def _broken_link(reference: Reference, filename: str) -> pathlib.Path | None:
    snapshot = _snapshot_folder(reference)
    path = snapshot / filename if snapshot is not None else None
    return path if path is not None and path.is_symlink() and not path.exists() else None


def _read_json(reference: Reference, path: pathlib.Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TransferError(f"model.init={reference}: {path} is not readable JSON "
                            f"({_first_line(error)}): delete it and download it again") from None
    if not isinstance(config, dict):
        raise TransferError(f"model.init={reference}: {path} holds no JSON object: delete it "
                            f"and download it again")
    return config


def _missing(reference: Reference, files: str, command: str) -> str:
    where = _snapshot_folder(reference) or _repo_folder(reference)
    cause = ("HF_HUB_OFFLINE=1 allows no download" if _offline()
             else "the hub could not be reached")
    return (f"model.init={reference}: {files} is not in the Hugging Face cache ({where}) and "
            f"{cause}: download it where the hub can be reached (`hf download {reference.repo}`), "
            f"or convert a local copy: {command}, then --config.model.init=DIR")


def _convert_once(reference: Reference, layout: HubLayout, config: dict, weights: pathlib.Path,
                  cache_dir: pathlib.Path, format_version: int) -> pathlib.Path:
    commit = weights.parent.name  # snapshots/<commit>/<file>
    description = {"repo": reference.repo, "commit": commit, "file": weights.name,
                   "file_hash": _file_hash(weights), "library": layout.library,
                   "format_version": format_version}
    target = keyed_path(cache_dir, HUB_CACHE_SUBDIR, description,
                        prefix=reference.repo.replace("/", "--") + "-")
    if target.exists():
        return target
    logging.info("model.init=%s: converting %s (%s, commit %s) into %s", reference, weights.name,
                 layout.library, commit[:12], target)
    source = {"hub": reference.repo, "revision": commit, "library": layout.library}
    try:
        with atomic.staged_folder(target) as staging:
            layout.convert(config, weights, staging, source)
    except FileExistsError:
        pass  # another run converted it meanwhile
    except UserError as error:
        raise TransferError(f"model.init={reference}: {error}") from None
    return target


def _file_hash(path: pathlib.Path) -> str:
    """The cache's blob name (the file's SHA-256 for LFS files, git's hash otherwise), or the
    file's SHA-256 where the cache holds no links."""
    resolved = path.resolve()
    if resolved != path.absolute() and resolved.parent.name == "blobs":
        return resolved.name
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""
