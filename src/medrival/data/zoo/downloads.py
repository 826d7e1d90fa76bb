"""Downloads where the host allows them: MedMNIST through the ``medmnist`` package, Hugging Face datasets.

Everything else (licence agreements, registration walls) is not downloaded: ``medrival prepare`` prints the steps.
Archives are extracted member by member with a root-containment check (a zip entry named ``../x`` must not
write outside the dataset folder).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from medrival.core.errors import MedrivalError
from medrival.data.releases.paths import safe_relative


def download_medmnist(root: Path, *, flag: str, size: int) -> None:
    """Fetch ``{flag}[_{size}].npz`` into ``root`` with the medmnist package (it verifies the file's MD5)."""
    try:
        import medmnist
    except ImportError:
        raise MedrivalError("downloading MedMNIST needs the medmnist package: pip install 'medrival[download]' "
                            "(or pip install medmnist), then run medrival prepare again.") from None
    info = medmnist.INFO[flag]
    data_class = getattr(medmnist, info["python_class"])
    Path(root).mkdir(parents=True, exist_ok=True)
    kwargs = {} if size == 28 else {"size": size}
    try:
        data_class(split="test", root=str(root), download=True, **kwargs)
    except Exception as error:  # noqa: BLE001 - network and server errors come in many types
        raise MedrivalError(f"MedMNIST download of {flag} ({size} px) failed: {error}. Check the connection, or "
                            "download the npz from https://zenodo.org/records/10519652 by hand.") from error


def hf_dataset_download(root: Path, *, repo: str, unzip: tuple[str, ...] = ()) -> None:
    """Snapshot a Hugging Face dataset repo into ``root`` and extract the named archives in place."""
    from huggingface_hub import snapshot_download

    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id=repo, repo_type="dataset", local_dir=str(root))
    except Exception as error:  # noqa: BLE001
        raise MedrivalError(f"download of the Hugging Face dataset {repo} failed: {error}. Check the connection "
                            "(and HF_HUB_OFFLINE), or follow the manual steps in `medrival prepare`.") from error
    for name in unzip:
        archive = Path(root) / name
        if archive.is_file():
            safe_extract(archive, Path(root))


def safe_extract(archive: Path, destination: Path) -> int:
    """Extract a zip into ``destination``; a member whose path would leave it is refused. Returns files written."""
    written = 0
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            if member.is_dir():
                continue
            relative = safe_relative(destination, member.filename, f"archive {archive.name}")
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, open(target, "wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            written += 1
    return written
