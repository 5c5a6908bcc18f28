"""The permissions the user's umask gives a new file (0666 & ~umask) or directory (0777 & ~umask),
as open() and mkdir() would: our atomic writes build in temporary files and directories, which
mkstemp and mkdtemp create private (0600, 0700), and set these before renaming them into place."""
import os


def umask() -> int:
    """The process's umask, read without changing it where Linux reports it (os.umask can only
    set it, which would briefly change it for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def new_file_mode() -> int:
    return 0o666 & ~umask()


def new_dir_mode() -> int:
    return 0o777 & ~umask()
