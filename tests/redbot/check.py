"""Checks resources of a running Chat Live Room with REDbot's library.

Reads a JSON list from stdin: [{"name": ..., "url": ..., "headers": [[name, value], ...]}].
Runs REDbot's checks (and its own follow-up requests: conditional, compressed,
ranged) on each, prints every note, and exits 1 if any note, of any category,
is a warning or worse, 2 if a check could not fetch its resource.
Run by tests/api/caching.rs with the interpreter of .tools/venv (scripts/test
installs REDbot there).
"""

import json
import sys
from configparser import ConfigParser

import thor
from httplint.note import levels
from redbot.resource import HttpResource


def main() -> int:
    wanted = json.load(sys.stdin)
    parser = ConfigParser()
    # Our server listens on loopback, which REDbot refuses unless told.
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    config = parser["redbot"]

    resources = []
    pending = {"count": len(wanted)}
    for spec in wanted:
        resource = HttpResource(config)
        resource.set_request(spec["url"], headers=[tuple(h) for h in spec["headers"]])

        @thor.events.on(resource)
        def check_done() -> None:
            pending["count"] -= 1
            if pending["count"] == 0:
                thor.stop()

        resources.append((spec["name"], resource))
    for _, resource in resources:
        resource.check()
    # Every check ends (REDbot times out requests itself); the Rust test bounds
    # the whole run as well.
    thor.run()

    failed = False
    unfetched = False
    for name, resource in resources:
        response = resource.response
        print(f"== {name}: {resource.request.uri} -> {response.status_code}")
        if resource.fetch_error is not None:
            print(f"   fetch error: {resource.fetch_error.desc}")
            unfetched = True
            continue
        for field, value in response.headers.text:
            if field.lower() in ("cache-control", "vary", "expires", "etag", "last-modified"):
                print(f"   {field}: {value}")
        for note in response.notes:
            serious = note.level in (levels.WARN, levels.BAD)
            mark = "FAIL" if serious else "    "
            print(f" {mark} [{note.category.name} {note.level.name}] {note.summary}")
            for sub in note.subnotes:
                print(f"        [{sub.level.name}] {sub.summary}")
            failed = failed or serious
    if unfetched:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
