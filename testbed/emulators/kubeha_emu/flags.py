"""Go-style command-line flags (`--name=value`, `--name value`, bare booleans), as the real
components accept them. Flags an emulator does not model are accepted, returned, and ignored."""


def _truthy(value):
    return str(value).lower() in ("1", "t", "true", "y", "yes")


def parse(argv, known, booleans=()):
    """Parse `argv` against `known` ({name: default}). Returns (values, ignored).

    `booleans` are flags that take no separate value (`--leader-elect` or `--leader-elect=false`).
    An unknown flag without `=` takes the next argument as its value unless that starts with `-`.
    """
    values = dict(known)
    ignored = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            ignored.append(arg)
            continue
        name = arg.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in booleans:
            values[name] = True if value is None else _truthy(value)
            continue
        if value is None and i < len(argv) and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        if name in known:
            if value is None:
                raise SystemExit("flag needs an argument: --%s" % name)
            values[name] = value
        else:
            ignored.append("--%s=%s" % (name, value) if value is not None else "--" + name)
    return values, ignored
