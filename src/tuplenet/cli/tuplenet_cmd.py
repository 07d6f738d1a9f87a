"""The `tuplenet` command: `tuplenet sandbox ...` runs the test/demo sandbox, anything else is the agent
(`tuplenet [options]`, `tuplenet check`, `tuplenet status`). Kept apart so the agent's own entry point
never imports the sandbox."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        from ..sandbox.cli import main as sandbox_main

        return sandbox_main(argv[1:])
    from ..agent.main import main as agent_main

    return agent_main(argv)


if __name__ == "__main__":
    sys.exit(main())
