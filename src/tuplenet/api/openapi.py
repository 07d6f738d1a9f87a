"""Write the OpenAPI document of the API (committed as docs/openapi.json; a test checks it is current).

    .venv/bin/python -m tuplenet.api.openapi [FILE]      # default: docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tuplenet.control.memstore import MemStore

from .app import create_app, openapi_document


def document() -> dict[str, Any]:
    return openapi_document(create_app(MemStore(), None))


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "docs/openapi.json"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
