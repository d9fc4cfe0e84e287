#!/usr/bin/env python3
"""scripts/changed-functions.py BASE [FILE...]: print, as CREATE OR REPLACE FUNCTION statements, every function of
sql/*.sql (or of the FILEs named) whose definition differs from the one at git revision BASE, or that BASE does not
have. Their text is the same as in sql/, which is what an upgrade script needs (docs/releasing.md): paste the output
into sql/upgrades/pg_hatchet--A--B.sql and check it with `bash scripts/test.sh upgrade`.

A definition is a statement from `CREATE FUNCTION hatchet.` to the first `$$;` that ends a line (comments are not
part of it: COMMENT ON statements are left to you). Example, for what changed on a branch since main:
    python3 scripts/changed-functions.py main sql/tasks.sql sql/runs.sql
"""
import pathlib
import re
import subprocess
import sys

STATEMENT = re.compile(r"^CREATE FUNCTION hatchet\.(\w+)\(.*?\$\$;\n", re.S | re.M)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1]
    root = pathlib.Path(__file__).resolve().parent.parent
    files = [pathlib.Path(f) for f in sys.argv[2:]] or sorted((root / "sql").glob("*.sql"))
    for path in files:
        rel = path.resolve().relative_to(root).as_posix()
        old = subprocess.run(["git", "-C", str(root), "show", f"{base}:{rel}"], capture_output=True, text=True)
        before = {m.group(0) for m in STATEMENT.finditer(old.stdout)}
        changed = [m.group(0) for m in STATEMENT.finditer((root / rel).read_text()) if m.group(0) not in before]
        if changed:
            print(f"-- {rel}")
            for statement in changed:
                print(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
