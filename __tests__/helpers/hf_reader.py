"""Drives the real huggingface_hub for the test suite (__tests__/helpers/hf-reader.ts).

Reads a JSON list of calls on stdin, runs each against the installed huggingface_hub and prints
one JSON object: the version and one result per call. A call that raises gives its error class
and message instead of a value, so the tests can assert on failures too. The environment
(HF_HUB_CACHE, HF_HUB_OFFLINE, HF_ENDPOINT) is set by the test before this process starts,
because huggingface_hub reads it when imported.
"""

import hashlib
import json
import logging
import sys

import huggingface_hub
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache
from huggingface_hub.utils import filter_repo_objects


class Collect(logging.Handler):
    """Keeps what huggingface_hub logs at WARNING or above (a corrupted tree cache is logged, not raised)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def repo_args(call):
    return {"repo_id": call["repo"], "repo_type": call.get("type", "model"), "revision": call.get("revision")}


def run(call):
    kind = call["call"]
    cache = call.get("cache")
    if kind == "snapshot_download":
        patterns = {"allow_patterns": call["allow"]} if "allow" in call else {}
        return {"path": snapshot_download(**repo_args(call), cache_dir=cache, **patterns)}
    if kind == "hf_hub_download":
        path = hf_hub_download(**repo_args(call), filename=call["file"], cache_dir=cache)
        return {"path": path, "sha256": sha256_of(path)}
    if kind == "try_to_load_from_cache":
        found = try_to_load_from_cache(call["repo"], call["file"], cache_dir=cache, revision=call.get("revision"), repo_type=call.get("type", "model"))
        return {"path": found if isinstance(found, str) else None, "cachedNoExist": found is not None and not isinstance(found, str)}
    if kind == "scan_cache_dir":
        info = scan_cache_dir(cache)
        return {
            "sizeOnDisk": info.size_on_disk,
            "warnings": [str(w) for w in info.warnings],
            "repos": sorted(
                (
                    {
                        "id": repo.repo_id,
                        "type": repo.repo_type,
                        "sizeOnDisk": repo.size_on_disk,
                        "revisions": sorted(
                            ({"commit": rev.commit_hash, "refs": sorted(rev.refs), "files": sorted(f.file_name for f in rev.files)} for rev in repo.revisions),
                            key=lambda r: r["commit"],
                        ),
                    }
                    for repo in info.repos
                ),
                key=lambda r: (r["type"], r["id"]),
            ),
        }
    if kind == "filter":
        return {"kept": list(filter_repo_objects(call["paths"], allow_patterns=call.get("allow"), ignore_patterns=call.get("ignore")))}
    raise ValueError(f"unknown call {kind}")


def main():
    collect = Collect()
    logging.getLogger("huggingface_hub").addHandler(collect)
    results = []
    for call in json.load(sys.stdin):
        collect.messages = []
        try:
            result = {"ok": run(call)}
        except Exception as error:  # the test asserts on the class and the message
            result = {"error": type(error).__name__, "message": str(error)}
        result["logged"] = collect.messages
        results.append(result)
    json.dump({"version": huggingface_hub.__version__, "results": results}, sys.stdout)


main()
