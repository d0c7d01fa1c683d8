"""A real TAXII 2.1 server for the `--taxii` refresh tests: medallion on 127.0.0.1, in a child process.

medallion (the OASIS reference server) answers discovery, API roots, collections, paged objects with
`added_after` and `match[...]`, basic auth and TAXII media types exactly as it ships. Two things
are ours, both behind medallion's own extension points:

- `IndexedMemoryBackend`, its memory backend with the objects query indexed: the stock filter
  compares every object with every manifest entry, parsing timestamps each time (23 s for the first
  page of ICS 17.1's 1,651 objects, 51 s for an empty `added_after` query: see taxii.bugs.md); same
  answers (same filters, `last` version by default, date_added order, `next` sessions), linear time.
- fault injection: `die_at` (the process exits at that objects request: a server killed
  mid-transfer) and `fail_at` (that request answers 500 once).

A child process, not a thread: medallion keeps its Flask application in a module global (one
server per process), and a killed process is what a dead server really looks like.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
API_ROOT = "api21"
STIX21 = "application/stix+json;version=2.1"
LOADED_AT = "2025-01-01T00:00:00.000000Z"  # date_added of the objects a server starts with


@dataclass
class CollectionSpec:
    """One collection: its id, title and the STIX objects it starts with."""

    id: str
    title: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    can_read: bool = True


def _manifest(objects: Iterable[dict[str, Any]], date_added: str) -> list[dict[str, Any]]:
    return [
        {
            "id": o["id"],
            "date_added": date_added,
            "version": o.get("modified", o.get("created")),
            "media_type": STIX21,
        }
        for o in objects
    ]


def medallion_data(base: str, collections: list[CollectionSpec]) -> dict[str, Any]:
    """medallion's memory-backend file: discovery, one API root, the collections and manifests."""
    return {
        "/discovery": {
            "title": "kbmap test TAXII server",
            "default": f"{base}/{API_ROOT}/",
            "api_roots": [f"{base}/{API_ROOT}/"],
        },
        API_ROOT: {
            "information": {
                "title": "ATT&CK",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 500 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": c.id,
                    "title": c.title,
                    "can_read": c.can_read,
                    "can_write": True,
                    "media_types": [STIX21],
                    "objects": c.objects,
                    "manifest": _manifest(c.objects, LOADED_AT),
                }
                for c in collections
            ],
        },
    }


class TaxiiServer:
    """medallion in a child process on a free port of 127.0.0.1; `kill()` is a dead server."""

    def __init__(
        self,
        folder: Path,
        collections: list[CollectionSpec],
        *,
        users: dict[str, str] | None = None,
        page_size: int = 200,
        die_at: int | None = None,
        fail_at: int | None = None,
    ) -> None:
        self.folder = folder
        self.users = users if users is not None else {"kbmap": "s3cret"}
        data = folder / "medallion-data.json"
        # the base URL is only known once the port is; discovery's URLs are rewritten at start
        data.write_text(json.dumps(medallion_data("BASE", collections)), encoding="utf-8")
        backend = {
            "module": __name__ if __name__ != "__main__" else "tests.refresh.taxii_server",
            "module_class": "IndexedMemoryBackend",
            "filename": str(data),
            "die_at": die_at,
            "fail_at": fail_at,
            "session_timeout": 300,
        }
        config = {"backend": backend, "users": self.users, "taxii": {"max_page_size": page_size}}
        self.config = folder / "medallion-config.json"
        self.config.write_text(json.dumps(config), encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.refresh.taxii_server", str(self.config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "port N" once listening
        if not line.startswith("port "):
            self.kill()
            raise RuntimeError(f"medallion did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    @property
    def discovery(self) -> str:
        return f"{self.base}/taxii2/"

    @property
    def api_root(self) -> str:
        return f"{self.base}/{API_ROOT}/"

    def collection_url(self, collection_id: str) -> str:
        return f"{self.api_root}collections/{collection_id}/"

    def add_objects(self, collection_id: str, objects: list[dict[str, Any]]) -> int:
        """POST objects through TAXII's own Add Objects endpoint (date_added: now); returns how
        many were new (an id at a version the collection holds already is refused, per TAXII)."""
        from taxii2client.v21 import Collection

        user, password = next(iter(self.users.items()))
        with Collection(
            self.collection_url(collection_id), user=user, password=password
        ) as collection:
            status = collection.add_objects({"objects": objects}, wait_for_completion=False)
        assert status.success_count + status.failure_count == len(objects)
        return int(status.success_count)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> TaxiiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _backend_class() -> type:
    """Defined on demand: importing medallion starts nothing, but it is a test-only dependency."""
    from medallion.backends.memory_backend import MemoryBackend, remove_hidden_field
    from medallion.common import create_resource, find_att
    from medallion.exceptions import ProcessingError
    from medallion.filters.basic_filter import BasicFilter

    class IndexedMemoryBackend(MemoryBackend):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.die_at = kwargs.get("die_at")
            self.fail_at = kwargs.get("fail_at")
            self.requests = 0

        def get_objects(
            self,
            api_root: str,
            collection_id: str,
            filter_args: dict[str, Any],
            allowed_filters: tuple[str, ...],
            limit: int,
        ) -> tuple[dict[str, Any], dict[str, str]]:
            self.requests += 1
            if self.requests == self.die_at:
                os._exit(1)  # the server dies mid-transfer: the client sees the socket close
            if self.requests == self.fail_at:
                raise ProcessingError("injected failure", 500)
            if "next" in filter_args:
                return super().get_objects(
                    api_root, collection_id, filter_args, allowed_filters, limit
                )  # type: ignore[no-any-return]
            collection = self._collection(api_root, collection_id)
            objs, rest, headers = _select(collection, filter_args, allowed_filters, limit)
            more, n = bool(rest), None
            if rest:
                n = self.set_next(rest, filter_args)
            objs = copy.deepcopy(objs)
            remove_hidden_field(objs)
            return create_resource("objects", objs, more, n), headers

        def get_collections(self, api_root: str) -> dict[str, Any] | None:
            """medallion's, without deep-copying every object first (then dropping them)."""
            if api_root not in self.data:
                return None
            found = [_info(c) for c in self._get(api_root).get("collections", [])]
            return create_resource("collections", found)  # type: ignore[no-any-return]

        def get_collection(self, api_root: str, collection_id: str) -> dict[str, Any] | None:
            if api_root not in self.data:
                return None
            for c in self._get(api_root).get("collections", []):
                if c["id"] == collection_id:
                    return _info(c)
            return None

        def _collection(self, api_root: str, collection_id: str) -> dict[str, Any]:
            for c in self._get(api_root).get("collections", []):
                if c["id"] == collection_id:
                    return c  # type: ignore[no-any-return]
            raise ProcessingError(f"Collection '{collection_id}' not found", 404)

    def _select(
        collection: dict[str, Any], args: dict[str, Any], allowed: tuple[str, ...], limit: int
    ) -> tuple[list[Any], list[Any], dict[str, str]]:
        """medallion's BasicFilter.process_filter, with the manifest looked up, not scanned."""
        added = {(m["id"], find_att(m)): m["date_added"] for m in collection.get("manifest", [])}
        objs = collection.get("objects", [])
        if args.get("match[type]") and "type" in allowed:
            objs = BasicFilter.filter_by_type(objs, args["match[type]"])
        if args.get("match[id]") and "id" in allowed:
            objs = BasicFilter.filter_by_id(objs, args["match[id]"])
        keyed = [(o, added.get((o["id"], find_att(o)), LOADED_AT)) for o in objs]
        if args.get("added_after"):
            after = args["added_after"]
            keyed = [(o, d) for o, d in keyed if _ts(d) > _ts(after)]
        if "version" in allowed:
            kept = {
                id(o)
                for o in BasicFilter.filter_by_version(
                    [o for o, _ in keyed], args.get("match[version]")
                )
            }
            keyed = [(o, d) for o, d in keyed if id(o) in kept]
        keyed.sort(key=lambda od: od[1])
        page, rest = keyed[:limit], keyed[limit:]
        headers = {}
        if page:
            headers["X-TAXII-Date-Added-First"] = page[0][1]
            headers["X-TAXII-Date-Added-Last"] = page[-1][1]
        return [o for o, _ in page], [o for o, _ in rest], headers

    def _info(collection: dict[str, Any]) -> dict[str, Any]:
        hidden = ("manifest", "responses", "objects")
        return copy.deepcopy({k: v for k, v in collection.items() if k not in hidden})

    def _ts(value: str) -> Any:
        from medallion.common import string_to_datetime

        return string_to_datetime(value)

    return IndexedMemoryBackend


def __getattr__(name: str) -> Any:
    """medallion imports `IndexedMemoryBackend` from this module by name (its backend config)."""
    if name == "IndexedMemoryBackend":
        return _backend_class()
    raise AttributeError(name)


def _serve(config_path: str) -> None:
    """The child: load medallion with the config, bind a free port, say which, serve."""
    import medallion
    from werkzeug.serving import make_server

    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    server = make_server("127.0.0.1", 0, medallion.application_instance, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    data = Path(config["backend"]["filename"])
    data.write_text(data.read_text(encoding="utf-8").replace("BASE/", f"{base}/"), "utf-8")
    medallion.set_config(medallion.application_instance, "users", config)
    medallion.set_config(medallion.application_instance, "taxii", config)
    medallion.set_config(medallion.application_instance, "backend", config)
    medallion.register_blueprints(medallion.application_instance)
    print(f"port {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1])
